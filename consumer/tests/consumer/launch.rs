//! The consumer binary refuses bad settings at launch: read from its env vars, named in
//! what it prints, with a non-zero exit, before it serves anything.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the consumer with `env` over settings that would otherwise start it; its exit
/// code and what it printed, or a failure when it still runs after 10 s.
fn launch_with(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dead = voteflow_testkit::dead_address().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_consumer"))
        .env("KAFKA_BROKERS", &dead)
        .env("REDIS_URL", format!("redis://{dead}/"))
        .env("MONGODB_URI", format!("mongodb://{dead}/"))
        .env("CONSUMER_ADMIN_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the consumer binary");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("its status").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the consumer with {env:?} still ran after 10 s: its settings were accepted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("its output");
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), printed)
}

#[test]
fn bad_settings_in_the_environment_are_refused_at_launch() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("SHUTDOWN_DEADLINE_SECS", "6"), ("KAFKA_SESSION_TIMEOUT_MS", "6000")], "SHUTDOWN_DEADLINE_SECS (6 s)"),
        (&[("BATCH_MAX_VOTES", "0")], "--batch-max-votes"),
        (&[("BATCH_MAX_WAIT_MS", "soon")], "--batch-max-wait-ms"),
    ];
    for (env, named) in cases {
        let (code, printed) = launch_with(env);
        assert!(code.is_some_and(|code| code != 0), "{env:?}: exit {code:?}\n{printed}");
        assert!(printed.contains(named), "{env:?}: the refusal names {named:?}:\n{printed}");
    }
}
