//! Cluster-wide active users through a real Redis: the registers a sidecar uploads are
//! the ones Redis itself builds, every replica reports one union, and Redis being
//! slow, gone or restarted empty never costs a local figure.

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use jans_exporter::event::UserKey;
use jans_exporter::generate::{write_record, Layout, Record};
use jans_exporter::store::redis_hll::RedisRegisters;
use redis_server::RedisServer;

const PREFIX: &str = "jx-test";

fn username(i: u32) -> String {
    format!("user{i:06}@example.org")
}

/// Appends one successful TOKEN_REQUEST per user at `at_ms`: each user active once.
fn write_users(path: &Path, users: Range<u32>, at_ms: i64) {
    let mut f = std::fs::File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut out = Vec::new();
    for i in users {
        let r = Record {
            ip: "10.0.0.1".into(),
            action: "TOKEN_REQUEST",
            timestamp_ms: at_ms,
            mac: "02-42-AC-11-00-03",
            client_id: "1800.df1bb233-10b8-40ed-bbb9-07da50892a35",
            username: Some(username(i)),
            scope: Some("openid"),
            success: true,
            thread: 1,
            correlation_id: None,
        };
        write_record(&mut out, Layout::Text, &r, 0).unwrap();
    }
    f.write_all(&out).unwrap();
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `2026-12`: the current month as the shared key names it.
fn month_label(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m")
        .to_string()
}

fn month_key(ms: i64) -> String {
    format!("{{{PREFIX}}}:users:month:{}", month_label(ms))
}

fn cluster_config(dir: &Path, log: &Path, url: &str, extra: &str) -> PathBuf {
    write_config(
        dir,
        &[log.to_path_buf()],
        &format!(
            "[cluster]\nredis_url = {url:?}\nsync_interval = \"1s\"\nkey_prefix = {PREFIX:?}\ntimeout = \"1s\"\n{extra}"
        ),
    )
}

const STAT_TOKEN: &str = "cluster-test-token";

/// A sidecar in its own folder, with its own log of `users`; its stat endpoint takes
/// [`STAT_TOKEN`].
fn sidecar(root: &Path, name: &str, url: &str, users: Range<u32>) -> (Exporter, PathBuf) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("audit.log");
    write_users(&log, users, now_ms());
    let e = Exporter::start(&sidecar_config(&dir, &log, url));
    (e, log)
}

fn sidecar_config(dir: &Path, log: &Path, url: &str) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, hash_token(STAT_TOKEN)).unwrap();
    cluster_config(
        dir,
        log,
        url,
        &format!(
            "[api]\nstatic_tokens_file = {:?}\n",
            tokens.display().to_string()
        ),
    )
}

fn series(e: &Exporter, name: &str) -> Option<f64> {
    samples(&e.metrics()).get(name).copied()
}

const CLUSTER_MONTH: &str = "jans_cluster_active_users{period=\"month\"}";
const LOCAL_MONTH: &str = "jans_active_users{period=\"month\"}";

/// Waits until the sidecar's last sync saw `want` (after reading `records` records).
fn wait_cluster_month(e: &Exporter, want: impl Fn(f64) -> bool) -> f64 {
    wait_for(Duration::from_secs(30), || {
        series(e, CLUSTER_MONTH).filter(|n| want(*n))
    })
    .unwrap_or_else(|| {
        panic!(
            "cluster month never as wanted:\n{}\n{}",
            e.metrics(),
            e.log_text()
        )
    })
}

/// Waits for one more successful sync than now.
fn wait_next_sync(e: &Exporter) {
    let last = "jans_cluster_last_sync_timestamp_seconds";
    let before = series(e, last).unwrap_or(0.0);
    wait_for(Duration::from_secs(30), || {
        series(e, last).filter(|t| *t > before)
    })
    .expect("another sync");
}

/// A sidecar Redis refuses: syncs fail for `reason`, `jans_cluster_up` is 0, and its
/// own figures count all `users` all the same.
fn assert_refused_yet_counting(e: &Exporter, reason: &str, users: u64) {
    let series_name = format!("jans_cluster_sync_errors_total{{reason=\"{reason}\"}}");
    wait_for(Duration::from_secs(30), || {
        series(e, &series_name).filter(|n| *n >= 1.0)
    })
    .unwrap_or_else(|| panic!("no {reason} error:\n{}", e.metrics()));
    let m = wait_for_records(e, users);
    assert_eq!(sample(&m, "jans_cluster_up"), 0.0);
    assert_eq!(sample(&m, LOCAL_MONTH), users as f64);
}

