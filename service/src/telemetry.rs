//! Sets up `tracing` once per process: a filter from settings, and text for people or one
//! JSON object per line for log collectors, with the level as Cloud Logging reads it.

use std::fmt;
use std::io::IsTerminal as _;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::AsLog as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::settings::LogSettings;

/// The crates (a target prefix) whose `log` records never reach the subscriber: Rocket
/// logs several records per request, and even filtered out each cost the filter's work
/// (docs/decisions/0001); its failures reach us as answers and metrics.
const SILENCED_LOG_CRATES: &str = "rocket";

/// Installs the global subscriber, and the bridge that hands `log` records (librdkafka's,
/// for one) to it. A second call (tests start several apps in one process) keeps the first.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: escape codes in a collected log hide its fields.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = if settings.format == "json" {
        builder.event_format(CloudLoggingJson).try_init()
    } else {
        builder.compact().try_init()
    };
    if installed.is_ok() {
        let max_level = tracing::level_filters::LevelFilter::current().as_log();
        let _ = tracing_log::LogTracer::builder().with_max_level(max_level).ignore_crate(SILENCED_LOG_CRATES).init();
    }
}

/// Cloud Logging's name of a level: its structured logs take the level from `severity`
/// (DEBUG, INFO, WARNING, ERROR), and a line without it shows at one default severity.
fn severity(level: &Level) -> &'static str {
    match *level {
        Level::TRACE | Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARNING",
        Level::ERROR => "ERROR",
    }
}

/// `{"timestamp", "severity", "target", "message", ...the event's fields, "spans"}` per line.
struct CloudLoggingJson;

impl<S, N> FormatEvent<S, N> for CloudLoggingJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = Map::new();
        line.insert("timestamp".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into());
        line.insert("severity".into(), severity(event.metadata().level()).into());
        line.insert("target".into(), event.metadata().target().into());
        event.record(&mut JsonFields(&mut line));
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope.from_root().map(|span| span.name().into()).collect();
            line.insert("spans".into(), spans.into());
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Collects an event's fields into the JSON object.
struct JsonFields<'a>(&'a mut Map<String, Value>);

impl Visit for JsonFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Everything the subscriber writes, kept for the test to read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_cloud_loggings_severity_and_the_events_fields() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_writer(move || writer.clone())
            .event_format(CloudLoggingJson)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("batch");
            let _entered = span.enter();
            tracing::warn!(sink = "redis", failures = 3_u64, "sink write failed");
            tracing::error!("consumer did not drain");
            tracing::info!(ready = true, "up");
            tracing::debug!(elapsed = 0.5, "detail");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> =
            text.lines().map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect();
        let severities: Vec<&str> = lines.iter().map(|line| line["severity"].as_str().unwrap()).collect();
        assert_eq!(severities, ["WARNING", "ERROR", "INFO", "DEBUG"]);
        assert_eq!(lines[0]["message"], "sink write failed");
        assert_eq!((lines[0]["sink"].as_str(), lines[0]["failures"].as_u64()), (Some("redis"), Some(3)));
        assert_eq!(lines[0]["spans"], serde_json::json!(["batch"]));
        assert_eq!((lines[2]["ready"].as_bool(), lines[3]["elapsed"].as_f64()), (Some(true), Some(0.5)));
        assert!(
            lines.iter().all(|line| line.get("level").is_none() && line["timestamp"].as_str().unwrap().ends_with('Z'))
        );
    }
}
