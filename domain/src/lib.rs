//! The vote contract of voteflow, free of any web framework: what a vote is, how it is
//! refused, and how it travels. Every other crate builds on this one.
//!
//! # Layout
//! - [`pb`]: prost messages of package `voteflow.v1` from `proto/vote.proto` (wire form,
//!   never trusted); the gRPC service stubs are generated where they serve and call.
//! - [`vote`]: the validated [`Vote`], built only from the protobuf form or the JSON form
//!   the HTTP fronts accept.
//! - [`refusal`]: the one vocabulary of refusals: each [`ErrorCode`] with its HTTP status,
//!   gRPC code and Retry-After, and the [`Refusal`] every transport renders.
//! - [`json`]: a vote from JSON bytes, each fault a [`Refusal`] naming its field.
//! - [`batch`]: a batch of votes judged vote by vote, its outcomes and their JSON report.
//! - [`record`]: the Kafka payload (`AcceptedVote`) and its headers, in both directions.

pub mod batch;
pub mod json;
pub mod record;
pub mod refusal;
pub mod vote;

/// Wire messages generated from `proto/vote.proto`.
#[allow(unreachable_pub, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/voteflow.v1.rs"));
}

pub use batch::ItemOutcome;
pub use record::{AcceptedRecord, RecordError, VotePath};
pub use refusal::{ErrorCode, GrpcCode, Refusal};
pub use vote::{Problem, Vote, VoteError, VoteJson};
