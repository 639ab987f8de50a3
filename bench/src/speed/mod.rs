//! The benchmark harness (`scripts/bench`, binary `voteflow-bench`): every scenario of one
//! run against ceilings measured in the same run (a hello-world server, the bare Kafka
//! producer, raw Redis and MongoDB writes), so the machine's noise cancels in the ratios.
//! It ends by checking that every vote the servers accepted was counted and logged.

pub mod generator;
pub mod procstat;
pub mod report;
pub mod sinks;
pub mod stages;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use voteflow_consumer::sink::tally::album_field;
use voteflow_service::settings::{KafkaSettings, PublisherSettings};

use self::generator::{Grpc, HttpJson, Ledger, Pace, Plan};
use self::procstat::{Meter, Watched};
use self::report::{Report, Scenario};
use self::sinks::Freshness;
use crate::services::{Addresses, Producers, RunNames, Service, StackEndpoints};
use crate::tally::{Patience, Scope};
use crate::traffic;

/// Where things are and how long to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub bin_dir: PathBuf,
    /// The stack's state directory (`<dir>/{kafka,redis,mongo}/pid`), to watch its servers.
    pub stack_dir: PathBuf,
    pub run_dir: PathBuf,
    pub endpoints: StackEndpoints,
    pub quick: bool,
    /// Connections of the closed-loop single-vote scenarios (the batch ones use a quarter).
    pub connections: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// Unmeasured load straight to each producer server before the first scenario.
    pub kafka_warmup: Duration,
    /// Votes the consumer scenario drains at least: the produce ceiling tops the topic up
    /// to this (writing at least `sink_ceiling_votes`) after the fronts' scenarios.
    pub prefill: u64,
    /// TOKIO_WORKER_THREADS of each service and of the hello ceiling; 0 leaves tokio's default.
    pub service_worker_threads: usize,
    /// Votes written by each raw sink ceiling (and at least by the produce ceiling).
    pub sink_ceiling_votes: u64,
    pub batch_size: u64,
    /// The producer servers' librdkafka statistics interval (zero: off).
    pub kafka_statistics: Duration,
    /// Votes/s of the fresh-* open loops; `None`: half of the path's maximum in this run.
    pub open_loop_rate: Option<f64>,
    pub out: PathBuf,
    /// Run only these scenarios (labels as in the report); all when empty. The consumer
    /// still runs (unmeasured) so the final check can count the accepted votes.
    pub only: Vec<String>,
}

/// Every scenario, in the order a run takes them.
pub const SCENARIOS: [&str; 14] = [
    "ceiling",
    "rest",
    "grpc",
    "rest-hop",
    "grpc-hop",
    "batch-rest",
    "batch-grpc",
    "produce",
    "redis-ceiling",
    "mongo-ceiling",
    "retry-path",
    "consumer",
    "fresh-rest",
    "fresh-grpc",
];

impl BenchConfig {
    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|wanted| wanted == scenario)
    }
}

const HELLO: &str = "127.0.0.1:8099";
/// The services' addresses (their settings' defaults).
static AT: std::sync::LazyLock<Addresses> = std::sync::LazyLock::new(Addresses::defaults);
/// Connections of the open-loop scenarios, per connection of the closed-loop ones.
const OPEN_LOOP_CONNECTIONS_PER_CLOSED: usize = 4;
/// The run's consumer's admin: not the default, which a demo's consumer may hold.
const CONSUMER_ADMIN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9120);

