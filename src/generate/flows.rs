//! Whole flows as a real jans-auth writes them (reference §1, §1b), into both of its
//! logs, with the exact truth they contain: first logins redirected to the login page
//! (two identical USER_AUTHORIZATION records) and sometimes to consent, wrong passwords
//! seen only in the server log, SSO, refresh, client credentials, device-code polling
//! written as failures, revocations written false, rejected requests, service checks
//! and server errors with stack traces.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use chrono::{DateTime, Datelike, FixedOffset, Utc};

use super::{json_str, Generator, Layout, Record, Truth, DEFAULT_ACTIVE};

const MAC: &str = "02-42-AC-11-00-03";
const WEB_CLIENT: &str = "2201.8c1a6c3e-5b0e-4a8f-9a3e-0d1f1b2c3d4e";
const M2M_CLIENT: &str = "3000.5829c1f8-7554-41ab-a7d6-3513a5e9c4ad";
const DEVICE_CLIENT: &str = "1800.df1bb233-10b8-40ed-bbb9-07da50892a35";
const AUTHENTICATOR: &str = "io.jans.as.server.auth.Authenticator";

/// What a USER_AUTHORIZATION record means, for the truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meaning {
    Plain,
    /// One of the two records of a redirect.
    Interaction,
    /// A rejection: one record.
    Error,
}

/// One line (event) of the server log.
#[derive(Clone, Debug)]
pub struct ServerLine {
    pub timestamp_ms: i64,
    pub level: &'static str,
    pub logger: &'static str,
    pub thread: u8,
    pub message: String,
    /// Continuation lines (a stack trace).
    pub stack: Vec<String>,
}

/// Something a flow writes, to the audit log or the server log.
#[derive(Clone, Debug)]
pub enum Entry {
    Audit(Record, Meaning),
    Server(ServerLine),
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct FlowSpec {
    pub seed: u64,
    pub users: u32,
    pub start_ms: i64,
    /// Mean gap between flows.
    pub mean_gap_ms: i64,
    /// Share of password attempts that are wrong (a user tries up to three times).
    pub wrong_password_ratio: f64,
    /// The server's zone, for the text layouts' prefixes.
    pub utc_offset_secs: i32,
}

impl Default for FlowSpec {
    fn default() -> FlowSpec {
        FlowSpec {
            seed: 1,
            users: 200,
            start_ms: 1_793_491_200_000, // 2026-11-01T00:00:00Z
            mean_gap_ms: 2_000,
            wrong_password_ratio: 0.05,
            utc_offset_secs: 0,
        }
    }
}

/// The exact figures a set of whole flows must produce.
#[derive(Clone, Debug, Default)]
pub struct FlowTruth {
    /// The audit records, as [`Truth`] counts them (with the default active actions).
    pub audit: Truth,
    /// (kind, success) → Authenticator lines.
    pub authentications: BTreeMap<(&'static str, bool), u64>,
    /// success / interaction / error → authorization requests.
    pub authorizations: BTreeMap<&'static str, u64>,
    /// level → server-log events.
    pub levels: BTreeMap<&'static str, u64>,
    /// YYYYMM → every user active by the audit log or a login.
    pub monthly_users: BTreeMap<u32, HashSet<String>>,
    pub server_lines: u64,
}

impl FlowTruth {
    fn active(&mut self, user: &str, ms: i64) {
        if let Some(t) = DateTime::<Utc>::from_timestamp_millis(ms) {
            self.monthly_users
                .entry(t.year() as u32 * 100 + t.month())
                .or_default()
                .insert(user.to_string());
        }
    }

    fn observe(&mut self, e: &Entry) {
        match e {
            Entry::Audit(r, meaning) => {
                self.audit.observe(r, &DEFAULT_ACTIVE);
                if let (true, Some(u)) = (
                    r.success && DEFAULT_ACTIVE.contains(&r.action),
                    r.username.as_deref(),
                ) {
                    self.active(u, r.timestamp_ms);
                }
                if r.action == "USER_AUTHORIZATION" {
                    let key = match (r.success, meaning) {
                        (true, _) => Some("success"),
                        (false, Meaning::Error) => Some("error"),
                        // Two records, one interaction: counted at the first.
                        (false, Meaning::Interaction) => None,
                        (false, Meaning::Plain) => None,
                    };
                    if let Some(k) = key {
                        *self.authorizations.entry(k).or_default() += 1;
                    }
                }
            }
            Entry::Server(line) => {
                self.server_lines += 1;
                *self.levels.entry(line.level).or_default() += 1;
                if line.logger == AUTHENTICATOR {
                    let m = line.message.as_str();
                    let (kind, ok) = if let Some(u) = m
                        .strip_prefix("Authentication success for User: '")
                        .and_then(|u| u.strip_suffix('\''))
                    {
                        self.active(u, line.timestamp_ms);
                        ("user", true)
                    } else if m.starts_with("Authentication success for Client: ") {
                        ("client", true)
                    } else if m.starts_with("Authentication failed for user: ") {
                        ("user", false)
                    } else if m.starts_with("Authentication failed for User: ") {
                        ("service", false)
                    } else {
                        ("unknown", false)
                    };
                    *self.authentications.entry((kind, ok)).or_default() += 1;
                }
            }
        }
    }

