//! The store: the one place events become figures.
//!
//! It runs on its own thread, applies [`Message`]s in order, and publishes an immutable
//! [`View`] that the HTTP views read without ever waiting on ingestion.

pub mod cluster;
pub mod okta;
pub mod pairing;
pub mod persist;
pub mod redis_hll;
pub mod sketch;
pub mod upstream;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::event::{
    Action, AuthKind, Batch, Event, Fido2SkipReason, FileCheckpoint, FileId, FormatId, LineTime,
    LogLevel, MalformedReason, Message, TailStatus, UserSet,
};
use crate::families;
use crate::source::formats;
use persist::model::{key, Persisted, SnapshotOut};
use sketch::{ActiveUsers, Horizon, Insert, Sketch};

/// What the store needs from the configuration.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub precision: u8,
    pub retain_months: usize,
    /// Indexed by [`Action::index`].
    pub active_actions: [bool; Action::COUNT],
    /// Records stamped further ahead of the wall clock touch no sketch.
    pub max_clock_ahead_ms: i64,
    /// The zone of the server log's text timestamps (`logs.server_time_zone`).
    pub server_time_zone: chrono_tz::Tz,
    /// Keep Redis-compatible registers for the cluster-wide union (`cluster.redis_url`).
    pub cluster: bool,
    /// Keep Okta figures, with this many authorization servers as label values
    /// (`okta.org_url`, `okta.max_authorization_servers`).
    pub okta: Option<usize>,
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
            max_clock_ahead_ms: 86_400_000,
            server_time_zone: chrono_tz::Tz::UTC,
            cluster: false,
            okta: None,
        }
    }
}

/// Snapshot sections a load can drop (`section` label values): version 2's own list,
/// and version 1's upstream part.
pub const STATE_SECTIONS: [&str; persist::model::SECTIONS.len() + 1] = {
    let mut out = [""; persist::model::SECTIONS.len() + 1];
    let mut i = 0;
    while i < persist::model::SECTIONS.len() {
        out[i] = persist::model::SECTIONS[i];
        i += 1;
    }
    out[i] = "upstream";
    out
};

/// Closed files remembered with where they stopped: a day of log4j rotating every
/// minute, or years of daily rotations. About 150 bytes each in the snapshot.
pub const CLOSED_KEPT: usize = 4096;

/// `kind` of `jans_token_requests_total`.
pub const TOKEN_KINDS: [&str; 2] = ["machine", "user"];
/// `outcome` labels, indexed by `success as usize`.
pub const OUTCOMES: [&str; 2] = ["failure", "success"];
/// `outcome` labels of authorization requests, indexed like [`AuthorizationOutcome`].
pub const AUTHORIZATION_OUTCOMES: [&str; 3] = ["success", "interaction", "error"];

/// What a USER_AUTHORIZATION record really meant (see [`pairing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AuthorizationOutcome {
    /// A code or token was issued.
    Success,
    /// A redirect to a login, consent or account page (two identical records).
    Interaction,
    /// A rejected request (one record).
    Error,
}

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
    /// Records stamped too far ahead of the clock.
    pub future: u64,
    /// Audit records read with invalid UTF-8 replaced.
    pub lossy: u64,
    pub state_load_failures: u64,
    pub state_save_failures: u64,
    /// Indexed like [`STATE_SECTIONS`].
    pub state_sections_dropped: [u64; STATE_SECTIONS.len()],
    pub last_record_ms: Option<i64>,
    /// `[kind][success]` from the server log's Authenticator lines.
    pub authentications: [[u64; 2]; AuthKind::COUNT],
    /// Server-log events by level.
    pub server_log_messages: [u64; LogLevel::COUNT],
    /// Indexed by [`AuthorizationOutcome`].
    pub authorization_requests: [u64; 3],
    /// FIDO2 entries that could not be read, by [`Fido2SkipReason`].
    pub fido2_skipped: [u64; Fido2SkipReason::COUNT],
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
            future: 0,
            lossy: 0,
            state_load_failures: 0,
            state_save_failures: 0,
            state_sections_dropped: [0; STATE_SECTIONS.len()],
            last_record_ms: None,
            authentications: [[0; 2]; AuthKind::COUNT],
            server_log_messages: [0; LogLevel::COUNT],
            authorization_requests: [0; 3],
            fido2_skipped: [0; Fido2SkipReason::COUNT],
        }
    }
}

