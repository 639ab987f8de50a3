//! Exactly-once effect: records read again (after a lost commit, a crash or a rebalance),
//! votes a client sent twice, and a Redis that lost writes leave the Redis tallies and
//! the vote log exactly as if every vote had been processed once.

use std::time::Duration;

use voteflow_domain::{AcceptedRecord, VotePath};

use voteflow_consumer::sink::Consumed;
use voteflow_consumer::sink::tally::Tally;
use voteflow_consumer::sink::vote_log::{COLLECTION, VoteLog};

use crate::helpers::{
    IsolatedConsumer, StallingProxy, TestTopic, accepted_vote, checking_redis, mongodb_uri, redis_url, unique_id,
};

const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_written_again_are_counted_and_logged_once() {
    // Arrange: the sinks of one consumer, and 20 records of 2 partitions as it receives them.
    let (prefix, database, topic) = (format!("test:{}:", unique_id()), format!("test_{}", unique_id()), "t.votes");
    let tally = Tally::connect(&redis_url(), &prefix).await.unwrap();
    let log = VoteLog::connect(&mongodb_uri(), &database).await.unwrap();
    let records: Vec<Consumed> = (0..20)
        .map(|i| Consumed {
            record: accepted_vote(&format!("Band {}", i % 4)),
            partition: i % 2,
            offset: i64::from(i / 2),
        })
        .collect();
    let write = |batch: &'static [Consumed]| {
        let (tally, log) = (tally.clone(), log.clone());
        async move {
            let logged = log.insert(batch).await.unwrap();
            let countable: Vec<&Consumed> =
                batch.iter().enumerate().filter(|(i, _)| !logged.retries.contains(i)).map(|(_, c)| c).collect();
            assert!(logged.conflicts.is_empty(), "no vote_id here is reused for another vote");
            let mut last_offsets = std::collections::BTreeMap::new();
            for consumed in batch {
                let last = last_offsets.entry(consumed.partition).or_insert(consumed.offset);
                *last = (*last).max(consumed.offset);
            }
            let counted = tally.apply(topic, &last_offsets, &countable).await.unwrap();
            (logged, counted.iter().map(|(_, votes)| votes).sum::<u64>())
        }
    };
    let records: &'static [Consumed] = Box::leak(records.into_boxed_slice());

    // Act: the first 12 written (then a crash before the commit), then all 20 again, then
    // all 20 once more by a zombie after a rebalance.
    let (_, first) = write(&records[..12]).await;
    let (again, second) = write(records).await;
    let (zombie, third) = write(records).await;

    // Assert
    assert_eq!((first, second, third), (12, 8, 0), "votes counted by each write");
    assert_eq!((again.redelivered, zombie.redelivered), (12, 20), "the log saw the same records again");
    assert!(again.retries.is_empty() && zombie.retries.is_empty(), "a redelivery is not a client retry");
    let mut redis = checking_redis(&redis_url()).await.unwrap();
    let total: i64 = redis::cmd("GET").arg(format!("{prefix}total")).query_async(&mut redis).await.unwrap();
    let bands: std::collections::HashMap<String, i64> =
        redis::cmd("HGETALL").arg(format!("{prefix}votes:band")).query_async(&mut redis).await.unwrap();
    assert_eq!(total, 20);
    assert!((0..4).all(|i| bands[&format!("Band {i}")] == 5), "per-band counts: {bands:?}");
    let mongo = mongodb::Client::with_uri_str(mongodb_uri()).await.unwrap();
    let logged = mongo.database(&database).collection::<mongodb::bson::Document>(COLLECTION);
    assert_eq!(logged.count_documents(mongodb::bson::doc! {}).await.unwrap(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_group_over_the_same_sinks_counts_nothing_twice() {
    // Arrange: one consumer counts and logs 25 votes, then stops.
    let topic = TestTopic::create().await;
    let (database, prefix) = (format!("test_{}", unique_id()), format!("test:{}:", unique_id()));
    for i in 0..25 {
        topic.send_vote(&format!("Band {}", i % 5)).await;
    }
    let first = IsolatedConsumer::start_in(&topic.name, &database, &format!("test-{}", unique_id()), &prefix).await;
    assert_eq!(first.wait_for_counted(25, WITHIN).await, (25, 25));
    first.stop().await;

    // Act: a consumer whose group has no commits (as after lost commits) over the same
    // Redis keys and vote log, then 5 new votes.
    let second = IsolatedConsumer::start_in(&topic.name, &database, &format!("test-{}", unique_id()), &prefix).await;
    for i in 0..5 {
        topic.send_vote(&format!("Band {i}")).await;
    }

    // Assert: it counts the new votes, and only those.
    assert_eq!(second.wait_for_counted(30, WITHIN).await, (30, 30));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((second.total().await, second.logged().await), (30, 30), "no vote counted or logged twice");
    let bands = second.band_counts().await;
    assert!((0..5).all(|i| bands[&format!("Band {i}")] == 6), "per-band counts: {bands:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vote_id_sent_again_by_a_client_is_counted_and_logged_once() {
    // Arrange: 10 votes, 4 of them retried by their client (same vote_id, a new Kafka
    // record accepted later), one retried twice; all in one partition, so each retry is
    // read after its first copy.
    let topic = TestTopic::create().await;
    let database = format!("test_{}", unique_id());
    let mut sent: Vec<AcceptedRecord> = Vec::new();
    for i in 0..10 {
        sent.push(topic.send_vote_to(0, &format!("Band {}", i % 2)).await);
    }
    for original in [&sent[0], &sent[3], &sent[3], &sent[7], &sent[9]] {
        topic.send_to(Some(0), None, &retry_of(original).encode_payload(), Some("grpc")).await;
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
async fn a_vote_id_sent_again_into_another_partition_is_counted_once_whichever_copy_is_read_first() {
    // Arrange: the producers write votes without a key, so a client's retry can land in
    // another partition than its first copy and be read after it or before it.
    let topic = TestTopic::create().await;
    let consumer = IsolatedConsumer::start(&topic.name, &format!("test_{}", unique_id())).await;
    let mut originals: Vec<AcceptedRecord> = Vec::new();
    for i in 0..6 {
        originals.push(topic.send_vote_to(0, &format!("Band {}", i % 2)).await);
    }
    assert_eq!(consumer.wait_for_committed(6, WITHIN).await, 6);

    // Act: the six retried into partitions 1 and 2, read after their first copies; then a
    // new vote whose retry (gRPC) is read before the first copy (REST) in partition 1.
    for (i, original) in originals.iter().enumerate() {
        let partition = 1 + i32::try_from(i % 2).unwrap();
        topic.send_to(Some(partition), None, &retry_of(original).encode_payload(), Some("grpc")).await;
    }
    assert_eq!(consumer.wait_for_committed(12, WITHIN).await, 12);
    let late_first_copy = accepted_vote("Band 0");
    topic.send_to(Some(2), None, &retry_of(&late_first_copy).encode_payload(), Some("grpc")).await;
    assert_eq!(consumer.wait_for_committed(13, WITHIN).await, 13);
    topic.send_to(Some(1), None, &late_first_copy.encode_payload(), Some("rest")).await;

    // Assert: seven votes, each counted and logged once; of the last one, the copy the log
    // stored first (the retry) is the one counted.
    assert_eq!(consumer.wait_for_committed(14, WITHIN).await, 14, "every record was read");
    assert_eq!((consumer.total().await, consumer.logged().await), (7, 7));
    assert_eq!(consumer.band_counts().await, [("Band 0".to_owned(), 4), ("Band 1".to_owned(), 3)].into());
    assert_eq!(consumer.path_counts().await, [("rest".to_owned(), 6), ("grpc".to_owned(), 1)].into());
    assert_eq!(consumer.metric("voteflow_consumer_duplicates_total{kind=\"retry\"}").await, 7.0);
    assert_eq!(consumer.metric("voteflow_consumer_duplicates_total{kind=\"redelivered\"}").await, 0.0);
    // Each batch (at least one per wait above) went through every stage once.
    let batches = consumer.metric("voteflow_consumer_batches_total").await;
    assert!(batches >= 4.0, "{batches} batches");
    for stage in ["wait", "fill", "mongo", "redis"] {
        let series = format!("voteflow_consumer_stage_seconds_count{{stage=\"{stage}\"}}");
        assert_eq!(consumer.metric(&series).await, batches, "{series}");
    }
}

/// Before: answered 202 and silently not counted, reported nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vote_id_reused_for_another_vote_is_reported_and_not_counted() {
    // Arrange: three votes; then the first one's vote_id sent with another band, and the
    // second one's with another rank, and a true retry of the third.
    let topic = TestTopic::create().await;
    let database = format!("test_{}", unique_id());
    let mut sent: Vec<AcceptedRecord> = Vec::new();
    for band in ["Band 0", "Band 1", "Band 2"] {
        sent.push(topic.send_vote_to(0, band).await);
    }
    let reuse = |original: &AcceptedRecord, band: &str, rank: f64| {
        let mut wire = voteflow_domain::pb::Vote::from(&original.vote);
        (wire.band, wire.rank) = (band.to_owned(), rank);
        AcceptedRecord { vote: wire.try_into().unwrap(), accepted_at: chrono::Utc::now(), path: VotePath::Grpc }
    };
    for record in [reuse(&sent[0], "Band 1", 5.0), reuse(&sent[1], "Band 1", 9.5), retry_of(&sent[2])] {
        topic.send_to(Some(0), None, &record.encode_payload(), Some("grpc")).await;
    }

    // Act
    let consumer = IsolatedConsumer::start(&topic.name, &database).await;

    // Assert: the first copies are the votes; the two reuses are conflicts, not retries.
    assert_eq!(consumer.wait_for_committed(6, WITHIN).await, 6, "every record was read");
    assert_eq!((consumer.total().await, consumer.logged().await), (3, 3));
    let bands = consumer.band_counts().await;
    assert_eq!(bands, [("Band 0".to_owned(), 1), ("Band 1".to_owned(), 1), ("Band 2".to_owned(), 1)].into());
    assert_eq!(consumer.metric("voteflow_consumer_duplicates_total{kind=\"conflict\"}").await, 2.0);
    assert_eq!(consumer.metric("voteflow_consumer_duplicates_total{kind=\"retry\"}").await, 1.0);
}

/// A client's re-send of `original`: the same vote (vote_id), accepted again, over gRPC.
fn retry_of(original: &AcceptedRecord) -> AcceptedRecord {
    AcceptedRecord { vote: original.vote.clone(), accepted_at: chrono::Utc::now(), path: VotePath::Grpc }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tallies_a_redis_restore_lost_are_counted_again() {
    // Arrange
    let restored = Restored::arrange().await;

    // Act
    let third = restored.consumer(&redis_url()).await;

    // Assert: counting resumed where Redis had stopped, not where Kafka had committed.
    Restored::assert_whole_again(&third).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_assignment_while_redis_hangs_waits_for_the_offsets_redis_counted() {
    // Arrange: a restored Redis behind Kafka's commits, reached through a proxy that
    // stalls the read of the counted offsets.
    let restored = Restored::arrange().await;
    let hanging = StallingProxy::start(&redis_url(), b"HGETALL").await;

    // Act: the assignment comes while Redis does not answer; once a read of the offsets
    // has timed out (2 s), Redis stays silent 4 s more, then answers again.
    let third = restored.consumer(&hanging.url).await;
    let redis_errors = r#"voteflow_consumer_sink_errors_total{sink="redis"}"#;
    let waiting = std::time::Instant::now();
    while third.metric(redis_errors).await < 1.0 && waiting.elapsed() < WITHIN {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed_reads = third.metric(redis_errors).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let counted_while_hanging = third.total().await;
    hanging.release();

    // Assert: nothing was read past Redis's offsets meanwhile (starting at the committed
    // offsets would have lost 15 votes for good); afterwards every vote is counted once.
    assert!(failed_reads >= 1.0, "the offsets' read timed out while the proxy held it");
    assert_eq!(counted_while_hanging, 10, "nothing counted while Redis hung");
    Restored::assert_whole_again(&third).await;
}

/// A topic, group, database and key prefix whose Redis tallies went back in time.
struct Restored {
    topic: TestTopic,
    database: String,
    group: String,
    prefix: String,
}

impl Restored {
    /// 10 votes, all in partition 0, counted; a snapshot of the tally keys (so it knows no
    /// offset of partitions 1 and 2); 15 more, in every partition, counted and committed;
    /// then Redis comes back from the snapshot, as after a crash that lost its last writes,
    /// while Kafka's committed offsets are past all 25 votes. No consumer is left running.
    async fn arrange() -> Self {
        let restored = Self {
            topic: TestTopic::create().await,
            database: format!("test_{}", unique_id()),
            group: format!("test-{}", unique_id()),
            prefix: format!("test:{}:", unique_id()),
        };
        restored.count_then_restore().await;
        restored
    }

    /// A consumer of the group, reaching Redis at `redis_url`.
    async fn consumer(&self, redis_url: &str) -> IsolatedConsumer {
        IsolatedConsumer::start_with(
            &self.topic.name,
            &self.database,
            &self.group,
            &self.prefix,
            redis_url,
            &mongodb_uri(),
            &[],
        )
        .await
    }

    async fn assert_whole_again(consumer: &IsolatedConsumer) {
        assert_eq!(consumer.wait_for_counted(25, WITHIN).await, (25, 25));
        let bands = consumer.band_counts().await;
        assert!((0..5).all(|i| bands[&format!("Band {i}")] == 5), "per-band counts whole again: {bands:?}");
    }

    async fn count_then_restore(&self) {
        let (topic, database, group, prefix) = (&self.topic, &self.database, &self.group, &self.prefix);
        for i in 0..10 {
            topic.send_vote_to(0, &format!("Band {}", i % 5)).await;
        }
        let first = IsolatedConsumer::start_in(&topic.name, database, group, prefix).await;
        assert_eq!(first.wait_for_counted(10, WITHIN).await, (10, 10));
        assert_eq!(first.wait_for_committed(10, WITHIN).await, 10);
        let keys = [
            first.keys.total.clone(),
            first.keys.by_band.clone(),
            first.keys.by_album.clone(),
            first.keys.by_path.clone(),
            first.keys.leaderboard.clone(),
            first.keys.history_open.clone(),
            first.keys.history_minute.clone(),
            first.keys.history_band.clone(),
            first.keys.history_path.clone(),
            first.keys.applied(&topic.name),
        ];
        first.stop().await;
        let mut redis = checking_redis(&redis_url()).await.unwrap();
        let mut snapshot = Vec::new();
        for key in &keys {
            // A history stream is made when its first minute closes: it may not exist yet.
            let dumped: Option<Vec<u8>> = redis::cmd("DUMP").arg(key).query_async(&mut redis).await.unwrap();
            snapshot.push((key.clone(), dumped));
        }
        for i in 10..25 {
            topic.send_vote_to(i % 3, &format!("Band {}", i % 5)).await;
        }
        let second = IsolatedConsumer::start_in(&topic.name, database, group, prefix).await;
        assert_eq!(second.wait_for_counted(25, WITHIN).await, (25, 25));
        assert_eq!(second.wait_for_committed(25, WITHIN).await, 25);
        second.stop().await;

        for (key, dumped) in &snapshot {
            let command = match dumped {
                Some(dumped) => {
                    let mut restore = redis::cmd("RESTORE");
                    restore.arg(key).arg(0).arg(dumped).arg("REPLACE");
                    restore
                }
                None => {
                    let mut delete = redis::cmd("DEL");
                    delete.arg(key);
                    delete
                }
            };
            let _: () = command.query_async(&mut redis).await.unwrap();
        }
        let restored: i64 = redis::cmd("GET").arg(&keys[0]).query_async(&mut redis).await.unwrap();
        assert_eq!(restored, 10, "the restore took the tallies back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_in_hand_of_a_partition_revoked_are_dropped_before_any_write() {
    // Arrange: consumer A alone in its group, holding one vote of each partition in a batch
    // that keeps filling for 10 s.
    let topic = TestTopic::create().await;
    let voteflow_testkit::GroupNames { group, prefix, database } = voteflow_testkit::GroupNames::unique();
    let slow_batches = ["--batch-max-wait-ms=10000"];
    let a = IsolatedConsumer::start_with(
        &topic.name,
        &database,
        &group,
        &prefix,
        &redis_url(),
        &mongodb_uri(),
        &slow_batches,
    )
    .await;
    for partition in 0..3 {
        topic.send_vote_to(partition, &format!("Band {partition}")).await;
    }
    let in_hand = "voteflow_consumer_records_in_hand";
    let deadline = tokio::time::Instant::now() + WITHIN;
    while a.metric(in_hand).await < 3.0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.metric(in_hand).await, 3.0, "A holds one vote of each partition");

    // Act: B joins the group; the rebalance takes at least one partition from A while A's
    // batch is still filling.
    let b = IsolatedConsumer::start_in(&topic.name, &database, &group, &prefix).await;

    // Assert: each vote counted and logged once; B counted what it took over (so the
    // rebalance came while A held it), and no record was written twice: had A written the
    // vote of a partition it lost, its new owner's write would have been a redelivery.
    assert_eq!(b.wait_for_counted(3, WITHIN).await, (3, 3));
    assert_eq!(b.wait_for_committed(3, WITHIN).await, 3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((b.total().await, b.logged().await), (3, 3), "nothing twice");
    let taken_over = b.metric(r#"voteflow_consumer_votes_total{path="rest"}"#).await;
    assert!(taken_over >= 1.0, "B counted {taken_over}: the rebalance came after A's batch was written");
    let redelivered = r#"voteflow_consumer_duplicates_total{kind="redelivered"}"#;
    assert_eq!(
        (a.metric(redelivered).await, b.metric(redelivered).await),
        (0.0, 0.0),
        "a record written by A after it lost the partition, and again by its new owner"
    );
}
