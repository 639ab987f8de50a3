//! Records the consumer cannot decode go to the dead-letter topic unchanged (same key
//! and payload), with headers saying why and where they came from, so the consumer
//! keeps going and an operator can inspect or replay them.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

pub const REASON_HEADER: &str = "voteflow-dlq-reason";
pub const SOURCE_HEADER: &str = "voteflow-dlq-source";

#[derive(Clone)]
pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetters {
    pub fn new(brokers: &str, topic: &str) -> rdkafka::error::KafkaResult<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("client.id", "voteflow-consumer-dlq")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "10000")
            .create()?;
        Ok(Self { producer, topic: topic.to_owned() })
    }

    /// Sends one record to the DLQ and waits for Kafka's acknowledgement.
    pub async fn send(&self, message: &OwnedMessage, reason: &str) -> rdkafka::error::KafkaResult<()> {
        let source = format!("{}/{}/{}", message.topic(), message.partition(), message.offset());
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for header in original.iter() {
                headers = headers.insert(Header { key: header.key, value: header.value });
            }
        }
        let headers = headers
            .insert(Header { key: REASON_HEADER, value: Some(reason) })
            .insert(Header { key: SOURCE_HEADER, value: Some(&source) });
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        self.producer.send(record, Duration::from_secs(5)).await.map(drop).map_err(|(error, _)| error)
    }
}