/// Runs every scenario; returns the report (already written to `config.out`).
pub async fn run(config: &BenchConfig) -> anyhow::Result<Report> {
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let config = &BenchConfig { run_dir: config.run_dir.join(&id), ..config.clone() };
    std::fs::create_dir_all(&config.run_dir)?;
    let names = RunNames::new("bench", &id);
    let (topic, prefix, database) = (names.topic.clone(), names.prefix.clone(), names.database.clone());
    let kafka = KafkaSettings { brokers: config.endpoints.kafka_brokers.clone(), topic: topic.clone() };
    voteflow_testkit::ensure_topic(&kafka.brokers, &topic, 12).await.context("Failed to create the run's topic")?;
    voteflow_testkit::ensure_topic(&kafka.brokers, &format!("{topic}.dlq"), 1).await?;
    println!(
        "bench run {id} ({}): topic {topic} (12 partitions), Redis prefix {prefix}, MongoDB database {database}; logs in {}",
        if config.quick { "quick" } else { "full" },
        config.run_dir.display()
    );

    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let mut services = Services::new(config, &names);
    for service in services.producers.all_mut() {
        let took = service.start(&http).await?;
        println!("started {} in {:.1} s", service.name, took.as_secs_f64());
    }
    let mut report = Report::new(config);
    let ledger = Arc::new(Ledger::default());
    let next_index = Arc::new(AtomicU64::new(0));
    let stack = stack_processes(config);
    let watch = |services: &Services| -> Vec<Watched> {
        let mut watched = services.running();
        watched.extend(stack.iter().cloned());
        watched.push(Watched { name: "voteflow-bench".to_owned(), pid: std::process::id() });
        watched
    };

    // 1. The ceiling: a hello-world server under the same generator and connections.
    let ceiling_ledger = Arc::new(Ledger::default());
    let plan = |label: &str, connections: usize, votes_per_request: u64| Plan {
        tool: "bench",
        label: label.to_owned(),
        connections,
        pace: Pace::Closed,
        warmup: config.warmup,
        measure: config.measure,
        votes_per_request,
        progress: true,
        requests: None,
    };
    let single = single_vote_body();
    let http_requesters = |url: String, connections: usize, body: BodyFn, batch: bool| {
        (0..connections).map(|_| HttpJson::new(&url, body.clone(), batch)).collect::<anyhow::Result<Vec<_>>>()
    };
    let connections = config.connections;
    let grpc_vote = grpc_vote();
    if !config.kafka_warmup.is_zero() {
        // A broker started minutes before spends its first minute of load compiling (JIT),
        // which would slow whichever scenario came first.
        let warm = Plan { warmup: Duration::ZERO, measure: config.kafka_warmup, ..plan("warm-up", connections, 1) };
        let requesters =
            http_requesters(format!("http://{}/votes", AT.rest_server), connections, single.clone(), false)?;
        generator::run(&warm, requesters, next_index.clone(), ledger.clone()).await;
        let requesters = grpc_requesters(connections, grpc_vote.clone(), None).await?;
        generator::run(&warm, requesters, next_index.clone(), ledger.clone()).await;
    }
    if config.wants("ceiling") {
        services.hello.start(&http).await?;
        let meter = Meter::start(&watch(&services));
        let figures = generator::run(
            &plan("ceiling", connections, 1),
            http_requesters(format!("http://{HELLO}/votes"), connections, single.clone(), false)?,
            next_index.clone(),
            ceiling_ledger,
        )
        .await;
        report.add("ceiling", Scenario::run("hello-world hyper server, POST /votes", figures, meter.finish()));
        services.hello.kill()?;
    }

    // 2-3. Single votes through each HTTP front, then each hop on its own (for "why").
    let fronts = [
        (
            "rest",
            format!("http://{}/votes", AT.rest_client),
            "single votes: HTTP -> rest-client -> rest-server -> Kafka",
        ),
        (
            "grpc",
            format!("http://{}/votes", AT.grpc_client),
            "single votes: HTTP -> grpc-client -> grpc-server -> Kafka",
        ),
        (
            "rest-hop",
            format!("http://{}/votes", AT.rest_server),
            "single votes: HTTP JSON straight to rest-server -> Kafka",
        ),
    ];
    for (label, url, what) in fronts.into_iter().filter(|(label, ..)| config.wants(label)) {
        let meter = Meter::start(&watch(&services));
        let requesters = http_requesters(url, connections, single.clone(), false)?;
        let figures =
            generator::run(&plan(label, connections, 1), requesters, next_index.clone(), ledger.clone()).await;
        report.add(label, Scenario::run(what, figures, meter.finish()));
    }
    if config.wants("grpc-hop") {
        let meter = Meter::start(&watch(&services));
        let requesters = grpc_requesters(connections, grpc_vote.clone(), None).await?;
        let figures =
            generator::run(&plan("grpc-hop", connections, 1), requesters, next_index.clone(), ledger.clone()).await;
        let what = "single votes: gRPC CastVote straight to grpc-server -> Kafka";
        report.add("grpc-hop", Scenario::run(what, figures, meter.finish()));
    }

    // 4. Batches: /votes/batch through rest-client, CastVotes streams to grpc-server.
    let batch_connections = (connections / 4).max(1);
    let size = config.batch_size;
    if config.wants("batch-rest") {
        let meter = Meter::start(&watch(&services));
        let url = format!("http://{}/votes/batch", AT.rest_client);
        let requesters = http_requesters(url, batch_connections, batch_body(size), true)?;
        let batch_plan = plan("batch-rest", batch_connections, size);
        let figures = generator::run(&batch_plan, requesters, next_index.clone(), ledger.clone()).await;
        let what = format!("POST /votes/batch of {size} through rest-client -> rest-server");
        report.add("batch-rest", Scenario::run(&what, figures, meter.finish()));
    }
    if config.wants("batch-grpc") {
        let meter = Meter::start(&watch(&services));
        let requesters = grpc_requesters(batch_connections, grpc_vote.clone(), Some(size)).await?;
        let batch_plan = plan("batch-grpc", batch_connections, size);
        let figures = generator::run(&batch_plan, requesters, next_index.clone(), ledger.clone()).await;
        let what = format!("CastVotes client streams of {size} straight to grpc-server");
        report.add("batch-grpc", Scenario::run(&what, figures, meter.finish()));
    }

    // 5. The produce ceiling, which also fills the topic for the consumer.
    let publisher = PublisherSettings { kafka: kafka.clone(), ..services_publisher_settings()? };
    let mut prefilled = 0;
    if config.wants("produce") {
        let meter = Meter::start(&watch(&services));
        let produce;
        let in_topic = ledger.accepted_votes.load(Ordering::Relaxed);
        let top_up = config.prefill.saturating_sub(in_topic).max(config.sink_ceiling_votes);
        (produce, prefilled) = sinks::produce_ceiling(&publisher, top_up).await?;
        let what = "raw rdkafka produce of the votes' records (acks=all, idempotence), the best of several lingers";
        report.add_throughput("produce", what, produce, meter.finish());
    }

    // 6. Raw sink ceilings, then the consumer draining the whole topic.
    // Kafka's writes of the votes so far sit in the page cache; flushed now, they do not
    // slow the MongoDB-wire server's fsyncs in one scenario and not in the other.
    sync_disks().await;
    if config.wants("redis-ceiling") {
        let meter = Meter::start(&watch(&services));
        let key = voteflow_consumer::sink::tally::TallyKeys::new(&format!("{prefix}ceiling:")).by_band;
        let redis_ceiling = sinks::redis_ceiling(&config.endpoints.redis_url, &key, config.sink_ceiling_votes).await?;
        report.add_throughput("redis-ceiling", "pipelined HINCRBY, 1000 per pipeline", redis_ceiling, meter.finish());
    }
    let ceiling_database = format!("{database}_ceiling");
    if config.wants("mongo-ceiling") {
        let meter = Meter::start(&watch(&services));
        let votes = config.sink_ceiling_votes;
        let mongo_ceiling = sinks::mongo_ceiling(&config.endpoints.mongodb_uri, &ceiling_database, votes).await?;
        let what = "the vote log's insert (one unordered insert_many) of fresh votes, 1000 per call, vote-log indexes";
        report.add_throughput("mongo-ceiling", what, mongo_ceiling, meter.finish());
    }
    if config.wants("retry-path") {
        // After the Mongo ceiling, so the log it looks up in is as large as the run allows.
        let meter = Meter::start(&watch(&services));
        let rounds = if config.quick { 3 } else { 7 };
        let figure = sinks::retry_path(&config.endpoints.mongodb_uri, &ceiling_database, rounds).await?;
        println!("retry-path: {}", figure.note.as_deref().unwrap_or_default());
        let what = "the vote log's insert of batches of 1000 holding 10 client retries (consumer's VoteLog::insert)";
        report.add_throughput("retry-path", what, figure, meter.finish());
    }
    let sinks =
        crate::tally::Sinks::connect(&config.endpoints.redis_url, &prefix, &config.endpoints.mongodb_uri, &database)
            .await?;
    let in_topic = prefilled + ledger.accepted_votes.load(Ordering::Relaxed);
    sync_disks().await;
    services.consumer.start(&http).await?;
    if config.wants("consumer") {
        let meter = Meter::start(&watch(&services));
        let drained = drain(&sinks, in_topic, &config.measure).await?;
        let what = format!(
            "one consumer draining the run's topic, {in_topic} votes (the fronts' and {prefilled} from the produce \
             ceiling), into Redis + MongoDB"
        );
        report.add_throughput("consumer", &what, drained, meter.finish());
    }

    // 7. Freshness and accept latency at half of each path's measured maximum.
    // The consumer has caught up first: without the consumer scenario (an --only run)
    // it is still draining the warm-ups' votes, and freshness would time that backlog.
    if ["fresh-rest", "fresh-grpc"].iter().any(|label| config.wants(label)) {
        let accepted = prefilled + ledger.accepted_votes.load(Ordering::Relaxed);
        let (counted, _) = sinks.wait_caught_up(accepted, Scope::Own, patience(), "bench").await?;
        anyhow::ensure!(counted >= accepted, "the consumer stalled at {counted} of {accepted} votes before freshness");
    }
    let freshness_run = id.clone();
    // The stages a vote through a front waits on, each timed by its own service: the
    // front's request (which includes the server's), the server's request or call (which
    // includes Kafka's acknowledgement), and the acknowledgement. The warm-up has created
    // every series before these scenarios read them.
    let stage = |name, address: SocketAddr, series| stages::Stage {
        name,
        metrics_url: format!("http://{address}/metrics"),
        series,
    };
    let http_cast_vote_series = ("voteflow_http_request_seconds_bucket", ("route", "cast_vote"));
    let grpc_cast_vote_series = ("voteflow_grpc_request_seconds_bucket", ("method", "CastVote"));
    let kafka_acked_series = ("voteflow_kafka_produce_seconds_bucket", ("outcome", "acked"));
    let rest_stages = vec![
        stage("rest-client request", AT.rest_client, http_cast_vote_series),
        stage("rest-server request", AT.rest_server, http_cast_vote_series),
        stage("Kafka acknowledgement", AT.rest_server, kafka_acked_series),
    ];
    let grpc_stages = vec![
        stage("grpc-client request", AT.grpc_client, http_cast_vote_series),
        stage("grpc-server CastVote", AT.grpc_server_admin, grpc_cast_vote_series),
        stage("Kafka acknowledgement", AT.grpc_server_admin, kafka_acked_series),
    ];
    for (label, url, max_label, stages, producer_server) in [
        ("fresh-rest", format!("http://{}/votes", AT.rest_client), "rest", rest_stages, AT.rest_server),
        ("fresh-grpc", format!("http://{}/votes", AT.grpc_client), "grpc", grpc_stages, AT.grpc_server_admin),
    ]
    .into_iter()
    .filter(|(label, ..)| config.wants(label))
    {
        // Without this run's maximum (an --only run), a nominal one.
        let max = Some(report.votes_per_s(max_label)).filter(|max| *max > 0.0).unwrap_or(2000.0);
        let (rate, what) = match config.open_loop_rate {
            Some(rate) => (rate, format!("open loop at a fixed {rate:.0} votes/s (--open-loop-rate)")),
            None => ((max / 2.0).max(10.0), format!("open loop at 50 % of {max_label}'s {max:.0} votes/s")),
        };
        let what = format!("{what}; accepted -> visible in Redis");
        let freshness = Arc::new(Freshness::default());
        let body = freshness_body(freshness_run.clone());
        let hook_freshness = freshness.clone();
        let hook_run = freshness_run.clone();
        let hook = Arc::new(move |i: u64, at: Instant| {
            if let Some(album) = Freshness::album(&hook_run, i) {
                hook_freshness.accepted(album_field(&traffic::band(i), &album), at);
            }
        });
        // Each open-loop connection sends on its own fixed schedule, so one slow answer
        // holds back that connection's next due votes, and the generator's p99 grew far
        // past the front's. Four times as many connections leave each slot 4x longer.
        let connections = connections * OPEN_LOOP_CONNECTIONS_PER_CLOSED;
        let requesters: Vec<HttpJson> = (0..connections)
            .map(|_| HttpJson::new(&url, body.clone(), false).map(|requester| requester.on_accepted(hook.clone())))
            .collect::<anyhow::Result<_>>()?;
        let stop = tokio_util::sync::CancellationToken::new();
        let redis =
            redis::Client::open(config.endpoints.redis_url.as_str())?.get_multiplexed_async_connection().await?;
        let watcher = tokio::spawn(freshness.clone().watch(redis, format!("{prefix}votes:album"), stop.clone()));
        let stages_before = stages::snapshot(&http, &stages).await;
        let kafka_client_stop = tokio_util::sync::CancellationToken::new();
        let kafka_client = stages::sample_kafka_client(
            http.clone(),
            format!("http://{producer_server}/metrics"),
            config.kafka_statistics,
            kafka_client_stop.clone(),
        );
        let meter = Meter::start(&watch(&services));
        let open = Plan { pace: Pace::Open { rate }, ..plan(label, connections, 1) };
        let figures = generator::run(&open, requesters, next_index.clone(), ledger.clone()).await;
        let usage = meter.finish();
        let mut stages = stages::between(&stages, &stages_before, &stages::snapshot(&http, &stages).await);
        // And the acknowledgement split into librdkafka's parts, as the producer reports them.
        kafka_client_stop.cancel();
        stages.extend(kafka_client.await?);
        stop.cancel();
        watcher.await?;
        report.add(label, Scenario::run(&what, figures, usage).with_freshness(freshness.figures()).with_stages(stages));
    }

    // The check: every vote a server accepted is counted in Redis and logged in MongoDB.
    let accepted = prefilled + ledger.accepted_votes.load(Ordering::Relaxed);
    let unanswered = ledger.unanswered_votes.load(Ordering::Relaxed);
    let (counted, logged) = sinks.wait_caught_up(accepted, Scope::Own, patience(), "bench").await?;
    report.verify(accepted, unanswered, counted, logged);
    drop(services);

    report.finish()?;
    report.print();
    if report.verification.passed {
        sinks.remove_all().await?;
        let ceiling = crate::tally::Sinks::connect(
            &config.endpoints.redis_url,
            &prefix,
            &config.endpoints.mongodb_uri,
            &ceiling_database,
        )
        .await?;
        ceiling.remove_all().await?;
        voteflow_testkit::delete_topics(&kafka.brokers, &[&topic, &format!("{topic}.dlq")]).await?;
    } else {
        println!("kept for inspection: topic {topic}, Redis keys {prefix}*, MongoDB database {database}");
    }
    Ok(report)
}

