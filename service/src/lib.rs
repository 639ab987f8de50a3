//! What every voteflow service shares, so that the producers and the consumer start,
//! report, stop and talk to Kafka the same way. No web framework: the consumer builds on
//! this crate alone.
//!
//! # Layout
//! - [`settings`]: typed settings pieces (Kafka, publishing, logging) and [`settings::SecretUrl`],
//!   a URL whose password never prints.
//! - [`telemetry`]: `tracing` set-up, once per process (text, or JSON with Cloud Logging's severity).
//! - [`shutdown`]: the one shutdown signal (SIGINT/SIGTERM) every server and loop watches.
//! - [`health`]: readiness, fed by [`health::watch`] probing each dependency.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics`: the answers every service gives, and a
//!   small server for services without an HTTP server of their own.
//! - [`metrics`]: bucket lists shared by every latency histogram.
//! - [`kafka`]: the shared publisher; a vote counts as accepted only once Kafka acked it.
//! - [`process`]: a running service ([`process::Running`]) and the `main` every binary shares.
//!
//! Dependencies point one way: `voteflow-domain` <- this crate <- `voteflow-http` (Rocket)
//! and the services.

pub mod admin;
pub mod health;
pub mod kafka;
pub mod metrics;
pub mod process;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
