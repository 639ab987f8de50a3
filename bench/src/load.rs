//! Sends votes to one or more HTTP endpoints (the paths) with bounded concurrency (a closed
//! loop of N workers over keep-alive connections), printing progress every second, and
//! records every answer per endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use crate::traffic;

/// What a run was told.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub sent: u64,
    /// Answered 2xx: the vote is in Kafka.
    pub accepted: u64,
    /// Answered 4xx/5xx.
    pub refused: u64,
    /// No answer (connection error or timeout).
    pub failed: u64,
    pub elapsed: Duration,
    /// Latency of each accepted vote, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadReport {
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[rank.min(self.latencies.len() - 1)]
    }
}

enum Outcome {
    Accepted(Duration),
    Refused(u16, String),
    Failed(String),
}

/// Where a share of the votes goes: a label (the path) and the `POST` URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub label: String,
    pub endpoint: String,
}

/// Sends `votes` votes spread evenly over `targets` at once, each target with its share of
/// `concurrency` requests in flight; one report per target, in order.
pub async fn send_votes(targets: &[Target], votes: u64, concurrency: usize) -> anyhow::Result<Vec<LoadReport>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()?;
    let done = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(print_progress(done.clone(), votes));
    let shares = targets.len().max(1) as u64;
    let per_target = (concurrency / targets.len().max(1)).max(1);
    let runs = targets.iter().enumerate().map(|(i, target)| {
        // Target i sends votes i, i + n, i + 2n, ...: every target gets the same mix.
        let indices = (i as u64..votes).step_by(shares as usize);
        send_share(&http, &target.endpoint, indices, per_target, &done)
    });
    let reports = futures::future::join_all(runs).await;
    progress.abort();
    Ok(reports)
}

async fn send_share(
    http: &reqwest::Client,
    endpoint: &str,
    indices: impl Iterator<Item = u64>,
    concurrency: usize,
    done: &AtomicU64,
) -> LoadReport {
    let started = Instant::now();
    let mut report = LoadReport::default();
    let mut first_refusal = None;
    let mut outcomes = futures::stream::iter(indices)
        .map(|i| async move {
            let sent_at = Instant::now();
            let outcome = match http.post(endpoint).json(&traffic::vote(i)).send().await {
                Ok(response) if response.status().is_success() => Outcome::Accepted(sent_at.elapsed()),
                Ok(response) => {
                    let status = response.status().as_u16();
                    Outcome::Refused(status, response.text().await.unwrap_or_default())
                }
                Err(error) => Outcome::Failed(error.to_string()),
            };
            done.fetch_add(1, Ordering::Relaxed);
            outcome
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(outcome) = outcomes.next().await {
        report.sent += 1;
        match outcome {
            Outcome::Accepted(latency) => {
                report.accepted += 1;
                report.latencies.push(latency);
            }
            Outcome::Refused(status, body) => {
                report.refused += 1;
                first_refusal.get_or_insert(format!("{status} {body}"));
            }
            Outcome::Failed(error) => {
                report.failed += 1;
                first_refusal.get_or_insert(error);
            }
        }
    }
    report.elapsed = started.elapsed();
    report.latencies.sort_unstable();
    if let Some(first) = first_refusal {
        eprintln!("[demo] first vote not accepted by {endpoint}: {first}");
    }
    report
}

async fn print_progress(done: Arc<AtomicU64>, total: u64) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let done = done.load(Ordering::Relaxed);
        let rate = done as f64 / started.elapsed().as_secs_f64();
        eprintln!("[demo] sent {done}/{total} votes ({:.0}%), {rate:.0} votes/s", done as f64 * 100.0 / total as f64);
    }
}
