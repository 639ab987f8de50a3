//! The validated domain vote, and the two wire forms it is built from: protobuf (gRPC
//! path) and JSON (HTTP fronts, including the course's string-valued traffic files).
//! Every hop validates again, so a vote that exists as a [`Vote`] is always valid.

use chrono::{DateTime, Datelike, Utc};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
use uuid::Uuid;

use crate::pb;

/// Longest band or album name, in characters after normalising.
pub const MAX_NAME_CHARS: usize = 120;
/// Earliest year a voted album may come from.
pub const MIN_YEAR: i32 = 1900;
/// The rank is a score in `MIN_RANK..=MAX_RANK`.
pub const MIN_RANK: f64 = 0.0;
pub const MAX_RANK: f64 = 10.0;

/// Why a vote was refused, always naming the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct VoteError {
    pub field: &'static str,
    pub problem: Problem,
    pub message: String,
}

/// The kind of fault, so each boundary can map it to its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Missing,
    WrongType,
    Invalid,
}

impl VoteError {
    fn missing(field: &'static str) -> Self {
        Self { field, problem: Problem::Missing, message: "is required".into() }
    }
    fn wrong_type(field: &'static str, expected: &str) -> Self {
        Self { field, problem: Problem::WrongType, message: format!("must be {expected}") }
    }
    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, problem: Problem::Invalid, message: message.into() }
    }
}

/// A vote that passed validation. Built only by [`TryFrom`] from a wire form.
#[derive(Debug, Clone, PartialEq)]
pub struct Vote {
    vote_id: Uuid,
    band: String,
    album: String,
    year: i32,
    rank: f64,
    cast_at: Option<DateTime<Utc>>,
}

impl Vote {
    pub fn vote_id(&self) -> Uuid {
        self.vote_id
    }
    pub fn band(&self) -> &str {
        &self.band
    }
    pub fn album(&self) -> &str {
        &self.album
    }
    pub fn year(&self) -> i32 {
        self.year
    }
    pub fn rank(&self) -> f64 {
        self.rank
    }
    pub fn cast_at(&self) -> Option<DateTime<Utc>> {
        self.cast_at
    }

    fn from_parts(
        vote_id: Option<Uuid>,
        band: &str,
        album: &str,
        year: i64,
        rank: f64,
        cast_at: Option<DateTime<Utc>>,
    ) -> Result<Self, VoteError> {
        Ok(Self {
            vote_id: vote_id.unwrap_or_else(Uuid::now_v7),
            band: validate_name("band", band)?,
            album: validate_name("album", album)?,
            year: validate_year(year)?,
            rank: validate_rank(rank)?,
            cast_at,
        })
    }
}

/// The canonical JSON form a front forwards to the next hop: plain numbers, the vote_id
/// always set (so a retried forward stays the same vote). Written straight to the
/// output: building a `serde_json::Value` first cost the REST fronts a map per vote.
impl Serialize for Vote {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut vote = serializer.serialize_struct("Vote", 5 + usize::from(self.cast_at.is_some()))?;
        vote.serialize_field("vote_id", &self.vote_id)?;
        vote.serialize_field("band", &self.band)?;
        vote.serialize_field("album", &self.album)?;
        vote.serialize_field("year", &self.year)?;
        vote.serialize_field("rank", &self.rank)?;
        if let Some(cast_at) = self.cast_at {
            vote.serialize_field("cast_at", &cast_at.to_rfc3339())?;
        }
        vote.end()
    }
}

