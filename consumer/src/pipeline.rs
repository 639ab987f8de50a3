//! The consumer's batch loop: receive up to `batch_max_votes` records (or what arrived
//! within `batch_max_wait` of the first), decode them, then write the batch to the DLQ
//! (undecodable records), MongoDB, and Redis, in that order, each retried with backoff
//! until it succeeds, and only then commit the batch's offsets.
//!
//! Guarantee: exactly-once effect. Kafka delivers at least once (no offset is committed
//! before every sink has the batch, so a crash, restart or rebalance redelivers at worst
//! the uncommitted records), and each sink absorbs a redelivery: the vote log stores a
//! vote_id once ([`crate::sink::vote_log`]), the tally counts a Kafka record once
//! ([`crate::sink::tally`]), and a vote_id re-sent by a client is never counted twice
//! (the log remembers which record it came from first).
//!
//! Rebalances: records are only polled between batches, so a batch being written is
//! always finished before this member acknowledges a revocation; records of a revoked
//! partition that were received but not yet written are dropped (the new owner reads
//! them from the committed offset), and their offsets are never committed by this member.
//! After an assignment, counting resumes right after the last offset Redis counted (kept
//! atomically with the counts; a partition's beginning when Redis knows none), so a Redis
//! that lost recent writes is filled in again.
//! While a sink is down the loop polls nothing and commits nothing, and resumes by itself.
//! Shutdown finishes the batch in hand, commits, and leaves the group within the deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus::Registry;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message, OwnedMessage};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use voteflow_domain::AcceptedRecord;
use voteflow_domain::record::PATH_HEADER;
use voteflow_service::admin;
use voteflow_service::health::{self, Readiness};
use voteflow_service::kafka::{KAFKA_CHECK, blocking_probe, topic_answers};
use voteflow_service::process::Running;

use crate::dead_letters::DeadLetters;
use crate::events::ConsumerMetrics;
use crate::settings::ConsumerSettings;
use crate::sink::Consumed;
use crate::sink::tally::Tally;
use crate::sink::vote_log::VoteLog;

const KAFKA: &str = KAFKA_CHECK;
const REDIS: &str = "redis";
const MONGO: &str = "mongo";
const DLQ: &str = "kafka_dlq";
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts the admin server and the batch loop; returns once the admin server listens.
/// `stopped` finishes when the consumer has drained, committed and left the group.
pub async fn launch(
    settings: ConsumerSettings,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    settings.validate().map_err(anyhow::Error::msg).context("Invalid consumer settings")?;
    let listener = TcpListener::bind(settings.admin_listen)
        .await
        .with_context(|| format!("Failed to bind the admin address {}", settings.admin_listen))?;
    let admin_addr = listener.local_addr()?;
    let metrics = ConsumerMetrics::register(&registry)?;
    let readiness = Readiness::with_checks(&[KAFKA, REDIS, MONGO]);
    tracing::info!(
        brokers = %settings.kafka.brokers,
        topic = %settings.kafka.topic,
        redis = %settings.redis_url,
        mongodb = %settings.mongodb_uri,
        "consumer counts into Redis and logs into MongoDB"
    );
    tokio::spawn(admin::serve(listener, registry, readiness.clone(), shutdown.clone()));
    let stopped = tokio::spawn(run(settings, metrics, readiness, shutdown));
    Ok(Running { addr: admin_addr, admin_addr, stopped })
}

