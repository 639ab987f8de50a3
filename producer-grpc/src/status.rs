//! The one place where gRPC errors are decided: what grpc-server answers for each failure
//! (with `voteflow-error` and `voteflow-field` metadata naming the code and the field),
//! how transport-level statuses are brought in line with that contract, and how
//! grpc-client turns a Status into the same HTTP answer rest-client would give.

use http_body_util::BodyExt as _;
use tonic::{Code, Status};
use voteflow_proto::VoteError;
use voteflow_runtime::batch::ItemError;
use voteflow_runtime::http::ApiError;
use voteflow_runtime::http::error::RETRY_AFTER_SECS;
use voteflow_runtime::kafka::PublishError;

/// Metadata key of the stable error code (as in the HTTP fronts' JSON errors).
pub const CODE_KEY: &str = "voteflow-error";
/// Metadata key of the field at fault.
pub const FIELD_KEY: &str = "voteflow-field";

/// Why grpc-server did not accept a vote or a stream.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("a CastVotes stream holds at most {limit} votes")]
    TooManyVotes { limit: usize },
    #[error(transparent)]
    InvalidVote(#[from] VoteError),
    #[error("vote not accepted: {0}")]
    NotAccepted(#[from] PublishError),
}

impl RpcError {
    pub fn code(&self) -> &'static str {
        match self {
            RpcError::TooManyVotes { .. } => "batch_too_large",
            RpcError::InvalidVote(error) => error.problem.code(),
            RpcError::NotAccepted(PublishError::Overloaded) => "overloaded",
            RpcError::NotAccepted(_) => "kafka_unavailable",
        }
    }

    pub fn to_item_error(&self) -> ItemError {
        ItemError {
            error: self.code().to_owned(),
            field: match self {
                RpcError::InvalidVote(error) => Some(error.field.to_owned()),
                _ => None,
            },
            message: self.to_string(),
        }
    }
}

impl From<RpcError> for Status {
    fn from(error: RpcError) -> Self {
        let mut status = match &error {
            RpcError::TooManyVotes { .. } | RpcError::NotAccepted(PublishError::Overloaded) => {
                Status::resource_exhausted(error.to_string())
            }
            RpcError::InvalidVote(_) => Status::invalid_argument(error.to_string()),
            RpcError::NotAccepted(_) => Status::unavailable(error.to_string()),
        };
        let metadata = status.metadata_mut();
        metadata.insert(CODE_KEY, tonic::metadata::MetadataValue::from_static(error.code()));
        if let RpcError::InvalidVote(vote_error) = &error {
            metadata.insert(FIELD_KEY, tonic::metadata::MetadataValue::from_static(vote_error.field));
        }
        status
    }
}

/// Brings statuses produced by the transport into the contract: a message over the size
/// limit is RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE) and an undecodable protobuf is
/// INVALID_ARGUMENT (tonic says INTERNAL).
pub fn normalize(status: Status) -> Status {
    match normalized_code(status.code(), status.message()) {
        Some(code) => Status::new(code, status.message().to_owned()),
        None => status,
    }
}

fn normalized_code(code: Code, message: &str) -> Option<Code> {
    match code {
        Code::OutOfRange if message.contains("message length too large") => Some(Code::ResourceExhausted),
        Code::Internal if message.contains("decode") => Some(Code::InvalidArgument),
        _ => None,
    }
}

/// [`normalize`] for statuses tonic writes itself, before or while decoding a request:
/// a tower layer on grpc-server applies it to the headers (trailers-only answers) and to
/// the trailers of every response.
pub fn normalize_response(response: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
    let (mut parts, body) = response.into_parts();
    normalize_grpc_status(&mut parts.headers);
    let body = body.map_frame(|mut frame| {
        if let Some(trailers) = frame.trailers_mut() {
            normalize_grpc_status(trailers);
        }
        frame
    });
    http::Response::from_parts(parts, tonic::body::Body::new(body))
}

fn normalize_grpc_status(headers: &mut http::HeaderMap) {
    // Parsed by tonic, which also percent-decodes grpc-message.
    let Some(status) = Status::from_header_map(headers) else { return };
    if let Some(fixed) = normalized_code(status.code(), status.message()) {
        headers.insert("grpc-status", http::HeaderValue::from(fixed as i32));
    }
}

fn metadata<'a>(status: &'a Status, key: &str) -> Option<&'a str> {
    status.metadata().get(key).and_then(|value| value.to_str().ok())
}

/// The HTTP answer grpc-client gives for a Status from grpc-server: the same status codes
/// and JSON body rest-client relays from rest-server.
pub fn to_api_error(status: Status) -> ApiError {
    let code = metadata(&status, CODE_KEY).map(str::to_owned);
    let field = metadata(&status, FIELD_KEY).map(str::to_owned);
    let relay = |http_status: u16, code: &str, retry_after: Option<String>| {
        let mut body = serde_json::json!({"error": code, "message": status.message()});
        if let Some(field) = &field {
            body["field"] = serde_json::Value::String(field.clone());
        }
        ApiError::Relayed { status: http_status, body: body.to_string(), retry_after }
    };
    let retry = || Some(RETRY_AFTER_SECS.to_string());
    match (status.code(), code.as_deref()) {
        (Code::InvalidArgument, code) => relay(422, code.unwrap_or("invalid_field"), None),
        (Code::ResourceExhausted, Some("batch_too_large")) => relay(413, "batch_too_large", None),
        (Code::ResourceExhausted, _) => relay(503, "overloaded", retry()),
        (Code::Unavailable, Some(code)) => relay(503, code, retry()),
        (Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown, _) => {
            ApiError::NextHopUnavailable(format!("grpc-server: {}", status.message()))
        }
        (other, _) => ApiError::NextHopBroken(format!("grpc-server answered {other:?}: {}", status.message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_votes_carry_code_and_field_both_ways() {
        let vote_error = voteflow_proto::Vote::try_from(voteflow_proto::pb::Vote::default()).unwrap_err();
        let status = Status::from(RpcError::from(vote_error));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(metadata(&status, FIELD_KEY), Some("band"));
        let answer = to_api_error(status);
        assert_eq!(answer.status().code, 422);
        let body: serde_json::Value = serde_json::from_str(&answer.body()).unwrap();
        assert_eq!((body["error"].as_str(), body["field"].as_str()), (Some("invalid_field"), Some("band")));
    }

    #[test]
    fn kafka_failures_are_unavailable_and_overload_is_exhausted() {
        let status = Status::from(RpcError::from(PublishError::Timeout(std::time::Duration::from_secs(2))));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(to_api_error(status).status().code, 503);
        let status = Status::from(RpcError::from(PublishError::Overloaded));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(to_api_error(Status::unavailable("connection refused")).code(), "upstream_unavailable");
    }

    #[test]
    fn transport_statuses_are_normalized() {
        let too_large = Status::out_of_range("Error, decoded message length too large: found 20000 bytes");
        assert_eq!(normalize(too_large).code(), Code::ResourceExhausted);
        let undecodable = Status::internal("failed to decode Protobuf message: invalid wire type");
        assert_eq!(normalize(undecodable).code(), Code::InvalidArgument);
        assert_eq!(normalize(Status::internal("boom")).code(), Code::Internal);
    }
}
