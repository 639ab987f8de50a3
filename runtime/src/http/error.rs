//! Every error an HTTP service of voteflow can answer, and the one place each is mapped
//! to a status code and the JSON body `{"error": code, "field": name, "message": text}`.

use std::io::Cursor;

use rocket::Request;
use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder, Response};
use serde::Serialize;
use voteflow_proto::VoteError;

use crate::kafka::PublishError;

/// Seconds a client is told to wait before retrying a vote that was not accepted.
pub const RETRY_AFTER_SECS: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("body is larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("{0}")]
    InvalidBody(String),
    #[error("a batch holds at most {limit} votes, got {got}")]
    TooManyVotes { limit: usize, got: usize },
    #[error(transparent)]
    InvalidVote(#[from] VoteError),
    #[error("vote not accepted: {0}")]
    NotAccepted(#[from] PublishError),
    #[error("the next hop is unreachable: {0}")]
    NextHopUnavailable(String),
    #[error("the next hop answered in an unexpected way: {0}")]
    NextHopBroken(String),
    /// An answer of the next hop, relayed unchanged (it already has the JSON shape).
    #[error("next hop answered {status}")]
    Relayed { status: u16, body: String, retry_after: Option<String> },
    #[error("{0}")]
    Status(Status),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    message: String,
}

impl ApiError {
    /// As Rocket answers a path or method it has no route for.
    pub const NOT_FOUND: ApiError = ApiError::Status(Status::NotFound);

    pub fn status(&self) -> Status {
        match self {
            ApiError::MalformedJson(_) => Status::BadRequest,
            ApiError::UnsupportedMediaType => Status::UnsupportedMediaType,
            ApiError::BodyTooLarge { .. } | ApiError::TooManyVotes { .. } => Status::PayloadTooLarge,
            ApiError::InvalidBody(_) | ApiError::InvalidVote(_) => Status::UnprocessableEntity,
            ApiError::NotAccepted(_) | ApiError::NextHopUnavailable(_) => Status::ServiceUnavailable,
            ApiError::NextHopBroken(_) => Status::BadGateway,
            ApiError::Relayed { status, .. } => Status::from_code(*status).unwrap_or(Status::BadGateway),
            ApiError::Status(status) => *status,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::TooManyVotes { .. } => "batch_too_large",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::InvalidVote(error) => error.problem.code(),
            ApiError::NotAccepted(PublishError::Overloaded) => "overloaded",
            ApiError::NotAccepted(_) => "kafka_unavailable",
            ApiError::NextHopUnavailable(_) => "upstream_unavailable",
            ApiError::NextHopBroken(_) => "bad_gateway",
            ApiError::Relayed { .. } => "relayed",
            ApiError::Status(status) if status.code == 404 => "not_found",
            ApiError::Status(status) if status.code == 405 => "method_not_allowed",
            ApiError::Status(status) if status.code >= 500 => "internal",
            ApiError::Status(_) => "bad_request",
        }
    }

    pub fn field(&self) -> Option<&'static str> {
        match self {
            ApiError::InvalidVote(error) => Some(error.field),
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<String> {
        match self {
            ApiError::Relayed { retry_after, .. } => retry_after.clone(),
            _ if self.status() == Status::ServiceUnavailable => Some(RETRY_AFTER_SECS.to_string()),
            _ => None,
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> String {
        if let ApiError::Relayed { body, .. } = self {
            return body.clone();
        }
        let message = match self {
            ApiError::Status(status) => status.reason_lossy().to_owned(),
            other => other.to_string(),
        };
        let body = ErrorBody { error: self.code(), field: self.field(), message };
        serde_json::to_string(&body).unwrap_or_else(|_| r#"{"error":"internal"}"#.to_owned())
    }
}

impl ApiError {
    fn log(&self) {
        let status = self.status();
        if status.code >= 500 {
            tracing::warn!(status = status.code, error = %self, "request not served");
        } else {
            tracing::debug!(status = status.code, error = %self, "request refused");
        }
    }

    /// This error as a hyper answer (the fronts): the same status, JSON body and
    /// Retry-After as the Rocket answer below.
    pub fn into_response(self) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
        self.log();
        let status = hyper::StatusCode::from_u16(self.status().code).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
        let mut response = crate::admin::reply(status, "application/json", self.body());
        if let Some(retry_after) = self.retry_after().and_then(|value| hyper::header::HeaderValue::try_from(value).ok())
        {
            response.headers_mut().insert(hyper::header::RETRY_AFTER, retry_after);
        }
        response
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, _request: &'r Request<'_>) -> response::Result<'static> {
        self.log();
        let status = self.status();
        let body = self.body();
        let mut response = Response::build();
        response.status(status).header(ContentType::JSON).sized_body(body.len(), Cursor::new(body));
        if let Some(retry_after) = self.retry_after() {
            response.header(Header::new("Retry-After", retry_after));
        }
        response.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_errors_name_their_field() {
        let vote_error = voteflow_proto::Vote::try_from(voteflow_proto::pb::Vote::default()).unwrap_err();
        let error = ApiError::from(vote_error);
        assert_eq!(error.status(), Status::UnprocessableEntity);
        let body: serde_json::Value = serde_json::from_str(&error.body()).unwrap();
        assert_eq!(body["field"], "band");
        assert_eq!(body["error"], "invalid_field");
    }

    #[test]
    fn not_accepted_is_503_with_retry_after() {
        let error = ApiError::from(PublishError::Timeout(std::time::Duration::from_secs(2)));
        assert_eq!(error.status(), Status::ServiceUnavailable);
        assert_eq!(error.retry_after().as_deref(), Some("1"));
        let body: serde_json::Value = serde_json::from_str(&error.body()).unwrap();
        assert_eq!(body["error"], "kafka_unavailable");
        assert!(body.get("field").is_none());
    }
}