/// A record as received: decoded, or kept whole for the dead-letter topic.
enum Received {
    Vote(Consumed),
    Undecodable { message: OwnedMessage, reason: String, kind: &'static str },
}

/// Tells the batch loop which partitions were taken away. librdkafka calls it inside
/// `recv`, so it runs between the loop's own steps, never during a sink write.
struct GroupContext {
    /// Records behind the end of the partitions this member owns (librdkafka statistics).
    lag: prometheus::IntGauge,
    revocations: AtomicU64,
    revoked: Mutex<BTreeSet<i32>>,
    assignments: AtomicU64,
    assigned: Mutex<BTreeSet<i32>>,
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .filter(|partition| partition.partition >= 0 && partition.consumer_lag >= 0)
            .map(|partition| partition.consumer_lag)
            .sum();
        self.lag.set(lag);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                let revoked: Vec<i32> = partitions.elements().iter().map(|p| p.partition()).collect();
                tracing::info!(?revoked, "partitions revoked");
                self.revoked.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend(revoked);
                self.revocations.fetch_add(1, Ordering::SeqCst);
            }
            Rebalance::Assign(partitions) => {
                let assigned: Vec<i32> = partitions.elements().iter().map(|p| p.partition()).collect();
                tracing::info!(?assigned, "partitions assigned");
                self.assigned.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend(assigned);
                self.assignments.fetch_add(1, Ordering::SeqCst);
            }
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance error"),
        }
    }
}

impl GroupContext {
    fn new(lag: prometheus::IntGauge) -> Self {
        Self {
            lag,
            revocations: AtomicU64::new(0),
            revoked: Mutex::default(),
            assignments: AtomicU64::new(0),
            assigned: Mutex::default(),
        }
    }

    fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::SeqCst)
    }

    fn take_revoked(&self) -> BTreeSet<i32> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn assignments(&self) -> u64 {
        self.assignments.load(Ordering::SeqCst)
    }

    fn take_assigned(&self) -> BTreeSet<i32> {
        std::mem::take(&mut *self.assigned.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

type GroupConsumer = StreamConsumer<GroupContext>;

struct Sinks {
    topic: String,
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
    let Some(tally) =
        retry.until_ok(REDIS, || Tally::connect(settings.redis_url.expose(), &settings.redis_key_prefix)).await
    else {
        return Ok(());
    };
    tokio::spawn(close_history_every(tally.clone(), shutdown.clone()));
    let log = VoteLog::connect(settings.mongodb_uri.expose(), &settings.mongodb_database)
        .await
        .context("Failed to parse MONGODB_URI")?;
    if retry.until_ok(MONGO, || log.ensure_indexes()).await.is_none() {
        return Ok(());
    }
    let dead_letters = DeadLetters::new(&settings.kafka.brokers, &settings.dlq_topic)?;
    // The dead-letter producer has written nothing yet, and nothing failed: up until a send fails.
    metrics.sink_up.with_label_values(&[DLQ]).set(1);
    let consumer: GroupConsumer = ClientConfig::new()
        .set("bootstrap.servers", &settings.kafka.brokers)
        .set("group.id", &settings.group_id)
        .set("client.id", "voteflow-consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", settings.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", (settings.session_timeout_ms / 3).min(3000).to_string())
        // librdkafka's statistics every 5 s feed the lag gauge.
        .set("statistics.interval.ms", "5000")
        // Bounded prefetch: with a backlog librdkafka's defaults (100 000 records per
        // partition, 64 MiB, 50 MiB fetches) took the consumer's memory far past its
        // limit. 5 000 records per partition is still several 1 000-vote batches ahead.
        .set("queued.min.messages", "5000")
        .set("queued.max.messages.kbytes", "8192")
        .set("fetch.max.bytes", "4194304")
        // Following a trickle, librdkafka's fetch.min.bytes=1 answered each fetch with a
        // few records and the next fetch went out at once, which cost the broker several
        // times the CPU per vote; holding a fetch up to 25 ms for 64 KiB avoids that.
        .set("fetch.min.bytes", "65536")
        .set("fetch.wait.max.ms", "25")
        // With a backlog the prefetch queue passes the bounds above, and librdkafka then
        // postpones each partition's next fetch by this long (its default is a second),
        // so the queue ran dry (docs/decisions/0006-fetch-backoff-10ms.md).
        .set("fetch.queue.backoff.ms", "10")
        .create_with_context(GroupContext::new(metrics.lag.clone()))
        .context("Failed to create the Kafka consumer")?;
    consumer.subscribe(&[&settings.kafka.topic]).context("Failed to subscribe")?;
    let consumer = Arc::new(consumer);
    tokio::spawn(watch_kafka(consumer.clone(), settings.kafka.topic.clone(), readiness.clone(), shutdown.clone()));
    tracing::info!(topic = %settings.kafka.topic, group = %settings.group_id, "consumer started");

    let topic = settings.kafka.topic.clone();
    let sinks =
        Sinks { topic: topic.clone(), tally, log, dead_letters, metrics, readiness, shutdown: shutdown.clone() };
    // Per partition still owned, the offset after the last record written to the sinks.
    let mut processed: BTreeMap<i32, i64> = BTreeMap::new();
    let mut fatal = None;
    let mut assignments_seen = 0;
    loop {
        let batch = match collect(&consumer, &settings, &sinks, &mut assignments_seen, &shutdown).await {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(error) => {
                fatal = Some(error);
                break;
            }
        };
        // Offsets of partitions revoked while the batch was filling are not ours to commit.
        processed.retain(|partition, _| !batch.revoked.contains(partition));
        if batch.records.is_empty() {
            sinks.metrics.records_in_hand.set(0);
            continue;
        }
        let offsets = next_offsets(&batch.records);
        if !sinks.write(batch.records).await {
            tracing::warn!("shutdown while a sink was down; the batch in hand is left for redelivery");
            break;
        }
        commit(&consumer, &topic, &offsets, CommitMode::Async);
        sinks.metrics.records_in_hand.set(0);
        processed.extend(offsets);
    }
    close(consumer, topic, processed, settings.shutdown_deadline()).await;
    tracing::info!("consumer stopped");
    match fatal {
        // The process exits non-zero and its supervisor starts a fresh one; what was not
        // committed is redelivered to whoever owns the partitions next.
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// What one round of polling gave: records to write, and partitions revoked meanwhile.
struct Batch {
    records: Vec<Received>,
    revoked: BTreeSet<i32>,
}

impl Batch {
    /// Applies revocations that happened before the record about to be pushed: records in
    /// hand from those partitions are dropped, as the new owner will read them again.
    fn note_revocations(&mut self, consumer: &GroupConsumer, seen: &mut u64) {
        let now = consumer.context().revocations();
        if now == *seen {
            return;
        }
        *seen = now;
        let revoked = consumer.context().take_revoked();
        let before = self.records.len();
        self.records.retain(|received| !revoked.contains(&received.partition()));
        if self.records.len() < before {
            tracing::info!(dropped = before - self.records.len(), ?revoked, "records of revoked partitions dropped");
        }
        self.revoked.extend(revoked);
    }
}

/// Waits for the first record (or shutdown), then takes what arrives until the batch is
/// full or `batch_max_wait` has passed. `None` means shutdown with nothing in hand; an
/// error, a fatal Kafka error (the client is unusable, only a new process helps).
async fn collect(
    consumer: &GroupConsumer,
    settings: &ConsumerSettings,
    sinks: &Sinks,
    assignments_seen: &mut u64,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Batch>> {
    let in_hand = &sinks.metrics.records_in_hand;
    let mut errors_logged_at: Option<Instant> = None;
    let waiting = Instant::now();
    let first = loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(None),
            // An assignment arrives inside `recv` without a record; its partitions must be
            // positioned before any record can come (dropping `recv` loses nothing).
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                start_at_applied(consumer, sinks, assignments_seen).await;
            }
            received = consumer.recv() => match received {
                Ok(message) => {
                    // A record from before a repositioning comes again from the new position.
                    if !start_at_applied(consumer, sinks, assignments_seen).await.contains(&message.partition()) {
                        break message;
                    }
                }
                Err(error) => {
                    if let Some((code, reason)) = consumer.client().fatal_error() {
                        tracing::error!(?code, %reason, "fatal Kafka consumer error; stopping");
                        anyhow::bail!("fatal Kafka consumer error {code:?}: {reason}");
                    }
                    // librdkafka reports each failed connection attempt as an event and
                    // recovers by itself; drain them at once (sleeping per event let a
                    // broker outage's backlog hold up the next rebalance for minutes).
                    if errors_logged_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
                        tracing::warn!(%error, "Kafka consumer error (librdkafka retries by itself)");
                        errors_logged_at = Some(Instant::now());
                    }
                }
            },
        }
    };
    // Revocations before the first record concern only offsets of earlier batches. The
    // rebalance callback runs inside `recv`, on this task, so these two reads agree.
    let mut revocations_seen = consumer.context().revocations();
    let mut batch = Batch { records: Vec::new(), revoked: consumer.context().take_revoked() };
    batch.records.push(receive(&first));
    in_hand.set(1);
    drop(first);
    sinks.metrics.stage_seconds.wait.observe(waiting.elapsed().as_secs_f64());
    let filling = Instant::now();
    let deadline = tokio::time::Instant::now() + settings.batch_max_wait();
    while batch.records.len() < settings.batch_max_votes {
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(deadline) => break,
            // The batch in hand is finished and committed; it just stops growing.
            () = shutdown.cancelled() => break,
            received = consumer.recv() => match received {
                Ok(message) => {
                    batch.note_revocations(consumer, &mut revocations_seen);
                    let moved = start_at_applied(consumer, sinks, assignments_seen).await;
                    batch.records.retain(|received| !moved.contains(&received.partition()));
                    if !moved.contains(&message.partition()) {
                        batch.records.push(receive(&message));
                    }
                    in_hand.set(batch.records.len() as i64);
                }
                Err(error) => {
                    tracing::warn!(%error, "Kafka consumer error while filling a batch");
                    break;
                }
            },
        }
    }
    sinks.metrics.stage_seconds.fill.observe(filling.elapsed().as_secs_f64());
    // A revocation during the last poll (which returned no record) counts too.
    batch.note_revocations(consumer, &mut revocations_seen);
    in_hand.set(batch.records.len() as i64);
    Ok(Some(batch))
}

/// After an assignment, starts each newly assigned partition right after the last offset
/// the Redis tally has counted, instead of at the committed offset. Redis records that
/// offset atomically with the counts, so it is where counting must resume: ahead of a
/// lagging commit it skips records already counted, and behind it (Redis restored from an
/// older snapshot, or a crash lost its last second of AOF) it replays what the counters
/// lost, which MongoDB absorbs and the tally counts again. A partition Redis knows no
/// offset of has never been counted there (every batch raises the offset of each of its
/// partitions, countable records or not), so it starts at its beginning. Until Redis
/// answers nothing is read: starting at the committed offsets instead could skip records
/// a restored Redis no longer counts. Returns the partitions it moved (all assigned ones
/// if shutdown came first); their records received before are stale.
async fn start_at_applied(consumer: &GroupConsumer, sinks: &Sinks, seen: &mut u64) -> BTreeSet<i32> {
    let now = consumer.context().assignments();
    if now == *seen {
        return BTreeSet::new();
    }
    *seen = now;
    let assigned = consumer.context().take_assigned();
    if assigned.is_empty() {
        return BTreeSet::new();
    }
    let retry = Retry { metrics: &sinks.metrics, readiness: &sinks.readiness, shutdown: &sinks.shutdown };
    let read_applied = || async {
        match tokio::time::timeout(Duration::from_secs(2), sinks.tally.applied_offsets(&sinks.topic)).await {
            Ok(read) => read.map_err(|error| error.to_string()),
            Err(_) => Err("Redis did not answer the applied offsets within 2 s".to_owned()),
        }
    };
    let Some(applied) = retry.until_ok(REDIS, read_applied).await else {
        return assigned;
    };
    let mut moved = BTreeSet::new();
    let mut from_beginning = Vec::new();
    for &partition in &assigned {
        let start = match applied.get(&partition) {
            Some(last) => Offset::Offset(last + 1),
            None => {
                from_beginning.push(partition);
                Offset::Beginning
            }
        };
        // A seek that fails (it timed out on a machine short of CPU) is retried: going on
        // from the committed offset instead skipped the records a restored Redis no longer
        // counted. A partition revoked meanwhile needs no start.
        let seek = || async {
            let still_assigned = consumer
                .assignment()
                .map_or(true, |assignment| assignment.find_partition(&sinks.topic, partition).is_some());
            if !still_assigned {
                return Ok(false);
            }
            consumer.seek(&sinks.topic, partition, start, Duration::from_secs(2)).map(|()| true)
        };
        match retry.until_ok(KAFKA, seek).await {
            Some(true) => {
                moved.insert(partition);
            }
            Some(false) => tracing::info!(partition, "revoked before its start was set"),
            None => return assigned,
        }
    }
    if !moved.is_empty() {
        tracing::info!(?moved, ?from_beginning, "assigned partitions start after the last offset counted in Redis");
    }
    moved
}

fn receive(message: &BorrowedMessage<'_>) -> Received {
    let path = message
        .headers()
        .and_then(|headers| headers.iter().find(|header| header.key == PATH_HEADER).and_then(|header| header.value));
    match AcceptedRecord::decode(message.payload(), path) {
        Ok(record) => Received::Vote(Consumed { record, partition: message.partition(), offset: message.offset() }),
        Err(error) => {
            let kind = match error {
                voteflow_domain::RecordError::InvalidVote(_) => "invalid_vote",
                voteflow_domain::RecordError::BadPath => "bad_path",
                _ => "undecodable",
            };
            Received::Undecodable { message: message.detach(), reason: error.to_string(), kind }
        }
    }
}

impl Received {
    fn partition(&self) -> i32 {
        match self {
            Received::Vote(consumed) => consumed.partition,
            Received::Undecodable { message, .. } => message.partition(),
        }
    }

    fn offset(&self) -> i64 {
        match self {
            Received::Vote(consumed) => consumed.offset,
            Received::Undecodable { message, .. } => message.offset(),
        }
    }
}

/// Per partition, the last offset in the batch.
fn last_offsets(batch: &[Received]) -> BTreeMap<i32, i64> {
    let mut offsets = BTreeMap::new();
    for received in batch {
        let last = offsets.entry(received.partition()).or_insert(received.offset());
        *last = (*last).max(received.offset());
    }
    offsets
}

/// Per partition, the offset to commit after this batch: one past its last record.
fn next_offsets(batch: &[Received]) -> BTreeMap<i32, i64> {
    last_offsets(batch).into_iter().map(|(partition, last)| (partition, last + 1)).collect()
}

fn commit(consumer: &GroupConsumer, topic: &str, offsets: &BTreeMap<i32, i64>, mode: CommitMode) {
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

/// Commits what was processed (synchronously, so the last asynchronous commits cannot be
/// lost) and leaves the group, within `deadline`. Both calls block, and librdkafka's
/// destroy has been seen to block for tens of seconds, so they run on a blocking thread
/// that the shutdown does not wait past (what is not committed is redelivered, and the
/// sinks absorb it).
async fn close(consumer: Arc<GroupConsumer>, topic: String, processed: BTreeMap<i32, i64>, deadline: Duration) {
    let closing = tokio::task::spawn_blocking(move || {
        let owned: BTreeSet<i32> = consumer
            .assignment()
            .map(|assignment| assignment.elements().iter().map(|p| p.partition()).collect())
            .unwrap_or_default();
        let processed: BTreeMap<i32, i64> = processed.into_iter().filter(|(p, _)| owned.contains(p)).collect();
        commit(&consumer, &topic, &processed, CommitMode::Sync);
        consumer.unsubscribe();
        drop(consumer);
    });
    if tokio::time::timeout(deadline, closing).await.is_err() {
        tracing::warn!(?deadline, "Kafka consumer did not close within the deadline; leaving it behind");
    }
}

/// Closes the minutes of history that are over while no batch comes to do it, so the
/// last minutes of an evening reach the history streams too.
async fn close_history_every(tally: Tally, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(crate::sink::tally::HISTORY_CLOSE_EVERY) => {},
        }
        if let Err(error) = tally.close_history().await {
            // The batch path reports Redis failures (readiness, sink_up); this one retries next time.
            tracing::debug!(%error, "closing the minutes of history failed");
        }
    }
}

