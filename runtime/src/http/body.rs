//! The request-body guards of `POST /votes` and `POST /votes/batch`: checks the content type, reads at most the
//! configured number of bytes, parses JSON and validates the vote. Each failure becomes
//! an [`ApiError`] that names the problem; nothing has been sent anywhere yet.

use rocket::Request;
use rocket::data::{ByteUnit, Data, FromData, Outcome};
use tokio::io::AsyncReadExt as _;
use voteflow_proto::{Vote, VoteJson};

use super::error::ApiError;
use crate::batch::ItemError;

/// Request-body bounds, managed as Rocket state by each HTTP service.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bytes of a single vote's body.
    pub vote_bytes: u64,
    /// Bytes of a batch's body.
    pub batch_bytes: u64,
    /// Votes in one batch.
    pub batch_votes: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self { vote_bytes: 16 * 1024, batch_bytes: 1024 * 1024, batch_votes: 1000 }
    }
}

fn limits(request: &Request<'_>) -> BodyLimits {
    request.rocket().state::<BodyLimits>().copied().unwrap_or_default()
}

/// A validated vote from a JSON request body.
#[derive(Debug)]
pub struct VoteBody(pub Vote);

/// A batch from a JSON array body, each vote validated on its own.
#[derive(Debug)]
pub struct BatchBody(pub Vec<Result<Vote, ItemError>>);

/// What every JSON body endpoint checks before reading a byte (rest-server's guards here,
/// the hyper fronts in `crate::front`): it claims to be JSON, and its declared length, if
/// any, is within `limit`.
pub(crate) fn check_json_headers(is_json: bool, declared_len: Option<u64>, limit: u64) -> Result<(), ApiError> {
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    if declared_len.is_some_and(|len| len > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(())
}

/// Reads the whole body, up to `limit` bytes, after checking it claims to be JSON.
pub async fn read_json_body<'r>(request: &'r Request<'_>, data: Data<'r>, limit: u64) -> Result<Vec<u8>, ApiError> {
    let declared = request.headers().get_one("Content-Length").and_then(|len| len.parse::<u64>().ok());
    check_json_headers(request.content_type().is_some_and(|ct| ct.is_json()), declared, limit)?;
    // Read straight into a buffer of the declared size: Rocket's `into_bytes` goes through
    // tokio's io::copy, which zeroes a fresh 8 KiB buffer per request (7 % of rest-server's
    // instructions per vote under callgrind). One byte over the limit tells "too large".
    let capacity = declared.unwrap_or(1024).min(limit) as usize + 1;
    let mut body = Vec::with_capacity(capacity);
    data.open(ByteUnit::from(limit.saturating_add(1)))
        .read_to_end(&mut body)
        .await
        .map_err(|error| ApiError::MalformedJson(format!("cannot read body: {error}")))?;
    if body.len() as u64 > limit {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(body)
}

/// Parses one JSON value, telling broken JSON (400) from JSON of the wrong shape (422).
pub fn parse_json<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8], expected: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        if error.is_data() {
            ApiError::InvalidBody(format!("body must be {expected}: {error}"))
        } else {
            ApiError::MalformedJson(error.to_string())
        }
    })
}

/// Parses and validates one vote from JSON bytes.
pub fn parse_vote(bytes: &[u8]) -> Result<Vote, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some() && first != Some(&b'{') && serde_json::from_slice::<serde_json::Value>(bytes).is_ok() {
        return Err(ApiError::InvalidBody("body must be a JSON object".into()));
    }
    let json: VoteJson = parse_json(bytes, "a JSON object")?;
    Ok(Vote::try_from(json)?)
}

#[rocket::async_trait]
impl<'r> FromData<'r> for VoteBody {
    type Error = ApiError;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        let result = match read_json_body(request, data, limits(request).vote_bytes).await {
            Ok(bytes) => parse_vote(&bytes),
            Err(error) => Err(error),
        };
        match result {
            Ok(vote) => Outcome::Success(VoteBody(vote)),
            Err(error) => Outcome::Error((error.status(), error)),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromData<'r> for BatchBody {
    type Error = ApiError;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        let limits = limits(request);
        let result = match read_json_body(request, data, limits.batch_bytes).await {
            Ok(bytes) => crate::batch::parse_batch(&bytes, limits.batch_votes),
            Err(error) => Err(error),
        };
        match result {
            Ok(items) => Outcome::Success(BatchBody(items)),
            Err(error) => Outcome::Error((error.status(), error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_json_is_malformed_and_wrong_shapes_are_invalid() {
        assert!(matches!(parse_vote(b"{\"band\": "), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse_vote(b""), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse_vote(b"[1, 2]"), Err(ApiError::InvalidBody(_))));
        assert!(matches!(parse_vote(b"\"vote\""), Err(ApiError::InvalidBody(_))));
        let duplicate = br#"{"band": "a", "name": "b", "album": "c", "year": 2000, "rank": 1}"#;
        assert!(matches!(parse_vote(duplicate), Err(ApiError::InvalidBody(_))));
        let ok = br#"{"name": "Oasis", "album": "Definitely Maybe", "year": "1994", "rank": "9.5"}"#;
        assert_eq!(parse_vote(ok).unwrap().band(), "Oasis");
    }

    /// The body's length as read, not as declared: these requests carry no Content-Length.
    #[rocket::async_test]
    async fn a_body_is_read_up_to_its_limit_and_one_byte_more_is_too_large() {
        #[rocket::post("/", data = "<body>")]
        fn echo_length(body: VoteBody) -> String {
            body.0.band().len().to_string()
        }
        let vote = br#"{"band": "Blur", "album": "Parklife", "year": 1994, "rank": 8}"#;
        let limits = BodyLimits { vote_bytes: vote.len() as u64, ..BodyLimits::default() };
        let app = rocket::build().manage(limits).mount("/", rocket::routes![echo_length]);
        let client = rocket::local::asynchronous::Client::untracked(app).await.expect("a local rocket");
        let post = |body: Vec<u8>| client.post("/").header(rocket::http::ContentType::JSON).body(body);

        let at_limit = post(vote.to_vec()).dispatch().await;
        let over_limit = post([vote.as_slice(), b" "].concat()).dispatch().await;

        assert_eq!(at_limit.status(), rocket::http::Status::Ok);
        assert_eq!(over_limit.status(), rocket::http::Status::PayloadTooLarge);
    }
}
