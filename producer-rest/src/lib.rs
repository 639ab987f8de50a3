//! The REST producer pair, both on Rocket. `rest-client` is the HTTP front
//! (`voteflow_http::front`, shared with grpc-client) with a pooled keep-alive HTTP hop;
//! `rest-server` validates again and produces each vote to Kafka, answering 202 only after
//! Kafka acknowledged it.
//!
//! # Layout
//! - [`settings`]: typed settings of both binaries (flags and env vars, `--help`).
//! - [`front`]: rest-client, and [`front::RestHop`], its hop to rest-server.
//! - [`server`]: rest-server: `POST /votes` and `POST /votes/batch` to Kafka through the
//!   shared publisher.
//!
//! Builds on `voteflow-domain`, `voteflow-service` and `voteflow-http`; nothing depends on it.

pub mod front;
pub mod server;
pub mod settings;