    pub fn authentications(&self, kind: &str, success: bool) -> u64 {
        self.authentications
            .iter()
            .find(|((k, s), _)| *k == kind && *s == success)
            .map_or(0, |(_, n)| *n)
    }
}

/// Deterministic flows; each call of [`Flows::flow`] returns one whole flow.
pub struct Flows {
    spec: FlowSpec,
    rng: fastrand::Rng,
    now_ms: i64,
    pub truth: FlowTruth,
}

impl Flows {
    pub fn new(spec: FlowSpec) -> Flows {
        Flows {
            rng: fastrand::Rng::with_seed(spec.seed),
            now_ms: spec.start_ms,
            spec,
            truth: FlowTruth::default(),
        }
    }

    fn user(&mut self) -> String {
        Generator::username(self.rng.u32(0..self.spec.users.max(1)))
    }

    fn ip(&mut self) -> String {
        format!("10.20.{}.{}", self.rng.u8(..255), self.rng.u8(1..255))
    }

    fn tick(&mut self, max_ms: i64) -> i64 {
        self.now_ms += self.rng.i64(1..=max_ms.max(1));
        self.now_ms
    }

    fn audit(
        &mut self,
        action: &'static str,
        ip: &str,
        client: &'static str,
        user: Option<&str>,
        scope: Option<&'static str>,
        success: bool,
    ) -> Record {
        Record {
            ip: ip.to_string(),
            action,
            timestamp_ms: self.now_ms,
            mac: MAC,
            client_id: client,
            username: user.map(str::to_string),
            scope,
            success,
            thread: self.rng.u8(1..17),
            correlation_id: None,
        }
    }

    fn server(&mut self, level: &'static str, logger: &'static str, message: String) -> ServerLine {
        ServerLine {
            timestamp_ms: self.now_ms,
            level,
            logger,
            thread: self.rng.u8(1..60),
            message,
            stack: Vec::new(),
        }
    }

    fn client_auth(&mut self, client: &str) -> Entry {
        let m = format!("Authentication success for Client: '{client}'");
        Entry::Server(self.server("INFO", AUTHENTICATOR, m))
    }

    /// One whole flow, chosen by weight, with the truth updated.
    pub fn flow(&mut self) -> Vec<Entry> {
        let gap = self.spec.mean_gap_ms.max(1);
        self.tick(2 * gap);
        let roll = self.rng.u32(..100);
        let out = match roll {
            0..=29 => self.first_login(),
            30..=41 => self.sso(),
            42..=53 => self.refresh(),
            54..=65 => self.client_credentials(),
            66..=70 => self.device_code(),
            71..=75 => self.revocation(),
            76..=85 => self.user_info(),
            86..=90 => self.rejection(),
            91..=93 => self.service_check(),
            _ => self.server_error(),
        };
        for e in &out {
            self.truth.observe(e);
        }
        out
    }

    /// A credential-stuffing attempt: a redirect to the login page and one wrong password.
    pub fn attack(&mut self) -> Vec<Entry> {
        self.tick(self.spec.mean_gap_ms.max(1));
        let ip = self.ip();
        let user = self.user();
        let mut out = self.redirect(&ip, None);
        self.tick(50);
        out.push(Entry::Audit(
            self.audit("SESSION_UNAUTHENTICATED", &ip, WEB_CLIENT, None, None, true),
            Meaning::Plain,
        ));
        self.tick(500);
        let m = format!("Authentication failed for user: {user}");
        out.push(Entry::Server(self.server("INFO", AUTHENTICATOR, m)));
        for e in &out {
            self.truth.observe(e);
        }
        out
    }

    /// A request refused outright, alone, with the truth updated.
    pub fn flow_of_rejection(&mut self) -> Vec<Entry> {
        self.tick(self.spec.mean_gap_ms.max(1));
        let out = self.rejection();
        for e in &out {
            self.truth.observe(e);
        }
        out
    }