fn get_registers(conn: &mut redis::Connection, key: &str) -> RedisRegisters {
    let bytes: Vec<u8> = redis::cmd("GET").arg(key).query(conn).unwrap();
    RedisRegisters::from_dense_hyll(&bytes).unwrap_or_else(|e| panic!("{key}: {e}"))
}

#[test]
fn uploaded_registers_are_those_redis_builds_from_pfadd_and_pfcount_is_our_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = RedisServer::start(dir.path()) else {
        return;
    };
    let users = 0..3000;
    let (e, _) = sidecar(dir.path(), "a", &redis.url(), users.clone());
    wait_for_records(&e, 3000);
    let counted = wait_cluster_month(&e, |n| n > 2900.0);
    let mut conn = redis.conn();
    let at = now_ms();
    let ours = get_registers(&mut conn, &month_key(at));

    // Redis's own registers for the same users: PFADD of each user key's 8 LE bytes,
    // dense from the first element so that GET returns the same encoding.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("hll-sparse-max-bytes")
        .arg(0)
        .query(&mut conn)
        .unwrap();
    let mut pfadd = redis::cmd("PFADD");
    pfadd.arg("check");
    for i in users.clone() {
        pfadd.arg(UserKey::of(&username(i)).0.to_le_bytes().as_slice());
    }
    let _: i64 = pfadd.query(&mut conn).unwrap();
    let theirs = get_registers(&mut conn, "check");
    assert_eq!(
        ours.first_difference(&theirs),
        None,
        "(register, ours, Redis's)"
    );

    // PFCOUNT of the shared key is what the sidecar reports, and equals the estimate
    // our own code computes from the same registers.
    let pfcount: u64 = redis::cmd("PFCOUNT")
        .arg(month_key(at))
        .query(&mut conn)
        .unwrap();
    assert_eq!(counted as u64, pfcount);
    let mut local = RedisRegisters::default();
    for i in users {
        local.insert(UserKey::of(&username(i)));
    }
    assert_eq!(local.estimate(), pfcount);
    assert!(
        (pfcount as f64 - 3000.0).abs() / 3000.0 <= 0.02,
        "{pfcount}"
    );

    // Re-syncing changes nothing: same registers, same count.
    wait_next_sync(&e);
    wait_next_sync(&e);
    assert_eq!(get_registers(&mut conn, &month_key(at)), ours);
    assert_eq!(series(&e, CLUSTER_MONTH), Some(counted));

    // Day and week keys exist too, staging keys never outlive a sync, and every key
    // carries the one hash tag and an expiry.
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    for kind in ["day", "week", "month"] {
        assert!(
            keys.iter()
                .any(|key| key.starts_with(&format!("{{{PREFIX}}}:users:{kind}:"))),
            "no {kind} key in {keys:?}"
        );
    }
    assert!(
        !keys.iter().any(|k| k.contains(":stage:")),
        "staging keys left: {keys:?}"
    );
    for key in keys.iter().filter(|k| k.starts_with('{')) {
        let ttl_ms: i64 = redis::cmd("PTTL").arg(key).query(&mut conn).unwrap();
        assert!(ttl_ms > 0, "{key} has no expiry ({ttl_ms})");
    }
    // The month lives as long as the sidecar retains months (13 by default): between
    // 12 and 13 months from now.
    let month_ttl_days = {
        let ms: i64 = redis::cmd("PTTL")
            .arg(month_key(at))
            .query(&mut conn)
            .unwrap();
        ms as f64 / 86_400_000.0
    };
    assert!(
        (334.0..=397.0).contains(&month_ttl_days),
        "{month_ttl_days}"
    );
    let day_key = keys
        .iter()
        .find(|k| k.contains(":users:day:"))
        .unwrap()
        .clone();
    let day_ttl_ms: i64 = redis::cmd("PTTL").arg(&day_key).query(&mut conn).unwrap();
    assert!(
        (2 * 86_400_000..=3 * 86_400_000).contains(&day_ttl_ms),
        "{day_key}: {day_ttl_ms}"
    );
}

