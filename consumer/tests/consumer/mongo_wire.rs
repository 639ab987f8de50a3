//! What voteflow needs of its MongoDB-wire server, checked on the one MONGODB_URI names
//! (FerretDB locally): insert_many under a unique index, duplicate key 11000, find with
//! sort, count, and a date-range query.

use mongodb::bson::{DateTime, Document, doc};
use mongodb::error::ErrorKind;
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use voteflow_consumer::sink::vote_log::COLLECTION;

use crate::helpers::{mongodb_uri, unique_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mongo_wire_server_does_what_the_vote_log_needs() {
    let client = Client::with_uri_str(mongodb_uri()).await.unwrap();
    let database = client.database(&format!("test_{}", unique_id()));
    let votes = database.collection::<Document>(COLLECTION);
    let unique = IndexOptions::builder().unique(true).build();
    votes
        .create_index(IndexModel::builder().keys(doc! { "code": 1 }).options(unique).build())
        .await
        .expect("unique index");
    votes.create_index(IndexModel::builder().keys(doc! { "at": 1 }).build()).await.expect("date index");

    let base = 1_795_000_000_000_i64;
    let documents: Vec<Document> = (0..10)
        .map(|i| doc! { "_id": format!("v{i}"), "code": i, "at": DateTime::from_millis(base + i * 1000) })
        .collect();
    votes.insert_many(&documents).ordered(false).await.expect("insert_many");

    // A batch with two duplicates (_id and unique code) among new documents.
    let again = vec![
        doc! { "_id": "v3", "code": 3, "at": DateTime::from_millis(base) },
        doc! { "_id": "v10", "code": 10, "at": DateTime::from_millis(base + 10_000) },
        doc! { "_id": "v11", "code": 5, "at": DateTime::from_millis(base + 11_000) },
    ];
    let error = votes.insert_many(&again).ordered(false).await.expect_err("duplicates are refused");
    let ErrorKind::InsertMany(failure) = error.kind.as_ref() else { panic!("not an InsertMany error: {error}") };
    let codes: Vec<i32> = failure.write_errors.as_ref().unwrap().iter().map(|e| e.code).collect();
    assert_eq!(codes, vec![11000, 11000]);
    assert_eq!(votes.count_documents(doc! {}).await.unwrap(), 11, "the new document of the batch was written");

    let mut newest_first = votes.find(doc! {}).sort(doc! { "at": -1 }).limit(3).await.unwrap();
    let mut order = Vec::new();
    while newest_first.advance().await.unwrap() {
        order.push(newest_first.deserialize_current().unwrap().get_str("_id").unwrap().to_owned());
    }
    assert_eq!(order, ["v10", "v9", "v8"]);

    let window =
        doc! { "at": { "$gte": DateTime::from_millis(base + 2000), "$lt": DateTime::from_millis(base + 5000) } };
    assert_eq!(votes.count_documents(window).await.unwrap(), 3);
    database.drop().await.unwrap();
}