/// A name as it is counted: NFC, without invisible format characters, trimmed, with each
/// run of white space made one space, so that names which look the same count as one.
/// Refused when nothing visible (a letter, digit, punctuation or symbol) is left.
fn validate_name(field: &'static str, raw: &str) -> Result<String, VoteError> {
    if raw.chars().any(char::is_control) {
        return Err(VoteError::invalid(field, "must not contain control characters"));
    }
    // ASCII is already NFC and holds no invisible format character: the common name skips
    // both passes and their copy (every hop validates every vote).
    let visible_only: std::borrow::Cow<'_, str> =
        if raw.is_ascii() { raw.into() } else { raw.nfc().filter(|&c| !is_invisible(c)).collect::<String>().into() };
    let mut name = String::with_capacity(visible_only.len());
    for word in visible_only.split_whitespace() {
        if !name.is_empty() {
            name.push(' ');
        }
        name.push_str(word);
    }
    if name.is_empty() {
        return Err(VoteError::invalid(field, "must not be empty"));
    }
    if !name.chars().any(is_visible) {
        return Err(VoteError::invalid(
            field,
            "must contain a visible character (a letter, digit, punctuation mark or symbol)",
        ));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(VoteError::invalid(field, format!("must be at most {MAX_NAME_CHARS} characters, got {chars}")));
    }
    Ok(name)
}

/// Zero-width and direction-control format characters (BOM, zero-width space, soft
/// hyphen, RLO...) and the Hangul fillers, which render as nothing. The zero-width
/// joiner and non-joiner stay: scripts and emoji sequences need them.
fn is_invisible(c: char) -> bool {
    const HANGUL_FILLERS: [char; 4] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}'];
    (c.general_category_group() == GeneralCategoryGroup::Other && !matches!(c, '\u{200C}' | '\u{200D}'))
        || HANGUL_FILLERS.contains(&c)
}

fn is_visible(c: char) -> bool {
    matches!(
        c.general_category_group(),
        GeneralCategoryGroup::Letter
            | GeneralCategoryGroup::Number
            | GeneralCategoryGroup::Punctuation
            | GeneralCategoryGroup::Symbol
    )
}

fn validate_year(year: i64) -> Result<i32, VoteError> {
    let max_year = Utc::now().year() + 1;
    if year < i64::from(MIN_YEAR) || year > i64::from(max_year) {
        return Err(VoteError::invalid("year", format!("must be from {MIN_YEAR} to {max_year}, got {year}")));
    }
    Ok(year as i32)
}

fn validate_rank(rank: f64) -> Result<f64, VoteError> {
    if !rank.is_finite() {
        return Err(VoteError::invalid("rank", "must be a finite number"));
    }
    if !(MIN_RANK..=MAX_RANK).contains(&rank) {
        return Err(VoteError::invalid("rank", format!("must be from {MIN_RANK} to {MAX_RANK}, got {rank}")));
    }
    Ok(rank)
}

/// The nil UUID is refused: a client that sends it sends it for every vote, and all but
/// the first would be dropped as retries of it.
fn parse_vote_id(raw: &str) -> Result<Uuid, VoteError> {
    match Uuid::try_parse(raw.trim()) {
        Ok(id) if id.is_nil() => Err(VoteError::invalid("vote_id", "must not be the nil UUID")),
        Ok(id) => Ok(id),
        Err(_) => Err(VoteError::invalid("vote_id", "must be a UUID")),
    }
}

fn parse_cast_at(raw: &str) -> Result<DateTime<Utc>, VoteError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| VoteError::invalid("cast_at", "must be an RFC 3339 timestamp"))
}

/// The JSON form of a vote as the HTTP fronts accept it. Fields stay loosely typed here
/// so that a wrong type is reported with its field name rather than as a parse error.
/// Unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct VoteJson {
    #[serde(default, alias = "name", alias = "artist")]
    band: Option<Value>,
    #[serde(default)]
    album: Option<Value>,
    #[serde(default)]
    year: Option<Value>,
    #[serde(default, alias = "ranked")]
    rank: Option<Value>,
    #[serde(default)]
    vote_id: Option<Value>,
    #[serde(default)]
    cast_at: Option<Value>,
}

fn required<'a>(field: &'static str, value: &'a Option<Value>) -> Result<&'a Value, VoteError> {
    match value {
        None | Some(Value::Null) => Err(VoteError::missing(field)),
        Some(v) => Ok(v),
    }
}

fn optional_str<'a>(field: &'static str, value: &'a Option<Value>) -> Result<Option<&'a str>, VoteError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(VoteError::wrong_type(field, "a string")),
    }
}

