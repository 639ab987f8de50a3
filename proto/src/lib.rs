//! The vote contract shared by every stage of voteflow: the wire types generated from
//! `vote.proto`, the validated domain [`Vote`], and the Kafka record that carries it.
//!
//! # Layout
//! - [`pb`]: prost/tonic types of package `voteflow.v1` (wire form, never trusted).
//! - [`vote`]: the domain [`Vote`], built only through validation from the protobuf
//!   form or the JSON form the HTTP fronts accept.
//! - [`record`]: the Kafka payload (`AcceptedVote`) and its headers, in both directions.

pub mod record;
pub mod vote;

/// Wire types and gRPC stubs generated from `vote.proto`.
#[allow(unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("voteflow.v1");
}

pub use record::{AcceptedRecord, RecordError, VotePath};
pub use vote::{Problem, Vote, VoteError, VoteJson};
