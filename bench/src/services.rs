//! The pipeline's processes as the fault-injection suite and the benchmark run them: each
//! voteflow service is a child process they can SIGKILL, SIGTERM, restart and measure; the
//! stack's servers (Kafka, Redis, MongoDB-wire) are stopped and started through `scripts/stack`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Where the local stack's servers listen: the same three flags (and env vars) for every
/// binary that starts services against them.
#[derive(Debug, Clone, clap::Args)]
pub struct StackEndpoints {
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/")]
    pub redis_url: String,
    #[arg(long, env = "MONGODB_URI", default_value = "mongodb://127.0.0.1:27017/")]
    pub mongodb_uri: String,
}

/// One voteflow service: how to start it, and the running process.
pub struct Service {
    pub name: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
    ready_url: String,
    log_dir: PathBuf,
    child: Option<Child>,
}

impl Service {
    pub fn new(name: &str, binary: PathBuf, env: &[(&str, String)], ready_url: String, log_dir: &Path) -> Self {
        Self {
            name: name.to_owned(),
            binary,
            env: env.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect(),
            ready_url,
            log_dir: log_dir.to_owned(),
            child: None,
        }
    }

    /// Starts the process (its output appended to `<log_dir>/<name>.log`) and waits until
    /// its /readyz answers 200; returns how long that took.
    pub async fn start(&mut self, http: &reqwest::Client) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let log_path = self.log_dir.join(format!("{}.log", self.name));
        let log = File::options().create(true).append(true).open(&log_path)?;
        let child = Command::new(&self.binary)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("Failed to start {}", self.binary.display()))?;
        self.child = Some(child);
        self.wait_ready(http, Duration::from_secs(60))
            .await
            .with_context(|| format!("{} not ready; see {}", self.name, log_path.display()))?;
        Ok(started.elapsed())
    }

    async fn wait_ready(&mut self, http: &reqwest::Client, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!("exited while starting: {status}");
            }
            let ready = http.get(&self.ready_url).send().await.is_ok_and(|response| response.status().is_success());
            if ready {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "not ready within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no drain, no commit, no goodbye.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after `grace`); returns the exit status
    /// and how long the graceful stop took.
    pub async fn terminate(&mut self, grace: Duration) -> anyhow::Result<(ExitStatus, Duration)> {
        let mut child = self.child.take().context("not running")?;
        let started = Instant::now();
        let signalled = Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
        anyhow::ensure!(signalled.success(), "kill -TERM failed");
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok((status, started.elapsed()));
            }
            if started.elapsed() > grace {
                child.kill()?;
                anyhow::bail!("{} did not exit within {grace:?} of SIGTERM", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident memory now, in MiB (Linux /proc).
    pub fn rss_mib(&self) -> Option<f64> {
        crate::speed::procstat::rss_mib(self.pid()?)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// The local stack's servers, driven through `scripts/stack down|up SERVICE`.
pub struct Stack {
    pub script: PathBuf,
    pub log: PathBuf,
}

impl Stack {
    /// Runs `scripts/stack COMMAND SERVICE`, its output into the suite's stack log.
    pub async fn run(&self, command: &str, service: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let (script, log) = (self.script.clone(), self.log.clone());
        let args = [command.to_owned(), service.to_owned()];
        let status = tokio::task::spawn_blocking(move || -> anyhow::Result<ExitStatus> {
            let log = File::options().create(true).append(true).open(&log)?;
            Ok(Command::new(&script).args(&args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).status()?)
        })
        .await??;
        anyhow::ensure!(
            status.success(),
            "scripts/stack {command} {service} failed ({status}); see {}",
            self.log.display()
        );
        Ok(started.elapsed())
    }
}