pub fn parse_error_slot(format: Option<FormatId>) -> usize {
    format.map_or(0, |f| f as usize + 1)
}

impl Counters {
    /// Every counter with its snapshot key (family and label values).
    fn visit(&mut self, f: &mut dyn FnMut(String, &mut u64)) {
        for a in Action::ALL {
            for (ok, outcome) in OUTCOMES.iter().enumerate() {
                f(
                    key(&families::AUDIT_EVENTS, &[a.as_str(), outcome]),
                    &mut self.audit[a.index()][ok],
                );
            }
        }
        for (k, kind) in TOKEN_KINDS.iter().enumerate() {
            for (ok, outcome) in OUTCOMES.iter().enumerate() {
                f(
                    key(&families::TOKEN_REQUESTS, &[kind, outcome]),
                    &mut self.token_requests[k][ok],
                );
            }
        }
        for (i, format) in formats::ALL.iter().enumerate() {
            f(
                key(&families::RECORDS, &[format.name()]),
                &mut self.records[i],
            );
        }
        for slot in 0..=formats::COUNT {
            let label = formats::label(slot.checked_sub(1).map(|i| i as FormatId));
            for r in MalformedReason::ALL {
                f(
                    key(&families::PARSE_ERRORS, &[label, r.as_str()]),
                    &mut self.parse_errors[slot][r as usize],
                );
            }
        }
        for kind in AuthKind::ALL {
            for (ok, outcome) in OUTCOMES.iter().enumerate() {
                f(
                    key(&families::AUTHENTICATIONS, &[kind.as_str(), outcome]),
                    &mut self.authentications[kind as usize][ok],
                );
            }
        }
        for level in LogLevel::ALL {
            f(
                key(&families::SERVER_LOG_MESSAGES, &[level.as_str()]),
                &mut self.server_log_messages[level as usize],
            );
        }
        for (i, outcome) in AUTHORIZATION_OUTCOMES.iter().enumerate() {
            f(
                key(&families::AUTHORIZATION_REQUESTS, &[outcome]),
                &mut self.authorization_requests[i],
            );
        }
        for reason in Fido2SkipReason::ALL {
            f(
                key(&families::FIDO2_SKIPPED_ENTRIES, &[reason.as_str()]),
                &mut self.fido2_skipped[reason as usize],
            );
        }
        for (i, section) in STATE_SECTIONS.iter().enumerate() {
            f(
                key(&families::STATE_SECTIONS_DROPPED, &[section]),
                &mut self.state_sections_dropped[i],
            );
        }
        let plain: [(&families::Family, &mut u64); 9] = [
            (&families::LOG_READ, &mut self.bytes_read),
            (&families::LOG_ROTATIONS, &mut self.rotations),
            (&families::LOG_TRUNCATIONS, &mut self.truncations),
            (&families::LOG_FILES_LOST, &mut self.files_lost),
            (
                &families::RECORDS_OUTSIDE_RETENTION,
                &mut self.outside_retention,
            ),
            (&families::RECORDS_FUTURE, &mut self.future),
            (&families::RECORDS_LOSSY, &mut self.lossy),
            (
                &families::STATE_LOAD_FAILURES,
                &mut self.state_load_failures,
            ),
            (
                &families::STATE_SAVE_FAILURES,
                &mut self.state_save_failures,
            ),
        ];
        for (family, value) in plain {
            f(key(family, &[]), value);
        }
    }

