//! The consumer binary with passwords in REDIS_URL and MONGODB_URI: neither is in its
//! `--help`, its logs from start to SIGTERM, or the errors it logs while the sink behind
//! the password cannot be reached.

use std::time::Duration;

use voteflow_testkit::secrets::{Printed, Run, assert_hidden};
use voteflow_testkit::{dead_address, kafka_brokers, redis_url};

fn consumer(redis_url: &str, mongodb_uri: &str) -> Run {
    Run::new(env!("CARGO_BIN_EXE_consumer"))
        .env("KAFKA_BROKERS", &kafka_brokers())
        .env("KAFKA_TOPIC", "secrets-test.votes")
        .env("REDIS_URL", redis_url)
        .env("MONGODB_URI", mongodb_uri)
        .env("CONSUMER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "debug")
}

#[test]
fn redis_and_mongodb_passwords_never_print() {
    let dead = dead_address();
    // Redis unreachable: the consumer retries it and reaches nothing else.
    let run = consumer(
        &format!("redis://voteflow:redis-pw-1@{dead}/"),
        &format!("mongodb://voteflow:mongo-pw-1@{dead}/?serverSelectionTimeoutMS=500"),
    );
    let help = run.help();
    let (logs, answers) = run.logs_while(Duration::from_secs(3), |_| String::new());
    let printed = Printed { help, logs, answers };
    assert_hidden(&printed, &["redis-pw-1", "mongo-pw-1"], &["[env: REDIS_URL]", "voteflow:****@", "sink=\"redis\""]);

    // Redis answers (the local one, without a password), MongoDB does not.
    let run = consumer(&redis_url(), &format!("mongodb://voteflow:mongo-pw-2@{dead}/?serverSelectionTimeoutMS=500"));
    let (logs, answers) = run.logs_while(Duration::from_secs(3), |_| String::new());
    let printed = Printed { help: String::new(), logs, answers };
    assert_hidden(&printed, &["mongo-pw-2"], &["voteflow:****@", "sink=\"mongo\""]);
}