fn json_str<'a>(field: &'static str, value: &'a Option<Value>) -> Result<&'a str, VoteError> {
    match required(field, value)? {
        Value::String(s) => Ok(s),
        _ => Err(VoteError::wrong_type(field, "a string")),
    }
}

/// A number, or a string holding one (the course's traffic files send `"2011"`, `"9.5"`).
fn json_number(field: &'static str, value: &Option<Value>) -> Result<f64, VoteError> {
    match required(field, value)? {
        Value::Number(n) => n.as_f64().ok_or_else(|| VoteError::wrong_type(field, "a number")),
        Value::String(s) => {
            s.trim().parse::<f64>().map_err(|_| VoteError::wrong_type(field, "a number or a numeric string"))
        }
        _ => Err(VoteError::wrong_type(field, "a number or a numeric string")),
    }
}

fn json_year(value: &Option<Value>) -> Result<i64, VoteError> {
    let year = json_number("year", value)?;
    if !year.is_finite() || year.fract() != 0.0 {
        return Err(VoteError::invalid("year", "must be a whole number"));
    }
    // Clamped so that an absurd value is reported as out of range, not wrapped.
    Ok(year.clamp(i64::MIN as f64, i64::MAX as f64) as i64)
}

impl TryFrom<VoteJson> for Vote {
    type Error = VoteError;

    fn try_from(json: VoteJson) -> Result<Self, Self::Error> {
        let band = json_str("band", &json.band)?;
        let album = json_str("album", &json.album)?;
        let year = json_year(&json.year)?;
        let rank = json_number("rank", &json.rank)?;
        let vote_id = optional_str("vote_id", &json.vote_id)?.map(parse_vote_id).transpose()?;
        let cast_at = optional_str("cast_at", &json.cast_at)?.map(parse_cast_at).transpose()?;
        Vote::from_parts(vote_id, band, album, year, rank, cast_at)
    }
}

fn timestamp_to_utc(field: &'static str, ts: &prost_types::Timestamp) -> Result<DateTime<Utc>, VoteError> {
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
        .ok_or_else(|| VoteError::invalid(field, "must be a valid timestamp"))
}

/// Converts a UTC time to the protobuf timestamp.
pub fn utc_to_timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

impl TryFrom<pb::Vote> for Vote {
    type Error = VoteError;

    fn try_from(wire: pb::Vote) -> Result<Self, Self::Error> {
        let vote_id = if wire.vote_id.trim().is_empty() { None } else { Some(parse_vote_id(&wire.vote_id)?) };
        let cast_at = wire.cast_at.as_ref().map(|ts| timestamp_to_utc("cast_at", ts)).transpose()?;
        Vote::from_parts(vote_id, &wire.band, &wire.album, i64::from(wire.year), wire.rank, cast_at)
    }
}

