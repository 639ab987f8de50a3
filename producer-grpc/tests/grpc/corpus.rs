//! A hostile client's corpus against every entry point of the deployment: the ingress
//! routes, both fronts and rest-server (raw HTTP/1.1 over TCP, at least 500 cases each),
//! and grpc-server (raw protobuf bytes as the CastVote message, at least 500 cases).
//! Asserted for every case: an answer (no hang past the read timeouts, no crash), no 5xx,
//! an invalid vote refused, refusals in the JSON shape naming the field of a 422, and in
//! the end the vote log holds exactly the votes that were answered as accepted.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::Datelike as _;
use futures::StreamExt as _;
use futures::TryStreamExt as _;
use prost::Message as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use uuid::Uuid;
use voteflow_domain::pb;

use crate::deployment::Deployment;

/// The services' body read timeout and the ingress's client timeouts in this test.
const BODY_READ_TIMEOUT_MS: u64 = 1000;
const INGRESS_CLIENT_TIMEOUT: &str = "2s";
/// Longest any case may wait for its answer: far past both timeouts above.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
const CASES_PER_ENTRY: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Accepted, with this many votes (202 for one, 200 with `accepted` for a batch).
    Accept(usize),
    /// Refused with a 4xx (INVALID_ARGUMENT on gRPC), nothing stored.
    Refuse,
    /// Either, as long as it is answered without a 5xx.
    Either,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    /// Sent whole, then the connection waits for the answer.
    Whole,
    /// Sent whole, then the client half-closes its side.
    HalfClose,
    /// Headers and part of the body, then nothing more.
    Stall,
}

struct Case {
    name: String,
    request: Vec<u8>,
    expect: Expect,
    framing: Framing,
    /// Not valid HTTP/1.1: Rocket's HTTP layer (hyper) answers these itself, with an empty
    /// body (docs/decisions/0001); only the ingress renders them as JSON.
    malformed_http: bool,
    /// Bigger than the batch limit the services read to the end: refused unread, so a
    /// direct client may see the connection close before it has read the 413.
    beyond_drain: bool,
}

struct Entry {
    name: &'static str,
    addr: SocketAddr,
    vote_path: &'static str,
    batch_path: &'static str,
    via_ingress: bool,
}

enum Answer {
    Answered { status: u16, body: Vec<u8>, after: Duration },
    Closed { after: Duration },
    Hung,
}

fn vote(band: &str) -> Value {
    json!({"band": band, "album": "Corpus", "year": 2001, "rank": 7.5})
}

fn with(patch: Value) -> Value {
    let mut base = vote("Corpus Band");
    for (key, value) in patch.as_object().unwrap() {
        if value.is_null() && key.starts_with('-') {
            base.as_object_mut().unwrap().remove(&key[1..]);
        } else {
            base[key] = value.clone();
        }
    }
    base
}

