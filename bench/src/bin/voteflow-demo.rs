//! voteflow-demo: the main job of `scripts/demo`. Sends N votes to a running pipeline,
//! waits until the consumer has counted and logged every accepted one, prints the
//! leaderboard, and ends with `accepted=A counted=C logged=L` (exit 1 unless all equal).

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use voteflow_bench::{load, tally::Sinks};

#[derive(Debug, Parser)]
#[command(
    name = "voteflow-demo",
    version,
    about = "Send N votes through a running voteflow pipeline and check that every accepted vote was counted and logged",
    long_about = "Sends N votes (the course's JSON traffic formats) to an HTTP front, with progress output, then \
        waits until Redis counts and MongoDB logs every accepted vote of this run, prints the leaderboard and the \
        vote log's size, and ends with `accepted=A counted=C logged=L`. Exits 1 unless A = C = L > 0. \
        Counted and logged are this run's: the Redis total's growth, and documents accepted since the run began \
        (so nothing else should be voting meanwhile)."
)]
struct Args {
    /// Votes to send.
    #[arg(long, default_value_t = 10_000)]
    votes: u64,
    /// Base URL of the HTTP front (rest-client, or the ingress).
    #[arg(long, env = "VOTEFLOW_URL", default_value = "http://127.0.0.1:8000")]
    url: String,
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

    println!("sending {} votes to {} with {} in flight", args.votes, args.url, args.concurrency);
    let report = load::send_votes(&args.url, args.votes, args.concurrency).await?;
    println!(
        "sent {} votes in {:.2} s: {:.0} votes/s; accepted {}, refused {}, no answer {}; latency p50 {:.2} ms, p99 {:.2} ms",
        report.sent,
        report.elapsed.as_secs_f64(),
        report.rate(),
        report.accepted,
        report.refused,
        report.failed,
        report.percentile(50.0).as_secs_f64() * 1e3,
        report.percentile(99.0).as_secs_f64() * 1e3,
    );

    let (mut counted, mut logged) =
        sinks.wait_for(report.accepted, counted_before, run_started, Duration::from_secs(args.wait_secs)).await?;
    // Look once more after a pause: a vote counted twice would show up as an overshoot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    counted = counted.max(sinks.total().await?.saturating_sub(counted_before));
    logged = logged.max(sinks.logged_since(run_started).await?);

    println!("leaderboard (all time, Redis {}leaderboard):", args.redis_key_prefix);
    for (place, (band, votes)) in sinks.leaderboard(10).await?.into_iter().enumerate() {
        println!("  {:>2}. {band:<28} {votes:>8}", place + 1);
    }
    println!("vote log: {} documents in {}.votes", sinks.logged_total().await?, args.mongodb_database);
    println!("accepted={} counted={counted} logged={logged}", report.accepted);
    let all_well = report.accepted > 0 && report.accepted == counted && counted == logged;
    if !all_well {
        eprintln!("[demo] FAILED: every accepted vote must be counted once and logged once");
        std::process::exit(1);
    }
    Ok(())
}
