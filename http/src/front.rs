//! The HTTP front of a producer pair (rest-client, and grpc-client beside it), on Rocket:
//! accepts `POST /votes` JSON, validates it, and forwards the vote to the pair's server
//! through a [`NextHop`]. Both fronts are this code; they differ only in the hop behind them.
//!
//! `POST /votes/batch` takes a JSON array; invalid votes are refused here, the valid ones
//! are forwarded as one batch, and the answer has one outcome per vote, in order.
//! `POST /` is a vote too (the course's Locust traffic posts there), and every vote route
//! is answered under each of the front's own prefixes (`/rest/votes`, `/rest`, `/rest/`):
//! the ingress forwards paths unchanged (k8s/routes.yaml), so no controller rewrites them.
//!
//! Guarantee: the front answers 202 only when its hop reported the vote accepted (which
//! the server does only after Kafka acknowledged it); a failed or timed-out hop is a 503
//! with Retry-After. The vote_id is fixed here, before forwarding, so a retry is the same vote.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus::Registry;
use rocket::{Route, State, post, routes};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use voteflow_domain::{ItemOutcome, Vote, batch};
use voteflow_service::health::{self, Readiness};
use voteflow_service::process::Running;

use crate::answer::{Accepted, BatchReport};
use crate::body::{BatchBody, VoteBody};
use crate::error::ApiError;
use crate::server;
use crate::settings::FrontArgs;

/// How often a front asks its hop whether it is ready.
const HOP_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The server a front forwards votes to.
pub trait NextHop: Send + Sync + 'static {
    /// Name of the readiness check for this hop, e.g. `rest-server`.
    fn name(&self) -> &'static str;
    /// Forwards one validated vote; `Ok` carries the vote_id the server accepted.
    fn forward<'a>(&'a self, vote: &'a Vote) -> BoxFuture<'a, Result<Uuid, ApiError>>;
    /// Forwards a batch of validated votes; one outcome per vote, in order.
    fn forward_batch(&self, votes: Vec<Vote>) -> BoxFuture<'_, Result<Vec<ItemOutcome>, ApiError>>;
    /// Whether the server answers its readiness check.
    fn is_ready(&self) -> BoxFuture<'_, bool>;
}

/// The hop behind the front, as Rocket state.
struct Hop(Arc<dyn NextHop>);

#[post("/votes", data = "<body>")]
async fn cast_vote(body: Result<VoteBody, ApiError>, hop: &State<Hop>) -> Result<Accepted, ApiError> {
    let VoteBody(vote, _admitted) = body?;
    Ok(Accepted(hop.0.forward(&vote).await?))
}

/// `POST /` (and a bare prefix): the same vote route; its metrics label is `cast_vote`.
#[post("/", data = "<body>")]
async fn cast_vote_at_root(body: Result<VoteBody, ApiError>, hop: &State<Hop>) -> Result<Accepted, ApiError> {
    cast_vote(body, hop).await
}

#[post("/votes/batch", data = "<body>")]
async fn cast_batch(body: Result<BatchBody, ApiError>, hop: &State<Hop>) -> Result<BatchReport, ApiError> {
    let BatchBody(parsed, _admitted) = body?;
    let valid = batch::valid(&parsed);
    let forwarded = if valid.is_empty() { Vec::new() } else { hop.0.forward_batch(valid).await? };
    Ok(BatchReport(batch::merge(parsed, forwarded)))
}

/// The vote routes, as mounted at `/` and at each prefix.
fn vote_routes() -> Vec<Route> {
    let mut routes = routes![cast_vote, cast_vote_at_root, cast_batch];
    for route in &mut routes {
        if route.name.as_deref() == Some("cast_vote_at_root") {
            route.name = Some("cast_vote".into());
        }
    }
    routes
}

