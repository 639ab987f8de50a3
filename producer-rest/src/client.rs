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
use voteflow_runtime::front::{self, NextHop};
use voteflow_runtime::http::{ApiError, Running};

use crate::settings::ClientSettings;

/// Forwards votes to rest-server's `POST /votes`.
pub struct RestHop {
    http: reqwest::Client,
    votes_url: String,
    ready_url: String,
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
            votes_url: format!("{base}/votes"),
            ready_url: format!("{base}/readyz"),
        })
    }

    async fn post(&self, vote: &Vote) -> Result<Uuid, ApiError> {
        let response = self
            .http
            .post(&self.votes_url)
            .json(&vote.to_json())
            .send()
            .await
            .map_err(|error| ApiError::NextHopUnavailable(format!("rest-server: {error}")))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response
            .text()
            .await
            .map_err(|error| ApiError::NextHopUnavailable(format!("rest-server: {error}")))?;
        match status {
            StatusCode::ACCEPTED => serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|json| {
                    json["vote_id"]
                        .as_str()
                        .and_then(|id| Uuid::try_parse(id).ok())
                })
                .ok_or_else(|| ApiError::NextHopBroken(format!("202 without a vote_id: {body}"))),
            status if status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE => {
                Err(ApiError::Relayed {
                    status: status.as_u16(),
                    body,
                    retry_after,
                })
            }
            status => Err(ApiError::NextHopBroken(format!(
                "rest-server answered {status}: {body}"
            ))),
        }
    }
}

impl NextHop for RestHop {
    fn name(&self) -> &'static str {
        "rest-server"
    }

    fn forward<'a>(&'a self, vote: &'a Vote) -> BoxFuture<'a, Result<Uuid, ApiError>> {
        Box::pin(self.post(vote))
    }

    fn is_ready(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            self.http
                .get(&self.ready_url)
                .send()
                .await
                .is_ok_and(|response| response.status().is_success())
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