/// Single-vote bodies and what each must get.
fn vote_bodies() -> Vec<(String, Vec<u8>, Expect)> {
    let next_year = chrono::Utc::now().year() + 1;
    let id = || Uuid::new_v4().to_string();
    let mut bodies: Vec<(String, Value, Expect)> = vec![
        ("plain".into(), vote("Corpus Band"), Expect::Accept(1)),
        ("course".into(), json!({"name": "Corpus", "album": "Live", "year": "2001", "rank": "7.5"}), Expect::Accept(1)),
        ("artist".into(), json!({"artist": "Corpus", "album": "L", "year": 1967, "ranked": "8.0"}), Expect::Accept(1)),
        ("vote_id".into(), with(json!({"vote_id": id()})), Expect::Accept(1)),
        ("cast_at".into(), with(json!({"cast_at": "2026-11-23T10:00:00+01:00"})), Expect::Accept(1)),
        ("unicode".into(), with(json!({"band": "Sigur Ro\u{0301}s"})), Expect::Accept(1)),
        ("emoji".into(), with(json!({"band": "👩\u{200D}🎤 ✨"})), Expect::Accept(1)),
        ("padded".into(), with(json!({"band": "\u{FEFF}  Blur \u{200B} "})), Expect::Accept(1)),
        ("120 chars".into(), with(json!({"band": "é".repeat(120)})), Expect::Accept(1)),
        ("edges low".into(), with(json!({"year": 1900, "rank": 0})), Expect::Accept(1)),
        ("edges high".into(), with(json!({"year": next_year, "rank": 10})), Expect::Accept(1)),
        ("unknown field".into(), with(json!({"colour": "blue", "nested": {"a": [1, 2]}})), Expect::Accept(1)),
        ("numeric strings".into(), with(json!({"year": " 1999 ", "rank": "9.25"})), Expect::Accept(1)),
    ];
    for field in ["band", "album", "year", "rank"] {
        bodies.push((format!("no {field}"), with(json!({format!("-{field}"): null})), Expect::Refuse));
        bodies.push((format!("null {field}"), with(json!({field: null})), Expect::Refuse));
        bodies.push((format!("object {field}"), with(json!({field: {"x": 1}})), Expect::Refuse));
    }
    for (name, patch) in [
        ("band number", json!({"band": 3})),
        ("album array", json!({"album": ["a"]})),
        ("year words", json!({"year": "twenty"})),
        ("year fraction", json!({"year": 2000.5})),
        ("year early", json!({"year": 1899})),
        ("year late", json!({"year": next_year + 1})),
        ("year huge", json!({"year": 1e300})),
        ("rank bool", json!({"rank": true})),
        ("rank negative", json!({"rank": -0.1})),
        ("rank high", json!({"rank": "10.01"})),
        ("rank NaN", json!({"rank": "NaN"})),
        ("rank inf", json!({"rank": "inf"})),
        ("vote_id number", json!({"vote_id": 12})),
        ("vote_id text", json!({"vote_id": "not-a-uuid"})),
        ("vote_id nil", json!({"vote_id": Uuid::nil().to_string()})),
        ("cast_at text", json!({"cast_at": "yesterday"})),
        ("band 121 chars", json!({"band": "x".repeat(121)})),
        ("band bell", json!({"band": "bad\u{0007}bell"})),
        ("band newline", json!({"band": "two\nlines"})),
        ("band empty", json!({"band": ""})),
        ("band spaces", json!({"band": " \u{00A0}\u{3000} "})),
        ("band zero-width space", json!({"band": "\u{200B}"})),
        ("band BOM", json!({"band": "\u{FEFF}"})),
        ("band RLO", json!({"band": "\u{202E}"})),
        ("band soft hyphen", json!({"band": "\u{00AD}\u{00AD}"})),
        ("band combining marks", json!({"band": "\u{0301}\u{0308}"})),
        ("band Hangul filler", json!({"band": "\u{3164}"})),
        ("band joiners", json!({"band": "\u{200D}\u{200C}\u{2060}"})),
        ("album invisible", json!({"album": "\u{200B}\u{FEFF}"})),
    ] {
        bodies.push((name.into(), with(patch), Expect::Refuse));
    }
    let mut raw: Vec<(String, Vec<u8>, Expect)> =
        bodies.into_iter().map(|(name, value, expect)| (name, value.to_string().into_bytes(), expect)).collect();
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    for (name, bytes) in [
        ("empty", b"".to_vec()),
        ("brace", b"{".to_vec()),
        ("null", b"null".to_vec()),
        ("array", b"[]".to_vec()),
        ("string", b"\"vote\"".to_vec()),
        ("number", b"42".to_vec()),
        ("not UTF-8", b"{\"band\": \"\xff\xfe\", \"album\": \"a\", \"year\": 2000, \"rank\": 5}".to_vec()),
        ("nested deep", deep.into_bytes()),
        ("BOM prefix", [b"\xef\xbb\xbf".as_slice(), vote("B").to_string().as_bytes()].concat()),
        ("trailing junk", [vote("B").to_string().as_bytes(), b"junk"].concat()),
        ("two objects", format!("{}{}", vote("B"), vote("C")).into_bytes()),
        ("duplicate key", br#"{"band": "a", "band": "b", "album": "a", "year": 2000, "rank": 5}"#.to_vec()),
        ("number too big", br#"{"band": "a", "album": "a", "year": 1e999, "rank": 5}"#.to_vec()),
        ("17 KiB", with(json!({"band": "x".repeat(17 * 1024)})).to_string().into_bytes()),
    ] {
        raw.push((name.into(), bytes, Expect::Refuse));
    }
    raw
}

fn request(method: &str, path: &str, content_type: Option<&str>, body: &[u8], chunked: bool) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: corpus\r\nConnection: close\r\n");
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        let mut bytes = head.into_bytes();
        for piece in body.chunks(700) {
            bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            bytes.extend_from_slice(piece);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
        return bytes;
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    [head.into_bytes(), body.to_vec()].concat()
}

fn case(name: String, request: Vec<u8>, expect: Expect, framing: Framing) -> Case {
    Case { name, request, expect, framing, malformed_http: false, beyond_drain: false }
}

/// The HTTP corpus for one entry point.
fn http_corpus(entry: &Entry) -> Vec<Case> {
    const JSON: Option<&str> = Some("application/json");
    let (vote_path, batch_path) = (entry.vote_path, entry.batch_path);
    let mut cases = Vec::new();
    for (name, body, expect) in vote_bodies() {
        let post = |content_type, chunked| request("POST", vote_path, content_type, &body, chunked);
        cases.push(case(name.clone(), post(JSON, false), expect, Framing::Whole));
        cases.push(case(format!("{name}, chunked"), post(JSON, true), expect, Framing::Whole));
        let charset = Some("application/json; charset=utf-8");
        cases.push(case(format!("{name}, charset"), post(charset, false), expect, Framing::Whole));
        cases.push(case(format!("{name}, half-closed"), post(JSON, false), expect, Framing::HalfClose));
        let text = Some("text/plain");
        cases.push(case(format!("{name}, text/plain"), post(text, false), Expect::Refuse, Framing::Whole));
        cases.push(case(format!("{name}, no type"), post(None, false), Expect::Refuse, Framing::Whole));
        let expect_batch = if matches!(expect, Expect::Accept(_)) { Expect::Accept(2) } else { Expect::Either };
        if body.first() == Some(&b'{') {
            let mut batch = b"[".to_vec();
            batch.extend_from_slice(&vote("Corpus Batch").to_string().into_bytes());
            batch.push(b',');
            batch.extend_from_slice(&body);
            batch.push(b']');
            // An invalid vote may refuse its item (one accepted) or the whole batch (broken JSON).
            cases.push(case(
                format!("{name}, in a batch"),
                request("POST", batch_path, JSON, &batch, false),
                expect_batch,
                Framing::Whole,
            ));
        }
    }
    let votes = |n: usize| Value::Array((0..n).map(|i| vote(&format!("Corpus Batch {i}"))).collect()).to_string();
    for (name, body, expect) in [
        ("batch of 3", votes(3), Expect::Accept(3)),
        ("batch of 1000", votes(1000), Expect::Accept(1000)),
        ("batch of 1001", votes(1001), Expect::Refuse),
        ("empty batch", "[]".into(), Expect::Either),
        ("batch of nulls", "[null, 1, \"x\"]".into(), Expect::Either),
        ("batch object", vote("B").to_string(), Expect::Refuse),
        ("batch broken", "[{\"band\":".into(), Expect::Refuse),
    ] {
        cases.push(case(
            name.into(),
            request("POST", batch_path, JSON, body.as_bytes(), false),
            expect,
            Framing::Whole,
        ));
        let chunked = request("POST", batch_path, JSON, body.as_bytes(), true);
        cases.push(case(format!("{name}, chunked"), chunked, expect, Framing::Whole));
    }
    // Over every limit: 1.1 MB, beyond what the services read to the end.
    let huge = format!("[{}]", vec![vote(&"y".repeat(110)).to_string(); 7000].join(","));
    for chunked in [false, true] {
        let mut big = case(
            format!("1.1 MB batch{}", if chunked { ", chunked" } else { "" }),
            request("POST", batch_path, JSON, huge.as_bytes(), chunked),
            Expect::Refuse,
            Framing::Whole,
        );
        big.beyond_drain = true;
        cases.push(big);
    }
    let valid = vote("Corpus Path").to_string();
    let long_path = format!("/{}", "v".repeat(9000));
    let paths: Vec<(String, Expect)> = vec![
        ("/nowhere".into(), Expect::Refuse),
        (format!("{vote_path}/"), Expect::Either),
        (format!("{vote_path}?source=corpus"), Expect::Either),
        (vote_path.to_uppercase(), Expect::Refuse),
        (format!("{vote_path}/extra"), Expect::Refuse),
        (format!("{vote_path}x"), Expect::Refuse),
        (vote_path.replace("votes", "%76otes"), Expect::Either),
        (format!("{vote_path}/../votes"), Expect::Either),
        (long_path.clone(), Expect::Refuse),
        ("/metrics".into(), Expect::Refuse),
        ("/readyz".into(), Expect::Refuse),
    ];
    for (path, expect) in paths {
        for method in ["POST", "PUT", "PATCH", "DELETE", "GET", "OPTIONS"] {
            if method == "GET" && ["/metrics", "/readyz"].contains(&path.as_str()) {
                continue; // the probes answer GET
            }
            let expect = if method == "POST" { expect } else { Expect::Refuse };
            let name = format!("{method} {}", &path[..path.len().min(40)]);
            cases.push(case(name, request(method, &path, JSON, valid.as_bytes(), false), expect, Framing::Whole));
        }
    }
    let head = |extra: &str| {
        format!(
            "POST {vote_path} HTTP/1.1\r\nHost: corpus\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}"
        )
    };
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GARBAGE\r\n\r\n".to_vec()),
        ("binary", vec![0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, b'\r', b'\n', b'\r', b'\n']),
        ("HTTP/9.9", format!("POST {vote_path} HTTP/9.9\r\nHost: c\r\nConnection: close\r\n\r\n").into_bytes()),
        ("space in path", format!("POST {vote_path} x HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n").into_bytes()),
        ("bad length", format!("{}Content-Length: abc\r\n\r\n{valid}", head("")).into_bytes()),
        ("two lengths", format!("{}Content-Length: 3\r\nContent-Length: 4\r\n\r\n{valid}", head("")).into_bytes()),
        (
            "length and chunked",
            format!("{}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", head(""), valid.len())
                .into_bytes(),
        ),
        ("gzip encoding", format!("{}Transfer-Encoding: gzip\r\n\r\n{valid}", head("")).into_bytes()),
        ("bad chunk", format!("{}Transfer-Encoding: chunked\r\n\r\nzz\r\n{valid}\r\n0\r\n\r\n", head("")).into_bytes()),
        ("header without colon", format!("{}Broken header\r\nContent-Length: 0\r\n\r\n", head("")).into_bytes()),
        (
            "header 10 KB",
            format!("{}X-Big: {}\r\nContent-Length: 0\r\n\r\n", head(""), "h".repeat(10_000)).into_bytes(),
        ),
        ("header NUL", format!("{}X-Nul: a\0b\r\nContent-Length: 0\r\n\r\n", head("")).into_bytes()),
        (
            "request line 9 KB",
            format!("POST {long_path} HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n").into_bytes(),
        ),
        (
            "bare LF",
            format!("POST {vote_path} HTTP/1.1\nHost: c\nConnection: close\nContent-Length: 0\n\n").into_bytes(),
        ),
    ];
    for (name, bytes) in malformed {
        let mut malformed = case(format!("malformed: {name}"), bytes, Expect::Refuse, Framing::Whole);
        malformed.malformed_http = true;
        cases.push(malformed);
    }
    // Stalls after at least 14 bytes of body: Rocket reads that much before any guard runs,
    // with no timeout (docs/decisions/0001), so earlier stalls are bounded by the ingress only.
    let stalled_body = format!("{}Content-Length: {}\r\n\r\n{}", head(""), valid.len(), &valid[..20]);
    cases.push(case("stalled body".into(), stalled_body.into_bytes(), Expect::Refuse, Framing::Stall));
    let stalled_chunks = format!("{}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{}", head(""), valid.len(), &valid[..20]);
    cases.push(case("stalled chunk".into(), stalled_chunks.into_bytes(), Expect::Refuse, Framing::Stall));
    if entry.via_ingress {
        let early = format!("{}Content-Length: {}\r\n\r\n{}", head(""), valid.len(), &valid[..4]);
        cases.push(case("body stalled at once".into(), early.into_bytes(), Expect::Refuse, Framing::Stall));
        let headers = format!("POST {vote_path} HTTP/1.1\r\nHost: corpus\r\nContent-Ty");
        cases.push(case("headers stalled".into(), headers.into_bytes(), Expect::Refuse, Framing::Stall));
    } else {
        // Rocket closes a connection whose client half-closed while its answer is pending
        // (hyper's half-close support is off and Rocket exposes no setting): only the ingress
        // answers such a client, so the direct entry points get these requests whole.
        for case in &mut cases {
            if case.framing == Framing::HalfClose {
                case.framing = Framing::Whole;
            }
        }
    }
    cases
}

/// Sends one case on a fresh connection and reads the answer to the end.
async fn send(addr: SocketAddr, case: &Case) -> Answer {
    let started = Instant::now();
    let exchange = async {
        let mut connection = tokio::net::TcpStream::connect(addr).await.expect("the entry point listens");
        let (mut reader, mut writer) = connection.split();
        let write = async {
            // A server may answer and close before a refused body is all sent.
            let _ = writer.write_all(&case.request).await;
            if case.framing == Framing::HalfClose {
                let _ = writer.shutdown().await;
            }
        };
        let mut seen = Vec::new();
        let read = async {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&chunk[..n]),
                }
            }
        };
        futures::join!(write, read);
        seen
    };
    let Ok(seen) = tokio::time::timeout(ANSWER_WITHIN, exchange).await else { return Answer::Hung };
    let after = started.elapsed();
    let Some(split) = seen.windows(4).position(|window| window == b"\r\n\r\n") else {
        return Answer::Closed { after };
    };
    let head = String::from_utf8_lossy(&seen[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let mut body = seen[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Answer::Answered { status, body, after }
}

fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = bytes.windows(2).position(|window| window == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&bytes[..end]).trim(), 16).unwrap_or(0);
        if size == 0 || bytes.len() < end + 2 + size {
            break;
        }
        body.extend_from_slice(&bytes[end + 2..end + 2 + size]);
        bytes = &bytes[(end + 4 + size).min(bytes.len())..];
    }
    body
}

