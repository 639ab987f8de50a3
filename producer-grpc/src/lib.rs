//! The gRPC producer pair. `grpc-client` is the HTTP front (the same front as
//! rest-client, from `voteflow_runtime::front`) with [`client::GrpcHop`], one long-lived
//! multiplexed HTTP/2 channel per grpc-server, calls spread over them; `grpc-server` implements
//! `voteflow.v1.VoteService` and produces through the same shared publisher as rest-server.
//!
//! # Layout
//! - [`settings`]: typed settings of both binaries (flags and env vars, `--help`).
//! - [`status`]: the one place errors become `tonic::Status` and a Status becomes an HTTP answer.
//! - [`server`]: grpc-server: CastVote, CastVotes, health, load shedding, metrics.
//! - [`client`]: grpc-client and its hop.
//! - [`upstreams`]: grpc-client's grpc-servers: resolved, health-checked, balanced.

pub mod client;
pub mod server;
pub mod settings;
pub mod status;
mod upstreams;
