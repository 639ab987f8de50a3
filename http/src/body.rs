//! The request-body guards of the vote routes: the request gets one of the bounded
//! in-flight slots, the body claims JSON, fits its limit, and parses into a vote (or a
//! batch judged vote by vote). Each failure is an [`ApiError`] that names the problem;
//! nothing has been sent anywhere yet.

use std::sync::Arc;
use std::time::Duration;

use rocket::Request;
use rocket::data::{ByteUnit, Data, FromData, Outcome};
use rocket::http::Status;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use voteflow_domain::{ErrorCode, Refusal, Vote, batch, json};

use crate::error::ApiError;

/// Request-body bounds, managed as Rocket state by each HTTP service.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bytes of a single vote's body.
    pub vote_bytes: u64,
    /// Bytes of a batch's body.
    pub batch_bytes: u64,
    /// Votes in one batch.
    pub batch_votes: usize,
    /// Longest a body may take to arrive; slower ones get 408 and the connection closes.
    pub read_timeout: Duration,
}

impl BodyLimits {
    pub(crate) fn of(request: &Request<'_>) -> Self {
        *request.rocket().state::<BodyLimits>().expect("every voteflow HTTP service manages its BodyLimits")
    }
}

/// The vote requests a service works on at once, managed as Rocket state: Rocket has no
/// bound on connections, so this bounds the bodies held in memory (docs/decisions/0001).
#[derive(Debug, Clone)]
pub struct InFlight(pub Arc<Semaphore>);

/// One of the [`InFlight`] slots, held until the answer is written.
#[derive(Debug)]
pub struct Admitted(#[allow(dead_code)] OwnedSemaphorePermit);

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max.max(1))))
    }

    fn admit(request: &Request<'_>) -> Result<Admitted, ApiError> {
        let slots = request.rocket().state::<InFlight>().expect("every voteflow HTTP service manages its InFlight");
        slots
            .0
            .clone()
            .try_acquire_owned()
            .map(Admitted)
            .map_err(|_| ApiError::new(ErrorCode::Overloaded, "too many requests in flight; shedding load"))
    }
}

/// A validated vote from a JSON request body, and its in-flight slot.
#[derive(Debug)]
pub struct VoteBody(pub Vote, pub Admitted);

/// A batch from a JSON array body, each vote judged on its own, and its in-flight slot.
#[derive(Debug)]
pub struct BatchBody(pub Vec<Result<Vote, Refusal>>, pub Admitted);

/// Reads the whole body, up to `limit` bytes, after checking it claims to be JSON and
/// does not declare more than `limit`, all within the read timeout (else 408).
///
/// A body refused before it is read whole is still read to its end (up to the batch
/// limit) and dropped, so the client (or the ingress proxying it) gets its 413 or 415 on
/// a connection that stays open, instead of a reset while it is still sending that a
/// proxy would report as an unreachable upstream.
pub async fn read_json_body(request: &Request<'_>, data: Data<'_>, limit: u64) -> Result<Vec<u8>, ApiError> {
    let limits = BodyLimits::of(request);
    let drain_limit = limits.batch_bytes.max(limit);
    let declared = request.headers().get_one("Content-Length").and_then(|len| len.parse::<u64>().ok());
    let too_large = || ApiError::new(ErrorCode::BodyTooLarge, format!("body is larger than {limit} bytes"));
    let refused_unread = if !request.content_type().is_some_and(|content_type| content_type.is_json()) {
        Some(ApiError::new(ErrorCode::UnsupportedMediaType, "Content-Type must be application/json"))
    } else if declared.is_some_and(|len| len > limit) {
        Some(too_large())
    } else {
        None
    };
    let mut stream = data.open(ByteUnit::from(drain_limit.saturating_add(1)));
    let read = async {
        if let Some(refusal) = refused_unread {
            if declared.is_none_or(|len| len <= drain_limit) {
                drain(&mut stream).await;
            }
            return Err(refusal);
        }
        // Read straight into a buffer of the declared size: Rocket's `into_bytes` goes
        // through tokio's io::copy, which zeroes a fresh 8 KiB buffer per request. One
        // byte over the limit tells "too large", whether or not a length was declared.
        let capacity = declared.unwrap_or(1024).min(limit) as usize + 1;
        let mut body = Vec::with_capacity(capacity);
        (&mut stream)
            .take(limit.saturating_add(1))
            .read_to_end(&mut body)
            .await
            .map_err(|error| ApiError::new(ErrorCode::MalformedJson, format!("cannot read the body: {error}")))?;
        if body.len() as u64 > limit {
            drain(&mut stream).await;
            return Err(too_large());
        }
        Ok(body)
    };
    match tokio::time::timeout(limits.read_timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the body did not arrive within {} ms", limits.read_timeout.as_millis()),
        )),
    }
}

