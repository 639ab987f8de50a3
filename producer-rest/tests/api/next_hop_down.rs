//! rest-client with rest-server unreachable, silent or answering without end: a bounded
//! 503 with Retry-After (or a 502 for the endless answer), and /readyz 503.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use voteflow_producer_rest::client;
use voteflow_producer_rest::settings::ClientSettings;
use voteflow_runtime::http::Running;

/// rest-client in front of `upstream`, with a 300 ms upstream timeout.
struct Front {
    running: Running,
    shutdown: CancellationToken,
    http: reqwest::Client,
}

impl Front {
    async fn before(upstream: SocketAddr) -> Self {
        let settings = ClientSettings::try_parse_from([
            "rest-client",
            "--listen=127.0.0.1:0",
            &format!("--server-url=http://{upstream}"),
            "--upstream-timeout-ms=300",
        ])
        .unwrap();
        let shutdown = CancellationToken::new();
        let running = client::launch(&settings, prometheus::Registry::new(), shutdown.clone()).await.unwrap();
        Self { running, shutdown, http: reqwest::Client::new() }
    }

    /// Posts one valid vote, expecting the front's own 503 for a next hop it cannot use:
    /// its JSON body and how long it took.
    async fn post_vote_unavailable(&self) -> (serde_json::Value, Duration) {
        let (status, retry_after, body, waited) = self.post_vote().await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
        assert_eq!(body["error"], "upstream_unavailable", "{body}");
        (body, waited)
    }

    /// Posts one valid vote: the status, Retry-After, JSON body and how long it took.
    async fn post_vote(&self) -> (u16, Option<String>, serde_json::Value, Duration) {
        let started = Instant::now();
        let response = self
            .http
            .post(format!("http://{}/votes", self.running.addr))
            .json(&serde_json::json!({"band": "Low", "album": "Double Negative", "year": 2018, "rank": 8}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.json().await.unwrap();
        (status, retry_after, body, started.elapsed())
    }

    async fn status_of(&self, path: &str) -> u16 {
        self.http.get(format!("http://{}{path}", self.running.addr)).send().await.unwrap().status().as_u16()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.running.stopped)
            .await
            .expect("stops in time")
            .unwrap()
            .unwrap();
        let gone = self.http.get(format!("http://{}/healthz", self.running.addr)).send().await;
        assert!(gone.is_err(), "no longer accepting");
    }
}

/// A stand-in for rest-server on a real socket: each connection is handed to `serve`.
async fn upstream<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_client_answers_503_quickly_when_rest_server_is_unreachable() {
    // Arrange: an upstream address where nothing listens.
    let front = Front::before(voteflow_consumer::testing::dead_address()).await;

    // Act: a 503 with Retry-After (asserted inside)
    let (_, waited) = front.post_vote_unavailable().await;

    // Assert
    assert!(waited < Duration::from_secs(2), "a refused connection is answered at once, took {waited:?}");
    assert_eq!(front.status_of("/readyz").await, 503);
    assert_eq!(front.status_of("/healthz").await, 200, "alive even when the next hop is not");
    front.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_client_answers_503_when_rest_server_accepts_but_never_answers() {
    // Arrange: an upstream that takes connections and reads requests, and answers nothing.
    let silent = upstream(|mut stream| async move {
        let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
    })
    .await;
    let front = Front::before(silent).await;

    // Act: a 503 with Retry-After (asserted inside)
    let (body, waited) = front.post_vote_unavailable().await;

    // Assert
    assert!(body["message"].as_str().unwrap().contains("no answer within 300 ms"), "{body}");
    assert!(waited >= Duration::from_millis(300), "answered before the timeout: {waited:?}");
    assert!(waited < Duration::from_secs(2), "the upstream timeout bounds the wait, took {waited:?}");
    assert_eq!(front.status_of("/readyz").await, 503, "a silent next hop is not ready");
    front.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_client_answers_502_when_rest_server_answers_without_end() {
    // Arrange: an upstream that answers 202 and then streams a body without end: the
    // front must stop reading at its bound, not buffer it all.
    let endless = upstream(|mut stream| async move {
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).await;
        let head = "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        if stream.write_all(head.as_bytes()).await.is_ok() {
            while stream.write_all(chunk.as_bytes()).await.is_ok() {}
        }
    })
    .await;
    let front = Front::before(endless).await;

    // Act
    let (status, _, body, _) = front.post_vote().await;

    // Assert: not the 300 ms timeout (a 503) but the size bound, reached well within it.
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "bad_gateway", "{body}");
    assert!(body["message"].as_str().unwrap().contains("with a body over 4194304 bytes"), "{body}");
    front.stop().await;
}
