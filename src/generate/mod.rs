//! A generator of realistic Janssen audit logs, with the exact truth they contain.
//!
//! It writes both layouts exactly as the reference (§1) describes them: the text layout
//! with its local-time prefix, MAC, thread, optional correlation id and pretty JSON
//! body, and log4j's JSON layout with CRLF and the record as a JSON string. Used by
//! the tests, the bundled example logs and the ingest benchmark; deterministic per seed.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use chrono::{DateTime, Datelike, FixedOffset, Utc};

use crate::event::Action;

pub mod flows;

/// Audit log layouts, as the auth server writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Text,
    Json,
}

/// One audit record, with the fields the auth server writes, in its key order.
#[derive(Clone, Debug)]
pub struct Record {
    pub ip: String,
    pub action: &'static str,
    pub timestamp_ms: i64,
    pub mac: &'static str,
    pub client_id: &'static str,
    pub username: Option<String>,
    pub scope: Option<&'static str>,
    pub success: bool,
    pub thread: u8,
    pub correlation_id: Option<String>,
}

const MAC: &str = "02-42-AC-11-00-03";
const CLIENTS: [&str; 4] = [
    "1800.df1bb233-10b8-40ed-bbb9-07da50892a35",
    "2201.8c1a6c3e-5b0e-4a8f-9a3e-0d1f1b2c3d4e",
    "3000.5829c1f8-7554-41ab-a7d6-3513a5e9c4ad",
    "2202.0e7c11aa-91f4-4b2b-8a0c-55e3f2d9a111",
];
const SCOPES: [Option<&str>; 4] = [
    Some("openid profile email"),
    None,
    Some("openid"),
    Some("https://jans.io/oauth/config/scripts.write"),
];
/// (action, weight per mille). `PASSWORD_RESET` is not an upstream action: the set is
/// open, and unknown actions must land in `other`.
const MIX: [(&str, u32); 12] = [
    ("SESSION_AUTHENTICATED", 180),
    ("USER_AUTHORIZATION", 200),
    ("TOKEN_REQUEST", 350),
    ("USER_INFO", 100),
    ("SESSION_DESTROYED", 50),
    ("TOKEN_REVOCATION", 30),
    ("TOKEN_VALIDATE", 30),
    ("SESSION_UNAUTHENTICATED", 20),
    ("CLIENT_REGISTRATION", 10),
    ("CLIENT_READ", 15),
    ("BACKCHANNEL_AUTHENTICATION", 5),
    ("PASSWORD_RESET", 10),
];

/// What to generate.
#[derive(Clone, Debug)]
pub struct Spec {
    pub seed: u64,
    /// Distinct users to draw from.
    pub users: u32,
    /// First record's time (epoch ms, UTC).
    pub start_ms: i64,
    /// Mean gap between records.
    pub mean_gap_ms: i64,
    /// Share of records that fail, 0.0–1.0.
    pub failure_ratio: f64,
    /// The server's local zone, used only for the text layout's prefix.
    pub utc_offset_secs: i32,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            seed: 1,
            users: 500,
            start_ms: 1_793_491_200_000, // 2026-11-01T00:00:00Z
            mean_gap_ms: 2_000,
            failure_ratio: 0.04,
            utc_offset_secs: 2 * 3600,
        }
    }
}

/// An endless, deterministic stream of records.
pub struct Generator {
    spec: Spec,
    rng: fastrand::Rng,
    now_ms: i64,
}

impl Generator {
    pub fn new(spec: Spec) -> Generator {
        let rng = fastrand::Rng::with_seed(spec.seed);
        let now_ms = spec.start_ms;
        Generator { spec, rng, now_ms }
    }

    pub fn username(n: u32) -> String {
        if n.is_multiple_of(3) {
            format!("uid-{n}")
        } else {
            format!("user{n:06}@example.org")
        }
    }

    fn pick_action(&mut self) -> &'static str {
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.u32(0..total);
        for (action, weight) in MIX {
            if roll < weight {
                return action;
            }
            roll -= weight;
        }
        MIX[0].0
    }
}

impl Iterator for Generator {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let action = self.pick_action();
        let gap = self.rng.i64(0..=2 * self.spec.mean_gap_ms.max(0));
        self.now_ms += gap;
        let users = self.spec.users.max(1);
        // As the server writes them (reference §1): SESSION_* records name nobody.
        let username = match action {
            "TOKEN_REQUEST" if self.rng.bool() => None, // client_credentials
            "CLIENT_REGISTRATION" | "CLIENT_READ" | "TOKEN_VALIDATE" => None,
            "SESSION_UNAUTHENTICATED" | "SESSION_AUTHENTICATED" => None,
            _ => Some(Generator::username(self.rng.u32(0..users))),
        };
        let client = self.rng.usize(..CLIENTS.len());
        let ip = if self.rng.u8(..10) == 0 {
            format!(
                "203.0.113.{}, 10.0.0.{}",
                self.rng.u8(1..255),
                self.rng.u8(1..255)
            )
        } else {
            format!("10.0.{}.{}", self.rng.u8(..255), self.rng.u8(1..255))
        };
        let correlation_id = (self.rng.u8(..4) == 0)
            .then(|| format!("{:08x}-{:04x}", self.rng.u32(..), self.rng.u16(..)));
        Some(Record {
            ip,
            action,
            timestamp_ms: self.now_ms,
            mac: MAC,
            client_id: CLIENTS[client],
            username,
            scope: SCOPES[self.rng.usize(..SCOPES.len())],
            // SESSION_* are never false; a revocation is always written false.
            success: match action {
                "SESSION_UNAUTHENTICATED" | "SESSION_AUTHENTICATED" => true,
                "TOKEN_REVOCATION" => false,
                _ => self.rng.f64() >= self.spec.failure_ratio,
            },
            thread: self.rng.u8(1..17),
            correlation_id,
        })
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "null".into())
}

