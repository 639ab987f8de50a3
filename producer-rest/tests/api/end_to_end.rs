//! N votes through rest-client reach Kafka, Redis and MongoDB exactly once each, under the
//! vote_id the 202 gave (the front's UUIDv7, or the client's own).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt as _;
use mongodb::bson::doc;
use serde_json::json;

use crate::helpers::TestPipeline;

const BANDS: [(&str, &str, usize); 4] = [
    ("Radiohead", "OK Computer", 97),
    ("The Doors", "Strange Days", 61),
    ("Blur", "Parklife", 29),
    ("Björk", "Homogenic", 13),
];

/// The three JSON shapes the fronts accept: the course's two string-valued traffic
/// formats and plain numbers.
fn vote(band: &str, album: &str, i: usize) -> serde_json::Value {
    match i % 3 {
        0 => json!({"name": band, "album": album, "year": "2011", "rank": "9.5"}),
        1 => json!({"artist": band, "album": album, "year": "1967", "ranked": "8.0"}),
        _ => {
            json!({"band": band, "album": album, "year": 1994, "rank": 7, "cast_at": "2026-11-23T10:00:00Z"})
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn votes_through_rest_client_are_counted_and_logged_exactly_once() {
    // Arrange
    let pipeline = TestPipeline::spawn().await;
    let votes: Vec<_> = BANDS.iter().flat_map(|(band, album, n)| (0..*n).map(move |i| vote(band, album, i))).collect();
    let sent = votes.len() as i64;

    // Act
    let answers: Vec<_> = futures::stream::iter(votes)
        .map(|vote| {
            let pipeline = &pipeline;
            async move {
                let response = pipeline.post_vote(&vote).await;
                (response.status().as_u16(), response.json::<serde_json::Value>().await.unwrap())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    // Assert
    for (status, body) in &answers {
        assert_eq!(*status, 202, "{body}");
        assert!(uuid::Uuid::try_parse(body["vote_id"].as_str().unwrap()).is_ok());
    }
    let (counted, logged) = pipeline.consumer.wait_for_counted(sent, Duration::from_secs(60)).await;
    assert_eq!(counted, sent);
    assert_eq!(logged, sent as u64);
    assert_eq!(pipeline.kafka_records(), sent);

    let expected: HashMap<String, i64> = BANDS.iter().map(|(band, _, n)| (band.to_string(), *n as i64)).collect();
    assert_eq!(pipeline.consumer.band_counts().await, expected);

    let document = pipeline.consumer.votes.find_one(doc! { "band": "Björk" }).await.unwrap().expect("a logged vote");
    assert!(document.get_datetime("accepted_at").is_ok(), "accepted_at is a BSON date: {document}");
    assert_eq!(document.get_str("path").unwrap(), "rest");
    assert_eq!(document.get_str("album").unwrap(), "Homogenic");
    assert!(document.get_i64("kafka_offset").is_ok());
    let with_cast_at = pipeline.consumer.votes.count_documents(doc! { "cast_at": { "$type": "date" } }).await.unwrap();
    assert_eq!(with_cast_at as usize, BANDS.iter().map(|(_, _, n)| n / 3).sum::<usize>());
    // Give a late duplicate the chance to show up before the final check.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pipeline.consumer.total().await, sent);

    // A vote without a vote_id gets a UUIDv7 from the front, and that id is its `_id` in the log.
    let returned: HashSet<String> =
        answers.iter().map(|(_, body)| body["vote_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(returned.len(), answers.len(), "each vote its own id");
    for id in &returned {
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7, "{id} is not a UUIDv7");
    }
    let mut cursor = pipeline.consumer.votes.find(doc! {}).projection(doc! { "_id": 1 }).await.unwrap();
    let mut logged_ids = HashSet::new();
    while let Some(document) = cursor.next().await {
        logged_ids.insert(document.unwrap().get_str("_id").unwrap().to_owned());
    }
    assert_eq!(logged_ids, returned);

    // A client's own vote_id comes back in the 202 and is the `_id` its vote is logged under.
    let client_id = uuid::Uuid::new_v4().to_string();
    let keyed = json!({"band": "Portishead", "album": "Dummy", "year": 1994, "rank": 9, "vote_id": client_id});
    let response = pipeline.post_vote(&keyed).await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["vote_id"], client_id.as_str());
    pipeline.consumer.wait_for_counted(sent + 1, Duration::from_secs(30)).await;
    let document = pipeline.consumer.votes.find_one(doc! { "_id": &client_id }).await.unwrap();
    assert_eq!(document.expect("logged under the client's vote_id").get_str("band").unwrap(), "Portishead");
}
