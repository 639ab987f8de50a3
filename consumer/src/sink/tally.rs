//! Live tallies in Redis, read by Grafana and Redis Insight.
//!
//! Guarantee: each Kafka record is counted at most once, atomically with the counters.
//! One Lua script per batch (one round trip) reads, per partition, the last offset
//! already counted (`applied:<topic>`, a hash partition -> offset), counts only the
//! batch's records above it, and raises it, all in one atomic step: a batch replayed
//! after a crash, a lost commit or a rebalance (even by two consumers at once) adds
//! nothing twice. With commits after the sinks, that makes the counters exactly once.
//!
//! Keys (prefix configurable, default `voteflow:`): `total` (string counter),
//! `votes:band`, `votes:album`, `votes:path` (hashes: field -> votes), `leaderboard`
//! (sorted set: band scored by votes), `applied:<topic>` (hash: partition -> offset).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Consumed;

/// The Redis keys of one deployment (or one test).
#[derive(Debug, Clone)]
pub struct TallyKeys {
    pub total: String,
    pub by_band: String,
    pub by_album: String,
    pub by_path: String,
    pub leaderboard: String,
    prefix: String,
}

impl TallyKeys {
    pub fn new(prefix: &str) -> Self {
        Self {
            total: format!("{prefix}total"),
            by_band: format!("{prefix}votes:band"),
            by_album: format!("{prefix}votes:album"),
            by_path: format!("{prefix}votes:path"),
            leaderboard: format!("{prefix}leaderboard"),
            prefix: prefix.to_owned(),
        }
    }

    /// The hash of the last offset counted per partition of `topic`.
    pub fn applied(&self, topic: &str) -> String {
        format!("{}applied:{topic}", self.prefix)
    }
}

/// KEYS: applied, total, by_band, by_album, by_path, leaderboard.
/// ARGV: n, then n pairs (partition, last offset of the batch in it), then one
/// (partition, offset, band, album, path) per countable vote, offsets ascending per
/// partition. Returns what it counted per path, flat: path, votes, path, votes... Offsets
/// stay far below 2^53, where Lua's numbers stop being exact.
const APPLY_BATCH: &str = r"
local applied = KEYS[1]
local partitions = tonumber(ARGV[1])
local before = {}
for i = 0, partitions - 1 do
  local partition = ARGV[2 + 2 * i]
  before[partition] = tonumber(redis.call('HGET', applied, partition) or '-1')
end
local counted, bands, albums, paths = 0, {}, {}, {}
for i = 2 + 2 * partitions, #ARGV, 5 do
  if tonumber(ARGV[i + 1]) > before[ARGV[i]] then
    counted = counted + 1
    bands[ARGV[i + 2]] = (bands[ARGV[i + 2]] or 0) + 1
    albums[ARGV[i + 3]] = (albums[ARGV[i + 3]] or 0) + 1
    paths[ARGV[i + 4]] = (paths[ARGV[i + 4]] or 0) + 1
  end
end
if counted > 0 then
  redis.call('INCRBY', KEYS[2], counted)
  for band, votes in pairs(bands) do
    redis.call('HINCRBY', KEYS[3], band, votes)
    redis.call('ZINCRBY', KEYS[6], votes, band)
  end
  for album, votes in pairs(albums) do redis.call('HINCRBY', KEYS[4], album, votes) end
  for path, votes in pairs(paths) do redis.call('HINCRBY', KEYS[5], path, votes) end
end
for i = 0, partitions - 1 do
  local partition, last = ARGV[2 + 2 * i], tonumber(ARGV[3 + 2 * i])
  if last > before[partition] then redis.call('HSET', applied, partition, ARGV[3 + 2 * i]) end
end
local counts = {}
for path, votes in pairs(paths) do
  counts[#counts + 1] = path
  counts[#counts + 1] = votes
end
return counts
";

/// How long the consumer waits for a Redis connection, and for an answer, before it
/// counts the attempt as failed (the test harness's reads use the same).
pub const REDIS_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
pub const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Tally {
    connection: ConnectionManager,
    keys: TallyKeys,
    apply_batch: std::sync::Arc<redis::Script>,
}

impl Tally {
    /// Connects to Redis; the connection reconnects by itself afterwards.
    pub async fn connect(url: &str, key_prefix: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_CONNECTION_TIMEOUT))
            .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { connection, keys: TallyKeys::new(key_prefix), apply_batch: redis::Script::new(APPLY_BATCH).into() })
    }

    /// Per partition of `topic`, the last offset counted.
    pub async fn applied_offsets(&self, topic: &str) -> redis::RedisResult<HashMap<i32, i64>> {
        let mut connection = self.connection.clone();
        redis::cmd("HGETALL").arg(self.keys.applied(topic)).query_async(&mut connection).await
    }

    /// Counts a batch of `topic` in one atomic round trip: the `countable` votes above
    /// each partition's applied offset; `last_offsets` (partition -> last offset of the
    /// batch, countable or not) raise the applied offsets. Returns the votes it counted,
    /// per path.
    pub async fn apply(
        &self,
        topic: &str,
        last_offsets: &BTreeMap<i32, i64>,
        countable: &[&Consumed],
    ) -> redis::RedisResult<Vec<(String, u64)>> {
        if last_offsets.is_empty() {
            return Ok(Vec::new());
        }
        let keys = &self.keys;
        let mut invocation = self.apply_batch.prepare_invoke();
        invocation
            .key(keys.applied(topic))
            .key(&keys.total)
            .key(&keys.by_band)
            .key(&keys.by_album)
            .key(&keys.by_path)
            .key(&keys.leaderboard)
            .arg(last_offsets.len());
        for (partition, offset) in last_offsets {
            invocation.arg(partition).arg(offset);
        }
        for consumed in countable {
            let vote = &consumed.record.vote;
            invocation
                .arg(consumed.partition)
                .arg(consumed.offset)
                .arg(vote.band())
                .arg(vote.album())
                .arg(consumed.record.path.as_str());
        }
        let mut connection = self.connection.clone();
        invocation.invoke_async(&mut connection).await
    }
}
