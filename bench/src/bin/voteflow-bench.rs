//! voteflow-bench: the program `scripts/bench` runs. Starts the services from release
//! binaries, runs every scenario against ceilings measured in the same run, checks that
//! every accepted vote was counted and logged, and writes the results as JSON.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use voteflow_bench::services::StackEndpoints;
use voteflow_bench::speed::{self, BenchConfig};

#[derive(Debug, Parser)]
#[command(
    name = "voteflow-bench",
    version,
    about = "Throughput and latency of both paths, batches, the producer and the consumer, as ratios of ceilings measured in the same run",
    long_about = "Starts voteflow-hello, rest-server, rest-client, grpc-server, grpc-client and (later) one consumer \
        from --bin-dir on a topic, Redis prefix and MongoDB database of their own, and runs, one after another: \
        ceiling (a hello-world hyper server), rest and grpc (single votes through each HTTP front), rest-hop and \
        grpc-hop (each server on its own: HTTP JSON vs gRPC CastVote), batch-rest (/votes/batch) and batch-grpc \
        (CastVotes streams), produce (the Kafka Publisher straight to the broker; it also pre-fills the topic), \
        redis-ceiling and mongo-ceiling (raw sink writes), retry-path (the vote log's insert of batches holding \
        client retries, over the Mongo ceiling's documents), consumer (draining the whole topic), and fresh-rest / \
        fresh-grpc (an open loop at 50 % of each path's maximum: accept latency, and accepted -> visible in Redis). \
        Each scenario reports throughput, p50/p99/p99.9 latency, and CPU seconds and peak RSS of every process. \
        At the end every accepted vote must be counted in Redis and logged in MongoDB (exit 1 otherwise). Writes \
        --out as JSON with a top-level `ratios` object (rest, grpc, batch, consumer). Speed targets are reported, \
        never enforced. Needs the local stack up (scripts/stack up) and the producers' ports free."
)]
struct Args {
    /// Directory holding the release binaries.
    #[arg(long, env = "VOTEFLOW_BIN_DIR")]
    bin_dir: PathBuf,
    /// The stack's state directory (to watch Kafka, Redis and FerretDB too).
    #[arg(long, env = "VOTEFLOW_STACK_DIR", default_value = ".stack")]
    stack_dir: PathBuf,
    /// Where the services' logs go (one directory per run).
    #[arg(long, default_value = ".stack/bench")]
    run_dir: PathBuf,
    #[command(flatten)]
    endpoints: StackEndpoints,
    /// A few seconds per scenario and a small pre-filled topic: a smoke test (what CI runs).
    #[arg(long)]
    quick: bool,
    /// Connections of the single-vote scenarios (the batch scenarios use a quarter, the
    /// open-loop ones four times as many). Each waits for acks=all, so too few bound a path
    /// by its latency, not its work: at 32, Kafka spent twice the CPU per vote it does at 128.
    #[arg(long, default_value_t = 128)]
    connections: usize,
    /// Seconds measured per load scenario [default: 10, quick: 3].
    #[arg(long)]
    measure_secs: Option<u64>,
    /// Seconds of unmeasured load before each [default: 2, quick: 1].
    #[arg(long)]
    warmup_secs: Option<u64>,
    /// Seconds of unmeasured load straight to each producer server first, so Kafka's JIT is
    /// warm [default: 15, quick: 1].
    #[arg(long)]
    kafka_warmup_secs: Option<u64>,
    /// Votes the consumer drains at least: the produce ceiling tops the topic up to this
    /// after the fronts' scenarios [default: 1000000, quick: 20000].
    #[arg(long)]
    prefill: Option<u64>,
    /// Votes each raw sink ceiling writes, and the produce ceiling at least
    /// [default: 200000, quick: 20000].
    #[arg(long)]
    sink_ceiling_votes: Option<u64>,
    /// Votes per batch request.
    #[arg(long, default_value_t = 100)]
    batch_size: u64,
    /// How often the producer servers report librdkafka's latency windows, which the fresh
    /// scenarios read at the same pace; 0 turns them off (scripts/callgrind does: one report
    /// costs rest-server ~5 M instructions, a seventh of its count at callgrind's pace).
    #[arg(long, default_value_t = 1000)]
    kafka_statistics_ms: u64,
    /// Votes/s the fresh-* open loops offer, instead of 50 % of the run's measured rest and
    /// grpc maxima: for A/B runs at one rate (the maxima move with the machine's noise).
    /// Only with --only, so a full run always measures the targets at 50 %.
    #[arg(long, requires = "only", value_parser = clap::value_parser!(u32).range(1..))]
    open_loop_rate: Option<u32>,
    /// Tokio worker threads of each service and of the hello ceiling (their
    /// TOKIO_WORKER_THREADS). 1 by default: the k8s manifests give each service one CPU, and
    /// on this machine, where six processes share two cores, one worker each cost less CPU
    /// per vote than two (docs/decisions/0008-one-tokio-worker.md). 0: tokio's default, one
    /// per CPU.
    #[arg(long, default_value_t = 1)]
    service_worker_threads: usize,
    /// Run only these scenarios (comma-separated; for profiling one of them).
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(speed::SCENARIOS.map(|spec| spec.label)))]
    only: Vec<String>,
    /// The results file [default: bench/results/latest.json; quick: quick.json; --only: partial.json].
    #[arg(long)]
    out: Option<PathBuf>,
}

// mimalloc, not glibc malloc: see docs/decisions/0010-mimalloc.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let quick = args.quick;
    let config = BenchConfig {
        bin_dir: args.bin_dir,
        stack_dir: args.stack_dir,
        run_dir: args.run_dir,
        endpoints: args.endpoints,
        quick,
        connections: args.connections.max(1),
        warmup: Duration::from_secs(args.warmup_secs.unwrap_or(if quick { 1 } else { 2 })),
        measure: Duration::from_secs(args.measure_secs.unwrap_or(if quick { 3 } else { 10 }).max(1)),
        kafka_warmup: Duration::from_secs(args.kafka_warmup_secs.unwrap_or(if quick { 1 } else { 15 })),
        prefill: args.prefill.unwrap_or(if quick { 20_000 } else { 1_000_000 }),
        sink_ceiling_votes: args.sink_ceiling_votes.unwrap_or(if quick { 20_000 } else { 200_000 }).max(1),
        batch_size: args.batch_size.clamp(1, 1000),
        kafka_statistics: Duration::from_millis(args.kafka_statistics_ms),
        open_loop_rate: args.open_loop_rate.map(f64::from),
        service_worker_threads: args.service_worker_threads,
        out: args.out.unwrap_or_else(|| {
            PathBuf::from(match (quick, args.only.is_empty()) {
                (true, _) => "bench/results/quick.json",
                (false, false) => "bench/results/partial.json",
                (false, true) => "bench/results/latest.json",
            })
        }),
        only: args.only,
    };
    // Interrupted (Ctrl-C or SIGTERM): dropping the run stops every service it started;
    // without the SIGTERM arm a `kill` left them running, holding the ports.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let report = tokio::select! {
        report = speed::run(&config) => report?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the services it started are stopped"),
        _ = terminate.recv() => anyhow::bail!("terminated; the services it started are stopped"),
    };
    if !report.verification.passed {
        let why = if report.verification.broken_scenarios.is_empty() {
            "the accepted votes and what Redis and MongoDB hold differ".to_owned()
        } else {
            format!("scenarios with failed requests or no votes: {}", report.verification.broken_scenarios.join(", "))
        };
        eprintln!("[bench] FAILED: {why}");
        std::process::exit(1);
    }
    Ok(())
}