#[test]
fn three_sidecars_with_overlapping_users_report_one_union_within_two_percent() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = RedisServer::start(dir.path()) else {
        return;
    };
    let parts = [0..4000, 2000..6000, 4500..9000];
    let mut sidecars: Vec<Exporter> = parts
        .iter()
        .enumerate()
        .map(|(i, r)| sidecar(dir.path(), &format!("pod{i}"), &redis.url(), r.clone()).0)
        .collect();
    for (e, r) in sidecars.iter().zip(&parts) {
        wait_for_records(e, u64::from(r.end - r.start));
    }
    // A replica that served nobody yet answers the union all the same.
    let idle = sidecar(dir.path(), "idle", &redis.url(), 0..0).0;
    // Once every sidecar has synced after all have, they all answer the union.
    let union = wait_cluster_month(&sidecars[0], |n| n > 8000.0);
    for e in &sidecars {
        wait_next_sync(e);
    }
    let answers: Vec<f64> = sidecars
        .iter()
        .map(|e| series(e, CLUSTER_MONTH).unwrap())
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let truth = 9000.0;
    assert!((answers[0] - truth).abs() / truth <= 0.02, "{answers:?}");
    assert!(union <= answers[0]);
    wait_next_sync(&idle);
    assert_eq!(
        series(&idle, CLUSTER_MONTH),
        Some(answers[0]),
        "the idle replica"
    );
    assert_eq!(series(&idle, LOCAL_MONTH), Some(0.0));
    let month = chrono::Utc::now().format("%Y%m").to_string();
    assert_eq!(stat_mau(&idle, &month), answers[0]);
    sidecars.push(idle);
    // Each pod's own figure stays its own.
    for (e, r) in sidecars.iter().zip(&parts) {
        let own = series(e, LOCAL_MONTH).unwrap();
        let n = f64::from(r.end - r.start);
        assert!((own - n).abs() / n <= 0.02, "local {own} for {n}");
    }
    // The compatible stat endpoint answers the union on every replica.
    let month = chrono::Utc::now().format("%Y%m").to_string();
    for e in &sidecars {
        let mau = stat_mau(e, &month);
        assert_eq!(mau, answers[0], "stat endpoint of {}", e.addr);
    }
}

/// The stat endpoint's `monthly_active_users` for `month`, with the static token the
/// sidecars accept.
fn stat_mau(e: &Exporter, month: &str) -> f64 {
    let r = http(
        e.addr,
        "GET",
        &format!("/jans-auth/restv1/internal/stat?month={month}"),
        &[("Authorization", &format!("Bearer {STAT_TOKEN}"))],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["response"][0]["monthly_active_users"]
        .as_f64()
        .unwrap_or_else(|| panic!("{v}"))
}

#[test]
fn redis_gone_costs_no_local_figure_and_redis_restarted_empty_is_refilled() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut redis) = RedisServer::start(dir.path()) else {
        return;
    };
    let port = redis.port;
    let (e, log) = sidecar(dir.path(), "a", &redis.url(), 0..1000);
    wait_for_records(&e, 1000);
    wait_cluster_month(&e, |n| n > 950.0);

    redis.kill();
    wait_for(Duration::from_secs(30), || {
        (series(&e, "jans_cluster_up") == Some(0.0)).then_some(())
    })
    .expect("jans_cluster_up 0 with Redis gone");
    let errors = family_sum(&e.metrics(), "jans_cluster_sync_errors_total");
    assert!(errors >= 1.0);
    // Ingestion and scrapes go on.
    write_users(&log, 1000..1500, now_ms());
    let m = wait_for_records(&e, 1500);
    let local = sample(&m, LOCAL_MONTH);
    assert!((local - 1500.0).abs() / 1500.0 <= 0.02, "{local}");
    assert!(
        series(&e, "jans_cluster_sync_errors_total{reason=\"connect\"}").unwrap_or(0.0) >= 1.0,
        "reason: {}",
        e.metrics()
    );

    // A new, empty Redis on the same address: the next syncs refill the union,
    // including what was read while Redis was away.
    let redis = RedisServer::start_on(dir.path(), port);
    let refilled = wait_cluster_month(&e, |n| n > 1450.0);
    assert_eq!(series(&e, "jans_cluster_up"), Some(1.0));
    let pfcount: u64 = redis::cmd("PFCOUNT")
        .arg(month_key(now_ms()))
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(pfcount as f64, refilled);
}

