//! With MongoDB down the consumer counts nothing, commits nothing and reports it (`/readyz`
//! 503, `sink_up{sink="mongo"}` 0, sink errors at its backoff's pace); once MongoDB is back
//! every vote is logged, counted and committed once.

use std::time::{Duration, Instant};

use voteflow_testkit::GroupNames;

use crate::helpers::{CuttingProxy, IsolatedConsumer, TestTopic, redis_url, wait_ready};

const WITHIN: Duration = Duration::from_secs(60);

async fn readyz(consumer: &IsolatedConsumer) -> u16 {
    voteflow_testkit::get(consumer.admin, "/readyz").await.map_or(0, |(status, _)| status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_mongodb_down_nothing_is_counted_or_committed_until_it_is_back() {
    // Arrange: a consumer reaching MongoDB through a proxy that can be cut; 5 votes counted.
    let topic = TestTopic::create().await;
    let mongo = CuttingProxy::to_mongodb().await;
    // A short server selection, so a try fails fast and the backoff alone paces the tries.
    let via = format!("mongodb://{}/?serverSelectionTimeoutMS=200", mongo.addr);
    let GroupNames { group, prefix, database } = GroupNames::unique();
    let consumer = IsolatedConsumer::start_with(&topic.name, &database, &group, &prefix, &redis_url(), &via, &[]).await;
    for i in 0..5 {
        topic.send_vote(&format!("Band {i}")).await;
    }
    assert_eq!(consumer.wait_for_counted(5, WITHIN).await, (5, 5));
    assert_eq!(consumer.wait_for_committed(5, WITHIN).await, 5);
    assert_eq!(wait_ready(consumer.admin, Duration::from_secs(10)).await, 200, "ready while every sink answers");

    // Act: MongoDB goes away; 10 more votes arrive; the consumer fails at least twice.
    mongo.cut();
    for i in 0..10 {
        topic.send_vote(&format!("Band {i}")).await;
    }
    let mongo_errors = r#"voteflow_consumer_sink_errors_total{sink="mongo"}"#;
    let waiting = Instant::now();
    while consumer.metric(mongo_errors).await < 2.0 && waiting.elapsed() < WITHIN {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failing_since = Instant::now();
    let errors_then = consumer.metric(mongo_errors).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let errors_3s_later = consumer.metric(mongo_errors).await;
    let while_down = (
        consumer.total().await,
        consumer.committed(),
        readyz(&consumer).await,
        consumer.metric(r#"voteflow_consumer_sink_up{sink="mongo"}"#).await,
    );
    mongo.restore();

    // Assert: while down, Redis (written after MongoDB) counted nothing new, nothing was
    // committed, readiness and sink_up said so, and the retries were paced, not a busy loop.
    assert!(errors_then >= 2.0, "MongoDB's failures were reported: {errors_then}");
    assert_eq!(while_down, (5, 5, 503, 0.0), "counted, committed, /readyz, sink_up while MongoDB was down");
    let retries = errors_3s_later - errors_then;
    // Doubling from 100 ms, the tries after the second are 400 ms, 800 ms and 1.6 s apart
    // (2 or 3 in 3 s); without the backoff, one every 300 ms or so.
    assert!(retries <= 5.0, "{retries} retries in {:?}: the backoff doubles from 100 ms", failing_since.elapsed());
    // Once back, each vote once, committed, and ready again.
    assert_eq!(consumer.wait_for_counted(15, WITHIN).await, (15, 15));
    assert_eq!(consumer.wait_for_committed(15, WITHIN).await, 15);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((consumer.total().await, consumer.logged().await), (15, 15), "nothing twice");
    assert_eq!(consumer.metric(r#"voteflow_consumer_sink_up{sink="mongo"}"#).await, 1.0);
    assert_eq!(readyz(&consumer).await, 200);
}
