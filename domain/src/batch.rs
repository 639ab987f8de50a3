//! Batches of votes on both paths: a JSON array judged vote by vote, the outcome of each
//! vote, and the JSON report the HTTP services answer with (and a front reads back). A
//! batch is not atomic: each vote is accepted (in Kafka) or refused on its own.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::json::parse_json;
use crate::refusal::{ErrorCode, Refusal};
use crate::vote::{Vote, VoteJson};

/// The outcome of one vote of a batch: its vote_id once Kafka has it, or why not.
pub type ItemOutcome = Result<Uuid, Refusal>;

/// Parses a JSON array of votes, judging each on its own. Broken JSON, a body that is not
/// an array, or more than `max_votes` votes refuse the whole batch.
pub fn parse_batch(bytes: &[u8], max_votes: usize) -> Result<Vec<Result<Vote, Refusal>>, Refusal> {
    // Each item is kept as its raw text and parsed on its own, so one bad vote is that
    // vote's refusal, not the batch's; going through a `Value` per item instead cost a
    // third of rest-server's instructions per batched vote (callgrind).
    let items: Vec<&RawValue> = parse_json(bytes, "a JSON array of votes")?;
    if items.len() > max_votes {
        return Err(too_many(max_votes, Some(items.len())));
    }
    Ok(items
        .into_iter()
        .map(|item| {
            if !item.get().starts_with('{') {
                return Err(Refusal::new(ErrorCode::InvalidBody, "each vote must be a JSON object"));
            }
            let json: VoteJson = serde_json::from_str(item.get())
                .map_err(|error| Refusal::new(ErrorCode::InvalidBody, error.to_string()))?;
            Ok(Vote::try_from(json)?)
        })
        .collect())
}

/// A batch (or a gRPC stream, whose length is not known when it is cut) holds more votes
/// than allowed.
pub fn too_many(limit: usize, got: Option<usize>) -> Refusal {
    let message = match got {
        Some(got) => format!("a batch holds at most {limit} votes, got {got}"),
        None => format!("a batch holds at most {limit} votes"),
    };
    Refusal::new(ErrorCode::BatchTooLarge, message)
}

/// The valid votes of a parsed batch, in order: what goes on to Kafka or the next hop.
pub fn valid(parsed: &[Result<Vote, Refusal>]) -> Vec<Vote> {
    parsed.iter().filter_map(|item| item.as_ref().ok().cloned()).collect()
}

/// Puts the outcomes of the votes that went on back among the ones refused before, in
/// the order the batch had.
pub fn merge(parsed: Vec<Result<Vote, Refusal>>, forwarded: Vec<ItemOutcome>) -> Vec<ItemOutcome> {
    let mut forwarded = forwarded.into_iter();
    parsed
        .into_iter()
        .map(|item| match item {
            Ok(_) => {
                forwarded.next().unwrap_or_else(|| Err(Refusal::new(ErrorCode::BadGateway, "no outcome for this vote")))
            }
            Err(refusal) => Err(refusal),
        })
        .collect()
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
            Err(refusal) => ItemReport {
                index,
                vote_id: None,
                error: Some(Cow::Borrowed(refusal.code.as_str())),
                field: refusal.field.as_deref().map(Cow::Borrowed),
                message: Some(Cow::Borrowed(&refusal.message)),
            },
        })
        .collect();
    let report = Report { accepted, rejected: outcomes.len() - accepted, results };
    serde_json::to_string(&report).expect("a batch report always serializes")
}

/// Reads a batch report back (the fronts read rest-server's): `None` when it is not a
/// report of `expected` votes in voteflow's vocabulary.
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
                None => Err(Refusal {
                    code: ErrorCode::parse(&item.error?)?,
                    field: item.field.map(Cow::into_owned),
                    message: item.message.map(Cow::into_owned).unwrap_or_default(),
                }),
            })
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
        assert_eq!(parsed[2].as_ref().unwrap_err().code, ErrorCode::InvalidBody);
        let duplicate = parsed[3].as_ref().unwrap_err();
        assert_eq!(duplicate.code, ErrorCode::InvalidBody);
        assert!(duplicate.message.contains("duplicate field `band`"), "{}", duplicate.message);
        let escaped = parsed[4].as_ref().unwrap().clone();
        assert_eq!((escaped.band(), escaped.album(), escaped.year()), ("Sigur Rós", "\"()\"", 2002));
        assert_eq!(valid(&parsed).len(), 2);

        let id = Uuid::now_v7();
        let other = Uuid::now_v7();
        let mut outcomes = merge(parsed, vec![Ok(id), Ok(other)]);
        let quoted = "Kafka said \"no\"\n";
        outcomes.push(Err(Refusal::new(ErrorCode::KafkaUnavailable, quoted)));
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
        let foreign = text.replace("kafka_unavailable", "no_such_code");
        assert_eq!(parse_report(&foreign, 6), None, "a code outside the vocabulary is refused");
        let short = merge(vec![Ok(escaped.clone()), Ok(escaped.clone())], vec![Ok(id)]);
        assert_eq!(short[1].as_ref().unwrap_err().code, ErrorCode::BadGateway, "a missing outcome is the hop's fault");
    }

    #[test]
    fn whole_batch_failures() {
        assert_eq!(parse_batch(b"[", 10).unwrap_err().code, ErrorCode::MalformedJson);
        assert_eq!(parse_batch(b"{}", 10).unwrap_err().code, ErrorCode::InvalidBody);
        let two = br#"[{"band": "A"}, {"band": "B"}]"#;
        assert_eq!(parse_batch(two, 2).map(|votes| votes.len()), Ok(2), "a batch of exactly the limit is judged");
        let refused = parse_batch(two, 1).unwrap_err();
        assert_eq!(
            (refused.code, refused.message.as_str()),
            (ErrorCode::BatchTooLarge, "a batch holds at most 1 votes, got 2")
        );
    }
}
