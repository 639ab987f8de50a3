//! voteflow-hello: the benchmark's ceiling, a bare hyper HTTP/1.1 server that reads the
//! request body and answers 202 with a vote_id-sized JSON body, doing nothing else. The
//! fronts' throughput is reported as a share of this server's, measured in the same run.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

#[derive(Debug, Parser)]
#[command(
    name = "voteflow-hello",
    version,
    about = "The benchmark's ceiling: a hello-world hyper server (202 + a small JSON body to every POST, 200 on /readyz)"
)]
struct Args {
    #[arg(long, env = "HELLO_LISTEN", default_value = "127.0.0.1:8099")]
    listen: SocketAddr,
}

const ANSWER: &str = r#"{"vote_id":"0195f3a2-7c1e-7d4a-9b1e-2f6c8a9d0e11"}"#;

async fn answer(request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let ready = request.uri().path() == "/readyz";
    // Read the vote as the fronts must, so the ceiling moves the same bytes.
    let _ = request.into_body().collect().await;
    let (status, body) = if ready { (StatusCode::OK, "ok") } else { (StatusCode::ACCEPTED, ANSWER) };
    Ok(Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_default())
}

// mimalloc, not glibc malloc: see docs/decisions/0010-mimalloc.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("voteflow-hello listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(answer)).await;
        });
    }
}
