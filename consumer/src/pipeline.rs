//! The consumer's batch loop: receive up to `batch_max_votes` records (or what arrived
//! within `batch_max_wait` of the first), decode them, then write the batch to the DLQ
//! (undecodable records), MongoDB, and Redis, in that order, each retried with backoff
//! until it succeeds, and only then commit the batch's offsets.
//!
//! Guarantee: at least once. No offset is committed before every sink has the batch, so
//! a crash, restart or rebalance redelivers at worst the uncommitted batches. MongoDB is
//! written first because it is idempotent by vote_id; Redis is written once per batch,
//! after the log, so a failed Redis write never makes the log step repeat a count. While a
//! sink is down the loop takes no new records and commits nothing; it resumes by itself.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus::Registry;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use voteflow_proto::AcceptedRecord;
use voteflow_proto::record::PATH_HEADER;
use voteflow_runtime::admin;
use voteflow_runtime::health::Readiness;

use crate::dead_letters::DeadLetters;
use crate::events::ConsumerMetrics;
use crate::settings::ConsumerSettings;
use crate::sink::Consumed;
use crate::sink::tally::Tally;
use crate::sink::vote_log::VoteLog;

const KAFKA: &str = "kafka";
const REDIS: &str = "redis";
const MONGO: &str = "mongo";
const DLQ: &str = "kafka_dlq";
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A launched consumer.
pub struct Running {
    /// Where /healthz, /readyz and /metrics are served.
    pub admin_addr: SocketAddr,
    /// Finishes when the consumer has drained, committed and left the group.
    pub stopped: JoinHandle<anyhow::Result<()>>,
}

/// Starts the admin server and the batch loop; returns once the admin server listens.
pub async fn launch(
    settings: ConsumerSettings,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(settings.admin_listen)
        .await
        .with_context(|| format!("Failed to bind the admin address {}", settings.admin_listen))?;
    let admin_addr = listener.local_addr()?;
    let metrics = ConsumerMetrics::register(&registry)?;
    let readiness = Readiness::with_checks(&[KAFKA, REDIS, MONGO]);
    tokio::spawn(admin::serve(listener, registry, readiness.clone(), shutdown.clone()));
    let stopped = tokio::spawn(run(settings, metrics, readiness, shutdown));
    Ok(Running { admin_addr, stopped })
}

/// A record as received: decoded, or kept whole for the dead-letter topic.
enum Received {
    Vote(Consumed),
    Undecodable { message: OwnedMessage, reason: String, kind: &'static str },
}

struct Sinks {
    tally: Tally,
    log: VoteLog,
    dead_letters: DeadLetters,
    metrics: ConsumerMetrics,
    readiness: Readiness,
    shutdown: CancellationToken,
}

async fn run(
    settings: ConsumerSettings,
    metrics: ConsumerMetrics,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let retry = Retry { metrics: &metrics, readiness: &readiness, shutdown: &shutdown };
    let Some(tally) = retry.until_ok(REDIS, || Tally::connect(&settings.redis_url, &settings.redis_key_prefix)).await
    else {
        return Ok(());
    };
    let log = VoteLog::connect(&settings.mongodb_uri, &settings.mongodb_database)
        .await
        .context("Failed to parse MONGODB_URI")?;
    if retry.until_ok(MONGO, || log.ensure_indexes()).await.is_none() {
        return Ok(());
    }
    let dead_letters = DeadLetters::new(&settings.kafka.brokers, &settings.dlq_topic)?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &settings.kafka.brokers)
        .set("group.id", &settings.group_id)
        .set("client.id", "voteflow-consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "45000")
        .create()
        .context("Failed to create the Kafka consumer")?;
    consumer.subscribe(&[&settings.kafka.topic]).context("Failed to subscribe")?;
    let consumer = Arc::new(consumer);
    tokio::spawn(watch_kafka(consumer.clone(), settings.kafka.topic.clone(), readiness.clone(), shutdown.clone()));
    tracing::info!(topic = %settings.kafka.topic, group = %settings.group_id, "consumer started");

    let sinks = Sinks { tally, log, dead_letters, metrics, readiness, shutdown: shutdown.clone() };
    let mut processed: BTreeMap<i32, i64> = BTreeMap::new();
    while let Some(batch) = collect(&consumer, &settings, &shutdown).await {
        let offsets = next_offsets(&batch);
        if !sinks.write(batch).await {
            tracing::warn!("shutdown while a sink was down; the batch in hand is left for redelivery");
            break;
        }
        commit(&consumer, &settings.kafka.topic, &offsets, CommitMode::Async);
        processed.extend(offsets);
    }
    // A last synchronous commit, so the final batches' asynchronous commits cannot be lost.
    commit(&consumer, &settings.kafka.topic, &processed, CommitMode::Sync);
    leave_group(consumer, settings.shutdown_deadline()).await;
    tracing::info!("consumer stopped");
    Ok(())
}

/// Waits for the first record (or shutdown), then takes what arrives until the batch is
/// full or `batch_max_wait` has passed. `None` means shutdown with nothing in hand.
async fn collect(
    consumer: &StreamConsumer,
    settings: &ConsumerSettings,
    shutdown: &CancellationToken,
) -> Option<Vec<Received>> {
    let mut batch = Vec::new();
    let first = loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            received = consumer.recv() => match received {
                Ok(message) => break message,
                Err(error) => {
                    tracing::warn!(%error, "Kafka consumer error; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
        }
    };
    batch.push(receive(&first));
    drop(first);
    let deadline = tokio::time::Instant::now() + settings.batch_max_wait();
    while batch.len() < settings.batch_max_votes {
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(deadline) => break,
            received = consumer.recv() => match received {
                Ok(message) => batch.push(receive(&message)),
                Err(error) => {
                    tracing::warn!(%error, "Kafka consumer error while filling a batch");
                    break;
                }
            },
        }
    }
    Some(batch)
}

fn receive(message: &BorrowedMessage<'_>) -> Received {
    let path = message
        .headers()
        .and_then(|headers| headers.iter().find(|header| header.key == PATH_HEADER).and_then(|header| header.value));
    match AcceptedRecord::decode(message.payload(), path) {
        Ok(record) => Received::Vote(Consumed { record, partition: message.partition(), offset: message.offset() }),
        Err(error) => {
            let kind = match error {
                voteflow_proto::RecordError::InvalidVote(_) => "invalid_vote",
                voteflow_proto::RecordError::BadPath => "bad_path",
                _ => "undecodable",
            };
            Received::Undecodable { message: message.detach(), reason: error.to_string(), kind }
        }
    }
}

/// Per partition, the offset to commit after this batch: one past its last record.
fn next_offsets(batch: &[Received]) -> BTreeMap<i32, i64> {
    let mut offsets = BTreeMap::new();
    for received in batch {
        let (partition, offset) = match received {
            Received::Vote(consumed) => (consumed.partition, consumed.offset),
            Received::Undecodable { message, .. } => (message.partition(), message.offset()),
        };
        let next = offsets.entry(partition).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
    }
    offsets
}

fn commit(consumer: &StreamConsumer, topic: &str, offsets: &BTreeMap<i32, i64>, mode: CommitMode) {
    if offsets.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        if let Err(error) = list.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
            tracing::error!(%error, partition, "cannot build the commit list");
            return;
        }
    }
    if let Err(error) = consumer.commit(&list, mode) {
        // Not fatal: the records are in the sinks and a redelivery is absorbed there.
        tracing::warn!(%error, "offset commit failed; those records may be delivered again");
    }
}

