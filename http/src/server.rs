//! What every HTTP service of voteflow is on Rocket: the configuration (our address, our
//! logs, our signals), the probe routes, JSON catchers, request metrics, and a launch that reports the bound address (port 0 works in tests)
//! and drains on the one shutdown signal: readiness false, the listener closed, in-flight
//! requests given the grace period, then whatever `after_stop` does (a producer flush).

use std::collections::HashSet;
use std::net::SocketAddr;

use anyhow::Context as _;
use futures::future::BoxFuture;
use prometheus::Registry;
use rocket::fairing::AdHoc;
use rocket::http::ContentType;
use rocket::response::{self, Responder};
use rocket::shield::Shield;
use rocket::{Build, Request, Rocket, State, catchers, get, routes};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use voteflow_service::admin::{self, AdminResponse};
use voteflow_service::health::Readiness;
use voteflow_service::process::Running;

use crate::answer::answer;
use crate::body::{BodyLimits, InFlight};
use crate::error::json_catcher;
use crate::metrics::RequestMetrics;
use crate::settings::{HttpSettings, MERCY_SECS};

/// Rocket configuration for a voteflow service: our address, our logging (tracing, so
/// Rocket's own printing is off), our signals (Rocket's own handlers are off), no
/// `Server` header.
pub fn rocket_config(listen: SocketAddr, grace_secs: u32) -> rocket::Config {
    rocket::Config {
        address: listen.ip(),
        port: listen.port(),
        log_level: rocket::config::LogLevel::Off,
        ident: rocket::config::Ident::none(),
        cli_colors: false,
        shutdown: rocket::config::Shutdown {
            ctrlc: false,
            #[cfg(unix)]
            signals: HashSet::new(),
            grace: grace_secs,
            mercy: MERCY_SECS as u32,
            ..Default::default()
        },
        ..rocket::Config::default()
    }
}

/// Adds what every HTTP service has: the probe routes, JSON catchers, request metrics,
/// and the state those need.
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
            read_timeout: std::time::Duration::from_millis(settings.body_read_timeout_ms),
        })
        .manage(InFlight::new(settings.max_requests_in_flight))
        .mount("/", routes![healthz, readyz, metrics])
        .register("/", catchers![json_catcher])
        // An empty Shield, so Rocket attaches no default one: every answer carries nosniff
        // already (crate::answer), and the default's headers mean nothing on a JSON API
        // and cost a look-up and an insert each per answer (docs/decisions/0001).
        .attach(Shield::new())
        .attach(metrics))
}

/// An admin answer of `voteflow_service::admin`, as Rocket sends it.
struct Probe(AdminResponse);

impl<'r> Responder<'r, 'static> for Probe {
    fn respond_to(self, _request: &'r Request<'_>) -> response::Result<'static> {
        let AdminResponse { status, content_type, body } = self.0;
        let content_type = ContentType::parse_flexible(content_type).unwrap_or(ContentType::Plain);
        answer(status, content_type, body).ok()
    }
}

fn probe(path: &str, registry: &Registry, readiness: &Readiness) -> Probe {
    Probe(admin::probe(path, registry, readiness).expect("a probe route").1)
}

#[get("/healthz")]
fn healthz(registry: &State<Registry>, readiness: &State<Readiness>) -> Probe {
    probe("/healthz", registry, readiness)
}

#[get("/readyz")]
fn readyz(registry: &State<Registry>, readiness: &State<Readiness>) -> Probe {
    probe("/readyz", registry, readiness)
}

#[get("/metrics")]
fn metrics(registry: &State<Registry>, readiness: &State<Readiness>) -> Probe {
    probe("/metrics", registry, readiness)
}

/// Starts serving `rocket` and returns once it listens. When `shutdown` is cancelled,
/// readiness goes false, the listener closes and in-flight requests get the grace period;
/// then `after_stop` runs (a producer's flush) before `stopped` finishes.
pub async fn launch(
    rocket: Rocket<Build>,
    readiness: Readiness,
    shutdown: CancellationToken,
    after_stop: Option<BoxFuture<'static, ()>>,
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
        let served = ignited.launch().await.map(drop).map_err(|error| anyhow::anyhow!("HTTP server failed: {error}"));
        if let Some(after_stop) = after_stop {
            after_stop.await;
        }
        served
    });
    match bound_rx.await {
        Ok(addr) => Ok(Running { addr, admin_addr: addr, stopped }),
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
            body_read_timeout_ms: 1000,
            max_requests_in_flight: 4,
            shutdown_grace_secs: 1,
        };
        let config = rocket_config("127.0.0.1:0".parse().unwrap(), 1);
        let app = with_common(rocket::custom(config), Registry::new(), Readiness::with_checks(&[]), &settings).unwrap();
        let client = rocket::local::asynchronous::Client::untracked(app).await.expect("a local rocket");

        let response = client.get("/healthz").dispatch().await;

        assert_eq!(response.status(), rocket::http::Status::Ok);
        let headers = response.headers();
        assert_eq!(headers.get_one("X-Content-Type-Options"), Some("nosniff"));
        for absent in ["Server", "X-Frame-Options", "Permissions-Policy"] {
            assert_eq!(headers.get_one(absent), None, "{absent}");
        }
        let missing = client.get("/nowhere").dispatch().await;
        assert_eq!(missing.status(), rocket::http::Status::NotFound);
        let body: serde_json::Value = serde_json::from_str(&missing.into_string().await.unwrap()).unwrap();
        assert_eq!(body["error"], "not_found");
    }
}
