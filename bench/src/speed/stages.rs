//! Where a single vote's accept latency goes during an open-loop scenario: each stage's
//! own Prometheus histogram (the front's request, the server's request or call, Kafka's
//! acknowledgement), read before and after the scenario and diffed, so the generator's
//! p99 can be set beside the p99 of every stage it waited on.

use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One stage of a path and the histogram series that times it.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: &'static str,
    /// The service's `/metrics` URL.
    pub metrics_url: String,
    /// The histogram's buckets: the family, e.g. `voteflow_kafka_produce_seconds_bucket`,
    /// and the one label that picks the series, e.g. `("outcome", "acked")`.
    pub series: (&'static str, (&'static str, &'static str)),
}

/// Cumulative bucket counts of one histogram series: (upper bound in seconds, count).
type Buckets = Vec<(f64, u64)>;

/// Every stage's buckets at one moment.
pub struct Snapshot(Vec<Option<Buckets>>);

/// A stage's latency over a scenario, estimated from its buckets as Prometheus's
/// `histogram_quantile` does (linear within the bucket the quantile falls in).
#[derive(Debug, Clone, Serialize)]
pub struct StageLatency {
    pub stage: String,
    /// Unknown (`null`) for librdkafka's windows, which do not say how many they hold.
    pub observations: Option<u64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// librdkafka's parts of Kafka's acknowledgement, as the producer server's
/// `voteflow_kafka_client_latency_seconds` gauges: (label value, stage name).
const KAFKA_CLIENT_PARTS: [(&str, &str); 3] =
    [("queue", "librdkafka queue"), ("send_buffer", "librdkafka send buffer"), ("round_trip", "broker round trip")];

/// Reads the split of Kafka's acknowledgement librdkafka reports on a producer server's
/// `/metrics` once per `window` (its statistics interval) until `stop`, then sums the
/// windows up: each part's median window p50 and its worst window p99 (librdkafka gives
/// quantiles, not samples, so the windows cannot be merged exactly; the worst p99 bounds
/// the scenario's from above). Parts the server never reported (statistics off, or
/// nothing sent) are left out.
pub fn sample_kafka_client(
    http: reqwest::Client,
    metrics_url: String,
    window: Duration,
    stop: CancellationToken,
) -> JoinHandle<Vec<StageLatency>> {
    tokio::spawn(async move {
        if window.is_zero() {
            return Vec::new(); // statistics off: nothing to read
        }
        let mut windows: Vec<Vec<StageLatency>> = Vec::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(window) => {}
            }
            if let Ok(response) = http.get(&metrics_url).send().await
                && let Ok(text) = response.text().await
            {
                windows.push(kafka_client_parts(&text));
            }
        }
        summarise_windows(&windows)
    })
}

fn summarise_windows(windows: &[Vec<StageLatency>]) -> Vec<StageLatency> {
    KAFKA_CLIENT_PARTS
        .iter()
        .filter_map(|(_, name)| {
            let seen: Vec<&StageLatency> = windows.iter().flatten().filter(|part| part.stage == *name).collect();
            let mut p50s: Vec<f64> = seen.iter().map(|part| part.p50_ms).collect();
            p50s.sort_by(f64::total_cmp);
            let median = *p50s.get(p50s.len() / 2)?;
            let worst = seen.iter().map(|part| part.p99_ms).fold(0.0, f64::max);
            Some(StageLatency {
                stage: format!("{name} (worst of {} windows)", seen.len()),
                observations: None,
                p50_ms: median,
                p99_ms: worst,
            })
        })
        .collect()
}

fn kafka_client_parts(text: &str) -> Vec<StageLatency> {
    let gauge = |part: &str, quantile: &str| {
        let labels = [("stage", part), ("quantile", quantile)];
        voteflow_testkit::metrics::find(text, "voteflow_kafka_client_latency_seconds", &labels)
    };
    KAFKA_CLIENT_PARTS
        .iter()
        .filter_map(|(part, name)| {
            let (p50, p99) = (gauge(part, "0.5")?, gauge(part, "0.99")?);
            (p99 > 0.0).then(|| StageLatency {
                stage: (*name).to_owned(),
                observations: None,
                p50_ms: p50 * 1000.0,
                p99_ms: p99 * 1000.0,
            })
        })
        .collect()
}