    /// The two identical records of a redirect to the login or consent page.
    fn redirect(&mut self, ip: &str, user: Option<&str>) -> Vec<Entry> {
        let r = self.audit(
            "USER_AUTHORIZATION",
            ip,
            WEB_CLIENT,
            user,
            Some("openid profile email"),
            false,
        );
        // Two records, one interaction: counted here, once.
        *self.truth.authorizations.entry("interaction").or_default() += 1;
        vec![
            Entry::Audit(r.clone(), Meaning::Interaction),
            Entry::Audit(r, Meaning::Interaction),
        ]
    }

    fn first_login(&mut self) -> Vec<Entry> {
        let ip = self.ip();
        let user = self.user();
        let mut out = self.redirect(&ip, None);
        self.tick(100);
        out.push(Entry::Audit(
            self.audit("SESSION_UNAUTHENTICATED", &ip, WEB_CLIENT, None, None, true),
            Meaning::Plain,
        ));
        let mut logged_in = false;
        for _ in 0..3 {
            self.tick(5_000);
            if self.rng.f64() < self.spec.wrong_password_ratio {
                let m = format!("Authentication failed for user: {user}");
                out.push(Entry::Server(self.server("INFO", AUTHENTICATOR, m)));
            } else {
                let m = format!("Authentication success for User: '{user}'");
                out.push(Entry::Server(self.server("INFO", AUTHENTICATOR, m)));
                logged_in = true;
                break;
            }
        }
        if !logged_in {
            return out;
        }
        self.tick(50);
        out.push(Entry::Audit(
            self.audit("SESSION_AUTHENTICATED", &ip, WEB_CLIENT, None, None, true),
            Meaning::Plain,
        ));
        if self.rng.bool() {
            self.tick(100);
            out.extend(self.redirect(&ip, Some(&user)));
            self.tick(3_000);
        }
        out.extend(self.code_and_token(&ip, &user));
        out
    }

    /// A code issued, then exchanged at the token endpoint.
    fn code_and_token(&mut self, ip: &str, user: &str) -> Vec<Entry> {
        self.tick(100);
        let scope = Some("openid profile email");
        let ua = self.audit(
            "USER_AUTHORIZATION",
            ip,
            WEB_CLIENT,
            Some(user),
            scope,
            true,
        );
        self.tick(200);
        let auth = self.client_auth(WEB_CLIENT);
        let token = self.audit(
            "TOKEN_REQUEST",
            "10.1.2.3",
            WEB_CLIENT,
            Some(user),
            scope,
            true,
        );
        vec![
            Entry::Audit(ua, Meaning::Plain),
            auth,
            Entry::Audit(token, Meaning::Plain),
        ]
    }

    fn sso(&mut self) -> Vec<Entry> {
        let ip = self.ip();
        let user = self.user();
        self.code_and_token(&ip, &user)
    }

    fn refresh(&mut self) -> Vec<Entry> {
        let user = self.user();
        let auth = self.client_auth(WEB_CLIENT);
        let r = self.audit(
            "TOKEN_REQUEST",
            "10.1.2.3",
            WEB_CLIENT,
            Some(&user),
            Some("openid"),
            true,
        );
        vec![auth, Entry::Audit(r, Meaning::Plain)]
    }

    fn client_credentials(&mut self) -> Vec<Entry> {
        let auth = self.client_auth(M2M_CLIENT);
        let scope = Some("https://jans.io/oauth/config/scripts.write");
        let r = self.audit("TOKEN_REQUEST", "10.1.2.4", M2M_CLIENT, None, scope, true);
        vec![auth, Entry::Audit(r, Meaning::Plain)]
    }

    /// Polls written as failures (`authorization_pending`); the success writes no record.
    fn device_code(&mut self) -> Vec<Entry> {
        let mut out = Vec::new();
        for _ in 0..self.rng.usize(2..6) {
            self.tick(5_000);
            out.push(self.client_auth(DEVICE_CLIENT));
            let r = self.audit(
                "TOKEN_REQUEST",
                "10.1.2.5",
                DEVICE_CLIENT,
                None,
                None,
                false,
            );
            out.push(Entry::Audit(r, Meaning::Plain));
        }
        self.tick(5_000);
        out.push(self.client_auth(DEVICE_CLIENT));
        out
    }

    fn revocation(&mut self) -> Vec<Entry> {
        let auth = self.client_auth(WEB_CLIENT);
        let r = self.audit(
            "TOKEN_REVOCATION",
            "10.1.2.3",
            WEB_CLIENT,
            None,
            None,
            false,
        );
        vec![auth, Entry::Audit(r, Meaning::Plain)]
    }

    fn user_info(&mut self) -> Vec<Entry> {
        let user = self.user();
        let r = self.audit(
            "USER_INFO",
            "10.1.2.3",
            WEB_CLIENT,
            Some(&user),
            Some("openid"),
            true,
        );
        vec![Entry::Audit(r, Meaning::Plain)]
    }

