//! The vote log is idempotent: records read again (here by a second consumer group over
//! the same topic, as after a lost commit) never duplicate a document.

use std::time::Duration;

use crate::helpers::{IsolatedConsumer, TestTopic, unique_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_delivered_twice_are_logged_once() {
    // Arrange
    let topic = TestTopic::create().await;
    let database = format!("test_{}", unique_id());
    for i in 0..25 {
        topic.send_vote(&format!("Band {}", i % 5)).await;
    }
    let first = IsolatedConsumer::start(&topic.name, &database).await;
    assert_eq!(first.wait_for_counted(25, Duration::from_secs(30)).await, (25, 25));
    assert_eq!(first.logged().await, 25);

    // Act: every record delivered again, into the same vote log.
    let second = IsolatedConsumer::start(&topic.name, &database).await;

    // Assert
    assert_eq!(second.wait_for_counted(25, Duration::from_secs(30)).await.0, 25, "the second group saw every record");
    assert_eq!(second.logged().await, 25, "no document was written twice");
}
