//! Test support, for the integration tests of every crate: a real consumer with its own
//! topic, group, MongoDB database and Redis key prefix, and readers of what it wrote.
//! Servers come from KAFKA_BROKERS, REDIS_URL and MONGODB_URI (`scripts/stack env`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser as _;
use mongodb::bson::{Document, doc};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use redis::AsyncCommands as _;
use tokio_util::sync::CancellationToken;
use voteflow_runtime::kafka::ensure_topic;
use voteflow_runtime::settings::KafkaSettings;

use crate::settings::ConsumerSettings;
use crate::sink::tally::TallyKeys;

/// The value of an env var, or the local stack's default.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A short random id for test resource names.
pub fn unique_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

pub fn kafka_brokers() -> String {
    env_or("KAFKA_BROKERS", "127.0.0.1:9092")
}

/// An address where nothing listens: a port bound and released at once.
pub fn dead_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port")
}

/// How many records `topic` holds, summed over its partitions.
pub fn topic_records(topic: &str) -> i64 {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", kafka_brokers()).create().expect("a Kafka client");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).expect("topic metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|partition| {
            let (low, high) =
                consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(5)).expect("watermarks");
            high - low
        })
        .sum()
}

/// Creates a fresh topic (and its DLQ) for one test.
pub async fn create_topic(partitions: i32) -> String {
    let brokers = kafka_brokers();
    let topic = format!("test-{}.votes", unique_id());
    let kafka = KafkaSettings { brokers, topic: topic.clone() };
    ensure_topic(&kafka, &topic, partitions).await.expect("create the test topic");
    ensure_topic(&kafka, &format!("{topic}.dlq"), 1).await.expect("create the test DLQ topic");
    topic
}

/// A running consumer of one test topic, stopped when dropped.
pub struct IsolatedConsumer {
    pub topic: String,
    pub keys: TallyKeys,
    pub votes: mongodb::Collection<Document>,
    redis: redis::aio::MultiplexedConnection,
    shutdown: CancellationToken,
}

impl Drop for IsolatedConsumer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl IsolatedConsumer {
    /// Starts a consumer of `topic` writing to `database` (two consumers may share one).
    pub async fn start(topic: &str, database: &str) -> Self {
        let id = unique_id();
        let redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379/");
        let mongodb_uri = env_or("MONGODB_URI", "mongodb://127.0.0.1:27017/");
        let prefix = format!("test:{id}:");
        let settings = ConsumerSettings::try_parse_from([
            "consumer",
            &format!("--kafka-brokers={}", kafka_brokers()),
            &format!("--kafka-topic={topic}"),
            &format!("--group-id=test-{id}"),
            &format!("--dlq-topic={topic}.dlq"),
            &format!("--redis-url={redis_url}"),
            &format!("--redis-key-prefix={prefix}"),
            &format!("--mongodb-uri={mongodb_uri}"),
            &format!("--mongodb-database={database}"),
            "--admin-listen=127.0.0.1:0",
        ])
        .expect("consumer settings");
        let shutdown = CancellationToken::new();
        crate::launch(settings, prometheus::Registry::new(), shutdown.clone()).await.expect("start the consumer");
        let redis = redis::Client::open(redis_url).unwrap().get_multiplexed_async_connection().await.unwrap();
        let mongo = mongodb::Client::with_uri_str(&mongodb_uri).await.unwrap();
        Self {
            topic: topic.to_owned(),
            keys: TallyKeys::new(&prefix),
            votes: mongo.database(database).collection("votes"),
            redis,
            shutdown,
        }
    }

    /// Votes counted in Redis.
    pub async fn total(&self) -> i64 {
        self.redis.clone().get::<_, Option<i64>>(&self.keys.total).await.unwrap().unwrap_or(0)
    }

    pub async fn band_counts(&self) -> HashMap<String, i64> {
        self.redis.clone().hgetall(&self.keys.by_band).await.unwrap()
    }

    pub async fn path_counts(&self) -> HashMap<String, i64> {
        self.redis.clone().hgetall(&self.keys.by_path).await.unwrap()
    }

    /// Documents in the vote log.
    pub async fn logged(&self) -> u64 {
        self.votes.count_documents(doc! {}).await.unwrap()
    }

    /// Waits until Redis counts and MongoDB logs at least `expected` votes (or `within`
    /// passes), then returns both, so a test sees an overshoot too.
    pub async fn wait_for_counted(&self, expected: i64, within: Duration) -> (i64, u64) {
        let deadline = Instant::now() + within;
        loop {
            let (counted, logged) = (self.total().await, self.logged().await);
            if (counted >= expected && logged >= expected as u64) || Instant::now() > deadline {
                return (counted, logged);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
