//! Settings of rest-client and rest-server: each field is a flag and an env var, with
//! defaults that suit the local stack (`scripts/stack`). Read nowhere else.

use std::net::SocketAddr;
use std::time::Duration;

use voteflow_http::settings::{FrontArgs, HttpSettings};
use voteflow_service::process::ServiceSettings;
use voteflow_service::settings::{LogSettings, PublisherSettings};

/// rest-client: the REST path's HTTP front.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "rest-client",
    version,
    mut_arg("listen", |arg| arg.required(false).env("REST_CLIENT_LISTEN").default_value("127.0.0.1:8000")),
    mut_arg("server_url", |arg| arg.required(false).env("REST_SERVER_URL").default_value("http://127.0.0.1:8080").help("Base URL of rest-server.")),
    mut_arg("route_prefixes", |arg| arg.default_value("/rest,/rust")),
    about = "voteflow REST-path front: validates POST /votes (JSON) and forwards each vote to rest-server",
    long_about = "voteflow REST-path front. Accepts POST /votes with a JSON vote \
        {band|name|artist, album, year, rank|ranked, vote_id?, cast_at?}, validates it, forwards it to \
        rest-server over pooled keep-alive HTTP, and relays the answer: 202 {\"vote_id\"} once Kafka has it, \
        4xx naming the field at fault, 503 with Retry-After when the vote was not accepted. \
        POST /votes/batch takes a JSON array of votes and answers 200 with one outcome per vote, in order \
        (not atomic: each valid vote is accepted on its own). \
        Also serves GET /healthz, /readyz and /metrics. Every flag can be set by the env var shown."
)]
pub struct FrontSettings {
    #[command(flatten)]
    pub front: FrontArgs,
    /// Exchanges with rest-server at once, and keep-alive connections kept open to it;
    /// requests beyond it wait (within the upstream timeout) for one to finish.
    #[arg(long, env = "UPSTREAM_POOL_SIZE", default_value_t = 256, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub upstream_pool_size: usize,
}

impl ServiceSettings for FrontSettings {
    fn log(&self) -> &LogSettings {
        &self.front.log
    }

    fn stop_deadline(&self) -> Duration {
        self.front.http.stop_deadline()
    }
}

/// rest-server: the REST path's producer server.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "rest-server",
    version,
    about = "voteflow REST-path server: validates POST /votes and produces each vote to Kafka (acks=all)",
    long_about = "voteflow REST-path server. Accepts POST /votes with a JSON vote, validates it again, and \
        produces it to Kafka through one shared idempotent producer (acks=all). Answers 202 {\"vote_id\"} only \
        after Kafka acknowledged the vote; 503 with Retry-After when Kafka is down, the queue is full or no \
        acknowledgement came within the delivery bound. POST /votes/batch takes a JSON array and answers 200 \
        with one outcome per vote, each valid vote produced and acknowledged on its own. \
        Also serves GET /healthz, /readyz and /metrics. Every flag can be set by the env var shown."
)]
pub struct ServerSettings {
    /// Address to serve on.
    #[arg(long, env = "REST_SERVER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub publisher: PublisherSettings,
    #[command(flatten)]
    pub http: HttpSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

impl ServiceSettings for ServerSettings {
    fn log(&self) -> &LogSettings {
        &self.log
    }

    fn stop_deadline(&self) -> Duration {
        self.http.stop_deadline()
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
        let front = <FrontSettings as clap::Parser>::try_parse_from(["rest-client"]).unwrap();
        assert_eq!(front.front.listen.port(), 8000);
        assert_eq!(front.front.server_url.expose(), "http://127.0.0.1:8080");
        assert_eq!(front.front.route_prefixes, ["/rest", "/rust"]);
        let server = <ServerSettings as clap::Parser>::try_parse_from(["rest-server"]).unwrap();
        assert_eq!(server.publisher.delivery_timeout_ms, 2000);
        assert!(front.front.upstream_timeout() > server.publisher.delivery_timeout());
        let http_stop = server.http.stop_deadline();
        assert_eq!(
            (front.stop_deadline(), server.stop_deadline()),
            (http_stop, http_stop),
            "both stop as HTTP services"
        );
    }
}
