//! The consumer: a Kafka consumer-group member that turns accepted votes into live
//! tallies in Redis and a timestamped vote log in MongoDB.
//!
//! # Layout
//! - [`settings`]: typed settings (flags and env vars, `--help`).
//! - [`pipeline`]: the batch loop: receive, decode, write both sinks, then commit.
//! - [`sink::tally`]: Redis counters, one MULTI/EXEC round trip per batch.
//! - [`sink::vote_log`]: MongoDB documents, one unordered insert_many per batch.
//! - [`dead_letters`]: records that cannot be decoded go to the DLQ topic.
//! - [`events`]: every metric the consumer exports, in one place.
//! - [`testing`]: an isolated consumer and sink readers for integration tests.
//!
//! Guarantee (this stage): at least once into both sinks. Offsets are committed only
//! after MongoDB and Redis both took the batch (and the DLQ acknowledged its records);
//! the MongoDB log is idempotent by `_id` = vote_id, so a redelivered batch never
//! duplicates a document. Redis counters are applied once per processed batch; a crash
//! between the Redis write and the commit replays that batch into Redis.

pub mod dead_letters;
pub mod events;
pub mod pipeline;
pub mod settings;
pub mod sink;
pub mod testing;

pub use pipeline::launch;
