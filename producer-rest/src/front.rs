//! rest-client: the shared Rocket front (`voteflow_http::front`) with [`RestHop`], a
//! pooled keep-alive HTTP/1.1 hop to rest-server. Upstream 4xx and 503 answers are relayed unchanged; an unreachable or
//! slow upstream is a 503 with Retry-After, never a hang.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus::Registry;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use voteflow_domain::{ItemOutcome, Vote, batch};
use voteflow_http::ApiError;
use voteflow_http::front::{self, NextHop};
use voteflow_service::process::Running;

use crate::settings::FrontSettings;

/// The most of an answer from rest-server read into memory. Its biggest answer, a batch
/// report, is ~100 bytes per vote; anything past this is a broken upstream, not a report.
const MAX_UPSTREAM_BODY: usize = 4 << 20;
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Forwards votes to rest-server's `POST /votes`.
///
/// hyper-util's pooled client rather than reqwest (which wraps the same client): reqwest
/// layers redirect-following and retry services on every request and re-parses the URL
/// twice per request to do so; under callgrind that was ~a fifth of rest-client's
/// instructions per vote (docs/benchmark.md, "Where the time goes").
pub struct RestHop {
    http: Client<HttpConnector, Full<Bytes>>,
    /// One permit per exchange with rest-server, as many as the pool keeps connections:
    /// past that, hyper-util opens a connection per extra request and closes it again when
    /// the pool is full, so under an open loop the front held hundreds of connections to
    /// rest-server (docs/decisions/0011-rest-client-pool.md).
    exchanges: Semaphore,
    timeout: Duration,
    votes_uri: Uri,
    batch_uri: Uri,
    ready_uri: Uri,
}

impl RestHop {
    pub fn new(settings: &FrontSettings) -> anyhow::Result<Self> {
        let server_url = &settings.front.server_url;
        let base = server_url.expose().trim_end_matches('/');
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(UPSTREAM_CONNECT_TIMEOUT));
        let http = Client::builder(TokioExecutor::new())
            // Without a timer the pool never expires idle connections.
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(settings.upstream_pool_size)
            .build(connector);
        let uri = |path: &str| -> anyhow::Result<Uri> {
            let uri: Uri = format!("{base}{path}")
                .parse()
                .map_err(|_| anyhow::anyhow!("REST_SERVER_URL is not a URL: {server_url}"))?;
            anyhow::ensure!(
                uri.scheme_str() == Some("http"),
                "REST_SERVER_URL must be an http:// URL, got {server_url}"
            );
            Ok(uri)
        };
        Ok(Self {
            http,
            exchanges: Semaphore::new(settings.upstream_pool_size),
            timeout: settings.front.upstream_timeout(),
            votes_uri: uri("/votes")?,
            batch_uri: uri("/votes/batch")?,
            ready_uri: uri("/readyz")?,
        })
    }

    /// One exchange with rest-server, bounded by the upstream timeout as a whole (waiting
    /// for a free exchange, connecting, sending and reading the answer): the status,
    /// Retry-After and body.
    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<RestServerReply, ApiError> {
        let unavailable = |why: String| ApiError::next_hop_unavailable(format!("rest-server: {why}"));
        let exchange = async {
            // Never closed, so acquiring only waits.
            let _exchange = self.exchanges.acquire().await.map_err(|error| unavailable(error.to_string()))?;
            let response =
                self.http.request(request).await.map_err(|error| unavailable(with_causes(anyhow::anyhow!(error))))?;
            let status = response.status();
            let retry_after =
                response.headers().get(RETRY_AFTER).and_then(|value| value.to_str().ok()).map(str::to_owned);
            let body = match Limited::new(response.into_body(), MAX_UPSTREAM_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(error) if error.is::<LengthLimitError>() => {
                    return Err(ApiError::next_hop_broken(format!(
                        "rest-server answered {status} with a body over {MAX_UPSTREAM_BODY} bytes"
                    )));
                }
                Err(error) => {
                    return Err(unavailable(format!("reading the answer: {}", with_causes(anyhow::anyhow!(error)))));
                }
            };
            Ok(RestServerReply { status, retry_after, body: String::from_utf8_lossy(&body).into_owned() })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(unavailable(format!("no answer within {} ms", self.timeout.as_millis()))))
    }

    /// Posts JSON to rest-server: `Ok` with the body when it answered `success`,
    /// otherwise the error to answer (its 4xx and 503 relayed unchanged).
    async fn post_json(
        &self,
        uri: &Uri,
        json: &impl serde::Serialize,
        success: StatusCode,
    ) -> Result<String, ApiError> {
        let body = serde_json::to_vec(json).map_err(ApiError::next_hop_broken)?;
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        request.headers_mut().insert(CONTENT_TYPE, JSON);
        let RestServerReply { status, retry_after, body } = self.exchange(request).await?;
        match status {
            status if status == success => Ok(body),
            status if status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE => {
                Err(ApiError::Relayed { status: status.as_u16(), body, retry_after })
            }
            status => Err(ApiError::next_hop_broken(format!("rest-server answered {status}: {body}"))),
        }
    }

    async fn post(&self, vote: &Vote) -> Result<Uuid, ApiError> {
        let body = self.post_json(&self.votes_uri, vote, StatusCode::ACCEPTED).await?;
        #[derive(serde::Deserialize)]
        struct AcceptedBody {
            vote_id: Uuid,
        }
        serde_json::from_str::<AcceptedBody>(&body)
            .map(|accepted| accepted.vote_id)
            .map_err(|_| ApiError::next_hop_broken(format!("202 without a vote_id: {body}")))
    }

    async fn post_batch(&self, votes: Vec<Vote>) -> Result<Vec<ItemOutcome>, ApiError> {
        let body = self.post_json(&self.batch_uri, &votes, StatusCode::OK).await?;
        batch::parse_report(&body, votes.len())
            .ok_or_else(|| ApiError::next_hop_broken(format!("unreadable batch report: {body}")))
    }
}

/// What rest-server answered.
struct RestServerReply {
    status: StatusCode,
    retry_after: Option<String>,
    body: String,
}

/// An error with its causes, "a: b: c" (anyhow's alternate form): hyper-util's own text
/// ("client error (Connect)") does not say what failed.
fn with_causes(error: anyhow::Error) -> String {
    format!("{error:#}")
}

impl NextHop for RestHop {
    fn name(&self) -> &'static str {
        "rest-server"
    }

    fn forward<'a>(&'a self, vote: &'a Vote) -> BoxFuture<'a, Result<Uuid, ApiError>> {
        Box::pin(self.post(vote))
    }

    fn forward_batch(&self, votes: Vec<Vote>) -> BoxFuture<'_, Result<Vec<ItemOutcome>, ApiError>> {
        Box::pin(self.post_batch(votes))
    }

    fn is_ready(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let mut request = Request::new(Full::default());
            *request.uri_mut() = self.ready_uri.clone();
            self.exchange(request).await.is_ok_and(|answer| answer.status.is_success())
        })
    }
}

/// Starts rest-client; returns once it listens.
pub async fn launch(
    settings: FrontSettings,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let hop = Arc::new(RestHop::new(&settings)?);
    front::launch(&settings.front, hop, registry, shutdown).await
}
