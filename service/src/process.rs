//! A running voteflow service, and the `main` every binary shares: settings from flags and
//! env vars, logs, the shutdown signal, launch, and a stop within a deadline (past it the
//! process exits anyway: what a service had not finished is redelivered or retried).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use prometheus::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::LogSettings;
use crate::{shutdown, telemetry};

/// A launched service.
pub struct Running {
    /// Where the service takes its traffic (for the consumer: its admin endpoints).
    pub addr: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served (the same as `addr` for the
    /// HTTP services).
    pub admin_addr: SocketAddr,
    /// Finishes when the service has stopped: drained, flushed, committed.
    pub stopped: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits until the service has stopped.
    pub async fn stopped(self) -> anyhow::Result<()> {
        self.stopped.await.context("the service's task failed")?
    }
}

/// What the shared `main` needs of a binary's settings.
///
/// `--help` of every binary shows which env var sets each flag, never its value.
pub trait ServiceSettings: clap::Parser + Send + 'static {
    fn log(&self) -> &LogSettings;
    /// The longest a stop may take after the signal.
    fn stop_deadline(&self) -> Duration;
}

/// The whole `main` of a voteflow binary: parses its settings, starts logging, launches
/// the service with a fresh metrics registry and the shutdown signal, and waits until it
/// stopped, at most `stop_deadline` after the signal.
pub fn main<S, F, Fut>(name: &'static str, launch: F) -> anyhow::Result<()>
where
    S: ServiceSettings,
    F: FnOnce(S, Registry, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<Running>>,
{
    // Every env var's value stays out of `--help`: a URL there may carry a password.
    let matches = S::command().mut_args(|arg| arg.hide_env_values(true)).get_matches();
    let settings = S::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    telemetry::init(settings.log());
    let deadline = settings.stop_deadline();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("Failed to start the tokio runtime")?;
    let result = runtime.block_on(async move {
        let shutdown = shutdown::on_signal();
        let running = launch(settings, Registry::new(), shutdown.clone())
            .await
            .with_context(|| format!("Failed to start {name}"))?;
        tracing::info!(addr = %running.addr, admin = %running.admin_addr, "{name} listening");
        let mut stopped = running.stopped;
        tokio::select! {
            result = &mut stopped => return result.with_context(|| format!("{name}'s task failed"))?,
            () = shutdown.cancelled() => {},
        }
        match tokio::time::timeout(deadline, stopped).await {
            Ok(result) => result.with_context(|| format!("{name}'s task failed"))?,
            Err(_) => {
                tracing::error!(?deadline, "{name} did not stop within its deadline; exiting");
                Ok(())
            }
        }
    });
    // A blocking call left behind at the deadline (librdkafka's close can hang) must not
    // hold the process: dropping a runtime waits for its blocking threads, this does not.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if result.is_ok() {
        tracing::info!("{name} stopped");
    }
    result
}