    /// A request refused outright (a wrong redirect_uri): one record.
    fn rejection(&mut self) -> Vec<Entry> {
        let ip = self.ip();
        let r = self.audit(
            "USER_AUTHORIZATION",
            &ip,
            WEB_CLIENT,
            None,
            Some("openid"),
            false,
        );
        vec![Entry::Audit(r, Meaning::Error)]
    }

    /// A non-interactive check that fails; it is logged twice for one attempt.
    fn service_check(&mut self) -> Vec<Entry> {
        let m = "Authentication failed for User: 'svc-monitor'".to_string();
        let a = self.server("INFO", AUTHENTICATOR, m.clone());
        let b = self.server("INFO", AUTHENTICATOR, m);
        vec![Entry::Server(a), Entry::Server(b)]
    }

    fn server_error(&mut self) -> Vec<Entry> {
        let warn = self.server(
            "WARN",
            "io.jans.as.server.service.SessionIdService",
            "Failed to find session".to_string(),
        );
        let mut error = self.server(
            "ERROR",
            "io.jans.as.server.servlet.Foo",
            "Failed to process request".to_string(),
        );
        error.stack = vec![
            "java.lang.IllegalStateException: boom".into(),
            "\tat io.jans.as.server.Foo.bar(Foo.java:10)".into(),
            "\tat java.base/java.lang.Thread.run(Thread.java:840)".into(),
        ];
        vec![Entry::Server(warn), Entry::Server(error)]
    }
}

/// Writes one server-log line in `layout`, as log4j would.
pub fn write_server_line(
    out: &mut impl Write,
    layout: Layout,
    l: &ServerLine,
    utc_offset_secs: i32,
) -> io::Result<()> {
    match layout {
        Layout::Text => {
            let zone =
                FixedOffset::east_opt(utc_offset_secs).ok_or_else(|| io::Error::other("zone"))?;
            let local = DateTime::<Utc>::from_timestamp_millis(l.timestamp_ms)
                .ok_or_else(|| io::Error::other("timestamp out of range"))?
                .with_timezone(&zone);
            let file = l.logger.rsplit('.').next().unwrap_or("X");
            writeln!(
                out,
                "{} {:<5} [qtp1489933928-{}]  [{}] ({file}.java:215) - {}",
                local.format("%Y-%m-%d %H:%M:%S,%3f"),
                l.level,
                l.thread,
                l.logger,
                l.message
            )?;
            for s in &l.stack {
                writeln!(out, "{s}")?;
            }
            Ok(())
        }
        Layout::Json => {
            let secs = l.timestamp_ms.div_euclid(1000);
            let nanos = l.timestamp_ms.rem_euclid(1000) * 1_000_000;
            let thrown = if l.stack.is_empty() {
                String::new()
            } else {
                format!(
                    "  \"thrown\" : {{\n    \"message\" : {}\n  }},\n",
                    json_str(&l.stack.join("\n"))
                )
            };
            let body = format!(
                "{{\n  \"instant\" : {{\n    \"epochSecond\" : {secs},\n    \"nanoOfSecond\" : {nanos}\n  }},\n  \"thread\" : \"qtp1489933928-{}\",\n  \"level\" : \"{}\",\n  \"loggerName\" : \"{}\",\n  \"message\" : {},\n{thrown}  \"endOfBatch\" : false,\n  \"loggerFqcn\" : \"org.apache.logging.slf4j.Log4jLogger\",\n  \"threadId\" : 61,\n  \"threadPriority\" : 5\n}}\n",
                l.thread,
                l.level,
                l.logger,
                json_str(&l.message)
            );
            out.write_all(body.replace('\n', "\r\n").as_bytes())
        }
    }
}

/// Writes `entries` to an audit log and a server log, each in `layout`. With `drift`,
/// neighbouring audit records are written out of order now and then, as the server's
/// asynchronous writer does.
pub fn write_entries(
    audit: &mut impl Write,
    server: &mut impl Write,
    layout: Layout,
    entries: &[Entry],
    utc_offset_secs: i32,
    drift: Option<&mut fastrand::Rng>,
) -> io::Result<()> {
    let mut records: Vec<&Record> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Audit(r, _) => Some(r),
            Entry::Server(_) => None,
        })
        .collect();
    if let Some(rng) = drift {
        for i in 1..records.len() {
            if rng.u8(..4) == 0 {
                records.swap(i - 1, i);
            }
        }
    }
    for r in records {
        super::write_record(audit, layout, r, utc_offset_secs)?;
    }
    for e in entries {
        if let Entry::Server(l) = e {
            write_server_line(server, layout, l, utc_offset_secs)?;
        }
    }
    Ok(())
}
