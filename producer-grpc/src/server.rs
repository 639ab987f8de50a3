//! grpc-server: `voteflow.v1.VoteService` over tonic. Every vote is validated again
//! (never trust a hop), stamped `accepted_at`, and produced through the process's one
//! [`Publisher`], the same publisher rest-server uses.
//!
//! Guarantee: CastVote answers OK only after Kafka acknowledged the vote (acks=all);
//! CastVotes reports each vote accepted only after its acknowledgement. INVALID_ARGUMENT
//! names the field; UNAVAILABLE when Kafka does not acknowledge within the bound;
//! RESOURCE_EXHAUSTED when overloaded or a message is too large. On shutdown the health
//! service turns NOT_SERVING first, then in-flight calls finish and the producer flushes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use voteflow_proto::pb::vote_service_server::{VoteService, VoteServiceServer};
use voteflow_proto::pb::{self, CastVoteReply, CastVotesSummary, VoteResult};
use voteflow_proto::{AcceptedRecord, Vote, VotePath};
use voteflow_runtime::admin;
use voteflow_runtime::health::Readiness;
use voteflow_runtime::kafka::{KAFKA_CHECK, PublishError, Publisher};

use crate::settings::ServerSettings;
use crate::status::{RpcError, normalize, normalize_response};

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
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
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

fn accept(wire: pb::Vote) -> Result<AcceptedRecord, RpcError> {
    let vote = Vote::try_from(wire)?;
    Ok(AcceptedRecord { vote, accepted_at: Utc::now(), path: VotePath::Grpc })
}

impl VoteHandler {
    async fn cast_one(&self, wire: pb::Vote) -> Result<CastVoteReply, RpcError> {
        let record = accept(wire)?;
        self.publisher.publish(&record).await?;
        Ok(CastVoteReply { vote_id: record.vote.vote_id().to_string() })
    }

    async fn cast_many(&self, mut stream: Streaming<pb::Vote>) -> Result<CastVotesSummary, Status> {
        let mut validated = Vec::new();
        while let Some(wire) = stream.message().await.map_err(normalize)? {
            if validated.len() == self.batch_max_votes {
                return Err(RpcError::TooManyVotes { limit: self.batch_max_votes }.into());
            }
            validated.push(accept(wire));
        }
        let records: Vec<AcceptedRecord> = validated.iter().filter_map(|item| item.as_ref().ok().cloned()).collect();
        let mut published = self.publisher.publish_batch(&records).await.into_iter().zip(&records);
        let results: Vec<VoteResult> = validated
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                let outcome = match item {
                    Ok(_) => match published.next() {
                        Some((Ok(_), record)) => Ok(record.vote.vote_id()),
                        Some((Err(error), _)) => Err(RpcError::NotAccepted(error)),
                        // publish_batch gives one result per record; never a panic if it did not.
                        None => Err(RpcError::NotAccepted(PublishError::Closed)),
                    },
                    Err(error) => Err(error),
                };
                let mut result = VoteResult { index: index as u32, ..VoteResult::default() };
                match outcome {
                    Ok(vote_id) => {
                        result.accepted = true;
                        result.vote_id = vote_id.to_string();
                    }
                    Err(error) => {
                        let item = error.to_item_error();
                        result.error_code = item.error;
                        result.error_field = item.field.unwrap_or_default();
                        result.error_message = item.message;
                    }
                }
                result
            })
            .collect();
        let accepted = results.iter().filter(|result| result.accepted).count() as u32;
        Ok(CastVotesSummary { accepted, rejected: results.len() as u32 - accepted, results })
    }
}

#[tonic::async_trait]
impl VoteService for VoteHandler {
    async fn cast_vote(&self, request: Request<pb::Vote>) -> Result<Response<CastVoteReply>, Status> {
        let started = Instant::now();
        let result = self.cast_one(request.into_inner()).await.map(Response::new).map_err(Status::from);
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

/// A running grpc-server.
pub struct GrpcServer {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    stopped: JoinHandle<anyhow::Result<()>>,
}

impl GrpcServer {
    /// Waits until the server has stopped (after shutdown) and flushed the producer.
    pub async fn stopped(self) -> anyhow::Result<()> {
        self.stopped.await.context("grpc-server task failed")?
    }
}

/// Mirrors readiness (Kafka reachable, not shutting down) into the gRPC health service.
async fn sync_health(reporter: HealthReporter, readiness: Readiness, shutdown: CancellationToken) {
    loop {
        let status = if readiness.is_ready() { ServingStatus::Serving } else { ServingStatus::NotServing };
        reporter.set_service_status("", status).await;
        reporter.set_service_status("voteflow.v1.VoteService", status).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {},
        }
    }
}

/// Starts grpc-server and its admin server; returns once both listen.
pub async fn launch(
    settings: &ServerSettings,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<GrpcServer> {
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
            reporter.set_service_status("", ServingStatus::NotServing).await;
            reporter.set_service_status("voteflow.v1.VoteService", ServingStatus::NotServing).await;
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
    let stopped = tokio::spawn(async move {
        let result = tokio::select! {
            result = serving => result.context("gRPC server failed"),
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "in-flight gRPC calls did not finish within the grace period");
                Ok(())
            }
        };
        publisher.flush(Duration::from_secs(5)).await;
        result
    });
    Ok(GrpcServer { addr, admin_addr, stopped })
}
