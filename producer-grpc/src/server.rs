//! grpc-server: `voteflow.v1.VoteService` over tonic. Every vote is validated again
//! (never trust a hop), stamped `accepted_at`, and produced through the process's one
//! [`Publisher`], the same publisher rest-server uses.
//!
//! Guarantee: CastVote answers OK only after Kafka acknowledged the vote (acks=all);
//! CastVotes reports each vote accepted only after its acknowledgement. INVALID_ARGUMENT
//! names the field; UNAVAILABLE when Kafka does not acknowledge within the bound;
//! RESOURCE_EXHAUSTED when overloaded or a message is too large. On shutdown the health
//! service turns NOT_SERVING first, then in-flight calls finish and the producer flushes.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use voteflow_domain::pb::{self, CastVoteReply, CastVotesSummary, VoteResult};
use voteflow_domain::{AcceptedRecord, ItemOutcome, Refusal, Vote, VotePath, batch};
use voteflow_service::admin;
use voteflow_service::health::Readiness;
use voteflow_service::kafka::{KAFKA_CHECK, Publisher};
use voteflow_service::metrics::latency_buckets;
use voteflow_service::process::Running;

use crate::rpc::vote_service_server::{VoteService, VoteServiceServer};
use crate::settings::ServerSettings;
use crate::status::{normalize, normalize_response, to_status};

/// How long the producer gets to deliver what is queued once the server stopped.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Calls by method and status code, and their latency by method.
#[derive(Clone)]
struct RpcMetrics {
    calls: IntCounterVec,
    latency: HistogramVec,
}

impl RpcMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let calls = IntCounterVec::new(
            Opts::new("voteflow_grpc_requests_total", "gRPC calls answered, by method and status code."),
            &["method", "code"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("voteflow_grpc_request_seconds", "Time to answer a gRPC call, by method.")
                .buckets(latency_buckets()),
            &["method"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self { calls, latency })
    }

    fn observe<T>(&self, method: &str, result: &Result<T, Status>, started: Instant) {
        let code = match result {
            Ok(_) => "Ok".to_owned(),
            Err(status) => format!("{:?}", status.code()),
        };
        self.calls.with_label_values(&[method, code.as_str()]).inc();
        self.latency.with_label_values(&[method]).observe(started.elapsed().as_secs_f64());
    }
}

struct VoteHandler {
    publisher: Publisher,
    batch_max_votes: usize,
    metrics: RpcMetrics,
}

/// One vote result of a CastVotes summary.
fn vote_result(index: usize, outcome: ItemOutcome) -> VoteResult {
    let mut result = VoteResult { index: index as u32, ..VoteResult::default() };
    match outcome {
        Ok(vote_id) => {
            result.accepted = true;
            result.vote_id = vote_id.to_string();
        }
        Err(refusal) => {
            result.error_code = refusal.code.as_str().to_owned();
            result.error_field = refusal.field.unwrap_or_default();
            result.error_message = refusal.message;
        }
    }
    result
}

impl VoteHandler {
    async fn cast_one(&self, wire: pb::Vote) -> Result<CastVoteReply, Refusal> {
        let vote = Vote::try_from(wire)?;
        let record = AcceptedRecord { vote, accepted_at: chrono::Utc::now(), path: VotePath::Grpc };
        self.publisher.publish(&record).await?;
        Ok(CastVoteReply { vote_id: record.vote.vote_id().to_string() })
    }

    async fn cast_many(&self, mut stream: Streaming<pb::Vote>) -> Result<CastVotesSummary, Status> {
        let mut parsed = Vec::new();
        while let Some(wire) = stream.message().await.map_err(normalize)? {
            if parsed.len() == self.batch_max_votes {
                return Err(to_status(&batch::too_many(self.batch_max_votes, None)));
            }
            parsed.push(Vote::try_from(wire).map_err(Refusal::from));
        }
        let outcomes = self.publisher.accept_batch(parsed, VotePath::Grpc).await;
        let results: Vec<VoteResult> =
            outcomes.into_iter().enumerate().map(|(index, outcome)| vote_result(index, outcome)).collect();
        let accepted = results.iter().filter(|result| result.accepted).count() as u32;
        Ok(CastVotesSummary { accepted, rejected: results.len() as u32 - accepted, results })
    }
}

#[tonic::async_trait]
impl VoteService for VoteHandler {
    async fn cast_vote(&self, request: Request<pb::Vote>) -> Result<Response<CastVoteReply>, Status> {
        let started = Instant::now();
        let result =
            self.cast_one(request.into_inner()).await.map(Response::new).map_err(|refusal| to_status(&refusal));
        self.metrics.observe("CastVote", &result, started);
        result
    }

    async fn cast_votes(&self, request: Request<Streaming<pb::Vote>>) -> Result<Response<CastVotesSummary>, Status> {
        let started = Instant::now();
        let result = self.cast_many(request.into_inner()).await.map(Response::new);
        self.metrics.observe("CastVotes", &result, started);
        result
    }
}

/// Mirrors readiness (Kafka reachable, not shutting down) into the gRPC health service,
/// as it changes.
async fn sync_health(reporter: HealthReporter, readiness: Readiness, shutdown: CancellationToken) {
    let mut changes = readiness.subscribe();
    loop {
        let status = if *changes.borrow_and_update() { ServingStatus::Serving } else { ServingStatus::NotServing };
        set_health(&reporter, status).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status("voteflow.v1.VoteService", status).await;
}

/// Starts grpc-server and its admin server; returns once both listen.
/// `stopped` finishes once calls in flight finished (within the grace period) and the
/// producer flushed.
pub async fn launch(
    settings: ServerSettings,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("Failed to bind the gRPC address {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let admin_listener = TcpListener::bind(settings.admin_listen)
        .await
        .with_context(|| format!("Failed to bind the admin address {}", settings.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;

    let publisher = Publisher::new(&settings.publisher, "grpc-server", &registry)?;
    let metrics = RpcMetrics::register(&registry)?;
    let readiness = Readiness::with_checks(&[KAFKA_CHECK]);
    tokio::spawn(publisher.clone().watch_connection(readiness.clone(), shutdown.clone()));
    tokio::spawn(admin::serve(admin_listener, registry, readiness.clone(), shutdown.clone()));
    let (reporter, health_service) = tonic_health::server::health_reporter();
    tokio::spawn(sync_health(reporter.clone(), readiness.clone(), shutdown.clone()));

    let handler = VoteHandler { publisher: publisher.clone(), batch_max_votes: settings.batch_max_votes, metrics };
    let votes = VoteServiceServer::new(handler).max_decoding_message_size(settings.max_message_bytes);
    let stop_serving = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            readiness.begin_shutdown();
            set_health(&reporter, ServingStatus::NotServing).await;
        }
    };
    let serving = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(settings.concurrency_limit)
        .load_shed(true)
        .layer(tower::util::MapResponseLayer::new(normalize_response))
        .add_service(health_service)
        .add_service(votes)
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY a small frame written behind an unacknowledged one waits
            // for the peer's delayed ACK (~40 ms): seen by the benchmark on CastVotes.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            stop_serving,
        );
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    tracing::info!(brokers = %settings.publisher.kafka.brokers, topic = %settings.publisher.kafka.topic, "grpc-server produces to Kafka");
    let stopped = tokio::spawn(async move {
        let result = tokio::select! {
            result = serving => result.context("gRPC server failed"),
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "in-flight gRPC calls did not finish within the grace period");
                Ok(())
            }
        };
        publisher.flush(FLUSH_TIMEOUT).await;
        result
    });
    Ok(Running { addr, admin_addr, stopped })
}
