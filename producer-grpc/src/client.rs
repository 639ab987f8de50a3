//! grpc-client: the shared HTTP front with [`GrpcHop`]: one long-lived, multiplexed
//! HTTP/2 channel to grpc-server, connected lazily and reconnecting by itself when the
//! server restarts. A vote goes as `CastVote`, a batch as one `CastVotes` stream.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;
use voteflow_proto::Vote;
use voteflow_proto::pb::{self, vote_service_client::VoteServiceClient};
use voteflow_runtime::batch::{ItemError, ItemOutcome};
use voteflow_runtime::front::{self, NextHop};
use voteflow_runtime::http::{ApiError, Running};

use crate::settings::ClientSettings;
use crate::status::to_api_error;

/// Forwards votes to grpc-server over one channel.
pub struct GrpcHop {
    votes: VoteServiceClient<Channel>,
    health: HealthClient<Channel>,
}

impl GrpcHop {
    pub fn new(settings: &ClientSettings) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(settings.server_url.clone())?
            .connect_timeout(Duration::from_millis(500))
            .timeout(settings.upstream_timeout())
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
        Ok(Self { votes: VoteServiceClient::new(channel.clone()), health: HealthClient::new(channel) })
    }

    async fn cast(&self, vote: &Vote) -> Result<Uuid, ApiError> {
        let reply = self.votes.clone().cast_vote(pb::Vote::from(vote)).await.map_err(to_api_error)?;
        Uuid::try_parse(&reply.get_ref().vote_id)
            .map_err(|_| ApiError::NextHopBroken(format!("OK without a vote_id: {:?}", reply.get_ref())))
    }

    async fn cast_batch(&self, votes: Vec<Vote>) -> Result<Vec<ItemOutcome>, ApiError> {
        let wire: Vec<pb::Vote> = votes.iter().map(pb::Vote::from).collect();
        let summary = self.votes.clone().cast_votes(tokio_stream::iter(wire)).await.map_err(to_api_error)?.into_inner();
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

    fn is_ready(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let request = HealthCheckRequest { service: String::new() };
            self.health
                .clone()
                .check(request)
                .await
                .is_ok_and(|response| response.get_ref().status == ServingStatus::Serving as i32)
        })
    }
}

/// Starts grpc-client; returns once it listens.
pub async fn launch(
    settings: &ClientSettings,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let hop = Arc::new(GrpcHop::new(settings)?);
    front::launch(settings.listen, &settings.http, hop, registry, shutdown).await
}