async fn watch_kafka(consumer: Arc<GroupConsumer>, topic: String, readiness: Readiness, shutdown: CancellationToken) {
    let probe = || {
        let (consumer, topic) = (consumer.clone(), topic.clone());
        blocking_probe(move || topic_answers(consumer.client(), &topic, Duration::from_secs(2)))
    };
    health::watch(readiness, KAFKA, Duration::from_secs(5), probe, shutdown).await;
}

impl Sinks {
    /// Writes a batch to every sink, retrying each step until it succeeds. `false` when
    /// shutdown came while a sink was failing (nothing further is written then).
    async fn write(&self, batch: Vec<Received>) -> bool {
        let started = Instant::now();
        let records = batch.len();
        let last_offsets = last_offsets(&batch);
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
        let mongo_started = Instant::now();
        let Some(logged) = retry.until_ok(MONGO, || self.log.insert(&votes)).await else {
            return false;
        };
        self.metrics.stage_seconds.mongo.observe(mongo_started.elapsed().as_secs_f64());
        let countable: Vec<&Consumed> = votes
            .iter()
            .enumerate()
            .filter(|(index, _)| {
                logged.retries.binary_search(index).is_err() && logged.conflicts.binary_search(index).is_err()
            })
            .map(|(_, consumed)| consumed)
            .collect();
        let redis_started = Instant::now();
        let Some(counted) = retry.until_ok(REDIS, || self.tally.apply(&self.topic, &last_offsets, &countable)).await
        else {
            return false;
        };
        self.metrics.stage_seconds.redis.observe(redis_started.elapsed().as_secs_f64());
        let counted_votes: u64 = counted.iter().map(|(_, votes)| votes).sum();
        for (path, votes) in &counted {
            self.metrics.votes.with_label_values(&[path.as_str()]).inc_by(*votes);
        }
        let redelivered = countable.len() as u64 - counted_votes.min(countable.len() as u64);
        self.metrics.duplicates.with_label_values(&["redelivered"]).inc_by(redelivered);
        self.metrics.duplicates.with_label_values(&["retry"]).inc_by(logged.retries.len() as u64);
        self.metrics.duplicates.with_label_values(&["conflict"]).inc_by(logged.conflicts.len() as u64);
        for &index in &logged.conflicts {
            let consumed = &votes[index];
            tracing::warn!(
                vote_id = %consumed.record.vote.vote_id(),
                partition = consumed.partition,
                offset = consumed.offset,
                "a vote_id reused for a different vote: the first copy stays, this one is not counted"
            );
        }
        self.metrics.batches.inc();
        self.metrics.batch_size.observe(records as f64);
        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        if redelivered > 0 || !logged.retries.is_empty() || !logged.conflicts.is_empty() {
            tracing::info!(
                records,
                counted = counted_votes,
                redelivered,
                retries = logged.retries.len(),
                conflicts = logged.conflicts.len(),
                "batch held records counted before"
            );
        } else {
            tracing::debug!(records, counted = counted_votes, "batch written");
        }
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
        let mut failures = 0_u32;
        loop {
            match operation().await {
                Ok(value) => {
                    if failures > 0 {
                        tracing::info!(sink, failures, "sink is back; resuming");
                    }
                    if sink != DLQ {
                        self.readiness.set(sink, true);
                    }
                    self.metrics.sink_up.with_label_values(&[sink]).set(1);
                    return Some(value);
                }
                Err(error) => {
                    failures += 1;
                    self.metrics.sink_errors.with_label_values(&[sink]).inc();
                    self.metrics.sink_up.with_label_values(&[sink]).set(0);
                    if sink != DLQ {
                        self.readiness.set(sink, false);
                    }
                    tracing::warn!(sink, %error, failures, retry_in = ?backoff, "sink write failed; no new records until it succeeds");
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