#[test]
fn a_restarted_sidecar_merges_its_saved_registers_again() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = RedisServer::start(dir.path()) else {
        return;
    };
    let (mut e, log) = sidecar(dir.path(), "a", &redis.url(), 0..800);
    wait_for_records(&e, 800);
    let before = wait_cluster_month(&e, |n| n > 760.0);
    assert!(e.terminate(Duration::from_secs(20)).is_some());
    // Redis loses everything while the pod restarts; the log was read to its end and
    // is not read again, so only the snapshot's registers can bring the users back.
    let _: () = redis::cmd("FLUSHALL").query(&mut redis.conn()).unwrap();
    let e = Exporter::start(&sidecar_config(&dir.path().join("a"), &log, &redis.url()));
    let after = wait_cluster_month(&e, |n| n > 0.0);
    assert_eq!(after, before);
    assert_eq!(
        family_sum(&e.metrics(), "jans_audit_events_total"),
        800.0,
        "nothing was read twice"
    );
}

// ---- One poller of the cluster-wide endpoints -------------------------------------

#[path = "common/fake_janssen.rs"]
mod fake_janssen;

use fake_janssen::{FakeJanssen, CLIENT_ID, CLIENT_SECRET};

const LEADER: &str = "jans_upstream_poller_leader";

/// A sidecar polling `fake` (stat, health, FIDO2 every second), in a cluster through
/// `url`.
fn polling_sidecar(root: &Path, name: &str, url: &str, fake: &FakeJanssen) -> Exporter {
    sidecar_in(root, name, url, 0..0, "", Some(fake))
}

/// A sidecar whose log holds `users`, with `cluster_extra` in `[cluster]`, polling
/// `fake` if given.
fn sidecar_in(
    root: &Path,
    name: &str,
    url: &str,
    users: Range<u32>,
    cluster_extra: &str,
    fake: Option<&FakeJanssen>,
) -> Exporter {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("audit.log");
    write_users(&log, users, now_ms());
    let upstream = fake.map_or(String::new(), |fake| format!(
        "[upstream]\nbase_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nstat_interval = \"1s\"\nhealth_interval = \"1s\"\nfido2_interval = \"1s\"\ntimeout = \"500ms\"\nfido2_overlap = \"10s\"\n",
        fake.base()
    ));
    Exporter::start(&cluster_config(
        &dir,
        &log,
        url,
        &format!("{cluster_extra}{upstream}"),
    ))
}

/// The month's client-credentials access tokens as the stat endpoint reports them.
fn set_m2m_tokens(fake: &FakeJanssen, n: u64) {
    let month = chrono::Utc::now()
        .format("%Y%m")
        .to_string()
        .parse()
        .unwrap();
    fake.set_tokens(month, 1, &[("client_credentials", "access_token", n)]);
}

/// `n` successful passkey authentications of distinct users, at `at_ms`.
fn add_ceremonies(fake: &FakeJanssen, ids: Range<u32>, at_ms: i64) {
    fake.with(|s| {
        for i in ids {
            s.fido2_entries.push(serde_json::json!({
                "id": format!("ceremony-{i}"),
                "timestamp": at_ms,
                "username": format!("passkey-user-{i}"),
                "operationType": "AUTHENTICATION",
                "status": "SUCCESS",
                "authenticatorType": "platform",
                "durationMs": 800,
            }));
        }
    });
}

const M2M_ISSUED: &str =
    "jans_tokens_issued_total{grant_type=\"client_credentials\",token_type=\"access_token\"}";
const M2M_REPORTED: &str = "jans_upstream_tokens";

/// Index of the one sidecar leading, once exactly one of `live` says 1 and the others 0.
fn the_leader(sidecars: &[Exporter], live: &[usize]) -> usize {
    wait_for(Duration::from_secs(30), || {
        let states: Vec<Option<f64>> = live.iter().map(|i| series(&sidecars[*i], LEADER)).collect();
        let leaders: Vec<usize> = live
            .iter()
            .zip(&states)
            .filter(|(_, s)| **s == Some(1.0))
            .map(|(i, _)| *i)
            .collect();
        (leaders.len() == 1 && states.iter().all(|s| s.is_some())).then(|| leaders[0])
    })
    .unwrap_or_else(|| {
        let states: Vec<Option<f64>> = live.iter().map(|i| series(&sidecars[*i], LEADER)).collect();
        panic!("never exactly one leader among {live:?}: {states:?}")
    })
}

fn issued(e: &Exporter) -> f64 {
    series(e, M2M_ISSUED).unwrap_or(0.0)
}

fn ceremonies(e: &Exporter) -> f64 {
    family_sum(&e.metrics(), "jans_fido2_operations_total")
}

