//! The Okta figures (see `crate::okta`): active users of user-based flows, machine-to-
//! machine tokens by authorization server, and the poller's own health; with the `next`
//! link they were read up to, saved in the same snapshot so that a restart neither
//! loses nor counts twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::persist::model::{key, parse_key, Persisted, SnapshotOut};
use super::sketch::{ActiveUsers, Horizon};
use super::upstream::{CallStats, Histogram, CALL_BUCKETS};
use crate::event::{OktaCall, OktaErrorReason, OktaEvent, OktaFlow, OktaKind, OktaSkipReason};
use crate::families;

/// Event ids remembered for de-duplication: those read within this (a redelivery comes
/// soon after the first delivery, whenever the event was published), and never more
/// than [`SEEN_MAX`].
const SEEN_WINDOW_MS: i64 = 24 * 3600 * 1000;
const SEEN_MAX: usize = 200_000;
/// Authorization servers whose volume is tracked to pick the label values.
const TRACKED_MAX: usize = 1000;
/// The label of M2M tokens of servers not (or no longer) among the top ones.
pub const OTHER: &str = "other";
/// The label of M2M tokens whose event names no authorization server.
pub const UNKNOWN: &str = "unknown";

/// Label values for authorization servers: the `cap` largest by volume. A server that
/// grows to twice the smallest admitted one takes its place; the one it replaces
/// counts as `other` from then on (its series stays where it was: counters never go
/// down).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TopN {
    cap: usize,
    admitted: Vec<String>,
    volumes: BTreeMap<String, u64>,
}

impl TopN {
    pub fn new(cap: usize) -> TopN {
        TopN {
            cap: cap.max(1),
            ..TopN::default()
        }
    }

    /// Counts one token of `server` and returns the label it goes under.
    pub fn label(&mut self, server: &str) -> String {
        if !self.volumes.contains_key(server) && self.volumes.len() >= TRACKED_MAX {
            // Forget the smallest server not admitted (bounded memory).
            if let Some(smallest) = self
                .volumes
                .iter()
                .filter(|(s, _)| !self.admitted.contains(s))
                .min_by_key(|(_, n)| **n)
                .map(|(s, _)| s.clone())
            {
                self.volumes.remove(&smallest);
            }
        }
        let volume = {
            let v = self.volumes.entry(server.to_string()).or_default();
            *v += 1;
            *v
        };
        if self.admitted.iter().any(|a| a == server) {
            return server.to_string();
        }
        if self.admitted.len() < self.cap {
            self.admitted.push(server.to_string());
            return server.to_string();
        }
        let smallest = self
            .admitted
            .iter()
            .enumerate()
            .map(|(i, a)| (i, self.volumes.get(a).copied().unwrap_or(0)))
            .min_by_key(|(_, n)| *n);
        match smallest {
            Some((i, n)) if volume > n.saturating_mul(2) => {
                self.admitted[i] = server.to_string();
                server.to_string()
            }
            _ => OTHER.to_string(),
        }
    }

    fn bounded(mut self, cap: usize) -> TopN {
        self.cap = cap.max(1);
        self.admitted.truncate(self.cap);
        while self.volumes.len() > TRACKED_MAX {
            self.volumes.pop_last();
        }
        self
    }
}

/// What the snapshot keeps of the Okta source besides counters and sketches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OktaSection {
    /// The `next` link the next request asks for.
    pub next: Option<String>,
    /// `(event id, epoch ms it was read)` of the events counted recently.
    pub seen: Vec<(u64, i64)>,
    pub servers: TopN,
}

/// What the views read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OktaView {
    /// The requests to the System Log.
    pub calls: CallStats<{ OktaErrorReason::COUNT }>,
    pub rate_limit_remaining: Option<u64>,
    /// The newest `published` read.
    pub newest_ms: Option<i64>,
    pub active: [u64; 3],
    pub monthly: Vec<(u32, u64)>,
    pub m2m_tokens: BTreeMap<String, u64>,
    /// `[flow][billed]`.
    pub events: [[u64; 2]; OktaFlow::COUNT],
    pub skipped: [u64; OktaSkipReason::COUNT],
    pub duplicates: u64,
}

