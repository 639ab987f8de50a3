//! The gRPC producer pair. `grpc-client` is the HTTP front (`voteflow_http::front` on
//! Rocket, the same front as rest-client) with [`front::GrpcHop`], one long-lived
//! multiplexed HTTP/2 channel per grpc-server, calls spread over them; `grpc-server`
//! implements `voteflow.v1.VoteService` over tonic and produces through the same shared
//! publisher as rest-server.
//!
//! # Layout
//! - [`rpc`]: the VoteService client and server stubs (messages: `voteflow_domain::pb`).
//! - [`settings`]: typed settings of both binaries (flags and env vars, `--help`).
//! - [`status`]: the one place a refusal becomes a `tonic::Status` and a Status a refusal.
//! - [`server`]: grpc-server: CastVote, CastVotes, health, load shedding, metrics.
//! - [`front`]: grpc-client and its hop.
//! - `upstreams`: grpc-client's grpc-servers: resolved, health-checked, balanced.
//!
//! Builds on `voteflow-domain`, `voteflow-service` and `voteflow-http`; nothing depends on it.

pub mod front;
pub mod server;
pub mod settings;
pub mod status;
mod upstreams;

/// The `voteflow.v1.VoteService` client and server stubs generated from `proto/vote.proto`.
#[allow(unreachable_pub, clippy::all)]
pub mod rpc {
    include!(concat!(env!("OUT_DIR"), "/voteflow.v1.rs"));
}
