//! Integration tests of the REST path: the real rest-client, rest-server and consumer,
//! in-process on port 0, against the real local stack (`scripts/stack up`), each test with
//! its own topic, consumer group, MongoDB database and Redis key prefix.

mod bad_input;
mod batch;
mod end_to_end;
mod helpers;
mod kafka_client_latency;
mod kafka_down;
mod next_hop_down;
mod secrets;
mod shutdown;
