//! Test support for the integration tests of every crate and for the tools: a real
//! consumer with its own topic, group, MongoDB database and Redis key prefix, readers of
//! what it wrote, the services' `/metrics` read, topics made and removed, and quiet logs. Servers come from KAFKA_BROKERS,
//! REDIS_URL and MONGODB_URI (`scripts/stack env`). No product crate depends on this one.

pub mod metrics;
pub mod secrets;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser as _;
use mongodb::bson::{Document, doc};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use redis::AsyncCommands as _;
use tokio_util::sync::CancellationToken;
use voteflow_consumer::settings::ConsumerSettings;
use voteflow_consumer::sink::tally::{REDIS_CONNECTION_TIMEOUT, REDIS_RESPONSE_TIMEOUT, TallyKeys};
use voteflow_consumer::sink::vote_log::COLLECTION;
use voteflow_service::settings::LogSettings;

/// Logs of the code under test, only when `TEST_LOG` is set, so a passing run stays quiet.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        voteflow_service::telemetry::init(&LogSettings {
            filter: "info,rocket=off,voteflow=debug".into(),
            format: "text".into(),
        });
    }
}

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

pub fn redis_url() -> String {
    env_or("REDIS_URL", "redis://127.0.0.1:6379/")
}

pub fn mongodb_uri() -> String {
    env_or("MONGODB_URI", "mongodb://127.0.0.1:27017/")
}

/// A Redis connection for checking what the pipeline wrote. It waits for an answer as
/// long as the consumer does: the client's default of 500 ms failed a test's plain GET
/// while the machine's neighbours took most of its CPU.
pub async fn checking_redis(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_CONNECTION_TIMEOUT))
        .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT));
    redis::Client::open(url)?.get_multiplexed_async_connection_with_config(&config).await
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

