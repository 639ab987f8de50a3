//! The benchmark's load generator: N workers, each on a connection of its own (HTTP/1.1
//! keep-alive JSON, or a gRPC channel), in a closed loop (send, wait, send) or an open
//! loop (a fixed rate, latency counted from the moment a request was due, so a slow
//! server cannot hide its queue). Latencies go into HDR histograms; progress is printed.
//!
//! It counts only the answers it was given: a vote is accepted when the server said so
//! (2xx with per-vote results for batches, gRPC OK), and the accepted total, warm-up and
//! late answers included, is what the harness later expects Redis and MongoDB to hold.

use std::future::Future;
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use voteflow_producer_grpc::rpc::vote_service_client::VoteServiceClient;

/// What one request got back.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer {
    pub accepted_votes: u64,
    pub refused_votes: u64,
}

/// One kind of request, sent by one worker over its own connection.
pub trait Requester: Send + 'static {
    /// Sends request number `i` (unique in the run) and waits for its answer; `Err` when
    /// there was no answer (connection error, timeout) or an answer that is not a verdict.
    fn send(&mut self, i: u64) -> impl Future<Output = Result<Answer, String>> + Send;
}

/// How requests are paced.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Each worker sends its next request as soon as the previous one is answered.
    Closed,
    /// Requests per second over all workers, each due at a fixed time.
    Open { rate: f64 },
    /// Requests per second over all workers, for requesters that re-send a request until it
    /// is answered (a careful client): a worker still re-sending skips the requests that fell
    /// due meanwhile instead of sending them late, as such a client would not pile up.
    Retrying { rate: f64 },
}

/// One measured run of a scenario.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The tool running it, for progress lines (`bench`, `demo`, `chaos`).
    pub tool: &'static str,
    pub label: String,
    pub connections: usize,
    pub pace: Pace,
    /// Sent, but neither timed nor counted in the rates (connections, caches, JIT-free
    /// but still: the broker's first batches).
    pub warmup: Duration,
    pub measure: Duration,
    /// Votes per request (1, or the batch size), for the votes/s figure.
    pub votes_per_request: u64,
    /// Print a progress line every second.
    pub progress: bool,
    /// Stop after this many requests (request numbers 0..n) instead of at the window's end;
    /// the window then lasts until the last answer.
    pub requests: Option<u64>,
}

/// The figures of one run, as written into results JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunFigures {
    pub connections: usize,
    /// `closed` or the open loop's offered requests/s.
    pub pace: String,
    pub seconds: f64,
    pub requests: u64,
    pub requests_per_s: f64,
    pub votes_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Requests in the window with no verdict (connection error, timeout, 5xx).
    pub failed_requests: u64,
    /// Votes the servers refused (4xx or per-vote rejections) in the window.
    pub refused_votes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

/// Counted over the whole run (warm-up and late answers too), for the final check.
#[derive(Debug, Default)]
pub struct Ledger {
    pub accepted_votes: AtomicU64,
    /// Requests that got no verdict: their votes may or may not be in Kafka.
    pub unanswered_votes: AtomicU64,
}

struct WorkerResult {
    histogram: Histogram<u64>,
    requests: u64,
    accepted_votes: u64,
    refused_votes: u64,
    failed: u64,
    first_failure: Option<String>,
}

impl WorkerResult {
    fn new() -> Self {
        Self {
            histogram: new_histogram(),
            requests: 0,
            accepted_votes: 0,
            refused_votes: 0,
            failed: 0,
            first_failure: None,
        }
    }
}