/// The verdict on one answer: the vote_ids it accepted, or what is wrong with it.
fn judge(entry: &Entry, case: &Case, answer: &Answer) -> Result<Vec<String>, String> {
    let (status, body, after) = match answer {
        Answer::Hung => return Err(format!("no answer within {ANSWER_WITHIN:?}")),
        Answer::Closed { after } => {
            // nginx closes a stalled client's connection at its timeout without an answer.
            let stalled_at_ingress = case.framing == Framing::Stall && entry.via_ingress;
            let refused_unread = case.beyond_drain && !entry.via_ingress;
            if stalled_at_ingress || refused_unread || (case.malformed_http && !entry.via_ingress) {
                return Ok(Vec::new());
            }
            return Err(format!("closed without an answer after {after:?}"));
        }
        Answer::Answered { status, body, after } => (*status, body, *after),
    };
    let text = String::from_utf8_lossy(body);
    // hyper, under Rocket, answers an HTTP version it does not speak with 505 itself.
    let unsupported_version = status == 505 && case.malformed_http && !entry.via_ingress;
    if (status >= 500 && !unsupported_version) || status < 200 {
        return Err(format!("answered {status}: {text}"));
    }
    if case.framing == Framing::Stall {
        let bound = Duration::from_millis(BODY_READ_TIMEOUT_MS) + Duration::from_secs(2);
        if after > bound {
            return Err(format!("a stalled body answered after {after:?}, past {bound:?}"));
        }
        if !entry.via_ingress && status != 408 {
            return Err(format!("a stalled body answered {status}, not 408: {text}"));
        }
    }
    if status >= 400 {
        if matches!(case.expect, Expect::Accept(_)) {
            return Err(format!("a valid request refused {status}: {text}"));
        }
        if case.malformed_http && !entry.via_ingress && body.is_empty() {
            return Ok(Vec::new());
        }
        let json: Value = serde_json::from_slice(body).map_err(|_| format!("{status} without a JSON body: {text}"))?;
        if !json["error"].is_string() || !json["message"].is_string() {
            return Err(format!("{status} not in the error shape: {text}"));
        }
        // A body of the wrong shape (invalid_body) has no field at fault; every other 422 does.
        if status == 422 && json["error"] != "invalid_body" && !json["field"].is_string() {
            return Err(format!("422 naming no field: {text}"));
        }
        return Ok(Vec::new());
    }
    if case.expect == Expect::Refuse {
        return Err(format!("an invalid request accepted with {status}: {text}"));
    }
    let json: Value = serde_json::from_slice(body).map_err(|_| format!("{status} without a JSON body: {text}"))?;
    let ids: Vec<String> = match status {
        202 => vec![json["vote_id"].as_str().map(str::to_owned).ok_or(format!("202 without a vote_id: {text}"))?],
        200 => json["results"]
            .as_array()
            .ok_or(format!("200 without results: {text}"))?
            .iter()
            .filter_map(|result| result["vote_id"].as_str().map(str::to_owned))
            .collect(),
        other => return Err(format!("answered {other}: {text}")),
    };
    if status == 200 && json["accepted"].as_u64() != Some(ids.len() as u64) {
        return Err(format!("accepted {} but {} vote_ids: {text}", json["accepted"], ids.len()));
    }
    if let Expect::Accept(votes) = case.expect
        && ids.len() != votes
    {
        return Err(format!("accepted {} votes, not {votes}: {text}", ids.len()));
    }
    if ids.iter().any(|id| Uuid::try_parse(id).is_err()) {
        return Err(format!("a vote_id that is no UUID: {text}"));
    }
    Ok(ids)
}

