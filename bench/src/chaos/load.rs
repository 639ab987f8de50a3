//! The suite's client: the bench's generator at a retrying pace, sending votes through the
//! ingress to both paths, each with its own vote_id (the idempotency key), re-sent with the
//! same vote_id after a 503, a 5xx or no answer, as a careful real client would, until
//! accepted or out of time. A ledger keeps every vote's final answer; a per-second
//! histogram of answers gives each fault its figures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use crate::speed::generator::{self, Pace, Plan, Requester};
use crate::traffic;

/// One in this many votes is invalid on purpose (rank out of range): it must get a 4xx
/// and never be counted.
const INVALID_EVERY: u64 = 40;
/// Most votes in flight (retries included): a bounded client, one generator worker each.
const MAX_IN_FLIGHT: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: Kafka has it.
    Accepted,
    /// 4xx (not 429): the vote was refused for what it is; never re-sent.
    Refused,
    /// 503, 429, another 5xx, or no answer: re-sent with the same vote_id.
    Unavailable,
}

/// Every vote of the run and its last answer.
#[derive(Debug, Clone)]
pub struct SentVote {
    pub vote_id: Uuid,
    pub band: String,
    pub path: &'static str,
    /// Whether the vote was valid (an invalid one must be refused).
    pub valid: bool,
    pub answer: Answer,
    pub attempts: u32,
}

/// Answers per second of the run, by kind, for per-fault figures.
pub struct Timeline {
    pub started: Instant,
    seconds: Vec<[AtomicU64; 3]>,
}

impl Timeline {
    fn new(started: Instant, seconds: usize) -> Self {
        Self { started, seconds: (0..seconds).map(|_| Default::default()).collect() }
    }

    fn record(&self, answer: Answer) {
        let second = (self.started.elapsed().as_secs() as usize).min(self.seconds.len() - 1);
        let kind = match answer {
            Answer::Accepted => 0,
            Answer::Refused => 1,
            Answer::Unavailable => 2,
        };
        self.seconds[second][kind].fetch_add(1, Ordering::Relaxed);
    }

    /// (accepted, refused, unavailable) answers given between `from` and `to` (seconds
    /// since the start, whole seconds).
    pub fn between(&self, from: Duration, to: Duration) -> (u64, u64, u64) {
        let (from, to) = (from.as_secs() as usize, (to.as_secs() as usize).min(self.seconds.len() - 1));
        let mut sums = (0, 0, 0);
        for second in self.seconds.get(from..=to).unwrap_or_default() {
            sums.0 += second[0].load(Ordering::Relaxed);
            sums.1 += second[1].load(Ordering::Relaxed);
            sums.2 += second[2].load(Ordering::Relaxed);
        }
        sums
    }
}

pub struct Load {
    pub timeline: Arc<Timeline>,
    pub ledger: Arc<Mutex<Vec<SentVote>>>,
    pub in_flight: Arc<AtomicU64>,
    pub sent: Arc<AtomicU64>,
}

impl Load {
    /// Another handle on the same counters and ledger.
    pub fn clone_handles(&self) -> Self {
        Self {
            timeline: self.timeline.clone(),
            ledger: self.ledger.clone(),
            in_flight: self.in_flight.clone(),
            sent: self.sent.clone(),
        }
    }

    /// Sends `rate` new votes per second for `duration` (fewer while all `MAX_IN_FLIGHT`
    /// workers are re-sending), re-sending each until it is accepted or refused, or
    /// `give_up_after` has passed since the load ended. Returns when every vote has its
    /// final answer.
    pub async fn run(&self, base_url: &str, rate: u64, duration: Duration, give_up_after: Duration) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .tcp_nodelay(true)
            .build()
            .expect("an HTTP client");
        let give_up_at = Instant::now() + duration + give_up_after;
        let requesters = (0..MAX_IN_FLIGHT)
            .map(|_| Careful {
                http: http.clone(),
                base_url: base_url.trim_end_matches('/').to_owned(),
                give_up_at,
                load: self.clone_handles(),
            })
            .collect();
        let plan = Plan {
            tool: "chaos",
            label: "load".to_owned(),
            connections: MAX_IN_FLIGHT,
            pace: Pace::Retrying { rate: rate as f64 },
            warmup: Duration::ZERO,
            measure: duration.saturating_sub(self.timeline.started.elapsed()),
            votes_per_request: 1,
            progress: false,
            requests: None,
        };
        generator::run(&plan, requesters, Arc::default(), Arc::default()).await;
    }
}

