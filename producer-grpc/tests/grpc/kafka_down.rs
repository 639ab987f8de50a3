//! grpc-server with Kafka unreachable: UNAVAILABLE when librdkafka gives up at the delivery
//! bound, and RESOURCE_EXHAUSTED at once for a vote beyond the in-flight bound (load shedding);
//! grpc-client relays the UNAVAILABLE as 503 kafka_unavailable with Retry-After.

use std::time::{Duration, Instant};

use clap::Parser as _;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use voteflow_domain::pb;
use voteflow_producer_grpc::rpc::vote_service_client::VoteServiceClient;
use voteflow_producer_grpc::server;
use voteflow_producer_grpc::settings::ServerSettings;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_down_is_unavailable_and_overload_is_resource_exhausted() {
    // Arrange: no broker at the address, and room for one vote in flight.
    let dead = voteflow_testkit::dead_address();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let settings = ServerSettings::try_parse_from([
        "grpc-server",
        "--listen=127.0.0.1:0",
        "--admin-listen=127.0.0.1:0",
        &format!("--kafka-brokers={dead}"),
        "--delivery-timeout-ms=1500",
        "--max-in-flight=1",
    ])
    .unwrap();
    let grpc_server = server::launch(settings, prometheus::Registry::new(), shutdown).await.unwrap();
    let client = VoteServiceClient::connect(format!("http://{}", grpc_server.addr)).await.unwrap();
    let vote =
        pb::Vote { band: "Can".into(), album: "Future Days".into(), year: 1973, rank: 9.0, ..Default::default() };

    // Act: one vote waits for Kafka; a second one arrives meanwhile.
    let mut first_client = client.clone();
    let first_vote = vote.clone();
    let started = Instant::now();
    let first = tokio::spawn(async move { first_client.cast_vote(first_vote).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shed_at = Instant::now();
    let second = client.clone().cast_vote(vote).await.expect_err("shed");
    let shed_after = shed_at.elapsed();
    let first = first.await.unwrap().expect_err("not acknowledged");

    // Assert
    assert_eq!(second.code(), Code::ResourceExhausted, "{second:?}");
    assert_eq!(second.metadata().get("voteflow-error").unwrap(), "overloaded");
    // Shed at once, not after waiting for Kafka the way the first vote does.
    assert!(shed_after < Duration::from_millis(500), "shed after {shed_after:?}");
    assert_eq!(first.code(), Code::Unavailable, "{first:?}");
    assert!(started.elapsed() < Duration::from_millis(1500 + 2500), "answered after {:?}", started.elapsed());
    // librdkafka gave up on the record itself (message.timeout.ms = the bound), not the
    // publisher's guard a second later.
    let metrics = voteflow_testkit::metrics_text(grpc_server.admin_addr).await;
    let outcome = |outcome: &str| {
        voteflow_testkit::metrics::find(&metrics, "voteflow_kafka_produce_total", &[("outcome", outcome)])
    };
    assert_eq!((outcome("timeout"), outcome("unreported")), (Some(1.0), Some(0.0)), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_client_answers_503_kafka_unavailable_with_retry_after_when_kafka_is_down() {
    // Arrange: grpc-client in front of a grpc-server whose broker is gone.
    voteflow_testkit::init_logs();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let dead = voteflow_testkit::dead_address();
    let settings = ServerSettings::try_parse_from([
        "grpc-server",
        "--listen=127.0.0.1:0",
        "--admin-listen=127.0.0.1:0",
        &format!("--kafka-brokers={dead}"),
        "--delivery-timeout-ms=1000",
    ])
    .unwrap();
    let grpc_server = server::launch(settings, prometheus::Registry::new(), shutdown.clone()).await.unwrap();
    let front_settings = voteflow_producer_grpc::settings::FrontSettings::try_parse_from([
        "grpc-client",
        "--listen=127.0.0.1:0",
        &format!("--server-url=http://{}", grpc_server.addr),
    ])
    .unwrap();
    let front =
        voteflow_producer_grpc::front::launch(front_settings, prometheus::Registry::new(), shutdown).await.unwrap();

    // Act
    let vote = serde_json::json!({"band": "Can", "album": "Tago Mago", "year": 1971, "rank": 9});
    let response =
        reqwest::Client::new().post(format!("http://{}/votes", front.addr)).json(&vote).send().await.unwrap();

    // Assert: the server's UNAVAILABLE is the front's 503 kafka_unavailable, retry in 1 s.
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").cloned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!((status, body["error"].as_str()), (503, Some("kafka_unavailable")), "{body}");
    assert_eq!(retry_after.as_ref().and_then(|value| value.to_str().ok()), Some("1"));
}
