//! grpc-client spreads votes over every grpc-server it is given, and a server that leaves
//! (SIGTERM: NOT_SERVING, then its calls in flight finish) fails no vote: two real
//! grpc-server processes, one grpc-client, each server's own `/metrics`, and the consumer's
//! count of what reached Kafka.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser as _;
use futures::StreamExt as _;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use voteflow_producer_grpc::front;
use voteflow_producer_grpc::settings::FrontSettings;
use voteflow_testkit::{IsolatedConsumer, create_topic, dead_address, kafka_brokers, unique_id};

/// A grpc-server binary, run as its own process.
struct ServerProcess {
    child: tokio::process::Child,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl ServerProcess {
    async fn start(topic: &str) -> Self {
        let (addr, admin) = (dead_address(), dead_address());
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_grpc-server"))
            .env("GRPC_SERVER_LISTEN", addr.to_string())
            .env("GRPC_SERVER_ADMIN_LISTEN", admin.to_string())
            .env("KAFKA_BROKERS", kafka_brokers())
            .env("KAFKA_TOPIC", topic)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start grpc-server");
        let server = Self { child, addr, admin };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.get("/readyz").await.map(|(status, _)| status) != Some(200) {
            assert!(Instant::now() < deadline, "grpc-server {addr} not ready within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = reqwest::get(format!("http://{}{path}", self.admin)).await.ok()?;
        Some((response.status().as_u16(), response.text().await.ok()?))
    }

    /// CastVote calls this server answered OK, from its own metrics (the series must exist).
    async fn votes_answered(&self) -> u64 {
        let (_, metrics) = self.get("/metrics").await.expect("grpc-server's metrics");
        let labels = [("method", "CastVote"), ("code", "Ok")];
        voteflow_testkit::metrics::find(&metrics, "voteflow_grpc_requests_total", &labels)
            .map(|value| value as u64)
            .unwrap_or_else(|| panic!("no CastVote Ok series in grpc-server {}'s metrics:\n{metrics}", self.addr))
    }

    /// SIGTERM, as Kubernetes stops a pod.
    fn terminate(&self) {
        let pid = self.child.id().expect("a running grpc-server").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
    }
}

/// Sends `votes` votes through the front, `concurrency` at a time; the statuses, and a
/// count of answers as they come.
async fn send(front: &str, votes: usize, concurrency: usize, answered: Arc<AtomicUsize>) -> Vec<u16> {
    let http = reqwest::Client::new();
    futures::stream::iter(0..votes)
        .map(|i| {
            let (http, answered) = (http.clone(), answered.clone());
            let url = format!("{front}/votes");
            async move {
                let vote = json!({"band": format!("Band {}", i % 5), "album": "Spread", "year": 2001, "rank": 7});
                let status = http.post(url).json(&vote).send().await.map_or(0, |r| r.status().as_u16());
                answered.fetch_add(1, Ordering::Relaxed);
                status
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn votes_spread_over_both_servers_and_a_server_leaving_fails_none() {
    // Arrange: two grpc-server processes, one grpc-client given both, one consumer.
    voteflow_testkit::init_logs();
    let topic = create_topic(6).await;
    let (first, mut second) = (ServerProcess::start(&topic).await, ServerProcess::start(&topic).await);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let settings = FrontSettings::try_parse_from([
        "grpc-client",
        "--listen=127.0.0.1:0",
        &format!("--server-url=http://{},http://{}", first.addr, second.addr),
    ])
    .unwrap();
    let front = front::launch(settings, prometheus::Registry::new(), shutdown.clone()).await.unwrap();
    let front = format!("http://{}", front.addr);
    let consumer = IsolatedConsumer::start(&topic, &format!("test_{}", unique_id())).await;

    // Act 1: 400 votes, 16 at a time.
    let statuses = send(&front, 400, 16, Arc::default()).await;

    // Assert: all accepted, and each server took a share, by its own count.
    assert!(statuses.iter().all(|status| *status == 202), "{statuses:?}");
    let (a, b) = (first.votes_answered().await, second.votes_answered().await);
    eprintln!("split over two grpc-servers: {a} and {b} of 400");
    assert_eq!(a + b, 400);
    // grpc-client sends each call to the server with the fewest calls in flight, so a
    // server slowed by the busy machine gets less than half; one channel pinned to one
    // server would give the other none.
    assert!(a >= 100 && b >= 100, "one server got less than a quarter: {a} and {b}");

    // Act 2: 600 more, 8 at a time; the second server is stopped a third of the way in.
    let answered = Arc::new(AtomicUsize::new(0));
    let sending = {
        let (front, answered) = (front.clone(), answered.clone());
        tokio::spawn(async move { send(&front, 600, 8, answered).await })
    };
    while answered.load(Ordering::Relaxed) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    second.terminate();
    let answered_at_stop = answered.load(Ordering::Relaxed);
    let statuses = sending.await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(15), second.child.wait()).await.expect("grpc-server stops");

    // Assert: no vote failed, the first server took over, and Kafka holds each vote once.
    let failed: Vec<_> = statuses.iter().filter(|status| **status != 202).collect();
    assert!(failed.is_empty(), "{} of 600 votes failed while a server left: {failed:?}", failed.len());
    assert!(exit.unwrap().success(), "grpc-server's graceful stop exits 0");
    let first_after = first.votes_answered().await;
    eprintln!("after the second's stop: {} answers, the first server's {}", 600 - answered_at_stop, first_after - a);
    // Every answer after the stop came from the first server, but for the calls the second
    // had in flight then and those the front sent it before it saw NOT_SERVING (at most one
    // round of 8); a front still sending to the leaving server would fail votes above.
    assert!(
        first_after - a + 16 >= (600 - answered_at_stop) as u64,
        "the first server did not take over: it answered {} of the {} answers after the stop",
        first_after - a,
        600 - answered_at_stop
    );
    let (counted, logged) = consumer.wait_for_counted(1000, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((counted, logged), (1000, 1000), "each accepted vote counted and logged once");
    assert_eq!(consumer.total().await, 1000);
}
