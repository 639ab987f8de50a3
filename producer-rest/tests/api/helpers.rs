//! Spawns a whole REST path for one test (rest-server, rest-client and an isolated
//! consumer, on port 0) and reads back what reached Kafka, Redis and MongoDB.

use clap::Parser as _;
use tokio_util::sync::CancellationToken;
use voteflow_producer_rest::settings::{FrontSettings, ServerSettings};
use voteflow_producer_rest::{front, server};
use voteflow_testkit::{IsolatedConsumer, create_topic, kafka_brokers, unique_id};

pub(crate) const PARTITIONS: i32 = 6;

/// What a test can change about its pipeline.
pub(crate) struct Options {
    /// Brokers rest-server produces to (a dead address simulates Kafka being down).
    pub(crate) server_brokers: Option<String>,
    pub(crate) delivery_timeout_ms: u64,
    /// How often rest-server's librdkafka reports its latencies (its default: 5 s).
    pub(crate) statistics_interval_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { server_brokers: None, delivery_timeout_ms: 2000, statistics_interval_ms: 5000 }
    }
}

pub(crate) struct TestPipeline {
    pub(crate) front_url: String,
    /// rest-server itself (its `/metrics` among others).
    pub(crate) server_url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) consumer: IsolatedConsumer,
    shutdown: CancellationToken,
}

impl Drop for TestPipeline {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestPipeline {
    pub(crate) async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub(crate) async fn spawn_with(options: Options) -> Self {
        voteflow_testkit::init_logs();
        let topic = create_topic(PARTITIONS).await;
        let shutdown = CancellationToken::new();
        let server_brokers = options.server_brokers.unwrap_or_else(kafka_brokers);
        let server_settings = ServerSettings::try_parse_from([
            "rest-server",
            "--listen=127.0.0.1:0",
            &format!("--kafka-brokers={server_brokers}"),
            &format!("--kafka-topic={topic}"),
            &format!("--delivery-timeout-ms={}", options.delivery_timeout_ms),
            &format!("--statistics-interval-ms={}", options.statistics_interval_ms),
        ])
        .unwrap();
        let rest_server =
            server::launch(server_settings, prometheus::Registry::new(), shutdown.clone()).await.expect("rest-server");
        let front_settings = FrontSettings::try_parse_from([
            "rest-client",
            "--listen=127.0.0.1:0",
            &format!("--server-url=http://{}", rest_server.addr),
            &format!("--upstream-timeout-ms={}", options.delivery_timeout_ms + 1000),
        ])
        .unwrap();
        let front =
            front::launch(front_settings, prometheus::Registry::new(), shutdown.clone()).await.expect("rest-client");
        let server_url = format!("http://{}", rest_server.addr);
        tokio::spawn(async move {
            let _ = rest_server.stopped().await;
        });
        let consumer = IsolatedConsumer::start(&topic, &format!("test_{}", unique_id())).await;
        Self {
            front_url: format!("http://{}", front.addr),
            server_url,
            http: reqwest::Client::new(),
            consumer,
            shutdown,
        }
    }

    pub(crate) async fn post_vote(&self, vote: &serde_json::Value) -> reqwest::Response {
        self.http.post(format!("{}/votes", self.front_url)).json(vote).send().await.expect("rest-client answers")
    }

    pub(crate) async fn post_raw(
        &self,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self.http.post(format!("{}/votes", self.front_url)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.expect("rest-client answers")
    }

    /// How many records the test topic holds, summed over partitions.
    pub(crate) fn kafka_records(&self) -> i64 {
        voteflow_testkit::topic_records(&self.consumer.topic)
    }
}