#[derive(Clone, Debug)]
pub struct OktaFigures {
    view: OktaView,
    users: ActiveUsers,
    seen: BTreeMap<u64, i64>,
    /// The latest time an event was read: the window's end.
    newest_read_ms: i64,
    section: OktaSection,
}

impl OktaFigures {
    pub fn new(precision: u8, retain_months: usize, max_servers: usize) -> OktaFigures {
        OktaFigures {
            view: OktaView::default(),
            users: ActiveUsers::new(precision, retain_months),
            seen: BTreeMap::new(),
            newest_read_ms: 0,
            section: OktaSection {
                servers: TopN::new(max_servers),
                ..OktaSection::default()
            },
        }
    }

    /// Where polling continues: the saved `next` link.
    pub fn next(&self) -> Option<&str> {
        self.section.next.as_deref()
    }

    pub fn users_mut(&mut self) -> &mut ActiveUsers {
        &mut self.users
    }

    /// Counts an event read at `read_ms` (the store's clock).
    pub fn event(&mut self, e: &OktaEvent, horizon: &Horizon, read_ms: i64) {
        let v = &mut self.view;
        if let OktaKind::Skipped(reason) = e.kind {
            v.skipped[reason as usize] += 1;
            return;
        }
        if self.seen.contains_key(&e.id) {
            v.duplicates += 1;
            return;
        }
        self.seen.insert(e.id, read_ms);
        self.newest_read_ms = self.newest_read_ms.max(read_ms);
        v.newest_ms = Some(
            v.newest_ms
                .map_or(e.published_ms, |t| t.max(e.published_ms)),
        );
        match &e.kind {
            OktaKind::User(user) => {
                v.events[OktaFlow::User as usize][1] += 1;
                let _ = self.users.insert(e.published_ms, *user, horizon);
            }
            OktaKind::M2m(server) => {
                v.events[OktaFlow::M2m as usize][1] += 1;
                let label = match server {
                    Some(s) => self.section.servers.label(s),
                    None => UNKNOWN.to_string(),
                };
                *v.m2m_tokens.entry(label).or_default() += 1;
                self.fold_series();
            }
            OktaKind::NotBilled(flow) => v.events[*flow as usize][0] += 1,
            OktaKind::Skipped(_) => {}
        }
    }

    /// Bounded series: series of servers replaced long ago fold into `other` when
    /// there are more than four times the cap.
    fn fold_series(&mut self) {
        let cap = self.section.servers.cap * 4 + 2;
        let m2m = &mut self.view.m2m_tokens;
        while m2m.len() > cap {
            let admitted = &self.section.servers.admitted;
            let Some(smallest) = m2m
                .iter()
                .filter(|(s, _)| *s != OTHER && *s != UNKNOWN && !admitted.contains(s))
                .min_by_key(|(_, n)| **n)
                .map(|(s, _)| s.clone())
            else {
                break;
            };
            let n = m2m.remove(&smallest).unwrap_or(0);
            *m2m.entry(OTHER.to_string()).or_default() += n;
        }
    }

    pub fn call(&mut self, c: &OktaCall) {
        let v = &mut self.view;
        v.calls
            .record(c.seconds, c.at_ms, c.result.err().map(|r| r as usize));
        if c.rate_limit_remaining.is_some() {
            v.rate_limit_remaining = c.rate_limit_remaining;
        }
        if let Some(next) = &c.next {
            self.section.next = Some(next.clone());
            self.trim_seen();
        }
    }

    fn trim_seen(&mut self) {
        super::trim_seen(
            &mut self.seen,
            self.newest_read_ms - SEEN_WINDOW_MS,
            SEEN_MAX,
        );
    }

    pub fn view(&mut self, now_ms: i64) -> OktaView {
        self.view.active = self.users.current(now_ms);
        self.view.monthly = self.users.monthly();
        self.view.clone()
    }

