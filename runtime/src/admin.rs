//! A small HTTP/1 server for operators and probes: `/healthz` (the process runs),
//! `/readyz` (dependencies answer, not shutting down) and `/metrics` (Prometheus text).
//! Services without an HTTP front of their own (the consumer) serve it on their port.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus::{Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;

/// Admin connections served at once; probes and scrapers need few.
const MAX_CONNECTIONS: usize = 64;

/// Renders every metric of `registry` in the Prometheus text format.
pub fn render_metrics(registry: &Registry) -> String {
    TextEncoder::new().encode_to_string(&registry.gather()).unwrap_or_else(|error| {
        tracing::error!(%error, "cannot encode metrics");
        String::new()
    })
}

/// Serves the admin routes on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, registry: Registry, readiness: Readiness, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "admin server cannot accept a connection");
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue; // Too many probes at once: drop this connection rather than queue it.
        };
        let (registry, readiness, shutdown) = (registry.clone(), readiness.clone(), shutdown.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(&request, &registry, &readiness);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {},
                () = shutdown.cancelled() => {},
            }
            drop(permit);
        });
    }
}

fn respond(request: &Request<Incoming>, registry: &Registry, readiness: &Readiness) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n".into());
    }
    match probe(request.uri().path(), registry, readiness) {
        Some((_route, answer)) => answer,
        None => reply(StatusCode::NOT_FOUND, "text/plain", "routes: /healthz /readyz /metrics\n".into()),
    }
}

/// `GET /healthz`, `/readyz` or `/metrics` as every voteflow service answers them (here and
/// on the fronts' own port): the route's name, a metrics label, and the answer; `None` for
/// any other path.
pub(crate) fn probe(
    path: &str,
    registry: &Registry,
    readiness: &Readiness,
) -> Option<(&'static str, Response<Full<Bytes>>)> {
    Some(match path {
        "/healthz" => ("healthz", reply(StatusCode::OK, "application/json", r#"{"live":true}"#.into())),
        "/readyz" => {
            let (ready, body) = readiness.report();
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            ("readyz", reply(status, "application/json", body))
        }
        "/metrics" => ("metrics", reply(StatusCode::OK, "text/plain; version=0.0.4", render_metrics(registry))),
        _ => return None,
    })
}

/// A hyper answer with a body and its content type.
pub(crate) fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}
