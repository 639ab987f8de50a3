//! rest-server binary: the REST path's producer server. All logic lives in the library.

use anyhow::Context as _;
use clap::Parser as _;
use voteflow_producer_rest::{server, settings::ServerSettings};
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
        .context("Failed to start rest-server")?;
    tracing::info!(addr = %server.addr, brokers = %settings.publisher.kafka.brokers, "rest-server listening");
    server.stopped().await.context("rest-server failed")?;
    tracing::info!("rest-server stopped");
    Ok(())
}