/// Waits until the leader's figures reach `issued_total` and `ceremonies_total`.
fn wait_leader_counted(e: &Exporter, issued_total: f64, ceremonies_total: f64) {
    wait_for(Duration::from_secs(30), || {
        (issued(e) == issued_total && ceremonies(e) == ceremonies_total).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "leader never counted {issued_total} tokens and {ceremonies_total} ceremonies (has {} and {}):\n{}",
            issued(e),
            ceremonies(e),
            e.log_text()
        )
    });
}

/// The handover in Redis, once it names `tokens` as the month's mark.
fn wait_handover_mark(redis: &RedisServer, tokens: u64) {
    let key = format!("{{{PREFIX}}}:poller:handover");
    let found = wait_for(Duration::from_secs(30), || {
        let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query(&mut redis.conn()).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes?).ok()?;
        v["stat_high_water"]
            .as_array()?
            .iter()
            .any(|m| m["grant_type"] == "client_credentials" && m["count"] == tokens)
            .then_some(())
    });
    assert!(found.is_some(), "the handover never reached {tokens}");
}

/// Three replicas, one stat endpoint and one FIDO2 API for all. Whatever the leader
/// changes (a clean stop, then a crash), the sum over the sidecars of each counter is
/// the growth the upstream reported while they ran: nothing counted twice, nothing lost.
#[test]
fn one_sidecar_polls_the_cluster_wide_endpoints_and_the_next_continues_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = RedisServer::start(dir.path()) else {
        return;
    };
    let fake = FakeJanssen::start();
    set_m2m_tokens(&fake, 100);
    let start_ms = now_ms();
    // Within the overlap (10 s): the first holder reads one overlap back.
    add_ceremonies(&fake, 0..10, start_ms - 5_000);
    let mut sidecars: Vec<Exporter> = (0..3)
        .map(|i| polling_sidecar(dir.path(), &format!("pod{i}"), &redis.url(), &fake))
        .collect();
    let mut live = vec![0, 1, 2];

    // The first holder finds no handover: the month so far (100) is its starting
    // mark, not growth; its FIDO2 window starts one overlap back.
    let first = the_leader(&sidecars, &live);
    let reported = format!(
        "{M2M_REPORTED}{{month=\"{}\",grant_type=\"client_credentials\",token_type=\"access_token\"}}",
        chrono::Utc::now().format("%Y%m")
    );
    wait_for(Duration::from_secs(30), || {
        (series(&sidecars[first], &reported) == Some(100.0)).then_some(())
    })
    .expect("the leader polls the stat endpoint");
    wait_leader_counted(&sidecars[first], 0.0, 10.0);
    set_m2m_tokens(&fake, 130);
    add_ceremonies(&fake, 10..15, now_ms());
    wait_leader_counted(&sidecars[first], 30.0, 15.0);
    // The landing page says who polls, and how the sync with Redis goes.
    let page = sidecars[first].get("/", &[]).text();
    assert!(page.contains("This sidecar holds the lease"), "{page}");
    assert!(
        page.contains("<h2>Cluster</h2>\n<p>Redis: synced;"),
        "{page}"
    );
    for &i in live.iter().filter(|i| **i != first) {
        let page = sidecars[i].get("/", &[]).text();
        assert!(page.contains("Another replica polls"), "{page}");
        assert_eq!(issued(&sidecars[i]), 0.0, "a follower counted tokens");
        assert_eq!(
            ceremonies(&sidecars[i]),
            0.0,
            "a follower counted ceremonies"
        );
        assert_eq!(series(&sidecars[i], LEADER), Some(0.0));
    }
    // Followers never asked for the cluster's figures; every sidecar checks its own
    // auth server's health.
    let stat_calls = fake.with(|s| {
        s.requests
            .iter()
            .filter(|r| r.contains("/internal/stat"))
            .count()
    });
    assert!(stat_calls >= 2);

    // A clean stop hands over at once.
    let final_first = (issued(&sidecars[first]), ceremonies(&sidecars[first]));
    assert!(sidecars[first].terminate(Duration::from_secs(20)).is_some());
    live.retain(|i| *i != first);
    let second = the_leader(&sidecars, &live);
    set_m2m_tokens(&fake, 175);
    add_ceremonies(&fake, 15..22, now_ms());
    // It re-reads the 10 s overlap (ceremonies 10..15 again) and counts none twice.
    wait_leader_counted(&sidecars[second], 45.0, 7.0);
    assert!(
        series(
            &sidecars[second],
            "jans_exporter_fido2_duplicate_entries_total"
        )
        .unwrap_or(0.0)
            >= 5.0,
        "the overlap was read again"
    );

    // A crash: once the handover holds what the second holder counted, and its
    // passkey users are merged (a crashed pod's registers otherwise come back from its
    // snapshot when it restarts), SIGKILL it.
    wait_handover_mark(&redis, 175);
    // Two: one in flight may have read its registers before the last ceremonies.
    wait_next_sync(&sidecars[second]);
    wait_next_sync(&sidecars[second]);
    let final_second = (issued(&sidecars[second]), ceremonies(&sidecars[second]));
    sidecars[second].kill9();
    live.retain(|i| *i != second);
    let third = the_leader(&sidecars, &live);
    set_m2m_tokens(&fake, 190);
    add_ceremonies(&fake, 22..25, now_ms());
    wait_leader_counted(&sidecars[third], 15.0, 3.0);

    let tokens = final_first.0 + final_second.0 + issued(&sidecars[third]);
    let passkeys = final_first.1 + final_second.1 + ceremonies(&sidecars[third]);
    assert_eq!(tokens, 190.0 - 100.0, "each token counted once");
    assert_eq!(passkeys, 25.0, "each ceremony counted once");
    // The passkey users of every holder are in one union.
    let month = "jans_cluster_fido2_active_users{period=\"month\"}";
    let users = wait_for(Duration::from_secs(30), || {
        series(&sidecars[third], month).filter(|n| *n >= 24.0)
    })
    .unwrap_or_else(|| panic!("passkey union: {:?}", series(&sidecars[third], month)));
    assert!((users - 25.0).abs() <= 1.0, "{users}");
}

