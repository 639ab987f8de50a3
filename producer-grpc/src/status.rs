//! The one place gRPC statuses are decided: a refusal of the domain's vocabulary becomes a
//! `tonic::Status` (its gRPC code, with `voteflow-error` and `voteflow-field` metadata
//! naming the code and the field), statuses the transport writes are brought in line with
//! that contract, and a Status from grpc-server becomes the refusal grpc-client answers.

use http_body_util::BodyExt as _;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use voteflow_domain::refusal::{GRPC_CODE_KEY, GRPC_FIELD_KEY};
use voteflow_domain::{ErrorCode, GrpcCode, Refusal};
use voteflow_http::ApiError;

/// The Status grpc-server answers for a refusal.
pub fn to_status(refusal: &Refusal) -> Status {
    let mut status = Status::new(tonic_code(refusal.code.grpc_code()), refusal.message.clone());
    let metadata = status.metadata_mut();
    metadata.insert(GRPC_CODE_KEY, MetadataValue::from_static(refusal.code.as_str()));
    if let Some(field) = refusal.field.as_deref().and_then(|field| MetadataValue::try_from(field).ok()) {
        metadata.insert(GRPC_FIELD_KEY, field);
    }
    status
}

fn tonic_code(code: GrpcCode) -> Code {
    Code::from_i32(code as i32)
}

/// Brings statuses produced by the transport into the contract: a message over the size
/// limit is RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE) and an undecodable protobuf is
/// INVALID_ARGUMENT (tonic says INTERNAL), each with its `voteflow-error` like any refusal.
pub fn normalize(status: Status) -> Status {
    match normalized_code(status.code(), status.message()) {
        Some(code) => to_status(&Refusal::new(code, status.message().to_owned())),
        None => status,
    }
}

fn normalized_code(code: Code, message: &str) -> Option<ErrorCode> {
    match code {
        Code::OutOfRange if message.contains("message length too large") => Some(ErrorCode::BodyTooLarge),
        Code::Internal if message.contains("decode") => Some(ErrorCode::MalformedJson),
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
    if let Some(code) = normalized_code(status.code(), status.message()) {
        headers.insert("grpc-status", http::HeaderValue::from(code.grpc_code() as i32));
        headers.insert(GRPC_CODE_KEY, http::HeaderValue::from_static(code.as_str()));
    }
}

fn metadata<'a>(status: &'a Status, key: &str) -> Option<&'a str> {
    status.metadata().get(key).and_then(|value| value.to_str().ok())
}

/// The refusal grpc-client answers for a Status from grpc-server: grpc-server's own code
/// when it named one (so the HTTP answer is the one rest-client relays from rest-server);
/// otherwise what the gRPC code says about the hop.
pub fn to_api_error(status: Status) -> ApiError {
    if let Some(code) = metadata(&status, GRPC_CODE_KEY).and_then(ErrorCode::parse) {
        let field = metadata(&status, GRPC_FIELD_KEY).map(str::to_owned);
        return ApiError::Refused(Refusal { code, field, message: status.message().to_owned() });
    }
    let code = match status.code() {
        Code::InvalidArgument => ErrorCode::InvalidBody,
        Code::ResourceExhausted => ErrorCode::Overloaded,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            return ApiError::next_hop_unavailable(format!("grpc-server: {}", status.message()));
        }
        other => return ApiError::next_hop_broken(format!("grpc-server answered {other:?}: {}", status.message())),
    };
    ApiError::Refused(Refusal::new(code, status.message()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use voteflow_service::kafka::PublishError;

    use super::*;

    #[test]
    fn refusals_carry_code_and_field_both_ways() {
        let vote_error = voteflow_domain::Vote::try_from(voteflow_domain::pb::Vote::default()).unwrap_err();
        let status = to_status(&Refusal::from(vote_error));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            (metadata(&status, GRPC_CODE_KEY), metadata(&status, GRPC_FIELD_KEY)),
            (Some("invalid_field"), Some("band"))
        );
        let answer = to_api_error(status);
        assert_eq!(answer.status(), 422);
        let body: serde_json::Value = serde_json::from_str(&answer.body()).unwrap();
        assert_eq!((body["error"].as_str(), body["field"].as_str()), (Some("invalid_field"), Some("band")));
    }

    #[test]
    fn kafka_failures_are_unavailable_and_overload_is_exhausted() {
        let status = to_status(&Refusal::from(PublishError::Timeout(Duration::from_secs(2))));
        assert_eq!(status.code(), Code::Unavailable);
        let answer = to_api_error(status);
        assert_eq!((answer.status(), answer.code()), (503, Some(ErrorCode::KafkaUnavailable)));
        let status = to_status(&Refusal::from(PublishError::Overloaded));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(to_api_error(status).code(), Some(ErrorCode::Overloaded));
        let too_many = to_status(&voteflow_domain::batch::too_many(10, None));
        assert_eq!((too_many.code(), to_api_error(too_many).status()), (Code::ResourceExhausted, 413));
        assert_eq!(
            to_api_error(Status::unavailable("connection refused")).code(),
            Some(ErrorCode::UpstreamUnavailable)
        );
        assert_eq!(to_api_error(Status::resource_exhausted("shed")).status(), 503, "tonic's own load shedding");
        assert_eq!(to_api_error(Status::internal("boom")).code(), Some(ErrorCode::BadGateway));
    }

    #[test]
    fn transport_statuses_are_normalized() {
        let too_large = Status::out_of_range("Error, decoded message length too large: found 20000 bytes");
        assert_eq!(normalize(too_large).code(), Code::ResourceExhausted);
        let undecodable = Status::internal("failed to decode Protobuf message: invalid wire type");
        let undecodable = normalize(undecodable);
        assert_eq!(undecodable.code(), Code::InvalidArgument);
        assert_eq!(metadata(&undecodable, GRPC_CODE_KEY), Some("malformed_json"));
        assert_eq!(normalize(Status::internal("boom")).code(), Code::Internal);
        let other_range = Status::out_of_range("index 9 is past the end");
        assert_eq!(normalize(other_range).code(), Code::OutOfRange, "only the size limit is RESOURCE_EXHAUSTED");
    }

    /// A status tonic writes into the headers (a trailers-only answer) is normalized there.
    #[test]
    fn a_trailers_only_answer_is_normalized_in_its_headers() {
        let response = http::Response::builder()
            .header("grpc-status", "11")
            .header("grpc-message", "Error, decoded message length too large: found 20000 bytes")
            .body(tonic::body::Body::empty())
            .unwrap();
        let headers = normalize_response(response).into_parts().0.headers;
        assert_eq!(headers.get("grpc-status").and_then(|value| value.to_str().ok()), Some("8"));
        assert_eq!(headers.get(GRPC_CODE_KEY).and_then(|value| value.to_str().ok()), Some("body_too_large"));
    }
}