type BodyFn = Arc<dyn Fn(u64) -> Bytes + Send + Sync>;

fn single_vote_body() -> BodyFn {
    Arc::new(|i| Bytes::from(traffic::vote(i).to_string()))
}

fn batch_body(size: u64) -> BodyFn {
    Arc::new(move |i| {
        let votes: Vec<_> = (i * size..(i + 1) * size).map(traffic::vote).collect();
        Bytes::from(serde_json::Value::Array(votes).to_string())
    })
}

fn freshness_body(run: String) -> BodyFn {
    Arc::new(move |i| {
        let mut vote = traffic::vote(i);
        if let Some(album) = Freshness::album(&run, i) {
            vote["album"] = album.into();
        }
        Bytes::from(vote.to_string())
    })
}

fn grpc_vote() -> Arc<dyn Fn(u64) -> voteflow_domain::pb::Vote + Send + Sync> {
    Arc::new(|i| {
        let vote = sinks::domain_vote(i).expect("the benchmark's votes are valid");
        let mut wire = voteflow_domain::pb::Vote::from(&vote);
        // Let the server assign the vote_id, as a client without one does.
        wire.vote_id.clear();
        wire
    })
}

async fn grpc_requesters(
    connections: usize,
    vote: Arc<dyn Fn(u64) -> voteflow_domain::pb::Vote + Send + Sync>,
    batch: Option<u64>,
) -> anyhow::Result<Vec<Grpc>> {
    let mut requesters = Vec::with_capacity(connections);
    for _ in 0..connections {
        requesters.push(Grpc::connect(&format!("http://{}", AT.grpc_server), vote.clone(), batch).await?);
    }
    Ok(requesters)
}

