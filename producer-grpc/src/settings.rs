//! Settings of grpc-client and grpc-server: each field is a flag and an env var, with
//! defaults that suit the local stack. Read nowhere else.

use std::net::SocketAddr;
use std::time::Duration;

use voteflow_http::settings::FrontArgs;
use voteflow_service::process::ServiceSettings;
use voteflow_service::settings::{LogSettings, PublisherSettings};

/// grpc-client: the gRPC path's HTTP front.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "grpc-client",
    version,
    mut_arg("listen", |arg| arg.required(false).env("GRPC_CLIENT_LISTEN").default_value("127.0.0.1:3000")),
    mut_arg("server_url", |arg| arg.required(false).env("GRPC_SERVER_URL").default_value("http://127.0.0.1:3001").help(SERVER_URL_HELP)),
    mut_arg("route_prefixes", |arg| arg.default_value("/grpc")),
    about = "voteflow gRPC-path front: validates POST /votes (JSON) and forwards each vote to grpc-server over gRPC",
    long_about = "voteflow gRPC-path front. The same HTTP front as rest-client (POST /votes, POST /votes/batch, \
        the same JSON, validation and errors), forwarding over one long-lived multiplexed HTTP/2 channel per \
        grpc-server (CastVote, and CastVotes for batches), spread over every server GRPC_SERVER_URL names; \
        channels reconnect by themselves. Answers 202 \
        {\\\"vote_id\\\"} once Kafka has the vote, 503 with Retry-After when it was not accepted. Also serves GET \
        /healthz, /readyz and /metrics. Every flag can be set by the env var shown."
)]
pub struct FrontSettings {
    #[command(flatten)]
    pub front: FrontArgs,
}

impl ServiceSettings for FrontSettings {
    fn log(&self) -> &LogSettings {
        &self.front.log
    }

    fn stop_deadline(&self) -> Duration {
        self.front.http.stop_deadline()
    }
}

/// `--server-url`'s help: grpc-client spreads calls over every address the URLs name.
const SERVER_URL_HELP: &str = "URL of grpc-server (http://host:port), or several, comma separated. Every address a \
    host resolves to is a server (a headless Service's name lists its ready pods), looked up again every 5 s; calls \
    go to the serving one with the fewest calls in flight.";

/// grpc-server: the gRPC path's producer server.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "grpc-server",
    version,
    about = "voteflow gRPC-path server: voteflow.v1.VoteService, producing each vote to Kafka (acks=all)",
    long_about = "voteflow gRPC-path server. Implements voteflow.v1.VoteService: CastVote (unary) and CastVotes \
        (client streaming, one summary with a result per vote). Validates every vote again and produces it \
        through one shared idempotent producer (acks=all): OK only after Kafka acknowledged. INVALID_ARGUMENT \
        names the field; UNAVAILABLE when Kafka does not acknowledge within the bound; RESOURCE_EXHAUSTED when \
        overloaded or a message is too large. Serves grpc.health.v1 on the gRPC port and /healthz, /readyz, \
        /metrics on the admin address. Every flag can be set by the env var shown."
)]
pub struct ServerSettings {
    /// Address to serve gRPC on.
    #[arg(long, env = "GRPC_SERVER_LISTEN", default_value = "127.0.0.1:3001")]
    pub listen: SocketAddr,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "GRPC_SERVER_ADMIN_LISTEN", default_value = "127.0.0.1:9301")]
    pub admin_listen: SocketAddr,
    #[command(flatten)]
    pub publisher: PublisherSettings,
    /// Largest encoded vote, in bytes; larger ones get RESOURCE_EXHAUSTED.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 16 * 1024, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_message_bytes: usize,
    /// Most votes in one CastVotes stream; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "BATCH_MAX_VOTES", default_value_t = 1000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub batch_max_votes: usize,
    /// Requests served at once per connection; beyond it requests are shed with RESOURCE_EXHAUSTED.
    #[arg(long, env = "GRPC_CONCURRENCY_LIMIT", default_value_t = 1024, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub concurrency_limit: usize,
    /// Seconds in-flight calls get to finish after a shutdown signal.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u64,
    #[command(flatten)]
    pub log: LogSettings,
}

impl ServiceSettings for ServerSettings {
    fn log(&self) -> &LogSettings {
        &self.log
    }

    /// The grace, and a margin for the producer's flush.
    fn stop_deadline(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs + 6)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn settings_are_consistent_and_defaults_parse() {
        FrontSettings::command().debug_assert();
        ServerSettings::command().debug_assert();
        let front = <FrontSettings as clap::Parser>::try_parse_from(["grpc-client"]).unwrap();
        let server = <ServerSettings as clap::Parser>::try_parse_from(["grpc-server"]).unwrap();
        assert_eq!((front.front.listen.port(), server.listen.port()), (3000, 3001));
        assert_eq!(front.front.route_prefixes, ["/grpc"]);
        assert!(front.front.upstream_timeout() > server.publisher.delivery_timeout());
        assert_eq!(front.stop_deadline(), front.front.http.stop_deadline(), "grpc-client stops as an HTTP front");
        assert_eq!(server.stop_deadline(), Duration::from_secs(5 + 6), "the grace and 6 s for the producer's flush");
    }

    /// A zero limit would refuse every vote, stream or call: refused at launch, naming the flag.
    #[test]
    fn zero_limits_are_refused() {
        for flag in ["--max-message-bytes", "--batch-max-votes", "--concurrency-limit"] {
            let error = <ServerSettings as clap::Parser>::try_parse_from(["grpc-server", &format!("{flag}=0")])
                .expect_err(flag)
                .to_string();
            assert!(error.contains(flag), "{error}");
        }
    }
}
