//! Settings pieces that several services flatten into their own `clap` settings struct.
//! Every value comes from a flag or its env var (defaults suit the local stack), so k8s
//! ConfigMaps and Secrets only ever set env vars. Env vars are read nowhere else.

use std::time::Duration;

/// Where Kafka is and which topic carries votes.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaSettings {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long = "kafka-brokers", env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic that carries accepted votes.
    #[arg(long = "kafka-topic", env = "KAFKA_TOPIC", default_value = "votes")]
    pub topic: String,
}

/// How a producer server publishes votes.
#[derive(Debug, Clone, clap::Args)]
pub struct PublisherSettings {
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// Longest a vote waits for Kafka's acknowledgement (acks=all) before the answer is 503.
    #[arg(long, env = "KAFKA_DELIVERY_TIMEOUT_MS", default_value_t = 2000)]
    pub delivery_timeout_ms: u64,
    /// Most votes waiting for Kafka at once; beyond it new votes are shed with 503.
    #[arg(long, env = "KAFKA_MAX_IN_FLIGHT", default_value_t = 10_000)]
    pub max_in_flight: usize,
    /// How long the producer waits to fill a batch; trades latency for throughput.
    #[arg(long, env = "KAFKA_LINGER_MS", default_value_t = 2)]
    pub linger_ms: u64,
    /// Compression of produced batches. `none` by default: batches of single votes hold a
    /// few records per partition, and lz4's per-batch setup cost more CPU than it saved
    /// (README "Where the time goes").
    #[arg(long = "kafka-compression", env = "KAFKA_COMPRESSION", default_value = "none",
          value_parser = ["none", "lz4", "zstd", "snappy", "gzip"])]
    pub compression: String,
    /// How often librdkafka reports its own latencies (client queue, send buffer, broker
    /// round trip) to `/metrics`; 0 turns the reports off.
    #[arg(long, env = "KAFKA_STATISTICS_INTERVAL_MS", default_value_t = 5000)]
    pub statistics_interval_ms: u64,
}

impl PublisherSettings {
    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_millis(self.delivery_timeout_ms)
    }
}

/// Log output.
#[derive(Debug, Clone, clap::Args)]
pub struct LogSettings {
    /// Log filter, in `tracing` EnvFilter syntax (Rocket's own request log is off by default).
    #[arg(long = "log", env = "RUST_LOG", default_value = "info,rocket=off")]
    pub filter: String,
    /// `text` for people, `json` for log collectors.
    #[arg(long = "log-format", env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}
