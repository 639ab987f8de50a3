//! Live tallies in Redis, read by Grafana and Redis Insight. A batch is first summed in
//! memory, then applied as one MULTI/EXEC pipeline: one round trip per batch, and a batch
//! is counted entirely or not at all.
//!
//! Keys (prefix configurable, default `voteflow:`): `total` (string counter),
//! `votes:band`, `votes:album`, `votes:path` (hashes: field -> votes), `leaderboard`
//! (sorted set: band scored by votes).

use std::collections::HashMap;
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
}

impl TallyKeys {
    pub fn new(prefix: &str) -> Self {
        Self {
            total: format!("{prefix}total"),
            by_band: format!("{prefix}votes:band"),
            by_album: format!("{prefix}votes:album"),
            by_path: format!("{prefix}votes:path"),
            leaderboard: format!("{prefix}leaderboard"),
        }
    }
}

#[derive(Clone)]
pub struct Tally {
    connection: ConnectionManager,
    keys: TallyKeys,
}

impl Tally {
    /// Connects to Redis; the connection reconnects by itself afterwards.
    pub async fn connect(url: &str, key_prefix: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { connection, keys: TallyKeys::new(key_prefix) })
    }

    /// Adds a batch of votes to every counter in one atomic round trip.
    pub async fn apply(&self, batch: &[Consumed]) -> redis::RedisResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut by_band: HashMap<&str, i64> = HashMap::new();
        let mut by_album: HashMap<&str, i64> = HashMap::new();
        let mut by_path: HashMap<&str, i64> = HashMap::new();
        for consumed in batch {
            let vote = &consumed.record.vote;
            *by_band.entry(vote.band()).or_default() += 1;
            *by_album.entry(vote.album()).or_default() += 1;
            *by_path.entry(consumed.record.path.as_str()).or_default() += 1;
        }
        let mut pipe = redis::pipe();
        pipe.atomic().incr(&self.keys.total, batch.len() as i64).ignore();
        for (band, votes) in &by_band {
            pipe.hincr(&self.keys.by_band, band, *votes).ignore();
            pipe.zincr(&self.keys.leaderboard, band, *votes).ignore();
        }
        for (album, votes) in &by_album {
            pipe.hincr(&self.keys.by_album, album, *votes).ignore();
        }
        for (path, votes) in &by_path {
            pipe.hincr(&self.keys.by_path, path, *votes).ignore();
        }
        let mut connection = self.connection.clone();
        pipe.query_async::<()>(&mut connection).await
    }
}
