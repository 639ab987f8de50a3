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
use voteflow_proto::{AcceptedRecord, VotePath};
use voteflow_runtime::batch::{self, ItemError};
use voteflow_runtime::health::Readiness;
use voteflow_runtime::http::{self, Accepted, ApiError, BatchBody, BatchReport, VoteBody};
use voteflow_runtime::kafka::{KAFKA_CHECK, Publisher};

use crate::settings::ServerSettings;

#[post("/votes", data = "<body>")]
async fn cast_vote(body: Result<VoteBody, ApiError>, publisher: &State<Publisher>) -> Result<Accepted, ApiError> {
    let VoteBody(vote) = body?;
    let record = AcceptedRecord { vote, accepted_at: Utc::now(), path: VotePath::Rest };
    publisher.publish(&record).await?;
    Ok(Accepted(record.vote.vote_id()))
}

#[post("/votes/batch", data = "<body>")]
async fn cast_batch(body: Result<BatchBody, ApiError>, publisher: &State<Publisher>) -> Result<BatchReport, ApiError> {
    let BatchBody(parsed) = body?;
    let accepted_at = Utc::now();
    let records: Vec<AcceptedRecord> = parsed
        .iter()
        .filter_map(|item| item.as_ref().ok())
        .map(|vote| AcceptedRecord { vote: vote.clone(), accepted_at, path: VotePath::Rest })
        .collect();
    let published = publisher.publish_batch(&records).await;
    let forwarded = records
        .iter()
        .zip(published)
        .map(|(record, result)| result.map(|_| record.vote.vote_id()).map_err(ItemError::from_publish))
        .collect();
    Ok(BatchReport(batch::merge(parsed, forwarded)))
}

/// A running rest-server.
pub struct RestServer {
    pub addr: std::net::SocketAddr,
    running: http::Running,
    publisher: Publisher,
}

impl RestServer {
    /// Waits until the server has stopped (after shutdown), then flushes the producer.
    pub async fn stopped(self) -> anyhow::Result<()> {
        let served = self.running.stopped.await;
        self.publisher.flush(Duration::from_secs(5)).await;
        served?
    }
}

/// Starts rest-server; returns once it listens.
pub async fn launch(
    settings: &ServerSettings,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<RestServer> {
    let publisher = Publisher::new(&settings.publisher, "rest-server", &registry)?;
    let readiness = Readiness::with_checks(&[KAFKA_CHECK]);
    tokio::spawn(publisher.clone().watch_connection(readiness.clone(), shutdown.clone()));
    let rocket = rocket::custom(http::rocket_config(settings.listen, settings.http.shutdown_grace_secs))
        .manage(publisher.clone())
        .mount("/", routes![cast_vote, cast_batch]);
    let rocket = http::with_common(rocket, registry, readiness.clone(), &settings.http)?;
    let running = http::launch(rocket, readiness, shutdown).await?;
    Ok(RestServer { addr: running.addr, running, publisher })
}
