//! rest-server: `POST /votes` validates the vote again (never trust a hop), stamps
//! `accepted_at`, and produces it through the process's one [`Publisher`].
//!
//! `POST /votes/batch` publishes the valid votes of a JSON array concurrently and answers
//! one outcome per vote.
//!
//! Guarantee: 202 only after Kafka acknowledged the vote with acks=all; Kafka down, the
//! in-flight queue full, or no acknowledgement within the delivery bound: 503 with
//! Retry-After. On shutdown it stops accepting, lets in-flight requests finish, then
//! flushes the producer.

use std::time::Duration;

use chrono::Utc;
use prometheus::Registry;
use rocket::{State, post, routes};
use tokio_util::sync::CancellationToken;
use voteflow_domain::{AcceptedRecord, VotePath};
use voteflow_http::ApiError;
use voteflow_http::answer::{Accepted, BatchReport};
use voteflow_http::body::{BatchBody, VoteBody};
use voteflow_http::server;
use voteflow_service::health::Readiness;
use voteflow_service::kafka::{KAFKA_CHECK, Publisher};
use voteflow_service::process::Running;

use crate::settings::ServerSettings;

/// How long the producer gets to deliver what is queued once the server stopped.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[post("/votes", data = "<body>")]
async fn cast_vote(body: Result<VoteBody, ApiError>, publisher: &State<Publisher>) -> Result<Accepted, ApiError> {
    let VoteBody(vote, _admitted) = body?;
    let record = AcceptedRecord { vote, accepted_at: Utc::now(), path: VotePath::Rest };
    publisher.publish(&record).await?;
    Ok(Accepted(record.vote.vote_id()))
}

#[post("/votes/batch", data = "<body>")]
async fn cast_batch(body: Result<BatchBody, ApiError>, publisher: &State<Publisher>) -> Result<BatchReport, ApiError> {
    let BatchBody(parsed, _admitted) = body?;
    Ok(BatchReport(publisher.accept_batch(parsed, VotePath::Rest).await))
}

/// Starts rest-server; returns once it listens. `stopped` finishes once the server has
/// drained and the producer flushed.
pub async fn launch(
    settings: ServerSettings,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let publisher = Publisher::new(&settings.publisher, "rest-server", &registry)?;
    let readiness = Readiness::with_checks(&[KAFKA_CHECK]);
    tokio::spawn(publisher.clone().watch_connection(readiness.clone(), shutdown.clone()));
    tracing::info!(brokers = %settings.publisher.kafka.brokers, topic = %settings.publisher.kafka.topic, "rest-server produces to Kafka");
    let rocket = rocket::custom(server::rocket_config(settings.listen, settings.http.shutdown_grace_secs))
        .manage(publisher.clone())
        .mount("/", routes![cast_vote, cast_batch]);
    let rocket = server::with_common(rocket, registry, readiness.clone(), &settings.http)?;
    let flush = Box::pin(async move { publisher.flush(FLUSH_TIMEOUT).await });
    server::launch(rocket, readiness, shutdown, Some(flush)).await
}