fn json_opt(s: Option<&str>) -> String {
    s.map_or_else(|| "null".into(), json_str)
}

/// The audit record as `ApplicationAuditLogger` pretty-prints it (2-space indent,
/// `" : "` separators, nulls written).
pub fn audit_json(r: &Record) -> String {
    format!(
        "{{\n  \"ip\" : {},\n  \"action\" : {},\n  \"timestamp\" : {},\n  \"macAddress\" : {},\n  \"clientId\" : {},\n  \"username\" : {},\n  \"scope\" : {},\n  \"success\" : {}\n}}",
        json_str(&r.ip),
        json_str(r.action),
        r.timestamp_ms,
        json_str(r.mac),
        json_str(r.client_id),
        json_opt(r.username.as_deref()),
        json_opt(r.scope),
        r.success
    )
}

/// Writes one record in `layout`, byte for byte as the auth server would.
pub fn write_record(
    out: &mut impl Write,
    layout: Layout,
    r: &Record,
    utc_offset_secs: i32,
) -> io::Result<()> {
    match layout {
        Layout::Text => {
            let zone = FixedOffset::east_opt(utc_offset_secs)
                .unwrap_or(FixedOffset::east_opt(0).ok_or_else(|| io::Error::other("zone"))?);
            let local = DateTime::<Utc>::from_timestamp_millis(r.timestamp_ms)
                .ok_or_else(|| io::Error::other("timestamp out of range"))?
                .with_timezone(&zone);
            writeln!(
                out,
                "{} INFO  [{}] [pool-4-thread-{}] {} [io.jans.as.server.audit.ApplicationAuditLogger] (ApplicationAuditLogger.java:178) - {}",
                local.format("%Y-%m-%d %H:%M:%S,%3f"),
                r.mac,
                r.thread,
                r.correlation_id.as_deref().unwrap_or(""),
                audit_json(r)
            )
        }
        Layout::Json => {
            let secs = r.timestamp_ms.div_euclid(1000);
            let nanos = r.timestamp_ms.rem_euclid(1000) * 1_000_000;
            let body = format!(
                "{{\n  \"instant\" : {{\n    \"epochSecond\" : {secs},\n    \"nanoOfSecond\" : {nanos}\n  }},\n  \"thread\" : \"pool-4-thread-{}\",\n  \"level\" : \"INFO\",\n  \"loggerName\" : \"io.jans.as.server.audit.ApplicationAuditLogger\",\n  \"message\" : {},\n  \"endOfBatch\" : false,\n  \"loggerFqcn\" : \"org.apache.logging.slf4j.Log4jLogger\",\n  \"threadId\" : 61,\n  \"threadPriority\" : 5\n}}\n",
                r.thread,
                json_str(&audit_json(r))
            );
            out.write_all(body.replace('\n', "\r\n").as_bytes())
        }
    }
}

/// The exact figures a set of records must produce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Truth {
    /// (action label, success) → count.
    pub audit: BTreeMap<(String, bool), u64>,
    /// (kind, success) → count, for TOKEN_REQUEST.
    pub token_requests: BTreeMap<(&'static str, bool), u64>,
    /// YYYYMM → distinct active usernames.
    pub monthly_users: BTreeMap<u32, HashSet<String>>,
    pub records: u64,
}

impl Truth {
    /// Counts `r`; `active` lists the actions that make a user active.
    pub fn observe(&mut self, r: &Record, active: &[&str]) {
        self.records += 1;
        let label = Action::from_name(r.action).as_str().to_string();
        *self.audit.entry((label, r.success)).or_default() += 1;
        let user = r.username.as_deref().filter(|u| !u.is_empty());
        if r.action == "TOKEN_REQUEST" {
            let kind = if user.is_some() { "user" } else { "machine" };
            *self.token_requests.entry((kind, r.success)).or_default() += 1;
        }
        if let (true, Some(user)) = (r.success && active.contains(&r.action), user) {
            if let Some(t) = DateTime::<Utc>::from_timestamp_millis(r.timestamp_ms) {
                let month = t.year() as u32 * 100 + t.month();
                self.monthly_users
                    .entry(month)
                    .or_default()
                    .insert(user.to_string());
            }
        }
    }

    /// Adds the figures of records written elsewhere (another file) to these.
    pub fn merge(&mut self, other: &Truth) {
        self.records += other.records;
        for (k, n) in &other.audit {
            *self.audit.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &other.token_requests {
            *self.token_requests.entry(*k).or_default() += n;
        }
        for (month, users) in &other.monthly_users {
            self.monthly_users
                .entry(*month)
                .or_default()
                .extend(users.iter().cloned());
        }
    }

    pub fn audit_count(&self, action: &str, success: bool) -> u64 {
        self.audit
            .get(&(action.to_string(), success))
            .copied()
            .unwrap_or(0)
    }
}

pub use crate::config::DEFAULT_ACTIVE_ACTIONS as DEFAULT_ACTIVE;