/// Redis Cluster: every key of a sidecar carries the one hash tag, so each script runs
/// on the node owning its slot; the union and the lease work as on one server.
#[test]
fn a_redis_cluster_holds_the_union_and_the_lease_on_the_node_owning_the_hash_tag() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = redis_server::RedisCluster::start(dir.path()) else {
        return;
    };
    let fake = FakeJanssen::start();
    set_m2m_tokens(&fake, 10);
    // Seeded with the node that does not own the tag: redirections are followed.
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(format!("{{{PREFIX}}}"))
        .query(&mut cluster.nodes[0].conn())
        .unwrap();
    let owner = cluster.owner_of(slot);
    let seed = cluster.nodes.iter().find(|n| n.port != owner.port).unwrap();
    let mode = "mode = \"cluster\"\n";
    let sidecars = [
        sidecar_in(dir.path(), "a", &seed.url(), 0..2000, mode, Some(&fake)),
        sidecar_in(dir.path(), "b", &seed.url(), 1000..3000, mode, Some(&fake)),
    ];
    the_leader(&sidecars, &[0, 1]);
    for e in &sidecars {
        wait_for_records(e, 2000);
    }
    wait_cluster_month(&sidecars[0], |n| n > 2900.0);
    for e in &sidecars {
        wait_next_sync(e);
    }
    let answers: Vec<f64> = sidecars
        .iter()
        .map(|e| series(e, CLUSTER_MONTH).unwrap())
        .collect();
    assert_eq!(answers[0], answers[1]);
    assert!((answers[0] - 3000.0).abs() / 3000.0 <= 0.02, "{answers:?}");
    let pfcount: u64 = redis::cmd("PFCOUNT")
        .arg(month_key(now_ms()))
        .query(&mut owner.conn())
        .unwrap();
    assert_eq!(pfcount as f64, answers[0]);
    let lease: Option<String> = redis::cmd("GET")
        .arg(format!("{{{PREFIX}}}:poller:lease"))
        .query(&mut owner.conn())
        .unwrap();
    assert!(lease.is_some(), "the lease lives on the owner node");
    for n in cluster.nodes.iter().filter(|n| n.port != owner.port) {
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut n.conn()).unwrap();
        assert!(keys.is_empty(), "keys outside the tag's node: {keys:?}");
    }
}

