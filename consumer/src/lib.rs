//! The consumer: a Kafka consumer-group member that turns accepted votes into live
//! tallies in Redis and a timestamped vote log in MongoDB.
//!
//! # Layout
//! - [`settings`]: typed settings (flags and env vars, `--help`).
//! - [`pipeline`]: the batch loop: receive, decode, write both sinks, then commit.
//! - [`sink::tally`]: Redis counters, one atomic Lua round trip per batch.
//! - [`sink::vote_log`]: MongoDB documents, one unordered insert_many per batch.
//! - [`dead_letters`]: records that cannot be decoded go to the DLQ topic.
//! - [`events`]: every metric the consumer exports, in one place.
//!
//! Builds on `voteflow-domain` (the record) and `voteflow-service` (settings, health, the
//! admin endpoints, the Kafka readiness check); no web framework. Test support lives in
//! `voteflow-testkit`.
//!
//! Guarantee (this stage): exactly-once effect on both sinks. Kafka delivers at least
//! once (offsets are committed only after MongoDB and Redis both took the batch, and the
//! DLQ acknowledged its records); the vote log stores each vote_id once, the tally counts
//! each Kafka record once (an atomic per-partition offset check in Redis), and a vote_id
//! a client sent twice is counted and stored once. Each module says how.

pub mod dead_letters;
pub mod events;
pub mod pipeline;
pub mod settings;
pub mod sink;

pub use pipeline::launch;
