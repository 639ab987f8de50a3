//! Writes records straight to a test topic; the consumer under test is `voteflow_consumer::testing::IsolatedConsumer`.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use voteflow_proto::record::PATH_HEADER;
use voteflow_proto::{AcceptedRecord, Vote, VoteJson, VotePath};

pub(crate) use voteflow_consumer::testing::{IsolatedConsumer, env_or, unique_id};

/// A topic with its DLQ, and a producer writing raw records to it.
pub(crate) struct TestTopic {
    pub(crate) name: String,
    pub(crate) brokers: String,
    producer: FutureProducer,
}

impl TestTopic {
    pub(crate) async fn create() -> Self {
        voteflow_runtime::telemetry::init_for_tests();
        let brokers = voteflow_consumer::testing::kafka_brokers();
        let name = voteflow_consumer::testing::create_topic(3).await;
        let producer = rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
        Self { name, brokers, producer }
    }

    pub(crate) async fn send(&self, key: &str, payload: &[u8], path: Option<&str>) {
        let mut headers = OwnedHeaders::new();
        if let Some(path) = path {
            headers = headers.insert(Header { key: PATH_HEADER, value: Some(path) });
        }
        let record = FutureRecord::to(&self.name).key(key).payload(payload).headers(headers);
        self.producer.send(record, Duration::from_secs(5)).await.expect("Kafka acknowledged");
    }

    pub(crate) async fn send_vote(&self, band: &str) -> AcceptedRecord {
        let record = accepted_vote(band);
        self.send(&record.key(), &record.encode_payload(), Some("rest")).await;
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
