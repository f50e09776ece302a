//! USER_AUTHORIZATION records with `success=false` read by their real meaning
//! (reference §1): a redirect to a login, consent or account page writes two identical
//! records, a real rejection writes one. The first record of a key waits here; its
//! twin makes it one `interaction`, and a record left alone past the window is an
//! `error`. The server writes records asynchronously, so twins may arrive a few
//! records apart. Memory is bounded by [`MAX_PENDING`]; the waiting records are saved
//! in the snapshot, so a pair split by a restart is still one interaction.

use std::collections::VecDeque;

/// How far (record clock) a newer record may be stamped past a waiting one before the
/// waiting one is taken as alone.
pub const RECORD_WINDOW_MS: i64 = 10_000;
/// How long (wall clock) a record waits when no newer records arrive.
pub const WALL_WINDOW_MS: i64 = 2_000;
/// At most this many records wait; past it the oldest is taken as alone.
pub const MAX_PENDING: usize = 4_096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Two identical records: one redirect to an interactive page.
    Interaction,
    /// A record alone: the request was rejected.
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Waiting {
    key: u64,
    record_ms: i64,
    since_ms: i64,
}

#[derive(Clone, Debug, Default)]
pub struct Pairing {
    waiting: VecDeque<Waiting>,
}

impl Pairing {
    /// A record with `key` arrived (wall clock `now_ms`). Returns the interaction it
    /// completes, if its twin was waiting.
    pub fn record(&mut self, key: u64, record_ms: i64, now_ms: i64) -> Option<Resolved> {
        if let Some(i) = self.waiting.iter().position(|w| w.key == key) {
            self.waiting.remove(i);
            return Some(Resolved::Interaction);
        }
        self.waiting.push_back(Waiting {
            key,
            record_ms,
            since_ms: now_ms,
        });
        None
    }

    /// Takes as alone every record past a window; returns how many.
    pub fn expire(&mut self, newest_record_ms: i64, now_ms: i64) -> u64 {
        let mut alone = 0;
        while let Some(w) = self.waiting.front() {
            let past = w.record_ms + RECORD_WINDOW_MS < newest_record_ms
                || w.since_ms + WALL_WINDOW_MS <= now_ms
                || self.waiting.len() > MAX_PENDING;
            if !past {
                break;
            }
            self.waiting.pop_front();
            alone += 1;
        }
        alone
    }

    /// Every waiting record is alone: the input is complete (a replay's end).
    pub fn finish(&mut self) -> u64 {
        let n = self.waiting.len() as u64;
        self.waiting.clear();
        n
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// `(key, record time)` of every waiting record, oldest first, for the snapshot.
    pub fn export(&self) -> Vec<(u64, i64)> {
        self.waiting.iter().map(|w| (w.key, w.record_ms)).collect()
    }

    /// Continues from a snapshot: the restored records wait a full window again, for
    /// twins that are read again after their checkpoint.
    pub fn import(saved: &[(u64, i64)], now_ms: i64) -> Pairing {
        Pairing {
            waiting: saved
                .iter()
                .take(MAX_PENDING)
                .map(|&(key, record_ms)| Waiting {
                    key,
                    record_ms,
                    since_ms: now_ms,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twins_a_few_records_apart_are_one_interaction() {
        let mut p = Pairing::default();
        assert_eq!(p.record(1, 100, 0), None);
        assert_eq!(p.record(2, 100, 0), None);
        assert_eq!(p.record(3, 101, 0), None);
        assert_eq!(p.record(1, 100, 0), Some(Resolved::Interaction));
        assert_eq!(p.len(), 2);
        assert_eq!(p.expire(101, 1), 0, "within both windows");
    }

    #[test]
    fn a_record_alone_is_an_error_after_either_window() {
        let mut p = Pairing::default();
        p.record(1, 0, 0);
        p.record(2, 5_000, 0);
        assert_eq!(p.expire(RECORD_WINDOW_MS + 1, 10), 1, "record clock");
        assert_eq!(p.expire(0, WALL_WINDOW_MS), 1, "wall clock");
        assert!(p.is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let mut p = Pairing::default();
        for k in 0..MAX_PENDING as u64 + 10 {
            p.record(k, 0, 0);
        }
        assert_eq!(p.expire(0, 0), 10);
        assert_eq!(p.len(), MAX_PENDING);
    }

    #[test]
    fn a_pair_split_by_a_restart_is_one_interaction() {
        let mut before = Pairing::default();
        before.record(7, 100, 0);
        let mut after = Pairing::import(&before.export(), 50_000);
        assert_eq!(
            after.expire(100, 50_000),
            0,
            "a fresh wall window after the restart"
        );
        assert_eq!(after.record(7, 100, 50_001), Some(Resolved::Interaction));
    }
}
