//! grpc-client with passwords in GRPC_SERVER_URL, and grpc-server: no password and no env
//! value in `--help`, the logs from start to SIGTERM, or the answer when no grpc-server
//! can be reached.

use std::time::Duration;

use voteflow_testkit::dead_address;
use voteflow_testkit::secrets::{Printed, Run, assert_hidden, post_vote};

#[test]
fn the_grpc_server_passwords_never_print() {
    let urls = format!("http://voteflow:grpc-pw-1@{},http://other:grpc-pw-2@{}", dead_address(), dead_address());
    let run = Run::front(env!("CARGO_BIN_EXE_grpc-client"), "GRPC_CLIENT_LISTEN", "GRPC_SERVER_URL", &urls);
    let help = run.help();
    let (logs, answers) = run.logs_while(Duration::from_secs(2), |addr| post_vote(addr.expect("an address")));
    let printed = Printed { help, logs, answers };
    let expected = ["[env: GRPC_SERVER_URL]", "voteflow:****@", "other:****@", "upstream_unavailable"];
    assert_hidden(&printed, &["grpc-pw-1", "grpc-pw-2"], &expected);
}

#[test]
fn grpc_server_help_shows_no_env_values() {
    let help = Run::new(env!("CARGO_BIN_EXE_grpc-server")).env("KAFKA_BROKERS", "kafka-pw-2:9092").help();
    assert_hidden(&Printed { help, ..Printed::default() }, &["kafka-pw-2"], &["[env: KAFKA_BROKERS]"]);
}
