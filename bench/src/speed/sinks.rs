//! The benchmark's sink side: the produce ceiling that pre-fills the topic, the raw sink
//! ceilings (pipelined HINCRBY into Redis, insert_many into the MongoDB-wire server), the
//! consumer draining the topic, and freshness (accepted -> visible in Redis).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use voteflow_consumer::sink::Consumed;
use voteflow_consumer::sink::vote_log::{Logged, VoteLog};
use voteflow_domain::{AcceptedRecord, Vote, VoteJson, VotePath};
use voteflow_service::settings::PublisherSettings;

use crate::traffic;

/// Votes per Redis pipeline and per insert_many: the consumer's default batch.
pub const SINK_BATCH: u64 = 1000;

/// The `i`-th benchmark vote as a validated vote (a fresh vote_id each time).
pub fn domain_vote(i: u64) -> anyhow::Result<Vote> {
    let json: VoteJson = serde_json::from_value(traffic::vote(i))?;
    Ok(Vote::try_from(json)?)
}

fn record(i: u64) -> anyhow::Result<AcceptedRecord> {
    let path = if i.is_multiple_of(2) { VotePath::Rest } else { VotePath::Grpc };
    Ok(AcceptedRecord { vote: domain_vote(i)?, accepted_at: chrono::Utc::now(), path })
}

/// A throughput figure measured outside the HTTP generator.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    pub votes: u64,
    pub seconds: f64,
    pub votes_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p999_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Throughput {
    fn new(votes: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        Self { votes, seconds, votes_per_s: votes as f64 / seconds.max(f64::EPSILON), ..Self::default() }
    }

    fn with_latency(mut self, histogram: &Histogram<u64>) -> Self {
        let ms = |quantile: f64| Some(histogram.value_at_quantile(quantile) as f64 / 1000.0);
        (self.p50_ms, self.p99_ms, self.p999_ms) = (ms(0.5), ms(0.99), ms(0.999));
        self
    }
}

/// Lingers the produce ceiling tries; the best is the ceiling.
const CEILING_LINGERS_MS: [u64; 4] = [0, 2, 5, 20];
/// Records librdkafka may hold for the ceiling: enough that the queue never bounds it.
const CEILING_QUEUE: u64 = 1_000_000;

/// The produce ceiling: the best raw rdkafka produce of this machine for the votes'
/// records (the same payload and headers, acks=all, idempotence, the servers'
/// compression), with everything in flight the client allows and each of
/// [`CEILING_LINGERS_MS`] tried on an equal share of `votes`. No voteflow code is on its
/// path, so a path through voteflow's own publisher cannot beat it without a bug. Returns
/// the best figure and the number acknowledged in all (the consumer scenario's pre-filled
/// topic).
pub async fn produce_ceiling(settings: &PublisherSettings, votes: u64) -> anyhow::Result<(Throughput, u64)> {
    let share = (votes / CEILING_LINGERS_MS.len() as u64).max(1);
    let (mut best, mut acked_in_all, mut tried) = (None::<(u64, Throughput)>, 0, Vec::new());
    for (round, linger_ms) in CEILING_LINGERS_MS.into_iter().enumerate() {
        let first = round as u64 * share;
        let (figure, acked) = raw_produce(settings, linger_ms, first..first + share).await?;
        acked_in_all += acked;
        tried.push(format!("linger {linger_ms} ms {:.0} votes/s", figure.votes_per_s));
        eprintln!("[bench] produce      linger {linger_ms} ms: {:.0} votes/s", figure.votes_per_s);
        if best.as_ref().is_none_or(|(_, known)| figure.votes_per_s > known.votes_per_s) {
            best = Some((linger_ms, figure));
        }
    }
    let (linger_ms, mut figure) = best.expect("at least one linger is tried");
    let failures = figure.note.take().map(|note| format!("; {note}")).unwrap_or_default();
    figure.note = Some(format!("best of {} at linger {linger_ms} ms{failures}", tried.join(", ")));
    Ok((figure, acked_in_all))
}

