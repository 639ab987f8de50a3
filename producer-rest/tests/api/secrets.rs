//! rest-client with a password in REST_SERVER_URL, and rest-server: no password and no env
//! value in `--help`, the logs from start to SIGTERM, or the answer when rest-server
//! cannot be reached.

use std::time::Duration;

use voteflow_testkit::dead_address;
use voteflow_testkit::secrets::{Printed, Run, assert_hidden, post_vote};

#[test]
fn the_rest_server_password_never_prints() {
    let url = format!("http://voteflow:rest-pw-1@{}", dead_address());
    let run = Run::front(env!("CARGO_BIN_EXE_rest-client"), "REST_CLIENT_LISTEN", "REST_SERVER_URL", &url);
    let help = run.help();
    let (logs, answers) = run.logs_while(Duration::from_secs(2), |addr| post_vote(addr.expect("an address")));
    let printed = Printed { help, logs, answers };
    assert_hidden(&printed, &["rest-pw-1"], &["[env: REST_SERVER_URL]", "voteflow:****@", "upstream_unavailable"]);
}

#[test]
fn rest_server_help_shows_no_env_values() {
    let help = Run::new(env!("CARGO_BIN_EXE_rest-server")).env("KAFKA_BROKERS", "kafka-pw-1:9092").help();
    assert_hidden(&Printed { help, ..Printed::default() }, &["kafka-pw-1"], &["[env: KAFKA_BROKERS]"]);
}
