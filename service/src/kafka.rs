//! The Kafka publisher shared by both producer servers: one producer per process,
//! acks=all with idempotence, a bounded number of votes in flight.
//!
//! Guarantee: [`Publisher::publish`] returns `Ok` only after every in-sync replica has
//! the record (acks=all), so a vote answered 2xx / gRPC OK is in Kafka and survives a
//! producer crash. Anything else (queue full, broker down, no acknowledgement within the
//! delivery bound) is an error the caller turns into 503 / UNAVAILABLE, never a hang.
//! `message.timeout.ms` equals the bound, so librdkafka itself gives up on the record at
//! the bound instead of delivering it later behind the caller's back; a record that was
//! in flight at that moment may still have been written (Kafka cannot tell), which is why
//! the consumer side deduplicates by vote_id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use rdkafka::ClientConfig;
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::{Statistics, Window};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use voteflow_domain::record::{CONTENT_TYPE, CONTENT_TYPE_HEADER, PATH_HEADER};
use voteflow_domain::{AcceptedRecord, ErrorCode, ItemOutcome, Refusal, Vote, VotePath, batch};

use crate::health::{self, Readiness};
use crate::metrics::latency_buckets;
use crate::settings::PublisherSettings;

/// Name of the readiness check the publisher feeds.
pub const KAFKA_CHECK: &str = "kafka";

/// Why a vote was not accepted by Kafka. Every variant means "not accepted: retry later".
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("too many votes waiting for Kafka; shedding load")]
    Overloaded,
    #[error("Kafka did not acknowledge the vote within {0:?}")]
    Timeout(Duration),
    /// librdkafka reported nothing, not even its own timeout, within the bound and the
    /// guard's second: a lost delivery report (counted apart, as `unreported`).
    #[error("no delivery report for the vote within {0:?}")]
    Unreported(Duration),
    #[error("Kafka refused the vote: {0}")]
    Kafka(#[source] KafkaError),
    #[error("the producer is shutting down")]
    Closed,
}

impl From<PublishError> for Refusal {
    fn from(error: PublishError) -> Self {
        let code = match error {
            PublishError::Overloaded => ErrorCode::Overloaded,
            PublishError::Timeout(_) | PublishError::Unreported(_) | PublishError::Kafka(_) | PublishError::Closed => {
                ErrorCode::KafkaUnavailable
            }
        };
        Refusal::new(code, format!("vote not accepted: {error}"))
    }
}

/// Where Kafka put an acknowledged vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub partition: i32,
    pub offset: i64,
}

/// The counter and latency histogram of one outcome, looked up once: resolving the label
/// on every vote showed as a visible share of rest-server's instructions per batched vote.
#[derive(Clone)]
struct OutcomeMetrics {
    votes: IntCounter,
    latency: Histogram,
}

#[derive(Clone)]
struct PublisherMetrics {
    acked: OutcomeMetrics,
    overloaded: OutcomeMetrics,
    timeout: OutcomeMetrics,
    unreported: OutcomeMetrics,
    error: OutcomeMetrics,
    in_flight: IntGauge,
}