/// Produces the records of `votes` with a raw rdkafka producer at `linger_ms`, every
/// record enqueued as fast as librdkafka takes it. Payloads are built before the clock.
async fn raw_produce(
    settings: &PublisherSettings,
    linger_ms: u64,
    votes: std::ops::Range<u64>,
) -> anyhow::Result<(Throughput, u64)> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use voteflow_domain::record::{CONTENT_TYPE, CONTENT_TYPE_HEADER, PATH_HEADER};

    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &settings.kafka.brokers)
        .set("client.id", "voteflow-bench-produce-ceiling")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", linger_ms.to_string())
        .set("compression.type", &settings.compression)
        .set("queue.buffering.max.messages", CEILING_QUEUE.to_string())
        .set("queue.buffering.max.kbytes", "2097151")
        .set("message.timeout.ms", "30000")
        .create()
        .context("Failed to create the ceiling's producer")?;
    let records: Vec<(Vec<u8>, VotePath)> = votes
        .clone()
        .map(|i| record(i).map(|record| (record.encode_payload(), record.path)))
        .collect::<anyhow::Result<_>>()?;
    let send = |payload: &[u8], path: VotePath| {
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header { key: PATH_HEADER, value: Some(path.as_str()) })
            .insert(Header { key: CONTENT_TYPE_HEADER, value: Some(CONTENT_TYPE) });
        producer
            .send_result(FutureRecord::<(), _>::to(&settings.kafka.topic).payload(payload).headers(headers))
            .map_err(|(error, _)| error)
    };
    // One record acknowledged before the clock starts: without it some runs stalled about
    // half a second at the start, which made the p99 and halved a short ceiling. The
    // cause was not found.
    let (warm_payload, warm_path) = &records[0];
    let warm = send(warm_payload, *warm_path)?;
    warm.await?.map_err(|(error, _)| error).context("the produce ceiling's first vote")?;
    let started = Instant::now();
    let mut latencies = super::generator::new_histogram();
    let (mut acked, mut failed, mut first_failure) = (1u64, 0u64, None);
    let mut deliveries = futures::stream::FuturesUnordered::new();
    let mut settle =
        |outcome: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, _>, sent: Instant| match outcome {
            Ok(Ok(_)) => {
                acked += 1;
                let _ = latencies.record((sent.elapsed().as_micros() as u64).max(1));
            }
            Ok(Err((error, _))) | Err(error) => {
                failed += 1;
                first_failure.get_or_insert_with(|| format!("{error}"));
            }
        };
    for (payload, path) in &records[1..] {
        loop {
            match send(payload, *path) {
                Ok(delivery) => {
                    let sent = Instant::now();
                    deliveries.push(async move { (delivery.await, sent) });
                    break;
                }
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                    let Some((outcome, sent)) = deliveries.next().await else { break };
                    settle(outcome.map_err(|_| KafkaError::Canceled), sent);
                }
                Err(error) => return Err(error).context("the produce ceiling's send failed"),
            }
        }
    }
    while let Some((outcome, sent)) = deliveries.next().await {
        settle(outcome.map_err(|_| KafkaError::Canceled), sent);
    }
    let elapsed = started.elapsed();
    let mut figure = Throughput::new(acked - 1, elapsed).with_latency(&latencies);
    if failed > 0 {
        figure.note = Some(format!("{failed} not acknowledged, first: {}", first_failure.unwrap_or_default()));
    }
    Ok((figure, acked))
}

/// Redis ceiling: one HINCRBY per vote (band += 1) through the redis crate, pipelined
/// [`SINK_BATCH`] at a time, one pipeline after another, into `key`.
pub async fn redis_ceiling(redis_url: &str, key: &str, votes: u64) -> anyhow::Result<Throughput> {
    let mut redis = redis::Client::open(redis_url)?.get_multiplexed_async_connection().await?;
    let bands: Vec<String> = (0..votes.min(SINK_BATCH * 10))
        .map(|i| domain_vote(i).map(|vote| vote.band().to_owned()))
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    let mut done = 0;
    while done < votes {
        let size = SINK_BATCH.min(votes - done);
        let mut pipeline = redis::pipe();
        for i in done..done + size {
            pipeline.hincr(key, &bands[(i % bands.len() as u64) as usize], 1).ignore();
        }
        pipeline.query_async::<()>(&mut redis).await.context("pipelined HINCRBY failed")?;
        done += size;
    }
    Ok(Throughput::new(votes, started.elapsed()))
}

