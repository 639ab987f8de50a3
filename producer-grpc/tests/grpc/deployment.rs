//! The whole local deployment in one test process: both producer pairs on port 0, one
//! consumer, and a real nginx rendered from `scripts/ingress/nginx.conf.in` (itself
//! rendered from k8s/routes.yaml) in front of the two fronts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser as _;
use tokio_util::sync::{CancellationToken, DropGuard};
use voteflow_testkit::{IsolatedConsumer, create_topic, kafka_brokers, unique_id};

use crate::helpers::start_server;

/// Both pairs, a consumer and the ingress; everything stops when dropped.
pub(crate) struct Deployment {
    pub(crate) grpc_server: SocketAddr,
    pub(crate) grpc_front: SocketAddr,
    pub(crate) rest_server: SocketAddr,
    pub(crate) rest_front: SocketAddr,
    pub(crate) consumer: IsolatedConsumer,
    pub(crate) ingress: Ingress,
    _stop: DropGuard,
}

impl Deployment {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[], None).await
    }

    /// With `http_flags` given to every HTTP service (fronts and rest-server), and the
    /// ingress's client timeouts set to `client_timeout` instead of the rendered ones.
    pub(crate) async fn start_with(http_flags: &[&str], client_timeout: Option<&str>) -> Self {
        voteflow_testkit::init_logs();
        let topic = create_topic(6).await;
        let shutdown = CancellationToken::new();
        let args = |base: Vec<String>| base.into_iter().chain(http_flags.iter().map(|flag| flag.to_string()));
        let grpc_server = start_server(&topic, "127.0.0.1:0", shutdown.clone()).await;
        let grpc_front = voteflow_producer_grpc::front::launch(
            voteflow_producer_grpc::settings::FrontSettings::try_parse_from(args(vec![
                "grpc-client".into(),
                "--listen=127.0.0.1:0".into(),
                format!("--server-url=http://{grpc_server}"),
            ]))
            .unwrap(),
            prometheus::Registry::new(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let rest_server = voteflow_producer_rest::server::launch(
            voteflow_producer_rest::settings::ServerSettings::try_parse_from(args(vec![
                "rest-server".into(),
                "--listen=127.0.0.1:0".into(),
                format!("--kafka-brokers={}", kafka_brokers()),
                format!("--kafka-topic={topic}"),
            ]))
            .unwrap(),
            prometheus::Registry::new(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let rest_front = voteflow_producer_rest::front::launch(
            voteflow_producer_rest::settings::FrontSettings::try_parse_from(args(vec![
                "rest-client".into(),
                "--listen=127.0.0.1:0".into(),
                format!("--server-url=http://{}", rest_server.addr),
            ]))
            .unwrap(),
            prometheus::Registry::new(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let consumer = IsolatedConsumer::start(&topic, &format!("test_{}", unique_id())).await;
        let ingress = Ingress::start(grpc_front.addr, rest_front.addr, client_timeout).await;
        Self {
            grpc_server,
            grpc_front: grpc_front.addr,
            rest_server: rest_server.addr,
            rest_front: rest_front.addr,
            consumer,
            ingress,
            _stop: shutdown.drop_guard(),
        }
    }
}

/// nginx serving the ingress template for the given fronts; stopped when dropped.
pub(crate) struct Ingress {
    pub(crate) addr: SocketAddr,
    pub(crate) url: String,
    nginx: &'static str,
    dir: PathBuf,
    master: std::process::Child,
}

impl Drop for Ingress {
    fn drop(&mut self) {
        // `-s stop` makes the master stop its workers too; killing only the master would
        // leave workers behind holding the port (and the test's output pipes).
        let _ = std::process::Command::new(self.nginx)
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .args(["-s", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.master.wait();
    }
}

impl Ingress {
    async fn start(grpc_front: SocketAddr, rest_front: SocketAddr, client_timeout: Option<&str>) -> Self {
        let dir = std::env::temp_dir().join(format!("voteflow-ingress-{}", unique_id()));
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/ingress/nginx.conf.in");
        let port = voteflow_testkit::dead_address().port();
        let mut config = std::fs::read_to_string(template)
            .unwrap()
            .replace("@DIR@", dir.to_str().unwrap())
            .replace("@PORT@", &port.to_string())
            .replace("@GRPC_FRONT@", &grpc_front.to_string())
            .replace("@REST_FRONT@", &rest_front.to_string());
        if let Some(timeout) = client_timeout {
            for directive in ["client_header_timeout", "client_body_timeout"] {
                let rendered = config.lines().find(|line| line.trim_start().starts_with(directive)).map(str::to_owned);
                let rendered = rendered.unwrap_or_else(|| panic!("the ingress template sets {directive}"));
                config = config.replace(&rendered, &format!("    {directive} {timeout};"));
            }
        }
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("nginx is installed (scripts/stack up installs it)");
        let master = std::process::Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen; see {}", dir.display());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Self { addr, url: format!("http://{addr}"), nginx, dir, master }
    }
}
