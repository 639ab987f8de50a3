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

/// The server a load scenario sends to.
#[derive(Debug, Clone, Copy)]
enum Target {
    Hello,
    RestClient,
    GrpcClient,
    RestServer,
    GrpcServer,
}

impl Target {
    fn url(self, path: &str) -> String {
        let address = match self {
            Target::Hello => HELLO.parse().expect("the hello address"),
            Target::RestClient => AT.rest_client,
            Target::GrpcClient => AT.grpc_client,
            Target::RestServer => AT.rest_server,
            Target::GrpcServer => AT.grpc_server,
        };
        format!("http://{address}{path}")
    }
}

/// What a scenario measures.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A closed loop of single votes, or of batches of `batch_size`, to `Target`.
    Load {
        target: Target,
        batch: bool,
    },
    /// The raw rdkafka produce ceiling, which also fills the topic for the consumer.
    Produce,
    RedisCeiling,
    MongoCeiling,
    RetryPath,
    /// The consumer draining the run's topic.
    Consumer,
    /// An open loop at half of the scenario `max_of`'s votes/s, timed to Redis.
    Fresh {
        front: Target,
        max_of: &'static str,
    },
}

/// One scenario: its label in the report, what it is (`{size}` is the batch size), and
/// what it measures.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioSpec {
    pub label: &'static str,
    what: &'static str,
    kind: Kind,
}

const fn scenario(label: &'static str, what: &'static str, kind: Kind) -> ScenarioSpec {
    ScenarioSpec { label, what, kind }
}

const fn load(target: Target, batch: bool) -> Kind {
    Kind::Load { target, batch }
}

/// Every scenario, in the order a run takes them: the ceiling, single votes through each
/// front then each hop on its own (for "why"), batches, the produce and sink ceilings,
/// the consumer, and freshness at half of each path's maximum.
pub const SCENARIOS: [ScenarioSpec; 14] = [
    scenario("ceiling", "hello-world hyper server, POST /votes", load(Target::Hello, false)),
    scenario("rest", "single votes: HTTP -> rest-client -> rest-server -> Kafka", load(Target::RestClient, false)),
    scenario("grpc", "single votes: HTTP -> grpc-client -> grpc-server -> Kafka", load(Target::GrpcClient, false)),
    scenario("rest-hop", "single votes: HTTP JSON straight to rest-server -> Kafka", load(Target::RestServer, false)),
    scenario(
        "grpc-hop",
        "single votes: gRPC CastVote straight to grpc-server -> Kafka",
        load(Target::GrpcServer, false),
    ),
    scenario(
        "batch-rest",
        "POST /votes/batch of {size} through rest-client -> rest-server",
        load(Target::RestClient, true),
    ),
    scenario(
        "batch-grpc",
        "CastVotes client streams of {size} straight to grpc-server",
        load(Target::GrpcServer, true),
    ),
    scenario(
        "produce",
        "raw rdkafka produce of the votes' records (acks=all, idempotence), the best of several lingers",
        Kind::Produce,
    ),
    scenario("redis-ceiling", "pipelined HINCRBY, 1000 per pipeline", Kind::RedisCeiling),
    scenario(
        "mongo-ceiling",
        "the vote log's insert (one unordered insert_many) of fresh votes, 1000 per call, vote-log indexes",
        Kind::MongoCeiling,
    ),
    scenario(
        "retry-path",
        "the vote log's insert of batches of 1000 holding 10 client retries (consumer's VoteLog::insert)",
        Kind::RetryPath,
    ),
    scenario("consumer", "one consumer draining the run's topic", Kind::Consumer),
    scenario("fresh-rest", "", Kind::Fresh { front: Target::RestClient, max_of: "rest" }),
    scenario("fresh-grpc", "", Kind::Fresh { front: Target::GrpcClient, max_of: "grpc" }),
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
    let mut run = Run::start(config).await?;
    run.warm_up().await?;
    for spec in SCENARIOS {
        run.prepare(spec.kind).await?;
        if run.config.wants(spec.label) {
            run.measure(spec).await?;
        }
    }
    run.verify().await
}

