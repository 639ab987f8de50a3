//! The Kafka record of an accepted vote: protobuf `AcceptedVote` as the payload, the
//! vote_id as the key, and headers naming the path and content type. Producers encode
//! it; the consumer decodes and validates it again (a record it cannot read goes to the DLQ).

use chrono::{DateTime, Utc};
use prost::Message;

use crate::pb;
use crate::vote::{Vote, VoteError, utc_to_timestamp};

/// Header naming which producer path accepted the vote.
pub const PATH_HEADER: &str = "voteflow-path";
/// Header giving the payload's encoding.
pub const CONTENT_TYPE_HEADER: &str = "content-type";
/// The payload's content type.
pub const CONTENT_TYPE: &str = "application/x-protobuf; messageType=voteflow.v1.AcceptedVote";

/// Which producer pair a vote came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VotePath {
    Grpc,
    Rest,
}

impl VotePath {
    pub fn as_str(self) -> &'static str {
        match self {
            VotePath::Grpc => "grpc",
            VotePath::Rest => "rest",
        }
    }

    pub fn parse(raw: &[u8]) -> Option<Self> {
        match raw {
            b"grpc" => Some(VotePath::Grpc),
            b"rest" => Some(VotePath::Rest),
            _ => None,
        }
    }
}

/// Why a Kafka record could not be turned back into a vote.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("payload is empty")]
    Empty,
    #[error("payload is not a protobuf AcceptedVote: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("record has no vote")]
    NoVote,
    #[error("record has no valid accepted_at")]
    NoAcceptedAt,
    #[error("header {PATH_HEADER} is missing or not grpc/rest")]
    BadPath,
    #[error("vote is invalid: {0}")]
    InvalidVote(#[from] VoteError),
}

/// A vote as accepted by a producer server, the unit that travels through Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedRecord {
    pub vote: Vote,
    pub accepted_at: DateTime<Utc>,
    pub path: VotePath,
}

impl AcceptedRecord {
    /// The Kafka payload.
    pub fn encode_payload(&self) -> Vec<u8> {
        pb::AcceptedVote {
            vote: Some(pb::Vote::from(&self.vote)),
            accepted_at: Some(utc_to_timestamp(self.accepted_at)),
        }
        .encode_to_vec()
    }

    /// Rebuilds and revalidates a record from a payload and the value of its path header.
    pub fn decode(payload: Option<&[u8]>, path_header: Option<&[u8]>) -> Result<Self, RecordError> {
        let payload = payload.filter(|p| !p.is_empty()).ok_or(RecordError::Empty)?;
        let wire = pb::AcceptedVote::decode(payload)?;
        let path = path_header.and_then(VotePath::parse).ok_or(RecordError::BadPath)?;
        let vote = Vote::try_from(wire.vote.ok_or(RecordError::NoVote)?)?;
        let accepted_at = wire
            .accepted_at
            .and_then(|ts| u32::try_from(ts.nanos).ok().and_then(|n| DateTime::from_timestamp(ts.seconds, n)))
            .ok_or(RecordError::NoAcceptedAt)?;
        Ok(Self { vote, accepted_at, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vote::VoteJson;

    /// The names are the `path` header's value and the Redis and dashboard labels.
    #[test]
    fn a_path_is_named_as_the_header_and_the_tallies_carry_it() {
        assert_eq!((VotePath::Grpc.as_str(), VotePath::Rest.as_str()), ("grpc", "rest"));
        for path in [VotePath::Grpc, VotePath::Rest] {
            assert_eq!(VotePath::parse(path.as_str().as_bytes()), Some(path));
        }
        assert_eq!(VotePath::parse(b"REST"), None);
    }

    fn sample() -> AcceptedRecord {
        let json: VoteJson =
            serde_json::from_value(serde_json::json!({"band": "Air", "album": "Moon Safari", "year": 1998, "rank": 9}))
                .unwrap();
        AcceptedRecord { vote: Vote::try_from(json).unwrap(), accepted_at: Utc::now(), path: VotePath::Rest }
    }

    #[test]
    fn payload_round_trips() {
        let record = sample();
        let decoded = AcceptedRecord::decode(Some(&record.encode_payload()), Some(b"rest")).unwrap();
        assert_eq!(decoded, record);
    }

    #[test]
    fn undecodable_records_say_why() {
        let record = sample();
        let payload = record.encode_payload();
        assert!(matches!(AcceptedRecord::decode(None, Some(b"rest")), Err(RecordError::Empty)));
        assert!(matches!(AcceptedRecord::decode(Some(b"\xff\xff\xff"), Some(b"rest")), Err(RecordError::Decode(_))));
        assert!(matches!(AcceptedRecord::decode(Some(&payload), Some(b"soap")), Err(RecordError::BadPath)));
        assert!(matches!(AcceptedRecord::decode(Some(&payload), None), Err(RecordError::BadPath)));
        let no_vote = pb::AcceptedVote { vote: None, accepted_at: None }.encode_to_vec();
        // An all-default message encodes to zero bytes, which is reported as empty.
        assert!(AcceptedRecord::decode(Some(&no_vote), Some(b"rest")).is_err());
        let bad_vote = pb::AcceptedVote {
            vote: Some(pb::Vote { rank: 11.0, ..pb::Vote::from(&record.vote) }),
            accepted_at: Some(utc_to_timestamp(record.accepted_at)),
        }
        .encode_to_vec();
        assert!(matches!(AcceptedRecord::decode(Some(&bad_vote), Some(b"grpc")), Err(RecordError::InvalidVote(_))));
    }
}
