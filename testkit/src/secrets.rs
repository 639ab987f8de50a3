//! Runs a voteflow binary the way an operator does, with passwords in its settings, and
//! collects everything it prints: `--help`, its logs from start to stop, and what a client
//! is answered when a dependency behind a password cannot be reached. The secrets tests of
//! each crate assert that no password is in any of it.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One binary and the environment it is started with.
pub struct Run {
    binary: String,
    env: Vec<(String, String)>,
}

/// Everything a run printed, by where it came from.
#[derive(Debug, Default)]
pub struct Printed {
    pub help: String,
    pub logs: String,
    /// Answers a client got from the running binary.
    pub answers: String,
}

impl Printed {
    /// Everything, for one search.
    pub fn all(&self) -> String {
        format!("--help:\n{}\nlogs:\n{}\nanswers:\n{}", self.help, self.logs, self.answers)
    }
}

impl Run {
    pub fn new(binary: &str) -> Self {
        Self { binary: binary.to_owned(), env: Vec::new() }
    }

    /// A front (rest-client, grpc-client) on port 0 whose next hop, `upstream_env`, is
    /// `upstream_url` (with passwords in it), with every log line on and a short timeout.
    pub fn front(binary: &str, listen_env: &str, upstream_env: &str, upstream_url: &str) -> Self {
        Self::new(binary)
            .env(upstream_env, upstream_url)
            .env(listen_env, "127.0.0.1:0")
            .env("UPSTREAM_TIMEOUT_MS", "500")
            .env("SHUTDOWN_GRACE_SECS", "1")
            .env("RUST_LOG", "debug")
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    /// `--help`, stdout and stderr.
    pub fn help(&self) -> String {
        let output = self.command().arg("--help").output().expect("the binary runs");
        assert!(output.status.success(), "--help failed: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
    }

    /// Starts the binary, waits until it logged `listening` (its address, when it printed
    /// one, goes to `poke`), lets it run `for_at_least`, then stops it with SIGTERM and
    /// returns its logs and what `poke` reported.
    pub fn logs_while(&self, for_at_least: Duration, poke: impl FnOnce(Option<&str>) -> String) -> (String, String) {
        let mut child =
            self.command().stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the binary starts");
        let logs = Arc::new(Mutex::new(String::new()));
        let readers = [
            collect(child.stdout.take().map(|out| Box::new(out) as _), logs.clone()),
            collect(child.stderr.take().map(|err| Box::new(err) as _), logs.clone()),
        ];
        let started = Instant::now();
        let listening = loop {
            let text = logs.lock().unwrap().clone();
            if let Some(line) = text.lines().find(|line| line.contains("listening")) {
                break Some(line.to_owned());
            }
            if started.elapsed() > Duration::from_secs(20) || child.try_wait().ok().flatten().is_some() {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let addr = listening.as_deref().and_then(|line| {
            line.split_whitespace().find_map(|word| word.strip_prefix("addr=")).map(|addr| addr.trim_end_matches(','))
        });
        let answers = poke(addr);
        std::thread::sleep(for_at_least.saturating_sub(started.elapsed()));
        stop(&mut child);
        for reader in readers {
            let _ = reader.join();
        }
        let logs = logs.lock().unwrap().clone();
        assert!(listening.is_some(), "{} never logged `listening`:\n{logs}", self.binary);
        (logs, answers)
    }
}

fn collect(stream: Option<Box<dyn std::io::Read + Send>>, into: Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(stream) = stream else { return };
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            into.lock().unwrap().push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        into.lock().unwrap().push_str(&rest);
    })
}

/// SIGTERM, as kubelet stops a pod, then a kill if it outlives its own deadline.
fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Posts one valid vote to `addr` with a plain HTTP/1.1 exchange: the whole answer.
pub fn post_vote(addr: &str) -> String {
    use std::io::Write as _;
    let vote = r#"{"band": "Wire", "album": "Pink Flag", "year": 1977, "rank": 9}"#;
    let mut stream = std::net::TcpStream::connect(addr).expect("the front listens");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "POST /votes HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{vote}",
        vote.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Asserts that none of `secrets` is in `printed`, and that each of `expected` is (what
/// shows the run went where the secrets could have leaked).
pub fn assert_hidden(printed: &Printed, secrets: &[&str], expected: &[&str]) {
    let all = printed.all();
    for secret in secrets {
        assert!(!all.contains(secret), "{secret:?} was printed:\n{all}");
    }
    for text in expected {
        assert!(all.contains(text), "{text:?} was not printed:\n{all}");
    }
}
