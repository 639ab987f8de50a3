//! Bad input through rest-client gets a 4xx naming the problem, and changes nothing in
//! Kafka, Redis or MongoDB.

use std::time::Duration;

use serde_json::json;

use crate::helpers::TestPipeline;

async fn refused(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let body = response.json::<serde_json::Value>().await.expect("a JSON error body");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_4xx_naming_the_problem_and_changes_nothing() {
    // Arrange
    let pipeline = TestPipeline::spawn().await;
    let json = Some("application/json");
    let valid = json!({"band": "Pulp", "album": "Different Class", "year": 1995, "rank": 9});
    let with = |field: &str, value: serde_json::Value| {
        let mut vote = valid.clone();
        vote[field] = value;
        vote
    };
    let without = |field: &str| {
        let mut vote = valid.clone();
        vote.as_object_mut().unwrap().remove(field);
        vote
    };

    // Act + Assert: every kind of bad input, each with its status, code and field.
    let (status, body) = refused(pipeline.post_raw(json, "{\"band\": \"Pulp\", ").await).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("malformed_json")), "{body}");

    let (status, body) = refused(pipeline.post_raw(json, "[]").await).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid_body")), "{body}");

    for (vote, field) in [
        (with("year", json!([1995])), "year"),
        (with("rank", json!("high")), "rank"),
        (with("band", json!(42)), "band"),
        (with("album", json!({"title": "x"})), "album"),
    ] {
        let (status, body) = refused(pipeline.post_vote(&vote).await).await;
        assert_eq!((status, body["error"].as_str(), body["field"].as_str()), (422, Some("wrong_type"), Some(field)));
    }
    for field in ["band", "album", "year", "rank"] {
        let (status, body) = refused(pipeline.post_vote(&without(field)).await).await;
        assert_eq!((status, body["error"].as_str(), body["field"].as_str()), (422, Some("missing_field"), Some(field)));
    }
    for (vote, field) in [
        (with("vote_id", json!("not-a-uuid")), "vote_id"),
        (with("rank", json!(10.5)), "rank"),
        (with("year", json!(1800)), "year"),
        (with("band", json!("")), "band"),
        (with("cast_at", json!("last tuesday")), "cast_at"),
    ] {
        let (status, body) = refused(pipeline.post_vote(&vote).await).await;
        assert_eq!((status, body["error"].as_str(), body["field"].as_str()), (422, Some("invalid_field"), Some(field)));
        assert!(body["message"].as_str().unwrap().contains(field), "{body}");
    }

    // The default vote limit, 16 KiB, to the byte (a body past the batch limit, which the
    // front does not read, may be cut off while it is still being sent: the corpus has it).
    let padded = |len: usize| format!("{valid}{}", " ".repeat(len - valid.to_string().len()));
    let (status, body) = refused(pipeline.post_raw(json, padded(16 * 1024 + 1)).await).await;
    assert_eq!((status, body["error"].as_str()), (413, Some("body_too_large")), "{body}");

    let (status, body) = refused(pipeline.post_raw(Some("text/plain"), valid.to_string()).await).await;
    assert_eq!((status, body["error"].as_str()), (415, Some("unsupported_media_type")), "{body}");
    let (status, _) = refused(pipeline.post_raw(None, valid.to_string()).await).await;
    assert_eq!(status, 415);

    // One valid vote after all that, of exactly the limit: when it is counted, the bad ones
    // would have been too.
    assert_eq!(pipeline.post_raw(json, padded(16 * 1024)).await.status().as_u16(), 202);
    let (counted, logged) = pipeline.consumer.wait_for_counted(1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((counted, logged), (1, 1));
    let after_pause = (pipeline.consumer.total().await, pipeline.consumer.logged().await);
    assert_eq!(after_pause, (1, 1), "nothing counted or logged late");
    assert_eq!(pipeline.kafka_records(), 1, "only the valid vote reached Kafka");
}
