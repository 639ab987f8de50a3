//! Exactly-once effect: records read again (after a lost commit, a crash or a rebalance)
//! and votes a client sent twice change neither the Redis tallies nor the vote log.

use std::time::Duration;

use voteflow_proto::{AcceptedRecord, VotePath};

use crate::helpers::{IsolatedConsumer, TestTopic, unique_id};

const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_delivered_again_are_counted_and_logged_once() {
    // Arrange: one consumer counts and logs 25 votes, then stops.
    let topic = TestTopic::create().await;
    let (database, prefix) = (format!("test_{}", unique_id()), format!("test:{}:", unique_id()));
    for i in 0..25 {
        topic.send_vote(&format!("Band {}", i % 5)).await;
    }
    let first = IsolatedConsumer::start_in(&topic.name, &database, &format!("test-{}", unique_id()), &prefix).await;
    assert_eq!(first.wait_for_counted(25, WITHIN).await, (25, 25));
    first.stop().await;

    // Act: a consumer whose group has no commits reads every record again (as after
    // lost commits), into the same Redis keys and vote log.
    let second = IsolatedConsumer::start_in(&topic.name, &database, &format!("test-{}", unique_id()), &prefix).await;

    // Assert
    assert_eq!(second.wait_for_committed(25, WITHIN).await, 25, "the second group read and committed every record");
    assert_eq!(second.total().await, 25, "no vote counted twice");
    assert_eq!(second.logged().await, 25, "no document written twice");
    let bands = second.band_counts().await;
    assert!((0..5).all(|i| bands[&format!("Band {i}")] == 5), "per-band counts unchanged: {bands:?}");
    assert_eq!(second.metric("voteflow_consumer_duplicates_total{kind=\"redelivered\"}").await, 25.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vote_id_sent_again_by_a_client_is_counted_and_logged_once() {
    // Arrange: 10 votes, 4 of them retried by their client (same vote_id, a new Kafka
    // record accepted later), one retried twice.
    let topic = TestTopic::create().await;
    let database = format!("test_{}", unique_id());
    let mut sent: Vec<AcceptedRecord> = Vec::new();
    for i in 0..10 {
        sent.push(topic.send_vote(&format!("Band {}", i % 2)).await);
    }
    for original in [&sent[0], &sent[3], &sent[3], &sent[7], &sent[9]] {
        let retry =
            AcceptedRecord { vote: original.vote.clone(), accepted_at: chrono::Utc::now(), path: VotePath::Grpc };
        topic.send(&retry.key(), &retry.encode_payload(), Some("grpc")).await;
    }

    // Act
    let consumer = IsolatedConsumer::start(&topic.name, &database).await;

    // Assert
    assert_eq!(consumer.wait_for_committed(15, WITHIN).await, 15, "every record was read");
    assert_eq!(consumer.total().await, 10);
    assert_eq!(consumer.logged().await, 10);
    assert_eq!(consumer.band_counts().await, [("Band 0".to_owned(), 5), ("Band 1".to_owned(), 5)].into());
    assert_eq!(consumer.path_counts().await, [("rest".to_owned(), 10)].into(), "the first acceptance counts");
    assert_eq!(consumer.metric("voteflow_consumer_duplicates_total{kind=\"retry\"}").await, 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_leaving_mid_stream_hands_over_without_loss_or_double_count() {
    // Arrange: two replicas of one group share the sinks; votes keep arriving.
    let topic = TestTopic::create().await;
    let (database, group, prefix) =
        (format!("test_{}", unique_id()), format!("test-{}", unique_id()), format!("test:{}:", unique_id()));
    let leaving = IsolatedConsumer::start_in(&topic.name, &database, &group, &prefix).await;
    let staying = IsolatedConsumer::start_in(&topic.name, &database, &group, &prefix).await;
    for i in 0..150 {
        topic.send_vote(&format!("Band {}", i % 3)).await;
    }
    staying.wait_for_counted(100, WITHIN).await;

    // Act: one replica stops (a rebalance hands its partitions over) while votes arrive.
    let sending = async {
        for i in 150..300 {
            topic.send_vote(&format!("Band {}", i % 3)).await;
        }
    };
    tokio::join!(sending, leaving.stop());

    // Assert
    assert_eq!(staying.wait_for_committed(300, WITHIN).await, 300);
    assert_eq!(staying.wait_for_counted(300, WITHIN).await, (300, 300));
    let bands = staying.band_counts().await;
    assert!((0..3).all(|i| bands[&format!("Band {i}")] == 100), "exact per-band counts: {bands:?}");
}
