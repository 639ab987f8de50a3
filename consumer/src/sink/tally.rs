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
//! `votes:band`, `votes:album` (field `band — album`: albums of the same title by two bands
//! stay apart), `votes:path` (hashes: field -> votes), `leaderboard` (sorted set: band
//! scored by votes), `applied:<topic>` (hash: partition -> offset), and the history:
//! `history:band` and `history:path`, one stream entry per minute (its ID that minute's
//! start, its fields the votes each band or path got in it; Grafana's Redis datasource
//! draws XRANGE as a time series). The minute being counted lives in the hash
//! `history:open` (fields `<minute ms>:band:<name>`) until it is over; the batch script and
//! a timer then move it into the streams, so history is counted in the same atomic step
//! as the totals. Minutes are Redis's clock (`TIME`): a vote is in the minute it was counted.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Consumed;

/// Between a band and its album in a `votes:album` field.
pub const ALBUM_SEPARATOR: &str = " — ";
/// Minutes of history kept per stream (a week); older entries are trimmed as new ones come.
pub const HISTORY_MINUTES: u32 = 7 * 24 * 60;
/// Bands kept per minute of history, the most voted; the rest are summed as one entry.
pub const HISTORY_BANDS: u32 = 25;
/// The field that sums the bands beyond [`HISTORY_BANDS`] in a minute of history.
pub const HISTORY_OTHERS: &str = "(others)";
/// How often the consumer closes the minutes that are over when no batch does.
pub const HISTORY_CLOSE_EVERY: Duration = Duration::from_secs(5);

/// The `votes:album` field of a band's album.
pub fn album_field(band: &str, album: &str) -> String {
    format!("{band}{ALBUM_SEPARATOR}{album}")
}

/// The Redis keys of one deployment (or one test).
#[derive(Debug, Clone)]
pub struct TallyKeys {
    pub total: String,
    pub by_band: String,
    pub by_album: String,
    pub by_path: String,
    pub leaderboard: String,
    pub history_band: String,
    pub history_path: String,
    pub history_open: String,
    pub history_minute: String,
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
            history_band: format!("{prefix}history:band"),
            history_path: format!("{prefix}history:path"),
            history_open: format!("{prefix}history:open"),
            history_minute: format!("{prefix}history:minute"),
            prefix: prefix.to_owned(),
        }
    }

    /// The hash of the last offset counted per partition of `topic`.
    pub fn applied(&self, topic: &str) -> String {
        format!("{}applied:{topic}", self.prefix)
    }

    /// The history keys, in the order the scripts take them.
    fn history(&self) -> [&str; 4] {
        [&self.history_open, &self.history_minute, &self.history_band, &self.history_path]
    }
}

