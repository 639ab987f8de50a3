//! Reads what the sinks hold: the Redis tallies (by key prefix) and the MongoDB vote log,
//! and waits until they hold a run's votes (the one wait of the demo, chaos and bench).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use mongodb::bson::{Document, doc};
use redis::AsyncCommands as _;
use voteflow_consumer::sink::tally::TallyKeys;

pub struct Sinks {
    redis: redis::aio::MultiplexedConnection,
    keys: TallyKeys,
    prefix: String,
    database: mongodb::Database,
    votes: mongodb::Collection<Document>,
}

impl Sinks {
    pub async fn connect(redis_url: &str, prefix: &str, mongodb_uri: &str, database: &str) -> anyhow::Result<Self> {
        let redis = voteflow_testkit::checking_redis(redis_url).await?;
        let database = mongodb::Client::with_uri_str(mongodb_uri).await?.database(database);
        let votes = database.collection(voteflow_consumer::sink::vote_log::COLLECTION);
        Ok(Self { redis, keys: TallyKeys::new(prefix), prefix: prefix.to_owned(), database, votes })
    }

    /// The all-time Redis vote counter.
    pub async fn total(&self) -> anyhow::Result<u64> {
        let total: Option<u64> = self.redis.clone().get(&self.keys.total).await?;
        Ok(total.unwrap_or(0))
    }

    /// Votes counted per band (`votes:band`).
    pub async fn band_counts(&self) -> anyhow::Result<HashMap<String, u64>> {
        Ok(self.redis.clone().hgetall(&self.keys.by_band).await?)
    }

    /// Every vote-log document as (vote_id, band).
    pub async fn logged_votes(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut cursor = self.votes.find(doc! {}).projection(doc! { "band": 1 }).await?;
        let mut votes = Vec::new();
        while let Some(document) = cursor.try_next().await? {
            let id = document.get_str("_id").unwrap_or_default().to_owned();
            votes.push((id, document.get_str("band").unwrap_or_default().to_owned()));
        }
        Ok(votes)
    }

    /// Drops the vote log's database and deletes the Redis keys under the prefix (for
    /// runs with a prefix and database of their own).
    pub async fn remove_all(&self) -> anyhow::Result<()> {
        self.database.drop().await?;
        let mut redis = self.redis.clone();
        let keys: Vec<String> = redis.keys(format!("{}*", self.prefix)).await?;
        if !keys.is_empty() {
            redis.del::<_, ()>(keys).await?;
        }
        Ok(())
    }

    /// Vote-log documents accepted at or after `since`.
    async fn logged_since(&self, since: DateTime<Utc>) -> anyhow::Result<u64> {
        let since = mongodb::bson::DateTime::from_millis(since.timestamp_millis());
        Ok(self.votes.count_documents(doc! { "accepted_at": { "$gte": since } }).await?)
    }

    pub async fn logged_total(&self) -> anyhow::Result<u64> {
        Ok(self.votes.count_documents(doc! {}).await?)
    }

    /// The vote log's size from `collStats`, for logs too big to count by query:
    /// FerretDB answers `count` by decoding every document (a 1.57M-document log took
    /// over 5 minutes), but `collStats` from SQLite's page statistics (the table's leaf
    /// cells: one per row, so exact) in 4 s. MongoDB keeps the same figure as metadata.
    async fn logged_total_from_stats(&self) -> anyhow::Result<u64> {
        let stats = self.database.run_command(doc! { "collStats": self.votes.name() }).await?;
        let count = match stats.get("count") {
            Some(mongodb::bson::Bson::Int32(n)) => i64::from(*n),
            Some(mongodb::bson::Bson::Int64(n)) => *n,
            Some(mongodb::bson::Bson::Double(n)) => *n as i64,
            other => anyhow::bail!("collStats of the vote log has no count: {other:?}"),
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn counted(&self, scope: Scope) -> anyhow::Result<u64> {
        let total = self.total().await?;
        Ok(match scope {
            Scope::Own => total,
            Scope::Since { counted_before, .. } => total.saturating_sub(counted_before),
        })
    }

    async fn logged(&self, scope: Scope) -> anyhow::Result<u64> {
        match scope {
            Scope::Own => self.logged_total_from_stats().await,
            Scope::Since { run_started, .. } => self.logged_since(run_started).await,
        }
    }

    /// Waits until Redis counts and MongoDB logs `expected` of the run's votes and neither
    /// has moved for `patience.settle` (so a late double count shows), or until neither has
    /// moved for `patience.stalled`; prints progress every 5 s. Returns (counted, logged).
    pub async fn wait_caught_up(
        &self,
        expected: u64,
        scope: Scope,
        patience: Patience,
        tool: &str,
    ) -> anyhow::Result<(u64, u64)> {
        let mut seen = (0, 0);
        let (mut moved, mut printed) = (Instant::now(), Instant::now());
        loop {
            // A read timing out under load is not the consumer's failure: read again.
            let counted = self.counted(scope).await.unwrap_or(seen.0);
            // The log once Redis has everything (the consumer logs a batch before it counts
            // it): a large log's size costs FerretDB seconds.
            let logged = if counted >= expected { self.logged(scope).await.unwrap_or(seen.1) } else { seen.1 };
            if (counted, logged) != seen {
                (seen, moved) = ((counted, logged), Instant::now());
            }
            let caught_up = counted >= expected && logged >= expected && moved.elapsed() >= patience.settle;
            if caught_up || moved.elapsed() >= patience.stalled {
                return Ok(seen);
            }
            if printed.elapsed() >= Duration::from_secs(5) {
                eprintln!(
                    "[{tool}] waiting for the consumer: counted {counted}/{expected}, logged {logged}/{expected}"
                );
                printed = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The top `n` bands of the all-time leaderboard.
    pub async fn leaderboard(&self, n: isize) -> anyhow::Result<Vec<(String, f64)>> {
        Ok(self.redis.clone().zrevrange_withscores(format!("{}leaderboard", self.prefix), 0, n - 1).await?)
    }
}

/// Which of the sinks' votes are a run's.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// All of them: the run has its own key prefix and database.
    Own,
    /// Those since the run began, on a shared prefix and database (nothing else voting).
    Since { counted_before: u64, run_started: DateTime<Utc> },
}

/// How long [`Sinks::wait_caught_up`] waits.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Still this long once every vote is in, so one counted twice would show.
    pub settle: Duration,
    /// Give up once nothing has moved for this long.
    pub stalled: Duration,
}