/// Creates a topic on `brokers` if it does not exist (production topics are created by
/// the deployment).
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&new_topic], &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Deletes topics (suite clean-up); a topic already gone is not an error.
pub async fn delete_topics(brokers: &str, topics: &[&str]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.delete_topics(topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((name, code)) => anyhow::bail!("cannot delete topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Creates a fresh topic (and its DLQ) for one test.
pub async fn create_topic(partitions: i32) -> String {
    let brokers = kafka_brokers();
    let topic = format!("test-{}.votes", unique_id());
    ensure_topic(&brokers, &topic, partitions).await.expect("create the test topic");
    ensure_topic(&brokers, &format!("{topic}.dlq"), 1).await.expect("create the test DLQ topic");
    topic
}

/// What a consumer group of one test topic wrote and committed, read as a test checks it:
/// its Redis counts under its key prefix, its vote log and its committed offsets.
pub struct GroupView {
    pub topic: String,
    pub group: String,
    pub keys: TallyKeys,
    pub votes: mongodb::Collection<Document>,
    redis: redis::aio::MultiplexedConnection,
}

/// A test's own consumer group, Redis key prefix and MongoDB database, from one fresh id.
pub struct GroupNames {
    pub group: String,
    pub prefix: String,
    pub database: String,
}

impl GroupNames {
    pub fn unique() -> Self {
        let id = unique_id();
        Self { group: format!("test-{id}"), prefix: format!("test:{id}:"), database: format!("test_{id}") }
    }
}

/// A running consumer of one test topic, stopped when dropped; its group's sinks are read
/// through [`GroupView`] (`consumer.total()`).
pub struct IsolatedConsumer {
    view: GroupView,
    /// Where its /metrics is served.
    pub admin: std::net::SocketAddr,
    stopped: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    shutdown: CancellationToken,
}

impl std::ops::Deref for IsolatedConsumer {
    type Target = GroupView;

    fn deref(&self) -> &GroupView {
        &self.view
    }
}

impl Drop for IsolatedConsumer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl IsolatedConsumer {
    /// Starts a consumer of `topic` writing to `database` (two consumers may share one),
    /// with its own group and Redis key prefix.
    pub async fn start(topic: &str, database: &str) -> Self {
        let names = GroupNames::unique();
        Self::start_in(topic, database, &names.group, &names.prefix).await
    }

    /// Starts a consumer of `topic` in consumer group `group`, writing to `database` and
    /// to the Redis keys under `prefix`: replicas share all three.
    pub async fn start_in(topic: &str, database: &str, group: &str, prefix: &str) -> Self {
        Self::start_with(topic, database, group, prefix, &redis_url(), &mongodb_uri(), &[]).await
    }

    /// Like [`Self::start_in`], with the consumer reaching Redis at `consumer_redis_url` and
    /// MongoDB at `consumer_mongodb_uri` (a proxy, say), and given more of its `flags`
    /// (`--batch-max-wait-ms=..`); the test's own reads still go to REDIS_URL and MONGODB_URI.
    pub async fn start_with(
        topic: &str,
        database: &str,
        group: &str,
        prefix: &str,
        consumer_redis_url: &str,
        consumer_mongodb_uri: &str,
        flags: &[&str],
    ) -> Self {
        let mut args = vec![
            "consumer".to_owned(),
            format!("--kafka-brokers={}", kafka_brokers()),
            format!("--kafka-topic={topic}"),
            format!("--group-id={group}"),
            format!("--dlq-topic={topic}.dlq"),
            format!("--redis-url={consumer_redis_url}"),
            format!("--redis-key-prefix={prefix}"),
            format!("--mongodb-uri={consumer_mongodb_uri}"),
            format!("--mongodb-database={database}"),
            "--admin-listen=127.0.0.1:0".to_owned(),
        ];
        args.extend(flags.iter().map(|flag| (*flag).to_owned()));
        let settings = ConsumerSettings::try_parse_from(args).expect("consumer settings");
        let shutdown = CancellationToken::new();
        let running = voteflow_consumer::launch(settings, prometheus::Registry::new(), shutdown.clone())
            .await
            .expect("start the consumer");
        let view = GroupView::new(topic, group, prefix, database).await;
        Self { view, admin: running.admin_addr, stopped: Some(running.stopped), shutdown }
    }

    /// Shuts it down as SIGTERM would, and waits until it has committed and left its group.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(stopped) = self.stopped.take() {
            stopped.await.expect("the consumer task").expect("a clean stop");
        }
    }

    /// One sample of its Prometheus metrics, e.g. `voteflow_consumer_duplicates_total{kind="retry"}`;
    /// a series it does not export fails the test.
    pub async fn metric(&self, series: &str) -> f64 {
        metric(self.admin, series).await.unwrap_or_else(|| panic!("{series} is not in the consumer's /metrics"))
    }
}

impl GroupView {
    /// The view of `group`'s work on `topic`: Redis keys under `prefix`, the vote log in
    /// `database` (read at REDIS_URL and MONGODB_URI).
    pub async fn new(topic: &str, group: &str, prefix: &str, database: &str) -> Self {
        let redis = checking_redis(&redis_url()).await.unwrap();
        let mongo = mongodb::Client::with_uri_str(mongodb_uri()).await.unwrap();
        Self {
            topic: topic.to_owned(),
            group: group.to_owned(),
            keys: TallyKeys::new(prefix),
            votes: mongo.database(database).collection(COLLECTION),
            redis,
        }
    }

    /// Records of the topic its group has committed, summed over the partitions.
    pub fn committed(&self) -> i64 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka_brokers())
            .set("group.id", &self.group)
            .create()
            .expect("a Kafka client");
        let metadata = consumer.fetch_metadata(Some(&self.topic), Duration::from_secs(5)).expect("topic metadata");
        let mut partitions = rdkafka::TopicPartitionList::new();
        for partition in metadata.topics()[0].partitions() {
            partitions.add_partition(&self.topic, partition.id());
        }
        let committed = consumer.committed_offsets(partitions, Duration::from_secs(5)).expect("committed offsets");
        committed.elements().iter().filter_map(|element| element.offset().to_raw()).filter(|offset| *offset > 0).sum()
    }

    /// Waits until its group has committed `expected` records (or `within` passes).
    pub async fn wait_for_committed(&self, expected: i64, within: Duration) -> i64 {
        let deadline = Instant::now() + within;
        loop {
            let committed = self.committed();
            if committed >= expected || Instant::now() > deadline {
                return committed;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
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

/// The text of a service's `/metrics`, served at `addr`.
pub async fn metrics_text(addr: std::net::SocketAddr) -> String {
    get(addr, "/metrics").await.expect("the admin port").1
}

/// `GET path` from the HTTP server at `addr`: the status and the whole answer (head and
/// body); `None` when nothing answers.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    let status = answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    Some((status, answer))
}

/// One sample of the service's metrics at `addr` (`name{labels}` exactly as exported),
/// `None` when it exports no such series.
pub async fn metric(addr: std::net::SocketAddr, series: &str) -> Option<f64> {
    metrics::value(&metrics_text(addr).await, series)
}
