//! voteflow-demo: the main job of `scripts/demo`. Sends N votes through the ingress to both paths,
//! waits until the consumer has counted and logged every accepted one, prints the
//! leaderboard, and ends with `accepted=A counted=C logged=L` (exit 1 unless all equal).

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use voteflow_bench::load::{self, Target};
use voteflow_bench::tally::Sinks;

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
    /// Seconds to wait for the consumer to catch up.
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sinks = Sinks::connect(&args.redis_url, &args.redis_key_prefix, &args.mongodb_uri, &args.mongodb_database)
        .await
        .context("Failed to connect to Redis and MongoDB")?;
    let counted_before = sinks.total().await.context("Failed to read the Redis total")?;
    let run_started = chrono::Utc::now();

    let base = args.url.trim_end_matches('/');
    let targets: Vec<Target> = args
        .paths
        .iter()
        .map(|path| Target {
            label: path.clone(),
            endpoint: match path.as_str() {
                "split" | "direct" => format!("{base}/votes"),
                prefix => format!("{base}/{prefix}/votes"),
            },
        })
        .collect();
    println!(
        "sending {} votes to {base} over {} with {} in flight",
        args.votes,
        args.paths.join(" and "),
        args.concurrency
    );
    let started = std::time::Instant::now();
    let reports = load::send_votes(&targets, args.votes, args.concurrency).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let accepted: u64 = reports.iter().map(|report| report.accepted).sum();
    let refused: u64 = reports.iter().map(|report| report.refused + report.failed).sum();
    println!(
        "sent {} votes in {elapsed:.2} s: {:.0} votes/s; accepted {accepted}, not accepted {refused}",
        args.votes,
        args.votes as f64 / elapsed
    );

    let (mut counted, mut logged) =
        sinks.wait_for(accepted, counted_before, run_started, Duration::from_secs(args.wait_secs)).await?;
    // Look once more after a pause: a vote counted twice would show up as an overshoot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    counted = counted.max(sinks.total().await?.saturating_sub(counted_before));
    logged = logged.max(sinks.logged_since(run_started).await?);

    println!("leaderboard (all time, Redis {}leaderboard):", args.redis_key_prefix);
    for (place, (band, votes)) in sinks.leaderboard(10).await?.into_iter().enumerate() {
        println!("  {:>2}. {band:<28} {votes:>8}", place + 1);
    }
    println!("vote log: {} documents in {}.votes", sinks.logged_total().await?, args.mongodb_database);
    for (target, report) in targets.iter().zip(&reports) {
        println!(
            "path={} accepted={} rps={:.0} p50_ms={:.2} p99_ms={:.2}",
            target.label,
            report.accepted,
            report.rate(),
            report.percentile(50.0).as_secs_f64() * 1e3,
            report.percentile(99.0).as_secs_f64() * 1e3,
        );
    }
    println!("accepted={accepted} counted={counted} logged={logged}");
    // Every vote the demo sends is valid and the pipeline is healthy, so each must be
    // accepted, on every path.
    if accepted != args.votes || reports.iter().any(|report| report.accepted == 0) {
        eprintln!("[demo] FAILED: {accepted} of {} votes accepted; every vote sent must be, on every path", args.votes);
        std::process::exit(1);
    }
    if accepted != counted || counted != logged {
        eprintln!("[demo] FAILED: every accepted vote must be counted once and logged once");
        std::process::exit(1);
    }
    Ok(())
}