    pub fn export<'a>(&'a self, out: &mut SnapshotOut<'a>) {
        let v = &self.view;
        let mut counter = |family, labels: &[&str], n: u64| {
            if n > 0 {
                out.counters.insert(key(family, labels), n);
            }
        };
        for r in OktaErrorReason::ALL {
            counter(
                &families::OKTA_ERRORS,
                &[r.as_str()],
                v.calls.errors[r as usize],
            );
        }
        for r in OktaSkipReason::ALL {
            counter(
                &families::OKTA_SKIPPED_EVENTS,
                &[r.as_str()],
                v.skipped[r as usize],
            );
        }
        for f in OktaFlow::ALL {
            for (billed, n) in ["false", "true"].iter().zip(v.events[f as usize]) {
                counter(&families::OKTA_EVENTS, &[f.as_str(), billed], n);
            }
        }
        counter(&families::OKTA_DUPLICATE_EVENTS, &[], v.duplicates);
        for (server, n) in &v.m2m_tokens {
            counter(&families::OKTA_M2M_TOKENS, &[server], *n);
        }
        if v.calls.duration.count > 0 {
            out.histograms.insert(
                key(&families::OKTA_REQUEST_DURATION, &[]),
                v.calls.duration.repr(&CALL_BUCKETS),
            );
        }
        if let Some(ms) = v.calls.last_success_ms {
            out.times.insert(key(&families::OKTA_LAST_SUCCESS, &[]), ms);
        }
        if let Some(ms) = v.newest_ms {
            out.times.insert(key(&families::OKTA_NEWEST_EVENT, &[]), ms);
        }
        out.sketch_sets.push(("okta_users", &self.users));
        out.okta = Some(OktaSection {
            next: self.section.next.clone(),
            seen: self.seen.iter().map(|(id, t)| (*id, *t)).collect(),
            servers: self.section.servers.clone(),
        });
    }

    /// Continues from a snapshot (the sketches are restored by the store).
    pub fn import(&mut self, p: &Persisted) {
        fn named<T: Copy>(
            all: &[T],
            name: Option<&str>,
            as_str: fn(T) -> &'static str,
        ) -> Option<T> {
            all.iter().copied().find(|v| Some(as_str(*v)) == name)
        }
        let v = &mut self.view;
        for (name, &n) in &p.counters {
            let Some(k) = parse_key(name) else { continue };
            match k.name {
                x if x == families::OKTA_ERRORS.name => {
                    if let Some(r) = named(
                        &OktaErrorReason::ALL,
                        k.get("reason"),
                        OktaErrorReason::as_str,
                    ) {
                        v.calls.errors[r as usize] = n;
                    }
                }
                x if x == families::OKTA_SKIPPED_EVENTS.name => {
                    if let Some(r) = named(
                        &OktaSkipReason::ALL,
                        k.get("reason"),
                        OktaSkipReason::as_str,
                    ) {
                        v.skipped[r as usize] = n;
                    }
                }
                x if x == families::OKTA_EVENTS.name => {
                    let billed = match k.get("billed") {
                        Some("true") => 1,
                        Some("false") => 0,
                        _ => continue,
                    };
                    if let Some(f) = named(&OktaFlow::ALL, k.get("flow"), OktaFlow::as_str) {
                        v.events[f as usize][billed] = n;
                    }
                }
                x if x == families::OKTA_DUPLICATE_EVENTS.name => v.duplicates = n,
                x if x == families::OKTA_M2M_TOKENS.name => {
                    if let Some(s) = k.get("authorization_server").filter(|s| valid_server(s)) {
                        v.m2m_tokens.insert(s.to_string(), n);
                    }
                }
                _ => {}
            }
        }
        if let Some(h) = p
            .histograms
            .get(&key(&families::OKTA_REQUEST_DURATION, &[]))
            .and_then(|h| Histogram::from_repr(&CALL_BUCKETS, h))
        {
            v.calls.duration = h;
        }
        v.calls.last_success_ms = p
            .times
            .get(&key(&families::OKTA_LAST_SUCCESS, &[]))
            .copied();
        v.newest_ms = p
            .times
            .get(&key(&families::OKTA_NEWEST_EVENT, &[]))
            .copied();
        let cap = self.section.servers.cap;
        self.section = OktaSection {
            next: p.okta.next.clone(),
            seen: Vec::new(),
            servers: p.okta.servers.clone().bounded(cap),
        };
        self.seen = p.okta.seen.iter().copied().collect();
        self.newest_read_ms = self.seen.values().copied().max().unwrap_or(0);
        self.trim_seen();
        self.fold_series();
    }
}

