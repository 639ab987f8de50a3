//! The fault-injection suite (`scripts/chaos`): the whole pipeline under a steady load
//! through the ingress while consumers are SIGKILLed, a replica dies mid-stream, the
//! Kafka broker restarts, Redis and MongoDB stop for 5 s and a producer server gets
//! SIGTERM; then every accepted vote must be counted once and logged once, per band.

pub mod load;
pub mod verdict;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use self::load::Load;
use crate::services::{Producers, RunNames, Service, Stack, StackEndpoints};
use crate::tally::{Patience, Scope};

/// Where things are and how hard to push.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Directory of the release binaries (rest-server, grpc-client, consumer, ...).
    pub bin_dir: PathBuf,
    /// `scripts/stack`, to stop and start Kafka, Redis and MongoDB.
    pub stack_script: PathBuf,
    /// Service logs go here.
    pub run_dir: PathBuf,
    pub ingress_url: String,
    pub endpoints: StackEndpoints,
    /// New votes per second offered.
    pub rate: u64,
    /// Seconds of load; the faults need at least [`MIN_LOAD_SECS`].
    pub load_secs: u64,
    /// Most seconds to wait for the consumers to catch up afterwards.
    pub catch_up_secs: u64,
}

/// The last fault's second, and the 5 s it may take.
pub const MIN_LOAD_SECS: u64 = SCHEDULE[SCHEDULE.len() - 1].0 + 5;

/// What one fault did, for the report.
#[derive(Debug)]
pub struct FaultReport {
    pub name: String,
    /// Seconds since the load began.
    pub at: Duration,
    /// How long the fault lasted, until the part was back (ready).
    pub lasted: Duration,
    pub detail: String,
    /// Whether the fault is shown to have hit what it aimed at: a kill found a batch in
    /// hand, an outage made the consumers log sink errors, a stop closed the port.
    pub happened: bool,
}

/// Names of this run's topic, group, key prefix and database.
pub async fn run(config: &ChaosConfig) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(config.load_secs >= MIN_LOAD_SECS, "--load-secs must be at least {MIN_LOAD_SECS}");
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let config = &ChaosConfig { run_dir: config.run_dir.join(&id), ..config.clone() };
    std::fs::create_dir_all(&config.run_dir)?;
    let names = RunNames::new("chaos", &id);
    let kafka = voteflow_service::settings::KafkaSettings {
        brokers: config.endpoints.kafka_brokers.clone(),
        topic: names.topic.clone(),
    };
    voteflow_testkit::ensure_topic(&kafka.brokers, &names.topic, 6)
        .await
        .context("Failed to create the run's topic")?;
    voteflow_testkit::ensure_topic(&kafka.brokers, &format!("{}.dlq", names.topic), 1).await?;
    println!(
        "chaos run {id}: topic {} (6 partitions), group {}, Redis prefix {}, MongoDB database {}; logs in {}",
        names.topic,
        names.group,
        names.prefix,
        names.database,
        config.run_dir.display()
    );

    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let mut pipeline = Pipeline::new(config, &names);
    for service in pipeline.all_mut() {
        let took = service.start(&http).await?;
        println!("started {} in {:.1} s", service.name, took.as_secs_f64());
    }
    let stack = Stack { script: config.stack_script.clone(), log: config.run_dir.join("stack.log") };

    let load = Load::default();
    let load_secs = Duration::from_secs(config.load_secs);
    println!(
        "load: {} votes/s through {} (/rest/votes and /grpc/votes) for {} s, faults on the way",
        config.rate, config.ingress_url, config.load_secs
    );
    let sending = load.run(&config.ingress_url, config.rate, load_secs, Duration::from_secs(60));
    let faults = inject_faults(&mut pipeline, &stack, &http, load.timeline.started, &config.endpoints.kafka_brokers);
    let progress = tokio::spawn(print_progress(load.clone_handles()));
    let (_, faults) = tokio::join!(sending, faults);
    progress.abort();
    let faults = faults?;
    println!(
        "load done: {} votes sent in {:.1} s",
        load.sent.load(std::sync::atomic::Ordering::Relaxed),
        load.timeline.started.elapsed().as_secs_f64()
    );

    let ledger = load.ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    let sinks = crate::tally::Sinks::connect(
        &config.endpoints.redis_url,
        &names.prefix,
        &config.endpoints.mongodb_uri,
        &names.database,
    )
    .await?;
    let accepted = ledger.iter().filter(|vote| vote.answer == load::Answer::Accepted).count() as u64;
    let waited = Instant::now();
    let patience = Patience { settle: Duration::from_secs(3), stalled: Duration::from_secs(config.catch_up_secs) };
    let (counted, logged) = sinks.wait_caught_up(accepted, Scope::Own, patience, "chaos").await?;
    println!(
        "catch-up: counted {counted} logged {logged} of {accepted} accepted after {:.1} s",
        waited.elapsed().as_secs_f64()
    );
    let consumer_figures = pipeline.consumer_figures(&http).await;

    println!("faults (answers counted from the fault's start to 2 s after it ended):");
    for fault in &faults {
        let (ok, refused, unavailable) =
            load.timeline.between(fault.at, fault.at + fault.lasted + Duration::from_secs(2));
        println!(
            "  fault={:<22} at={:>5.1}s lasted={:>5.2}s answers: accepted={ok} refused_invalid={refused} unavailable={unavailable}: {}",
            fault.name,
            fault.at.as_secs_f64(),
            fault.lasted.as_secs_f64(),
            fault.detail
        );
    }
    println!("consumers now running: {consumer_figures}");
    let verdict = verdict::judge(&ledger, &sinks).await?;
    verdict.print();
    let missed: Vec<&str> = faults.iter().filter(|fault| !fault.happened).map(|fault| fault.name.as_str()).collect();
    println!(
        "faults that happened: {} of {}{}",
        faults.len() - missed.len(),
        faults.len(),
        if missed.is_empty() { String::new() } else { format!(" (not shown to happen: {})", missed.join(", ")) }
    );
    let mut failures = verdict.failures();
    if !missed.is_empty() {
        failures.push(format!("faults not shown to happen: {}", missed.join(", ")));
    }
    let passed = failures.is_empty();
    drop(pipeline);
    if passed {
        // What passed is not worth keeping; a failed run's data stays for inspection.
        sinks.remove_all().await?;
        voteflow_testkit::delete_topics(&kafka.brokers, &[&names.topic, &format!("{}.dlq", names.topic)]).await?;
    } else {
        println!(
            "kept for inspection: topic {}, Redis keys {}*, MongoDB database {}",
            names.topic, names.prefix, names.database
        );
    }
    Ok(failures)
}

