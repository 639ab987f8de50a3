//! grpc-server binary: the gRPC path's producer server. All logic lives in the library.

use anyhow::Context as _;
use clap::Parser as _;
use voteflow_producer_grpc::{server, settings::ServerSettings};
use voteflow_runtime::{shutdown, telemetry};

// mimalloc, not glibc malloc: see "Where the time goes" in the README.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = ServerSettings::parse();
    telemetry::init(&settings.log);
    let shutdown = shutdown::on_signal();
    let server = server::launch(&settings, prometheus::Registry::new(), shutdown)
        .await
        .context("Failed to start grpc-server")?;
    tracing::info!(addr = %server.addr, admin = %server.admin_addr, "grpc-server listening");
    server.stopped().await.context("grpc-server failed")?;
    tracing::info!("grpc-server stopped");
    Ok(())
}
