//! The vote log in MongoDB: one document per vote in `votes`, `_id` = vote_id, with
//! `accepted_at` as a BSON date, for MongoDB Compass and for audits.
//!
//! Guarantee: each vote_id is stored exactly once, forever. The unique `_id` makes a
//! second insert a duplicate-key error (11000), which means "already logged". The log is
//! also the consumer's memory of which Kafka record a vote_id came from first (the
//! document's `kafka_partition`/`kafka_offset`), so the tally can tell a redelivered
//! record (same position: count it unless Redis already has) from a client's retry of
//! the same vote_id (another position: never count it). The producers write votes
//! without a key, so a retry may sit in another partition and be read first: then the
//! retry is the copy stored and counted (with its own path and accepted_at), once.
//! A vote_id reused for a *different* vote (another band, album, year or rank) is a
//! conflict: the first copy stays the vote, the other is not counted and is reported
//! (`voteflow_consumer_duplicates_total{kind="conflict"}` and a warning).

use futures::{StreamExt as _, TryStreamExt as _};
use mongodb::bson::{DateTime, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, IndexModel};
use voteflow_domain::Vote;

use super::Consumed;

/// Look-ups of duplicates' first copies in flight at once.
const LOOKUPS_IN_FLIGHT: usize = 16;

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;
/// MongoDB's answer to listIndexes on a collection that does not exist yet.
const NAMESPACE_NOT_FOUND: i32 = 26;
pub const COLLECTION: &str = "votes";

#[derive(Clone)]
pub struct VoteLog {
    votes: Collection<Document>,
}

impl VoteLog {
    /// Connects lazily (the driver reconnects by itself) and names the collection.
    pub async fn connect(uri: &str, database: &str) -> mongodb::error::Result<Self> {
        let mut options = ClientOptions::parse(uri).await?;
        options.app_name.get_or_insert_with(|| "voteflow-consumer".to_owned());
        options.server_selection_timeout.get_or_insert(std::time::Duration::from_secs(5));
        let client = Client::with_options(options)?;
        Ok(Self { votes: client.database(database).collection(COLLECTION) })
    }

    /// Creates the indexes the dashboards and audits query by, when missing. Existing
    /// ones are left alone: FerretDB 1.24 drops the connection when asked to create an
    /// index that exists (MongoDB would accept it as a no-op).
    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        let existing = match self.votes.list_index_names().await {
            Ok(names) => names,
            Err(error) if matches!(error.kind.as_ref(), ErrorKind::Command(e) if e.code == NAMESPACE_NOT_FOUND) => {
                Vec::new()
            }
            Err(error) => return Err(error),
        };
        for (name, keys) in [
            ("accepted_at_1", doc! { "accepted_at": 1 }),
            ("band_1_accepted_at_1", doc! { "band": 1, "accepted_at": 1 }),
        ] {
            if !existing.iter().any(|index| index == name) {
                let options = IndexOptions::builder().name(name.to_owned()).build();
                self.votes.create_index(IndexModel::builder().keys(keys).options(options).build()).await?;
            }
        }
        Ok(())
    }

    /// Logs a batch (idempotent: run it again with the same batch and it answers the same).
    pub async fn insert(&self, batch: &[Consumed]) -> mongodb::error::Result<Logged> {
        if batch.is_empty() {
            return Ok(Logged::default());
        }
        let mut duplicates = match self.votes.insert_many(batch.iter().map(document)).ordered(false).await {
            Ok(_) => return Ok(Logged::default()),
            Err(error) => only_duplicates(&error).ok_or(error)?,
        };
        duplicates.sort_unstable();
        // Each duplicate's first copy, looked up by `_id` alone: an index look-up on MongoDB
        // and on the stack's FerretDB, which scans for `_id: {$in: [...]}` instead
        // (docs/decisions/0002-retry-path.md).
        // Rare (redeliveries and client retries only), so it stays off the common path.
        // Owned ids and collection handles: a future that borrows them is not `Send` for
        // every lifetime, which the consumer's spawned task needs.
        let ids: Vec<String> = duplicates.iter().map(|&index| batch[index].record.vote.vote_id().to_string()).collect();
        let votes = self.votes.clone();
        let first_copies: Vec<Option<Document>> = futures::stream::iter(ids)
            .map(move |id| {
                let votes = votes.clone();
                async move { votes.find_one(doc! { "_id": id }).projection(first_copy_projection()).await }
            })
            .buffered(LOOKUPS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut logged = Logged::default();
        for (index, first_copy) in duplicates.into_iter().zip(first_copies) {
            let consumed = &batch[index];
            let Some(first_copy) = first_copy else {
                // Gone between the insert and the look-up (deleted by hand): a retry.
                logged.retries.push(index);
                continue;
            };
            let position = (first_copy.get_i32("kafka_partition").ok(), first_copy.get_i64("kafka_offset").ok());
            if position == (Some(consumed.partition), Some(consumed.offset)) {
                logged.redelivered += 1;
            } else if same_vote(&first_copy, &consumed.record.vote) {
                logged.retries.push(index);
            } else {
                logged.conflicts.push(index);
            }
        }
        Ok(logged)
    }
}

/// The first copy's Kafka position and the fields that make it the same vote.
fn first_copy_projection() -> Document {
    doc! { "kafka_partition": 1, "kafka_offset": 1, "band": 1, "album": 1, "year": 1, "rank": 1 }
}

/// Whether the first copy, as read back, is the same vote as `vote` (as [`document`]
/// writes it).
fn same_vote(first_copy: &Document, vote: &Vote) -> bool {
    first_copy.get_str("band").ok() == Some(vote.band())
        && first_copy.get_str("album").ok() == Some(vote.album())
        && first_copy.get_i32("year").ok() == Some(vote.year())
        && first_copy.get_f64("rank").ok() == Some(vote.rank())
}

/// What logging a batch found besides new documents.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Logged {
    /// Records logged before from this very Kafka position (a redelivery).
    pub redelivered: usize,
    /// Indexes (into the batch, ascending) of votes whose vote_id was first logged from
    /// another record with the same vote: a client's retry. They must not be counted.
    pub retries: Vec<usize>,
    /// Indexes (ascending) of votes whose vote_id was first logged for a different vote:
    /// an idempotency key reused. The first copy is the vote; these are not counted.
    pub conflicts: Vec<usize>,
}

/// When every failure of an insert is a duplicate key, the batch indexes that failed.
fn only_duplicates(error: &mongodb::error::Error) -> Option<Vec<usize>> {
    match error.kind.as_ref() {
        ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => {
            let errors = failure.write_errors.as_deref().unwrap_or_default();
            errors.iter().all(|e| e.code == DUPLICATE_KEY).then(|| errors.iter().map(|e| e.index).collect())
        }
        ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == DUPLICATE_KEY => Some(vec![0]),
        _ => None,
    }
}

/// The vote-log document of one record.
fn document(consumed: &Consumed) -> Document {
    let record = &consumed.record;
    let vote = &record.vote;
    let mut document = doc! {
        "_id": vote.vote_id().to_string(),
        "band": vote.band(),
        "album": vote.album(),
        "year": vote.year(),
        "rank": vote.rank(),
        "path": record.path.as_str(),
        "accepted_at": DateTime::from_millis(record.accepted_at.timestamp_millis()),
        "kafka_partition": consumed.partition,
        "kafka_offset": consumed.offset,
    };
    if let Some(cast_at) = vote.cast_at() {
        document.insert("cast_at", DateTime::from_millis(cast_at.timestamp_millis()));
    }
    document
}
