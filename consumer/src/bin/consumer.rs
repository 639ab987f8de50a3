//! consumer binary: Kafka -> Redis tallies + MongoDB vote log. All logic is in the library.

use anyhow::Context as _;
use clap::Parser as _;
use voteflow_consumer::settings::ConsumerSettings;
use voteflow_runtime::{shutdown, telemetry};

// mimalloc, not glibc malloc: see "Where the time goes" in the README.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let settings = ConsumerSettings::parse();
    telemetry::init(&settings.log);
    let runtime = tokio::runtime::Runtime::new().context("Failed to start the tokio runtime")?;
    let result = runtime.block_on(run(settings));
    // A Kafka close left behind at the deadline must not hold the process (dropping a
    // runtime waits for its blocking threads; this does not).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

async fn run(settings: ConsumerSettings) -> anyhow::Result<()> {
    let deadline = settings.shutdown_deadline();
    let shutdown = shutdown::on_signal();
    let running = voteflow_consumer::launch(settings, prometheus::Registry::new(), shutdown.clone())
        .await
        .context("Failed to start the consumer")?;
    tracing::info!(admin = %running.admin_addr, "consumer admin endpoints listening");
    let mut stopped = running.stopped;
    tokio::select! {
        result = &mut stopped => return result.context("consumer task failed")?,
        () = shutdown.cancelled() => {},
    }
    // Past the deadline the process exits anyway: uncommitted records are redelivered.
    match tokio::time::timeout(deadline + std::time::Duration::from_secs(2), stopped).await {
        Ok(result) => result.context("consumer task failed")?,
        Err(_) => {
            tracing::error!(?deadline, "consumer did not drain within the deadline; exiting");
            Ok(())
        }
    }
}
