//! CPU seconds and peak resident memory of the processes a scenario runs on, from Linux
//! `/proc`: the voteflow services, the stack's servers and the generator itself; and how
//! much of the machine's CPU the hypervisor took away meanwhile (steal).

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

/// The whole machine's CPU time during a scenario, as shares of all its cores' time.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MachineCpu {
    pub busy_pct: f64,
    pub idle_pct: f64,
    /// Time the hypervisor ran someone else while this machine wanted to run: a scenario
    /// with much steal measured a smaller machine than the others.
    pub steal_pct: f64,
}

/// The `cpu` line of `/proc/stat`: (busy, idle, steal) ticks since boot, all cores.
fn machine_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> =
        stat.lines().next()?.strip_prefix("cpu ")?.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already)
    let [user, nice, system, idle, iowait, irq, softirq, steal, ..] = fields[..] else { return None };
    Some((user + nice + system + irq + softirq, idle + iowait, steal))
}

fn machine_cpu_between(before: (u64, u64, u64), after: (u64, u64, u64)) -> MachineCpu {
    let busy = after.0.saturating_sub(before.0) as f64;
    let idle = after.1.saturating_sub(before.1) as f64;
    let steal = after.2.saturating_sub(before.2) as f64;
    let total = (busy + idle + steal).max(1.0);
    let pct = |part: f64| round3(100.0 * part / total);
    MachineCpu { busy_pct: pct(busy), idle_pct: pct(idle), steal_pct: pct(steal) }
}

/// What a [`Meter`] saw: per process, and for the machine.
#[derive(Debug, Clone)]
pub struct Measured {
    pub processes: BTreeMap<String, Usage>,
    pub machine: MachineCpu,
}

/// Started before a scenario, finished after it.
pub struct Meter {
    before: Vec<(Watched, f64)>,
    machine_before: Option<(u64, u64, u64)>,
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
        Self { before, machine_before: machine_ticks() }
    }

    pub fn finish(self) -> Measured {
        let machine = match (self.machine_before, machine_ticks()) {
            (Some(before), Some(after)) => machine_cpu_between(before, after),
            _ => MachineCpu::default(),
        };
        let processes = self
            .before
            .into_iter()
            .filter_map(|(process, cpu_before)| {
                let usage = Usage {
                    cpu_seconds: round3(cpu_seconds(process.pid)? - cpu_before),
                    peak_rss_mib: round3(peak_rss_mib(process.pid)?),
                };
                Some((process.name, usage))
            })
            .collect();
        Measured { processes, machine }
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
    }

    #[test]
    fn memory_touched_shows_in_the_resident_set_until_freed() {
        let pid = std::process::id();
        let rss_before = rss_mib(pid).unwrap();
        // 64 MiB written (a non-zero fill touches every page), so it is resident.
        let block = std::hint::black_box(vec![1u8; 64 << 20]);
        let (rss_during, peak_during) = (rss_mib(pid).unwrap(), peak_rss_mib(pid).unwrap());
        assert!(rss_during - rss_before >= 48.0, "resident {rss_before:.1} -> {rss_during:.1} MiB");
        assert!(peak_during >= rss_during, "peak {peak_during:.1} below resident {rss_during:.1} MiB");
        drop(block);
        // Freed (a block this large is its own mapping, returned at once): resident falls.
        // (The kernel's VmHWM fell with it here: it does not keep an unmapped block's peak.)
        assert!(rss_mib(pid).unwrap() < rss_during - 32.0, "the freed block is still resident");
    }

    #[test]
    fn machine_shares_add_up_and_steal_is_its_own() {
        let shares = machine_cpu_between((100, 200, 10), (160, 220, 30));
        assert_eq!((shares.busy_pct, shares.idle_pct, shares.steal_pct), (60.0, 20.0, 20.0));
        assert!(machine_ticks().is_some(), "/proc/stat has a cpu line");
    }
}
