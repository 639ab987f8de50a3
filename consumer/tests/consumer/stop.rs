//! The consumer binary, configured through its env vars alone, stopped with SIGTERM while
//! MongoDB is down and a batch is in hand: it exits 0 within its shutdown deadline,
//! commits only what every sink took, and the batch it held is counted once afterwards.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use voteflow_testkit::{GroupNames, GroupView};

use crate::helpers::{CuttingProxy, IsolatedConsumer, TestTopic, redis_url, wait_ready};

const WITHIN: Duration = Duration::from_secs(60);
const SHUTDOWN_DEADLINE_SECS: u64 = 4;

/// The consumer binary with every setting from the environment, as a Deployment starts it.
fn spawn_consumer(env: &[(&str, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_consumer"))
        .env_clear()
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the consumer binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_mongodb_down_stops_within_the_deadline_and_commits_only_what_the_sinks_took() {
    // Arrange: the binary reaching MongoDB through a proxy that can be cut, configured by
    // env vars only; 5 votes counted and committed.
    let topic = TestTopic::create().await;
    let mongo = CuttingProxy::to_mongodb().await;
    let GroupNames { group, prefix, database } = GroupNames::unique();
    // Known before the process starts: a port nothing listens on yet.
    let admin = voteflow_testkit::dead_address();
    let mut child = spawn_consumer(&[
        ("KAFKA_BROKERS", topic.brokers.clone()),
        ("KAFKA_TOPIC", topic.name.clone()),
        ("KAFKA_GROUP_ID", group.clone()),
        ("KAFKA_DLQ_TOPIC", format!("{}.dlq", topic.name)),
        ("REDIS_URL", redis_url()),
        ("REDIS_KEY_PREFIX", prefix.clone()),
        ("MONGODB_URI", format!("mongodb://{}/?serverSelectionTimeoutMS=200", mongo.addr)),
        ("MONGODB_DATABASE", database.clone()),
        ("CONSUMER_ADMIN_LISTEN", admin.to_string()),
        ("SHUTDOWN_DEADLINE_SECS", SHUTDOWN_DEADLINE_SECS.to_string()),
    ]);
    let view = GroupView::new(&topic.name, &group, &prefix, &database).await;
    assert_eq!(wait_ready(admin, WITHIN).await, 200, "the consumer binary ready on {admin}");
    for i in 0..5 {
        topic.send_vote(&format!("Band {i}")).await;
    }
    assert_eq!(view.wait_for_counted(5, WITHIN).await, (5, 5), "under the env's prefix and database");
    assert_eq!(view.wait_for_committed(5, WITHIN).await, 5, "committed for the env's group");

    // Act: MongoDB goes away, 10 votes arrive and fail to be logged; then SIGTERM.
    mongo.cut();
    for i in 0..10 {
        topic.send_vote(&format!("Band {i}")).await;
    }
    let mongo_errors = r#"voteflow_consumer_sink_errors_total{sink="mongo"}"#;
    let failing = Instant::now();
    while voteflow_testkit::metric(admin, mongo_errors).await.unwrap_or(0.0) < 1.0 {
        assert!(failing.elapsed() < WITHIN, "the batch in hand never failed at MongoDB");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let signalled = Instant::now();
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("its status") {
            break exit;
        }
        if signalled.elapsed() > Duration::from_secs(SHUTDOWN_DEADLINE_SECS + 10) {
            let _ = child.kill();
            panic!("the consumer still ran {:?} after SIGTERM", signalled.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stopped_in = signalled.elapsed();

    // Assert: a clean, prompt exit that left the failed batch uncommitted and uncounted.
    assert!(exit.success(), "exit {exit:?}");
    assert!(
        stopped_in < Duration::from_secs(SHUTDOWN_DEADLINE_SECS),
        "stopped {stopped_in:?} after SIGTERM, past its {SHUTDOWN_DEADLINE_SECS} s deadline"
    );
    assert_eq!((view.total().await, view.committed()), (5, 5), "counted and committed after the stop");

    // Once MongoDB is back, the group's next member takes the batch up: each vote once.
    mongo.restore();
    let next = IsolatedConsumer::start_in(&topic.name, &database, &group, &prefix).await;
    assert_eq!(next.wait_for_counted(15, WITHIN).await, (15, 15));
    assert_eq!(next.wait_for_committed(15, WITHIN).await, 15);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((next.total().await, next.logged().await), (15, 15), "nothing twice");
}