/// MongoDB ceiling: `votes` fresh votes through the consumer's own `VoteLog::insert` (its
/// document shape, one unordered insert_many per call, a collection with the vote log's
/// indexes), [`SINK_BATCH`] at a time, one after another. Records are built before the
/// clock runs; their documents inside it, as the consumer builds them.
pub async fn mongo_ceiling(mongodb_uri: &str, database: &str, votes: u64) -> anyhow::Result<Throughput> {
    let log = VoteLog::connect(mongodb_uri, database).await?;
    log.ensure_indexes().await.context("Failed to create the vote log's indexes")?;
    let started_all = Instant::now();
    let mut spent = Duration::ZERO;
    let mut done = 0;
    while done < votes {
        let size = SINK_BATCH.min(votes - done);
        let batch: Vec<Consumed> = (done..done + size)
            .map(|i| Ok(Consumed { record: record(i)?, partition: (i % 12) as i32, offset: (i / 12) as i64 }))
            .collect::<anyhow::Result<_>>()?;
        let started = Instant::now();
        let logged = log.insert(&batch).await.context("insert_many failed")?;
        spent += started.elapsed();
        anyhow::ensure!(logged == Logged::default(), "the ceiling's fresh votes were found logged already: {logged:?}");
        done += size;
        if done % (SINK_BATCH * 50) == 0 {
            eprintln!(
                "[bench] mongo ceiling {done}/{votes} documents, {:.0} documents/s",
                done as f64 / spent.as_secs_f64()
            );
        }
    }
    let mut figure = Throughput::new(votes, spent);
    figure.note = Some(format!(
        "clock stopped while records were built; {:.1} s wall in all",
        started_all.elapsed().as_secs_f64()
    ));
    Ok(figure)
}

/// Retried votes in the retry path's mixed batch.
const RETRIES_PER_BATCH: usize = 10;

/// The vote log's retry path over a log that already holds the ceiling's documents: per
/// round, a fresh batch of [`SINK_BATCH`], a batch holding [`RETRIES_PER_BATCH`] client
/// retries (vote_ids of the fresh batch at other Kafka positions), and the fresh batch
/// again (every record redelivered), each through the consumer's own `VoteLog::insert`.
/// The figure is the batches with retries; the note has the medians of all three.
pub async fn retry_path(mongodb_uri: &str, database: &str, rounds: u32) -> anyhow::Result<Throughput> {
    let log = VoteLog::connect(mongodb_uri, database).await?;
    let in_log = mongodb::Client::with_uri_str(mongodb_uri)
        .await?
        .database(database)
        .collection::<mongodb::bson::Document>(voteflow_consumer::sink::vote_log::COLLECTION)
        .estimated_document_count()
        .await?;
    let consumed =
        |i: u64, offset: i64| -> anyhow::Result<Consumed> { Ok(Consumed { record: record(i)?, partition: 0, offset }) };
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2].as_secs_f64() * 1000.0
    };
    let (mut fresh, mut with_retries, mut redelivered) = (Vec::new(), Vec::new(), Vec::new());
    // Kafka positions far beyond any the ceiling's documents carry.
    let mut offset = 1_000_000_000_i64;
    for _ in 0..rounds.max(1) {
        let batch: Vec<Consumed> = (0..SINK_BATCH)
            .map(|i| {
                offset += 1;
                consumed(i, offset)
            })
            .collect::<anyhow::Result<_>>()?;
        let mut mixed: Vec<Consumed> = (0..SINK_BATCH as usize - RETRIES_PER_BATCH)
            .map(|i| {
                offset += 1;
                consumed(i as u64, offset)
            })
            .collect::<anyhow::Result<_>>()?;
        for original in batch.iter().step_by(batch.len() / RETRIES_PER_BATCH) {
            offset += 1;
            mixed.push(Consumed { record: original.record.clone(), partition: 1, offset });
        }
        for (batch, times, retries) in [(&batch, &mut fresh, 0), (&mixed, &mut with_retries, RETRIES_PER_BATCH)] {
            let started = Instant::now();
            let logged = log.insert(batch).await.context("the retry path's insert failed")?;
            times.push(started.elapsed());
            anyhow::ensure!(logged.retries.len() == retries, "{} retries found, {retries} sent", logged.retries.len());
        }
        let started = Instant::now();
        let logged = log.insert(&batch).await.context("the retry path's redelivery failed")?;
        redelivered.push(started.elapsed());
        anyhow::ensure!(logged.redelivered == batch.len(), "{} of {} redelivered", logged.redelivered, batch.len());
    }
    let spent: Duration = with_retries.iter().sum();
    let mut figure = Throughput::new(SINK_BATCH * with_retries.len() as u64, spent);
    figure.note = Some(format!(
        "a log of about {in_log} documents; medians of {} rounds: fresh batch of {SINK_BATCH} {:.0} ms, with \
         {RETRIES_PER_BATCH} retries {:.0} ms, all redelivered {:.0} ms",
        with_retries.len(),
        median(fresh),
        median(with_retries),
        median(redelivered),
    ));
    Ok(figure)
}

