//! rest-server's `/metrics` splits Kafka's acknowledgement as librdkafka reports it: time
//! queued in the client (linger included), in the send buffer, and the broker round trip.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Options, TestPipeline};

/// `voteflow_kafka_client_latency_seconds{stage, quantile}` from a `/metrics` text.
fn client_latency(metrics: &str, stage: &str, quantile: &str) -> Option<f64> {
    let labels = [("stage", stage), ("quantile", quantile)];
    voteflow_testkit::metrics::find(metrics, "voteflow_kafka_client_latency_seconds", &labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_server_reports_librdkafkas_split_of_the_acknowledgement() {
    // Arrange: statistics every 200 ms rather than every 5 s.
    let pipeline = TestPipeline::spawn_with(Options { statistics_interval_ms: 200, ..Options::default() }).await;
    let metrics_url = format!("{}/metrics", pipeline.server_url);

    // Act: votes until one statistics window has seen some of them both queued and answered
    // (the queue counts only produced records; a request sent late in a window is answered
    // in the next one, so a window can hold its queue time without its round trip).
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let response =
            pipeline.post_vote(&json!({"band": "Muse", "album": "Absolution", "year": 2003, "rank": 8})).await;
        assert_eq!(response.status().as_u16(), 202);
        let metrics = pipeline.http.get(&metrics_url).send().await.unwrap().text().await.unwrap();
        if ["queue", "round_trip"]
            .iter()
            .all(|stage| client_latency(&metrics, stage, "0.99").is_some_and(|p99| p99 > 0.0))
        {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no window with queue and round-trip time after 30 s of votes:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Assert: every part is there, ordered, and within the delivery bound.
    for stage in ["queue", "send_buffer", "round_trip"] {
        let p50 = client_latency(&metrics, stage, "0.5").unwrap_or_else(|| panic!("{stage} p50 missing:\n{metrics}"));
        let p99 = client_latency(&metrics, stage, "0.99").unwrap_or_else(|| panic!("{stage} p99 missing:\n{metrics}"));
        assert!(0.0 <= p50 && p50 <= p99 && p99 < 2.0, "{stage}: p50 {p50} s, p99 {p99} s");
    }
    let round_trip = client_latency(&metrics, "round_trip", "0.99").unwrap();
    assert!(round_trip > 0.0, "the votes' produce requests had no round trip:\n{metrics}");
    // A vote waits out the 2 ms linger in the client's queue before it is sent.
    let queued = client_latency(&metrics, "queue", "0.99").unwrap();
    assert!(queued >= 0.001, "queue p99 {queued} s with linger.ms=2");
}
