//! End to end through the ingress: a real nginx rendered from `scripts/ingress/nginx.conf.in`
//! in front of both producer pairs. `/rest/...` and `/grpc/...` reach their path, `/votes`
//! and `POST /` are split between them, and Redis and MongoDB count exactly per path.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser as _;
use futures::StreamExt as _;
use mongodb::bson::doc;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use voteflow_consumer::testing::{IsolatedConsumer, create_topic, kafka_brokers, unique_id};

use crate::helpers::start_server;

/// nginx serving the ingress template for the given fronts; stopped when dropped.
struct Ingress {
    url: String,
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
    async fn start(grpc_front: &str, rest_front: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("voteflow-ingress-{}", unique_id()));
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/ingress/nginx.conf.in");
        let port = voteflow_consumer::testing::dead_address().port();
        let config = std::fs::read_to_string(template)
            .unwrap()
            .replace("@DIR@", dir.to_str().unwrap())
            .replace("@PORT@", &port.to_string())
            .replace("@GRPC_FRONT@", grpc_front)
            .replace("@REST_FRONT@", rest_front);
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
        Self { url: format!("http://127.0.0.1:{port}"), nginx, dir, master }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn votes_through_the_ingress_reach_both_paths_and_are_counted_exactly() {
    // Arrange: both pairs, one consumer, and the ingress in front.
    voteflow_runtime::telemetry::init_for_tests();
    let topic = create_topic(6).await;
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let grpc_server = start_server(&topic, "127.0.0.1:0", shutdown.clone()).await;
    let grpc_front = voteflow_producer_grpc::client::launch(
        &voteflow_producer_grpc::settings::ClientSettings::try_parse_from([
            "grpc-client",
            "--listen=127.0.0.1:0",
            &format!("--server-url=http://{grpc_server}"),
        ])
        .unwrap(),
        prometheus::Registry::new(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let rest_server = voteflow_producer_rest::server::launch(
        &voteflow_producer_rest::settings::ServerSettings::try_parse_from([
            "rest-server",
            "--listen=127.0.0.1:0",
            &format!("--kafka-brokers={}", kafka_brokers()),
            &format!("--kafka-topic={topic}"),
        ])
        .unwrap(),
        prometheus::Registry::new(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let rest_front = voteflow_producer_rest::client::launch(
        &voteflow_producer_rest::settings::ClientSettings::try_parse_from([
            "rest-client",
            "--listen=127.0.0.1:0",
            &format!("--server-url=http://{}", rest_server.addr),
        ])
        .unwrap(),
        prometheus::Registry::new(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let consumer = IsolatedConsumer::start(&topic, &format!("test_{}", unique_id())).await;
    let ingress = Ingress::start(&grpc_front.addr.to_string(), &rest_front.addr.to_string()).await;
    let http = reqwest::Client::new();

    // Act: 100 votes per prefix, 120 to /votes and 20 to POST / (split by the ingress).
    let routes: Vec<&str> = std::iter::repeat_n("/rest/votes", 100)
        .chain(std::iter::repeat_n("/grpc/votes", 100))
        .chain(std::iter::repeat_n("/votes", 120))
        .chain(std::iter::repeat_n("/", 20))
        .collect();
    let statuses: Vec<u16> = futures::stream::iter(routes.iter().enumerate())
        .map(|(i, route)| {
            let (http, url) = (&http, format!("{}{route}", ingress.url));
            async move {
                let vote = json!({"name": format!("Band {}", i % 4), "album": "Live", "year": "2001", "rank": "7.5"});
                http.post(url).json(&vote).send().await.unwrap().status().as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    // Assert
    assert!(statuses.iter().all(|status| *status == 202), "{statuses:?}");
    let (counted, logged) = consumer.wait_for_counted(340, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((counted, logged), (340, 340));
    assert_eq!(consumer.total().await, 340);
    let bands = consumer.band_counts().await;
    assert!((0..4).all(|b| bands.get(&format!("Band {b}")) == Some(&85)), "{bands:?}");
    let paths = consumer.path_counts().await;
    let (rest, grpc) = (paths.get("rest").copied().unwrap_or(0), paths.get("grpc").copied().unwrap_or(0));
    assert_eq!(rest + grpc, 340, "{paths:?}");
    // Each path has its 100 and a share of the 140 split votes (either share below 20 has
    // a probability under 1e-13 with a fair split).
    assert!(rest >= 120 && grpc >= 120, "the split sent {} to rest and {} to grpc", rest - 100, grpc - 100);
    for (path, count) in [("rest", rest), ("grpc", grpc)] {
        let documents = consumer.votes.count_documents(doc! { "path": path }).await.unwrap();
        assert_eq!(documents as i64, count, "MongoDB and Redis agree on the {path} path");
    }
}
