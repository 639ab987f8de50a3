//! The benchmark's results: every scenario's figures, the ratios against the ceilings of
//! the same run, the targets, the final accepted = counted = logged check, written as
//! JSON (`bench/results/latest.json`) and printed as a table.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::BenchConfig;
use super::generator::RunFigures;
use super::procstat::{MachineCpu, Measured, Usage, round3};
use super::sinks::{FreshnessFigures, Throughput};
use super::stages::StageLatency;

/// One scenario's figures and what each process used meanwhile.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub what: String,
    #[serde(flatten)]
    pub figures: Value,
    pub processes: BTreeMap<String, Usage>,
    pub machine_cpu: MachineCpu,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freshness: Option<FreshnessFigures>,
    /// Open-loop scenarios: the p50/p99 of each stage a vote waited on, from the services' histograms.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageLatency>,
}

impl Scenario {
    pub fn run(what: &str, figures: RunFigures, measured: Measured) -> Self {
        Self::new(what, json!(figures), measured)
    }

    fn new(what: &str, figures: Value, measured: Measured) -> Self {
        Self {
            what: what.to_owned(),
            figures: rounded(figures),
            processes: measured.processes,
            machine_cpu: measured.machine,
            freshness: None,
            stages: Vec::new(),
        }
    }

    pub fn with_freshness(mut self, freshness: FreshnessFigures) -> Self {
        self.freshness = Some(freshness);
        self
    }

    pub fn with_stages(mut self, stages: Vec<StageLatency>) -> Self {
        self.stages = stages;
        self
    }

    fn number(&self, key: &str) -> f64 {
        self.figures[key].as_f64().unwrap_or(0.0)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub value: f64,
    /// `>=` or `<=`.
    pub rule: String,
    pub target: f64,
    pub met: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// Votes the servers accepted (2xx, gRPC OK, per-vote batch results) plus the votes
    /// Kafka acknowledged to the produce ceiling.
    pub accepted: u64,
    /// Requests that got no verdict: their votes may be in Kafka or not.
    pub unanswered: u64,
    pub counted: u64,
    pub logged: u64,
    /// Scenarios that made no votes, or had requests fail: a run with either is broken.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub broken_scenarios: Vec<String>,
    pub passed: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub commit: String,
    pub mode: String,
    pub machine: Value,
    pub settings: Value,
    #[serde(skip)]
    order: Vec<String>,
    pub scenarios: BTreeMap<String, Scenario>,
    pub ratios: BTreeMap<String, f64>,
    pub targets: Vec<Target>,
    pub verification: Verification,
    #[serde(skip)]
    out: std::path::PathBuf,
}

impl Report {
    pub fn new(config: &BenchConfig) -> Self {
        Self {
            date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            commit: std::env::var("VOTEFLOW_COMMIT").unwrap_or_else(|_| "unknown".to_owned()),
            mode: if config.quick { "quick" } else { "full" }.to_owned(),
            machine: machine(),
            settings: json!({
                "connections": config.connections,
                "batch_connections": (config.connections / 4).max(1),
                "batch_size": config.batch_size,
                "warmup_s": config.warmup.as_secs_f64(),
                "measure_s": config.measure.as_secs_f64(),
                "prefill_votes": config.prefill,
                "sink_ceiling_votes": config.sink_ceiling_votes,
                "kafka_warmup_s": config.kafka_warmup.as_secs_f64(),
                "service_worker_threads": config.service_worker_threads,
            }),
            order: Vec::new(),
            scenarios: BTreeMap::new(),
            ratios: BTreeMap::new(),
            targets: Vec::new(),
            verification: Verification::default(),
            out: config.out.clone(),
        }
    }

    pub fn add(&mut self, label: &str, scenario: Scenario) {
        println!(
            "[bench] {label:<12} {:>9.0} votes/s  p50 {:.2} ms  p99 {:.2} ms  (failed requests {})",
            scenario.number("votes_per_s"),
            scenario.number("p50_ms"),
            scenario.number("p99_ms"),
            scenario.number("failed_requests")
        );
        self.order.push(label.to_owned());
        self.scenarios.insert(label.to_owned(), scenario);
    }

