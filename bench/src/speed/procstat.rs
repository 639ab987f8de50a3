//! CPU seconds and peak resident memory of the processes a scenario runs on, from Linux
//! `/proc`: the voteflow services, the stack's servers and the generator itself.

use std::collections::BTreeMap;

use serde::Serialize;

/// `/proc/<pid>/stat` counts in USER_HZ, which Linux fixes at 100 for user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// A process the harness watches.
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

/// What one process used during a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub cpu_seconds: f64,
    /// Peak resident set during the scenario (VmHWM, reset when it began), MiB.
    pub peak_rss_mib: f64,
}

/// CPU time of `pid` so far (user + system, all threads).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start at state.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// Peak resident set of `pid` since it started or since [`reset_peak`], MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmHWM:")
}

/// Resident set of `pid` now, MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmRSS:")
}

/// A `kB` field of `/proc/<pid>/status`, in MiB.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 =
        status.lines().find_map(|line| line.strip_prefix(field))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak resident set to the current one (`clear_refs` 5), so each scenario
/// reports its own peak. Fails quietly where the kernel does not allow it; the figure is
/// then the peak since the process started, which only overstates.
pub fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// Started before a scenario, finished after it.
pub struct Meter {
    before: Vec<(Watched, f64)>,
}

impl Meter {
    pub fn start(processes: &[Watched]) -> Self {
        let before = processes
            .iter()
            .filter_map(|process| {
                reset_peak(process.pid);
                Some((process.clone(), cpu_seconds(process.pid)?))
            })
            .collect();
        Self { before }
    }

    pub fn finish(self) -> BTreeMap<String, Usage> {
        self.before
            .into_iter()
            .filter_map(|(process, cpu_before)| {
                let usage = Usage {
                    cpu_seconds: round3(cpu_seconds(process.pid)? - cpu_before),
                    peak_rss_mib: round3(peak_rss_mib(process.pid)?),
                };
                Some((process.name, usage))
            })
            .collect()
    }
}

pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let pid = std::process::id();
        let before = cpu_seconds(pid).unwrap();
        let mut spin = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(120) {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        assert!(cpu_seconds(pid).unwrap() - before >= 0.05, "120 ms of spinning shows as CPU time");
        assert!(peak_rss_mib(pid).unwrap() > 0.5);
    }
}