/// Serves a front until `shutdown`, forwarding to `hop`; it answers the vote routes bare
/// and under each of its route prefixes, and is ready while the hop is.
pub async fn launch(
    settings: &FrontArgs,
    hop: Arc<dyn NextHop>,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let readiness = Readiness::with_checks(&[hop.name()]);
    let watched = hop.clone();
    tokio::spawn(health::watch(
        readiness.clone(),
        hop.name(),
        HOP_CHECK_EVERY,
        move || {
            let hop = watched.clone();
            async move { hop.is_ready().await }
        },
        shutdown.clone(),
    ));
    tracing::info!(upstream = %settings.server_url, hop = hop.name(), "front forwards to its next hop");
    let config = server::rocket_config(settings.listen, settings.http.shutdown_grace_secs);
    let mut rocket = rocket::custom(config).manage(Hop(hop)).mount("/", vote_routes());
    for prefix in &settings.route_prefixes {
        rocket = rocket.mount(prefix.as_str(), vote_routes());
    }
    let rocket = server::with_common(rocket, registry, readiness.clone(), &settings.http)?;
    server::launch(rocket, readiness, shutdown, None).await
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use voteflow_domain::{ErrorCode, Refusal};

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

        fn forward_batch(&self, votes: Vec<Vote>) -> BoxFuture<'_, Result<Vec<ItemOutcome>, ApiError>> {
            Box::pin(async move {
                Ok(votes
                    .iter()
                    .map(|vote| {
                        if vote.band() == "Refused" {
                            Err(Refusal::new(ErrorCode::KafkaUnavailable, "not now"))
                        } else {
                            Ok(vote.vote_id())
                        }
                    })
                    .collect())
            })
        }

        fn is_ready(&self) -> BoxFuture<'_, bool> {
            Box::pin(async { true })
        }
    }

    const VOTE: &str = r#"{"band": "Blur", "album": "Parklife", "year": 1994, "rank": 8}"#;

    fn settings(grace_secs: u32, max_requests_in_flight: usize) -> FrontArgs {
        settings_with(grace_secs, max_requests_in_flight, &[])
    }

    /// The test settings, with `more` flags given instead of (or besides) the defaults.
    fn settings_with(grace_secs: u32, max_requests_in_flight: usize, more: &[&str]) -> FrontArgs {
        #[derive(clap::Parser)]
        struct Front {
            #[command(flatten)]
            front: FrontArgs,
        }
        let flag = |arg: &str| arg.split('=').next().unwrap_or_default().to_owned();
        let overridden: Vec<String> = more.iter().map(|arg| flag(arg)).collect();
        let parsed = <Front as clap::Parser>::try_parse_from(
            [
                "front".to_owned(),
                "--listen=127.0.0.1:0".to_owned(),
                "--server-url=http://127.0.0.1:1".to_owned(),
                "--route-prefixes=/rest,/rust".to_owned(),
                "--max-body-bytes=256".to_owned(),
                "--max-batch-body-bytes=1024".to_owned(),
                "--batch-max-votes=10".to_owned(),
                format!("--shutdown-grace-secs={grace_secs}"),
                format!("--max-requests-in-flight={max_requests_in_flight}"),
            ]
            .into_iter()
            .filter(|arg| !overridden.contains(&flag(arg)))
            .chain(more.iter().map(|arg| arg.to_string())),
        );
        parsed.expect("front settings").front
    }

    async fn start(delay: Duration, settings: &FrontArgs) -> (Running, CancellationToken) {
        let shutdown = CancellationToken::new();
        let hop = Arc::new(SlowYes { delay });
        let running = launch(settings, hop, Registry::new(), shutdown.clone()).await.expect("a front");
        (running, shutdown)
    }

    async fn json(response: reqwest::Response) -> (u16, serde_json::Value) {
        let status = response.status().as_u16();
        let nosniff = response.headers().get("x-content-type-options").cloned();
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        assert_eq!(nosniff.as_ref().and_then(|value| value.to_str().ok()), Some("nosniff"));
        (status, body)
    }

    #[tokio::test]
    async fn answers_votes_errors_and_probes_bare_and_under_its_own_prefixes_only() {
        let http_settings = settings(1, 64);
        let (running, shutdown) = start(Duration::ZERO, &http_settings).await;
        let url = |path: &str| format!("http://{}{path}", running.addr);
        let http = reqwest::Client::new();
        let post = |path: &str, content_type: &str, body: String| {
            http.post(url(path)).header("content-type", content_type).body(body).send()
        };

        let (status, body) = json(post("/votes", "application/json; charset=utf-8", VOTE.into()).await.unwrap()).await;
        assert_eq!(status, 202, "{body}");
        assert!(Uuid::try_parse(body["vote_id"].as_str().unwrap()).is_ok(), "{body}");
        for path in ["/", "/rest", "/rest/", "/rest/votes", "/rust/votes", "/rust"] {
            let (status, body) = json(post(path, "application/json", VOTE.into()).await.unwrap()).await;
            assert_eq!(status, 202, "POST {path}: {body}");
        }

        let batch = format!(r#"[{VOTE}, {}, {}]"#, VOTE.replace("Blur", ""), VOTE.replace("Blur", "Refused"));
        for path in ["/votes/batch", "/rest/votes/batch"] {
            let (status, body) = json(post(path, "application/json", batch.clone()).await.unwrap()).await;
            assert_eq!(
                (status, body["accepted"].as_u64(), body["rejected"].as_u64()),
                (200, Some(1), Some(2)),
                "{body}"
            );
            assert_eq!(body["results"][1]["field"], "band", "{body}");
            assert_eq!(body["results"][2]["error"], "kafka_unavailable", "the hop's outcome in its place: {body}");
        }

        let cases = [
            (post("/votes", "text/plain", VOTE.into()).await, 415, "unsupported_media_type"),
            (post("/votes", "application/json", "x".repeat(257)).await, 413, "body_too_large"),
            (post("/votes", "application/json", "{\"band\": ".into()).await, 400, "malformed_json"),
            (post("/votes", "application/json", r#"{"band": "Blur"}"#.into()).await, 422, "missing_field"),
            (post("/nowhere", "application/json", VOTE.into()).await, 404, "not_found"),
            (post("/grpc/votes", "application/json", VOTE.into()).await, 404, "not_found"),
            (post("/restx", "application/json", VOTE.into()).await, 404, "not_found"),
            (post("/rest/rest/votes", "application/json", VOTE.into()).await, 404, "not_found"),
            (post("/REST/votes", "application/json", VOTE.into()).await, 404, "not_found"),
            (post("/votesx", "application/json", VOTE.into()).await, 404, "not_found"),
            (http.get(url("/votes")).send().await, 404, "not_found"),
        ];
        for (response, want_status, want_error) in cases {
            let (status, body) = json(response.unwrap()).await;
            assert_eq!((status, body["error"].as_str()), (want_status, Some(want_error)), "{body}");
        }

        let (status, body) = json(http.get(url("/healthz")).send().await.unwrap()).await;
        assert_eq!((status, body["live"].as_bool()), (200, Some(true)));
        // The stand-in hop is ready, so readiness turns true once its first check ran.
        let ready_by = Instant::now() + HOP_CHECK_EVERY + Duration::from_secs(2);
        let ready = loop {
            let status = http.get(url("/readyz")).send().await.unwrap().status().as_u16();
            if status == 200 || Instant::now() > ready_by {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(ready, 200, "a front whose hop is ready is ready");
        let metrics = http.get(url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains(r#"voteflow_http_requests_total{route="cast_vote",status="202"} 7"#), "{metrics}");
        assert!(metrics.contains(r#"voteflow_http_requests_total{route="cast_batch",status="200"} 2"#), "{metrics}");
        assert!(metrics.contains(r#"voteflow_http_requests_total{route="unmatched",status="404"} 7"#), "{metrics}");
        shutdown.cancel();
        running.stopped.await.unwrap().unwrap();
    }

    /// Rocket waits out the whole grace period when anything is open at shutdown
    /// (docs/decisions/0001), so the stop is timed against grace + mercy.
    #[tokio::test]
    async fn a_vote_in_flight_at_shutdown_is_answered_and_then_the_front_stops_within_its_grace() {
        let http_settings = settings(2, 64);
        let (running, shutdown) = start(Duration::from_millis(400), &http_settings).await;
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
        let bound =
            Duration::from_secs(u64::from(http_settings.http.shutdown_grace_secs) + crate::settings::MERCY_SECS + 1);
        assert!(stopping.elapsed() < bound, "stopped after {:?}", stopping.elapsed());
        let refused =
            reqwest::Client::new().post(&url).header("content-type", "application/json").body(VOTE).send().await;
        assert!(refused.is_err(), "a new connection after the stop: {refused:?}");
    }

    #[tokio::test]
    async fn a_request_beyond_max_requests_in_flight_is_shed_with_retry_after() {
        let http_settings = settings(1, 1);
        let (running, shutdown) = start(Duration::from_millis(600), &http_settings).await;
        let url = format!("http://{}/votes", running.addr);
        let post = || reqwest::Client::new().post(&url).header("content-type", "application/json").body(VOTE).send();
        let first = tokio::spawn(post());
        tokio::time::sleep(Duration::from_millis(200)).await;

        let shed = post().await.unwrap();
        let retry_after = shed.headers().get("retry-after").cloned();
        let (status, body) = json(shed).await;

        assert_eq!((status, body["error"].as_str()), (503, Some("overloaded")), "{body}");
        assert_eq!(retry_after.as_ref().and_then(|value| value.to_str().ok()), Some("1"));
        assert_eq!(first.await.unwrap().unwrap().status(), 202, "the vote in flight is served");
        assert_eq!(post().await.unwrap().status(), 202, "a slot is free again once it was answered");
        shutdown.cancel();
        running.stopped.await.unwrap().unwrap();
    }

    /// Sends `request` on `connection` and reads one answer: its status and JSON body.
    async fn exchange(connection: &mut tokio::net::TcpStream, request: &[u8]) -> (u16, serde_json::Value) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        connection.write_all(request).await.expect("the request is sent");
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let read = connection.read(&mut chunk).await.expect("an answer");
            assert!(read > 0, "the connection closed after {:?}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&seen).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
            let length: usize = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().to_owned()))
                .and_then(|n| n.parse().ok())
                .expect("answers carry a Content-Length");
            if body.len() >= length {
                let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status line");
                return (status, serde_json::from_str(&body[..length]).expect("a JSON body"));
            }
        }
    }

    /// Without the body being read to its end the front answered 413 and closed while the
    /// client (or nginx in front of it) was still sending, which nginx reported as 503.
    /// The bodies are far larger than what hyper itself reads past an unread body.
    #[tokio::test]
    async fn an_over_limit_body_is_answered_413_on_a_connection_that_stays_open() {
        let http_settings = settings_with(1, 64, &["--max-batch-body-bytes=1048576"]);
        let (running, shutdown) = start(Duration::ZERO, &http_settings).await;
        let mut connection = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        let post = |headers: &str, body: &str| {
            format!("POST /votes HTTP/1.1\r\nHost: front\r\nContent-Type: application/json\r\n{headers}\r\n{body}")
        };
        let big = format!("{{\"band\": \"{}\"}}", "x".repeat(600_000));
        let chunked = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());

        let declared =
            exchange(&mut connection, post(&format!("Content-Length: {}\r\n", big.len()), &big).as_bytes()).await;
        let streamed = exchange(&mut connection, post("Transfer-Encoding: chunked\r\n", &chunked).as_bytes()).await;
        let wrong_type = exchange(
            &mut connection,
            post(&format!("Content-Length: {}\r\n", big.len()), &big)
                .replace("application/json", "text/plain")
                .as_bytes(),
        )
        .await;
        let after =
            exchange(&mut connection, post(&format!("Content-Length: {}\r\n", VOTE.len()), VOTE).as_bytes()).await;

        assert_eq!((declared.0, declared.1["error"].as_str()), (413, Some("body_too_large")), "{}", declared.1);
        assert_eq!((streamed.0, streamed.1["error"].as_str()), (413, Some("body_too_large")), "{}", streamed.1);
        assert_eq!((wrong_type.0, wrong_type.1["error"].as_str()), (415, Some("unsupported_media_type")));
        assert_eq!(after.0, 202, "the same connection still serves: {}", after.1);
        shutdown.cancel();
        running.stopped.await.unwrap().unwrap();
    }

    /// Before the read timeout a stalled body held its connection until the client gave up.
    #[tokio::test]
    async fn a_body_that_stalls_is_answered_408() {
        let http_settings = settings_with(1, 64, &["--body-read-timeout-ms=400"]);
        let (running, shutdown) = start(Duration::ZERO, &http_settings).await;
        let mut connection = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        let stalled = format!(
            "POST /votes HTTP/1.1\r\nHost: front\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}",
            &VOTE[..20]
        );

        let sent = Instant::now();
        let (status, body) =
            tokio::time::timeout(Duration::from_secs(5), exchange(&mut connection, stalled.as_bytes()))
                .await
                .expect("answered, not held");

        assert_eq!((status, body["error"].as_str()), (408, Some("request_timeout")), "{body}");
        let waited = sent.elapsed();
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_millis(1400),
            "answered after {waited:?}"
        );
        shutdown.cancel();
        running.stopped.await.unwrap().unwrap();
    }
}
