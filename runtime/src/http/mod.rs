//! What every HTTP service of voteflow shares: settings, JSON errors and request metrics
//! (the hyper fronts of `crate::front` and Rocket's rest-server), and rest-server's Rocket
//! plumbing: `/healthz` `/readyz` `/metrics`, JSON catchers, and a launch that reports the
//! bound address (port 0 works in tests) and obeys the one shutdown signal.

pub mod body;
pub mod error;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context as _;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use rocket::fairing::{AdHoc, Fairing, Info, Kind};
use rocket::http::{ContentType, Status};
use rocket::shield::{NoSniff, Shield};
use rocket::{Build, Data, Request, Response, Rocket, State, catch, catchers, get, routes};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::render_metrics;
use crate::health::Readiness;
pub use body::{BatchBody, BodyLimits, VoteBody};
pub use error::ApiError;

/// How an HTTP service of voteflow serves.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpSettings {
    /// Largest accepted body of a single vote, in bytes; larger bodies get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: u64,
    /// Largest accepted body of `POST /votes/batch`, in bytes; larger bodies get 413.
    #[arg(long, env = "MAX_BATCH_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_batch_body_bytes: u64,
    /// Most votes in one batch; more get 413.
    #[arg(long, env = "BATCH_MAX_VOTES", default_value_t = 1000)]
    pub batch_max_votes: usize,
    /// Seconds in-flight requests get to finish after a shutdown signal.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u32,
    /// Most client connections a front (rest-client, grpc-client) serves at once; further
    /// ones wait in the listen backlog until one closes. rest-server's Rocket has no such bound.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

/// Rocket configuration for a voteflow service: our address, our logging (tracing, so
/// Rocket's own printing is off) and our signals (Rocket's own handlers are off).
pub fn rocket_config(listen: SocketAddr, grace_secs: u32) -> rocket::Config {
    rocket::Config {
        address: listen.ip(),
        port: listen.port(),
        log_level: rocket::config::LogLevel::Off,
        // No `Server: Rocket` header: one less header per answer, and nothing to fingerprint.
        ident: rocket::config::Ident::none(),
        cli_colors: false,
        shutdown: rocket::config::Shutdown {
            ctrlc: false,
            #[cfg(unix)]
            signals: HashSet::new(),
            grace: grace_secs,
            mercy: 2,
            ..Default::default()
        },
        ..rocket::Config::default()
    }
}

/// Adds what every HTTP service has: health and metrics routes, JSON catchers, request
/// metrics, and the shared state those need.
pub fn with_common(
    rocket: Rocket<Build>,
    registry: Registry,
    readiness: Readiness,
    settings: &HttpSettings,
) -> anyhow::Result<Rocket<Build>> {
    let metrics = RequestMetrics::register(&registry)?;
    Ok(rocket
        .manage(registry)
        .manage(readiness)
        .manage(BodyLimits {
            vote_bytes: settings.max_body_bytes,
            batch_bytes: settings.max_batch_body_bytes,
            batch_votes: settings.batch_max_votes,
        })
        .mount("/", routes![healthz, readyz, metrics])
        .register("/", catchers![json_catcher])
        // Rocket's default Shield also sends X-Frame-Options and Permissions-Policy, which
        // mean nothing on a JSON API and cost a header-map insert each per answer.
        .attach(Shield::new().enable(NoSniff::Enable))
        .attach(metrics))
}

#[get("/healthz")]
fn healthz() -> (ContentType, &'static str) {
    (ContentType::JSON, r#"{"live":true}"#)
}

#[get("/readyz")]
fn readyz(readiness: &State<Readiness>) -> (Status, (ContentType, String)) {
    let (ready, body) = readiness.report();
    (if ready { Status::Ok } else { Status::ServiceUnavailable }, (ContentType::JSON, body))
}

#[get("/metrics")]
fn metrics(registry: &State<Registry>) -> (ContentType, String) {
    (ContentType::new("text", "plain").with_params(("version", "0.0.4")), render_metrics(registry))
}

#[catch(default)]
fn json_catcher(status: Status, _request: &Request<'_>) -> ApiError {
    ApiError::Status(status)
}

/// Counts requests by route and status and times them by route; route names are the
/// handlers' names, so labels stay few.
pub(crate) struct RequestMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
}

#[derive(Clone, Copy)]
struct RequestStart(Instant);

