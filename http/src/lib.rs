//! Every HTTP service of voteflow, on Rocket: the front that rest-client and grpc-client
//! share (they differ only in the hop behind it), and what rest-server shares with it.
//! Rocket glue lives here and in rest-server, nowhere else.
//!
//! # Layout
//! - [`settings`]: body and batch limits, the drain's grace, the upstream timeout.
//! - [`answer`]: what every answer is (status, content type, sized body, nosniff), and the
//!   answers to a vote (202) and a batch (200 with its report).
//! - [`error`]: [`ApiError`], the one place a refusal becomes an HTTP answer (status, JSON
//!   body, Retry-After), and the JSON catchers.
//! - [`body`]: the request-body guards: content type, size, time, JSON, validation.
//! - [`metrics`]: requests counted by route and status, timed by route.
//! - [`server`]: the Rocket configuration, the probe routes, and the launch that reports
//!   the bound address (port 0 works in tests) and drains on the one shutdown signal.
//!
//! Requests are bounded by `MAX_REQUESTS_IN_FLIGHT` (Rocket bounds no connections) and
//! bodies by their size limits; docs/decisions/0001 says what Rocket costs per vote.
//! - [`front`]: the front: the vote routes (bare and under its prefixes) and the
//!   [`front::NextHop`] it forwards to.
//!
//! Depends on `voteflow-domain` and `voteflow-service`; the producer crates build on it.

pub mod answer;
pub mod body;
pub mod error;
pub mod front;
pub mod metrics;
pub mod server;
pub mod settings;

pub use error::ApiError;