/// Leaves the group within `deadline`. librdkafka's destroy has been seen to block for
/// tens of seconds, so it runs on a blocking thread that the shutdown does not wait past.
async fn leave_group(consumer: Arc<StreamConsumer>, deadline: Duration) {
    let closing = tokio::task::spawn_blocking(move || {
        consumer.unsubscribe();
        drop(consumer);
    });
    if tokio::time::timeout(deadline, closing).await.is_err() {
        tracing::warn!(?deadline, "Kafka consumer did not close within the deadline; leaving it behind");
    }
}

async fn watch_kafka(consumer: Arc<StreamConsumer>, topic: String, readiness: Readiness, shutdown: CancellationToken) {
    loop {
        let (probe, topic_name) = (consumer.clone(), topic.clone());
        let reachable = tokio::task::spawn_blocking(move || {
            probe.fetch_metadata(Some(&topic_name), Duration::from_secs(2)).is_ok_and(|metadata| {
                metadata.topics().iter().any(|t| t.error().is_none() && !t.partitions().is_empty())
            })
        })
        .await
        .unwrap_or(false);
        readiness.set(KAFKA, reachable);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {},
        }
    }
}

impl Sinks {
    /// Writes a batch to every sink, retrying each step until it succeeds. `false` when
    /// shutdown came while a sink was failing (nothing further is written then).
    async fn write(&self, batch: Vec<Received>) -> bool {
        let started = Instant::now();
        let records = batch.len();
        let mut votes = Vec::with_capacity(batch.len());
        let mut undecodable = Vec::new();
        for received in batch {
            match received {
                Received::Vote(consumed) => votes.push(consumed),
                Received::Undecodable { message, reason, kind } => undecodable.push((message, reason, kind)),
            }
        }
        let retry = Retry { metrics: &self.metrics, readiness: &self.readiness, shutdown: &self.shutdown };
        for (message, reason, kind) in &undecodable {
            tracing::warn!(partition = message.partition(), offset = message.offset(), %reason, "record sent to the dead-letter topic");
            if retry.until_ok(DLQ, || self.dead_letters.send(message, reason)).await.is_none() {
                return false;
            }
            self.metrics.dead_letters.with_label_values(&[kind]).inc();
        }
        let Some(duplicates) = retry.until_ok(MONGO, || self.log.insert(&votes)).await else {
            return false;
        };
        if retry.until_ok(REDIS, || self.tally.apply(&votes)).await.is_none() {
            return false;
        }
        self.metrics.log_duplicates.inc_by(duplicates as u64);
        for consumed in &votes {
            self.metrics.votes.with_label_values(&[consumed.record.path.as_str()]).inc();
        }
        self.metrics.batches.inc();
        self.metrics.batch_size.observe(records as f64);
        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        tracing::debug!(records, votes = votes.len(), duplicates, "batch written");
        true
    }
}

struct Retry<'a> {
    metrics: &'a ConsumerMetrics,
    readiness: &'a Readiness,
    shutdown: &'a CancellationToken,
}

impl Retry<'_> {
    /// Runs `operation` until it succeeds, backing off up to [`MAX_BACKOFF`] between
    /// tries; `None` when shutdown comes while it is failing.
    async fn until_ok<T, E, F, Fut>(&self, sink: &'static str, mut operation: F) -> Option<T>
    where
        E: Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match operation().await {
                Ok(value) => {
                    if sink != DLQ {
                        self.readiness.set(sink, true);
                    }
                    return Some(value);
                }
                Err(error) => {
                    self.metrics.sink_errors.with_label_values(&[sink]).inc();
                    if sink != DLQ {
                        self.readiness.set(sink, false);
                    }
                    tracing::warn!(sink, %error, retry_in = ?backoff, "sink write failed; retrying");
                    tokio::select! {
                        () = self.shutdown.cancelled() => return None,
                        () = tokio::time::sleep(backoff) => {},
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
