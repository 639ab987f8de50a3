//! `/healthz` (the process runs), `/readyz` (its dependencies answer, it is not shutting
//! down) and `/metrics` (Prometheus text): the answers every voteflow service gives
//! ([`probe`]), and a small server for the services without an HTTP server of their own
//! (the consumer, grpc-server's admin port).
//!
//! The server reads one request per connection (its request line and headers: at most
//! 8 KiB, within 5 s), answers it and closes the connection: kubelet probes and Prometheus
//! need no more, and so the consumer needs no HTTP library.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{Registry, TextEncoder};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;

/// Admin connections served at once; probes and scrapers need few.
const MAX_CONNECTIONS: usize = 64;
/// The most of a request read: its request line and headers.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client may take to send them.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The routes, as a 404 lists them.
pub const ROUTES: &str = "routes: GET /healthz /readyz /metrics\n";
pub const JSON: &str = "application/json";
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";
pub const PLAIN_TEXT: &str = "text/plain";

/// An admin endpoint's response, for whichever server writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// Renders every metric of `registry` in the Prometheus text format.
pub fn render_metrics(registry: &Registry) -> String {
    TextEncoder::new().encode_to_string(&registry.gather()).unwrap_or_else(|error| {
        tracing::error!(%error, "cannot encode metrics");
        String::new()
    })
}

/// `GET /healthz`, `/readyz` or `/metrics` as every voteflow service answers them: the
/// route's name (a metrics label) and the answer; `None` for any other path.
pub fn probe(path: &str, registry: &Registry, readiness: &Readiness) -> Option<(&'static str, AdminResponse)> {
    Some(match path {
        "/healthz" => ("healthz", AdminResponse { status: 200, content_type: JSON, body: r#"{"live":true}"#.into() }),
        "/readyz" => {
            let (ready, body) = readiness.report();
            ("readyz", AdminResponse { status: if ready { 200 } else { 503 }, content_type: JSON, body })
        }
        "/metrics" => {
            ("metrics", AdminResponse { status: 200, content_type: PROMETHEUS_TEXT, body: render_metrics(registry) })
        }
        _ => return None,
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
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue; // Too many probes at once: drop this connection rather than queue it.
        };
        let (registry, readiness) = (registry.clone(), readiness.clone());
        tokio::spawn(async move {
            if let Err(error) = answer(stream, &registry, &readiness).await {
                tracing::debug!(%error, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, registry: &Registry, readiness: &Readiness) -> std::io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()), // A client too slow to ask: nothing to answer.
    };
    let answer = respond(head.as_deref(), registry, readiness);
    let reason = match answer.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let response = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        answer.status,
        answer.content_type,
        answer.body.len(),
        answer.body
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The request line and headers, or `None` when they do not fit in [`MAX_REQUEST_BYTES`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0_u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
        if head.len() > MAX_REQUEST_BYTES {
            return Ok(None);
        }
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

fn respond(head: Option<&str>, registry: &Registry, readiness: &Readiness) -> AdminResponse {
    let text = |status, body: &str| AdminResponse { status, content_type: PLAIN_TEXT, body: body.to_owned() };
    let Some(head) = head else { return text(400, "request head too large\n") };
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else { return text(400, "bad request line\n") };
    if method != "GET" {
        return text(405, "only GET\n");
    }
    let path = target.split('?').next().unwrap_or(target);
    match probe(path, registry, readiness) {
        Some((_route, answer)) => answer,
        None => text(404, ROUTES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the server answered before it closed (a reset after the answer is fine: the
    /// server closes without reading what it refused).
    async fn ask(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(request).await;
        let mut answer = Vec::new();
        let mut chunk = [0_u8; 4096];
        while let Ok(read @ 1..) = stream.read(&mut chunk).await {
            answer.extend_from_slice(&chunk[..read]);
        }
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn answers_probes_and_scrapes_as_http_and_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (registry, readiness, shutdown) =
            (Registry::new(), Readiness::with_checks(&["kafka"]), CancellationToken::new());
        let counter = prometheus::IntCounter::new("voteflow_test_total", "A test counter.").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc_by(3);
        tokio::spawn(serve(listener, registry, readiness.clone(), shutdown.clone()));

        let healthz = ask(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(healthz.starts_with("HTTP/1.1 200 OK\r\n") && healthz.ends_with(r#"{"live":true}"#), "{healthz}");
        let not_ready = ask(addr, b"GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(not_ready.starts_with("HTTP/1.1 503 ") && not_ready.contains(r#""kafka":false"#), "{not_ready}");
        readiness.set("kafka", true);
        assert!(ask(addr, b"GET /readyz?verbose HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 200 "));
        let metrics = ask(addr, b"GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(
            metrics.contains("content-type: text/plain; version=0.0.4") && metrics.contains("voteflow_test_total 3")
        );
        assert!(ask(addr, b"POST /healthz HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 405 "));
        assert!(ask(addr, b"GET /nowhere HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 404 "));
        let huge = format!("GET /healthz HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(MAX_REQUEST_BYTES));
        assert!(ask(addr, huge.as_bytes()).await.starts_with("HTTP/1.1 400 "));
        shutdown.cancel();
    }
}
