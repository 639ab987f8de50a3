//! rest-client with rest-server unreachable: a quick 503 with Retry-After, and /readyz 503.

use std::time::{Duration, Instant};

use clap::Parser as _;
use tokio_util::sync::CancellationToken;
use voteflow_producer_rest::client;
use voteflow_producer_rest::settings::ClientSettings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_client_answers_503_quickly_when_rest_server_is_unreachable() {
    // Arrange: an upstream address where nothing listens.
    let dead_addr = voteflow_consumer::testing::dead_address();
    let settings = ClientSettings::try_parse_from([
        "rest-client",
        "--listen=127.0.0.1:0",
        &format!("--server-url=http://{dead_addr}"),
    ])
    .unwrap();
    let shutdown = CancellationToken::new();
    let front = client::launch(&settings, prometheus::Registry::new(), shutdown.clone()).await.unwrap();
    let http = reqwest::Client::new();

    // Act
    let started = Instant::now();
    let response = http
        .post(format!("http://{}/votes", front.addr))
        .json(&serde_json::json!({"band": "Low", "album": "Double Negative", "year": 2018, "rank": 8}))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();

    // Assert
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "upstream_unavailable", "{body}");
    assert!(waited < Duration::from_secs(2), "a refused connection is answered at once, took {waited:?}");
    let ready = http.get(format!("http://{}/readyz", front.addr)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let health = http.get(format!("http://{}/healthz", front.addr)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200, "alive even when the next hop is not");

    // Shutdown stops the server.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), front.stopped).await.expect("stops in time").unwrap().unwrap();
    assert!(http.get(format!("http://{}/healthz", front.addr)).send().await.is_err(), "no longer accepting");
}