impl From<&Vote> for pb::Vote {
    fn from(vote: &Vote) -> Self {
        pb::Vote {
            vote_id: vote.vote_id.to_string(),
            band: vote.band.clone(),
            album: vote.album.clone(),
            year: vote.year,
            rank: vote.rank,
            cast_at: vote.cast_at.map(utc_to_timestamp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from_json(value: Value) -> Result<Vote, VoteError> {
        let json: VoteJson = serde_json::from_value(value).expect("a JSON object");
        Vote::try_from(json)
    }

    fn field_of(value: Value) -> (&'static str, Problem) {
        let err = from_json(value).expect_err("must be rejected");
        (err.field, err.problem)
    }

    #[test]
    fn course_traffic_with_name_and_string_values_is_accepted() {
        let vote =
            from_json(json!({"name": "Radiohead", "album": "OK Computer", "year": "2011", "rank": "9.5"})).unwrap();
        assert_eq!(vote.band(), "Radiohead");
        assert_eq!(vote.album(), "OK Computer");
        assert_eq!(vote.year(), 2011);
        assert_eq!(vote.rank(), 9.5);
        assert_eq!(vote.vote_id().get_version_num(), 7, "server assigns a UUIDv7");
    }

    #[test]
    fn course_traffic_with_artist_and_ranked_is_accepted() {
        let vote = from_json(json!({"artist": "The Doors", "album": "Strange Days", "year": "1967", "ranked": "8.0"}))
            .unwrap();
        assert_eq!(vote.band(), "The Doors");
        assert_eq!(vote.year(), 1967);
        assert_eq!(vote.rank(), 8.0);
    }

    #[test]
    fn numbers_vote_id_cast_at_and_unknown_fields() {
        let id = "0190d9a4-1f0e-7c4e-8a5b-2f1a3c4d5e6f";
        let vote = from_json(json!({
            "band": "  Blur  ", "album": "Parklife", "year": 1994, "rank": 7,
            "vote_id": id, "cast_at": "2026-11-23T10:00:00+01:00", "colour": "blue"
        }))
        .unwrap();
        assert_eq!(vote.band(), "Blur", "names are trimmed");
        assert_eq!(vote.vote_id().to_string(), id);
        assert_eq!(vote.cast_at().unwrap().to_rfc3339(), "2026-11-23T09:00:00+00:00");
    }

    #[test]
    fn every_missing_field_is_named() {
        let full = json!({"band": "b", "album": "a", "year": 2000, "rank": 5});
        for field in ["band", "album", "year", "rank"] {
            let mut partial = full.clone();
            partial.as_object_mut().unwrap().remove(field);
            assert_eq!(field_of(partial), (field, Problem::Missing));
        }
        assert_eq!(field_of(json!({"band": null, "album": "a", "year": 2000, "rank": 5})), ("band", Problem::Missing));
    }

    #[test]
    fn wrong_types_are_named() {
        assert_eq!(field_of(json!({"band": 3, "album": "a", "year": 2000, "rank": 5})), ("band", Problem::WrongType));
        assert_eq!(
            field_of(json!({"band": "b", "album": ["a"], "year": 2000, "rank": 5})),
            ("album", Problem::WrongType)
        );
        assert_eq!(
            field_of(json!({"band": "b", "album": "a", "year": "twenty", "rank": 5})),
            ("year", Problem::WrongType)
        );
        assert_eq!(
            field_of(json!({"band": "b", "album": "a", "year": 2000, "rank": true})),
            ("rank", Problem::WrongType)
        );
        assert_eq!(
            field_of(json!({"band": "b", "album": "a", "year": 2000, "rank": 5, "vote_id": 12})),
            ("vote_id", Problem::WrongType)
        );
    }

    #[test]
    fn out_of_range_and_malformed_values_are_named() {
        let base = |patch: Value| {
            let mut v = json!({"band": "b", "album": "a", "year": 2000, "rank": 5});
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            field_of(v)
        };
        let next_year = Utc::now().year() + 1;
        assert_eq!(base(json!({"band": "   "})), ("band", Problem::Invalid));
        assert_eq!(base(json!({"band": "x".repeat(121)})), ("band", Problem::Invalid));
        assert_eq!(base(json!({"album": "bad\u{0007}bell"})), ("album", Problem::Invalid));
        assert_eq!(base(json!({"year": 1899})), ("year", Problem::Invalid));
        assert_eq!(base(json!({"year": next_year + 1})), ("year", Problem::Invalid));
        assert_eq!(base(json!({"year": "2000.5"})), ("year", Problem::Invalid));
        assert_eq!(base(json!({"year": 1e300})), ("year", Problem::Invalid));
        assert_eq!(base(json!({"rank": -0.5})), ("rank", Problem::Invalid));
        assert_eq!(base(json!({"rank": "10.01"})), ("rank", Problem::Invalid));
        assert_eq!(base(json!({"rank": "NaN"})), ("rank", Problem::Invalid));
        assert_eq!(base(json!({"rank": "inf"})), ("rank", Problem::Invalid));
        assert_eq!(base(json!({"vote_id": "not-a-uuid"})), ("vote_id", Problem::Invalid));
        assert_eq!(base(json!({"vote_id": Uuid::nil().to_string()})), ("vote_id", Problem::Invalid));
        assert_eq!(base(json!({"cast_at": "yesterday"})), ("cast_at", Problem::Invalid));
    }

    #[test]
    fn names_with_nothing_visible_are_refused() {
        let invisible = [
            "\u{200B}",                    // zero-width space
            "\u{FEFF}",                    // byte order mark
            "\u{202E}",                    // right-to-left override
            "\u{00AD}",                    // soft hyphen
            "\u{0301}\u{0308}",            // combining marks alone
            "\u{3164}",                    // Hangul filler
            "\u{200D}\u{200C}",            // joiners alone
            " \u{200B} \u{2060}\u{00A0} ", // white space and word joiner
        ];
        for name in invisible {
            let band = field_of(json!({"band": name, "album": "a", "year": 2000, "rank": 5}));
            assert_eq!(band, ("band", Problem::Invalid), "{name:?}");
            let album = field_of(json!({"band": "b", "album": name, "year": 2000, "rank": 5}));
            assert_eq!(album, ("album", Problem::Invalid), "{name:?}");
            let wire = pb::Vote { band: name.into(), album: "a".into(), year: 2000, rank: 5.0, ..Default::default() };
            assert_eq!(Vote::try_from(wire).unwrap_err().field, "band", "{name:?}");
        }
    }

    #[test]
    fn look_alike_names_become_one_name() {
        let band = |name: &str| from_json(json!({"band": name, "album": "a", "year": 2000, "rank": 5})).unwrap();
        for look_alike in ["Sigur Ro\u{0301}s", "\u{FEFF}Sigur  Rós\u{200B}", " Sigur\u{00A0}Rós ", "Sig\u{00AD}ur Rós"]
        {
            assert_eq!(band(look_alike).band(), "Sigur Rós", "{look_alike:?}");
        }
        assert_eq!(band("👩\u{200D}🎤").band(), "👩\u{200D}🎤", "an emoji sequence keeps its joiner");
        assert_eq!(band(&format!("{}\u{200B}", "x".repeat(120))).band().chars().count(), 120);
    }

    #[test]
    fn boundaries_are_inclusive() {
        let next_year = Utc::now().year() + 1;
        for (year, rank) in [(1900, 0.0), (next_year, 10.0)] {
            let vote =
                from_json(json!({"band": "x".repeat(120), "album": "é".repeat(120), "year": year, "rank": rank}));
            assert!(vote.is_ok(), "{year} {rank}: {vote:?}");
        }
    }

    #[test]
    fn protobuf_form_round_trips_and_validates() {
        let vote = from_json(json!({"band": "Muse", "album": "Absolution", "year": 2003, "rank": 8.5,
            "cast_at": "2026-01-02T03:04:05.123Z"}))
        .unwrap();
        let wire = pb::Vote::from(&vote);
        assert_eq!(Vote::try_from(wire.clone()).unwrap(), vote);

        let empty_id = pb::Vote { vote_id: String::new(), ..wire.clone() };
        assert!(Vote::try_from(empty_id).is_ok(), "an empty vote_id gets one assigned");
        let bad = pb::Vote { rank: f64::NAN, ..wire.clone() };
        assert_eq!(Vote::try_from(bad).unwrap_err().field, "rank");
        let bad = pb::Vote { band: String::new(), ..wire.clone() };
        assert_eq!(Vote::try_from(bad).unwrap_err().field, "band");
        let bad = pb::Vote { cast_at: Some(prost_types::Timestamp { seconds: 0, nanos: -1 }), ..wire };
        assert_eq!(Vote::try_from(bad).unwrap_err().field, "cast_at");
    }

    #[test]
    fn canonical_json_parses_back_to_the_same_vote() {
        let vote = from_json(json!({"name": "Pulp", "album": "Different Class", "year": "1995", "rank": "9"})).unwrap();
        let canonical = serde_json::to_value(&vote).unwrap();
        assert_eq!(canonical["vote_id"], vote.vote_id().to_string());
        assert_eq!(canonical["year"], 1995);
        assert_eq!(from_json(canonical).unwrap(), vote);
    }
}
