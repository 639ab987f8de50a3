//! grpc-client binary: the gRPC path's HTTP front. All logic lives in the library.

use anyhow::Context as _;
use clap::Parser as _;
use voteflow_producer_grpc::{client, settings::ClientSettings};
use voteflow_runtime::{shutdown, telemetry};

// mimalloc, not glibc malloc: see "Where the time goes" in the README.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = ClientSettings::parse();
    telemetry::init(&settings.log);
    let shutdown = shutdown::on_signal();
    let running = client::launch(&settings, prometheus::Registry::new(), shutdown)
        .await
        .context("Failed to start grpc-client")?;
    tracing::info!(addr = %running.addr, upstream = %settings.server_url, "grpc-client listening");
    running.stopped.await.context("grpc-client task failed")??;
    tracing::info!("grpc-client stopped");
    Ok(())
}
