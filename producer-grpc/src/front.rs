//! grpc-client: the shared Rocket front (`voteflow_http::front`) with [`GrpcHop`], which spreads calls over every
//! grpc-server `GRPC_SERVER_URL` names ([`crate::upstreams`]), one HTTP/2 channel each,
//! connected lazily and reconnecting by itself. A vote goes as `CastVote`, a batch as one
//! `CastVotes` stream.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use uuid::Uuid;
use voteflow_domain::{ErrorCode, ItemOutcome, Refusal, Vote, pb};
use voteflow_http::ApiError;
use voteflow_http::front::{self, NextHop};
use voteflow_service::process::Running;

use crate::settings::FrontSettings;
use crate::status::to_api_error;
use crate::upstreams::{Server, Upstreams};

/// Forwards votes to the grpc-servers.
pub struct GrpcHop {
    upstreams: Upstreams,
    timeout: Duration,
}

impl GrpcHop {
    pub fn new(settings: &FrontSettings) -> anyhow::Result<Self> {
        let timeout = settings.front.upstream_timeout();
        Ok(Self { upstreams: Upstreams::new(settings.front.server_url.expose(), timeout)?, timeout })
    }

    /// One call, on the next server while one is not reached, all within the upstream timeout.
    async fn call<T, F, Fut>(&self, attempt: F) -> Result<T, Status>
    where
        F: FnMut(Arc<Server>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        tokio::time::timeout(self.timeout, self.upstreams.call(attempt)).await.unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(format!("no answer within {} ms", self.timeout.as_millis())))
        })
    }

    async fn cast(&self, vote: &Vote) -> Result<Uuid, ApiError> {
        let wire = pb::Vote::from(vote);
        let reply = self
            .call(|server| {
                let wire = wire.clone();
                async move { server.votes.clone().cast_vote(wire).await }
            })
            .await
            .map_err(to_api_error)?;
        Uuid::try_parse(&reply.get_ref().vote_id)
            .map_err(|_| ApiError::next_hop_broken(format!("OK without a vote_id: {:?}", reply.get_ref())))
    }

    async fn cast_batch(&self, votes: Vec<Vote>) -> Result<Vec<ItemOutcome>, ApiError> {
        let wire: Vec<pb::Vote> = votes.iter().map(pb::Vote::from).collect();
        let summary = self
            .call(|server| {
                let wire = wire.clone();
                async move { server.votes.clone().cast_votes(tokio_stream::iter(wire)).await }
            })
            .await
            .map_err(to_api_error)?
            .into_inner();
        if summary.results.len() != votes.len() {
            return Err(ApiError::next_hop_broken(format!(
                "{} results for {} votes",
                summary.results.len(),
                votes.len()
            )));
        }
        Ok(summary.results.into_iter().map(outcome).collect())
    }
}

/// One vote's outcome as grpc-server reported it; a code outside the vocabulary, or an
/// acceptance without a vote_id, is the hop's fault.
fn outcome(result: pb::VoteResult) -> ItemOutcome {
    let broken = |message: &str| Refusal::new(ErrorCode::BadGateway, format!("grpc-server: {message}"));
    if result.accepted {
        return Uuid::try_parse(&result.vote_id).map_err(|_| broken("accepted without a vote_id"));
    }
    let Some(code) = ErrorCode::parse(&result.error_code) else {
        return Err(broken(&format!("unknown error code {:?}", result.error_code)));
    };
    let field = Some(result.error_field).filter(|field| !field.is_empty());
    Err(Refusal { code, field, message: result.error_message })
}

impl NextHop for GrpcHop {
    fn name(&self) -> &'static str {
        "grpc-server"
    }

    fn forward<'a>(&'a self, vote: &'a Vote) -> BoxFuture<'a, Result<Uuid, ApiError>> {
        Box::pin(self.cast(vote))
    }

    fn forward_batch(&self, votes: Vec<Vote>) -> BoxFuture<'_, Result<Vec<ItemOutcome>, ApiError>> {
        Box::pin(self.cast_batch(votes))
    }

    /// Ready while at least one grpc-server answers SERVING; also keeps the server list and
    /// each server's health current (the front asks every second).
    fn is_ready(&self) -> BoxFuture<'_, bool> {
        Box::pin(self.upstreams.refresh())
    }
}

/// Starts grpc-client; returns once it listens.
pub async fn launch(
    settings: FrontSettings,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let hop = GrpcHop::new(&settings)?;
    hop.upstreams.resolve_now().await;
    front::launch(&settings.front, Arc::new(hop), registry, shutdown).await
}