/// One run's services, sinks and figures so far.
struct Run {
    config: BenchConfig,
    id: String,
    names: RunNames,
    kafka: KafkaSettings,
    http: reqwest::Client,
    services: Services,
    stack: Vec<Watched>,
    report: Report,
    /// Votes the servers accepted (the hello ceiling's are not in Kafka: it keeps its own).
    ledger: Arc<Ledger>,
    next_index: Arc<AtomicU64>,
    /// Votes the produce ceiling wrote into the topic.
    prefilled: u64,
    /// Redis and MongoDB of the run, once the consumer is started.
    sinks: Option<crate::tally::Sinks>,
    caught_up_for_freshness: bool,
}

impl Run {
    async fn start(config: &BenchConfig) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let config = BenchConfig { run_dir: config.run_dir.join(&id), ..config.clone() };
        std::fs::create_dir_all(&config.run_dir)?;
        let names = RunNames::new("bench", &id);
        let topic = names.topic.clone();
        let kafka = KafkaSettings { brokers: config.endpoints.kafka_brokers.clone(), topic: topic.clone() };
        voteflow_testkit::ensure_topic(&kafka.brokers, &topic, 12).await.context("Failed to create the run's topic")?;
        voteflow_testkit::ensure_topic(&kafka.brokers, &format!("{topic}.dlq"), 1).await?;
        println!(
            "bench run {id} ({}): topic {topic} (12 partitions), Redis prefix {}, MongoDB database {}; logs in {}",
            if config.quick { "quick" } else { "full" },
            names.prefix,
            names.database,
            config.run_dir.display()
        );
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let mut services = Services::new(&config, &names);
        for service in services.producers.all_mut() {
            let took = service.start(&http).await?;
            println!("started {} in {:.1} s", service.name, took.as_secs_f64());
        }
        Ok(Self {
            report: Report::new(&config),
            stack: stack_processes(&config),
            config,
            id,
            names,
            kafka,
            http,
            services,
            ledger: Arc::default(),
            next_index: Arc::default(),
            prefilled: 0,
            sinks: None,
            caught_up_for_freshness: false,
        })
    }

    /// The processes whose CPU and memory a scenario reports.
    fn meter(&self) -> Meter {
        let mut watched = self.services.running();
        watched.extend(self.stack.iter().cloned());
        watched.push(Watched { name: "voteflow-bench".to_owned(), pid: std::process::id() });
        Meter::start(&watched)
    }

    fn plan(&self, label: &str, connections: usize, votes_per_request: u64) -> Plan {
        Plan {
            tool: "bench",
            label: label.to_owned(),
            connections,
            pace: Pace::Closed,
            warmup: self.config.warmup,
            measure: self.config.measure,
            votes_per_request,
            progress: true,
            requests: None,
        }
    }

    /// A broker started minutes before spends its first minute of load compiling (JIT),
    /// which would slow whichever scenario came first: unmeasured load to each server.
    async fn warm_up(&mut self) -> anyhow::Result<()> {
        if self.config.kafka_warmup.is_zero() {
            return Ok(());
        }
        let connections = self.config.connections;
        let warm =
            Plan { warmup: Duration::ZERO, measure: self.config.kafka_warmup, ..self.plan("warm-up", connections, 1) };
        for target in [Target::RestServer, Target::GrpcServer] {
            self.send(&warm, target, false, self.ledger.clone()).await?;
        }
        Ok(())
    }

    /// Sends `plan` to `target` through the generator.
    async fn send(
        &self,
        plan: &Plan,
        target: Target,
        batch: bool,
        ledger: Arc<Ledger>,
    ) -> anyhow::Result<generator::RunFigures> {
        let (connections, next_index) = (plan.connections, self.next_index.clone());
        let size = self.config.batch_size;
        Ok(match target {
            Target::GrpcServer => {
                let (url, vote) = (target.url(""), grpc_vote());
                let mut requesters = Vec::with_capacity(connections);
                for _ in 0..connections {
                    requesters.push(Grpc::connect(&url, vote.clone(), batch.then_some(size)).await?);
                }
                generator::run(plan, requesters, next_index, ledger).await
            }
            _ => {
                let (path, body) =
                    if batch { ("/votes/batch", batch_body(size)) } else { ("/votes", single_vote_body()) };
                let url = target.url(path);
                let requesters = (0..connections)
                    .map(|_| HttpJson::new(&url, body.clone(), batch))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                generator::run(plan, requesters, next_index, ledger).await
            }
        })
    }

    /// What runs between scenarios whether or not the next one is measured.
    async fn prepare(&mut self, kind: Kind) -> anyhow::Result<()> {
        match kind {
            // Kafka's writes of the votes so far sit in the page cache; flushed now, they do
            // not slow the MongoDB-wire server's fsyncs in one scenario and not in the other.
            Kind::RedisCeiling => sync_disks().await,
            // The consumer runs even when its scenario is not measured, so the final check
            // can count the accepted votes.
            Kind::Consumer => {
                let endpoints = &self.config.endpoints;
                let (prefix, database) = (&self.names.prefix, &self.names.database);
                let sinks =
                    crate::tally::Sinks::connect(&endpoints.redis_url, prefix, &endpoints.mongodb_uri, database)
                        .await?;
                self.sinks = Some(sinks);
                sync_disks().await;
                self.services.consumer.start(&self.http).await?;
            }
            // The consumer has caught up first: without the consumer scenario (an --only
            // run) it is still draining the warm-ups' votes, and freshness would time that.
            Kind::Fresh { .. } if !self.caught_up_for_freshness => {
                self.caught_up_for_freshness = true;
                if SCENARIOS.iter().any(|spec| matches!(spec.kind, Kind::Fresh { .. }) && self.config.wants(spec.label))
                {
                    let accepted = self.accepted();
                    let (counted, _) = self.sinks()?.wait_caught_up(accepted, Scope::Own, patience(), "bench").await?;
                    anyhow::ensure!(
                        counted >= accepted,
                        "the consumer stalled at {counted} of {accepted} votes before freshness"
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn sinks(&self) -> anyhow::Result<&crate::tally::Sinks> {
        self.sinks.as_ref().context("the consumer's sinks are connected before the consumer scenario")
    }

    /// Votes accepted into the run's topic so far.
    fn accepted(&self) -> u64 {
        self.prefilled + self.ledger.accepted_votes.load(Ordering::Relaxed)
    }

    fn ceiling_database(&self) -> String {
        format!("{}_ceiling", self.names.database)
    }

    async fn measure(&mut self, spec: ScenarioSpec) -> anyhow::Result<()> {
        let (label, endpoints) = (spec.label, self.config.endpoints.clone());
        let what = spec.what.replace("{size}", &self.config.batch_size.to_string());
        match spec.kind {
            Kind::Load { target, batch } => {
                let (connections, votes_per_request) = match batch {
                    false => (self.config.connections, 1),
                    true => ((self.config.connections / 4).max(1), self.config.batch_size),
                };
                let plan = self.plan(label, connections, votes_per_request);
                // The hello ceiling accepts votes that never reach Kafka.
                let ledger = match target {
                    Target::Hello => {
                        self.services.hello.start(&self.http).await?;
                        Arc::default()
                    }
                    _ => self.ledger.clone(),
                };
                let meter = self.meter();
                let figures = self.send(&plan, target, batch, ledger).await?;
                self.report.add(label, Scenario::run(&what, figures, meter.finish()));
                if let Target::Hello = target {
                    self.services.hello.kill()?;
                }
            }
            Kind::Produce => {
                let meter = self.meter();
                let publisher = PublisherSettings { kafka: self.kafka.clone(), ..services_publisher_settings()? };
                let in_topic = self.ledger.accepted_votes.load(Ordering::Relaxed);
                let top_up = self.config.prefill.saturating_sub(in_topic).max(self.config.sink_ceiling_votes);
                let (produce, prefilled) = sinks::produce_ceiling(&publisher, top_up).await?;
                self.prefilled = prefilled;
                self.report.add_throughput(label, &what, produce, meter.finish());
            }
            Kind::RedisCeiling => {
                let meter = self.meter();
                let prefix = format!("{}ceiling:", self.names.prefix);
                let key = voteflow_consumer::sink::tally::TallyKeys::new(&prefix).by_band;
                let figure = sinks::redis_ceiling(&endpoints.redis_url, &key, self.config.sink_ceiling_votes).await?;
                self.report.add_throughput(label, &what, figure, meter.finish());
            }
            Kind::MongoCeiling => {
                let meter = self.meter();
                let votes = self.config.sink_ceiling_votes;
                let figure = sinks::mongo_ceiling(&endpoints.mongodb_uri, &self.ceiling_database(), votes).await?;
                self.report.add_throughput(label, &what, figure, meter.finish());
            }
            Kind::RetryPath => {
                // After the Mongo ceiling, so the log it looks up in is as large as the run allows.
                let meter = self.meter();
                let rounds = if self.config.quick { 3 } else { 7 };
                let figure = sinks::retry_path(&endpoints.mongodb_uri, &self.ceiling_database(), rounds).await?;
                println!("retry-path: {}", figure.note.as_deref().unwrap_or_default());
                self.report.add_throughput(label, &what, figure, meter.finish());
            }
            Kind::Consumer => {
                let meter = self.meter();
                let in_topic = self.accepted();
                let drained = drain(self.sinks()?, in_topic, &self.config.measure).await?;
                let what = format!(
                    "{what}, {in_topic} votes (the fronts' and {} from the produce ceiling), into Redis + MongoDB",
                    self.prefilled
                );
                self.report.add_throughput(label, &what, drained, meter.finish());
            }
            Kind::Fresh { front, max_of } => self.freshness(label, front, max_of).await?,
        }
        Ok(())
    }

    /// An open loop at half of the path's measured maximum: accept latency, each stage's
    /// latency from the services' own histograms, and how soon Redis shows an accepted vote.
    async fn freshness(&mut self, label: &str, front: Target, max_of: &str) -> anyhow::Result<()> {
        // Without this run's maximum (an --only run), a nominal one.
        let max = Some(self.report.votes_per_s(max_of)).filter(|max| *max > 0.0).unwrap_or(2000.0);
        let (rate, what) = match self.config.open_loop_rate {
            Some(rate) => (rate, format!("open loop at a fixed {rate:.0} votes/s (--open-loop-rate)")),
            None => ((max / 2.0).max(10.0), format!("open loop at 50 % of {max_of}'s {max:.0} votes/s")),
        };
        let what = format!("{what}; accepted -> visible in Redis");
        let (stages, producer_server) = front_stages(front);
        let freshness = Arc::new(Freshness::default());
        let body = freshness_body(self.id.clone());
        let (hook_freshness, hook_run) = (freshness.clone(), self.id.clone());
        let hook = Arc::new(move |i: u64, at: Instant| {
            if let Some(album) = Freshness::album(&hook_run, i) {
                hook_freshness.accepted(album_field(&traffic::band(i), &album), at);
            }
        });
        // Each open-loop connection sends on its own fixed schedule, so one slow answer
        // holds back that connection's next due votes, and the generator's p99 grew far
        // past the front's. Four times as many connections leave each slot 4x longer.
        let connections = self.config.connections * OPEN_LOOP_CONNECTIONS_PER_CLOSED;
        let url = front.url("/votes");
        let requesters: Vec<HttpJson> = (0..connections)
            .map(|_| HttpJson::new(&url, body.clone(), false).map(|requester| requester.on_accepted(hook.clone())))
            .collect::<anyhow::Result<_>>()?;
        let stop = tokio_util::sync::CancellationToken::new();
        let redis =
            redis::Client::open(self.config.endpoints.redis_url.as_str())?.get_multiplexed_async_connection().await?;
        let watcher =
            tokio::spawn(freshness.clone().watch(redis, format!("{}votes:album", self.names.prefix), stop.clone()));
        let stages_before = stages::snapshot(&self.http, &stages).await;
        let kafka_client_stop = tokio_util::sync::CancellationToken::new();
        let kafka_client = stages::sample_kafka_client(
            self.http.clone(),
            format!("http://{producer_server}/metrics"),
            self.config.kafka_statistics,
            kafka_client_stop.clone(),
        );
        let meter = self.meter();
        let open = Plan { pace: Pace::Open { rate }, ..self.plan(label, connections, 1) };
        let figures = generator::run(&open, requesters, self.next_index.clone(), self.ledger.clone()).await;
        let usage = meter.finish();
        let mut stages = stages::between(&stages, &stages_before, &stages::snapshot(&self.http, &stages).await);
        // And the acknowledgement split into librdkafka's parts, as the producer reports them.
        kafka_client_stop.cancel();
        stages.extend(kafka_client.await?);
        stop.cancel();
        watcher.await?;
        let scenario = Scenario::run(&what, figures, usage).with_freshness(freshness.figures()).with_stages(stages);
        self.report.add(label, scenario);
        Ok(())
    }

    /// The check: every vote a server accepted is counted in Redis and logged in MongoDB.
    /// A run that passes removes its data; a failed one keeps it for inspection.
    async fn verify(mut self) -> anyhow::Result<Report> {
        let accepted = self.accepted();
        let unanswered = self.ledger.unanswered_votes.load(Ordering::Relaxed);
        let ceiling_database = self.ceiling_database();
        let sinks = self.sinks.take().context("the consumer ran")?;
        let (counted, logged) = sinks.wait_caught_up(accepted, Scope::Own, patience(), "bench").await?;
        self.report.verify(accepted, unanswered, counted, logged);
        drop(self.services);
        let mut report = self.report;
        report.finish()?;
        report.print();
        let (topic, names, endpoints) = (&self.kafka.topic, &self.names, &self.config.endpoints);
        if report.verification.passed {
            sinks.remove_all().await?;
            let ceiling = crate::tally::Sinks::connect(
                &endpoints.redis_url,
                &names.prefix,
                &endpoints.mongodb_uri,
                &ceiling_database,
            )
            .await?;
            ceiling.remove_all().await?;
            voteflow_testkit::delete_topics(&self.kafka.brokers, &[topic, &format!("{topic}.dlq")]).await?;
        } else {
            println!(
                "kept for inspection: topic {topic}, Redis keys {}*, MongoDB database {}",
                names.prefix, names.database
            );
        }
        Ok(report)
    }
}

/// The stages a vote through a front waits on, each timed by its own service: the front's
/// request (which includes the server's), the server's request or call (which includes
/// Kafka's acknowledgement), and the acknowledgement; and the producer server's admin
/// address. The warm-up has created every series before the scenarios read them.
fn front_stages(front: Target) -> (Vec<stages::Stage>, SocketAddr) {
    let stage = |name, address: SocketAddr, series| stages::Stage {
        name,
        metrics_url: format!("http://{address}/metrics"),
        series,
    };
    let http_cast_vote_series = ("voteflow_http_request_seconds_bucket", ("route", "cast_vote"));
    let grpc_cast_vote_series = ("voteflow_grpc_request_seconds_bucket", ("method", "CastVote"));
    let kafka_acked_series = ("voteflow_kafka_produce_seconds_bucket", ("outcome", "acked"));
    match front {
        Target::GrpcClient => (
            vec![
                stage("grpc-client request", AT.grpc_client, http_cast_vote_series),
                stage("grpc-server CastVote", AT.grpc_server_admin, grpc_cast_vote_series),
                stage("Kafka acknowledgement", AT.grpc_server_admin, kafka_acked_series),
            ],
            AT.grpc_server_admin,
        ),
        _ => (
            vec![
                stage("rest-client request", AT.rest_client, http_cast_vote_series),
                stage("rest-server request", AT.rest_server, http_cast_vote_series),
                stage("Kafka acknowledgement", AT.rest_server, kafka_acked_series),
            ],
            AT.rest_server,
        ),
    }
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
