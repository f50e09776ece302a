//! The store: the one place events become figures.
//!
//! It runs on its own thread, applies [`Message`]s in order, and publishes an immutable
//! [`View`] that the HTTP views read without ever waiting on ingestion.

pub mod persist;
pub mod sketch;
pub mod upstream;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::event::{
    Action, Batch, Event, FileCheckpoint, FileId, FormatId, MalformedReason, Message, TailStatus,
};
use crate::source::formats;
use sketch::{ActiveUsers, Horizon};

/// What the store needs from the configuration.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub precision: u8,
    pub retain_months: usize,
    /// Indexed by [`Action::index`].
    pub active_actions: [bool; Action::COUNT],
}

impl StoreConfig {
    pub fn new(precision: u8, retain_months: usize, active: &[Action]) -> StoreConfig {
        let mut active_actions = [false; Action::COUNT];
        for a in active {
            active_actions[a.index()] = true;
        }
        StoreConfig {
            precision,
            retain_months,
            active_actions,
        }
    }
}

/// `kind` of `jans_token_requests_total`.
pub const TOKEN_KINDS: [&str; 2] = ["machine", "user"];
/// `outcome` labels, indexed by `success as usize`.
pub const OUTCOMES: [&str; 2] = ["failure", "success"];

/// Exact counters. Fixed-size arrays: every label set is known in advance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// `[action][success]`
    pub audit: [[u64; 2]; Action::COUNT],
    /// `[kind: machine, user][success]`
    pub token_requests: [[u64; 2]; 2],
    /// Well-formed records per format.
    pub records: [u64; formats::COUNT],
    /// `[format + 1 (0 = not yet detected)][reason]`
    pub parse_errors: [[u64; MalformedReason::COUNT]; formats::COUNT + 1],
    pub bytes_read: u64,
    pub rotations: u64,
    pub truncations: u64,
    pub files_lost: u64,
    /// Records whose month is older than every retained month.
    pub outside_retention: u64,
    pub state_load_failures: u64,
    pub state_save_failures: u64,
    pub last_record_ms: Option<i64>,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            audit: [[0; 2]; Action::COUNT],
            token_requests: [[0; 2]; 2],
            records: [0; formats::COUNT],
            parse_errors: [[0; MalformedReason::COUNT]; formats::COUNT + 1],
            bytes_read: 0,
            rotations: 0,
            truncations: 0,
            files_lost: 0,
            outside_retention: 0,
            state_load_failures: 0,
            state_save_failures: 0,
            last_record_ms: None,
        }
    }
}

pub fn parse_error_slot(format: Option<FormatId>) -> usize {
    format.map_or(0, |f| f as usize + 1)
}

impl Counters {
    /// Every counter by a stable name: the snapshot's form, robust to new metrics.
    fn visit(&mut self, f: &mut dyn FnMut(String, &mut u64)) {
        for a in Action::ALL {
            for (ok, outcome) in OUTCOMES.iter().enumerate() {
                f(
                    format!(
                        "audit_events{{action=\"{}\",outcome=\"{outcome}\"}}",
                        a.as_str()
                    ),
                    &mut self.audit[a.index()][ok],
                );
            }
        }
        for (k, kind) in TOKEN_KINDS.iter().enumerate() {
            for (ok, outcome) in OUTCOMES.iter().enumerate() {
                f(
                    format!("token_requests{{kind=\"{kind}\",outcome=\"{outcome}\"}}"),
                    &mut self.token_requests[k][ok],
                );
            }
        }
        for (i, format) in formats::ALL.iter().enumerate() {
            f(
                format!("records{{format=\"{}\"}}", format.name()),
                &mut self.records[i],
            );
        }
        for slot in 0..=formats::COUNT {
            let label = formats::label(slot.checked_sub(1).map(|i| i as FormatId));
            for r in MalformedReason::ALL {
                f(
                    format!(
                        "parse_errors{{format=\"{label}\",reason=\"{}\"}}",
                        r.as_str()
                    ),
                    &mut self.parse_errors[slot][r as usize],
                );
            }
        }
        f("log_read_bytes".into(), &mut self.bytes_read);
        f("log_rotations".into(), &mut self.rotations);
        f("log_truncations".into(), &mut self.truncations);
        f("log_files_lost".into(), &mut self.files_lost);
        f(
            "records_outside_retention".into(),
            &mut self.outside_retention,
        );
        f("state_load_failures".into(), &mut self.state_load_failures);
        f("state_save_failures".into(), &mut self.state_save_failures);
    }