/// An authorization server's id as it may be a label value: Okta's ids (`aus…`, or
/// `default`) are short and alphanumeric.
pub fn valid_server(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_servers_keep_their_label_and_a_growing_one_takes_a_place() {
        let mut top = TopN::new(2);
        for _ in 0..10 {
            assert_eq!(top.label("ausA"), "ausA");
        }
        for _ in 0..3 {
            assert_eq!(top.label("ausB"), "ausB");
        }
        // A third server is `other` until it has twice the smallest admitted volume.
        for _ in 0..6 {
            assert_eq!(top.label("ausC"), OTHER);
        }
        assert_eq!(top.label("ausC"), "ausC", "7 > 2 × 3");
        // B is out now: its tokens go to `other`.
        assert_eq!(top.label("ausB"), OTHER);
        assert_eq!(top.label("ausA"), "ausA");
    }

    #[test]
    fn tracked_servers_are_bounded() {
        let mut top = TopN::new(3);
        for i in 0..(TRACKED_MAX + 500) {
            top.label(&format!("aus{i}"));
        }
        assert!(top.volumes.len() <= TRACKED_MAX);
        assert_eq!(top.admitted.len(), 3);
    }

    #[test]
    fn series_stay_bounded_however_the_servers_churn() {
        let mut o = OktaFigures::new(14, 13, 2);
        let h = Horizon::default();
        let mut id = 0;
        for round in 0..200u64 {
            // Each round a new server grows past the admitted ones.
            for _ in 0..(round + 1) * 3 {
                id += 1;
                o.event(
                    &OktaEvent {
                        id,
                        published_ms: 1_796_000_000_000,
                        kind: OktaKind::M2m(Some(format!("aus{round}"))),
                    },
                    &h,
                    1_796_000_000_000,
                );
            }
        }
        let total: u64 = o.view.m2m_tokens.values().sum();
        assert_eq!(total, id, "every token is counted, whatever its label");
        assert!(
            o.view.m2m_tokens.len() <= 2 * 4 + 2,
            "{}",
            o.view.m2m_tokens.len()
        );
    }

    #[test]
    fn duplicates_are_counted_once_and_the_window_is_bounded() {
        let mut o = OktaFigures::new(14, 13, 10);
        let h = Horizon::default();
        let e = |id: u64, t: i64| OktaEvent {
            id,
            published_ms: t,
            kind: OktaKind::M2m(Some("default".into())),
        };
        // Published long ago, read now: still a duplicate when delivered again.
        o.event(&e(1, 1_000), &h, 10_000);
        o.event(&e(1, 1_000), &h, 20_000);
        o.event(&e(2, 5_000), &h, 2 * SEEN_WINDOW_MS);
        assert_eq!(o.view.m2m_tokens["default"], 2);
        assert_eq!(o.view.duplicates, 1);
        o.call(&OktaCall {
            result: Ok(()),
            seconds: 0.1,
            at_ms: 5,
            next: Some("https://x.okta.com/api/v1/logs?after=2".into()),
            rate_limit_remaining: Some(10),
        });
        assert_eq!(o.seen.len(), 1, "id 1 was read more than a day before id 2");
        assert_eq!(o.next(), Some("https://x.okta.com/api/v1/logs?after=2"));
        assert!(!valid_server("aus 1") && valid_server("aus1") && valid_server("default"));
    }
}