/// Accepted-vote instants by album, and what Redis showed when.
#[derive(Default)]
pub struct Freshness {
    pending: Mutex<HashMap<String, Instant>>,
    seen: Mutex<Vec<Duration>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FreshnessFigures {
    /// Votes tracked: one in [`FRESHNESS_SAMPLE`] of those accepted.
    pub votes: u64,
    pub sampled_one_in: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Accepted votes Redis had not shown 10 s after the load ended.
    pub never_seen: u64,
    pub poll_interval_ms: u64,
}

pub const FRESHNESS_POLL: Duration = Duration::from_millis(5);

/// One vote in this many is tracked: polling a field per vote every 5 ms loaded Redis and
/// the generator enough to move the result (seen: p50 650 ms with every vote tracked).
pub const FRESHNESS_SAMPLE: u64 = 10;

impl Freshness {
    /// The album a tracked vote carries: unique, so its counter in `votes:album` (field
    /// `band — album`) shows exactly when the consumer counted it. Untracked votes keep
    /// their own album.
    pub fn album(run: &str, i: u64) -> Option<String> {
        i.is_multiple_of(FRESHNESS_SAMPLE).then(|| format!("fresh-{run}-{i}"))
    }

    /// A tracked vote was accepted at `at`; `album_field` is its `votes:album` field.
    pub fn accepted(&self, album_field: String, at: Instant) {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(album_field, at);
    }

    /// Polls `votes:album` every [`FRESHNESS_POLL`] until `stop` and then until nothing is
    /// pending (at most 10 s more). A failed read is retried, and its votes stay pending.
    pub async fn watch(
        self: Arc<Self>,
        mut redis: redis::aio::MultiplexedConnection,
        albums_key: String,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut give_up: Option<Instant> = None;
        loop {
            let albums: Vec<String> = {
                let pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                pending.keys().take(2000).cloned().collect()
            };
            if !albums.is_empty() {
                let read: redis::RedisResult<Vec<Option<u64>>> =
                    redis::cmd("HMGET").arg(&albums_key).arg(&albums).query_async(&mut redis).await;
                let now = Instant::now();
                match read {
                    Ok(counts) => {
                        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        for (album, count) in albums.iter().zip(counts) {
                            if count.is_some()
                                && let Some(accepted) = pending.remove(album)
                            {
                                seen.push(now.saturating_duration_since(accepted));
                            }
                        }
                    }
                    // A stalled machine can time one read out; its votes stay pending and
                    // are timed when next seen, instead of the whole run failing.
                    Err(error) => eprintln!("[bench] freshness watcher: Redis read failed ({error}); reading again"),
                }
            }
            if stop.is_cancelled() {
                let deadline = *give_up.get_or_insert_with(|| Instant::now() + Duration::from_secs(10));
                let empty = self.pending.lock().map(|pending| pending.is_empty()).unwrap_or(true);
                if empty || Instant::now() > deadline {
                    return;
                }
            }
            tokio::time::sleep(FRESHNESS_POLL).await;
        }
    }

    pub fn figures(&self) -> FreshnessFigures {
        let mut histogram = super::generator::new_histogram();
        let seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for latency in seen.iter() {
            let _ = histogram.record((latency.as_micros() as u64).max(1));
        }
        let never_seen = self.pending.lock().map(|pending| pending.len() as u64).unwrap_or_default();
        let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        FreshnessFigures {
            votes: seen.len() as u64,
            sampled_one_in: FRESHNESS_SAMPLE,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            max_ms: histogram.max() as f64 / 1000.0,
            never_seen,
            poll_interval_ms: FRESHNESS_POLL.as_millis() as u64,
        }
    }
}