    pub fn add_throughput(&mut self, label: &str, what: &str, figures: Throughput, measured: Measured) {
        self.add(label, Scenario::new(what, json!(figures), measured));
    }

    pub fn votes_per_s(&self, label: &str) -> f64 {
        self.scenarios.get(label).map_or(0.0, |scenario| scenario.number("votes_per_s"))
    }

    fn requests_per_s(&self, label: &str) -> f64 {
        self.scenarios.get(label).map_or(0.0, |scenario| scenario.number("requests_per_s"))
    }

    pub fn verify(&mut self, accepted: u64, unanswered: u64, counted: u64, logged: u64) {
        // Unanswered requests' votes may have reached Kafka (a timed-out acknowledgement);
        // they are the only slack allowed.
        let counts_agree = counted == logged && counted >= accepted && counted <= accepted + unanswered;
        let broken_scenarios: Vec<String> = self
            .order
            .iter()
            .filter_map(|label| {
                let scenario = &self.scenarios[label];
                let failed = scenario.number("failed_requests");
                let made = scenario.number("votes_per_s");
                (failed > 0.0 || made <= 0.0)
                    .then(|| format!("{label} ({made:.0} votes/s, {failed:.0} failed requests)"))
            })
            .collect();
        let passed = counts_agree && broken_scenarios.is_empty();
        self.verification = Verification { accepted, unanswered, counted, logged, broken_scenarios, passed };
    }

