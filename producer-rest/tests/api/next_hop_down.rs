//! rest-client with rest-server unreachable, silent or answering without end: a bounded
//! 503 with Retry-After (or a 502 for the endless answer), and /readyz 503.

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

/// Starts rest-client in front of `upstream` with a 300 ms upstream timeout.
async fn front_of(upstream: std::net::SocketAddr) -> (voteflow_runtime::http::Running, CancellationToken) {
    let settings = ClientSettings::try_parse_from([
        "rest-client",
        "--listen=127.0.0.1:0",
        &format!("--server-url=http://{upstream}"),
        "--upstream-timeout-ms=300",
    ])
    .unwrap();
    let shutdown = CancellationToken::new();
    let front = client::launch(&settings, prometheus::Registry::new(), shutdown.clone()).await.unwrap();
    (front, shutdown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_client_answers_503_when_rest_server_accepts_but_never_answers() {
    // Arrange: an upstream that takes connections and reads requests, and answers nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = silent.accept().await {
            tokio::spawn(async move {
                let mut sink = tokio::io::sink();
                let _ = tokio::io::copy(&mut stream, &mut sink).await;
            });
        }
    });
    let (front, shutdown) = front_of(silent_addr).await;
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
    assert!(body["message"].as_str().unwrap().contains("no answer within 300 ms"), "{body}");
    assert!(waited >= Duration::from_millis(300), "answered before the timeout: {waited:?}");
    assert!(waited < Duration::from_secs(2), "the upstream timeout bounds the wait, took {waited:?}");
    let ready = http.get(format!("http://{}/readyz", front.addr)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503, "a silent next hop is not ready");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), front.stopped).await.expect("stops in time").unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_client_answers_502_when_rest_server_answers_without_end() {
    // Arrange: an upstream that answers 202 and then streams a body without end: the
    // front must stop reading at its bound, not buffer it all.
    let endless = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endless_addr = endless.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = endless.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head =
                    "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                while stream.write_all(chunk.as_bytes()).await.is_ok() {}
            });
        }
    });
    let (front, shutdown) = front_of(endless_addr).await;
    let http = reqwest::Client::new();

    // Act
    let response = http
        .post(format!("http://{}/votes", front.addr))
        .json(&serde_json::json!({"band": "Low", "album": "Double Negative", "year": 2018, "rank": 8}))
        .send()
        .await
        .unwrap();

    // Assert: not the 300 ms timeout (a 503) but the size bound, reached well within it.
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "bad_gateway", "{body}");
    assert!(body["message"].as_str().unwrap().contains("with a body over 4194304 bytes"), "{body}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), front.stopped).await.expect("stops in time").unwrap().unwrap();
}
