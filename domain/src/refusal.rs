//! Every reason voteflow refuses a request or does not accept a vote, one vocabulary for
//! every transport: each [`ErrorCode`] knows its stable name, its HTTP status, its gRPC
//! status code and whether the client should retry; a [`Refusal`] adds the field at fault
//! and a message, and renders the JSON body `{"error", "field", "message"}` of every HTTP
//! refusal. The HTTP services and the gRPC services render from here, and only from here.

use serde::Serialize;

use crate::vote::{Problem, VoteError};

/// Seconds a client is told to wait (Retry-After) before it sends a vote again that was
/// not accepted.
pub const RETRY_AFTER_SECS: u32 = 1;
/// gRPC metadata key carrying an [`ErrorCode`]'s name.
pub const GRPC_CODE_KEY: &str = "voteflow-error";
/// gRPC metadata key carrying the field at fault.
pub const GRPC_FIELD_KEY: &str = "voteflow-field";

/// The gRPC status codes voteflow answers with, by their numbers on the wire
/// (grpc/grpc, doc/statuscodes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCode {
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
}

/// Why a request was refused or a vote not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The body is not JSON (or, on gRPC, not a decodable protobuf).
    MalformedJson,
    UnsupportedMediaType,
    BodyTooLarge,
    /// The request's body did not arrive within the read timeout.
    RequestTimeout,
    /// More votes in one batch or stream than allowed.
    BatchTooLarge,
    /// JSON of the wrong shape.
    InvalidBody,
    MissingField,
    WrongType,
    InvalidField,
    /// Kafka did not acknowledge the vote within the delivery bound.
    KafkaUnavailable,
    /// Too many votes in flight: shed.
    Overloaded,
    /// The next hop (rest-server, grpc-server) could not be reached.
    UpstreamUnavailable,
    /// The next hop answered in a way it never should.
    BadGateway,
    NotFound,
    MethodNotAllowed,
    BadRequest,
    Internal,
}

const ALL: [ErrorCode; 17] = [
    ErrorCode::MalformedJson,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::BodyTooLarge,
    ErrorCode::RequestTimeout,
    ErrorCode::BatchTooLarge,
    ErrorCode::InvalidBody,
    ErrorCode::MissingField,
    ErrorCode::WrongType,
    ErrorCode::InvalidField,
    ErrorCode::KafkaUnavailable,
    ErrorCode::Overloaded,
    ErrorCode::UpstreamUnavailable,
    ErrorCode::BadGateway,
    ErrorCode::NotFound,
    ErrorCode::MethodNotAllowed,
    ErrorCode::BadRequest,
    ErrorCode::Internal,
];

impl ErrorCode {
    /// The stable, machine-readable name (`error` in JSON, `voteflow-error` on gRPC).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::BatchTooLarge => "batch_too_large",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::WrongType => "wrong_type",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::KafkaUnavailable => "kafka_unavailable",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::BadGateway => "bad_gateway",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Internal => "internal",
        }
    }

    /// The code a name stands for (as read back from a next hop's answer).
    pub fn parse(name: &str) -> Option<Self> {
        ALL.into_iter().find(|code| code.as_str() == name)
    }

    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedJson | ErrorCode::BadRequest => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::BodyTooLarge | ErrorCode::BatchTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::InvalidBody | ErrorCode::MissingField | ErrorCode::WrongType | ErrorCode::InvalidField => 422,
            ErrorCode::Internal => 500,
            ErrorCode::BadGateway => 502,
            ErrorCode::KafkaUnavailable | ErrorCode::Overloaded | ErrorCode::UpstreamUnavailable => 503,
        }
    }

    pub const fn grpc_code(self) -> GrpcCode {
        match self {
            ErrorCode::MalformedJson
            | ErrorCode::InvalidBody
            | ErrorCode::MissingField
            | ErrorCode::WrongType
            | ErrorCode::InvalidField
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::BadRequest => GrpcCode::InvalidArgument,
            ErrorCode::BodyTooLarge | ErrorCode::BatchTooLarge | ErrorCode::Overloaded => GrpcCode::ResourceExhausted,
            ErrorCode::KafkaUnavailable | ErrorCode::UpstreamUnavailable => GrpcCode::Unavailable,
            ErrorCode::NotFound => GrpcCode::NotFound,
            ErrorCode::RequestTimeout => GrpcCode::DeadlineExceeded,
            ErrorCode::MethodNotAllowed => GrpcCode::Unimplemented,
            ErrorCode::BadGateway | ErrorCode::Internal => GrpcCode::Internal,
        }
    }

    /// Not accepted this time, but may be the next: answered with Retry-After.
    pub const fn retry(self) -> bool {
        matches!(self, ErrorCode::KafkaUnavailable | ErrorCode::Overloaded | ErrorCode::UpstreamUnavailable)
    }
}

/// A refusal: its code, the field at fault (when one is), and a message for people.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: ErrorCode,
    pub field: Option<String>,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    message: &'a str,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, field: None, message: message.into() }
    }

    /// The JSON body of this refusal: `{"error": code, "field": name, "message": text}`,
    /// `field` only when one is at fault.
    pub fn json(&self) -> String {
        let body = Body { error: self.code.as_str(), field: self.field.as_deref(), message: &self.message };
        serde_json::to_string(&body).expect("a refusal always serializes")
    }
}

impl From<VoteError> for Refusal {
    fn from(error: VoteError) -> Self {
        let code = match error.problem {
            Problem::Missing => ErrorCode::MissingField,
            Problem::WrongType => ErrorCode::WrongType,
            Problem::Invalid => ErrorCode::InvalidField,
        };
        Self { code, field: Some(error.field.to_owned()), message: error.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_name_and_renders_for_both_transports() {
        for code in ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code), "{code:?}");
            assert!((400..600).contains(&code.http_status()), "{code:?}");
            assert_eq!(code.retry(), code.http_status() == 503, "{code:?}: Retry-After goes with 503");
        }
        let names: std::collections::HashSet<_> = ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(names.len(), ALL.len(), "one name per code");
        assert_eq!(ErrorCode::parse("no_such_code"), None);
        assert_eq!(ErrorCode::InvalidField.grpc_code() as i32, 3);
        assert_eq!(ErrorCode::Overloaded.grpc_code() as i32, 8);
        assert_eq!(ErrorCode::KafkaUnavailable.grpc_code() as i32, 14);
    }

    #[test]
    fn a_vote_error_names_its_field_in_the_json_body() {
        let error = VoteError { field: "rank", problem: Problem::Invalid, message: "must be from 0 to 10".into() };
        let refusal = Refusal::from(error);
        let body: serde_json::Value = serde_json::from_str(&refusal.json()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "invalid_field", "field": "rank", "message": "rank: must be from 0 to 10"})
        );
        let plain: serde_json::Value =
            serde_json::from_str(&Refusal::new(ErrorCode::Overloaded, "shed \"now\"").json()).unwrap();
        assert_eq!(plain, serde_json::json!({"error": "overloaded", "message": "shed \"now\""}));
    }
}
