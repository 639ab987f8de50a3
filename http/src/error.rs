//! Every refusal an HTTP service of voteflow answers, and the one place each becomes an
//! answer: the status, the JSON body `{"error", "field", "message"}` of the domain's
//! vocabulary ([`voteflow_domain::refusal`]), and Retry-After when the client should retry.

use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder};
use rocket::{Request, catch};
use voteflow_domain::refusal::RETRY_AFTER_SECS;
use voteflow_domain::{ErrorCode, Refusal, VoteError};
use voteflow_service::kafka::PublishError;

use crate::answer::answer;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal in voteflow's vocabulary.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// An answer of the next hop, relayed unchanged (it already has the JSON shape).
    #[error("next hop answered {status}")]
    Relayed { status: u16, body: String, retry_after: Option<String> },
}

impl From<VoteError> for ApiError {
    fn from(error: VoteError) -> Self {
        ApiError::Refused(error.into())
    }
}

impl From<PublishError> for ApiError {
    fn from(error: PublishError) -> Self {
        ApiError::Refused(error.into())
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Refused(Refusal::new(code, message))
    }

    /// The next hop could not be reached (or did not answer in time): 503, retry.
    pub fn next_hop_unavailable(why: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::UpstreamUnavailable, format!("the next hop is unreachable: {why}"))
    }

    /// The next hop answered in a way it never should: 502.
    pub fn next_hop_broken(why: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::BadGateway, format!("the next hop answered in an unexpected way: {why}"))
    }

    /// What a status with no route behind it means (404, 405, a broken request), with
    /// that status kept.
    pub fn of_status(status: u16, reason: &str) -> Self {
        let code = match status {
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 => ErrorCode::RequestTimeout,
            413 => ErrorCode::BodyTooLarge,
            500.. => ErrorCode::Internal,
            _ => ErrorCode::BadRequest,
        };
        let refusal = Refusal::new(code, reason);
        if code.http_status() == status {
            ApiError::Refused(refusal)
        } else {
            ApiError::Relayed { status, body: refusal.json(), retry_after: None }
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Refused(refusal) => refusal.code.http_status(),
            ApiError::Relayed { status, .. } => *status,
        }
    }

    /// The refusal's code, when it is one of ours (a relayed answer carries its own).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ApiError::Refused(refusal) => Some(refusal.code),
            ApiError::Relayed { .. } => None,
        }
    }

    fn retry_after(&self) -> Option<String> {
        match self {
            ApiError::Refused(refusal) => refusal.code.retry().then(|| RETRY_AFTER_SECS.to_string()),
            ApiError::Relayed { retry_after, .. } => retry_after.clone(),
        }
    }

    /// The JSON body of this answer.
    pub fn body(&self) -> String {
        match self {
            ApiError::Refused(refusal) => refusal.json(),
            ApiError::Relayed { body, .. } => body.clone(),
        }
    }

    fn log(&self) {
        let status = self.status();
        if status >= 500 {
            tracing::warn!(status, error = %self, "request not served");
        } else {
            tracing::debug!(status, error = %self, "request refused");
        }
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, _request: &'r Request<'_>) -> response::Result<'static> {
        self.log();
        let mut response = answer(self.status(), ContentType::JSON, self.body());
        if let Some(retry_after) = self.retry_after() {
            response.header(Header::new("Retry-After", retry_after));
        }
        response.ok()
    }
}

/// Every status Rocket answers without a route (no route matched, a malformed request) in
/// the same JSON shape as every other refusal.
#[catch(default)]
pub(crate) fn json_catcher(status: Status, _request: &Request<'_>) -> ApiError {
    ApiError::of_status(status.code, status.reason_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_render_their_vocabulary_and_relayed_answers_stay_as_they_came() {
        let vote_error = voteflow_domain::Vote::try_from(voteflow_domain::pb::Vote::default()).unwrap_err();
        let error = ApiError::from(vote_error);
        assert_eq!((error.status(), error.retry_after()), (422, None));
        let body: serde_json::Value = serde_json::from_str(&error.body()).unwrap();
        assert_eq!((body["error"].as_str(), body["field"].as_str()), (Some("invalid_field"), Some("band")));

        let kafka = ApiError::from(PublishError::Timeout(std::time::Duration::from_secs(2)));
        assert_eq!((kafka.status(), kafka.retry_after().as_deref()), (503, Some("1")));
        assert_eq!(kafka.code(), Some(ErrorCode::KafkaUnavailable));
        assert_eq!(ApiError::from(PublishError::Overloaded).code(), Some(ErrorCode::Overloaded));

        let relayed = ApiError::Relayed { status: 503, body: "{}".into(), retry_after: Some("7".into()) };
        assert_eq!((relayed.status(), relayed.body(), relayed.retry_after().as_deref()), (503, "{}".into(), Some("7")));
        assert_eq!(ApiError::of_status(404, "Not Found").code(), Some(ErrorCode::NotFound));
        let odd = ApiError::of_status(431, "Request Header Fields Too Large");
        assert_eq!(odd.status(), 431, "a catcher keeps its status");
        assert!(odd.body().contains(r#""error":"bad_request""#), "{}", odd.body());
    }

    /// Rocket's catchers answer in the one error shape, each status with its own code.
    #[test]
    fn a_status_without_a_route_is_answered_as_itself_with_its_code() {
        let cases = [
            (400, "bad_request"),
            (404, "not_found"),
            (405, "method_not_allowed"),
            (408, "request_timeout"),
            (413, "body_too_large"),
            (431, "bad_request"),
            (500, "internal"),
            (503, "internal"),
        ];
        for (status, code) in cases {
            let error = ApiError::of_status(status, "reason");
            let body: serde_json::Value = serde_json::from_str(&error.body()).unwrap();
            assert_eq!((error.status(), body["error"].as_str()), (status, Some(code)), "{status}");
        }
    }
}