    /// Computes ratios and targets and writes the JSON file.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        let ceiling = self.requests_per_s("ceiling");
        let ratio = |value: f64, base: f64| if base > 0.0 { round3(value / base) } else { 0.0 };
        let batch = self.votes_per_s("batch-rest").min(self.votes_per_s("batch-grpc"));
        let slower_sink = self.votes_per_s("redis-ceiling").min(self.votes_per_s("mongo-ceiling"));
        self.ratios = BTreeMap::from([
            ("rest".to_owned(), ratio(self.votes_per_s("rest"), ceiling)),
            ("grpc".to_owned(), ratio(self.votes_per_s("grpc"), ceiling)),
            ("batch".to_owned(), ratio(batch, self.votes_per_s("produce"))),
            ("consumer".to_owned(), ratio(self.votes_per_s("consumer"), slower_sink)),
        ]);
        let mut targets = vec![
            at_least("rest / ceiling", self.ratios["rest"], 0.35),
            at_least("grpc / ceiling", self.ratios["grpc"], 0.40),
            at_least("batch (slower of the two) / produce ceiling", self.ratios["batch"], 0.5),
            at_least("consumer / slower raw sink", self.ratios["consumer"], 0.6),
        ];
        for (label, path) in [("fresh-rest", "rest"), ("fresh-grpc", "grpc")] {
            let Some(scenario) = self.scenarios.get(label) else { continue };
            targets.push(at_most(&format!("{path} p99 accept ms at 50 % of max"), scenario.number("p99_ms"), 5.0));
            if let Some(freshness) = &scenario.freshness {
                targets.push(at_most(&format!("{path} freshness p99 ms"), freshness.p99_ms, 250.0));
            }
        }
        for (process, limit) in [
            ("rest-client", 64.0),
            ("rest-server", 64.0),
            ("grpc-client", 64.0),
            ("grpc-server", 64.0),
            ("consumer", 128.0),
        ] {
            let peak = self
                .scenarios
                .values()
                .filter_map(|scenario| scenario.processes.get(process))
                .map(|usage| usage.peak_rss_mib)
                .fold(0.0, f64::max);
            targets.push(at_most(&format!("{process} peak RSS MiB"), peak, limit));
        }
        self.targets = targets;
        if let Some(parent) = self.out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&self.out, serde_json::to_string_pretty(&self)? + "\n")?;
        Ok(())
    }

    pub fn print(&self) {
        println!();
        println!(
            "{:<14} {:>10} {:>10} {:>8} {:>8} {:>8} {:>6}  CPU s / peak RSS MiB per process",
            "scenario", "votes/s", "req/s", "p50 ms", "p99 ms", "p99.9", "steal"
        );
        for label in &self.order {
            let scenario = &self.scenarios[label];
            let processes: Vec<String> = scenario
                .processes
                .iter()
                .filter(|(_, usage)| usage.cpu_seconds >= 0.05)
                .map(|(name, usage)| format!("{name} {:.1}/{:.0}", usage.cpu_seconds, usage.peak_rss_mib))
                .collect();
            let cell = |key: &str| {
                scenario.figures[key].as_f64().map_or_else(|| "-".to_owned(), |value| format!("{value:.2}"))
            };
            println!(
                "{label:<14} {:>10.0} {:>10} {:>8} {:>8} {:>8} {:>5.0}%  {}",
                scenario.number("votes_per_s"),
                scenario.figures["requests_per_s"]
                    .as_f64()
                    .map_or_else(|| "-".to_owned(), |value| format!("{value:.0}")),
                cell("p50_ms"),
                cell("p99_ms"),
                cell("p999_ms"),
                scenario.machine_cpu.steal_pct,
                processes.join(", ")
            );
            if let Some(freshness) = &scenario.freshness {
                println!(
                    "{:<14} freshness over {} votes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, never seen {}",
                    "", freshness.votes, freshness.p50_ms, freshness.p99_ms, freshness.max_ms, freshness.never_seen
                );
            }
            for stage in &scenario.stages {
                let source = match stage.observations {
                    Some(observations) => format!("over {observations} (its own histogram)"),
                    None => "(librdkafka's windows: median p50, worst p99)".to_owned(),
                };
                println!(
                    "{:<14} stage {:<22} p50 {:.2} ms, p99 {:.2} ms {source}",
                    "", stage.stage, stage.p50_ms, stage.p99_ms
                );
            }
        }
        println!();
        for target in &self.targets {
            println!(
                "{} {:<46} {:>9.3} {} {}",
                if target.met { "met    " } else { "MISSED " },
                target.name,
                target.value,
                target.rule,
                target.target
            );
        }
        let ratios: Vec<String> = self.ratios.iter().map(|(key, value)| format!("{key}={value:.3}")).collect();
        println!("ratios: {}", ratios.join(" "));
        let check = &self.verification;
        if !check.broken_scenarios.is_empty() {
            println!("broken scenarios: {}", check.broken_scenarios.join(", "));
        }
        println!(
            "verified: accepted={} counted={} logged={} unanswered={} -> {}",
            check.accepted,
            check.counted,
            check.logged,
            check.unanswered,
            if check.passed {
                "every accepted vote counted and logged once"
            } else if check.broken_scenarios.is_empty() {
                "MISMATCH"
            } else {
                "BROKEN SCENARIOS"
            }
        );
        println!("results written to {}", self.out.display());
    }
}

fn at_least(name: &str, value: f64, target: f64) -> Target {
    Target { name: name.to_owned(), value, rule: ">=".to_owned(), target, met: value >= target }
}

fn at_most(name: &str, value: f64, target: f64) -> Target {
    Target { name: name.to_owned(), value, rule: "<=".to_owned(), target, met: value <= target }
}

/// Floats to 3 decimals, so the JSON reads well.
fn rounded(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().map(|(key, value)| (key, rounded(value))).collect()),
        Value::Number(number) if number.is_f64() => json!(round3(number.as_f64().unwrap_or_default())),
        other => other,
    }
}

fn machine() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name").map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map(usize::from).unwrap_or(0),
        "memory_gib": round3(memory_kib / 1024.0 / 1024.0),
        "cpu": cpu,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
    })
}
