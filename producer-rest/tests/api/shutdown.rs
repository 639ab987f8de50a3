//! rest-server stopping under load (the shutdown signal SIGTERM triggers): every vote is
//! answered 202 or not at all (a refused or closed connection: never accepted), no 5xx,
//! each 202 is in Kafka exactly once, and the stop ends within the grace period.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser as _;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use voteflow_producer_rest::server;
use voteflow_producer_rest::settings::ServerSettings;

const SENDERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_rest_server_answers_its_votes_in_flight_and_every_202_is_in_kafka() {
    // Arrange: rest-server on a fresh topic, ready.
    voteflow_testkit::init_logs();
    let topic = voteflow_testkit::create_topic(1).await;
    let shutdown = CancellationToken::new();
    let settings = ServerSettings::try_parse_from([
        "rest-server",
        "--listen=127.0.0.1:0",
        &format!("--kafka-brokers={}", voteflow_testkit::kafka_brokers()),
        &format!("--kafka-topic={topic}"),
        "--shutdown-grace-secs=3",
    ])
    .unwrap();
    let running = server::launch(settings, prometheus::Registry::new(), shutdown.clone()).await.unwrap();
    let url = format!("http://{}", running.addr);
    let ready_by = Instant::now() + Duration::from_secs(15);
    while reqwest::get(format!("{url}/readyz")).await.unwrap().status() != 200 {
        assert!(Instant::now() < ready_by, "rest-server not ready within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Act: senders post votes until their connection is refused; the stop comes once 200
    // votes were answered.
    let answered = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let (url, answered) = (format!("{url}/votes"), answered.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut statuses = Vec::new();
                for i in 0.. {
                    let vote = json!({"band": format!("Stop {sender}"), "album": format!("Take {i}"), "year": 2000, "rank": 6});
                    match http.post(&url).json(&vote).send().await {
                        Ok(response) => statuses.push(response.status().as_u16()),
                        // Refused, or closed before an answer: not accepted, and the end.
                        Err(_) => return statuses,
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                statuses
            })
        })
        .collect();
    while answered.load(Ordering::Relaxed) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopping = Instant::now();
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(3 + 5), running.stopped()).await;
    let stop_took = stopping.elapsed();
    let mut statuses = Vec::new();
    for sender in senders {
        statuses.extend(sender.await.unwrap());
    }

    // Assert: answers were 202 only, and Kafka holds exactly the 202s.
    stopped.expect("stopped within the grace period and its mercy").expect("a clean stop");
    println!("{} votes answered 202, the stop took {stop_took:?}", statuses.len());
    assert!(statuses.iter().all(|status| *status == 202), "{statuses:?}");
    assert_eq!(voteflow_testkit::topic_records(&topic), statuses.len() as i64, "each 202 in Kafka once");
}
