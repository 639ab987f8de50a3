//! Writes records straight to a test topic; the consumer under test is `voteflow_testkit::IsolatedConsumer`.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use voteflow_domain::record::PATH_HEADER;
use voteflow_domain::{AcceptedRecord, Vote, VoteJson, VotePath};

pub(crate) use voteflow_testkit::{IsolatedConsumer, checking_redis, mongodb_uri, redis_url, unique_id};

/// A topic with its DLQ, and a producer writing raw records to it.
pub(crate) struct TestTopic {
    pub(crate) name: String,
    pub(crate) brokers: String,
    producer: FutureProducer,
}

impl TestTopic {
    pub(crate) async fn create() -> Self {
        voteflow_testkit::init_logs();
        let brokers = voteflow_testkit::kafka_brokers();
        let name = voteflow_testkit::create_topic(3).await;
        let producer = rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
        Self { name, brokers, producer }
    }

    /// Writes a record; without a key, as the producer servers write votes.
    pub(crate) async fn send(&self, key: Option<&str>, payload: &[u8], path: Option<&str>) {
        self.send_to(None, key, payload, path).await;
    }

    /// Like [`Self::send`], into `partition` when given (else the partitioner's choice).
    pub(crate) async fn send_to(&self, partition: Option<i32>, key: Option<&str>, payload: &[u8], path: Option<&str>) {
        let mut headers = OwnedHeaders::new();
        if let Some(path) = path {
            headers = headers.insert(Header { key: PATH_HEADER, value: Some(path) });
        }
        let mut record = FutureRecord::to(&self.name).payload(payload).headers(headers);
        record.key = key;
        record.partition = partition;
        self.producer.send(record, Duration::from_secs(5)).await.expect("Kafka acknowledged");
    }

    pub(crate) async fn send_vote(&self, band: &str) -> AcceptedRecord {
        let record = accepted_vote(band);
        self.send(None, &record.encode_payload(), Some("rest")).await;
        record
    }

    /// A new vote for `band` written into `partition`.
    pub(crate) async fn send_vote_to(&self, partition: i32, band: &str) -> AcceptedRecord {
        let record = accepted_vote(band);
        self.send_to(Some(partition), None, &record.encode_payload(), Some("rest")).await;
        record
    }
}

/// A new vote for `band`, as rest-server would write it to Kafka.
pub(crate) fn accepted_vote(band: &str) -> AcceptedRecord {
    let json: VoteJson =
        serde_json::from_value(serde_json::json!({"band": band, "album": "Test Album", "year": 2000, "rank": 5}))
            .unwrap();
    AcceptedRecord { vote: Vote::try_from(json).unwrap(), accepted_at: chrono::Utc::now(), path: VotePath::Rest }
}

/// A TCP proxy in front of a real server that, until released, stalls each connection at
/// the first read from the client containing `word`, and everything after it on that
/// connection: a server that hangs, for the commands the test names.
pub(crate) struct StallingProxy {
    /// `redis://` URL of the proxy.
    pub(crate) url: String,
    released: Arc<watch::Sender<bool>>,
}

impl StallingProxy {
    /// Proxies to the server of the `redis://host:port/` URL `target`.
    pub(crate) async fn start(target: &str, word: &'static [u8]) -> Self {
        let target = target.trim_start_matches("redis://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}/", listener.local_addr().unwrap());
        let released = Arc::new(watch::channel(false).0);
        let gate = released.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else { continue };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
                let mut gate = gate.subscribe();
                tokio::spawn(async move {
                    let mut buffer = vec![0; 64 * 1024];
                    while let Ok(read @ 1..) = from_client.read(&mut buffer).await {
                        if buffer[..read].windows(word.len()).any(|window| window == word) {
                            let _ = gate.wait_for(|released| *released).await;
                        }
                        if to_server.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { url, released }
    }

    /// Lets every stalled and later read through.
    pub(crate) fn release(&self) {
        self.released.send_replace(true);
    }
}

/// A TCP proxy in front of a real server that can be cut: while cut, it closes every
/// connection it carries and every new one at once, as a server that went down does.
pub(crate) struct CuttingProxy {
    /// `host:port` of the proxy.
    pub(crate) addr: std::net::SocketAddr,
    up: Arc<watch::Sender<bool>>,
}

impl CuttingProxy {
    /// Proxies to `target` (`host:port`).
    pub(crate) async fn start(target: &str) -> Self {
        let target = target.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(watch::channel(true).0);
        let gate = up.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = gate.subscribe();
                if !*cut.borrow() {
                    continue;
                }
                let Ok(mut server) = TcpStream::connect(&target).await else { continue };
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    /// Proxies to the MongoDB server of MONGODB_URI.
    pub(crate) async fn to_mongodb() -> Self {
        let uri = mongodb_uri();
        Self::start(uri.trim_start_matches("mongodb://").split(['/', '?']).next().expect("a host in MONGODB_URI")).await
    }

    pub(crate) fn cut(&self) {
        self.up.send_replace(false);
    }

    pub(crate) fn restore(&self) {
        self.up.send_replace(true);
    }
}

/// `/readyz` of the consumer admin server at `admin` once it answers 200, or its last answer
/// after `within` (0 when nothing answered).
pub(crate) async fn wait_ready(admin: std::net::SocketAddr, within: Duration) -> u16 {
    let deadline = std::time::Instant::now() + within;
    loop {
        let status = voteflow_testkit::get(admin, "/readyz").await.map_or(0, |(status, _)| status);
        if status == 200 || std::time::Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