/// Waits until Redis counts `expected` votes, timing from the first vote counted (the
/// group join before it is not the consumer's speed).
async fn drain(sinks: &crate::tally::Sinks, expected: u64, measure: &Duration) -> anyhow::Result<sinks::Throughput> {
    let deadline = Instant::now() + Duration::from_secs(600) + *measure;
    let mut first: Option<(Instant, u64)> = None;
    let mut last_print = Instant::now();
    loop {
        // A read timing out under load is not the consumer's failure: read again.
        let Ok(counted) = sinks.total().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let now = Instant::now();
        if counted > 0 && first.is_none() {
            first = Some((now, counted));
        }
        if counted >= expected {
            let (start, at_start) = first.unwrap_or((now, 0));
            let mut figure = sinks::Throughput::default();
            figure.votes = counted - at_start;
            figure.seconds = now.duration_since(start).as_secs_f64();
            figure.votes_per_s = figure.votes as f64 / figure.seconds.max(f64::EPSILON);
            figure.note = Some(format!("timed from the first vote counted ({at_start} by then) to the last"));
            return Ok(figure);
        }
        anyhow::ensure!(now < deadline, "the consumer counted {counted} of {expected} votes within the time allowed");
        if last_print.elapsed() >= Duration::from_secs(1) {
            eprintln!("[bench] consumer     {counted:>9}/{expected} counted");
            last_print = now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The run's wait for the consumer: a backlog drains at the consumer's pace, so there is no
/// fixed deadline, only one for no progress.
fn patience() -> Patience {
    Patience { settle: Duration::from_secs(1), stalled: Duration::from_secs(30) }
}

/// The publisher settings the producer servers run with: their defaults, and the same
/// `KAFKA_*` environment they inherit from this process.
fn services_publisher_settings() -> anyhow::Result<PublisherSettings> {
    #[derive(clap::Parser)]
    struct AsTheServersParseIt {
        #[command(flatten)]
        publisher: PublisherSettings,
    }
    Ok(<AsTheServersParseIt as clap::Parser>::try_parse_from(["voteflow-bench"])?.publisher)
}

async fn sync_disks() {
    let _ = tokio::task::spawn_blocking(|| std::process::Command::new("sync").status()).await;
}

/// The stack's servers, when their pid files are where `scripts/stack` puts them.
fn stack_processes(config: &BenchConfig) -> Vec<Watched> {
    [("kafka", "kafka"), ("redis", "redis"), ("mongo", "ferretdb")]
        .into_iter()
        .filter_map(|(dir, name)| {
            let pid = std::fs::read_to_string(config.stack_dir.join(dir).join("pid")).ok()?.trim().parse().ok()?;
            Some(Watched { name: name.to_owned(), pid })
        })
        .collect()
}

/// The processes of one run.
struct Services {
    hello: Service,
    producers: Producers,
    consumer: Service,
}

impl Services {
    fn new(config: &BenchConfig, names: &RunNames) -> Self {
        let mut runtime = Vec::new();
        if config.service_worker_threads > 0 {
            runtime.push(("TOKIO_WORKER_THREADS", config.service_worker_threads.to_string()));
        }
        let mut hello_env = runtime.clone();
        hello_env.push(("HELLO_LISTEN", HELLO.to_owned()));
        let statistics = ("KAFKA_STATISTICS_INTERVAL_MS", config.kafka_statistics.as_millis().to_string());
        let mut producer_env = crate::services::service_env(&config.endpoints, names);
        producer_env.extend(runtime.iter().cloned().chain([statistics.clone()]));
        let mut consumer_env = crate::services::consumer_env(&config.endpoints, names, CONSUMER_ADMIN);
        consumer_env.extend(runtime.into_iter().chain([statistics]));
        let (bin, dir) = (&config.bin_dir, &config.run_dir);
        Self {
            hello: Service::new("hello", bin.join("voteflow-hello"), &hello_env, format!("http://{HELLO}/readyz"), dir),
            producers: Producers::new(bin, dir, &producer_env),
            consumer: crate::services::consumer("consumer", bin, dir, &consumer_env, CONSUMER_ADMIN),
        }
    }

    fn running(&self) -> Vec<Watched> {
        [&self.hello, &self.consumer]
            .into_iter()
            .chain(self.producers.all())
            .filter_map(|service| Some(Watched { name: service.name.clone(), pid: service.pid()? }))
            .collect()
    }
}
