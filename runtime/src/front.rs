//! The HTTP front of a producer pair (rest-client, and grpc-client beside it): accepts
//! `POST /votes` JSON, validates it, and forwards the vote to the pair's server through a
//! [`NextHop`]. Both fronts are this code; they differ only in the hop behind them.
//!
//! `POST /votes/batch` takes a JSON array; invalid votes are rejected here, the valid
//! ones are forwarded as one batch, and the answer has one outcome per vote, in order.
//! `POST /` is a vote too (the course's Locust traffic posts there), and every vote route
//! is answered under each of the front's own prefixes (`/rest/votes`, `/rest`, `/rest/`):
//! the ingress forwards paths unchanged (k8s/routes.yaml), so no controller rewrites them.
//!
//! Guarantee: the front answers 202 only when its hop reported the vote accepted (which
//! the server does only after Kafka acknowledged it); a failed or timed-out hop is a 503
//! with Retry-After. The front assigns a vote_id before forwarding, so a retry is the same vote.
//!
//! Served by hyper directly, not Rocket (rest-server stays on Rocket): with the same
//! parsing and hop, Rocket's request handling was a third of a front's CPU per vote
//! (README, "What Rocket cost the fronts"). Errors, routes, metrics and the graceful
//! drain answer as the Rocket services' do.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use voteflow_proto::Vote;

use crate::admin::{probe, reply};
use crate::batch::{self, ItemOutcome};
use crate::health::Readiness;
use crate::http::body::{check_json_headers, parse_vote};
use crate::http::{ApiError, BodyLimits, HttpSettings, RequestMetrics, Running};

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
type Answer = Response<Full<Bytes>>;

/// Everything a request of the front needs.
struct Front {
    hop: Hop,
    prefixes: Vec<String>,
    limits: BodyLimits,
    registry: Registry,
    readiness: Readiness,
    metrics: RequestMetrics,
}

impl Front {
    async fn answer(self: Arc<Self>, request: Request<Incoming>) -> Result<Answer, Infallible> {
        let started = Instant::now();
        let (route, answer) = match (request.method(), vote_route(request.uri().path(), &self.prefixes)) {
            (&Method::POST, Some(VoteRoute::One)) => ("cast_vote", self.cast_vote(request).await),
            (&Method::POST, Some(VoteRoute::Batch)) => ("cast_batch", self.cast_batch(request).await),
            (&Method::GET, _) => match probe(request.uri().path(), &self.registry, &self.readiness) {
                Some((route, answer)) => (route, Ok(answer)),
                None => ("unmatched", Err(ApiError::NOT_FOUND)),
            },
            _ => ("unmatched", Err(ApiError::NOT_FOUND)),
        };
        let mut answer = answer.unwrap_or_else(ApiError::into_response);
        answer.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        self.metrics.observe(route, answer.status().as_u16(), started);
        Ok(answer)
    }

    async fn cast_vote(&self, request: Request<Incoming>) -> Result<Answer, ApiError> {
        let body = read_json_body(request, self.limits.vote_bytes).await?;
        let vote = parse_vote(&body)?;
        let vote_id = self.hop.forward(&vote).await?;
        Ok(reply(StatusCode::ACCEPTED, "application/json", format!(r#"{{"vote_id":"{vote_id}"}}"#)))
    }

    async fn cast_batch(&self, request: Request<Incoming>) -> Result<Answer, ApiError> {
        let body = read_json_body(request, self.limits.batch_bytes).await?;
        let parsed = batch::parse_batch(&body, self.limits.batch_votes)?;
        let valid: Vec<Vote> = parsed.iter().filter_map(|item| item.as_ref().ok().cloned()).collect();
        let forwarded = if valid.is_empty() { Vec::new() } else { self.hop.forward_batch(valid).await? };
        Ok(reply(StatusCode::OK, "application/json", batch::report(&batch::merge(parsed, forwarded))))
    }
}

/// The two vote routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VoteRoute {
    One,
    Batch,
}

/// Which vote route `path` is, once one of the front's own prefixes is taken off it:
/// `/votes` and `/` are one vote, `/votes/batch` a batch; a prefix alone is `/` under it.
fn vote_route(path: &str, prefixes: &[String]) -> Option<VoteRoute> {
    let local = prefixes
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix.as_str()).filter(|rest| rest.is_empty() || rest.starts_with('/')))
        .unwrap_or(path);
    match local {
        "" | "/" | "/votes" => Some(VoteRoute::One),
        "/votes/batch" => Some(VoteRoute::Batch),
        _ => None,
    }
}

