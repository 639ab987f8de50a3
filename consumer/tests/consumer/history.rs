//! The tally's history against the real Redis: each vote counted once in the minute it was
//! counted (a replayed batch adds nothing), minutes that are over moved into the streams
//! Grafana draws (by the next batch or by the timer's close), at most the top bands per
//! minute with the rest summed, and albums kept apart by band.

use std::collections::{BTreeMap, HashMap};

use redis::AsyncCommands as _;
use voteflow_consumer::sink::Consumed;
use voteflow_consumer::sink::tally::{HISTORY_BANDS, HISTORY_OTHERS, Tally, TallyKeys, album_field};

use crate::helpers::{accepted_vote, checking_redis, redis_url, unique_id};

/// A minute's start, in ms, as the scripts name minutes.
fn minute_of(now_secs: u64) -> u64 {
    now_secs / 60 * 60_000
}

async fn redis_now_secs(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let (secs, _micros): (u64, u64) = redis::cmd("TIME").query_async(redis).await.unwrap();
    secs
}

/// One stream entry per minute: (its ID's milliseconds, its fields).
async fn entries(redis: &mut redis::aio::MultiplexedConnection, stream: &str) -> Vec<(u64, HashMap<String, u64>)> {
    let reply: Vec<(String, Vec<(String, u64)>)> =
        redis::cmd("XRANGE").arg(stream).arg("-").arg("+").query_async(redis).await.unwrap();
    reply
        .into_iter()
        .map(|(id, fields)| (id.split('-').next().unwrap().parse().unwrap(), fields.into_iter().collect()))
        .collect()
}

async fn count(tally: &Tally, batch: &[Consumed]) -> u64 {
    let mut last_offsets = BTreeMap::new();
    for consumed in batch {
        let last = last_offsets.entry(consumed.partition).or_insert(consumed.offset);
        *last = (*last).max(consumed.offset);
    }
    let countable: Vec<&Consumed> = batch.iter().collect();
    tally.apply("t.votes", &last_offsets, &countable).await.unwrap().iter().map(|(_, votes)| votes).sum()
}

#[tokio::test]
async fn votes_enter_the_history_once_and_minutes_that_are_over_move_to_the_streams() {
    // Arrange: a minute two minutes back still open, as if the consumer had stopped then,
    // with 30 bands in it (more than the history keeps per minute).
    let prefix = format!("test:{}:", unique_id());
    let keys = TallyKeys::new(&prefix);
    let tally = Tally::connect(&redis_url(), &prefix).await.unwrap();
    let mut redis = checking_redis(&redis_url()).await.unwrap();
    // The whole test must run within one minute of Redis's clock.
    let secs = redis_now_secs(&mut redis).await;
    if secs % 60 > 50 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - secs % 60)).await;
    }
    let now = minute_of(redis_now_secs(&mut redis).await);
    let old = now - 120_000;
    let _: () = redis.set(&keys.history_minute, old).await.unwrap();
    for band in 0..30_u64 {
        let _: () = redis.hset(&keys.history_open, format!("{old}:band:Old {band:02}"), band + 1).await.unwrap();
    }
    let _: () = redis.hset(&keys.history_open, format!("{old}:path:rest"), 465).await.unwrap();
    let batch: Vec<Consumed> = (0..10)
        .map(|i| Consumed { record: accepted_vote(&format!("Band {}", i % 3)), partition: 0, offset: i })
        .collect();

    // Act: a batch, then the same batch again (a redelivery).
    let counted = (count(&tally, &batch).await, count(&tally, &batch).await);

    // Assert: counted once; the old minute closed into the streams, the top bands by votes
    // and the rest as one; this minute open with exactly the batch.
    assert_eq!(counted, (10, 0));
    let bands = entries(&mut redis, &keys.history_band).await;
    assert_eq!(bands.len(), 1, "{bands:?}");
    let (at, fields) = &bands[0];
    assert_eq!(*at, old, "the entry's ID is its minute's start");
    assert_eq!(fields.len(), HISTORY_BANDS as usize + 1, "{fields:?}");
    assert_eq!(fields["Old 29"], 30, "the most voted band is kept");
    assert_eq!(fields.get("Old 04"), None, "a band beyond the top {HISTORY_BANDS} is summed");
    assert_eq!(fields[HISTORY_OTHERS], 1 + 2 + 3 + 4 + 5);
    assert_eq!(fields.values().sum::<u64>(), 465, "no vote of the minute lost");
    assert_eq!(entries(&mut redis, &keys.history_path).await, vec![(old, [("rest".to_owned(), 465)].into())]);
    let open: HashMap<String, u64> = redis.hgetall(&keys.history_open).await.unwrap();
    let want: HashMap<String, u64> = [
        (format!("{now}:band:Band 0"), 4),
        (format!("{now}:band:Band 1"), 3),
        (format!("{now}:band:Band 2"), 3),
        (format!("{now}:path:rest"), 10),
    ]
    .into();
    assert_eq!(open, want, "this minute holds the batch once");
    let albums: HashMap<String, u64> = redis.hgetall(&keys.by_album).await.unwrap();
    assert_eq!(albums[&album_field("Band 0", "Test Album")], 4, "{albums:?}");

    // Act: this minute declared over (as a minute later), then closed by the timer's call.
    let open_fields: Vec<String> = redis.hkeys(&keys.history_open).await.unwrap();
    let earlier = now - 60_000;
    for field in open_fields {
        let votes: u64 = redis.hget(&keys.history_open, &field).await.unwrap();
        let _: () = redis.hdel(&keys.history_open, &field).await.unwrap();
        let moved = field.replacen(&now.to_string(), &earlier.to_string(), 1);
        let _: () = redis.hset(&keys.history_open, moved, votes).await.unwrap();
    }
    let _: () = redis.set(&keys.history_minute, earlier).await.unwrap();
    tally.close_history().await.unwrap();

    // Assert: the minute is in both streams after the older one; nothing is left open.
    let bands = entries(&mut redis, &keys.history_band).await;
    assert_eq!(bands.iter().map(|(at, _)| *at).collect::<Vec<_>>(), vec![old, earlier]);
    assert_eq!(bands[1].1, [("Band 0".to_owned(), 4), ("Band 1".to_owned(), 3), ("Band 2".to_owned(), 3)].into());
    let paths = entries(&mut redis, &keys.history_path).await;
    assert_eq!(paths[1], (earlier, [("rest".to_owned(), 10)].into()));
    let open: HashMap<String, u64> = redis.hgetall(&keys.history_open).await.unwrap();
    assert!(open.is_empty(), "{open:?}");
    let marker: u64 = redis.get(&keys.history_minute).await.unwrap();
    assert_eq!(marker, now);
}