/// Reads every stage's histogram now; a stage that cannot be read is left out later.
pub async fn snapshot(http: &reqwest::Client, stages: &[Stage]) -> Snapshot {
    let mut read = Vec::with_capacity(stages.len());
    for stage in stages {
        let text = match http.get(&stage.metrics_url).send().await {
            Ok(response) => response.text().await.ok(),
            Err(_) => None,
        };
        read.push(text.map(|text| buckets(&text, stage.series)));
    }
    Snapshot(read)
}

/// Each stage's p50/p99 over what it observed between `before` and `after`.
pub fn between(stages: &[Stage], before: &Snapshot, after: &Snapshot) -> Vec<StageLatency> {
    stages
        .iter()
        .zip(before.0.iter().zip(&after.0))
        .filter_map(|(stage, pair)| match pair {
            (Some(before), Some(after)) => {
                let delta = difference(before, after)?;
                let observations = delta.last().map_or(0, |(_, count)| *count);
                (observations > 0).then(|| StageLatency {
                    stage: stage.name.to_owned(),
                    observations: Some(observations),
                    p50_ms: quantile(&delta, 0.50) * 1000.0,
                    p99_ms: quantile(&delta, 0.99) * 1000.0,
                })
            }
            _ => None,
        })
        .collect()
}

fn buckets(text: &str, (family, (key, value)): (&str, (&str, &str))) -> Buckets {
    let mut found: Buckets = voteflow_testkit::metrics::samples(text)
        .filter(|sample| sample.name == family && sample.label(key) == Some(value))
        .filter_map(|sample| {
            let le = sample.label("le")?;
            let upper = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((upper, sample.value as u64))
        })
        .collect();
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    found
}

fn difference(before: &Buckets, after: &Buckets) -> Option<Buckets> {
    if before.is_empty() {
        return Some(after.clone());
    }
    if before.len() != after.len() {
        return None;
    }
    Some(after.iter().zip(before).map(|((upper, now), (_, then))| (*upper, now.saturating_sub(*then))).collect())
}

