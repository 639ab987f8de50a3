//! Settings pieces that several services flatten into their own `clap` settings struct.
//! Every value comes from a flag or its env var (defaults suit the local stack), so k8s
//! ConfigMaps and Secrets only ever set env vars. Env vars are read nowhere else. A URL
//! that may carry a password is a [`SecretUrl`]: it never prints with it (`--help` hides
//! env values, `Debug` and `Display` mask the password).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Where Kafka is and which topic carries votes.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaSettings {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long = "kafka-brokers", env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic that carries accepted votes.
    #[arg(long = "kafka-topic", env = "KAFKA_TOPIC", default_value = "votes")]
    pub topic: String,
}

/// How a producer server publishes votes.
#[derive(Debug, Clone, clap::Args)]
pub struct PublisherSettings {
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// Longest a vote waits for Kafka's acknowledgement (acks=all) before the answer is 503.
    #[arg(long, env = "KAFKA_DELIVERY_TIMEOUT_MS", default_value_t = 2000)]
    pub delivery_timeout_ms: u64,
    /// Most votes waiting for Kafka at once; beyond it new votes are shed with 503.
    #[arg(long, env = "KAFKA_MAX_IN_FLIGHT", default_value_t = 10_000)]
    pub max_in_flight: usize,
    /// How long the producer waits to fill a batch; trades latency for throughput.
    #[arg(long, env = "KAFKA_LINGER_MS", default_value_t = 2)]
    pub linger_ms: u64,
    /// Compression of produced batches. `none` by default: batches of single votes hold a
    /// few records per partition, and lz4's per-batch setup cost more CPU than it saved.
    #[arg(long = "kafka-compression", env = "KAFKA_COMPRESSION", default_value = "none",
          value_parser = ["none", "lz4", "zstd", "snappy", "gzip"])]
    pub compression: String,
    /// How often librdkafka reports its own latencies (client queue, send buffer, broker
    /// round trip) to `/metrics`; 0 turns the reports off.
    #[arg(long, env = "KAFKA_STATISTICS_INTERVAL_MS", default_value_t = 5000)]
    pub statistics_interval_ms: u64,
}

impl PublisherSettings {
    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_millis(self.delivery_timeout_ms)
    }
}

/// Log output.
#[derive(Debug, Clone, clap::Args)]
pub struct LogSettings {
    /// Log filter, in `tracing` EnvFilter syntax (Rocket's own request log is off by default).
    #[arg(long = "log", env = "RUST_LOG", default_value = "info,rocket=off")]
    pub filter: String,
    /// `text` for people, `json` for log collectors.
    #[arg(long = "log-format", env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// A URL that may carry a user and password (`redis://consumer:PASSWORD@redis:6379/`).
/// `Display` and `Debug` show it with the password masked; only [`SecretUrl::expose`]
/// gives the real text, to hand to a client library.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

/// What replaces a password wherever a URL is shown.
pub const MASK: &str = "****";

impl SecretUrl {
    /// The URL as written, password included: for the client that connects, never for a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password masked (a URL without one is shown whole); in a
    /// comma-separated list, every URL's.
    pub fn masked(&self) -> String {
        self.0.split(',').map(mask_password).collect::<Vec<_>>().join(",")
    }

    /// The URLs of a comma-separated list, each still secret.
    pub fn list(&self) -> Vec<SecretUrl> {
        self.0.split(',').map(str::trim).filter(|url| !url.is_empty()).map(|url| Self(url.to_owned())).collect()
    }
}

/// One URL with its password masked, for messages about a URL taken from a [`SecretUrl`].
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:{MASK}{}{tail}", &authority[at..])
        }
        None => url.to_owned(),
    }
}

impl FromStr for SecretUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.contains("://") {
            Ok(Self(text.to_owned()))
        } else {
            // The refused text is not repeated: it may be a password typed in the wrong place.
            Err("must be a URL (scheme://[user:password@]host[:port]/...)".to_owned())
        }
    }
}

/// clap's parser of a [`SecretUrl`]: unlike the default one for `FromStr` types, its error
/// does not repeat the refused text (a password typed into the wrong place).
#[derive(Clone)]
pub struct SecretUrlParser;

impl clap::builder::TypedValueParser for SecretUrlParser {
    type Value = SecretUrl;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<SecretUrl, clap::Error> {
        let name = arg.map_or_else(|| "a URL setting".to_owned(), |arg| arg.to_string());
        value.to_str().ok_or(()).and_then(|text| text.parse().map_err(drop)).map_err(|()| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("{name} must be a URL (scheme://[user:password@]host[:port]/...)\n"),
            )
            .with_cmd(command)
        })
    }
}

impl clap::builder::ValueParserFactory for SecretUrl {
    type Parser = SecretUrlParser;

    fn value_parser() -> SecretUrlParser {
        SecretUrlParser
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_never_shows_its_password() {
        let url: SecretUrl = "mongodb://voteflow:s3cret@mongodb:27017/?authSource=admin".parse().unwrap();
        assert_eq!(url.to_string(), "mongodb://voteflow:****@mongodb:27017/?authSource=admin");
        assert_eq!(format!("{url:?}"), "SecretUrl(mongodb://voteflow:****@mongodb:27017/?authSource=admin)");
        assert_eq!(url.expose(), "mongodb://voteflow:s3cret@mongodb:27017/?authSource=admin");
        let tricky: SecretUrl = "redis://:p@ss:word@redis:6379/0".parse().unwrap();
        assert!(!tricky.to_string().contains("p@ss"), "{tricky}");
        assert_eq!(tricky.to_string(), "redis://:****@redis:6379/0");
        let plain: SecretUrl = "http://127.0.0.1:8080".parse().unwrap();
        assert_eq!(plain.to_string(), "http://127.0.0.1:8080");
        let list: SecretUrl = "http://a:one@x:1,http://b:two@y:2/".parse().unwrap();
        assert_eq!(list.to_string(), "http://a:****@x:1,http://b:****@y:2/");
        assert_eq!(
            list.list().iter().map(SecretUrl::expose).collect::<Vec<_>>(),
            ["http://a:one@x:1", "http://b:two@y:2/"]
        );
        let refused = "hunter2".parse::<SecretUrl>().unwrap_err();
        assert!(!refused.contains("hunter2"), "{refused}");
    }

    #[test]
    fn clap_refuses_a_url_without_repeating_it() {
        #[derive(Debug, clap::Parser)]
        struct Settings {
            #[arg(long, env = "VOTEFLOW_TEST_SECRET_URL")]
            url: SecretUrl,
        }
        let parsed = <Settings as clap::Parser>::try_parse_from(["test", "--url=redis://a:s3cret@b/"]).unwrap();
        assert_eq!(parsed.url.expose(), "redis://a:s3cret@b/");
        let refused = <Settings as clap::Parser>::try_parse_from(["test", "--url=s3cret"]).unwrap_err().to_string();
        assert!(refused.contains("--url <URL> must be a URL") && !refused.contains("s3cret"), "{refused}");
    }
}
