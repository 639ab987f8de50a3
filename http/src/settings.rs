//! Settings every HTTP service of voteflow flattens into its own: body and batch limits,
//! the in-flight bound, the drain's grace, and what both fronts share. Defaults suit the
//! local stack.

use std::net::SocketAddr;
use std::time::Duration;

use voteflow_service::settings::{LogSettings, SecretUrl};

/// Seconds Rocket gives open connections after the grace period before it closes them.
pub const MERCY_SECS: u64 = 2;

/// How an HTTP service of voteflow reads requests and stops.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpSettings {
    /// Largest accepted body of a single vote, in bytes; larger bodies get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: u64,
    /// Largest accepted body of `POST /votes/batch`, in bytes; larger bodies get 413.
    #[arg(long, env = "MAX_BATCH_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_batch_body_bytes: u64,
    /// Most votes in one batch; more get 413.
    #[arg(long, env = "BATCH_MAX_VOTES", default_value_t = 1000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub batch_max_votes: usize,
    /// Longest a request body may take to arrive, in ms; a slower one gets 408 and its
    /// connection closes, so slow clients cannot hold connections.
    #[arg(long, env = "BODY_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_read_timeout_ms: u64,
    /// Vote and batch requests worked on at once; beyond it they are shed with 503
    /// (overloaded, Retry-After). Bounds the bodies in memory: Rocket bounds no connections.
    #[arg(long, env = "MAX_REQUESTS_IN_FLIGHT", default_value_t = 4096, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_requests_in_flight: usize,
    /// Seconds in-flight requests get to finish after a shutdown signal.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u32,
}

impl HttpSettings {
    /// The longest a stop takes: the grace, Rocket's mercy, and a margin for the flush.
    pub fn stop_deadline(&self) -> Duration {
        Duration::from_secs(u64::from(self.shutdown_grace_secs) + MERCY_SECS + 6)
    }
}

/// What both fronts (rest-client, grpc-client) are configured with. Each front sets the
/// env var and default of `listen`, `server_url` and `route_prefixes` (`mut_arg` on its
/// own settings), since those differ between the two.
#[derive(Debug, Clone, clap::Args)]
pub struct FrontArgs {
    /// Address to serve on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// URL of the server behind the front.
    #[arg(long)]
    pub server_url: SecretUrl,
    /// Longest wait for the server's answer, in ms; keep it above the server's Kafka delivery bound.
    #[arg(long, env = "UPSTREAM_TIMEOUT_MS", default_value_t = 3000)]
    pub upstream_timeout_ms: u64,
    /// Path prefixes this front also answers its vote routes under (`POST /rest/votes`,
    /// `POST /rest`), comma separated: the ingress passes paths on unchanged (k8s/routes.yaml).
    #[arg(long, env = "ROUTE_PREFIXES", value_delimiter = ',', value_parser = parse_route_prefix)]
    pub route_prefixes: Vec<String>,
    #[command(flatten)]
    pub http: HttpSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

impl FrontArgs {
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }
}

/// Parses one path prefix a front answers as its own (`/rest`): a `/` and at least one
/// more character, no trailing `/`.
pub fn parse_route_prefix(text: &str) -> Result<String, String> {
    // Starting with `/` and not ending with one, it has a name after the `/`.
    let valid = text.starts_with('/')
        && !text.ends_with('/')
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!("a route prefix is /name (letters, digits, - _ . /, no trailing /), got {text:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Front {
        #[command(flatten)]
        front: FrontArgs,
    }

    #[test]
    fn durations_are_read_in_their_units_and_a_stop_outlasts_rockets_grace_and_mercy() {
        let args = ["front", "--listen=127.0.0.1:1", "--server-url=http://127.0.0.1:2", "--upstream-timeout-ms=1500"];
        let parsed = <Front as clap::Parser>::try_parse_from(args.into_iter().chain(["--shutdown-grace-secs=4"]));
        let front = parsed.unwrap().front;
        assert_eq!(front.upstream_timeout(), Duration::from_millis(1500));
        // The grace, Rocket's mercy, and 6 s for the producer's flush.
        assert_eq!(front.http.stop_deadline(), Duration::from_secs(4 + MERCY_SECS + 6));
    }

    #[test]
    fn route_prefixes_are_a_slash_and_a_name() {
        assert_eq!(parse_route_prefix("/grpc").as_deref(), Ok("/grpc"));
        for bad in ["", "/", "grpc", "/grpc/", "/g rpc"] {
            assert!(parse_route_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
