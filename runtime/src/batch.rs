//! Batches of votes on both paths: parsing a JSON array with per-vote validation, the
//! per-vote outcome, and the JSON report the fronts and rest-server answer with. A batch
//! is not atomic: each vote is accepted (in Kafka) or rejected on its own.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use voteflow_proto::{Vote, VoteJson};

use crate::http::ApiError;
use crate::kafka::PublishError;

/// Why one vote of a batch was not accepted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemError {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl ItemError {
    pub fn from_api(error: &ApiError) -> Self {
        Self { error: error.code().to_owned(), field: error.field().map(str::to_owned), message: error.to_string() }
    }

    pub fn from_publish(error: PublishError) -> Self {
        Self::from_api(&ApiError::NotAccepted(error))
    }
}

/// The outcome of one vote of a batch: its vote_id once Kafka has it, or why not.
pub type ItemOutcome = Result<Uuid, ItemError>;

/// Parses a JSON array of votes, validating each on its own. Broken JSON, a body that is
/// not an array, or more than `max_votes` votes fail the whole batch.
pub fn parse_batch(bytes: &[u8], max_votes: usize) -> Result<Vec<Result<Vote, ItemError>>, ApiError> {
    let items: Vec<Value> = crate::http::body::parse_json(bytes, "a JSON array of votes")?;
    if items.len() > max_votes {
        return Err(ApiError::TooManyVotes { limit: max_votes, got: items.len() });
    }
    Ok(items
        .into_iter()
        .map(|item| {
            if !item.is_object() {
                return Err(ItemError::from_api(&ApiError::InvalidBody("each vote must be a JSON object".into())));
            }
            let json: VoteJson = serde_json::from_value(item)
                .map_err(|error| ItemError::from_api(&ApiError::InvalidBody(error.to_string())))?;
            Vote::try_from(json).map_err(|error| ItemError::from_api(&ApiError::InvalidVote(error)))
        })
        .collect())
}

#[derive(Serialize)]
struct ItemReport<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    vote_id: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    error: Option<&'a ItemError>,
}

/// `{"accepted": n, "rejected": m, "results": [{"index", "vote_id"} | {"index", "error", "field", "message"}]}`
pub fn report(outcomes: &[ItemOutcome]) -> String {
    let accepted = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let results: Vec<ItemReport<'_>> = outcomes
        .iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            Ok(vote_id) => ItemReport { index, vote_id: Some(vote_id.to_string()), error: None },
            Err(error) => ItemReport { index, vote_id: None, error: Some(error) },
        })
        .collect();
    serde_json::json!({"accepted": accepted, "rejected": outcomes.len() - accepted, "results": results}).to_string()
}

/// Reads a batch report back (the fronts read rest-server's).
pub fn parse_report(body: &str, expected: usize) -> Option<Vec<ItemOutcome>> {
    let json: Value = serde_json::from_str(body).ok()?;
    let results = json["results"].as_array()?;
    if results.len() != expected {
        return None;
    }
    results
        .iter()
        .map(|item| {
            Some(match item["vote_id"].as_str() {
                Some(id) => Ok(Uuid::try_parse(id).ok()?),
                None => Err(ItemError {
                    error: item["error"].as_str()?.to_owned(),
                    field: item["field"].as_str().map(str::to_owned),
                    message: item["message"].as_str().unwrap_or_default().to_owned(),
                }),
            })
        })
        .collect()
}

/// Puts the outcomes of the votes that were forwarded back among the ones rejected
/// before forwarding, in the order the batch had.
pub fn merge(parsed: Vec<Result<Vote, ItemError>>, forwarded: Vec<ItemOutcome>) -> Vec<ItemOutcome> {
    let mut forwarded = forwarded.into_iter();
    parsed
        .into_iter()
        .map(|item| match item {
            Ok(_) => forwarded.next().unwrap_or_else(|| {
                Err(ItemError { error: "bad_gateway".into(), field: None, message: "no outcome for this vote".into() })
            }),
            Err(error) => Err(error),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mixed_batch_is_judged_vote_by_vote_and_reported_in_order() {
        let body = br#"[{"band": "A", "album": "B", "year": 2000, "rank": 5},
                        {"band": "A", "album": "B", "year": 2000, "rank": 50},
                        "not a vote"]"#;
        let parsed = parse_batch(body, 10).unwrap();
        assert!(parsed[0].is_ok());
        assert_eq!(parsed[1].as_ref().unwrap_err().field.as_deref(), Some("rank"));
        assert_eq!(parsed[2].as_ref().unwrap_err().error, "invalid_body");

        let id = Uuid::now_v7();
        let outcomes = merge(parsed, vec![Ok(id)]);
        let text = report(&outcomes);
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((json["accepted"].as_u64(), json["rejected"].as_u64()), (Some(1), Some(2)));
        assert_eq!(json["results"][1]["field"], "rank");
        assert_eq!(parse_report(&text, 3).unwrap(), outcomes);
    }

    #[test]
    fn whole_batch_failures() {
        assert!(matches!(parse_batch(b"[", 10), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse_batch(b"{}", 10), Err(ApiError::InvalidBody(_))));
        assert!(matches!(parse_batch(b"[{}, {}, {}]", 2), Err(ApiError::TooManyVotes { limit: 2, got: 3 })));
    }
}
