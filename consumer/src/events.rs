//! Every metric the consumer exports, defined once so a dashboard author reads one file.
//! Labels stay low-cardinality: path (grpc|rest), sink, reason; never a vote or band.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use voteflow_service::metrics::latency_buckets;

/// `voteflow_consumer_stage_seconds`, one series per stage, resolved once.
#[derive(Clone)]
pub struct StageSeconds {
    /// Waiting for a batch's first record: idle when caught up, a fetch stall when lagging.
    pub wait: Histogram,
    /// From the first record in hand to the batch closed.
    pub fill: Histogram,
    /// The sink writes, retries included.
    pub mongo: Histogram,
    pub redis: Histogram,
}

#[derive(Clone)]
pub struct ConsumerMetrics {
    /// Votes written to both sinks, by path.
    pub votes: IntCounterVec,
    /// Batches fully processed and committed.
    pub batches: IntCounter,
    pub batch_size: Histogram,
    pub batch_seconds: Histogram,
    /// Where a batch's time goes, by stage.
    pub stage_seconds: StageSeconds,
    /// Failed sink operations (each retried), by sink.
    pub sink_errors: IntCounterVec,
    /// Records sent to the dead-letter topic, by reason.
    pub dead_letters: IntCounterVec,
    /// Records read again but not counted again, by kind: `redelivered` (the same Kafka
    /// record, after a crash, a lost commit or a rebalance) or `retry` (a client re-sent
    /// a vote_id already accepted).
    pub duplicates: IntCounterVec,
    /// Records this replica is behind the partitions it owns (from librdkafka's statistics,
    /// every 5 s); summed over replicas, the group's lag.
    pub lag: prometheus::IntGauge,
    /// Records received and not yet committed: the batch in hand (0 between batches).
    pub records_in_hand: prometheus::IntGauge,
    /// Whether each sink is reachable (1) or failing (0), by sink.
    pub sink_up: prometheus::IntGaugeVec,
}

impl ConsumerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let stages = HistogramVec::new(
            HistogramOpts::new(
                "voteflow_consumer_stage_seconds",
                "Time a batch spends in each stage (wait, fill, mongo, redis).",
            )
            .buckets(latency_buckets()),
            &["stage"],
        )?;
        registry.register(Box::new(stages.clone()))?;
        let metrics = Self {
            votes: IntCounterVec::new(
                Opts::new("voteflow_consumer_votes_total", "Votes written to Redis and MongoDB, by path."),
                &["path"],
            )?,
            batches: IntCounter::new("voteflow_consumer_batches_total", "Batches processed and committed.")?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new("voteflow_consumer_batch_votes", "Records per batch.")
                    .buckets(vec![1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0]),
            )?,
            batch_seconds: Histogram::with_opts(
                HistogramOpts::new("voteflow_consumer_batch_seconds", "Time to write a batch to every sink.")
                    .buckets(latency_buckets()),
            )?,
            stage_seconds: StageSeconds {
                wait: stages.with_label_values(&["wait"]),
                fill: stages.with_label_values(&["fill"]),
                mongo: stages.with_label_values(&["mongo"]),
                redis: stages.with_label_values(&["redis"]),
            },
            sink_errors: IntCounterVec::new(
                Opts::new("voteflow_consumer_sink_errors_total", "Failed writes (retried), by sink."),
                &["sink"],
            )?,
            dead_letters: IntCounterVec::new(
                Opts::new("voteflow_consumer_dead_letters_total", "Records sent to the dead-letter topic, by reason."),
                &["reason"],
            )?,
            duplicates: IntCounterVec::new(
                Opts::new(
                    "voteflow_consumer_duplicates_total",
                    "Records not counted again, by kind: redelivered records, client retries, vote_ids reused for another vote (conflict).",
                ),
                &["kind"],
            )?,
            lag: prometheus::IntGauge::new(
                "voteflow_consumer_lag",
                "Records behind the end of the partitions this replica owns (librdkafka statistics, every 5 s).",
            )?,
            records_in_hand: prometheus::IntGauge::new(
                "voteflow_consumer_records_in_hand",
                "Records received but not yet written to every sink and committed (the batch in hand).",
            )?,
            sink_up: prometheus::IntGaugeVec::new(
                Opts::new("voteflow_consumer_sink_up", "1 while the sink answers, 0 while its writes fail."),
                &["sink"],
            )?,
        };
        registry.register(Box::new(metrics.votes.clone()))?;
        registry.register(Box::new(metrics.batches.clone()))?;
        registry.register(Box::new(metrics.batch_size.clone()))?;
        registry.register(Box::new(metrics.batch_seconds.clone()))?;
        registry.register(Box::new(metrics.sink_errors.clone()))?;
        registry.register(Box::new(metrics.dead_letters.clone()))?;
        registry.register(Box::new(metrics.duplicates.clone()))?;
        registry.register(Box::new(metrics.sink_up.clone()))?;
        registry.register(Box::new(metrics.records_in_hand.clone()))?;
        registry.register(Box::new(metrics.lag.clone()))?;
        // Every label value exists from the start, at 0, so dashboards show "none yet"
        // rather than "no data".
        for sink in ["redis", "mongo", "kafka_dlq"] {
            metrics.sink_errors.with_label_values(&[sink]);
        }
        for reason in ["undecodable", "invalid_vote", "bad_path"] {
            metrics.dead_letters.with_label_values(&[reason]);
        }
        for kind in ["redelivered", "retry", "conflict"] {
            metrics.duplicates.with_label_values(&[kind]);
        }
        for path in ["rest", "grpc"] {
            metrics.votes.with_label_values(&[path]);
        }
        Ok(metrics)
    }
}