/// `histogram_quantile`: linear inside the bucket; in the +Inf bucket, the highest finite bound.
fn quantile(cumulative: &Buckets, q: f64) -> f64 {
    let total = cumulative.last().map_or(0, |(_, count)| *count);
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(upper, count) in cumulative {
        if count as f64 >= rank {
            if upper.is_infinite() {
                return lower.0;
            }
            let in_bucket = (count - lower.1) as f64;
            let share = if in_bucket > 0.0 { (rank - lower.1 as f64) / in_bucket } else { 1.0 };
            return lower.0 + (upper - lower.0) * share;
        }
        lower = (upper, count);
    }
    lower.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# TYPE voteflow_kafka_produce_seconds histogram
voteflow_kafka_produce_seconds_bucket{outcome="acked",le="0.001"} 10
voteflow_kafka_produce_seconds_bucket{outcome="acked",le="0.005"} 10
voteflow_kafka_produce_seconds_bucket{outcome="acked",le="0.01"} 10
voteflow_kafka_produce_seconds_bucket{outcome="acked",le="+Inf"} 10
voteflow_kafka_produce_seconds_bucket{outcome="timeout",le="0.001"} 7
"#;
    const AFTER: &str = r#"voteflow_kafka_produce_seconds_bucket{outcome="acked",le="0.001"} 10
voteflow_kafka_produce_seconds_bucket{outcome="acked",le="0.005"} 110
voteflow_kafka_produce_seconds_bucket{outcome="acked",le="0.01"} 208
voteflow_kafka_produce_seconds_bucket{outcome="acked",le="+Inf"} 210
voteflow_kafka_produce_seconds_sum{outcome="acked"} 1.5
"#;
    const SERIES: (&str, (&str, &str)) = ("voteflow_kafka_produce_seconds_bucket", ("outcome", "acked"));

    #[test]
    fn a_scenarios_quantiles_come_from_the_buckets_it_filled() {
        let delta = difference(&buckets(BEFORE, SERIES), &buckets(AFTER, SERIES)).unwrap();
        assert_eq!(delta, vec![(0.001, 0), (0.005, 100), (0.01, 198), (f64::INFINITY, 200)]);
        // 100 of 200 fell in (1, 5] ms: the median is that bucket's top.
        assert!((quantile(&delta, 0.5) - 0.005).abs() < 1e-9);
        // Rank 198 is the top of the (5, 10] ms bucket.
        assert!((quantile(&delta, 0.99) - 0.01).abs() < 1e-9);
        // Past the last finite bound, the estimate is that bound (as Prometheus does).
        assert!((quantile(&delta, 0.999) - 0.01).abs() < 1e-9);
        // Inside a bucket, linear between its bounds: rank 150 is the 50th of the 98 in (5, 10] ms.
        let expected = 0.005 + 0.005 * 50.0 / 98.0;
        assert!((quantile(&delta, 0.75) - expected).abs() < 1e-9, "{}", quantile(&delta, 0.75));
        // And in the first bucket, from zero: rank 5 of 10 observations under 1 ms is 0.5 ms.
        assert!((quantile(&vec![(0.001, 10), (f64::INFINITY, 10)], 0.5) - 0.0005).abs() < 1e-9);
    }

    #[test]
    fn a_stage_whose_histogram_changed_shape_or_saw_nothing_is_left_out() {
        let stage = Stage { name: "kafka", metrics_url: String::new(), series: SERIES };
        let before = Snapshot(vec![Some(buckets(AFTER, SERIES))]);
        let after = Snapshot(vec![Some(buckets(AFTER, SERIES))]);
        assert!(between(std::slice::from_ref(&stage), &before, &after).is_empty(), "nothing observed");
        let after = Snapshot(vec![Some(vec![(0.001, 1)])]);
        assert!(between(&[stage], &before, &after).is_empty(), "another bucket layout");
    }

    #[test]
    fn librdkafkas_parts_are_read_in_order_and_a_silent_part_is_left_out() {
        let text = r#"# TYPE voteflow_kafka_client_latency_seconds gauge
voteflow_kafka_client_latency_seconds{quantile="0.5",stage="round_trip"} 0.0015
voteflow_kafka_client_latency_seconds{quantile="0.99",stage="round_trip"} 0.02
voteflow_kafka_client_latency_seconds{quantile="0.5",stage="queue"} 0.002
voteflow_kafka_client_latency_seconds{quantile="0.99",stage="queue"} 0.0031
voteflow_kafka_client_latency_seconds{quantile="0.5",stage="send_buffer"} 0
voteflow_kafka_client_latency_seconds{quantile="0.99",stage="send_buffer"} 0
"#;
        let parts = kafka_client_parts(text);
        let micros = |ms: f64| (ms * 1000.0).round() as u64;
        let read: Vec<_> =
            parts.iter().map(|part| (part.stage.as_str(), micros(part.p50_ms), micros(part.p99_ms))).collect();
        assert_eq!(read, vec![("librdkafka queue", 2000, 3100), ("broker round trip", 1500, 20000)]);
        assert!(parts.iter().all(|part| part.observations.is_none()));
        assert!(kafka_client_parts("").is_empty());
    }

    #[test]
    fn windows_sum_up_to_the_median_p50_and_the_worst_p99() {
        let window = |p50_ms, p99_ms| {
            vec![StageLatency { stage: "broker round trip".to_owned(), observations: None, p50_ms, p99_ms }]
        };
        let windows = [window(0.5, 4.0), window(0.7, 31.0), window(0.6, 6.0), Vec::new()];
        let summed = summarise_windows(&windows);
        assert_eq!(summed.len(), 1, "{summed:?}");
        assert_eq!(summed[0].stage, "broker round trip (worst of 3 windows)");
        assert_eq!((summed[0].p50_ms, summed[0].p99_ms), (0.6, 31.0));
        assert!(summarise_windows(&[]).is_empty());
    }
}
