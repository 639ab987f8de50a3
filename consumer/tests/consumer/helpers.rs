//! Runs a real consumer for one test and writes records straight to its topic.

use std::time::{Duration, Instant};

use clap::Parser as _;
use mongodb::bson::{Document, doc};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use redis::AsyncCommands as _;
use tokio_util::sync::CancellationToken;
use voteflow_consumer::settings::ConsumerSettings;
use voteflow_consumer::sink::tally::TallyKeys;
use voteflow_proto::record::PATH_HEADER;
use voteflow_proto::{AcceptedRecord, Vote, VoteJson, VotePath};
use voteflow_runtime::kafka::ensure_topic;
use voteflow_runtime::settings::KafkaSettings;

pub(crate) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub(crate) fn unique_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A topic with its DLQ, and a producer writing raw records to it.
pub(crate) struct TestTopic {
    pub(crate) name: String,
    pub(crate) brokers: String,
    producer: FutureProducer,
}

impl TestTopic {
    pub(crate) async fn create() -> Self {
        voteflow_runtime::telemetry::init_for_tests();
        let brokers = env_or("KAFKA_BROKERS", "127.0.0.1:9092");
        let name = format!("test-{}.votes", unique_id());
        let kafka = KafkaSettings { brokers: brokers.clone(), topic: name.clone() };
        ensure_topic(&kafka, &name, 3).await.expect("create the test topic");
        ensure_topic(&kafka, &format!("{name}.dlq"), 1).await.expect("create the DLQ topic");
        let producer = rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
        Self { name, brokers, producer }
    }

    pub(crate) async fn send(&self, key: &str, payload: &[u8], path: Option<&str>) {
        let mut headers = OwnedHeaders::new();
        if let Some(path) = path {
            headers = headers.insert(Header { key: PATH_HEADER, value: Some(path) });
        }
        let record = FutureRecord::to(&self.name).key(key).payload(payload).headers(headers);
        self.producer.send(record, Duration::from_secs(5)).await.expect("Kafka acknowledged");
    }

    pub(crate) async fn send_vote(&self, band: &str) -> AcceptedRecord {
        let json: VoteJson =
            serde_json::from_value(serde_json::json!({"band": band, "album": "Test Album", "year": 2000, "rank": 5}))
                .unwrap();
        let record = AcceptedRecord {
            vote: Vote::try_from(json).unwrap(),
            accepted_at: chrono::Utc::now(),
            path: VotePath::Rest,
        };
        self.send(&record.key(), &record.encode_payload(), Some("rest")).await;
        record
    }
}

/// A running consumer with its own group, database and key prefix.
pub(crate) struct TestConsumer {
    pub(crate) keys: TallyKeys,
    pub(crate) votes: mongodb::Collection<Document>,
    redis: redis::aio::MultiplexedConnection,
    shutdown: CancellationToken,
}

impl Drop for TestConsumer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestConsumer {
    /// Starts a consumer of `topic`; `database` lets two consumers share one vote log.
    pub(crate) async fn start(topic: &TestTopic, database: &str) -> Self {
        let id = unique_id();
        let redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379/");
        let mongodb_uri = env_or("MONGODB_URI", "mongodb://127.0.0.1:27017/");
        let prefix = format!("test:{id}:");
        let settings = ConsumerSettings::try_parse_from([
            "consumer",
            &format!("--kafka-brokers={}", topic.brokers),
            &format!("--kafka-topic={}", topic.name),
            &format!("--group-id=test-{id}"),
            &format!("--dlq-topic={}.dlq", topic.name),
            &format!("--redis-url={redis_url}"),
            &format!("--redis-key-prefix={prefix}"),
            &format!("--mongodb-uri={mongodb_uri}"),
            &format!("--mongodb-database={database}"),
            "--admin-listen=127.0.0.1:0",
        ])
        .unwrap();
        let shutdown = CancellationToken::new();
        voteflow_consumer::launch(settings, prometheus::Registry::new(), shutdown.clone())
            .await
            .expect("start the consumer");
        let redis = redis::Client::open(redis_url).unwrap().get_multiplexed_async_connection().await.unwrap();
        let mongo = mongodb::Client::with_uri_str(&mongodb_uri).await.unwrap();
        Self { keys: TallyKeys::new(&prefix), votes: mongo.database(database).collection("votes"), redis, shutdown }
    }

    pub(crate) async fn total(&self) -> i64 {
        self.redis.clone().get::<_, Option<i64>>(&self.keys.total).await.unwrap().unwrap_or(0)
    }

    pub(crate) async fn logged(&self) -> u64 {
        self.votes.count_documents(doc! {}).await.unwrap()
    }

    /// Waits until Redis counts at least `expected`, then returns the count.
    pub(crate) async fn wait_for_total(&self, expected: i64, within: Duration) -> i64 {
        let deadline = Instant::now() + within;
        loop {
            let total = self.total().await;
            if total >= expected || Instant::now() > deadline {
                return total;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