/// Closes the minutes of history that are over: moves them from the open hash into the
/// streams (one entry per minute, ID = its start, the most voted bands and the rest as
/// one sum) and records the minute now being counted. Takes the history keys (open hash,
/// open minute, band stream, path stream) and returns the minute now, in ms.
const CLOSE_MINUTES: &str = r"
local function close_minutes(open, marker, band_stream, path_stream, keep, top_bands, others)
  local t = redis.call('TIME')
  local now = math.floor(tonumber(t[1]) / 60) * 60000
  local current = tonumber(redis.call('GET', marker) or '-1')
  if current == now then return now end
  if current >= 0 then
    local fields = redis.call('HGETALL', open)
    local minutes, order = {}, {}
    for i = 1, #fields, 2 do
      local m, kind, name = string.match(fields[i], '^(%d+):(%a+):(.*)$')
      local minute = tonumber(m or '')
      if minute and minute < now then
        if not minutes[minute] then
          minutes[minute] = {band = {}, path = {}}
          order[#order + 1] = minute
        end
        local list = minutes[minute][kind]
        if list then list[#list + 1] = {name, tonumber(fields[i + 1])} end
        redis.call('HDEL', open, fields[i])
      end
    end
    table.sort(order)
    for _, minute in ipairs(order) do
      local bands = minutes[minute].band
      table.sort(bands, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
      local for_stream = {[band_stream] = {}, [path_stream] = {}}
      local rest = 0
      for i, pair in ipairs(bands) do
        if i <= top_bands then
          table.insert(for_stream[band_stream], pair[1])
          table.insert(for_stream[band_stream], pair[2])
        else
          rest = rest + pair[2]
        end
      end
      if rest > 0 then
        table.insert(for_stream[band_stream], others)
        table.insert(for_stream[band_stream], rest)
      end
      for _, pair in ipairs(minutes[minute].path) do
        table.insert(for_stream[path_stream], pair[1])
        table.insert(for_stream[path_stream], pair[2])
      end
      for stream, values in pairs(for_stream) do
        if #values > 0 then
          -- A stream takes only growing IDs: if its last entry is not older (Redis's clock
          -- went back), the entry gets the next ID Redis picks.
          local id = minute .. '-0'
          local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
          if #last > 0 and tonumber(string.match(last[1][1], '^(%d+)')) >= minute then id = '*' end
          redis.call('XADD', stream, 'MAXLEN', '~', keep, id, unpack(values))
        end
      end
    end
  end
  redis.call('SET', marker, now)
  return now
end
";

/// KEYS: applied, total, by_band, by_album, by_path, leaderboard, then the history keys.
/// ARGV: history length, bands per minute, the others' field, n, then n pairs (partition,
/// last offset of the batch in it), then one (partition, offset, band, album field, path)
/// per countable vote, offsets ascending per partition. Returns what it counted per path,
/// flat: path, votes, path, votes... Offsets stay far below 2^53, where Lua's numbers stop
/// being exact.
const APPLY_BATCH: &str = r"
local applied = KEYS[1]
local minute = close_minutes(KEYS[7], KEYS[8], KEYS[9], KEYS[10], ARGV[1], tonumber(ARGV[2]), ARGV[3])
local partitions = tonumber(ARGV[4])
local before = {}
for i = 0, partitions - 1 do
  local partition = ARGV[5 + 2 * i]
  before[partition] = tonumber(redis.call('HGET', applied, partition) or '-1')
end
local counted, bands, albums, paths = 0, {}, {}, {}
for i = 5 + 2 * partitions, #ARGV, 5 do
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
    redis.call('HINCRBY', KEYS[7], minute .. ':band:' .. band, votes)
  end
  for album, votes in pairs(albums) do redis.call('HINCRBY', KEYS[4], album, votes) end
  for path, votes in pairs(paths) do
    redis.call('HINCRBY', KEYS[5], path, votes)
    redis.call('HINCRBY', KEYS[7], minute .. ':path:' .. path, votes)
  end
end
for i = 0, partitions - 1 do
  local partition, last = ARGV[5 + 2 * i], tonumber(ARGV[6 + 2 * i])
  if last > before[partition] then redis.call('HSET', applied, partition, ARGV[6 + 2 * i]) end
end
local counts = {}
for path, votes in pairs(paths) do
  counts[#counts + 1] = path
  counts[#counts + 1] = votes
end
return counts
";

/// KEYS: the history keys. ARGV: history length, bands per minute, the others' field.
const CLOSE_HISTORY: &str = r"
return close_minutes(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], tonumber(ARGV[2]), ARGV[3])
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
    close_history: std::sync::Arc<redis::Script>,
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
        Ok(Self {
            connection,
            keys: TallyKeys::new(key_prefix),
            apply_batch: redis::Script::new(&format!("{CLOSE_MINUTES}{APPLY_BATCH}")).into(),
            close_history: redis::Script::new(&format!("{CLOSE_MINUTES}{CLOSE_HISTORY}")).into(),
        })
    }

    /// Moves the minutes of history that are over into the history streams (the batch
    /// script does so too; this covers a minute after which no batch came).
    pub async fn close_history(&self) -> redis::RedisResult<()> {
        let mut invocation = self.close_history.prepare_invoke();
        for key in self.keys.history() {
            invocation.key(key);
        }
        invocation.arg(HISTORY_MINUTES).arg(HISTORY_BANDS).arg(HISTORY_OTHERS);
        let mut connection = self.connection.clone();
        invocation.invoke_async::<i64>(&mut connection).await.map(drop)
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
            .key(&keys.leaderboard);
        for key in keys.history() {
            invocation.key(key);
        }
        invocation.arg(HISTORY_MINUTES).arg(HISTORY_BANDS).arg(HISTORY_OTHERS).arg(last_offsets.len());
        for (partition, offset) in last_offsets {
            invocation.arg(partition).arg(offset);
        }
        for consumed in countable {
            let vote = &consumed.record.vote;
            invocation
                .arg(consumed.partition)
                .arg(consumed.offset)
                .arg(vote.band())
                .arg(album_field(vote.band(), vote.album()))
                .arg(consumed.record.path.as_str());
        }
        let mut connection = self.connection.clone();
        invocation.invoke_async(&mut connection).await
    }
}
