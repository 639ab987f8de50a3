//! Spawns a whole REST path for one test and reads back what reached Kafka, Redis and
//! MongoDB. Servers come from KAFKA_BROKERS, REDIS_URL and MONGODB_URI (`scripts/stack env`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser as _;
use mongodb::bson::{Document, doc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use redis::AsyncCommands as _;
use tokio_util::sync::CancellationToken;
use voteflow_consumer::settings::ConsumerSettings;
use voteflow_consumer::sink::tally::TallyKeys;
use voteflow_producer_rest::settings::{ClientSettings, ServerSettings};
use voteflow_producer_rest::{client, server};
use voteflow_runtime::kafka::ensure_topic;
use voteflow_runtime::settings::KafkaSettings;

pub(crate) const PARTITIONS: i32 = 6;

pub(crate) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// What a test can change about its pipeline.
pub(crate) struct Options {
    /// Brokers rest-server produces to (a dead address simulates Kafka being down).
    pub(crate) server_brokers: Option<String>,
    pub(crate) delivery_timeout_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { server_brokers: None, delivery_timeout_ms: 2000 }
    }
}

pub(crate) struct TestPipeline {
    pub(crate) front_url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) topic: String,
    pub(crate) brokers: String,
    pub(crate) keys: TallyKeys,
    pub(crate) redis: redis::aio::MultiplexedConnection,
    pub(crate) votes: mongodb::Collection<Document>,
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
        voteflow_runtime::telemetry::init_for_tests();
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let brokers = env_or("KAFKA_BROKERS", "127.0.0.1:9092");
        let redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379/");
        let mongodb_uri = env_or("MONGODB_URI", "mongodb://127.0.0.1:27017/");
        let topic = format!("test-{id}.votes");
        let database = format!("test_{id}");
        let prefix = format!("test:{id}:");
        let kafka = KafkaSettings { brokers: brokers.clone(), topic: topic.clone() };
        ensure_topic(&kafka, &topic, PARTITIONS).await.expect("create the test topic");
        ensure_topic(&kafka, &format!("{topic}.dlq"), 1).await.expect("create the test DLQ topic");
        let shutdown = CancellationToken::new();

        let server_brokers = options.server_brokers.unwrap_or_else(|| brokers.clone());
        let server_settings = ServerSettings::try_parse_from([
            "rest-server",
            "--listen=127.0.0.1:0",
            &format!("--kafka-brokers={server_brokers}"),
            &format!("--kafka-topic={topic}"),
            &format!("--delivery-timeout-ms={}", options.delivery_timeout_ms),
        ])
        .unwrap();
        let rest_server = server::launch(&server_settings, prometheus::Registry::new(), shutdown.clone())
            .await
            .expect("start rest-server");
        let client_settings = ClientSettings::try_parse_from([
            "rest-client",
            "--listen=127.0.0.1:0",
            &format!("--server-url=http://{}", rest_server.addr),
            &format!("--upstream-timeout-ms={}", options.delivery_timeout_ms + 1000),
        ])
        .unwrap();
        let front = client::launch(&client_settings, prometheus::Registry::new(), shutdown.clone())
            .await
            .expect("start rest-client");
        let consumer_settings = ConsumerSettings::try_parse_from([
            "consumer",
            &format!("--kafka-brokers={brokers}"),
            &format!("--kafka-topic={topic}"),
            &format!("--group-id=test-{id}"),
            &format!("--dlq-topic={topic}.dlq"),
            &format!("--redis-url={redis_url}"),
            &format!("--redis-key-prefix={prefix}"),
            &format!("--mongodb-uri={mongodb_uri}"),
            &format!("--mongodb-database={database}"),
            "--admin-listen=127.0.0.1:0",
        ])
        .unwrap();
        voteflow_consumer::launch(consumer_settings, prometheus::Registry::new(), shutdown.clone())
            .await
            .expect("start the consumer");
        tokio::spawn(async move {
            let _ = rest_server.stopped().await;
        });

        let redis = redis::Client::open(redis_url).unwrap().get_multiplexed_async_connection().await.unwrap();
        let mongo = mongodb::Client::with_uri_str(&mongodb_uri).await.unwrap();
        Self {
            front_url: format!("http://{}", front.addr),
            http: reqwest::Client::new(),
            topic,
            brokers,
            keys: TallyKeys::new(&prefix),
            redis,
            votes: mongo.database(&database).collection("votes"),
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

    pub(crate) async fn total(&self) -> i64 {
        self.redis.clone().get::<_, Option<i64>>(&self.keys.total).await.unwrap().unwrap_or(0)
    }

    pub(crate) async fn band_counts(&self) -> HashMap<String, i64> {
        self.redis.clone().hgetall(&self.keys.by_band).await.unwrap()
    }

    pub(crate) async fn logged(&self) -> u64 {
        self.votes.count_documents(doc! {}).await.unwrap()
    }

    /// Waits until Redis counts `expected` votes and MongoDB logs as many, then returns
    /// what each holds (so a test sees an overshoot too).
    pub(crate) async fn wait_for_counted(&self, expected: i64, within: Duration) -> (i64, u64) {
        let deadline = Instant::now() + within;
        loop {
            let (counted, logged) = (self.total().await, self.logged().await);
            if (counted >= expected && logged >= expected as u64) || Instant::now() > deadline {
                return (counted, logged);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many records the test topic holds, summed over partitions.
    pub(crate) fn kafka_records(&self) -> i64 {
        let consumer: BaseConsumer =
            rdkafka::ClientConfig::new().set("bootstrap.servers", &self.brokers).create().unwrap();
        (0..PARTITIONS)
            .map(|partition| {
                let (low, high) =
                    consumer.fetch_watermarks(&self.topic, partition, Duration::from_secs(5)).expect("watermarks");
                high - low
            })
            .sum()
    }
}