impl PublisherMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let outcomes = IntCounterVec::new(
            Opts::new("voteflow_kafka_produce_total", "Votes sent to Kafka, by outcome."),
            &["outcome"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("voteflow_kafka_produce_seconds", "Time from send to Kafka's acknowledgement.")
                .buckets(latency_buckets()),
            &["outcome"],
        )?;
        let in_flight = IntGauge::new("voteflow_kafka_in_flight", "Votes sent to Kafka and not yet acknowledged.")?;
        registry.register(Box::new(outcomes.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        let outcome = |label: &str| OutcomeMetrics {
            votes: outcomes.with_label_values(&[label]),
            latency: latency.with_label_values(&[label]),
        };
        Ok(Self {
            acked: outcome("acked"),
            overloaded: outcome("overloaded"),
            timeout: outcome("timeout"),
            unreported: outcome("unreported"),
            error: outcome("error"),
            in_flight,
        })
    }

    fn of(&self, result: &Result<Acked, PublishError>) -> &OutcomeMetrics {
        match result {
            Ok(_) => &self.acked,
            Err(PublishError::Overloaded) => &self.overloaded,
            Err(PublishError::Timeout(_)) => &self.timeout,
            Err(PublishError::Unreported(_)) => &self.unreported,
            Err(PublishError::Kafka(_) | PublishError::Closed) => &self.error,
        }
    }
}

/// librdkafka's own account of where an acknowledgement's time goes, refreshed by its
/// statistics callback: the whole Kafka acknowledgement is one histogram above, and these
/// split it into time in the client's queue (linger and batching), in the send buffer,
/// and the broker's round trip (of every request: under load nearly all are produce
/// requests, at idle the readiness check's metadata requests). Each is librdkafka's
/// rolling window over the last interval, the worst broker's when there are several.
struct ClientLatencyMetrics {
    /// `[stage][quantile]`, in the order of [`CLIENT_STAGES`] and [`CLIENT_QUANTILES`].
    gauges: [[Gauge; 2]; 3],
}

const CLIENT_STAGES: [&str; 3] = ["queue", "send_buffer", "round_trip"];
const CLIENT_QUANTILES: [&str; 2] = ["0.5", "0.99"];

impl ClientLatencyMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let family = GaugeVec::new(
            Opts::new(
                "voteflow_kafka_client_latency_seconds",
                "librdkafka's latency windows over its last statistics interval: queue (produce call to \
                 request, linger included), send_buffer (request waiting to be written), round_trip (broker).",
            ),
            &["stage", "quantile"],
        )?;
        registry.register(Box::new(family.clone()))?;
        let gauges =
            CLIENT_STAGES.map(|stage| CLIENT_QUANTILES.map(|quantile| family.with_label_values(&[stage, quantile])));
        Ok(Self { gauges })
    }

    fn record(&self, statistics: &Statistics) {
        // Bootstrap entries (nodeid -1) carry no produce requests; a window with no
        // samples reads as zeros and would hide a real broker's figures in the max.
        let brokers: Vec<_> = statistics.brokers.values().filter(|broker| broker.nodeid >= 0).collect();
        let windows: [fn(&rdkafka::statistics::Broker) -> Option<&Window>; 3] =
            [|b| b.int_latency.as_ref(), |b| b.outbuf_latency.as_ref(), |b| b.rtt.as_ref()];
        for (gauges, window_of) in self.gauges.iter().zip(windows) {
            let sampled = || brokers.iter().filter_map(|broker| window_of(broker)).filter(|window| window.cnt > 0);
            let worst = |quantile: fn(&Window) -> i64| sampled().map(quantile).max().unwrap_or(0);
            gauges[0].set(micros_to_seconds(worst(|window| window.p50)));
            gauges[1].set(micros_to_seconds(worst(|window| window.p99)));
        }
    }
}

fn micros_to_seconds(micros: i64) -> f64 {
    micros as f64 / 1e6
}

/// The producer's librdkafka context: its statistics go to `/metrics`, everything else
/// (logs, errors) is handled as by the default context.
pub struct PublisherContext {
    latency: ClientLatencyMetrics,
}

impl ClientContext for PublisherContext {
    fn stats(&self, statistics: Statistics) {
        self.latency.record(&statistics);
    }
}

/// One shared, cheaply cloned Kafka producer.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer<PublisherContext>,
    topic: Arc<str>,
    delivery_timeout: Duration,
    permits: Arc<Semaphore>,
    metrics: PublisherMetrics,
}

impl Publisher {
    pub fn new(settings: &PublisherSettings, client_id: &str, registry: &Registry) -> anyhow::Result<Self> {
        let timeout_ms = settings.delivery_timeout_ms.max(1).to_string();
        let producer: FutureProducer<PublisherContext> = ClientConfig::new()
            .set("bootstrap.servers", &settings.kafka.brokers)
            .set("client.id", client_id)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", &timeout_ms)
            .set("request.timeout.ms", &timeout_ms)
            .set("queue.buffering.max.messages", settings.max_in_flight.max(1).to_string())
            .set("linger.ms", settings.linger_ms.to_string())
            .set("compression.type", &settings.compression)
            .set("reconnect.backoff.max.ms", "1000")
            .set("statistics.interval.ms", settings.statistics_interval_ms.to_string())
            .create_with_context(PublisherContext { latency: ClientLatencyMetrics::register(registry)? })?;
        Ok(Self {
            producer,
            topic: settings.kafka.topic.as_str().into(),
            delivery_timeout: settings.delivery_timeout(),
            permits: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            metrics: PublisherMetrics::register(registry)?,
        })
    }

    /// Sends one accepted vote and waits for Kafka's acknowledgement.
    pub async fn publish(&self, record: &AcceptedRecord) -> Result<Acked, PublishError> {
        let Ok(_permit) = self.permits.try_acquire() else {
            self.metrics.overloaded.votes.inc();
            return Err(PublishError::Overloaded);
        };
        let started = Instant::now();
        self.metrics.in_flight.inc();
        let result = self.send(record).await;
        self.metrics.in_flight.dec();
        let outcome = self.metrics.of(&result);
        outcome.votes.inc();
        outcome.latency.observe(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            tracing::debug!(%error, vote_id = %record.vote.vote_id(), "vote not acknowledged by Kafka");
        }
        result
    }