/// Parses one path prefix a front answers as its own (`/rest`): a `/` and at least one
/// more character, no trailing `/`.
pub fn parse_route_prefix(text: &str) -> Result<String, String> {
    let valid = text.len() > 1
        && text.starts_with('/')
        && !text.ends_with('/')
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!("a route prefix is /name (letters, digits, - _ . /, no trailing /), got {text:?}"))
    }
}

/// Reads the whole body, up to `limit` bytes, after the header checks rest-server's body
/// guards make too.
async fn read_json_body(request: Request<Incoming>, limit: u64) -> Result<Bytes, ApiError> {
    let content_type = request.headers().get(CONTENT_TYPE).and_then(|value| value.to_str().ok());
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|len| len.to_str().ok()?.parse::<u64>().ok());
    check_json_headers(content_type.is_some_and(is_json), declared, limit)?;
    let limited = Limited::new(request.into_body(), usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(ApiError::BodyTooLarge { limit }),
        Err(error) => Err(ApiError::MalformedJson(format!("cannot read body: {error}"))),
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`), in any case.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Serves a front on `listen` until `shutdown`, forwarding to `hop`; it answers the vote
/// routes bare and under each of `prefixes`.
pub async fn launch(
    listen: SocketAddr,
    settings: &HttpSettings,
    prefixes: &[String],
    hop: Hop,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let readiness = Readiness::with_checks(&[hop.name()]);
    tokio::spawn(watch_hop(hop.clone(), readiness.clone(), shutdown.clone()));
    let metrics = RequestMetrics::register(&registry)?;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("Failed to listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let limits = BodyLimits {
        vote_bytes: settings.max_body_bytes,
        batch_bytes: settings.max_batch_body_bytes,
        batch_votes: settings.batch_max_votes,
    };
    let front = Arc::new(Front { hop, prefixes: prefixes.to_vec(), limits, registry, readiness, metrics });
    let grace = Duration::from_secs(settings.shutdown_grace_secs.into());
    let connection_slots = Arc::new(Semaphore::new(settings.max_connections as usize));
    let stopped = tokio::spawn(serve(listener, front, connection_slots, shutdown, grace));
    Ok(Running { addr, stopped })
}

/// Accepts connections until `shutdown`; then readiness goes false, the listener closes,
/// idle keep-alive connections close, and requests in flight get `grace` to finish.
async fn serve(
    listener: TcpListener,
    front: Arc<Front>,
    connection_slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    let connections = GracefulShutdown::new();
    loop {
        let (slot, stream) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = accept_within(&listener, &connection_slots) => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(%error, "front cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let front = front.clone();
        let service = service_fn(move |request| front.clone().answer(request));
        let connection = http1::Builder::new().timer(TokioTimer::new()).serve_connection(TokioIo::new(stream), service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "front connection ended with an error");
            }
            drop(slot);
        });
    }
    front.readiness.begin_shutdown();
    drop(listener);
    tokio::select! {
        () = connections.shutdown() => {},
        () = tokio::time::sleep(grace) => tracing::warn!(grace_secs = grace.as_secs(), "requests still in flight after the grace period"),
    }
    Ok(())
}

/// Waits for a free connection slot, then for a connection: with every slot taken, new
/// clients queue in the kernel's listen backlog instead of costing the front memory.
async fn accept_within(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(OwnedSemaphorePermit, TcpStream)> {
    let slot = slots.clone().acquire_owned().await.expect("the front never closes its connection slots");
    let (stream, _) = listener.accept().await?;
    Ok((slot, stream))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts every vote after `delay`.
    struct SlowYes {
        delay: Duration,
    }

    impl NextHop for SlowYes {
        fn name(&self) -> &'static str {
            "stand-in"
        }

        fn forward<'a>(&'a self, _vote: &'a Vote) -> BoxFuture<'a, Result<Uuid, ApiError>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                Ok(Uuid::now_v7())
            })
        }

        fn forward_batch<'a>(&'a self, votes: Vec<Vote>) -> BoxFuture<'a, Result<Vec<ItemOutcome>, ApiError>> {
            Box::pin(async move { Ok(votes.iter().map(|vote| Ok(vote.vote_id())).collect()) })
        }

        fn is_ready(&self) -> BoxFuture<'_, bool> {
            Box::pin(async { true })
        }
    }

    const VOTE: &str = r#"{"band": "Blur", "album": "Parklife", "year": 1994, "rank": 8}"#;

    async fn start(delay: Duration, grace_secs: u32) -> (Running, CancellationToken, Registry) {
        start_with_connections(delay, grace_secs, 8).await
    }

    async fn start_with_connections(
        delay: Duration,
        grace_secs: u32,
        max_connections: u32,
    ) -> (Running, CancellationToken, Registry) {
        let settings = HttpSettings {
            max_body_bytes: 256,
            max_batch_body_bytes: 1024,
            batch_max_votes: 10,
            shutdown_grace_secs: grace_secs,
            max_connections,
        };
        let (registry, shutdown) = (Registry::new(), CancellationToken::new());
        let hop = Arc::new(SlowYes { delay });
        let prefixes = ["/rest".to_owned(), "/rust".to_owned()];
        let running =
            launch("127.0.0.1:0".parse().unwrap(), &settings, &prefixes, hop, registry.clone(), shutdown.clone())
                .await
                .expect("a front");
        (running, shutdown, registry)
    }

    #[tokio::test]
    async fn answers_votes_errors_and_probes_as_the_rocket_services_do() {
        let (running, shutdown, _registry) = start(Duration::ZERO, 1).await;
        let url = |path: &str| format!("http://{}{path}", running.addr);
        let http = reqwest::Client::new();
        let post = |path: &str, content_type: &str, body: String| {
            http.post(url(path)).header("content-type", content_type).body(body).send()
        };
        let json = |response: reqwest::Response| async move {
            let status = response.status().as_u16();
            let nosniff = response.headers().get("x-content-type-options").cloned();
            let body: serde_json::Value = response.json().await.expect("a JSON body");
            assert_eq!(nosniff.as_ref().and_then(|value| value.to_str().ok()), Some("nosniff"));
            (status, body)
        };

        let (status, body) = json(post("/votes", "application/json; charset=utf-8", VOTE.into()).await.unwrap()).await;
        assert_eq!(status, 202, "{body}");
        assert!(Uuid::try_parse(body["vote_id"].as_str().unwrap()).is_ok(), "{body}");
        for path in ["/", "/rest", "/rest/", "/rest/votes", "/rust/votes"] {
            let (status, body) = json(post(path, "application/json", VOTE.into()).await.unwrap()).await;
            assert_eq!(status, 202, "POST {path}: {body}");
        }

        let batch = format!(r#"[{VOTE}, {{"band": ""}}]"#);
        let (status, body) = json(post("/votes/batch", "application/json", batch).await.unwrap()).await;
        assert_eq!((status, body["accepted"].as_u64(), body["rejected"].as_u64()), (200, Some(1), Some(1)), "{body}");

        let cases = [
            (post("/votes", "text/plain", VOTE.into()).await, 415, "unsupported_media_type"),
            (post("/votes", "application/json", "x".repeat(257)).await, 413, "body_too_large"),
            (post("/votes", "application/json", "{\"band\": ".into()).await, 400, "malformed_json"),
            (post("/votes", "application/json", r#"{"band": "Blur"}"#.into()).await, 422, "missing_field"),
            (post("/nowhere", "application/json", VOTE.into()).await, 404, "not_found"),
            (post("/grpc/votes", "application/json", VOTE.into()).await, 404, "not_found"),
            (post("/restx", "application/json", VOTE.into()).await, 404, "not_found"),
            (http.get(url("/votes")).send().await, 404, "not_found"),
        ];
        for (response, want_status, want_error) in cases {
            let (status, body) = json(response.unwrap()).await;
            assert_eq!((status, body["error"].as_str()), (want_status, Some(want_error)), "{body}");
        }

        let (status, body) = json(http.get(url("/healthz")).send().await.unwrap()).await;
        assert_eq!((status, body["live"].as_bool()), (200, Some(true)));
        let metrics = http.get(url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains(r#"voteflow_http_requests_total{route="cast_vote",status="202"} 6"#), "{metrics}");
        assert!(metrics.contains(r#"voteflow_http_requests_total{route="unmatched",status="404"} 4"#), "{metrics}");
        shutdown.cancel();
        running.stopped.await.unwrap().unwrap();
    }

    #[test]
    fn votes_are_answered_bare_and_under_the_fronts_own_prefixes_only() {
        let prefixes = ["/rest".to_owned(), "/rust".to_owned()];
        let cases = [
            ("/votes", Some(VoteRoute::One)),
            ("/", Some(VoteRoute::One)),
            ("/votes/batch", Some(VoteRoute::Batch)),
            ("/rest/votes", Some(VoteRoute::One)),
            ("/rest/votes/batch", Some(VoteRoute::Batch)),
            ("/rest", Some(VoteRoute::One)),
            ("/rest/", Some(VoteRoute::One)),
            ("/rust/votes", Some(VoteRoute::One)),
            ("/rust", Some(VoteRoute::One)),
            ("/restx", None),
            ("/restx/votes", None),
            ("/rest/nowhere", None),
            ("/rest/rest/votes", None),
            ("/grpc/votes", None),
            ("/votes/", None),
            ("/votesx", None),
            ("/REST/votes", None),
        ];
        for (path, want) in cases {
            assert_eq!(vote_route(path, &prefixes), want, "{path}");
        }
        assert_eq!(vote_route("/rest/votes", &[]), None, "a front without prefixes answers bare paths only");
        assert!(parse_route_prefix("/grpc").is_ok());
        for bad in ["", "/", "grpc", "/grpc/", "/g rpc"] {
            assert!(parse_route_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_vote_in_flight_at_shutdown_is_answered_and_then_the_front_stops_without_waiting_out_its_grace() {
        let (running, shutdown, _registry) = start(Duration::from_millis(400), 30).await;
        let http = reqwest::Client::new();
        let url = format!("http://{}/votes", running.addr);
        // An idle keep-alive connection, which must not hold the stop for the grace period.
        let idle = http.get(format!("http://{}/healthz", running.addr)).send().await.unwrap();
        assert_eq!(idle.status(), 200);
        let in_flight = tokio::spawn(http.post(&url).header("content-type", "application/json").body(VOTE).send());
        tokio::time::sleep(Duration::from_millis(100)).await;

        let stopping = Instant::now();
        shutdown.cancel();
        let answer = in_flight.await.unwrap().expect("the vote in flight is answered");
        running.stopped.await.unwrap().unwrap();

        assert_eq!(answer.status(), 202);
        assert!(stopping.elapsed() < Duration::from_secs(5), "stopped after {:?}", stopping.elapsed());
        let refused =
            reqwest::Client::new().post(&url).header("content-type", "application/json").body(VOTE).send().await;
        assert!(refused.is_err(), "a new connection after the stop: {refused:?}");
    }

    #[tokio::test]
    async fn a_connection_beyond_max_connections_is_served_only_once_another_closes() {
        let (running, shutdown, _registry) = start_with_connections(Duration::ZERO, 1, 1).await;
        let healthz = format!("http://{}/healthz", running.addr);
        let first = reqwest::Client::new();
        assert_eq!(first.get(&healthz).send().await.unwrap().status(), 200);

        // `first` keeps its connection open (keep-alive), so the only slot is taken.
        let second = tokio::spawn(reqwest::Client::new().get(&healthz).send());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!second.is_finished(), "a second connection was served while the first held the only slot");

        drop(first);
        let answer = tokio::time::timeout(Duration::from_secs(5), second).await.expect("served after the first closed");
        assert_eq!(answer.unwrap().unwrap().status(), 200);
        shutdown.cancel();
        running.stopped.await.unwrap().unwrap();
    }
}