fn answer_label(answer: &Answer) -> String {
    match answer {
        Answer::Answered { status, .. } => status.to_string(),
        Answer::Closed { .. } => "closed".into(),
        Answer::Hung => "hung".into(),
    }
}

/// A protobuf message made of the given bytes exactly, to send as CastVote's request.
#[derive(Clone, Debug, Default, PartialEq)]
struct RawBytes(Vec<u8>);

impl prost::Message for RawBytes {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Raw CastVote messages: valid and invalid votes, their truncations and byte flips, and
/// noise. Truncated or flipped encodings may still be valid votes (a vote without its
/// rank has rank 0), so those may be either.
fn grpc_corpus() -> Vec<(String, Vec<u8>, Expect)> {
    let good = |band: &str| pb::Vote {
        vote_id: Uuid::new_v4().to_string(),
        band: band.into(),
        album: "Corpus".into(),
        year: 2001,
        rank: 7.5,
        cast_at: None,
    };
    let mut cases = Vec::new();
    for i in 0..40 {
        cases.push((format!("valid {i}"), good(&format!("Corpus gRPC {i}")).encode_to_vec(), Expect::Accept(1)));
    }
    let bad = [
        ("empty band", pb::Vote { band: String::new(), ..good("x") }),
        ("invisible band", pb::Vote { band: "\u{200B}\u{FEFF}".into(), ..good("x") }),
        ("RLO band", pb::Vote { band: "\u{202E}".into(), ..good("x") }),
        ("marks band", pb::Vote { band: "\u{0301}".into(), ..good("x") }),
        ("long band", pb::Vote { band: "x".repeat(121), ..good("x") }),
        ("control album", pb::Vote { album: "a\u{0007}".into(), ..good("x") }),
        ("early year", pb::Vote { year: 1899, ..good("x") }),
        ("NaN rank", pb::Vote { rank: f64::NAN, ..good("x") }),
        ("high rank", pb::Vote { rank: 10.5, ..good("x") }),
        ("bad vote_id", pb::Vote { vote_id: "nope".into(), ..good("x") }),
        ("nil vote_id", pb::Vote { vote_id: Uuid::nil().to_string(), ..good("x") }),
        ("bad cast_at", pb::Vote { cast_at: Some(prost_types::Timestamp { seconds: 0, nanos: -1 }), ..good("x") }),
    ];
    for (name, vote) in bad {
        cases.push((name.to_owned(), vote.encode_to_vec(), Expect::Refuse));
    }
    cases.push(("empty message".into(), Vec::new(), Expect::Refuse));
    cases.push((
        "not UTF-8 band".into(),
        [vec![0x12, 2, 0xff, 0xfe], good("").encode_to_vec()].concat(),
        Expect::Refuse,
    ));
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..150 {
        let encoded = good(&format!("Corpus cut {i}")).encode_to_vec();
        let cut = (next() as usize) % encoded.len();
        cases.push((format!("truncated {i} at {cut}"), encoded[..cut].to_vec(), Expect::Either));
    }
    for i in 0..150 {
        let mut encoded = good(&format!("Corpus flip {i}")).encode_to_vec();
        let at = (next() as usize) % encoded.len();
        encoded[at] ^= 1 << (next() % 8);
        cases.push((format!("flipped {i} at {at}"), encoded, Expect::Either));
    }
    for i in 0..150 {
        let len = (next() % 200) as usize;
        let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        cases.push((format!("noise {i}"), noise, Expect::Either));
    }
    cases
}

/// Sends the raw corpus to grpc-server; the vote_ids it accepted and what failed.
async fn run_grpc_corpus(addr: SocketAddr, counts: &mut BTreeMap<String, usize>) -> (Vec<String>, Vec<String>) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let cases = grpc_corpus();
    assert!(cases.len() >= CASES_PER_ENTRY, "{} gRPC cases", cases.len());
    let results: Vec<(String, Expect, Result<pb::CastVoteReply, tonic::Status>)> = futures::stream::iter(cases)
        .map(|(name, bytes, expect)| {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            async move {
                grpc.ready().await.unwrap();
                let path = http::uri::PathAndQuery::from_static("/voteflow.v1.VoteService/CastVote");
                let codec = tonic_prost::ProstCodec::<RawBytes, pb::CastVoteReply>::default();
                let mut request = tonic::Request::new(RawBytes(bytes));
                request.set_timeout(ANSWER_WITHIN);
                let reply = grpc.unary(request, path, codec).await.map(tonic::Response::into_inner);
                (name, expect, reply)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let (mut accepted, mut failures) = (Vec::new(), Vec::new());
    for (name, expect, reply) in results {
        let label = match &reply {
            Ok(_) => "OK".to_owned(),
            Err(status) => format!("{:?}", status.code()),
        };
        *counts.entry(format!("grpc-server {label}")).or_default() += 1;
        match reply {
            Ok(reply) if expect != Expect::Refuse && Uuid::try_parse(&reply.vote_id).is_ok() => {
                accepted.push(reply.vote_id);
            }
            Ok(reply) => failures.push(format!("grpc-server, {name}: accepted {reply:?}")),
            Err(status) if status.code() == tonic::Code::InvalidArgument && !matches!(expect, Expect::Accept(_)) => {
                if status.metadata().get(voteflow_domain::refusal::GRPC_CODE_KEY).is_none() {
                    failures.push(format!("grpc-server, {name}: no voteflow-error in {status:?}"));
                }
            }
            Err(status) => failures.push(format!("grpc-server, {name}: {status:?}")),
        }
    }
    (accepted, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_entry_point_answers_a_hostile_corpus_for_what_each_request_is() {
    // Arrange: the whole deployment, with short read timeouts so stalls end quickly.
    let body_timeout = format!("--body-read-timeout-ms={BODY_READ_TIMEOUT_MS}");
    let deployment = Deployment::start_with(&[&body_timeout], Some(INGRESS_CLIENT_TIMEOUT)).await;
    let ingress = deployment.ingress.addr;
    let entries = [
        Entry {
            name: "ingress /votes",
            addr: ingress,
            vote_path: "/votes",
            batch_path: "/votes/batch",
            via_ingress: true,
        },
        Entry {
            name: "ingress /rest",
            addr: ingress,
            vote_path: "/rest/votes",
            batch_path: "/rest/votes/batch",
            via_ingress: true,
        },
        Entry {
            name: "ingress /grpc",
            addr: ingress,
            vote_path: "/grpc/votes",
            batch_path: "/grpc/votes/batch",
            via_ingress: true,
        },
        Entry {
            name: "rest-client",
            addr: deployment.rest_front,
            vote_path: "/votes",
            batch_path: "/votes/batch",
            via_ingress: false,
        },
        Entry {
            name: "grpc-client",
            addr: deployment.grpc_front,
            vote_path: "/votes",
            batch_path: "/votes/batch",
            via_ingress: false,
        },
        Entry {
            name: "rest-server",
            addr: deployment.rest_server,
            vote_path: "/votes",
            batch_path: "/votes/batch",
            via_ingress: false,
        },
    ];

    // Act: every entry point's corpus, a few cases at a time each. The corpora are built
    // before any connection opens, and each entry point runs as its own task: a connection
    // left unwritten while the test builds the next corpus would meet the ingress' 2 s
    // header timeout and read as a request closed without an answer.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut accepted: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let corpora: Vec<Vec<Case>> = entries.iter().map(http_corpus).collect();
    let runs = entries.iter().zip(corpora).map(|(entry, cases)| {
        assert!(cases.len() >= CASES_PER_ENTRY, "{}: {} cases", entry.name, cases.len());
        let addr = entry.addr;
        tokio::spawn(async move {
            futures::stream::iter(cases)
                .map(|case| async move {
                    let answer = send(addr, &case).await;
                    (case, answer)
                })
                .buffer_unordered(4)
                .collect::<Vec<(Case, Answer)>>()
                .await
        })
    });
    let answered = futures::future::join_all(runs).await;
    for (entry, answers) in entries.iter().zip(answered) {
        let answers = answers.expect("an entry point's run");
        for (case, answer) in answers {
            *counts.entry(format!("{} {}", entry.name, answer_label(&answer))).or_default() += 1;
            match judge(entry, &case, &answer) {
                Ok(ids) => accepted.extend(ids),
                Err(why) => failures.push(format!("{}, {}: {why}", entry.name, case.name)),
            }
        }
    }
    let (grpc_accepted, grpc_failures) = run_grpc_corpus(deployment.grpc_server, &mut counts).await;
    accepted.extend(grpc_accepted);
    failures.extend(grpc_failures);
    println!("corpus answers per entry point and status: {counts:#?}");

    // Assert: every case judged right, and the vote log holds exactly the accepted votes.
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
    let accepted: HashSet<String> = accepted.into_iter().collect();
    let consumer = &deployment.consumer;
    let expected = accepted.len() as i64;
    let (counted, logged) = consumer.wait_for_counted(expected, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((counted, logged), (expected, expected as u64), "counted and logged: the accepted votes");
    assert_eq!((consumer.total().await, consumer.logged().await), (expected, expected as u64), "nothing late");
    let stored: HashSet<String> = consumer
        .votes
        .find(mongodb::bson::doc! {})
        .await
        .unwrap()
        .map_ok(|document| document.get_str("_id").unwrap().to_owned())
        .try_collect()
        .await
        .unwrap();
    let unanswered: Vec<_> = stored.difference(&accepted).collect();
    assert!(unanswered.is_empty(), "stored without being answered as accepted: {unanswered:?}");
    assert_eq!(stored, accepted);
}
