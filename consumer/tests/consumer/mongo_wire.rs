//! What voteflow needs of its MongoDB-wire server, checked on the one MONGODB_URI names
//! (FerretDB locally): insert_many under a unique index, duplicate key 11000, find with
//! sort, count, a date-range query, and a look-up by `_id` from an index.

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

/// The consumer reads a duplicate's first copy by `_id` (the retry path): that look-up must
/// be served from an index, or it scans a log that is kept forever. FerretDB 1.24 scans
/// unless its launcher has rebuilt the `_id` index (scripts/ferretdb/idindex.go), which it
/// does within a second of a collection's creation; mongod always uses its `_id` index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_up_by_id_is_served_from_an_index() {
    let client = Client::with_uri_str(mongodb_uri()).await.unwrap();
    let database = client.database(&format!("test_{}", unique_id()));
    let votes = database.collection::<Document>(COLLECTION);
    let documents: Vec<Document> = (0..1000).map(|i| doc! { "_id": format!("vote-{i:04}"), "n": i }).collect();
    votes.insert_many(&documents).await.expect("insert_many");

    let explain = doc! {
        "explain": { "find": COLLECTION, "filter": { "_id": "vote-0999" }, "limit": 1, "singleBatch": true },
        "verbosity": "queryPlanner",
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let plan = loop {
        // Real reads first: SQLite's EXPLAIN does not notice a schema changed under its
        // connection (the rebuilt index), a query does and reloads it.
        for _ in 0..2 {
            votes.find_one(doc! { "_id": "vote-0999" }).await.unwrap();
        }
        let plan = database.run_command(explain.clone()).await.expect("explain").get_document("queryPlanner").cloned();
        let plan = plan.expect("explain answers a queryPlanner").to_string();
        if uses_an_index(&plan) || std::time::Instant::now() > deadline {
            break plan;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(uses_an_index(&plan), "find by _id is not served from an index: {plan}");
    let found = votes.find_one(doc! { "_id": "vote-0999" }).await.unwrap().expect("the document");
    assert_eq!(found.get_i32("n").unwrap(), 999);
    database.drop().await.unwrap();
}

/// Whether a query plan reads an index: SQLite's `SEARCH .. USING INDEX` (FerretDB) or
/// mongod's `IDHACK` / `IXSCAN` stages.
fn uses_an_index(plan: &str) -> bool {
    plan.contains("USING INDEX") || plan.contains("IDHACK") || plan.contains("IXSCAN")
}