/// Runs `plan` with one requester per connection; `next_index` hands out request numbers.
pub async fn run<R: Requester>(
    plan: &Plan,
    requesters: Vec<R>,
    next_index: Arc<AtomicU64>,
    ledger: Arc<Ledger>,
) -> RunFigures {
    let started = Instant::now();
    let window_start = started + plan.warmup;
    let window_end = if plan.requests.is_some() { started + UNBOUNDED } else { window_start + plan.measure };
    let answered = Arc::new(AtomicU64::new(0));
    let progress = plan.progress.then(|| tokio::spawn(print_progress(plan.clone(), started, answered.clone())));
    let connections = requesters.len().max(1);
    let workers: Vec<_> = requesters
        .into_iter()
        .enumerate()
        .map(|(worker, requester)| {
            let due = match plan.pace {
                Pace::Closed => None,
                Pace::Open { rate } | Pace::Retrying { rate } => {
                    let every = Duration::from_secs_f64(connections as f64 / rate.max(0.001));
                    Some((started + Duration::from_secs_f64(worker as f64 / rate.max(0.001)), every))
                }
            };
            let (next_index, ledger, answered) = (next_index.clone(), ledger.clone(), answered.clone());
            tokio::spawn(work(
                requester,
                due,
                window_start,
                window_end,
                next_index,
                ledger,
                answered,
                plan.votes_per_request,
                plan.requests,
                matches!(plan.pace, Pace::Retrying { .. }),
            ))
        })
        .collect();
    let mut total = WorkerResult::new();
    for worker in workers {
        let Ok(result) = worker.await else { continue };
        let _ = total.histogram.add(&result.histogram);
        total.requests += result.requests;
        total.accepted_votes += result.accepted_votes;
        total.refused_votes += result.refused_votes;
        total.failed += result.failed;
        if total.first_failure.is_none() {
            total.first_failure = result.first_failure;
        }
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    if plan.progress && std::io::stderr().is_terminal() {
        eprintln!();
    }
    let seconds = match plan.requests {
        Some(_) => started.elapsed().saturating_sub(plan.warmup).as_secs_f64(),
        None => plan.measure.as_secs_f64(),
    };
    let ms = |quantile: f64| total.histogram.value_at_quantile(quantile) as f64 / 1000.0;
    RunFigures {
        connections,
        pace: match plan.pace {
            Pace::Closed => "closed".to_owned(),
            Pace::Open { rate } => format!("open {rate:.0}/s"),
            Pace::Retrying { rate } => format!("retrying {rate:.0}/s"),
        },
        seconds,
        requests: total.requests,
        requests_per_s: total.requests as f64 / seconds,
        votes_per_s: total.accepted_votes as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: total.histogram.max() as f64 / 1000.0,
        failed_requests: total.failed,
        refused_votes: total.refused_votes,
        first_failure: total.first_failure,
    }
}

/// A window end no run reaches: a run bounded by its request count ends with its requests.
const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);

pub(crate) fn new_histogram() -> Histogram<u64> {
    // Microseconds, 1 us to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| Histogram::new(3).expect("3 sigfigs is valid"))
}

