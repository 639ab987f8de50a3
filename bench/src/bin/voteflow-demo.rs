//! voteflow-demo: the main job of `scripts/demo`. Sends N votes through the ingress to both paths,
//! waits until the consumer has counted and logged every accepted one, prints the
//! leaderboard, and ends with `accepted=A counted=C logged=L` (exit 1 unless all equal).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use voteflow_bench::speed::generator::{self, HttpJson, Ledger, Pace, Plan};
use voteflow_bench::tally::{Patience, Scope, Sinks};
use voteflow_bench::traffic;

#[derive(Debug, Parser)]
#[command(
    name = "voteflow-demo",
    version,
    about = "Send N votes through a running voteflow pipeline (both paths, via the ingress) and check that every accepted vote was counted and logged",
    long_about = "Sends N votes (the course's JSON traffic formats) through the ingress, shared between the paths, \
        with progress output, then waits until Redis counts and MongoDB logs every accepted vote of this run, prints the leaderboard and the \
        vote log's size, one line per path (`path=P accepted= rps= p50_ms= p99_ms=`), and ends with \
        `accepted=A counted=C logged=L`. Exits 1 unless A = C = L > 0. \
        Counted and logged are this run's: the Redis total's growth, and documents accepted since the run began \
        (so nothing else should be voting meanwhile)."
)]
struct Args {
    /// Votes to send.
    #[arg(long, default_value_t = 10_000)]
    votes: u64,
    /// Base URL of the ingress (or of one front, with `--paths direct`).
    #[arg(long, env = "VOTEFLOW_INGRESS_URL", default_value = "http://127.0.0.1:8088")]
    url: String,
    /// Paths to share the votes between: `rest` posts to URL/rest/votes, `grpc` to
    /// URL/grpc/votes, `split` to URL/votes (the ingress picks), `direct` to URL/votes.
    #[arg(long, value_delimiter = ',', default_value = "rest,grpc")]
    paths: Vec<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds to wait for the consumer to catch up once it has stopped making progress.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/")]
    redis_url: String,
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "voteflow:")]
    redis_key_prefix: String,
    #[arg(long, env = "MONGODB_URI", default_value = "mongodb://127.0.0.1:27017/")]
    mongodb_uri: String,
    #[arg(long, env = "MONGODB_DATABASE", default_value = "voteflow")]
    mongodb_database: String,
    /// Print `name=address` of each service's /readyz and /metrics (their settings'
    /// defaults, which scripts/demo starts them at) and exit.
    #[arg(long)]
    services: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.services {
        for (name, address) in voteflow_bench::services::Addresses::defaults().admin() {
            println!("{name}={address}");
        }
        return Ok(());
    }
    let sinks = Sinks::connect(&args.redis_url, &args.redis_key_prefix, &args.mongodb_uri, &args.mongodb_database)
        .await
        .context("Failed to connect to Redis and MongoDB")?;
    let counted_before = sinks.total().await.context("Failed to read the Redis total")?;
    let run_started = chrono::Utc::now();

    let base = args.url.trim_end_matches('/');
    let targets: Vec<(String, String)> = args
        .paths
        .iter()
        .map(|path| {
            let endpoint = match path.as_str() {
                "split" | "direct" => format!("{base}/votes"),
                prefix => format!("{base}/{prefix}/votes"),
            };
            (path.clone(), endpoint)
        })
        .collect();
    println!(
        "sending {} votes to {base} over {} with {} in flight",
        args.votes,
        args.paths.join(" and "),
        args.concurrency
    );
    let started = std::time::Instant::now();
    let body: Arc<dyn Fn(u64) -> Bytes + Send + Sync> =
        Arc::new(|i| Bytes::from(serde_json::to_vec(&traffic::vote(i)).expect("a vote serialises")));
    let connections = (args.concurrency / targets.len().max(1)).max(1);
    let runs = targets.iter().enumerate().map(|(k, (label, endpoint))| {
        // Path k gets every n-th vote of the run, so the paths share it evenly.
        let share = (k as u64..args.votes).step_by(targets.len()).count() as u64;
        let body = body.clone();
        async move {
            let plan = Plan {
                tool: "demo",
                label: label.clone(),
                connections,
                pace: Pace::Closed,
                warmup: Duration::ZERO,
                measure: Duration::ZERO,
                votes_per_request: 1,
                progress: true,
                requests: Some(share),
            };
            let requesters = (0..connections)
                .map(|_| HttpJson::new(endpoint, body.clone(), false))
                .collect::<anyhow::Result<_>>()?;
            let ledger = Arc::new(Ledger::default());
            let figures = generator::run(&plan, requesters, Arc::default(), ledger.clone()).await;
            if let Some(failure) = &figures.first_failure {
                eprintln!("[demo] first vote not accepted by {endpoint}: {failure}");
            }
            anyhow::Ok((figures, ledger.accepted_votes.load(Ordering::Relaxed)))
        }
    });
    let results = futures::future::try_join_all(runs).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let accepted: u64 = results.iter().map(|(_, accepted)| accepted).sum();
    println!(
        "sent {} votes in {elapsed:.2} s: {:.0} votes/s; accepted {accepted}, not accepted {}",
        args.votes,
        args.votes as f64 / elapsed,
        args.votes - accepted
    );

    let scope = Scope::Since { counted_before, run_started };
    let patience = Patience { settle: Duration::from_millis(500), stalled: Duration::from_secs(args.wait_secs) };
    let (counted, logged) = sinks.wait_caught_up(accepted, scope, patience, "demo").await?;

    println!("leaderboard (all time, Redis {}leaderboard):", args.redis_key_prefix);
    for (place, (band, votes)) in sinks.leaderboard(10).await?.into_iter().enumerate() {
        println!("  {:>2}. {band:<28} {votes:>8}", place + 1);
    }
    println!("vote log: {} documents in {}.votes", sinks.logged_total().await?, args.mongodb_database);
    for ((label, _), (figures, path_accepted)) in targets.iter().zip(&results) {
        println!(
            "path={label} accepted={path_accepted} rps={:.0} p50_ms={:.2} p99_ms={:.2}",
            figures.requests_per_s, figures.p50_ms, figures.p99_ms,
        );
    }
    println!("accepted={accepted} counted={counted} logged={logged}");
    // Every vote the demo sends is valid and the pipeline is healthy, so each must be
    // accepted, on every path.
    if accepted != args.votes || results.iter().any(|(_, path_accepted)| *path_accepted == 0) {
        eprintln!("[demo] FAILED: {accepted} of {} votes accepted; every vote sent must be, on every path", args.votes);
        std::process::exit(1);
    }
    if accepted != counted || counted != logged {
        eprintln!("[demo] FAILED: every accepted vote must be counted once and logged once");
        std::process::exit(1);
    }
    Ok(())
}
