//! Shared pieces of the whisk-rs benchmarks (`containers`, `invoke`): percentiles over timed
//! samples, the machine's load printed next to each table (this machine is shared, so a table
//! means little without it), and the few command-line flags the binaries take.
//!
//! The benchmarks are binaries, not tests: they print markdown tables and assert nothing about
//! time, so `cargo nextest run` never runs them.

use std::time::Duration;

pub mod proxy;

/// The p50 and p99 of a set of timed samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub p50: Duration,
    pub p99: Duration,
    pub samples: usize,
}

impl Summary {
    /// Nearest-rank percentiles (the sample at `round((n-1)·p)` once sorted); `None` without
    /// samples, so an empty series is printed as missing rather than as zero.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort();
        let at = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
        Some(Summary {
            p50: at(0.5),
            p99: at(0.99),
            samples: sorted.len(),
        })
    }
}

/// Milliseconds with three decimals, the unit every table uses.
pub fn ms(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1000.0)
}

/// `a / b` of two durations as `×n.nn`, or `–` when `b` is zero.
pub fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        "–".to_string()
    } else {
        format!("×{:.2}", a.as_secs_f64() / b.as_secs_f64())
    }
}

/// The 1, 5 and 15 minute load averages and the CPU count, as `uptime` would give them.
pub fn load_line() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let averages: Vec<&str> = load.split_whitespace().take(3).collect();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "load average {} on {cpus} CPUs",
        if averages.is_empty() {
            "unknown".to_string()
        } else {
            averages.join(", ")
        }
    )
}

/// The value after `--name` on the command line, parsed; `default` when absent.
pub fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> anyhow::Result<T> {
    match args.iter().position(|arg| arg == name) {
        None => Ok(default),
        Some(at) => {
            let text = args
                .get(at + 1)
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
            text.parse()
                .map_err(|_| anyhow::anyhow!("{name}: cannot parse {text:?}"))
        }
    }
}

/// Whether this process runs as root (containers, cgroups and network namespaces need it).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(2))
            == Some("0")
    })
}

/// The resident memory (`VmRSS`) of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The proportional set size (`Pss` of `/proc/PID/smaps_rollup`) of a process, in bytes: its
/// private pages plus its share of pages mapped by several processes (a runtime's interpreter
/// binary is shared by every container of that runtime, so RSS counts it once per container).
pub fn pss_bytes(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = rollup.lines().find(|line| line.starts_with("Pss:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn millis(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank_over_sorted_samples() {
        let samples: Vec<u64> = (1..=100).rev().collect();
        let summary = Summary::of(&millis(&samples)).unwrap();
        assert_eq!(summary.p50, Duration::from_millis(51));
        assert_eq!(summary.p99, Duration::from_millis(99));
        assert_eq!(summary.samples, 100);
        let one = Summary::of(&millis(&[7])).unwrap();
        assert_eq!(
            (one.p50, one.p99),
            (Duration::from_millis(7), Duration::from_millis(7))
        );
    }

    #[test]
    fn no_samples_give_no_summary() {
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn ratio_of_a_zero_duration_is_missing() {
        assert_eq!(ratio(Duration::from_millis(3), Duration::ZERO), "–");
        assert_eq!(
            ratio(Duration::from_millis(3), Duration::from_millis(2)),
            "×1.50"
        );
    }

    #[test]
    fn flags_parse_or_say_what_is_wrong() {
        let args: Vec<String> = ["x", "--runs", "12", "--bad", "z", "--last"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(flag(&args, "--runs", 200usize).unwrap(), 12);
        assert_eq!(flag(&args, "--missing", 200usize).unwrap(), 200);
        assert!(
            flag::<usize>(&args, "--bad", 1)
                .unwrap_err()
                .to_string()
                .contains("cannot parse")
        );
        assert!(
            flag::<usize>(&args, "--last", 1)
                .unwrap_err()
                .to_string()
                .contains("needs a value")
        );
    }

    #[test]
    fn this_process_has_a_resident_and_a_proportional_size() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(pss_bytes(pid).unwrap() > 0);
        assert_eq!(rss_bytes(u32::MAX), None);
    }

    #[test]
    fn memory_sizes_print_in_mib() {
        assert_eq!(mib(3 * 1024 * 1024 / 2), "1.5");
    }
}
