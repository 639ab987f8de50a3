//! rest-client with rest-server unreachable, silent or answering without end: a bounded
//! 503 with Retry-After (or a 502 for the endless answer), and /readyz 503; with a slow
//! rest-server, never more exchanges at once than `UPSTREAM_POOL_SIZE`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use voteflow_producer_rest::front;
use voteflow_producer_rest::settings::FrontSettings;
use voteflow_service::process::Running;

/// rest-client in front of `upstream`, with a 300 ms upstream timeout.
struct Front {
    running: Running,
    shutdown: CancellationToken,
    http: reqwest::Client,
}

impl Front {
    async fn before(upstream: SocketAddr) -> Self {
        Self::with(upstream, &["--upstream-timeout-ms=300"]).await
    }

    async fn with(upstream: SocketAddr, flags: &[&str]) -> Self {
        let server_url = format!("--server-url=http://{upstream}");
        let args = ["rest-client", "--listen=127.0.0.1:0", &server_url].into_iter().chain(flags.iter().copied());
        let settings = FrontSettings::try_parse_from(args).unwrap();
        let shutdown = CancellationToken::new();
        let running = front::launch(settings, prometheus::Registry::new(), shutdown.clone()).await.unwrap();
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
    let front = Front::before(voteflow_testkit::dead_address()).await;

    // Act: a 503 with Retry-After (asserted inside)
    let (_, waited) = front.post_vote_unavailable().await;

    // Assert
    // At once: before the 300 ms upstream timeout, which would be the answer if a refused
    // connection were not noticed.
    assert!(waited < Duration::from_millis(300), "a refused connection is answered at once, took {waited:?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_client_sends_a_slow_rest_server_at_most_its_pool_size_of_votes_at_once() {
    // Arrange: an upstream that answers each vote 202 after 50 ms, keeping connections
    // alive, and notes the most requests it held at once.
    let (held, most_held) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (counting, most) = (held.clone(), most_held.clone());
    let slow = upstream(move |mut stream| {
        let (held, most_held) = (counting.clone(), most.clone());
        async move {
            while read_request(&mut stream).await {
                most_held.fetch_max(held.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                held.fetch_sub(1, Ordering::SeqCst);
                let body = format!(r#"{{"vote_id":"{}"}}"#, uuid::Uuid::new_v4());
                let answer = format!(
                    "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let front = Front::with(slow, &["--upstream-pool-size=3", "--upstream-timeout-ms=5000"]).await;

    // Act: twelve votes at once.
    let answers = futures::future::join_all((0..12).map(|_| front.post_vote())).await;

    // Assert: all accepted, three at a time.
    for (status, _, body, _) in &answers {
        assert_eq!(*status, 202, "{body}");
    }
    assert_eq!(most_held.load(Ordering::SeqCst), 3, "exchanges with rest-server at once");
    front.stop().await;
}

/// Reads one HTTP/1.1 request (head and `content-length` body); `false` at end of stream.
async fn read_request(stream: &mut TcpStream) -> bool {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => request.push(byte[0]),
            _ => return false,
        }
    }
    let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:").and_then(|value| value.trim().parse().ok()))
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.is_ok()
}
