//! Every metric family, declared once: name, help, unit, type and label names.
//!
//! The `/metrics` collectors encode from these, the snapshot keys its counters by
//! these names (so a renamed label set or a new enum variant never shifts a value),
//! and the docs test checks `docs/metrics.md` against [`ALL`]. Names carry no `_total`
//! or unit suffix: the OpenMetrics encoder appends them.

/// A base unit, appended to the exposed name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Seconds,
}

impl Unit {
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Seconds => "seconds",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Option<Unit>,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

impl Family {
    /// The name Prometheus stores: with the unit and, for counters, `_total`.
    pub fn exposed_name(&self) -> String {
        let mut name = self.name.to_string();
        if let Some(unit) = self.unit {
            name.push('_');
            name.push_str(unit.suffix());
        }
        if self.kind == Kind::Counter {
            name.push_str("_total");
        }
        name
    }
}

macro_rules! families {
    ($($id:ident: $kind:ident $name:literal $unit:expr, [$($label:literal),*], $help:literal;)*) => {
        $(pub const $id: Family = Family {
            name: $name,
            help: $help,
            unit: $unit,
            kind: Kind::$kind,
            labels: &[$($label),*],
        };)*
        /// Every family, in exposition order.
        pub const ALL: &[Family] = &[$($id),*];
    };
}

families! {
    // Audit log: what the records say.
    AUDIT_EVENTS: Counter "jans_audit_events" None, ["action", "outcome"],
        "Audit log records by action and outcome as the record's success flag says; action is a known upstream action or other";
    TOKEN_REQUESTS: Counter "jans_token_requests" None, ["kind", "outcome"],
        "TOKEN_REQUEST audit records; kind is user when the record names a user, machine when not (client credentials)";
    ACTIVE_USERS: Gauge "jans_active_users" None, ["period"],
        "Distinct active users in the current UTC day, ISO week and calendar month (HyperLogLog++ estimate)";
    MONTHLY_ACTIVE_USERS: Gauge "jans_monthly_active_users" None, ["month"],
        "Distinct active users per retained UTC calendar month YYYYMM (HyperLogLog++ estimate)";
    AUTHORIZATION_REQUESTS: Counter "jans_authorization_requests" None, ["outcome"],
        "Authorization requests by what their USER_AUTHORIZATION records mean: success (code or token issued), interaction (a redirect to a login or consent page: two identical records), error (a rejection: one record)";
    AUTHENTICATIONS: Counter "jans_authentications" None, ["kind", "outcome"],
        "Authentications the server log (jans-auth.log) reports, zero while only the audit log is followed; kind user is an interactive login, service a non-interactive check, client a client authentication, unknown an older build's line that does not say";
    SERVER_LOG_MESSAGES: Counter "jans_server_log_messages" None, ["level"],
        "Events of the auth server's own log (jans-auth.log) by level";
    RECORDS: Counter "jans_exporter_records" None, ["format"],
        "Well-formed records read (audit records and server-log events), by log format";
    PARSE_ERRORS: Counter "jans_exporter_parse_errors" None, ["format", "reason"],
        "Malformed audit records and stray lines skipped, by log format (unknown before detection) and reason";
    RECORDS_LOSSY: Counter "jans_exporter_records_lossy" None, [],
        "Audit records with invalid UTF-8 (a username, say), read with the bad bytes replaced rather than lost";
    RECORDS_OUTSIDE_RETENTION: Counter "jans_exporter_records_outside_retention" None, [],
        "Active-user records older than every retained month, left out of the sketches";
    RECORDS_FUTURE: Counter "jans_exporter_records_future" None, [],
        "Active-user records stamped further ahead of the clock than sketch.max_clock_ahead, left out of the sketches";
    LAST_RECORD_TIMESTAMP: Gauge "jans_exporter_last_record_timestamp" Some(Unit::Seconds), [],
        "Newest audit record time seen (the record's own timestamp), in seconds since the epoch";

    // Log files.
    LOG_READ: Counter "jans_exporter_log_read" Some(Unit::Bytes), [],
        "Bytes read from log files";
    LOG_ROTATIONS: Counter "jans_exporter_log_rotations" None, [],
        "Log files replaced at a followed path (rename or delete and re-create)";
    LOG_TRUNCATIONS: Counter "jans_exporter_log_truncations" None, [],
        "Followed log files truncated in place (copytruncate) and read again from the start";
    LOG_FILES_LOST: Counter "jans_exporter_log_files_lost" None, [],
        "Checkpointed log files not found again after a restart (rotated away and deleted while down)";
    LOG_FILES: Gauge "jans_exporter_log_files" None, [],
        "Log files followed now";
    LOG_FILES_UNREADABLE: Gauge "jans_exporter_log_files_unreadable" None, [],
        "Matched log files that could not be opened at the last poll (permissions)";
    LOG_FILES_OVER_LIMIT: Gauge "jans_exporter_log_files_over_fd_limit" None, [],
        "Matched log files not followed because the file-descriptor limit would be exceeded";
    LOG_PATTERN_FILES: Gauge "jans_exporter_log_pattern_files" None, ["pattern"],
        "Files each configured logs.paths pattern matched at the last discovery; 0 when it finds nothing";
    LOG_LAG: Gauge "jans_exporter_log_lag" Some(Unit::Bytes), [],
        "Bytes written to followed log files and not yet read";

    // Durable state.
    STATE_LOAD_FAILURES: Counter "jans_exporter_state_load_failures" None, [],
        "Snapshots that could not be loaded at start (moved aside; the exporter started fresh)";
    STATE_SECTIONS_DROPPED: Counter "jans_exporter_state_sections_dropped" None, ["section"],
        "Snapshot sections that could not be read at start; the rest of the snapshot was kept";
    STATE_SAVE_FAILURES: Counter "jans_exporter_state_save_failures" None, [],
        "Failed snapshot saves (read-only or full disk); ingestion goes on";
    STATE_SIZE: Gauge "jans_exporter_state" Some(Unit::Bytes), [],
        "Size of the last snapshot written";
    STATE_LAST_SAVE: Gauge "jans_exporter_state_last_save_timestamp" Some(Unit::Seconds), [],
        "When the last snapshot was written, since the epoch";

    // Upstream API.
    UPSTREAM_UP: Gauge "jans_upstream_up" None, ["endpoint"],
        "Whether the last request to the upstream endpoint succeeded";
    UPSTREAM_REQUEST_DURATION: Histogram "jans_upstream_request_duration" Some(Unit::Seconds), ["endpoint"],
        "Time of requests to the upstream API, by endpoint";
    UPSTREAM_ERRORS: Counter "jans_upstream_errors" None, ["endpoint", "reason"],
        "Failed requests to the upstream API, by endpoint and reason";
    UPSTREAM_LAST_SUCCESS: Gauge "jans_upstream_last_success_timestamp" Some(Unit::Seconds), ["endpoint"],
        "When a request to the upstream endpoint last succeeded, since the epoch";
    UPSTREAM_MONTHLY_ACTIVE_USERS: Gauge "jans_upstream_monthly_active_users" None, ["month"],
        "Monthly active users as the auth server's stat endpoint reports them (cached upstream for up to 75 minutes)";
    UPSTREAM_TOKENS: Gauge "jans_upstream_tokens" None, ["month", "grant_type", "token_type"],
        "Tokens issued in the month so far, by grant and token type, as the stat endpoint reports them";
    TOKENS_ISSUED: Counter "jans_tokens_issued" None, ["grant_type", "token_type"],
        "Tokens issued by grant and token type, from increases of the stat endpoint's monthly counts";
    UPSTREAM_POLLER_LEADER: Gauge "jans_upstream_poller_leader" None, [],
        "1 when this sidecar polls the cluster-wide endpoints (stat, FIDO2 entries): every sidecar without a cluster, the lease holder with one; 0 on the others, whose counters of those figures do not grow";
    AUTH_SERVER_UP: Gauge "jans_auth_server_up" None, [],
        "1 when the health check answers status running and db_status online";
    AUTH_SERVER_DB_ONLINE: Gauge "jans_auth_server_db_online" None, [],
        "1 when the last health check answered db_status online";
    AUTH_SERVER_STARTING: Gauge "jans_auth_server_starting" None, [],
        "1 when the last health check answered status starting";

    // FIDO2.
    FIDO2_UP: Gauge "jans_fido2_up" None, [],
        "1 when the FIDO2 metrics health endpoint answers UP";
    FIDO2_OPERATIONS: Counter "jans_fido2_operations" None, ["operation", "status", "authenticator"],
        "FIDO2 / passkey ceremonies by operation, status and authenticator type";
    FIDO2_OPERATION_DURATION: Histogram "jans_fido2_operation_duration" Some(Unit::Seconds), ["operation", "status"],
        "Duration of FIDO2 ceremonies by operation and status";
    FIDO2_ERRORS: Counter "jans_fido2_errors" None, ["operation", "category"],
        "Failed FIDO2 ceremonies by operation and error category (normalised; at most 20 categories, the rest other)";
    FIDO2_FALLBACKS: Counter "jans_fido2_fallbacks" None, ["method"],
        "Fallbacks from passkeys to another method (normalised; at most 10 methods, the rest other)";
    FIDO2_ACTIVE_USERS: Gauge "jans_fido2_active_users" None, ["period"],
        "Distinct users with a successful passkey registration or authentication in the current UTC day, ISO week and month";
    FIDO2_SKIPPED_ENTRIES: Counter "jans_exporter_fido2_skipped_entries" None, ["reason"],
        "FIDO2 entries that could not be read, by reason (bad_timestamp, malformed); never silently dropped";
    FIDO2_DUPLICATE_ENTRIES: Counter "jans_exporter_fido2_duplicate_entries" None, [],
        "FIDO2 entries received again (window overlap) and not counted twice";

    // The cluster through Redis (only with cluster.redis_url).
    CLUSTER_ACTIVE_USERS: Gauge "jans_cluster_active_users" None, ["period"],
        "Distinct users across every replica in the current UTC day, ISO week and month: PFCOUNT of the union in Redis at the last sync";
    CLUSTER_MONTHLY_ACTIVE_USERS: Gauge "jans_cluster_monthly_active_users" None, ["month"],
        "Distinct users across every replica per retained month (YYYYMM): PFCOUNT of the union in Redis at the last sync";
    CLUSTER_FIDO2_ACTIVE_USERS: Gauge "jans_cluster_fido2_active_users" None, ["period"],
        "Distinct users with a successful passkey ceremony across the cluster in the current UTC day, ISO week and month: PFCOUNT of the union in Redis, fed by whichever sidecar polled the FIDO2 entries";
    CLUSTER_UP: Gauge "jans_cluster_up" None, [],
        "1 when the last sync with the cluster's Redis succeeded";
    CLUSTER_LAST_SYNC: Gauge "jans_cluster_last_sync_timestamp" Some(Unit::Seconds), [],
        "When this sidecar last merged its registers into Redis, since the epoch";
    CLUSTER_SYNC_ERRORS: Counter "jans_cluster_sync_errors" None, ["reason"],
        "Failed syncs with the cluster's Redis, by reason (connect, auth, timeout, response, store)";
    CLUSTER_LEASE_ERRORS: Counter "jans_cluster_lease_errors" None, ["reason"],
        "Failed rounds of the lease on the cluster-wide pollers (take or renew), by reason; while every sidecar fails them, nobody polls the stat endpoint and the FIDO2 entries";
    CLUSTER_SYNC_DURATION: Histogram "jans_cluster_sync_duration" Some(Unit::Seconds), [],
        "Time of one sync with the cluster's Redis, successful or not";

    // An Okta org's System Log (only with okta.org_url).
    OKTA_ACTIVE_USERS: Gauge "jans_okta_active_users" None, ["period"],
        "Distinct Okta users with a successful token grant in a user-based flow of a custom authorization server in the current UTC day, ISO week and month";
    OKTA_MONTHLY_ACTIVE_USERS: Gauge "jans_okta_monthly_active_users" None, ["month"],
        "Distinct Okta users with a successful token grant in a user-based flow of a custom authorization server, per retained UTC month (YYYYMM): API Access Management's MAU";
    OKTA_M2M_TOKENS: Counter "jans_okta_m2m_tokens" None, ["authorization_server"],
        "Access tokens issued to client-credentials (machine-to-machine) clients by Okta custom authorization servers, by server id (the largest by volume; the rest other)";
    OKTA_EVENTS: Counter "jans_okta_events" None, ["flow", "billed"],
        "Token-grant events read from the Okta System Log by flow (user, m2m, other), and whether they count in the billing figures";
    OKTA_SKIPPED_EVENTS: Counter "jans_okta_skipped_events" None, ["reason"],
        "Okta System Log events that could not be counted, by reason (malformed, bad_timestamp, no_user)";
    OKTA_DUPLICATE_EVENTS: Counter "jans_okta_duplicate_events" None, [],
        "Okta System Log events received again (same uuid) and not counted twice";
    OKTA_UP: Gauge "jans_okta_up" None, [],
        "1 when the last request to the Okta System Log succeeded";
    OKTA_ERRORS: Counter "jans_okta_errors" None, ["reason"],
        "Failed requests to the Okta System Log, by reason";
    OKTA_REQUEST_DURATION: Histogram "jans_okta_request_duration" Some(Unit::Seconds), [],
        "Time of requests to the Okta System Log";
    OKTA_LAST_SUCCESS: Gauge "jans_okta_last_success_timestamp" Some(Unit::Seconds), [],
        "When a request to the Okta System Log last succeeded, since the epoch";
    OKTA_NEWEST_EVENT: Gauge "jans_okta_newest_event_timestamp" Some(Unit::Seconds), [],
        "The newest published time of the Okta System Log events read, since the epoch";
    OKTA_LAG: Gauge "jans_okta_lag" Some(Unit::Seconds), [],
        "Age of the newest Okta System Log event read, at the time of the scrape";
    OKTA_RATE_LIMIT_REMAINING: Gauge "jans_okta_rate_limit_remaining" None, [],
        "Requests left in the current rate-limit window of /api/v1/logs, as Okta's last answer said (X-Rate-Limit-Remaining)";

    // The exporter process.
    BUILD_INFO: Gauge "jans_exporter_build_info" None, ["version", "revision", "rustc"],
        "Build of the running exporter: its version, the commit it was built from and the compiler's version; always 1";
    // The standard process families of every Prometheus client library, unprefixed
    // on purpose so that shared process dashboards and alerts find them.
    PROCESS_CPU: Counter "process_cpu" Some(Unit::Seconds), [],
        "Total user and system CPU time spent in seconds";
    PROCESS_RESIDENT_MEMORY: Gauge "process_resident_memory" Some(Unit::Bytes), [],
        "Resident memory size in bytes";
    PROCESS_VIRTUAL_MEMORY: Gauge "process_virtual_memory" Some(Unit::Bytes), [],
        "Virtual memory size in bytes";
    PROCESS_VIRTUAL_MEMORY_MAX: Gauge "process_virtual_memory_max" Some(Unit::Bytes), [],
        "Maximum amount of virtual memory available in bytes";
    PROCESS_START_TIME: Gauge "process_start_time" Some(Unit::Seconds), [],
        "Start time of the process since unix epoch in seconds";
    PROCESS_OPEN_FDS: Gauge "process_open_fds" None, [],
        "Number of open file descriptors";
    PROCESS_MAX_FDS: Gauge "process_max_fds" None, [],
        "Maximum number of open file descriptors";
}

/// The standard `process_*` families, the only ones without the `jans_` prefix.
pub const STANDARD_PROCESS: [&Family; 7] = [
    &PROCESS_CPU,
    &PROCESS_RESIDENT_MEMORY,
    &PROCESS_VIRTUAL_MEMORY,
    &PROCESS_VIRTUAL_MEMORY_MAX,
    &PROCESS_START_TIME,
    &PROCESS_OPEN_FDS,
    &PROCESS_MAX_FDS,
];

/// The family called `name`, if declared.
pub fn by_name(name: &str) -> Option<&'static Family> {
    ALL.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_prefixed_and_suffix_free() {
        let mut seen = std::collections::BTreeSet::new();
        for f in ALL {
            assert!(seen.insert(f.name), "{} declared twice", f.name);
            assert!(
                f.name.starts_with("jans_") || STANDARD_PROCESS.contains(&f),
                "{}",
                f.name
            );
            assert!(
                !f.name.ends_with("_total"),
                "{}: the encoder adds _total",
                f.name
            );
            assert!(!f.help.is_empty() && !f.help.ends_with('.'), "{}", f.name);
        }
        assert_eq!(
            LOG_READ.exposed_name(),
            "jans_exporter_log_read_bytes_total"
        );
        assert_eq!(by_name("jans_audit_events"), Some(&AUDIT_EVENTS));
    }
}
