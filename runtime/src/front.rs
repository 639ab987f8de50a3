//! The HTTP front of a producer pair (rest-client, and grpc-client beside it): accepts
//! `POST /votes` JSON, validates it, and forwards the vote to the pair's server through a
//! [`NextHop`]. Both fronts are this code; they differ only in the hop behind them.
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

use crate::health::Readiness;
use crate::http::{self, Accepted, ApiError, HttpSettings, Running, VoteBody};

/// The server a front forwards votes to.
pub trait NextHop: Send + Sync + 'static {
    /// Name of the readiness check for this hop, e.g. `rest-server`.
    fn name(&self) -> &'static str;
    /// Forwards one validated vote; `Ok` carries the vote_id the server accepted.
    fn forward<'a>(&'a self, vote: &'a Vote) -> BoxFuture<'a, Result<Uuid, ApiError>>;
    /// Whether the server answers its readiness check.
    fn is_ready(&self) -> BoxFuture<'_, bool>;
}

type Hop = Arc<dyn NextHop>;

#[post("/votes", data = "<body>")]
async fn cast_vote(
    body: Result<VoteBody, ApiError>,
    hop: &State<Hop>,
) -> Result<Accepted, ApiError> {
    let VoteBody(vote) = body?;
    let vote_id = hop.forward(&vote).await?;
    Ok(Accepted(vote_id))
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
        .mount("/", routes![cast_vote]);
    let rocket = http::with_common(rocket, registry, readiness.clone(), settings.max_body_bytes)?;
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
