//! The REST producer pair. `rest-client` is the HTTP front (the shared front of
//! `voteflow_runtime::front` with a pooled keep-alive HTTP hop); `rest-server` validates
//! again and produces each vote to Kafka, answering 202 only after Kafka acknowledged it.
//!
//! # Layout
//! - [`settings`]: typed settings of both binaries (flags and env vars, `--help`).
//! - [`client`]: rest-client, and [`client::RestHop`], its hop to rest-server.
//! - [`server`]: rest-server: `POST /votes` to Kafka through the shared publisher.

pub mod client;
pub mod server;
pub mod settings;
