//! consumer binary: Kafka -> Redis tallies + MongoDB vote log. All logic is in the library.

use anyhow::Context as _;
use clap::Parser as _;
use voteflow_consumer::settings::ConsumerSettings;
use voteflow_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = ConsumerSettings::parse();
    telemetry::init(&settings.log);
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
