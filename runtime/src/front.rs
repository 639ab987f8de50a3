//! The HTTP front of a producer pair (rest-client, and grpc-client beside it): accepts
//! `POST /votes` JSON, validates it, and forwards the vote to the pair's server through a
//! [`NextHop`]. Both fronts are this code; they differ only in the hop behind them.
//!
//! `POST /votes/batch` takes a JSON array; invalid votes are rejected here, the valid
//! ones are forwarded as one batch, and the answer has one outcome per vote, in order.
//!
//! Guarantee: the front answers 202 only when its hop reported the vote accepted (which
//! the server does only after Kafka acknowledged it); a failed or timed-out hop is a 503
//! with Retry-After. The front assigns a vote_id before forwarding, so a retry is the same vote.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus::Registry;
use rocket::{State, post, routes};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use voteflow_proto::Vote;

use crate::batch::{self, ItemOutcome};
use crate::health::Readiness;
use crate::http::{self, Accepted, ApiError, BatchBody, BatchReport, HttpSettings, Running, VoteBody};

/// The server a front forwards votes to.
pub trait NextHop: Send + Sync + 'static {
    /// Name of the readiness check for this hop, e.g. `rest-server`.
    fn name(&self) -> &'static str;
    /// Forwards one validated vote; `Ok` carries the vote_id the server accepted.
    fn forward<'a>(&'a self, vote: &'a Vote) -> BoxFuture<'a, Result<Uuid, ApiError>>;
    /// Forwards a batch of validated votes; one outcome per vote, in order.
    fn forward_batch<'a>(&'a self, votes: Vec<Vote>) -> BoxFuture<'a, Result<Vec<ItemOutcome>, ApiError>>;
    /// Whether the server answers its readiness check.
    fn is_ready(&self) -> BoxFuture<'_, bool>;
}

type Hop = Arc<dyn NextHop>;

#[post("/votes", data = "<body>")]
async fn cast_vote(body: Result<VoteBody, ApiError>, hop: &State<Hop>) -> Result<Accepted, ApiError> {
    let VoteBody(vote) = body?;
    let vote_id = hop.forward(&vote).await?;
    Ok(Accepted(vote_id))
}

#[post("/votes/batch", data = "<body>")]
async fn cast_batch(body: Result<BatchBody, ApiError>, hop: &State<Hop>) -> Result<BatchReport, ApiError> {
    let BatchBody(parsed) = body?;
    let valid: Vec<Vote> = parsed.iter().filter_map(|item| item.as_ref().ok().cloned()).collect();
    let forwarded = if valid.is_empty() { Vec::new() } else { hop.forward_batch(valid).await? };
    Ok(BatchReport(batch::merge(parsed, forwarded)))
}

/// Serves a front on `listen` until `shutdown`, forwarding to `hop`.
pub async fn launch(
    listen: std::net::SocketAddr,
    settings: &HttpSettings,
    hop: Hop,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let readiness = Readiness::with_checks(&[hop.name()]);
    tokio::spawn(watch_hop(hop.clone(), readiness.clone(), shutdown.clone()));
    let rocket = rocket::custom(http::rocket_config(listen, settings.shutdown_grace_secs))
        .manage(hop)
        .mount("/", routes![cast_vote, cast_batch]);
    let rocket = http::with_common(rocket, registry, readiness.clone(), settings)?;
    http::launch(rocket, readiness, shutdown).await
}

async fn watch_hop(hop: Hop, readiness: Readiness, shutdown: CancellationToken) {
    loop {
        readiness.set(hop.name(), hop.is_ready().await);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {},
        }
    }
}
