//! What every voteflow service shares, so that the producers and the consumer start,
//! report, stop and talk to Kafka the same way.
//!
//! # Layout
//! - [`settings`]: typed settings pieces (Kafka, logging) read from flags and env vars.
//! - [`telemetry`]: `tracing` set-up, once per process.
//! - [`shutdown`]: the one shutdown signal (SIGINT/SIGTERM) every server and loop watches.
//! - [`health`]: liveness and readiness, fed by each service's dependency checks.
//! - [`admin`]: a small HTTP server for `/healthz`, `/readyz` and `/metrics`.
//! - [`http`]: what every HTTP service shares (settings, JSON errors, request metrics),
//!   and rest-server's Rocket plumbing: body guard, catchers, launch.
//! - [`batch`]: batches of votes: per-vote validation and the JSON report.
//! - [`front`]: the HTTP front of a producer pair (served by hyper), generic over the hop behind it.
//! - [`kafka`]: the shared publisher; a vote counts as accepted only once Kafka acked it.

pub mod admin;
pub mod batch;
pub mod front;
pub mod health;
pub mod http;
pub mod kafka;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