async fn print_progress(load: Load) {
    use std::sync::atomic::Ordering;
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let answered = load.ledger.lock().map(|ledger| ledger.len()).unwrap_or_default();
        println!(
            "[chaos] t={:>4.0}s sent={} answered={} waiting_or_retrying={}",
            load.timeline.started.elapsed().as_secs_f64(),
            load.sent.load(Ordering::Relaxed),
            answered,
            load.in_flight.load(Ordering::Relaxed)
        );
    }
}

/// The six voteflow processes of the run: the producers at their default addresses and
/// two consumers in one group.
struct Pipeline {
    producers: Producers,
    consumer_a: Service,
    consumer_b: Service,
}

impl Pipeline {
    fn new(config: &ChaosConfig, names: &RunNames) -> Self {
        let env = crate::services::service_env(&config.endpoints, names);
        let consumer = |name: &str, admin: SocketAddr| {
            let mut env = crate::services::consumer_env(&config.endpoints, names, admin);
            // A SIGKILLed member keeps its partitions for the session timeout; a short one
            // keeps the run short (the local broker allows 2 s and up; the drain deadline
            // must stay below it).
            env.extend([("KAFKA_SESSION_TIMEOUT_MS", "3000".to_owned()), ("SHUTDOWN_DEADLINE_SECS", "2".to_owned())]);
            crate::services::consumer(name, &config.bin_dir, &config.run_dir, &env, admin)
        };
        Self {
            producers: Producers::new(&config.bin_dir, &config.run_dir, &env),
            consumer_a: consumer("consumer-a", CONSUMER_A_ADMIN),
            consumer_b: consumer("consumer-b", CONSUMER_B_ADMIN),
        }
    }

    fn all_mut(&mut self) -> [&mut Service; 6] {
        let [rest_server, grpc_server, rest_client, grpc_client] = self.producers.all_mut();
        [rest_server, grpc_server, rest_client, grpc_client, &mut self.consumer_a, &mut self.consumer_b]
    }