/// Sentinel: the sidecar asks the sentinels for the master and merges there.
#[test]
fn a_master_found_through_sentinel_holds_the_union() {
    let dir = tempfile::tempdir().unwrap();
    let Some(master) = RedisServer::start(dir.path()) else {
        return;
    };
    let sentinel = redis_server::start_sentinel(dir.path(), master.port, "jx-master");
    let extra = "mode = \"sentinel\"\nsentinel_master = \"jx-master\"\n";
    let e = sidecar_in(dir.path(), "a", &sentinel.url(), 0..500, extra, None);
    wait_for_records(&e, 500);
    let counted = wait_cluster_month(&e, |n| n > 480.0);
    let pfcount: u64 = redis::cmd("PFCOUNT")
        .arg(month_key(now_ms()))
        .query(&mut master.conn())
        .unwrap();
    assert_eq!(pfcount as f64, counted);
}

/// Redis restarted empty under the holder: it takes the lease again with its own marks
/// (nothing handed over, nothing lost) and stores its handover again.
#[test]
fn a_holder_that_finds_redis_emptied_continues_from_its_own_marks() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = RedisServer::start(dir.path()) else {
        return;
    };
    let fake = FakeJanssen::start();
    set_m2m_tokens(&fake, 100);
    let sidecars = [polling_sidecar(dir.path(), "a", &redis.url(), &fake)];
    the_leader(&sidecars, &[0]);
    wait_handover_mark(&redis, 100);
    set_m2m_tokens(&fake, 120);
    wait_leader_counted(&sidecars[0], 20.0, 0.0);
    wait_handover_mark(&redis, 120);
    let _: () = redis::cmd("FLUSHALL").query(&mut redis.conn()).unwrap();
    // The handover is stored again once the lease is taken again.
    wait_handover_mark(&redis, 120);
    set_m2m_tokens(&fake, 150);
    wait_leader_counted(&sidecars[0], 50.0, 0.0);
    assert_eq!(series(&sidecars[0], LEADER), Some(1.0));
}

/// The ACL docs/operations.md documents is enough for every script, the lease
/// included; a wrong password is an `auth` error and costs no local figure.
#[test]
fn the_documented_acl_is_enough_and_a_wrong_password_is_an_auth_error() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = RedisServer::start(dir.path()) else {
        return;
    };
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("exporter")
        .arg("on")
        .arg(">right-password")
        .arg(format!("~{{{PREFIX}}}:*"))
        .arg("resetchannels")
        .arg("-@all")
        .arg("+evalsha")
        .arg("+eval")
        .arg("+script|load")
        .arg("+set")
        .arg("+get")
        .arg("+strlen")
        .arg("+del")
        .arg("+exists")
        .arg("+pexpire")
        .arg("+pexpireat")
        .arg("+pfmerge")
        .arg("+pfcount")
        .query(&mut redis.conn())
        .unwrap();
    let fake = FakeJanssen::start();
    set_m2m_tokens(&fake, 5);
    let url = format!("redis://exporter@127.0.0.1:{}", redis.port);
    let password = dir.path().join("redis-password");
    std::fs::write(&password, "right-password\n").unwrap();
    let extra = format!("password_file = {:?}\n", password.display().to_string());
    let e = sidecar_in(dir.path(), "a", &url, 0..300, &extra, Some(&fake));
    wait_for_records(&e, 300);
    wait_cluster_month(&e, |n| n > 290.0);
    the_leader(std::slice::from_ref(&e), &[0]);
    wait_handover_mark(&redis, 5);
    // Every command of every script was allowed: not one failed round, and the first
    // holder found nothing to take over (a round stopped half-way would have left it
    // the lease and made it its own successor).
    assert_eq!(
        family_sum(&e.metrics(), "jans_cluster_lease_errors_total"),
        0.0,
        "{}",
        e.log_text()
    );
    assert_eq!(
        family_sum(&e.metrics(), "jans_cluster_sync_errors_total"),
        0.0
    );
    assert!(
        e.log_text().contains("handed_over=false"),
        "{}",
        e.log_text()
    );

    std::fs::write(dir.path().join("wrong"), "wrong-password").unwrap();
    let extra = format!(
        "password_file = {:?}\n",
        dir.path().join("wrong").display().to_string()
    );
    let refused = sidecar_in(dir.path(), "b", &url, 0..50, &extra, None);
    assert_refused_yet_counting(&refused, "auth", 50);
}

