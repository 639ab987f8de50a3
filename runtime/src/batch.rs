//! Batches of votes on both paths: parsing a JSON array with per-vote validation, the
//! per-vote outcome, and the JSON report the fronts and rest-server answer with. A batch
//! is not atomic: each vote is accepted (in Kafka) or rejected on its own.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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
    // Each item is kept as its raw text and parsed on its own, so one bad vote is that
    // vote's error, not the batch's; going through a `Value` per item instead cost a
    // third of rest-server's instructions per batched vote (callgrind).
    let items: Vec<&RawValue> = crate::http::body::parse_json(bytes, "a JSON array of votes")?;
    if items.len() > max_votes {
        return Err(ApiError::TooManyVotes { limit: max_votes, got: items.len() });
    }
    Ok(items
        .into_iter()
        .map(|item| {
            if !item.get().starts_with('{') {
                return Err(ItemError::from_api(&ApiError::InvalidBody("each vote must be a JSON object".into())));
            }
            let json: VoteJson = serde_json::from_str(item.get())
                .map_err(|error| ItemError::from_api(&ApiError::InvalidBody(error.to_string())))?;
            Vote::try_from(json).map_err(|error| ItemError::from_api(&ApiError::InvalidVote(error)))
        })
        .collect())
}

/// One entry of `results` in a batch report, as written and as read back.
#[derive(Serialize, Deserialize)]
struct ItemReport<'a> {
    #[serde(default)]
    index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vote_id: Option<Uuid>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    error: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    field: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    message: Option<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
struct Report<'a> {
    #[serde(default)]
    accepted: usize,
    #[serde(default)]
    rejected: usize,
    #[serde(borrow)]
    results: Vec<ItemReport<'a>>,
}

/// `{"accepted": n, "rejected": m, "results": [{"index", "vote_id"} | {"index", "error", "field", "message"}]}`
pub fn report(outcomes: &[ItemOutcome]) -> String {
    let accepted = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let results = outcomes
        .iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            Ok(vote_id) => ItemReport { index, vote_id: Some(*vote_id), error: None, field: None, message: None },
            Err(error) => ItemReport {
                index,
                vote_id: None,
                error: Some(Cow::Borrowed(&error.error)),
                field: error.field.as_deref().map(Cow::Borrowed),
                message: Some(Cow::Borrowed(&error.message)),
            },
        })
        .collect();
    let report = Report { accepted, rejected: outcomes.len() - accepted, results };
    serde_json::to_string(&report).expect("a batch report always serializes")
}

/// Reads a batch report back (the fronts read rest-server's).
pub fn parse_report(body: &str, expected: usize) -> Option<Vec<ItemOutcome>> {
    let report: Report<'_> = serde_json::from_str(body).ok()?;
    if report.results.len() != expected {
        return None;
    }
    report
        .results
        .into_iter()
        .map(|item| {
            Some(match item.vote_id {
                Some(vote_id) => Ok(vote_id),
                None => Err(ItemError {
                    error: item.error?.into_owned(),
                    field: item.field.map(Cow::into_owned),
                    message: item.message.map(Cow::into_owned).unwrap_or_default(),
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
                        "not a vote",
                        {"band": "A", "name": "C", "album": "B", "year": 2000, "rank": 5},
                        {"band": "Sigur R\u00f3s", "album": "\"()\"", "year": "2002", "rank": "9"}]"#;
        let parsed = parse_batch(body, 10).unwrap();
        assert!(parsed[0].is_ok());
        assert_eq!(parsed[1].as_ref().unwrap_err().field.as_deref(), Some("rank"));
        assert_eq!(parsed[2].as_ref().unwrap_err().error, "invalid_body");
        let duplicate = parsed[3].as_ref().unwrap_err();
        assert_eq!(duplicate.error, "invalid_body");
        assert!(duplicate.message.contains("duplicate field `band`"), "{}", duplicate.message);
        let escaped = parsed[4].as_ref().unwrap();
        assert_eq!((escaped.band(), escaped.album(), escaped.year()), ("Sigur Rós", "\"()\"", 2002));

        let id = Uuid::now_v7();
        let other = Uuid::now_v7();
        let mut outcomes = merge(parsed, vec![Ok(id), Ok(other)]);
        let quoted = "Kafka said \"no\"\n";
        outcomes.push(Err(ItemError { error: "kafka_unavailable".into(), field: None, message: quoted.into() }));
        let text = report(&outcomes);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!((json["accepted"].as_u64(), json["rejected"].as_u64()), (Some(2), Some(4)));
        assert_eq!(json["results"][0], serde_json::json!({"index": 0, "vote_id": id.to_string()}));
        assert_eq!(json["results"][1]["field"], "rank");
        assert_eq!(json["results"][2].get("field"), None, "a field is named only when one is at fault");
        assert_eq!(json["results"][4]["index"], 4);
        assert_eq!(json["results"][5]["message"], quoted);
        assert_eq!(parse_report(&text, 6).unwrap(), outcomes, "the report reads back, escapes and all");
        assert_eq!(parse_report(&text, 5), None, "a report of another length is refused");
    }

    #[test]
    fn whole_batch_failures() {
        assert!(matches!(parse_batch(b"[", 10), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse_batch(b"{}", 10), Err(ApiError::InvalidBody(_))));
        assert!(matches!(parse_batch(b"[{}, {}, {}]", 2), Err(ApiError::TooManyVotes { limit: 2, got: 3 })));
    }
}
