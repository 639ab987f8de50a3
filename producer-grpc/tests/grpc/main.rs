//! Integration tests of the gRPC path: the real grpc-client, grpc-server and consumer,
//! in-process on port 0, against the real local stack, each test with its own topic,
//! consumer group, MongoDB database and Redis key prefix.

mod bad_input;
mod balance;
mod batch;
mod corpus;
mod deployment;
mod end_to_end;
mod helpers;
mod ingress;
mod kafka_down;
mod limits;
mod secrets;
mod server_restart;
