//! The consumer's two sinks: live tallies in Redis and the vote log in MongoDB.

pub mod tally;
pub mod vote_log;

use voteflow_domain::AcceptedRecord;

/// A decoded vote with where it came from in Kafka.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub record: AcceptedRecord,
    pub partition: i32,
    pub offset: i64,
}