impl RequestMetrics {
    pub(crate) fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new("voteflow_http_requests_total", "HTTP requests answered, by route and status."),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("voteflow_http_request_seconds", "Time to answer an HTTP request, by route.")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self { requests, latency })
    }

    pub(crate) fn observe(&self, route: &str, status: u16, started: Instant) {
        self.requests.with_label_values(&[route, status.to_string().as_str()]).inc();
        self.latency.with_label_values(&[route]).observe(started.elapsed().as_secs_f64());
    }
}

#[rocket::async_trait]
impl Fairing for RequestMetrics {
    fn info(&self) -> Info {
        Info { name: "request metrics", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, request: &mut Request<'_>, _data: &mut Data<'_>) {
        request.local_cache(|| RequestStart(Instant::now()));
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let started = request.local_cache(|| RequestStart(Instant::now())).0;
        let route = request.route().and_then(|route| route.name.as_deref()).unwrap_or("unmatched");
        self.observe(route, response.status().code, started);
    }
}

/// `202 Accepted` with `{"vote_id": ...}`: the vote is in Kafka.
pub struct Accepted(pub uuid::Uuid);

impl<'r> rocket::response::Responder<'r, 'static> for Accepted {
    fn respond_to(self, _request: &'r Request<'_>) -> rocket::response::Result<'static> {
        let body = format!(r#"{{"vote_id":"{}"}}"#, self.0);
        Response::build()
            .status(Status::Accepted)
            .header(ContentType::JSON)
            .sized_body(body.len(), std::io::Cursor::new(body))
            .ok()
    }
}

/// `200` with the batch report of [`crate::batch::report`].
pub struct BatchReport(pub Vec<crate::batch::ItemOutcome>);

impl<'r> rocket::response::Responder<'r, 'static> for BatchReport {
    fn respond_to(self, _request: &'r Request<'_>) -> rocket::response::Result<'static> {
        let body = crate::batch::report(&self.0);
        Response::build()
            .status(Status::Ok)
            .header(ContentType::JSON)
            .sized_body(body.len(), std::io::Cursor::new(body))
            .ok()
    }
}

/// A launched HTTP service.
pub struct Running {
    /// The address actually bound (the real port when configured with port 0).
    pub addr: SocketAddr,
    /// Finishes when the server has stopped and drained its in-flight requests.
    pub stopped: JoinHandle<anyhow::Result<()>>,
}

/// Starts serving `rocket` and returns once it listens. When `shutdown` is cancelled,
/// readiness goes false, the listener closes and in-flight requests get the grace period.
pub async fn launch(
    rocket: Rocket<Build>,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let (bound_tx, bound_rx) = oneshot::channel();
    let rocket = rocket.attach(AdHoc::on_liftoff("report bound address", move |rocket| {
        Box::pin(async move {
            let _ = bound_tx.send(SocketAddr::new(rocket.config().address, rocket.config().port));
        })
    }));
    let ignited =
        rocket.ignite().await.map_err(|error| anyhow::anyhow!("{error}")).context("Failed to build the app")?;
    let handle = ignited.shutdown();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        readiness.begin_shutdown();
        handle.notify();
    });
    let stopped = tokio::spawn(async move {
        ignited.launch().await.map(drop).map_err(|error| anyhow::anyhow!("HTTP server failed: {error}"))
    });
    match bound_rx.await {
        Ok(addr) => Ok(Running { addr, stopped }),
        Err(_) => {
            stopped.await.context("HTTP server task failed")??;
            anyhow::bail!("HTTP server stopped before it listened")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rocket::async_test]
    async fn answers_carry_nosniff_and_no_headers_a_json_api_has_no_use_for() {
        let settings = HttpSettings {
            max_body_bytes: 1024,
            max_batch_body_bytes: 1024,
            batch_max_votes: 10,
            shutdown_grace_secs: 1,
            max_connections: 8,
        };
        let config = rocket_config("127.0.0.1:0".parse().unwrap(), 1);
        let app = with_common(rocket::custom(config), Registry::new(), Readiness::with_checks(&[]), &settings).unwrap();
        let client = rocket::local::asynchronous::Client::untracked(app).await.expect("a local rocket");

        let response = client.get("/healthz").dispatch().await;

        assert_eq!(response.status(), Status::Ok);
        let headers = response.headers();
        assert_eq!(headers.get_one("X-Content-Type-Options"), Some("nosniff"));
        for absent in ["Server", "X-Frame-Options", "Permissions-Policy"] {
            assert_eq!(headers.get_one(absent), None, "{absent}");
        }
    }
}
