//! The exporter's own resource use, read from `/proc` at scrape time (Linux).

use crate::families::{self, Family};
use crate::view::metrics::ProcessInfo;

#[derive(Debug, Default)]
pub struct ProcSelf;

/// Clock ticks per second; 100 on every Linux configuration we run on.
const TICKS_PER_SECOND: f64 = 100.0;

fn page_size() -> f64 {
    4096.0
}

/// Fields of `/proc/self/stat` after the command name, 0-based from field 3 (`state`).
fn stat_fields() -> Option<Vec<String>> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_string).collect())
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

impl ProcessInfo for ProcSelf {
    fn sample(&self) -> Vec<(&'static Family, f64)> {
        let mut out = Vec::new();
        if let Some(f) = stat_fields() {
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            // utime, stime are fields 14 and 15 (1-based), i.e. 11 and 12 here.
            if let (Some(u), Some(s)) = (num(11), num(12)) {
                out.push((&families::PROCESS_CPU, (u + s) / TICKS_PER_SECOND));
            }
            if let Some(rss) = num(21) {
                out.push((&families::PROCESS_RESIDENT_MEMORY, rss * page_size()));
            }
            if let (Some(start), Some(boot)) = (num(19), boot_time()) {
                out.push((
                    &families::PROCESS_START_TIME,
                    boot + start / TICKS_PER_SECOND,
                ));
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            out.push((&families::PROCESS_OPEN_FDS, fds.count() as f64));
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
                .find(|x| x.0.name == format!("jans_exporter_{n}"))
                .map(|x| x.1)
        };
        let rss = get("process_resident_memory").unwrap();
        assert!(
            rss > 1024.0 * 1024.0 && rss < 4.0 * 1024.0 * 1024.0 * 1024.0,
            "rss {rss}"
        );
        assert!(get("process_open_fds").unwrap() >= 3.0);
        let start = get("process_start_time").unwrap();
        let now = chrono::Utc::now().timestamp() as f64;
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "start {start}"
        );
    }
}
