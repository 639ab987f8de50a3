//! Spawns a whole gRPC path for one test and gives access to each part.

use std::net::SocketAddr;

use clap::Parser as _;
use tokio_util::sync::CancellationToken;
use voteflow_producer_grpc::rpc::vote_service_client::VoteServiceClient;
use voteflow_producer_grpc::settings::{FrontSettings, ServerSettings};
use voteflow_producer_grpc::{front, server};
use voteflow_testkit::{IsolatedConsumer, create_topic, kafka_brokers, unique_id};

pub(crate) struct GrpcPipeline {
    pub(crate) front_url: String,
    pub(crate) server_addr: SocketAddr,
    pub(crate) topic: String,
    pub(crate) http: reqwest::Client,
    pub(crate) consumer: IsolatedConsumer,
    server_shutdown: CancellationToken,
    shutdown: CancellationToken,
}

impl Drop for GrpcPipeline {
    fn drop(&mut self) {
        self.server_shutdown.cancel();
        self.shutdown.cancel();
    }
}

/// Starts a grpc-server producing to `topic` on `listen`; returns its address.
pub(crate) async fn start_server(topic: &str, listen: &str, shutdown: CancellationToken) -> SocketAddr {
    let settings = ServerSettings::try_parse_from([
        "grpc-server",
        &format!("--listen={listen}"),
        "--admin-listen=127.0.0.1:0",
        &format!("--kafka-brokers={}", kafka_brokers()),
        &format!("--kafka-topic={topic}"),
    ])
    .unwrap();
    let server = server::launch(settings, prometheus::Registry::new(), shutdown).await.expect("start grpc-server");
    let addr = server.addr;
    tokio::spawn(async move {
        let _ = server.stopped().await;
    });
    addr
}

impl GrpcPipeline {
    pub(crate) async fn spawn() -> Self {
        voteflow_testkit::init_logs();
        let topic = create_topic(6).await;
        let (server_shutdown, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let server_addr = start_server(&topic, "127.0.0.1:0", server_shutdown.clone()).await;
        let front_settings = FrontSettings::try_parse_from([
            "grpc-client",
            "--listen=127.0.0.1:0",
            &format!("--server-url=http://{server_addr}"),
        ])
        .unwrap();
        let front =
            front::launch(front_settings, prometheus::Registry::new(), shutdown.clone()).await.expect("grpc-client");
        let consumer = IsolatedConsumer::start(&topic, &format!("test_{}", unique_id())).await;
        Self {
            front_url: format!("http://{}", front.addr),
            server_addr,
            topic,
            http: reqwest::Client::new(),
            consumer,
            server_shutdown,
            shutdown,
        }
    }

    pub(crate) async fn post_vote(&self, vote: &serde_json::Value) -> reqwest::Response {
        self.http.post(format!("{}/votes", self.front_url)).json(vote).send().await.expect("grpc-client answers")
    }

    /// A gRPC client straight to grpc-server, bypassing the front.
    pub(crate) async fn grpc(&self) -> VoteServiceClient<tonic::transport::Channel> {
        VoteServiceClient::connect(format!("http://{}", self.server_addr)).await.expect("connect to grpc-server")
    }

    /// Stops grpc-server (the front keeps running); a new token for a restart.
    pub(crate) fn stop_server(&mut self) -> CancellationToken {
        self.server_shutdown.cancel();
        self.server_shutdown = CancellationToken::new();
        self.server_shutdown.clone()
    }
}
