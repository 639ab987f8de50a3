//! Records the consumer cannot decode go to the DLQ with a reason, and the consumer goes on.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use voteflow_consumer::dead_letters::REASON_HEADER;

use crate::helpers::{IsolatedConsumer, TestTopic, unique_id};

fn read_dead_letters(topic: &TestTopic, expected: usize) -> Vec<(Vec<u8>, String)> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &topic.brokers)
        .set("group.id", format!("reader-{}", unique_id()))
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&format!("{}.dlq", topic.name), 0, Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    let mut found = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while found.len() < expected && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let reason = message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == REASON_HEADER).and_then(|h| h.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            found.push((message.payload().unwrap_or_default().to_vec(), reason));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undecodable_records_go_to_the_dlq_and_the_consumer_keeps_going() {
    // Arrange
    let topic = TestTopic::create().await;
    let consumer = IsolatedConsumer::start(&topic.name, &format!("test_{}", unique_id())).await;

    // Act: garbage, a good vote on a path nobody has, then a valid vote.
    topic.send(Some("junk"), b"\xff\x00not protobuf", Some("rest")).await;
    let valid = topic.send_vote("Portishead").await;
    topic.send(None, &valid.encode_payload(), Some("carrier-pigeon")).await;
    topic.send_vote("Massive Attack").await;

    // Assert
    assert_eq!(consumer.wait_for_counted(2, Duration::from_secs(30)).await, (2, 2));
    assert_eq!(consumer.logged().await, 2);
    let mut dead = read_dead_letters(&topic, 2);
    assert_eq!(dead.len(), 2, "both bad records are in the DLQ");
    // The two records sit in different partitions, whose order nothing promises.
    dead.sort_by_key(|(payload, _)| payload.as_slice() != b"\xff\x00not protobuf");
    assert_eq!(dead[0].0, b"\xff\x00not protobuf", "the payload is kept unchanged");
    assert!(dead[0].1.contains("protobuf"), "reason: {}", dead[0].1);
    assert_eq!(dead[1].0, valid.encode_payload(), "the payload is kept unchanged");
    assert!(dead[1].1.contains("voteflow-path"), "reason: {}", dead[1].1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(consumer.total().await, 2);
}
