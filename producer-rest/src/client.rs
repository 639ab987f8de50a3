//! rest-client: the shared HTTP front with [`RestHop`], a pooled keep-alive HTTP/1.1 hop
//! to rest-server. Upstream 4xx and 503 answers are relayed unchanged; an unreachable or
//! slow upstream is a 503 with Retry-After, never a hang.

use std::sync::Arc;

use futures::future::BoxFuture;
use prometheus::Registry;
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use voteflow_proto::Vote;
use voteflow_runtime::batch::{self, ItemOutcome};
use voteflow_runtime::front::{self, NextHop};
use voteflow_runtime::http::{ApiError, Running};

use crate::settings::ClientSettings;

/// Forwards votes to rest-server's `POST /votes`.
pub struct RestHop {
    http: reqwest::Client,
    // Parsed once: reqwest parses a &str URL on every request (url + idna showed in
    // rest-client's profile).
    votes_url: reqwest::Url,
    batch_url: reqwest::Url,
    ready_url: reqwest::Url,
}

impl RestHop {
    pub fn new(settings: &ClientSettings) -> anyhow::Result<Self> {
        let base = settings.server_url.trim_end_matches('/');
        let http = reqwest::Client::builder()
            .timeout(settings.upstream_timeout())
            .connect_timeout(std::time::Duration::from_millis(500))
            .pool_max_idle_per_host(settings.upstream_pool_size)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            votes_url: reqwest::Url::parse(&format!("{base}/votes"))?,
            batch_url: reqwest::Url::parse(&format!("{base}/votes/batch"))?,
            ready_url: reqwest::Url::parse(&format!("{base}/readyz"))?,
        })
    }

    /// Posts JSON to rest-server: `Ok` with the body when it answered `success`,
    /// otherwise the error to answer (its 4xx and 503 relayed unchanged).
    async fn post_json(
        &self,
        url: &reqwest::Url,
        json: &impl serde::Serialize,
        success: StatusCode,
    ) -> Result<String, ApiError> {
        let response = self
            .http
            .post(url.clone())
            .json(json)
            .send()
            .await
            .map_err(|error| ApiError::NextHopUnavailable(format!("rest-server: {error}")))?;
        let status = response.status();
        let retry_after =
            response.headers().get("retry-after").and_then(|value| value.to_str().ok()).map(str::to_owned);
        let body =
            response.text().await.map_err(|error| ApiError::NextHopUnavailable(format!("rest-server: {error}")))?;
        match status {
            status if status == success => Ok(body),
            status if status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE => {
                Err(ApiError::Relayed { status: status.as_u16(), body, retry_after })
            }
            status => Err(ApiError::NextHopBroken(format!("rest-server answered {status}: {body}"))),
        }
    }

    async fn post(&self, vote: &Vote) -> Result<Uuid, ApiError> {
        let body = self.post_json(&self.votes_url, vote, StatusCode::ACCEPTED).await?;
        #[derive(serde::Deserialize)]
        struct AcceptedBody {
            vote_id: Uuid,
        }
        serde_json::from_str::<AcceptedBody>(&body)
            .map(|accepted| accepted.vote_id)
            .map_err(|_| ApiError::NextHopBroken(format!("202 without a vote_id: {body}")))
    }

    async fn post_batch(&self, votes: Vec<Vote>) -> Result<Vec<ItemOutcome>, ApiError> {
        let body = self.post_json(&self.batch_url, &votes, StatusCode::OK).await?;
        batch::parse_report(&body, votes.len())
            .ok_or_else(|| ApiError::NextHopBroken(format!("unreadable batch report: {body}")))
    }
}

impl NextHop for RestHop {
    fn name(&self) -> &'static str {
        "rest-server"
    }

    fn forward<'a>(&'a self, vote: &'a Vote) -> BoxFuture<'a, Result<Uuid, ApiError>> {
        Box::pin(self.post(vote))
    }

    fn forward_batch<'a>(&'a self, votes: Vec<Vote>) -> BoxFuture<'a, Result<Vec<ItemOutcome>, ApiError>> {
        Box::pin(self.post_batch(votes))
    }

    fn is_ready(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            self.http.get(self.ready_url.clone()).send().await.is_ok_and(|response| response.status().is_success())
        })
    }
}

/// Starts rest-client; returns once it listens.
pub async fn launch(
    settings: &ClientSettings,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let hop = Arc::new(RestHop::new(settings)?);
    front::launch(settings.listen, &settings.http, hop, registry, shutdown).await
}