    /// The non-zero counters by snapshot key.
    pub fn to_map(&self) -> BTreeMap<String, u64> {
        let mut map = BTreeMap::new();
        self.clone().visit(&mut |name, v| {
            if *v != 0 {
                map.insert(name, *v);
            }
        });
        map
    }

    /// Counters from snapshot keys; unknown keys are ignored, missing ones are zero.
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
    /// Present when a cluster is configured.
    pub cluster: Option<cluster::ClusterView>,
    /// Present when an Okta org is configured.
    pub okta: Option<okta::OktaView>,
    pub at_ms: i64,
}

/// The latest [`View`]; readers clone an `Arc`, the store swaps it. Also says when the
/// store has died, so that `/healthz` fails instead of serving frozen figures.
#[derive(Debug, Default)]
pub struct Published {
    view: RwLock<Arc<View>>,
    failure: RwLock<Option<String>>,
}

impl Published {
    pub fn load(&self) -> Arc<View> {
        match self.view.read() {
            Ok(v) => Arc::clone(&v),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn store(&self, view: View) {
        let view = Arc::new(view);
        match self.view.write() {
            Ok(mut v) => *v = view,
            Err(poisoned) => *poisoned.into_inner() = view,
        }
    }

    /// The store thread died with `why`.
    pub fn mark_failed(&self, why: &str) {
        let mut f = self.failure.write().unwrap_or_else(|p| p.into_inner());
        *f = Some(why.to_string());
    }

    pub fn failure(&self) -> Option<String> {
        self.failure
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub struct Store {
    config: StoreConfig,
    counters: Counters,
    users: ActiveUsers,
    /// Only with a cluster configured.
    cluster: Option<cluster::ClusterFigures>,
    /// Only with an Okta org configured.
    okta: Option<okta::OktaFigures>,
    checkpoints: BTreeMap<FileId, FileCheckpoint>,
    /// Files no longer followed, oldest first: where each stopped (see [`CLOSED_KEPT`]).
    closed: std::collections::VecDeque<FileCheckpoint>,
    tail: TailStatus,
    ready: bool,
    /// Refreshed per batch: one clock read per batch, not per record.
    horizon: Horizon,
    state: StateStatus,
    upstream: upstream::UpstreamFigures,
    /// Bumped by every change a view or snapshot would show.
    generation: u64,
    /// The generation the last successful save wrote.
    saved_generation: Option<u64>,
    /// USER_AUTHORIZATION failures waiting for their twin.
    pairing: pairing::Pairing,
    /// The wall clock of the current batch.
    clock_ms: i64,
}

impl Store {
    pub fn new(config: StoreConfig) -> Store {
        let users = ActiveUsers::new(config.precision, config.retain_months);
        let cluster = config
            .cluster
            .then(|| cluster::ClusterFigures::new(config.retain_months));
        let okta = config
            .okta
            .map(|max| okta::OktaFigures::new(config.precision, config.retain_months, max));
        let upstream = upstream::UpstreamFigures::new(config.precision, config.retain_months);
        let clock_ms = now_ms();
        let horizon = Horizon::at(clock_ms, config.max_clock_ahead_ms);
        Store {
            pairing: pairing::Pairing::default(),
            clock_ms,
            config,
            counters: Counters::default(),
            users,
            cluster,
            okta,
            checkpoints: BTreeMap::new(),
            closed: std::collections::VecDeque::new(),
            tail: TailStatus::default(),
            ready: false,
            horizon,
            state: StateStatus::default(),
            upstream,
            generation: 1,
            saved_generation: None,
        }
    }

    /// Continues from a snapshot: counters go on from their saved values (no reset seen
    /// by Prometheus), files from their checkpoints. Sections the snapshot lost are
    /// counted; sketches that fail validation start again.
    pub fn restore(config: StoreConfig, p: &Persisted) -> Store {
        let mut store = Store::new(config);
        store.counters = Counters::from_map(&p.counters);
        store.counters.last_record_ms = p
            .times
            .get(&key(&families::LAST_RECORD_TIMESTAMP, &[]))
            .copied();
        store.checkpoints = p.checkpoints.iter().map(|cp| (cp.id, cp.clone())).collect();
        store.closed = p
            .closed
            .iter()
            .rev()
            .take(CLOSED_KEPT)
            .rev()
            .cloned()
            .collect();
        store.pairing = pairing::Pairing::import(&p.pending.authorizations, store.clock_ms);
        store.upstream.import(p);
        if let Some(o) = &mut store.okta {
            o.import(p);
        }
        let precision = store.config.precision;
        let mut refused = 0usize;
        if p.sketches.precision != precision && !p.sketches.sets.is_empty() {
            tracing::warn!(
                saved = p.sketches.precision,
                configured = precision,
                "sketch.precision changed: active-user sketches start again"
            );
        } else {
            for (set, kinds) in &p.sketches.sets {
                let users = match set.as_str() {
                    "active_users" => &mut store.users,
                    "fido2_users" => store.upstream.fido2_users_mut(),
                    "okta_users" => match &mut store.okta {
                        Some(o) => o.users_mut(),
                        None => continue,
                    },
                    _ => continue,
                };
                for (kind, periods) in kinds {
                    for (&period, repr) in periods {
                        match Sketch::from_repr(precision, repr) {
                            Ok(sketch) => {
                                users.restore(kind, period, sketch);
                            }
                            Err(e) => {
                                tracing::warn!(set, kind, period, error = %e, "saved sketch refused: that period starts again");
                                refused += 1;
                            }
                        }
                    }
                }
            }
        }
        let mut dropped: Vec<&str> = p.dropped.clone();
        if refused > 0 && !dropped.contains(&"sketches") {
            dropped.push("sketches");
        }
        if let Some(c) = &mut store.cluster {
            if c.import(p) > 0 && !dropped.contains(&"cluster_registers") {
                dropped.push("cluster_registers");
            }
        }
        for section in dropped {
            if let Some(i) = STATE_SECTIONS.iter().position(|s| *s == section) {
                store.counters.state_sections_dropped[i] += 1;
            }
        }
        store
    }

    /// What a save writes, borrowing the store (nothing large is copied).
    pub fn snapshot_out(&self) -> SnapshotOut<'_> {
        let mut out = SnapshotOut {
            saved_at_ms: now_ms(),
            counters: self.counters.to_map(),
            histograms: BTreeMap::new(),
            times: BTreeMap::new(),
            gauges: BTreeMap::new(),
            high_water: BTreeMap::new(),
            checkpoints: self.checkpoints.values().collect(),
            closed: self.closed.iter().collect(),
            precision: self.config.precision,
            sketch_sets: vec![("active_users", &self.users)],
            fido2: Default::default(),
            pending: persist::model::PendingSection {
                authorizations: self.pairing.export(),
            },
            cluster_registers: None,
            okta: None,
        };
        if let Some(ms) = self.counters.last_record_ms {
            out.times
                .insert(key(&families::LAST_RECORD_TIMESTAMP, &[]), ms);
        }
        self.upstream.export(&mut out);
        if let Some(c) = &self.cluster {
            c.export(&mut out);
        }
        if let Some(o) = &self.okta {
            o.export(&mut out);
        }
        out
    }

    pub fn note_load_failure(&mut self) {
        self.counters.state_load_failures += 1;
        self.generation += 1;
    }

    /// Whether something changed since the last successful save.
    pub fn unsaved(&self) -> bool {
        self.saved_generation != Some(self.generation)
    }

    /// A number that changes whenever a view would.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Saves a snapshot to `file`, recording the outcome for the views.
    pub fn save(&mut self, file: &persist::StateFile) -> Result<(), persist::SaveError> {
        // A failed save is counted here and written by the next save that succeeds; a
        // disk that never recovers before a restart cannot keep that count anywhere.
        let result = file.save(&self.snapshot_out());
        self.generation += 1;
        match result {
            Ok(bytes) => {
                if self.state.error.take().is_some() {
                    tracing::info!("state saved again");
                }
                self.state.last_save_ms = Some(now_ms());
                self.state.bytes = bytes;
                self.saved_generation = Some(self.generation);
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

    /// Files no longer followed, with where each stopped, oldest first.
    pub fn closed_files(&self) -> impl Iterator<Item = &FileCheckpoint> {
        self.closed.iter()
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    pub fn apply(&mut self, message: Message) {
        match message {
            Message::Batch(batch) => self.apply_batch(batch),
            Message::FirstPassDone => {
                self.ready = true;
                self.generation += 1;
            }
            Message::ExportRegisters(reply) => {
                // The syncer may have given up waiting: nothing to do then.
                let _ = reply.send(self.cluster_registers());
            }
            Message::ExportHandover { window_ms, reply } => {
                let _ = reply.send(self.upstream.handover(window_ms));
            }
        }
    }

    fn apply_batch(&mut self, batch: Batch) {
        self.clock_ms = now_ms();
        self.horizon = Horizon::at(self.clock_ms, self.config.max_clock_ahead_ms);
        let mut changed = false;
        for event in &batch.events {
            self.apply_event(event);
        }
        changed |= self.expire_pairs() > 0;
        if let Some(cp) = batch.checkpoint {
            if self.checkpoints.get(&cp.id) != Some(&cp) {
                // Followed again: no longer among the closed files.
                self.closed.retain(|c| c.id != cp.id);
                self.checkpoints.insert(cp.id, cp);
                changed = true;
            }
        }
        if let Some(id) = batch.forget {
            changed |= self.checkpoints.remove(&id).is_some();
        }
        if let Some(id) = batch.closed {
            if let Some(cp) = self.checkpoints.remove(&id) {
                // One entry per file and per start: a copy closed later supersedes the
                // original it was resumed from.
                self.closed
                    .retain(|c| c.id != id && c.fingerprint != cp.fingerprint);
                self.closed.push_back(cp);
                while self.closed.len() > CLOSED_KEPT {
                    self.closed.pop_front();
                }
                changed = true;
            }
        }
        if let Some(status) = batch.status {
            changed |= self.tail != status;
            self.tail = status;
        }
        if changed {
            self.generation += 1;
        }
    }

    /// Counts as errors the USER_AUTHORIZATION failures whose twin did not come.
    fn expire_pairs(&mut self) -> u64 {
        if self.pairing.is_empty() {
            return 0;
        }
        let alone = self.pairing.expire(self.clock_ms);
        self.counters.authorization_requests[AuthorizationOutcome::Error as usize] += alone;
        alone
    }

    /// The input is complete (the end of a replay): every waiting USER_AUTHORIZATION
    /// failure is alone.
    pub fn finish_input(&mut self) {
        let alone = self.pairing.finish();
        self.counters.authorization_requests[AuthorizationOutcome::Error as usize] += alone;
        self.generation += 1;
    }

    /// Where the FIDO2 poller should continue: the last window asked for, if any.
    pub fn fido2_synced_ms(&self) -> Option<i64> {
        self.upstream.fido2_synced_ms
    }

    pub fn apply_event(&mut self, event: &Event) {
        self.generation += 1;
        let c = &mut self.counters;
        match *event {
            Event::UpstreamCall(ref call) => self.upstream.call(call),
            Event::Stat(ref report) => self.upstream.stat(report),
            Event::Health(ref h) => self.upstream.health(h),
            Event::Fido2Health { up } => self.upstream.fido2_health(up),
            Event::Fido2(ref e) => {
                let active = self.upstream.fido2(e, &self.horizon);
                if let (Some(user), Some(cluster)) = (active, &mut self.cluster) {
                    cluster.insert(UserSet::Fido2Users, e.timestamp_ms, user, &self.horizon);
                }
            }
            Event::Fido2Synced { until_ms } => self.upstream.fido2_synced(until_ms),
            Event::Fido2Skipped { reason } => c.fido2_skipped[reason as usize] += 1,
            Event::ServerLog(e) => {
                let c = &mut self.counters;
                c.records[e.format as usize] += 1;
                c.server_log_messages[e.level as usize] += 1;
                if let Some(a) = e.authentication {
                    c.authentications[a.kind as usize][a.success as usize] += 1;
                    // Janssen counts a user active when a session becomes authenticated.
                    if let (AuthKind::User, true, Some(user)) = (a.kind, a.success, a.user) {
                        // The zone lookup only where a time is used: a login's.
                        let utc_ms = utc_ms(self.config.server_time_zone, e.time);
                        count_active(
                            &mut self.users,
                            self.cluster.as_mut(),
                            c,
                            utc_ms,
                            user,
                            &self.horizon,
                        );
                    }
                }
            }
            Event::Audit(a) => {
                c.audit[a.action.index()][a.success as usize] += 1;
                c.lossy += u64::from(a.lossy);
                c.records[a.format as usize] += 1;
                if a.action == Action::TokenRequest {
                    c.token_requests[a.user.is_some() as usize][a.success as usize] += 1;
                }
                if a.action == Action::UserAuthorization {
                    if a.success {
                        c.authorization_requests[AuthorizationOutcome::Success as usize] += 1;
                    } else if let Some(k) = a.pair_key {
                        if self.pairing.record(k, a.timestamp_ms, self.clock_ms)
                            == Some(pairing::Resolved::Interaction)
                        {
                            c.authorization_requests[AuthorizationOutcome::Interaction as usize] +=
                                1;
                        }
                    }
                }
                c.last_record_ms = Some(
                    c.last_record_ms
                        .map_or(a.timestamp_ms, |t| t.max(a.timestamp_ms)),
                );
                if let (true, Some(user)) = (
                    a.success && self.config.active_actions[a.action.index()],
                    a.user,
                ) {
                    count_active(
                        &mut self.users,
                        self.cluster.as_mut(),
                        c,
                        a.timestamp_ms,
                        user,
                        &self.horizon,
                    );
                }
            }
            Event::Malformed { format, reason } => {
                c.parse_errors[parse_error_slot(format)][reason as usize] += 1;
            }
            Event::BytesRead(n) => c.bytes_read += n,
            Event::Rotated => c.rotations += 1,
            Event::Truncated => c.truncations += 1,
            Event::FileLost => c.files_lost += 1,
            Event::Leadership(ref change) => self.upstream.leadership(change),
            Event::Okta(ref e) => {
                if let Some(o) = &mut self.okta {
                    o.event(e, &self.horizon, self.clock_ms);
                }
            }
            Event::OktaCall(ref call) => {
                if let Some(o) = &mut self.okta {
                    o.call(call);
                }
            }
            Event::Cluster(ref report) => {
                if let Some(cluster) = &mut self.cluster {
                    cluster.report(report);
                }
            }
        }
    }

    /// A consistent picture as of `now_ms` (wall clock: "current" periods).
    /// Where the Okta source continues: the saved `next` link.
    pub fn okta_next(&self) -> Option<String> {
        self.okta
            .as_ref()
            .and_then(|o| o.next().map(str::to_string))
    }

    /// Every retained period's cluster registers (none without a cluster), as the
    /// syncer merges them.
    pub fn cluster_registers(&self) -> Vec<crate::event::PeriodRegisters> {
        self.cluster
            .as_ref()
            .map(cluster::ClusterFigures::export_registers)
            .unwrap_or_default()
    }

    pub fn view(&mut self, now_ms: i64) -> View {
        View {
            counters: self.counters.clone(),
            active_current: self.users.current(now_ms),
            monthly: self.users.monthly(),
            tail: self.tail.clone(),
            ready: self.ready,
            state: self.state.clone(),
            upstream: self.upstream.view(now_ms),
            cluster: self.cluster.as_ref().map(|c| c.view(now_ms)),
            okta: self.okta.as_mut().map(|o| o.view(now_ms)),
            at_ms: now_ms,
        }
    }
}

/// A server-log time in UTC milliseconds.
fn utc_ms(zone: chrono_tz::Tz, time: LineTime) -> i64 {
    match time {
        LineTime::Utc(ms) => ms,
        LineTime::Local(ms) => {
            use chrono::TimeZone;
            let Some(naive) = chrono::DateTime::from_timestamp_millis(ms) else {
                return ms;
            };
            let naive = naive.naive_utc();
            // In the hour a DST change skips, the wall clock is read an hour later.
            zone.from_local_datetime(&naive)
                .earliest()
                .or_else(|| {
                    zone.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                        .earliest()
                })
                .map_or(ms, |t| t.timestamp_millis())
        }
    }
}

/// Forgets the ids of a de-duplication window (id → when it was seen) seen before
/// `oldest_ms`, and beyond `max` the oldest of the rest: one selection, not a scan per
/// id. The FIDO2 entries and the Okta events share it.
pub(crate) fn trim_seen(seen: &mut BTreeMap<u64, i64>, oldest_ms: i64, max: usize) {
    seen.retain(|_, t| *t >= oldest_ms);
    if seen.len() > max {
        let mut times: Vec<i64> = seen.values().copied().collect();
        let excess = times.len() - max;
        let cutoff = *times.select_nth_unstable(excess).1;
        seen.retain(|_, t| *t >= cutoff);
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

/// Counts a user active in the local sketches and, with a cluster, its registers.
fn count_active(
    users: &mut ActiveUsers,
    cluster: Option<&mut cluster::ClusterFigures>,
    c: &mut Counters,
    timestamp_ms: i64,
    user: crate::event::UserKey,
    horizon: &Horizon,
) {
    if let Some(cluster) = cluster {
        cluster.insert(UserSet::Users, timestamp_ms, user, horizon);
    }
    match users.insert(timestamp_ms, user, horizon) {
        Insert::Counted => {}
        Insert::OutsideRetention => c.outside_retention += 1,
        Insert::Future => c.future += 1,
    }
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
    // Publish when the store changed, or when the day changed (current periods move).
    let day = |ms: i64| ms.div_euclid(86_400_000);
    let mut published_at = (store.generation(), day(now_ms()));
    published.store(store.view(now_ms()));
    while let Some(message) = rx.blocking_recv() {
        store.apply(message);
        if every.is_some_and(|every| last_save.elapsed() >= every) {
            if store.unsaved() {
                save(&mut store);
            }
            last_save = Instant::now();
        }
        let now = now_ms();
        let current = (store.generation(), day(now));
        if current != published_at && (rx.is_empty() || last_publish.elapsed() >= PUBLISH_EVERY) {
            published.store(store.view(now));
            published_at = (store.generation(), day(now));
            last_publish = Instant::now();
        }
    }
    if store.unsaved() {
        save(&mut store);
    }
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
            pair_key: None,
            lossy: false,
        })
    }

    #[test]
    fn an_unchanged_tail_neither_republishes_nor_saves() {
        let dir = tempfile::tempdir().unwrap();
        let file = persist::StateFile::new(dir.path());
        let mut store = Store::new(StoreConfig::new(14, 13, &[Action::TokenRequest]));
        let status = |lag_bytes| {
            Message::Batch(crate::event::Batch {
                status: Some(crate::event::TailStatus {
                    lag_bytes,
                    files: 1,
                    matched: vec![("/logs/*.log".into(), 1)],
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        store.apply(status(10));
        store.save(&file).unwrap();
        let saved = store.generation();
        assert!(!store.unsaved());
        // The tailer reports its status after every poll, four times a second.
        for _ in 0..100 {
            store.apply(status(10));
            store.apply(Message::Batch(crate::event::Batch::default()));
        }
        assert_eq!(store.generation(), saved, "nothing changed: no new view");
        assert!(!store.unsaved(), "nothing changed: no save");
        store.apply(status(11));
        assert_ne!(store.generation(), saved);
        assert!(store.unsaved());
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
