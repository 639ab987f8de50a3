//! voteflow-chaos: the program `scripts/chaos` runs. Starts the pipeline's six services,
//! drives a steady load through the ingress while it breaks things on purpose, and ends
//! with `accepted=A counted=C logged=L lost=X duplicated=Y` (exit 1 unless all is well).

use std::path::PathBuf;

use clap::Parser;
use voteflow_bench::chaos::{self, ChaosConfig, MIN_LOAD_SECS};
use voteflow_bench::services::StackEndpoints;

#[derive(Debug, Parser)]
#[command(
    name = "voteflow-chaos",
    version,
    about = "Fault-injection suite: load through the ingress while consumers, a replica, Kafka, Redis, MongoDB and a producer server fail; then check that every accepted vote is counted and logged exactly once",
    long_about = "Starts rest-server, grpc-server, rest-client, grpc-client and two consumers (from --bin-dir) on a topic, \
        group, Redis prefix and MongoDB database of their own, and sends --rate votes/s through the ingress (half \
        /rest/votes, half /grpc/votes; 1 in 40 invalid on purpose) for --load-secs seconds. Meanwhile: SIGKILLs \
        consumer-a 5 times (restarting it each time), SIGKILLs consumer-b while it is busy (a rebalance) and \
        restarts it, stops Redis for 5 s, stops MongoDB for 5 s (both through scripts/stack), SIGTERMs grpc-server \
        and restarts it, and restarts the Kafka broker. The client re-sends a vote answered 503/5xx/nothing with \
        the same vote_id, as a client with an idempotency key does. Afterwards, per band: accepted == Redis count \
        == MongoDB documents; every accepted vote_id is logged exactly once; no refused vote is counted. Prints \
        per-fault figures and ends with `accepted=A counted=C logged=L lost=X duplicated=Y`; exits 1 unless \
        X = Y = 0 and A = C = L. Needs the local stack up (scripts/stack up) and its ports free."
)]
struct Args {
    /// Directory holding the release binaries.
    #[arg(long, env = "VOTEFLOW_BIN_DIR")]
    bin_dir: PathBuf,
    /// The stack script (to stop and start Kafka, Redis and MongoDB).
    #[arg(long, default_value = "scripts/stack")]
    stack: PathBuf,
    /// Where the services' logs go.
    #[arg(long, default_value = ".stack/chaos")]
    run_dir: PathBuf,
    #[arg(long, env = "VOTEFLOW_INGRESS_URL", default_value = "http://127.0.0.1:8088")]
    url: String,
    #[command(flatten)]
    endpoints: StackEndpoints,
    /// New votes per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Seconds of load (the fault schedule needs at least 58).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(MIN_LOAD_SECS..))]
    load_secs: u64,
    /// Most seconds to wait for the consumers to catch up after the load.
    #[arg(long, default_value_t = 120)]
    catch_up_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = ChaosConfig {
        bin_dir: args.bin_dir,
        stack_script: args.stack,
        run_dir: args.run_dir,
        ingress_url: args.url,
        endpoints: args.endpoints,
        rate: args.rate,
        load_secs: args.load_secs,
        catch_up_secs: args.catch_up_secs,
    };
    // Interrupted: dropping the run stops every service it started.
    let failures = tokio::select! {
        failures = chaos::run(&config) => failures?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the services it started are stopped"),
    };
    if !failures.is_empty() {
        eprintln!("[chaos] FAILED: {}", failures.join("; "));
        std::process::exit(1);
    }
    Ok(())
}
