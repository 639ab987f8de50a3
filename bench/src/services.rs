//! The pipeline's processes as the tools run them: where each service listens (read from
//! its settings' defaults), the environment they start with, and each voteflow service as a
//! child process to SIGKILL, SIGTERM, restart and measure; the stack's servers (Kafka,
//! Redis, MongoDB-wire) are stopped and started through `scripts/stack`.

use std::fs::File;
use std::net::SocketAddr;
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

/// Where the voteflow services listen at their settings' defaults, read from the settings
/// themselves (environment ignored) so the tools, the scripts (`voteflow-demo --services`)
/// and Prometheus' scrape config cannot drift from the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub rest_client: SocketAddr,
    pub rest_server: SocketAddr,
    pub grpc_client: SocketAddr,
    pub grpc_server: SocketAddr,
    /// grpc-server's /healthz, /readyz and /metrics.
    pub grpc_server_admin: SocketAddr,
    /// The consumer's /healthz, /readyz and /metrics.
    pub consumer_admin: SocketAddr,
}

impl Addresses {
    pub fn defaults() -> Self {
        use voteflow_consumer::settings::ConsumerSettings;
        use voteflow_producer_grpc::settings as grpc;
        use voteflow_producer_rest::settings as rest;
        Self {
            rest_client: default_address::<rest::FrontSettings>("listen"),
            rest_server: default_address::<rest::ServerSettings>("listen"),
            grpc_client: default_address::<grpc::FrontSettings>("listen"),
            grpc_server: default_address::<grpc::ServerSettings>("listen"),
            grpc_server_admin: default_address::<grpc::ServerSettings>("admin_listen"),
            consumer_admin: default_address::<ConsumerSettings>("admin_listen"),
        }
    }

    /// Each service by its name (Prometheus' `service` label) and the address of its
    /// /readyz and /metrics.
    pub fn admin(&self) -> [(&'static str, SocketAddr); 5] {
        [
            ("rest-client", self.rest_client),
            ("rest-server", self.rest_server),
            ("grpc-client", self.grpc_client),
            ("grpc-server", self.grpc_server_admin),
            ("consumer", self.consumer_admin),
        ]
    }
}

/// The default of a settings struct's socket-address argument, as its `--help` shows it.
fn default_address<S: clap::CommandFactory>(argument: &str) -> SocketAddr {
    let command = S::command();
    let default = command
        .get_arguments()
        .find(|arg| arg.get_id() == argument)
        .and_then(|arg| arg.get_default_values().first().cloned())
        .unwrap_or_else(|| panic!("{} has no default for {argument}", command.get_name()));
    default.to_string_lossy().parse().unwrap_or_else(|error| panic!("{argument} of {}: {error}", command.get_name()))
}

/// Names a tool run gives its own topic, consumer group, Redis prefix and database, so runs
/// never read each other's votes.
#[derive(Debug, Clone)]
pub struct RunNames {
    pub topic: String,
    pub group: String,
    pub prefix: String,
    pub database: String,
}

impl RunNames {
    pub fn new(tool: &str, id: &str) -> Self {
        Self {
            topic: format!("{tool}-{id}.votes"),
            group: format!("{tool}-{id}"),
            prefix: format!("{tool}:{id}:"),
            database: format!("{tool}_{id}"),
        }
    }
}

/// The environment every voteflow service of a run starts with.
pub fn service_env(endpoints: &StackEndpoints, names: &RunNames) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_BROKERS", endpoints.kafka_brokers.clone()),
        ("KAFKA_TOPIC", names.topic.clone()),
        ("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info,rocket=off".to_owned())),
    ]
}

/// A consumer's environment on top of [`service_env`]: the run's group, sinks and an admin
/// address of its own.
pub fn consumer_env(endpoints: &StackEndpoints, names: &RunNames, admin: SocketAddr) -> Vec<(&'static str, String)> {
    let mut env = service_env(endpoints, names);
    env.extend([
        ("KAFKA_GROUP_ID", names.group.clone()),
        ("KAFKA_DLQ_TOPIC", format!("{}.dlq", names.topic)),
        ("REDIS_URL", endpoints.redis_url.clone()),
        ("REDIS_KEY_PREFIX", names.prefix.clone()),
        ("MONGODB_URI", endpoints.mongodb_uri.clone()),
        ("MONGODB_DATABASE", names.database.clone()),
        ("CONSUMER_ADMIN_LISTEN", admin.to_string()),
    ]);
    env
}

/// The four producer processes, at their default addresses.
pub struct Producers {
    pub rest_server: Service,
    pub grpc_server: Service,
    pub rest_client: Service,
    pub grpc_client: Service,
}

impl Producers {
    pub fn new(bin_dir: &Path, log_dir: &Path, env: &[(&str, String)]) -> Self {
        let addresses = Addresses::defaults();
        let service = |name: &str, admin: SocketAddr| {
            Service::new(name, bin_dir.join(name), env, format!("http://{admin}/readyz"), log_dir)
        };
        Self {
            rest_server: service("rest-server", addresses.rest_server),
            grpc_server: service("grpc-server", addresses.grpc_server_admin),
            rest_client: service("rest-client", addresses.rest_client),
            grpc_client: service("grpc-client", addresses.grpc_client),
        }
    }

    /// Servers first, so the fronts find their next hop.
    pub fn all_mut(&mut self) -> [&mut Service; 4] {
        [&mut self.rest_server, &mut self.grpc_server, &mut self.rest_client, &mut self.grpc_client]
    }

    pub fn all(&self) -> [&Service; 4] {
        [&self.rest_server, &self.grpc_server, &self.rest_client, &self.grpc_client]
    }
}

/// A consumer process named `name`, its admin on `admin`.
pub fn consumer(name: &str, bin_dir: &Path, log_dir: &Path, env: &[(&str, String)], admin: SocketAddr) -> Service {
    Service::new(name, bin_dir.join("consumer"), env, format!("http://{admin}/readyz"), log_dir)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus' local scrape config names each service at the address the table gives.
    #[test]
    fn prometheus_scrapes_every_service_at_its_default_address() {
        let config = include_str!("../../scripts/prometheus/prometheus.yml");
        let mut scraped = Vec::new();
        let mut lines = config.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if let Some(target) = line.strip_prefix("- targets: [\"").and_then(|rest| rest.strip_suffix("\"]")) {
                let labels = lines.next().unwrap_or_default();
                let service = labels.strip_prefix("labels: {service: ").and_then(|rest| rest.strip_suffix('}'));
                scraped.push((service.expect("a service label under each target").to_owned(), target.to_owned()));
            }
        }
        let expected: Vec<(String, String)> = Addresses::defaults()
            .admin()
            .iter()
            .map(|(name, address)| ((*name).to_owned(), address.to_string()))
            .collect();
        assert_eq!(scraped, expected);
    }

    #[test]
    fn no_two_services_share_an_address() {
        let addresses = Addresses::defaults();
        let all = [
            addresses.rest_client,
            addresses.rest_server,
            addresses.grpc_client,
            addresses.grpc_server,
            addresses.grpc_server_admin,
            addresses.consumer_admin,
        ];
        let mut ports: Vec<u16> = all.iter().map(SocketAddr::port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), all.len(), "two services share a port: {addresses:?}");
        assert!(all.iter().all(|address| address.ip().is_loopback()), "{addresses:?}");
    }
}
