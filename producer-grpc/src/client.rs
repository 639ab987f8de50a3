//! grpc-client: the shared HTTP front with [`GrpcHop`], which spreads calls over every
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
use voteflow_proto::Vote;
use voteflow_proto::pb;
use voteflow_runtime::batch::{ItemError, ItemOutcome};
use voteflow_runtime::front::{self, NextHop};
use voteflow_runtime::http::{ApiError, Running};

use crate::settings::ClientSettings;
use crate::status::to_api_error;
use crate::upstreams::Upstreams;

/// Forwards votes to the grpc-servers.
pub struct GrpcHop {
    upstreams: Upstreams,
    timeout: Duration,
}

impl GrpcHop {
    pub fn new(settings: &ClientSettings) -> anyhow::Result<Self> {
        let timeout = settings.upstream_timeout();
        Ok(Self { upstreams: Upstreams::new(&settings.server_url, timeout)?, timeout })
    }

    /// One call, on the next server while one is not reached, all within the upstream timeout.
    async fn call<T, F, Fut>(&self, attempt: F) -> Result<T, Status>
    where
        F: FnMut(Arc<crate::upstreams::Server>) -> Fut,
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
            .map_err(|_| ApiError::NextHopBroken(format!("OK without a vote_id: {:?}", reply.get_ref())))
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
            return Err(ApiError::NextHopBroken(format!(
                "{} results for {} votes",
                summary.results.len(),
                votes.len()
            )));
        }
        Ok(summary
            .results
            .into_iter()
            .map(|result| {
                if result.accepted {
                    Uuid::try_parse(&result.vote_id).map_err(|_| ItemError {
                        error: "bad_gateway".into(),
                        field: None,
                        message: "accepted without a vote_id".into(),
                    })
                } else {
                    Err(ItemError {
                        error: result.error_code,
                        field: Some(result.error_field).filter(|field| !field.is_empty()),
                        message: result.error_message,
                    })
                }
            })
            .collect())
    }
}

impl NextHop for GrpcHop {
    fn name(&self) -> &'static str {
        "grpc-server"
    }

    fn forward<'a>(&'a self, vote: &'a Vote) -> BoxFuture<'a, Result<Uuid, ApiError>> {
        Box::pin(self.cast(vote))
    }

    fn forward_batch<'a>(&'a self, votes: Vec<Vote>) -> BoxFuture<'a, Result<Vec<ItemOutcome>, ApiError>> {
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
    settings: &ClientSettings,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let hop = GrpcHop::new(settings)?;
    hop.upstreams.resolve_now().await;
    front::launch(settings.listen, &settings.http, &settings.route_prefixes, Arc::new(hop), registry, shutdown).await
}