#[allow(clippy::too_many_arguments)]
async fn work<R: Requester>(
    mut requester: R,
    mut due: Option<(Instant, Duration)>,
    window_start: Instant,
    window_end: Instant,
    next_index: Arc<AtomicU64>,
    ledger: Arc<Ledger>,
    answered: Arc<AtomicU64>,
    votes_per_request: u64,
    limit: Option<u64>,
    skip_missed: bool,
) -> WorkerResult {
    let mut result = WorkerResult::new();
    loop {
        let sent_at = match &mut due {
            None => Instant::now(),
            Some((at, every)) => {
                while skip_missed && *at < Instant::now() {
                    *at += *every;
                }
                let this = *at;
                *at += *every;
                tokio::time::sleep_until(this.into()).await;
                this
            }
        };
        if sent_at >= window_end {
            return result;
        }
        let i = next_index.fetch_add(1, Ordering::Relaxed);
        if limit.is_some_and(|limit| i >= limit) {
            return result;
        }
        let outcome = requester.send(i).await;
        let finished = Instant::now();
        answered.fetch_add(1, Ordering::Relaxed);
        match &outcome {
            Ok(answer) => {
                ledger.accepted_votes.fetch_add(answer.accepted_votes, Ordering::Relaxed);
            }
            Err(_) => {
                ledger.unanswered_votes.fetch_add(votes_per_request, Ordering::Relaxed);
            }
        }
        // Timed and counted: requests due inside the window and answered by its end.
        if sent_at < window_start || finished > window_end {
            continue;
        }
        result.requests += 1;
        match outcome {
            Ok(answer) => {
                let micros = finished.duration_since(sent_at).as_micros() as u64;
                let _ = result.histogram.record(micros.max(1));
                result.accepted_votes += answer.accepted_votes;
                result.refused_votes += answer.refused_votes;
            }
            Err(failure) => {
                result.failed += 1;
                result.first_failure.get_or_insert(failure);
                // A dead connection answers at once; do not spin on it.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn print_progress(plan: Plan, started: Instant, answered: Arc<AtomicU64>) {
    let total = plan.warmup + plan.measure;
    let terminal = std::io::stderr().is_terminal();
    let mut last = (started, 0);
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let done = answered.load(Ordering::Relaxed);
        let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, done);
        let elapsed = now.duration_since(started).min(total);
        let (part, of) = match plan.requests {
            Some(limit) => (done as f64, format!("{limit} requests")),
            None => (elapsed.as_secs_f64(), format!("{:.0} s", total.as_secs_f64())),
        };
        let whole = plan.requests.map_or(total.as_secs_f64(), |limit| limit as f64).max(f64::EPSILON);
        let filled = (part / whole * 20.0).round() as usize;
        let phase = if elapsed < plan.warmup { "warm-up" } else { "measuring" };
        let line = format!(
            "[{}] {:<12} [{}{}] {part:>4.0}/{of} {phase:<9} {rate:>8.0} requests/s",
            plan.tool,
            plan.label,
            "#".repeat(filled.min(20)),
            ".".repeat(20 - filled.min(20)),
        );
        if terminal {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// HTTP/1.1 keep-alive POSTs of JSON on one connection (reconnecting after an error).
pub struct HttpJson {
    authority: String,
    path: String,
    body: Arc<dyn Fn(u64) -> Bytes + Send + Sync>,
    /// Told (request number, answer time) for each accepted request (freshness tracking).
    on_accepted: Option<Arc<dyn Fn(u64, Instant) + Send + Sync>>,
    /// A batch answer carries per-vote results; a single vote's 2xx is one vote.
    batch: bool,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl HttpJson {
    pub fn new(url: &str, body: Arc<dyn Fn(u64) -> Bytes + Send + Sync>, batch: bool) -> anyhow::Result<Self> {
        let uri: http::Uri = url.parse()?;
        let authority = uri.authority().ok_or_else(|| anyhow::anyhow!("{url} has no host:port"))?.to_string();
        Ok(Self {
            authority,
            path: uri.path().to_owned(),
            body,
            on_accepted: None,
            batch,
            sender: None,
            timeout: Duration::from_secs(10),
        })
    }

    pub fn on_accepted(mut self, hook: Arc<dyn Fn(u64, Instant) + Send + Sync>) -> Self {
        self.on_accepted = Some(hook);
        self
    }

    async fn connect(&mut self) -> Result<(), String> {
        let stream = TcpStream::connect(&self.authority).await.map_err(|error| format!("connect: {error}"))?;
        stream.set_nodelay(true).map_err(|error| error.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| format!("handshake: {error}"))?;
        tokio::spawn(connection);
        self.sender = Some(sender);
        Ok(())
    }

    async fn exchange(&mut self, i: u64) -> Result<Answer, String> {
        if self.sender.as_ref().is_none_or(|sender| sender.is_closed()) {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().ok_or("no connection")?;
        sender.ready().await.map_err(|error| error.to_string())?;
        let request = http::Request::post(self.path.as_str())
            .header(http::header::HOST, self.authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new((self.body)(i)))
            .map_err(|error| error.to_string())?;
        let response = sender.send_request(request).await.map_err(|error| error.to_string())?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|error| error.to_string())?.to_bytes();
        if status.is_server_error() {
            return Err(format!("{status} {}", String::from_utf8_lossy(&body)));
        }
        if !self.batch {
            return Ok(if status.is_success() {
                Answer { accepted_votes: 1, refused_votes: 0 }
            } else {
                Answer { accepted_votes: 0, refused_votes: 1 }
            });
        }
        let report: serde_json::Value =
            serde_json::from_slice(&body).map_err(|error| format!("{status}: batch report is not JSON: {error}"))?;
        match (report["accepted"].as_u64(), report["rejected"].as_u64()) {
            (Some(accepted), Some(rejected)) => Ok(Answer { accepted_votes: accepted, refused_votes: rejected }),
            _ => Err(format!("{status} {}", String::from_utf8_lossy(&body))),
        }
    }
}

impl Requester for HttpJson {
    async fn send(&mut self, i: u64) -> Result<Answer, String> {
        let answer = match tokio::time::timeout(self.timeout, self.exchange(i)).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        if answer.is_err() {
            // The connection's state is unknown: start the next request on a new one.
            self.sender = None;
        }
        if let (Ok(answer), Some(hook)) = (&answer, &self.on_accepted)
            && answer.accepted_votes > 0
        {
            hook(i, Instant::now());
        }
        answer
    }
}

/// gRPC calls on one channel (one HTTP/2 connection): `CastVote`, or `CastVotes` with
/// `batch` votes per stream.
pub struct Grpc {
    client: VoteServiceClient<tonic::transport::Channel>,
    vote: Arc<dyn Fn(u64) -> voteflow_domain::pb::Vote + Send + Sync>,
    batch: Option<u64>,
}

impl Grpc {
    pub async fn connect(
        url: &str,
        vote: Arc<dyn Fn(u64) -> voteflow_domain::pb::Vote + Send + Sync>,
        batch: Option<u64>,
    ) -> anyhow::Result<Self> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .connect()
            .await?;
        Ok(Self { client: VoteServiceClient::new(channel), vote, batch })
    }
}

impl Requester for Grpc {
    async fn send(&mut self, i: u64) -> Result<Answer, String> {
        match self.batch {
            None => match self.client.cast_vote((self.vote)(i)).await {
                Ok(_) => Ok(Answer { accepted_votes: 1, refused_votes: 0 }),
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    Ok(Answer { accepted_votes: 0, refused_votes: 1 })
                }
                Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
            },
            Some(size) => {
                let votes: Vec<_> = (i * size..(i + 1) * size).map(|n| (self.vote)(n)).collect();
                match self.client.cast_votes(futures::stream::iter(votes)).await {
                    Ok(summary) => {
                        let summary = summary.into_inner();
                        Ok(Answer { accepted_votes: summary.accepted.into(), refused_votes: summary.rejected.into() })
                    }
                    Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
                }
            }
        }
    }
}