    /// Sink errors `sink` the running consumers have logged (their counters start at zero
    /// with each process).
    async fn sink_errors(&self, http: &reqwest::Client, sink: &str) -> u64 {
        let series = format!("voteflow_consumer_sink_errors_total{{sink=\"{sink}\"}}");
        let mut errors = 0;
        for admin in [CONSUMER_A_ADMIN, CONSUMER_B_ADMIN] {
            errors += scrape(http, admin, &[series.as_str()]).await[0];
        }
        errors
    }

    /// What the running consumers say about duplicates they absorbed (their counters
    /// start at zero with each process).
    async fn consumer_figures(&self, http: &reqwest::Client) -> String {
        let mut figures = Vec::new();
        for (name, admin) in [("consumer-a", CONSUMER_A_ADMIN), ("consumer-b", CONSUMER_B_ADMIN)] {
            let series = [
                ("batches", "voteflow_consumer_batches_total"),
                ("redelivered", "voteflow_consumer_duplicates_total{kind=\"redelivered\"}"),
                ("retries", "voteflow_consumer_duplicates_total{kind=\"retry\"}"),
                ("redis_errors", "voteflow_consumer_sink_errors_total{sink=\"redis\"}"),
                ("mongo_errors", "voteflow_consumer_sink_errors_total{sink=\"mongo\"}"),
            ];
            let values = scrape(http, admin, &series.map(|(_, s)| s)).await;
            let shown: Vec<String> =
                series.iter().zip(values).map(|((label, _), value)| format!("{label}={value}")).collect();
            figures.push(format!("{name}[{}]", shown.join(" ")));
        }
        figures.join(" ")
    }
}

