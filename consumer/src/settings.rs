//! Settings of the consumer: each field is a flag and an env var, with defaults that
//! suit the local stack (`scripts/stack`). Read nowhere else.

use std::net::SocketAddr;
use std::time::Duration;

use voteflow_service::process::ServiceSettings;
use voteflow_service::settings::{KafkaSettings, LogSettings, SecretUrl};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "consumer",
    version,
    about = "voteflow consumer: counts accepted votes in Redis and logs them in MongoDB",
    long_about = "voteflow consumer. Joins a Kafka consumer group on the votes topic; per batch (bounded by size \
        and time) it appends one document per vote to MongoDB, increments the Redis tallies in one round trip, \
        and only then commits the Kafka offsets. Records it cannot decode go to the dead-letter topic. Serves \
        GET /healthz, /readyz and /metrics on the admin address. Every flag can be set by the env var shown."
)]
pub struct ConsumerSettings {
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// Consumer group; every replica of the consumer uses the same one.
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "voteflow-consumer")]
    pub group_id: String,
    /// Topic for records that cannot be decoded.
    #[arg(long, env = "KAFKA_DLQ_TOPIC", default_value = "votes.dlq")]
    pub dlq_topic: String,
    /// Most votes in one batch.
    #[arg(long, env = "BATCH_MAX_VOTES", default_value_t = 1000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub batch_max_votes: usize,
    // 15 rather than 50: votes become visible sooner at about the same CPU per vote
    // (docs/decisions/0005-batch-wait-15ms.md).
    /// Longest wait to fill a batch, in ms, once its first vote arrived: each vote may wait
    /// this long before Redis counts it; a backlog fills batches without waiting.
    #[arg(long, env = "BATCH_MAX_WAIT_MS", default_value_t = 15)]
    pub batch_max_wait_ms: u64,
    /// Redis holding the live tallies (`redis://[user:password@]host:port/`).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/")]
    pub redis_url: SecretUrl,
    /// Prefix of every Redis key the consumer writes.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "voteflow:")]
    pub redis_key_prefix: String,
    /// MongoDB (or MongoDB-wire server) holding the vote log (`mongodb://[user:password@]host:port/`).
    #[arg(long, env = "MONGODB_URI", default_value = "mongodb://127.0.0.1:27017/")]
    pub mongodb_uri: SecretUrl,
    /// Database of the vote log (collection `votes`).
    #[arg(long, env = "MONGODB_DATABASE", default_value = "voteflow")]
    pub mongodb_database: String,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "CONSUMER_ADMIN_LISTEN", default_value = "127.0.0.1:9100")]
    pub admin_listen: SocketAddr,
    /// Kafka group session timeout, in ms: how long a member that stopped heartbeating
    /// (crashed) keeps its partitions before the group hands them over.
    #[arg(long, env = "KAFKA_SESSION_TIMEOUT_MS", default_value_t = 45_000)]
    pub session_timeout_ms: u64,
    /// Seconds a shutdown may take to finish the batch in hand and commit; must be below
    /// the session timeout, and the pod's termination grace period must be above it.
    #[arg(long, env = "SHUTDOWN_DEADLINE_SECS", default_value_t = 10)]
    pub shutdown_deadline_secs: u64,
    #[command(flatten)]
    pub log: LogSettings,
}

impl ConsumerSettings {
    pub fn batch_max_wait(&self) -> Duration {
        Duration::from_millis(self.batch_max_wait_ms)
    }

    pub fn shutdown_deadline(&self) -> Duration {
        Duration::from_secs(self.shutdown_deadline_secs)
    }

    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }

    /// Rejects settings that would break a promise: a drain that outlives the session
    /// lets the group hand partitions over while this member still writes them.
    pub fn validate(&self) -> Result<(), String> {
        if self.shutdown_deadline() >= self.session_timeout() {
            return Err(format!(
                "SHUTDOWN_DEADLINE_SECS ({} s) must be below KAFKA_SESSION_TIMEOUT_MS ({} ms)",
                self.shutdown_deadline_secs, self.session_timeout_ms
            ));
        }
        Ok(())
    }
}

impl ServiceSettings for ConsumerSettings {
    fn log(&self) -> &LogSettings {
        &self.log
    }

    /// The drain's own deadline, and a margin to leave the group.
    fn stop_deadline(&self) -> Duration {
        self.shutdown_deadline() + Duration::from_secs(2)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn settings_are_consistent_and_defaults_parse() {
        ConsumerSettings::command().debug_assert();
        let settings = <ConsumerSettings as clap::Parser>::try_parse_from(["consumer"]).unwrap();
        assert_eq!(settings.redis_key_prefix, "voteflow:");
        assert!(settings.shutdown_deadline() < Duration::from_secs(45));
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn durations_are_read_in_their_units_and_the_stop_leaves_room_to_leave_the_group() {
        let settings = <ConsumerSettings as clap::Parser>::try_parse_from([
            "consumer",
            "--batch-max-wait-ms=40",
            "--session-timeout-ms=9000",
            "--shutdown-deadline-secs=7",
        ])
        .unwrap();
        assert_eq!(settings.batch_max_wait(), Duration::from_millis(40));
        assert_eq!(settings.session_timeout(), Duration::from_millis(9000));
        assert_eq!(settings.shutdown_deadline(), Duration::from_secs(7));
        assert_eq!(settings.stop_deadline(), Duration::from_secs(9), "the drain's deadline and 2 s to leave");
    }

    #[test]
    fn a_drain_longer_than_the_session_is_refused() {
        let settings = <ConsumerSettings as clap::Parser>::try_parse_from([
            "consumer",
            "--session-timeout-ms=6000",
            "--shutdown-deadline-secs=6",
        ])
        .unwrap();
        assert!(settings.validate().unwrap_err().contains("SHUTDOWN_DEADLINE_SECS"));
    }

    /// A batch of at most no votes would never make progress.
    #[test]
    fn a_zero_batch_is_refused() {
        let error = <ConsumerSettings as clap::Parser>::try_parse_from(["consumer", "--batch-max-votes=0"])
            .expect_err("BATCH_MAX_VOTES=0")
            .to_string();
        assert!(error.contains("--batch-max-votes"), "{error}");
    }
}
