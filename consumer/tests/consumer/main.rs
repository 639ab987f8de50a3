//! Integration tests of the consumer and of the MongoDB-wire server it writes to, against
//! the real local stack, each test with its own topic, group, database and key prefix.

mod dead_letters;
mod helpers;
mod history;
mod launch;
mod mongo_wire;
mod redelivery;
mod secrets;
mod sink_down;
mod stop;
