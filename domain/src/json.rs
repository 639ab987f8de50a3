//! A vote from JSON bytes as the HTTP services receive it: broken JSON is
//! `malformed_json` (400), JSON of the wrong shape `invalid_body` (422), and an invalid
//! vote names its field. Nothing has been sent anywhere yet when one of these is returned.

use serde::Deserialize;

use crate::refusal::{ErrorCode, Refusal};
use crate::vote::{Vote, VoteJson};

/// Parses one JSON value, telling broken JSON (400) from JSON of the wrong shape (422).
pub fn parse_json<'de, T: Deserialize<'de>>(bytes: &'de [u8], expected: &str) -> Result<T, Refusal> {
    serde_json::from_slice(bytes).map_err(|error| {
        if error.is_data() {
            Refusal::new(ErrorCode::InvalidBody, format!("body must be {expected}: {error}"))
        } else {
            Refusal::new(ErrorCode::MalformedJson, format!("body is not valid JSON: {error}"))
        }
    })
}

/// Parses and validates one vote from JSON bytes.
pub fn parse_vote(bytes: &[u8]) -> Result<Vote, Refusal> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some() && first != Some(&b'{') && serde_json::from_slice::<serde_json::Value>(bytes).is_ok() {
        return Err(Refusal::new(ErrorCode::InvalidBody, "body must be a JSON object"));
    }
    let json: VoteJson = parse_json(bytes, "a JSON object")?;
    Ok(Vote::try_from(json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_json_is_malformed_and_wrong_shapes_are_invalid() {
        let code = |bytes: &[u8]| parse_vote(bytes).unwrap_err().code;
        assert_eq!(code(b"{\"band\": "), ErrorCode::MalformedJson);
        assert_eq!(code(b""), ErrorCode::MalformedJson);
        assert_eq!(code(b"[1, 2]"), ErrorCode::InvalidBody);
        assert_eq!(code(b"\"vote\""), ErrorCode::InvalidBody);
        let duplicate = br#"{"band": "a", "name": "b", "album": "c", "year": 2000, "rank": 1}"#;
        assert_eq!(code(duplicate), ErrorCode::InvalidBody);
        let refused = parse_vote(br#"{"band": "Blur", "album": "Parklife", "year": 1994}"#).unwrap_err();
        assert_eq!((refused.code, refused.field.as_deref()), (ErrorCode::MissingField, Some("rank")));
        let ok = br#"{"name": "Oasis", "album": "Definitely Maybe", "year": "1994", "rank": "9.5"}"#;
        assert_eq!(parse_vote(ok).unwrap().band(), "Oasis");
    }
}
