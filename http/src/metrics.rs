//! Requests of an HTTP service counted by route and status and timed by route; route
//! names are the handlers' names, so labels stay few.

use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Request, Response};
use voteflow_service::metrics::latency_buckets;

/// `voteflow_http_requests_total{route, status}` and `voteflow_http_request_seconds{route}`.
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
                .buckets(latency_buckets()),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self { requests, latency })
    }
}

/// A status code as a label, without formatting one per request.
fn status_label(code: u16) -> &'static str {
    match code {
        200 => "200",
        202 => "202",
        400 => "400",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        415 => "415",
        422 => "422",
        500 => "500",
        502 => "502",
        503 => "503",
        other => match other / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
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
        self.requests.with_label_values(&[route, status_label(response.status().code)]).inc();
        self.latency.with_label_values(&[route]).observe(started.elapsed().as_secs_f64());
    }
}