    /// Sends a batch concurrently (each vote still takes an in-flight permit) and waits
    /// for every acknowledgement; one result per record, in order.
    pub async fn publish_batch(&self, records: &[AcceptedRecord]) -> Vec<Result<Acked, PublishError>> {
        futures::future::join_all(records.iter().map(|record| self.publish(record))).await
    }

    /// Accepts a parsed batch on `path`: publishes its valid votes (stamped now) and answers
    /// one outcome per vote, in the batch's order, the refused ones as they were.
    pub async fn accept_batch(&self, parsed: Vec<Result<Vote, Refusal>>, path: VotePath) -> Vec<ItemOutcome> {
        let accepted_at = Utc::now();
        let records: Vec<AcceptedRecord> =
            batch::valid(&parsed).into_iter().map(|vote| AcceptedRecord { vote, accepted_at, path }).collect();
        let published = self.publish_batch(&records).await;
        let outcomes = records
            .iter()
            .zip(published)
            .map(|(record, result)| result.map(|_| record.vote.vote_id()).map_err(Refusal::from))
            .collect();
        batch::merge(parsed, outcomes)
    }

    async fn send(&self, record: &AcceptedRecord) -> Result<Acked, PublishError> {
        let payload = record.encode_payload();
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header { key: PATH_HEADER, value: Some(record.path.as_str()) })
            .insert(Header { key: CONTENT_TYPE_HEADER, value: Some(CONTENT_TYPE) });
        // No key: librdkafka then sends every vote of a 10 ms window (its default
        // sticky.partitioning.linger.ms) to one partition, so one produce request carries
        // them all. Keyed by vote_id they spread over every partition, and librdkafka sends
        // one partition per request: the broker spent several times the CPU per vote
        // (docs/decisions/0003-votes-without-a-key.md). Nothing needs a vote's copies in
        // one partition: the vote log tells a client's retry from a redelivery by the first
        // copy's partition and offset.
        let kafka_record = FutureRecord::<(), _>::to(&self.topic).payload(&payload).headers(headers);
        let delivery = match self.producer.send_result(kafka_record) {
            Ok(delivery) => delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                return Err(PublishError::Overloaded);
            }
            Err((error, _)) => return Err(PublishError::Kafka(error)),
        };
        // librdkafka fails the record itself at message.timeout.ms; the extra second only
        // guards against a lost callback, so no caller ever waits unbounded.
        let guard = self.delivery_timeout + Duration::from_secs(1);
        match tokio::time::timeout(guard, delivery).await {
            Ok(Ok(Ok(delivered))) => Ok(Acked { partition: delivered.partition, offset: delivered.offset }),
            Ok(Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut), _)))) => {
                Err(PublishError::Timeout(self.delivery_timeout))
            }
            Err(_) => Err(PublishError::Unreported(guard)),
            Ok(Ok(Err((error, _)))) => Err(PublishError::Kafka(error)),
            Ok(Err(_canceled)) => Err(PublishError::Closed),
        }
    }

    /// Whether the brokers answer a metadata request for the topic right now.
    pub async fn check_connection(&self) -> bool {
        let (producer, topic) = (self.producer.clone(), self.topic.clone());
        blocking_probe(move || topic_answers(producer.client(), &topic, Duration::from_secs(1))).await
    }

    /// Keeps the `kafka` readiness check current until shutdown.
    pub async fn watch_connection(self, readiness: Readiness, shutdown: CancellationToken) {
        health::watch(readiness, KAFKA_CHECK, Duration::from_secs(2), || self.check_connection(), shutdown).await;
    }

    /// Waits up to `timeout` for every queued vote to be acknowledged (graceful shutdown).
    pub async fn flush(&self, timeout: Duration) {
        let producer = self.producer.clone();
        let result = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
        match result {
            Ok(Ok(())) => tracing::info!("Kafka producer flushed"),
            Ok(Err(error)) => {
                tracing::error!(%error, "Kafka producer not fully flushed; unacknowledged votes were answered 503")
            }
            Err(error) => tracing::error!(%error, "Kafka flush task failed"),
        }
    }
}

/// Whether the brokers behind `client` answer a metadata request for `topic` with its
/// partitions within `timeout`: the Kafka readiness check of every service. Blocking.
pub fn topic_answers<C: ClientContext>(client: &Client<C>, topic: &str, timeout: Duration) -> bool {
    client.fetch_metadata(Some(topic), timeout).is_ok_and(|metadata| {
        metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
    })
}

/// Runs a blocking probe (librdkafka's calls block) off the async workers.
pub async fn blocking_probe(probe: impl FnOnce() -> bool + Send + 'static) -> bool {
    tokio::task::spawn_blocking(probe).await.unwrap_or(false)
}
