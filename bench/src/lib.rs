//! Load generation and tally verification for voteflow: the demo driver, the
//! fault-injection suite and the benchmark harness. It counts only the answers it was given and checks them
//! against what reached Redis and MongoDB, so a fast but lossy run cannot pass.
//!
//! # Layout
//! - [`traffic`]: votes in the JSON shapes real clients send.
//! - [`tally`]: reads what Redis and MongoDB hold, and waits for them to catch up.
//! - [`chaos`]: the fault-injection suite (`scripts/chaos`, binary `voteflow-chaos`).
//! - [`speed`]: the benchmark harness (`scripts/bench`, binary `voteflow-bench`), and its
//!   load generator, which the demo drives too.
//! - [`services`]: the voteflow processes the suite and the harness start and measure.

pub mod chaos;
pub mod services;
pub mod speed;
pub mod tally;
pub mod traffic;