    pub fn to_map(&self) -> BTreeMap<String, u64> {
        let mut map = BTreeMap::new();
        self.clone().visit(&mut |name, v| {
            if *v != 0 {
                map.insert(name, *v);
            }
        });
        map
    }

    pub fn from_map(map: &BTreeMap<String, u64>) -> Counters {
        let mut c = Counters::default();
        c.visit(&mut |name, v| *v = map.get(&name).copied().unwrap_or(0));
        c
    }
}

/// How the durable snapshot is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateStatus {
    pub last_save_ms: Option<i64>,
    pub bytes: u64,
    /// Why the last save failed; `None` once a save succeeds again.
    pub error: Option<String>,
}

/// An immutable picture of the store, as the views see it.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub counters: Counters,
    /// Active users in the day, ISO week and month containing `at_ms`.
    pub active_current: [u64; 3],
    /// `(YYYYMM, estimate)` for every retained month, oldest first.
    pub monthly: Vec<(u32, u64)>,
    pub tail: TailStatus,
    /// The first pass over every file is done.
    pub ready: bool,
    pub state: StateStatus,
    pub upstream: upstream::UpstreamView,
    pub at_ms: i64,
}

/// The latest [`View`]; readers clone an `Arc`, the store swaps it.
#[derive(Debug, Default)]
pub struct Published(RwLock<Arc<View>>);

