//! The vote log in MongoDB: one document per vote in `votes`, `_id` = vote_id, with
//! `accepted_at` as a BSON date, for MongoDB Compass and for audits. Writing a batch
//! twice is harmless: a duplicate `_id` (code 11000) means "already logged".

use mongodb::bson::{DateTime, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, IndexModel};

use super::Consumed;

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

    /// Logs a batch; returns how many votes were already logged.
    pub async fn insert(&self, batch: &[Consumed]) -> mongodb::error::Result<usize> {
        if batch.is_empty() {
            return Ok(0);
        }
        match self.votes.insert_many(batch.iter().map(document)).ordered(false).await {
            Ok(_) => Ok(0),
            Err(error) => only_duplicates(&error).ok_or(error),
        }
    }
}

/// When every failure of an insert is a duplicate key, how many there were.
fn only_duplicates(error: &mongodb::error::Error) -> Option<usize> {
    match error.kind.as_ref() {
        ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => {
            let errors = failure.write_errors.as_deref().unwrap_or_default();
            errors.iter().all(|e| e.code == DUPLICATE_KEY).then_some(errors.len())
        }
        ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == DUPLICATE_KEY => Some(1),
        _ => None,
    }
}

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
