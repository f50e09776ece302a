//! Silence is never mistaken for health: while a pattern of `logs.paths` matches no
//! file, or nothing has been read for `logs.stale_after`, the live tailer says so in a
//! WARN at start and every few minutes (a wrong path or audit logging left off looks
//! exactly like a quiet server otherwise).

use std::time::{Duration, Instant};

use crate::log_limit::RateLimitedLog;

/// How often a standing silence is repeated.
const REPEAT: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct SilenceWatch {
    stale_after: Duration,
    started: Instant,
    empty_patterns: Vec<RateLimitedLog>,
    stale: RateLimitedLog,
}

impl SilenceWatch {
    pub fn new(patterns: usize, stale_after: Duration) -> SilenceWatch {
        SilenceWatch {
            stale_after,
            started: Instant::now(),
            empty_patterns: (0..patterns).map(|_| RateLimitedLog::new(REPEAT)).collect(),
            stale: RateLimitedLog::new(REPEAT),
        }
    }

    /// After a poll: `matched[i]` files matched `patterns[i]`; `last_read` is when bytes
    /// were last read from any file (`None`: never in this run).
    pub fn check(&mut self, patterns: &[String], matched: &[u64], last_read: Option<Instant>) {
        for ((pattern, n), log) in patterns.iter().zip(matched).zip(&mut self.empty_patterns) {
            if *n == 0 {
                if log.allow().is_some() {
                    tracing::warn!(
                        pattern = %pattern,
                        "no file matches this logs.paths pattern: nothing is read from it (a wrong path, or the auth server's audit logging is off: enabledOAuthAuditLogging)"
                    );
                }
            } else {
                // Matched again: the next silence is said at once.
                *log = RateLimitedLog::new(REPEAT);
            }
        }
        let quiet_since = last_read.unwrap_or(self.started);
        let quiet = quiet_since.elapsed();
        if !self.stale_after.is_zero() && quiet >= self.stale_after {
            if self.stale.allow().is_some() {
                tracing::warn!(
                    quiet_for = %humantime::format_duration(Duration::from_secs(quiet.as_secs())),
                    files = matched.iter().sum::<u64>(),
                    "nothing has been read from the followed logs for logs.stale_after: is the auth server writing its audit log to this volume?"
                );
            }
        } else {
            self.stale = RateLimitedLog::new(REPEAT);
        }
    }
}
