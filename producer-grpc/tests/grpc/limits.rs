//! grpc-server's limits and health on the wire: a CastVotes stream over BATCH_MAX_VOTES and
//! a call beyond GRPC_CONCURRENCY_LIMIT on one connection are RESOURCE_EXHAUSTED (the
//! concurrency limit is per connection), each call is counted by method and code, and
//! health is SERVING with Kafka, NOT_SERVING without, and NOT_SERVING first on shutdown.

use std::time::{Duration, Instant};

use clap::Parser as _;
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use voteflow_domain::pb;
use voteflow_domain::refusal::GRPC_CODE_KEY;
use voteflow_producer_grpc::rpc::vote_service_client::VoteServiceClient;
use voteflow_producer_grpc::server;
use voteflow_producer_grpc::settings::ServerSettings;
use voteflow_service::process::Running;
use voteflow_testkit::metrics;

async fn launch(flags: &[&str], shutdown: CancellationToken) -> Running {
    let base = ["grpc-server", "--listen=127.0.0.1:0", "--admin-listen=127.0.0.1:0"];
    let settings = ServerSettings::try_parse_from(base.iter().chain(flags)).unwrap();
    server::launch(settings, prometheus::Registry::new(), shutdown).await.expect("start grpc-server")
}

fn vote(i: u32) -> pb::Vote {
    pb::Vote { band: format!("Limit {i}"), album: "Edges".into(), year: 1999, rank: 5.0, ..Default::default() }
}

fn voteflow_error(status: &tonic::Status) -> Option<&str> {
    status.metadata().get(GRPC_CODE_KEY).and_then(|value| value.to_str().ok())
}

