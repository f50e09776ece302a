//! USER_AUTHORIZATION records with `success=false` read by their real meaning
//! (reference §1): a redirect to a login, consent or account page writes two identical
//! records, a real rejection writes one. The first record of a key waits here; its
//! twin makes it one `interaction`, and a record left alone past the window is an
//! `error`. The server writes records asynchronously, so twins may arrive a few
//! records apart. Memory is bounded by [`MAX_PENDING`]; the waiting records are saved
//! in the snapshot, so a pair split by a restart is still one interaction.

use std::collections::{HashMap, VecDeque};

/// How long (wall clock) a record waits for its twin. Twins are written together and
/// read within milliseconds of each other, even out of order or across two reads; the
/// record clock is no guide, since backfilled files of other days interleave.
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
    seq: u64,
    key: u64,
    record_ms: i64,
    since_ms: i64,
}

/// Records waiting, in arrival order, with an index by key so a twin is found in
/// constant time. A matched record leaves its index entry at once and its queue entry
/// when it reaches the front.
#[derive(Clone, Debug, Default)]
pub struct Pairing {
    queue: VecDeque<Waiting>,
    /// key → sequence numbers still waiting, oldest first.
    by_key: HashMap<u64, VecDeque<u64>>,
    waiting: usize,
    next_seq: u64,
}

impl Pairing {
    fn is_waiting(&self, w: &Waiting) -> bool {
        self.by_key
            .get(&w.key)
            .is_some_and(|seqs| seqs.front() == Some(&w.seq))
    }

    fn take(&mut self, key: u64) {
        if let Some(seqs) = self.by_key.get_mut(&key) {
            seqs.pop_front();
            if seqs.is_empty() {
                self.by_key.remove(&key);
            }
            self.waiting -= 1;
        }
    }

    /// A record with `key` arrived (wall clock `now_ms`). Returns the interaction it
    /// completes, if its twin was waiting.
    pub fn record(&mut self, key: u64, record_ms: i64, now_ms: i64) -> Option<Resolved> {
        if self.by_key.contains_key(&key) {
            self.take(key);
            return Some(Resolved::Interaction);
        }
        self.enqueue(key, record_ms, now_ms);
        None
    }

    fn enqueue(&mut self, key: u64, record_ms: i64, since_ms: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back(Waiting {
            seq,
            key,
            record_ms,
            since_ms,
        });
        self.by_key.entry(key).or_default().push_back(seq);
        self.waiting += 1;
    }

    /// Takes as alone every record that waited past the window, or past the bound;
    /// returns how many.
    pub fn expire(&mut self, now_ms: i64) -> u64 {
        let mut alone = 0;
        while let Some(&w) = self.queue.front() {
            if !self.is_waiting(&w) {
                // Matched earlier.
                self.queue.pop_front();
                continue;
            }
            if w.since_ms + WALL_WINDOW_MS > now_ms && self.waiting <= MAX_PENDING {
                break;
            }
            self.queue.pop_front();
            self.take(w.key);
            alone += 1;
        }
        alone
    }

    /// Every waiting record is alone: the input is complete (a replay's end).
    pub fn finish(&mut self) -> u64 {
        let n = self.waiting as u64;
        *self = Pairing::default();
        n
    }

    pub fn len(&self) -> usize {
        self.waiting
    }

    pub fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// `(key, record time)` of every waiting record, oldest first, for the snapshot.
    pub fn export(&self) -> Vec<(u64, i64)> {
        self.queue
            .iter()
            .filter(|w| {
                self.by_key
                    .get(&w.key)
                    .is_some_and(|seqs| seqs.contains(&w.seq))
            })
            .map(|w| (w.key, w.record_ms))
            .collect()
    }

    /// Continues from a snapshot: the restored records wait a full window again, for
    /// twins that are read again after their checkpoint.
    pub fn import(saved: &[(u64, i64)], now_ms: i64) -> Pairing {
        let mut p = Pairing::default();
        for &(key, record_ms) in saved.iter().take(MAX_PENDING) {
            p.enqueue(key, record_ms, now_ms);
        }
        p
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
        assert_eq!(p.expire(1), 0, "within the window");
        assert_eq!(p.export(), vec![(2, 100), (3, 101)]);
    }

    #[test]
    fn a_record_alone_is_an_error_after_either_window() {
        let mut p = Pairing::default();
        p.record(1, 0, 0);
        p.record(2, 5_000, 1_000);
        assert_eq!(p.expire(WALL_WINDOW_MS), 1);
        assert_eq!(p.expire(1_000 + WALL_WINDOW_MS), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn a_key_that_recurs_after_its_pair_waits_on_its_own() {
        let mut p = Pairing::default();
        p.record(9, 0, 0);
        assert_eq!(p.record(9, 0, 0), Some(Resolved::Interaction));
        assert_eq!(p.record(9, 0, 1_500), None);
        // The matched first pair's entry is gone; the new one waits its own window.
        assert_eq!(p.expire(2_100), 0);
        assert_eq!(p.record(9, 0, 2_200), Some(Resolved::Interaction));
        assert_eq!(p.expire(10_000), 0);
        assert!(p.is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let mut p = Pairing::default();
        for k in 0..MAX_PENDING as u64 + 10 {
            p.record(k, 0, 0);
        }
        assert_eq!(p.expire(0), 10);
        assert_eq!(p.len(), MAX_PENDING);
    }

    #[test]
    fn a_pair_split_by_a_restart_is_one_interaction() {
        let mut before = Pairing::default();
        before.record(7, 100, 0);
        let mut after = Pairing::import(&before.export(), 50_000);
        assert_eq!(
            after.expire(50_000),
            0,
            "a fresh wall window after the restart"
        );
        assert_eq!(after.record(7, 100, 50_001), Some(Resolved::Interaction));
    }
}