impl Published {
    pub fn load(&self) -> Arc<View> {
        match self.0.read() {
            Ok(v) => Arc::clone(&v),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn store(&self, view: View) {
        let view = Arc::new(view);
        match self.0.write() {
            Ok(mut v) => *v = view,
            Err(poisoned) => *poisoned.into_inner() = view,
        }
    }
}

pub struct Store {
    config: StoreConfig,
    counters: Counters,
    users: ActiveUsers,
    checkpoints: BTreeMap<FileId, FileCheckpoint>,
    tail: TailStatus,
    ready: bool,
    /// Refreshed per batch: one clock read per batch, not per record.
    horizon: Horizon,
    state: StateStatus,
    upstream: upstream::UpstreamFigures,
}

impl Store {
    pub fn new(config: StoreConfig) -> Store {
        let users = ActiveUsers::new(config.precision, config.retain_months);
        let upstream = upstream::UpstreamFigures::new(config.precision, config.retain_months);
        Store {
            config,
            counters: Counters::default(),
            users,
            checkpoints: BTreeMap::new(),
            tail: TailStatus::default(),
            ready: false,
            horizon: Horizon::at(now_ms()),
            state: StateStatus::default(),
            upstream,
        }
    }

    /// Continues from a snapshot: counters go on from their saved values (no reset seen
    /// by Prometheus), files from their checkpoints.
    pub fn restore(config: StoreConfig, snapshot: persist::Snapshot) -> Store {
        let mut store = Store::new(config);
        store.counters = Counters::from_map(&snapshot.counters);
        store.counters.last_record_ms = snapshot.last_record_ms;
        store.checkpoints = snapshot
            .checkpoints
            .into_iter()
            .map(|cp| (cp.id, cp))
            .collect();
        if let Some(mut up) = snapshot.upstream {
            up.fit(store.config.precision, store.config.retain_months);
            store.upstream = up;
        }
        let mut users = snapshot.active_users;
        if users.precision() == store.config.precision {
            users.set_retain_months(store.config.retain_months);
            store.users = users;
        } else {
            tracing::warn!(
                saved = users.precision(),
                configured = store.config.precision,
                "sketch.precision changed: active-user sketches start again"
            );
        }
        store
    }

    /// Everything that must survive a restart, consistent with the checkpoints.
    pub fn snapshot(&self) -> persist::Snapshot {
        persist::Snapshot {
            version: persist::VERSION,
            saved_at_ms: now_ms(),
            counters: self.counters.to_map(),
            last_record_ms: self.counters.last_record_ms,
            checkpoints: self.checkpoints.values().cloned().collect(),
            active_users: self.users.clone(),
            upstream: Some(self.upstream.clone()),
        }
    }

    pub fn note_load_failure(&mut self) {
        self.counters.state_load_failures += 1;
    }

    /// Saves a snapshot to `file`, recording the outcome for the views.
    pub fn save(&mut self, file: &persist::StateFile) -> Result<(), persist::SaveError> {
        match file.save(&self.snapshot()) {
            Ok(bytes) => {
                if self.state.error.take().is_some() {
                    tracing::info!("state saved again");
                }
                self.state.last_save_ms = Some(now_ms());
                self.state.bytes = bytes;
                Ok(())
            }
            Err(e) => {
                self.counters.state_save_failures += 1;
                self.state.error = Some(e.to_string());
                Err(e)
            }
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn checkpoints(&self) -> impl Iterator<Item = &FileCheckpoint> {
        self.checkpoints.values()
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    pub fn apply(&mut self, message: Message) {
        match message {
            Message::Batch(batch) => self.apply_batch(batch),
            Message::FirstPassDone => self.ready = true,
        }
    }

    fn apply_batch(&mut self, batch: Batch) {
        self.horizon = Horizon::at(now_ms());
        for event in &batch.events {
            self.apply_event(event);
        }
        if let Some(cp) = batch.checkpoint {
            self.checkpoints.insert(cp.id, cp);
        }
        if let Some(id) = batch.forget {
            self.checkpoints.remove(&id);
        }
        if let Some(status) = batch.status {
            self.tail = status;
        }
    }

    /// Where the FIDO2 poller should continue: the last window asked for, if any.
    pub fn fido2_synced_ms(&self) -> Option<i64> {
        self.upstream.fido2_synced_ms
    }

    pub fn apply_event(&mut self, event: &Event) {
        let c = &mut self.counters;
        match *event {
            Event::UpstreamCall(ref call) => self.upstream.call(call),
            Event::Stat(ref report) => self.upstream.stat(report),
            Event::Health(ref h) => self.upstream.health(h),
            Event::Fido2Health { up } => self.upstream.fido2_health(up),
            Event::Fido2(ref e) => self.upstream.fido2(e, &self.horizon),
            Event::Fido2Synced { until_ms } => self.upstream.fido2_synced(until_ms),
            Event::Audit(a) => {
                c.audit[a.action.index()][a.success as usize] += 1;
                c.records[a.format as usize] += 1;
                if a.action == Action::TokenRequest {
                    c.token_requests[a.user.is_some() as usize][a.success as usize] += 1;
                }
                c.last_record_ms = Some(
                    c.last_record_ms
                        .map_or(a.timestamp_ms, |t| t.max(a.timestamp_ms)),
                );
                if let (true, Some(user)) = (
                    a.success && self.config.active_actions[a.action.index()],
                    a.user,
                ) {
                    if !self.users.insert(a.timestamp_ms, user, &self.horizon) {
                        c.outside_retention += 1;
                    }
                }
            }
            Event::Malformed { format, reason } => {
                c.parse_errors[parse_error_slot(format)][reason as usize] += 1;
            }
            Event::BytesRead(n) => c.bytes_read += n,
            Event::Rotated => c.rotations += 1,
            Event::Truncated => c.truncations += 1,
            Event::FileLost => c.files_lost += 1,
        }
    }

    /// A consistent picture as of `now_ms` (wall clock: "current" periods).
    pub fn view(&mut self, now_ms: i64) -> View {
        View {
            counters: self.counters.clone(),
            active_current: self.users.current(now_ms),
            monthly: self.users.monthly(),
            tail: self.tail,
            ready: self.ready,
            state: self.state.clone(),
            upstream: self.upstream.view(now_ms),
            at_ms: now_ms,
        }
    }
}

/// The wall clock in epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// How often, at most, a new view is published while messages keep coming.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Where and how often the store saves itself.
pub struct Persistence {
    pub file: persist::StateFile,
    pub every: Duration,
}

/// Applies messages until every sender is gone, publishing views and saving snapshots
/// as it goes, and a last snapshot at the end.
pub fn run(
    mut store: Store,
    mut rx: tokio::sync::mpsc::Receiver<Message>,
    published: &Published,
    persistence: Option<Persistence>,
) -> Store {
    let mut last_publish = Instant::now();
    let mut last_save = Instant::now();
    let mut last_save_warning: Option<Instant> = None;
    let mut save = |store: &mut Store| {
        let Some(p) = &persistence else { return };
        if let Err(e) = store.save(&p.file) {
            // Once a minute at most: a read-only disk fails every flush.
            if last_save_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                tracing::error!(error = %e, "cannot save state; counting goes on, but a restart would re-read or lose what was not saved");
                last_save_warning = Some(Instant::now());
            }
        }
    };
    let every = persistence.as_ref().map(|p| p.every);
    while let Some(message) = rx.blocking_recv() {
        store.apply(message);
        let due = every.is_some_and(|every| last_save.elapsed() >= every);
        if due {
            save(&mut store);
            last_save = Instant::now();
        }
        if due || rx.is_empty() || last_publish.elapsed() >= PUBLISH_EVERY {
            published.store(store.view(now_ms()));
            last_publish = Instant::now();
        }
    }
    save(&mut store);
    published.store(store.view(now_ms()));
    store
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AuditEvent, UserKey};

    fn audit(action: Action, success: bool, user: Option<&str>, ts: i64) -> Event {
        Event::Audit(AuditEvent {
            format: 0,
            action,
            success,
            timestamp_ms: ts,
            user: user.map(UserKey::of),
        })
    }

    #[test]
    fn counters_survive_the_snapshot_map_exactly() {
        let mut c = Counters::default();
        c.audit[Action::TokenRequest.index()][1] = 5;
        c.token_requests[0][1] = 3;
        c.parse_errors[0][MalformedReason::Oversize as usize] = 2;
        c.parse_errors[2][MalformedReason::BadMessage as usize] = 4;
        c.records[1] = 9;
        c.bytes_read = 1234;
        c.state_save_failures = 1;
        let map = c.to_map();
        assert_eq!(map.len(), 7, "zeroes are left out: {map:?}");
        assert_eq!(Counters::from_map(&map), c);
        // Unknown names (a metric a later version dropped) are ignored.
        let mut extra = map.clone();
        extra.insert("retired_metric".into(), 8);
        assert_eq!(Counters::from_map(&extra), c);
    }

    #[test]
    fn applies_exact_counters_and_active_users_from_configured_actions_only() {
        let cfg = StoreConfig::new(14, 13, &[Action::SessionAuthenticated]);
        let mut s = Store::new(cfg);
        let t = now_ms();
        let month = sketch::PeriodKeys::of(t).unwrap().month;
        for e in [
            audit(Action::SessionAuthenticated, true, Some("a"), t),
            audit(Action::SessionAuthenticated, false, Some("b"), t), // failed: not active
            audit(Action::UserInfo, true, Some("c"), t),              // not a configured action
            audit(Action::TokenRequest, true, None, t + 5),
            audit(Action::TokenRequest, false, Some("a"), t),
            audit(Action::Other, true, None, t),
            Event::Malformed {
                format: None,
                reason: MalformedReason::UnexpectedLine,
            },
            Event::BytesRead(10),
            Event::BytesRead(5),
        ] {
            s.apply_event(&e);
        }
        let v = s.view(t);
        let c = &v.counters;
        assert_eq!(c.audit[Action::SessionAuthenticated.index()], [1, 1]);
        assert_eq!(c.audit[Action::Other.index()], [0, 1]);
        assert_eq!(c.token_requests, [[0, 1], [1, 0]]);
        assert_eq!(c.records[0], 6);
        assert_eq!(
            c.parse_errors[0][MalformedReason::UnexpectedLine as usize],
            1
        );
        assert_eq!(c.bytes_read, 15);
        assert_eq!(c.last_record_ms, Some(t + 5));
        assert_eq!(v.monthly, vec![(month, 1)]);
        assert_eq!(v.active_current, [1, 1, 1]);
        assert_eq!(
            s.view(t + 86_400_000).active_current[0],
            0,
            "a day later, a new day"
        );
    }
}