/// One worker's client: sends vote `i` to the path its parity picks and re-sends it until
/// it has a final answer, which goes into the ledger.
struct Careful {
    http: reqwest::Client,
    base_url: String,
    give_up_at: Instant,
    load: Load,
}

impl Requester for Careful {
    async fn send(&mut self, index: u64) -> Result<generator::Answer, String> {
        let (vote, band, valid) = make_vote(index);
        let path = if index.is_multiple_of(2) { "rest" } else { "grpc" };
        let endpoint = format!("{}/{path}/votes", self.base_url);
        self.load.in_flight.fetch_add(1, Ordering::Relaxed);
        self.load.sent.fetch_add(1, Ordering::Relaxed);
        let vote_id = vote["vote_id"].as_str().and_then(|id| Uuid::parse_str(id).ok()).unwrap_or_default();
        let (answer, attempts) =
            send_until_answered(&self.http, &endpoint, &vote, &self.load.timeline, self.give_up_at).await;
        let sent = SentVote { vote_id, band, path, valid, answer, attempts };
        self.load.ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(sent);
        self.load.in_flight.fetch_sub(1, Ordering::Relaxed);
        match answer {
            Answer::Accepted => Ok(generator::Answer { accepted_votes: 1, refused_votes: 0 }),
            Answer::Refused => Ok(generator::Answer { accepted_votes: 0, refused_votes: 1 }),
            Answer::Unavailable => Err(format!("vote {index} given up after {attempts} attempts")),
        }
    }
}

impl Default for Load {
    fn default() -> Self {
        Self {
            timeline: Arc::new(Timeline::new(Instant::now(), 600)),
            ledger: Arc::default(),
            in_flight: Arc::default(),
            sent: Arc::default(),
        }
    }
}

/// The `index`-th vote with a fresh vote_id; every `INVALID_EVERY`-th one invalid.
fn make_vote(index: u64) -> (Value, String, bool) {
    let mut vote = traffic::vote(index);
    let band = ["band", "name", "artist"]
        .iter()
        .find_map(|key| vote.get(*key).and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    vote["vote_id"] = Value::String(Uuid::new_v4().to_string());
    let valid = index % INVALID_EVERY != INVALID_EVERY - 1;
    if !valid {
        vote["rank"] = Value::from(11);
        vote.as_object_mut().map(|fields| fields.remove("ranked"));
    }
    (vote, band, valid)
}

async fn send_until_answered(
    http: &reqwest::Client,
    endpoint: &str,
    vote: &Value,
    timeline: &Timeline,
    give_up_at: Instant,
) -> (Answer, u32) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (answer, retry_after) = match http.post(endpoint).json(vote).send().await {
            Ok(response) if response.status().is_success() => (Answer::Accepted, None),
            Ok(response) if response.status().is_client_error() && response.status().as_u16() != 429 => {
                (Answer::Refused, None)
            }
            Ok(response) => {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<f64>().ok())
                    .map(Duration::from_secs_f64);
                (Answer::Unavailable, retry_after)
            }
            Err(_) => (Answer::Unavailable, None),
        };
        timeline.record(answer);
        if answer != Answer::Unavailable || Instant::now() >= give_up_at {
            return (answer, attempts);
        }
        // Retry-After is the server's word; without it, back off a little with jitter.
        let jitter = Duration::from_millis(u64::from(attempts.min(8)) * 50 + (vote_hash(vote) % 100));
        tokio::time::sleep(retry_after.unwrap_or(jitter).min(Duration::from_secs(2))).await;
    }
}

fn vote_hash(vote: &Value) -> u64 {
    vote["vote_id"]
        .as_str()
        .map(|id| id.bytes().fold(0_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))))
        .unwrap_or(0)
}