/// Values of the given series on a service's /metrics (0 when absent or unreachable, which
/// the verdicts read as "the fault did not show").
async fn scrape(http: &reqwest::Client, admin: SocketAddr, series: &[&str]) -> Vec<u64> {
    let text = match http.get(format!("http://{admin}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    series.iter().map(|series| voteflow_testkit::metrics::value(&text, series).unwrap_or(0.0) as u64).collect()
}

async fn at(started: Instant, second: u64) {
    tokio::time::sleep_until((started + Duration::from_secs(second)).into()).await;
}

/// One fault of the schedule.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL consumer-a while it holds a batch, and restart it at once.
    KillConsumerA,
    /// SIGKILL consumer-b while it holds a batch; restart it at second `back_at`, past its
    /// session timeout, so its partitions move to consumer-a meanwhile.
    KillReplicaB { back_at: u64 },
    /// Stop a stack service for 5 s; it happened when the consumers logged `sink` errors.
    StopSink { service: &'static str, sink: &'static str },
    /// SIGTERM grpc-server (it drains), then start it again.
    TerminateGrpcServer,
    /// Stop and start the Kafka broker.
    RestartKafka,
}

/// The schedule: second since the load began, fault name, fault. Each step waits for the
/// part it broke to be back before the next one, so the faults do not pile up on a 2-core
/// machine.
const SCHEDULE: [(u64, &str, Fault); 10] = [
    (3, "sigkill-consumer-a#1", Fault::KillConsumerA),
    (7, "sigkill-consumer-a#2", Fault::KillConsumerA),
    (11, "sigkill-consumer-a#3", Fault::KillConsumerA),
    (15, "sigkill-consumer-a#4", Fault::KillConsumerA),
    (19, "sigkill-consumer-a#5", Fault::KillConsumerA),
    (23, "sigkill-replica-b", Fault::KillReplicaB { back_at: 30 }),
    (32, "stop-redis-5s", Fault::StopSink { service: "redis", sink: "redis" }),
    (40, "stop-mongo-5s", Fault::StopSink { service: "mongo", sink: "mongo" }),
    (48, "sigterm-grpc-server", Fault::TerminateGrpcServer),
    (53, "restart-kafka", Fault::RestartKafka),
];

/// Runs the schedule against the pipeline; what each fault did.
async fn inject_faults(
    pipeline: &mut Pipeline,
    stack: &Stack,
    http: &reqwest::Client,
    started: Instant,
    kafka_brokers: &str,
) -> anyhow::Result<Vec<FaultReport>> {
    let mut faults = Vec::new();
    for (second, name, fault) in SCHEDULE {
        at(started, second).await;
        let begun = Instant::now();
        let (happened, detail) = match fault {
            Fault::KillConsumerA => {
                let (happened, in_hand) = kill_mid_batch(&mut pipeline.consumer_a, CONSUMER_A_ADMIN, http).await?;
                let restart = pipeline.consumer_a.start(http).await?;
                (happened, format!("{in_hand}; restarted, ready in {:.2}s", restart.as_secs_f64()))
            }
            Fault::KillReplicaB { back_at } => {
                let (happened, in_hand) = kill_mid_batch(&mut pipeline.consumer_b, CONSUMER_B_ADMIN, http).await?;
                at(started, back_at).await;
                let restart = pipeline.consumer_b.start(http).await?;
                let detail = format!(
                    "{in_hand}; down past its 3 s session, so its partitions moved to consumer-a; b back at {back_at} s, \
                     ready in {:.2}s",
                    restart.as_secs_f64()
                );
                (happened, detail)
            }
            Fault::StopSink { service, sink } => {
                let errors_before = pipeline.sink_errors(http, sink).await;
                let stopping = stack.run("down", service).await?;
                tokio::time::sleep(Duration::from_secs(5)).await;
                let errors = pipeline.sink_errors(http, sink).await.saturating_sub(errors_before);
                let starting = stack.run("up", service).await?;
                let detail = format!(
                    "stop took {:.2}s, down 5 s ({errors} {sink} errors logged by the consumers), start took {:.2}s",
                    stopping.as_secs_f64(),
                    starting.as_secs_f64()
                );
                (errors > 0, detail)
            }
            Fault::TerminateGrpcServer => {
                let (status, drained) = pipeline.producers.grpc_server.terminate(Duration::from_secs(15)).await?;
                anyhow::ensure!(status.success(), "grpc-server did not exit cleanly on SIGTERM: {status}");
                let restart = pipeline.producers.grpc_server.start(http).await?;
                let detail = format!(
                    "drained and exited ({status}) in {:.2}s; restarted and ready in {:.2}s",
                    drained.as_secs_f64(),
                    restart.as_secs_f64()
                );
                (status.success(), detail)
            }
            Fault::RestartKafka => {
                let producers = &pipeline.producers;
                let rss_before = (producers.rest_server.rss_mib(), producers.grpc_server.rss_mib());
                let stopping = stack.run("down", "kafka").await?;
                let first_broker = kafka_brokers.split(',').next().unwrap_or_default().to_owned();
                let broker_gone = tokio::net::TcpStream::connect(first_broker).await.is_err();
                let starting = stack.run("up", "kafka").await?;
                let rss_after = (producers.rest_server.rss_mib(), producers.grpc_server.rss_mib());
                let detail = format!(
                    "stop took {:.2}s, start took {:.2}s; RSS MiB rest-server {} -> {}, grpc-server {} -> {}",
                    stopping.as_secs_f64(),
                    starting.as_secs_f64(),
                    mib(rss_before.0),
                    mib(rss_after.0),
                    mib(rss_before.1),
                    mib(rss_after.1)
                );
                (broker_gone, detail)
            }
        };
        let (at, lasted) = (begun.duration_since(started), begun.elapsed());
        faults.push(FaultReport { name: name.to_owned(), at, lasted, detail, happened });
    }
    Ok(faults)
}

/// The two consumers' admin addresses: beside each other, not at the default (a demo's
/// consumer may hold it).
const CONSUMER_A_ADMIN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9110);
const CONSUMER_B_ADMIN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9111);

/// SIGKILLs a consumer while it holds a batch (records received, not yet committed), as
/// its `voteflow_consumer_records_in_hand` gauge shows; waits up to 8 s for one (the
/// group may still be rebalancing after the previous kill). Says
/// what it found.
async fn kill_mid_batch(
    consumer: &mut Service,
    admin: SocketAddr,
    http: &reqwest::Client,
) -> anyhow::Result<(bool, String)> {
    let looking = Instant::now();
    let mut in_hand = 0;
    while looking.elapsed() < Duration::from_secs(8) {
        in_hand = scrape(http, admin, &["voteflow_consumer_records_in_hand"]).await[0];
        if in_hand > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    consumer.kill()?;
    Ok(if in_hand > 0 {
        (true, format!("killed holding a batch of {in_hand} records (uncommitted)"))
    } else {
        (false, "killed between batches (none in hand for 8 s)".to_owned())
    })
}

fn mib(value: Option<f64>) -> String {
    value.map_or_else(|| "?".to_owned(), |mib| format!("{mib:.1}"))
}
