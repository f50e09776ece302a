//! The exporter's own resource use, read from `/proc` at scrape time (Linux).
//!
//! The families are the standard `process_*` set every Prometheus client library
//! exposes, so the usual "process" dashboards and alerts work on us unchanged.
//! `procfs` supplies the clock-tick rate and page size of the running kernel
//! instead of constants that are wrong on some configurations.

use procfs::process::{LimitValue, Process};
use procfs::WithCurrentSystemInfo;

use crate::families::{self, Family};
use crate::view::metrics::ProcessInfo;

#[derive(Debug, Default)]
pub struct ProcSelf;

/// A limit as client_golang reports it: "unlimited" is the largest u64.
fn limit(value: LimitValue) -> f64 {
    match value {
        LimitValue::Unlimited => u64::MAX as f64,
        LimitValue::Value(v) => v as f64,
    }
}

impl ProcessInfo for ProcSelf {
    fn sample(&self) -> Vec<(&'static Family, f64)> {
        let mut out = Vec::new();
        let Ok(me) = Process::myself() else {
            return out;
        };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            out.push((
                &families::PROCESS_CPU,
                (stat.utime + stat.stime) as f64 / ticks,
            ));
            out.push((
                &families::PROCESS_RESIDENT_MEMORY,
                stat.rss_bytes().get() as f64,
            ));
            out.push((&families::PROCESS_VIRTUAL_MEMORY, stat.vsize as f64));
            if let Ok(boot) = procfs::boot_time_secs() {
                out.push((
                    &families::PROCESS_START_TIME,
                    boot as f64 + stat.starttime as f64 / ticks,
                ));
            }
        }
        if let Ok(fds) = me.fd_count() {
            out.push((&families::PROCESS_OPEN_FDS, fds as f64));
        }
        if let Ok(limits) = me.limits() {
            out.push((
                &families::PROCESS_MAX_FDS,
                limit(limits.max_open_files.soft_limit),
            ));
            out.push((
                &families::PROCESS_VIRTUAL_MEMORY_MAX,
                limit(limits.max_address_space.soft_limit),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plausible_figures_on_linux() {
        let s = ProcSelf.sample();
        let get = |n: &str| {
            s.iter()
                .find(|x| x.0.name == n)
                .map(|x| x.1)
                .unwrap_or_else(|| panic!("{n} missing from {s:?}"))
        };
        let rss = get("process_resident_memory");
        assert!(
            rss > 1024.0 * 1024.0 && rss < 4.0 * 1024.0 * 1024.0 * 1024.0,
            "rss {rss}"
        );
        assert!(get("process_virtual_memory") >= rss);
        let open = get("process_open_fds");
        assert!(open >= 3.0 && open <= get("process_max_fds"), "fds {open}");
        assert!(get("process_virtual_memory_max") > 0.0);
        let start = get("process_start_time");
        let now = chrono::Utc::now().timestamp() as f64;
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "start {start}"
        );
        // This test burns a little CPU itself, so the counter is positive.
        let cpu = get("process_cpu");
        assert!((0.0..86_400.0).contains(&cpu), "cpu {cpu}");
    }
}