fn calls(text: &str, method: &str, code: &str) -> Option<f64> {
    metrics::find(text, "voteflow_grpc_requests_total", &[("method", method), ("code", code)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_over_the_batch_limit_is_resource_exhausted_and_writes_nothing() {
    // Arrange: a real broker, and streams of at most 3 votes.
    voteflow_testkit::init_logs();
    let topic = voteflow_testkit::create_topic(1).await;
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let brokers = format!("--kafka-brokers={}", voteflow_testkit::kafka_brokers());
    let server = launch(&[&brokers, &format!("--kafka-topic={topic}"), "--batch-max-votes=3"], shutdown).await;
    let mut client = VoteServiceClient::connect(format!("http://{}", server.addr)).await.unwrap();

    // Act: a stream of 4 valid votes, then one of 3.
    let over = client.cast_votes(futures::stream::iter((0..4).map(vote))).await.expect_err("over the limit");
    let within = client.cast_votes(futures::stream::iter((0..3).map(vote))).await.expect("within the limit");

    // Assert: the 4 were refused as a whole and none of them produced; the 3 were.
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    assert_eq!(voteflow_error(&over), Some("batch_too_large"), "{over:?}");
    assert_eq!(within.into_inner().accepted, 3);
    let text = voteflow_testkit::metrics_text(server.admin_addr).await;
    let acked = metrics::find(&text, "voteflow_kafka_produce_total", &[("outcome", "acked")]);
    assert_eq!(acked, Some(3.0), "only the stream within the limit reached Kafka:\n{text}");
    assert_eq!(calls(&text, "CastVotes", "ResourceExhausted"), Some(1.0), "{text}");
    assert_eq!(calls(&text, "CastVotes", "Ok"), Some(1.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_beyond_the_concurrency_limit_of_its_connection_is_shed_at_once() {
    // Arrange: no broker (a vote waits for the 1.5 s delivery bound), one call at a time per
    // connection, and room for many votes in flight.
    voteflow_testkit::init_logs();
    let dead = voteflow_testkit::dead_address();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let flags = [&format!("--kafka-brokers={dead}") as &str, "--delivery-timeout-ms=1500", "--concurrency-limit=1"];
    let server = launch(&flags, shutdown).await;
    let url = format!("http://{}", server.addr);
    let one_connection = VoteServiceClient::connect(url.clone()).await.unwrap();
    let another_connection = VoteServiceClient::connect(url).await.unwrap();

    // Act: a call waits on the first connection; a second call on it, and one on another.
    let waiting = tokio::spawn({
        let mut client = one_connection.clone();
        async move { client.cast_vote(vote(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shed_at = Instant::now();
    let shed = one_connection.clone().cast_vote(vote(2)).await.expect_err("shed");
    let shed_after = shed_at.elapsed();
    let other = another_connection.clone().cast_vote(vote(3)).await.expect_err("Kafka is down");
    let waiting = waiting.await.unwrap().expect_err("Kafka is down");

    // Assert: the second call on the busy connection was shed at once (by tonic, which
    // answers it before any of voteflow's code, so without `voteflow-error`); the other
    // connection's call was not (it waited for Kafka like the first).
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
    assert_eq!(shed.message(), "Too many active requests for the connection", "{shed:?}");
    assert!(shed_after < Duration::from_millis(500), "shed after {shed_after:?}");
    assert_eq!((other.code(), waiting.code()), (Code::Unavailable, Code::Unavailable), "{other:?} {waiting:?}");
}

async fn health_client(addr: std::net::SocketAddr) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    HealthClient::new(channel)
}

async fn health(client: &mut HealthClient<tonic::transport::Channel>) -> ServingStatus {
    let request = HealthCheckRequest { service: "voteflow.v1.VoteService".into() };
    let answer = client.check(request).await.expect("a health answer").into_inner();
    ServingStatus::try_from(answer.status).expect("a known status")
}

/// Asks until the answer is `wanted`, for up to 15 s; the answers seen.
async fn health_becomes(
    client: &mut HealthClient<tonic::transport::Channel>,
    wanted: ServingStatus,
) -> Vec<ServingStatus> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = vec![health(client).await];
    while seen.last() != Some(&wanted) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen.push(health(client).await);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_follows_kafka_and_turns_not_serving_first_on_shutdown() {
    // Arrange: one server with the broker, one without.
    voteflow_testkit::init_logs();
    let (with_kafka_stop, without_kafka_stop) = (CancellationToken::new(), CancellationToken::new());
    let _stop = without_kafka_stop.clone().drop_guard();
    let brokers = format!("--kafka-brokers={}", voteflow_testkit::kafka_brokers());
    let with_kafka = launch(&[&brokers], with_kafka_stop.clone()).await;
    let without_kafka =
        launch(&[&format!("--kafka-brokers={}", voteflow_testkit::dead_address())], without_kafka_stop).await;
    let mut up = health_client(with_kafka.addr).await;
    let mut down = health_client(without_kafka.addr).await;

    // Assert: SERVING with Kafka (readiness is computed), and /readyz agrees.
    let seen = health_becomes(&mut up, ServingStatus::Serving).await;
    assert_eq!(seen.last(), Some(&ServingStatus::Serving), "never SERVING with Kafka: {seen:?}");
    let readyz = |addr| async move { voteflow_testkit::get(addr, "/readyz").await.expect("the admin port").0 };
    assert_eq!(readyz(with_kafka.admin_addr).await, 200);
    // NOT_SERVING without it, after as long as the first took to be ready and a check more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(health(&mut down).await, ServingStatus::NotServing);
    assert_eq!(readyz(without_kafka.admin_addr).await, 503);

    // Act: a watcher of the healthy server's health, then its shutdown.
    let mut watch =
        up.watch(HealthCheckRequest { service: "voteflow.v1.VoteService".into() }).await.unwrap().into_inner();
    let first = watch.next().await.expect("a first status").unwrap();
    with_kafka_stop.cancel();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.expect("told within 5 s");

    // Assert: the watcher was told NOT_SERVING before its stream ended.
    assert_eq!(ServingStatus::try_from(first.status), Ok(ServingStatus::Serving));
    let next = next.expect("a status, not the stream's end").expect("a status, not an error");
    assert_eq!(ServingStatus::try_from(next.status), Ok(ServingStatus::NotServing));
}
