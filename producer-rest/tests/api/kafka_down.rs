//! With Kafka unreachable, a vote is answered 503 with Retry-After within the delivery
//! bound, readiness goes false, and nothing reaches the sinks.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Options, TestPipeline};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_client_answers_503_with_retry_after_when_kafka_is_down() {
    // Arrange: rest-server produces to an address where no broker listens.
    let dead_brokers = voteflow_testkit::dead_address().to_string();
    let bound = Duration::from_millis(1500);
    let pipeline = TestPipeline::spawn_with(Options {
        server_brokers: Some(dead_brokers),
        delivery_timeout_ms: bound.as_millis() as u64,
        ..Options::default()
    })
    .await;

    // Act
    let started = Instant::now();
    let response =
        pipeline.post_vote(&json!({"band": "Muse", "album": "Origin of Symmetry", "year": 2001, "rank": 9})).await;
    let waited = started.elapsed();

    // Assert
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "kafka_unavailable", "{body}");
    // Within the bound, librdkafka's once-a-second check for timed-out records, and slack;
    // and librdkafka gave up on the record itself (message.timeout.ms = the bound), not the
    // publisher's guard a second later.
    assert!(waited < bound + Duration::from_millis(2500), "answered after {waited:?}");
    let metrics = pipeline.http.get(format!("{}/metrics", pipeline.server_url)).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let outcome = |outcome: &str| {
        voteflow_testkit::metrics::find(&metrics, "voteflow_kafka_produce_total", &[("outcome", outcome)])
    };
    assert_eq!((outcome("timeout"), outcome("unreported")), (Some(1.0), Some(0.0)), "{metrics}");

    let ready = pipeline.http.get(format!("{}/readyz", pipeline.front_url)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503, "the front is not ready while its server cannot reach Kafka");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pipeline.consumer.total().await, 0);
    assert_eq!(pipeline.consumer.logged().await, 0);
    assert_eq!(pipeline.kafka_records(), 0);
}