/// Reads and drops what is left of a body (the stream itself stops at the drain limit).
async fn drain(stream: &mut (impl AsyncRead + Unpin)) {
    let _ = tokio::io::copy(stream, &mut tokio::io::sink()).await;
}

/// A vote from `data`, within the vote limit.
pub async fn vote_from<'r>(request: &'r Request<'_>, data: Data<'r>) -> Result<Vote, ApiError> {
    let bytes = read_json_body(request, data, BodyLimits::of(request).vote_bytes).await?;
    Ok(json::parse_vote(&bytes)?)
}

/// A batch from `data`, within the batch limits.
pub async fn batch_from<'r>(request: &'r Request<'_>, data: Data<'r>) -> Result<Vec<Result<Vote, Refusal>>, ApiError> {
    let limits = BodyLimits::of(request);
    let bytes = read_json_body(request, data, limits.batch_bytes).await?;
    Ok(batch::parse_batch(&bytes, limits.batch_votes)?)
}

pub(crate) fn outcome<'r, T>(result: Result<T, ApiError>) -> Outcome<'r, T, ApiError> {
    match result {
        Ok(value) => Outcome::Success(value),
        Err(error) => Outcome::Error((Status::from_code(error.status()).unwrap_or(Status::BadRequest), error)),
    }
}

#[rocket::async_trait]
impl<'r> FromData<'r> for VoteBody {
    type Error = ApiError;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        let admitted = match InFlight::admit(request) {
            Ok(admitted) => admitted,
            Err(error) => return outcome(Err(error)),
        };
        outcome(vote_from(request, data).await.map(|vote| VoteBody(vote, admitted)))
    }
}

#[rocket::async_trait]
impl<'r> FromData<'r> for BatchBody {
    type Error = ApiError;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        let admitted = match InFlight::admit(request) {
            Ok(admitted) => admitted,
            Err(error) => return outcome(Err(error)),
        };
        outcome(batch_from(request, data).await.map(|parsed| BatchBody(parsed, admitted)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body's length as read, not as declared: these requests carry no Content-Length.
    #[rocket::async_test]
    async fn a_body_is_read_up_to_its_limit_and_one_byte_more_is_too_large() {
        #[rocket::post("/", data = "<body>")]
        fn echo_length(body: VoteBody) -> String {
            body.0.band().len().to_string()
        }
        let vote = br#"{"band": "Blur", "album": "Parklife", "year": 1994, "rank": 8}"#;
        let limits = BodyLimits {
            vote_bytes: vote.len() as u64,
            batch_bytes: 1024,
            batch_votes: 10,
            read_timeout: Duration::from_secs(5),
        };
        let app = rocket::build().manage(limits).manage(InFlight::new(4)).mount("/", rocket::routes![echo_length]);
        let client = rocket::local::asynchronous::Client::untracked(app).await.expect("a local rocket");
        let post = |body: Vec<u8>| client.post("/").header(rocket::http::ContentType::JSON).body(body);

        let at_limit = post(vote.to_vec()).dispatch().await;
        let over_limit = post([vote.as_slice(), b" "].concat()).dispatch().await;

        assert_eq!(at_limit.status(), rocket::http::Status::Ok);
        assert_eq!(over_limit.status(), rocket::http::Status::PayloadTooLarge);
    }
}