/// `rediss://`: a Redis with a certificate from a private CA is trusted through
/// `cluster.ca_file`; without it the handshake fails as a `connect` error, and the
/// local figures go on.
#[test]
fn tls_to_redis_verifies_the_server_with_the_configured_ca() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    if !require_tool("redis-server") {
        return;
    }
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (ca_file, cert_file, key_file) = (
        write("ca.pem", &ca.pem()),
        write("redis.pem", &cert.pem()),
        write("redis.key", &key.serialize_pem()),
    );
    let tls_port = redis_server::free_port();
    // The plain port is the test's own way in; the sidecars only get the TLS one.
    let redis = RedisServer::start_args(
        dir.path(),
        redis_server::free_port(),
        &[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &cert_file,
            "--tls-key-file",
            &key_file,
            "--tls-ca-cert-file",
            &ca_file,
            "--tls-auth-clients",
            "no",
        ],
    );
    let url = format!("rediss://localhost:{tls_port}");
    let trusted = sidecar_in(
        dir.path(),
        "trusted",
        &url,
        0..400,
        &format!("ca_file = {ca_file:?}\n"),
        None,
    );
    let untrusted = sidecar_in(dir.path(), "untrusted", &url, 0..100, "", None);
    wait_for_records(&trusted, 400);
    let counted = wait_cluster_month(&trusted, |n| n > 390.0);
    let pfcount: u64 = redis::cmd("PFCOUNT")
        .arg(month_key(now_ms()))
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(pfcount as f64, counted);
    assert_refused_yet_counting(&untrusted, "connect", 100);
}

/// A handover key holding something far larger than a handover can be (a corrupt or
/// hostile value) is never read into memory: the new holder starts as with none.
#[test]
fn an_oversized_handover_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = RedisServer::start(dir.path()) else {
        return;
    };
    let huge = vec![b'x'; 5 << 20];
    let _: () = redis::cmd("SET")
        .arg(format!("{{{PREFIX}}}:poller:handover"))
        .arg(huge)
        .query(&mut redis.conn())
        .unwrap();
    let fake = FakeJanssen::start();
    set_m2m_tokens(&fake, 100);
    let sidecars = [polling_sidecar(dir.path(), "a", &redis.url(), &fake)];
    the_leader(&sidecars, &[0]);
    // The holder's own handover replaces it once the first answer is polled.
    wait_handover_mark(&redis, 100);
    set_m2m_tokens(&fake, 130);
    wait_leader_counted(&sidecars[0], 30.0, 0.0);
    assert!(
        sidecars[0].log_text().contains("too large to be one"),
        "{}",
        sidecars[0].log_text()
    );
}

/// The lease script itself: a sidecar whose last round went unanswered (Redis ran it,
/// the reply was lost) asks again as not leading and gets the handover back, instead
/// of a bare renewal that would have skipped another holder's counts.
#[test]
fn the_lease_script_hands_the_handover_to_a_holder_that_did_not_see_its_take() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = RedisServer::start(dir.path()) else {
        return;
    };
    let mut conn = redis.conn();
    let script = redis::Script::new(jans_exporter::cluster::lease::TAKE_OR_RENEW);
    let round = |conn: &mut redis::Connection, me: &str, leading: bool| -> (i64, Vec<u8>) {
        let v: Vec<redis::Value> = script
            .key("{t}:lease")
            .key("{t}:handover")
            .arg(me)
            .arg(10_000)
            .arg("")
            .arg(60_000)
            .arg(1000)
            .arg(if leading { "0" } else { "1" })
            .invoke(conn)
            .unwrap();
        let state = redis::from_redis_value_ref(&v[0]).unwrap();
        let handover = v
            .get(1)
            .map(|h| redis::from_redis_value_ref(h).unwrap())
            .unwrap_or_default();
        (state, handover)
    };
    let _: () = redis::cmd("SET")
        .arg("{t}:handover")
        .arg("H")
        .query(&mut conn)
        .unwrap();
    assert_eq!(round(&mut conn, "a", false), (2, b"H".to_vec()), "taken");
    assert_eq!(round(&mut conn, "b", false), (0, Vec::new()), "held by a");
    assert_eq!(round(&mut conn, "a", true), (1, Vec::new()), "renewed");
    // a's reply was lost: it asks as not leading and is handed the handover again.
    assert_eq!(round(&mut conn, "a", false), (2, b"H".to_vec()));
    // Larger than the bound: taken, not sent.
    let _: () = redis::cmd("SET")
        .arg("{t}:handover")
        .arg(vec![b'x'; 2000])
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("DEL").arg("{t}:lease").query(&mut conn).unwrap();
    assert_eq!(round(&mut conn, "b", false), (3, Vec::new()));
    let holder: String = redis::cmd("GET").arg("{t}:lease").query(&mut conn).unwrap();
    assert_eq!(holder, "b");
}
