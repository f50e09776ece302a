//! Durable state, end to end: no count lost or doubled across SIGKILL, SIGTERM,
//! rotation while down, corrupt snapshots and an unwritable state folder.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// The monthly active users a single uninterrupted read of `files` gives.
fn single_run_mau(pattern: &std::path::Path) -> Vec<(String, f64)> {
    let files: Vec<_> = glob::glob(&pattern.display().to_string())
        .unwrap()
        .flatten()
        .collect();
    let out = Command::new(BIN)
        .arg("replay")
        .args(&files)
        .output()
        .unwrap();
    assert!(out.status.success());
    monthly(&String::from_utf8(out.stdout).unwrap())
}

fn monthly(exposition: &str) -> Vec<(String, f64)> {
    samples(exposition)
        .into_iter()
        .filter(|(k, _)| k.starts_with("jans_monthly_active_users{"))
        .collect()
}

#[test]
fn sigkill_at_random_moments_while_a_writer_rotates_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut writer = LogWriter::new(&logs, 21);
    let config = write_config(dir.path(), &[writer.pattern()], "");

    let writing = std::thread::spawn(move || {
        for round in 0..6 {
            writer.write_paced(900, 90, Duration::from_millis(100));
            if round % 2 == 0 {
                writer.rotate_rename();
            } else {
                writer.rotate_copytruncate();
            }
        }
        writer.write(300);
        writer
    });

    let mut rng = fastrand::Rng::with_seed(99);
    let mut kills = 0;
    while !writing.is_finished() {
        let mut exporter = Exporter::start(&config);
        std::thread::sleep(Duration::from_millis(rng.u64(150..900)));
        exporter.kill9();
        kills += 1;
        // Sometimes stay down a while: rotations happen unseen.
        std::thread::sleep(Duration::from_millis(rng.u64(0..400)));
    }
    let writer = writing.join().unwrap();
    assert!(
        kills >= 3,
        "only {kills} kills: the writer was too fast to test anything"
    );
    eprintln!("{kills} SIGKILLs while writing");

    let exporter = Exporter::start(&config);
    let metrics = wait_for_records(&exporter, writer.truth.records);
    assert_exact(&metrics, &writer.truth);
    assert_eq!(monthly(&metrics), single_run_mau(&writer.pattern()));
    assert_eq!(
        sample(&metrics, "jans_exporter_state_load_failures_total"),
        0.0
    );
}

#[test]
fn clean_restarts_with_rotations_while_down_continue_counters_without_reset() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut writer = LogWriter::new(&logs, 22);
    let config = write_config(dir.path(), &[writer.pattern()], "");
    let mut seen = 0.0;
    for round in 0..4 {
        let mut exporter = Exporter::start(&config);
        exporter.wait_ready();
        // Right after a restart, counters are where they were: no reset, no doubling.
        let before = exporter.metrics();
        assert_eq!(
            family_sum(&before, "jans_audit_events_total") as u64,
            writer.truth.records,
            "round {round} on start\n{}",
            exporter.log_text()
        );
        assert!(family_sum(&before, "jans_audit_events_total") >= seen);
        writer.write(500);
        let m = wait_for_records(&exporter, writer.truth.records);
        assert_exact(&m, &writer.truth);
        seen = family_sum(&m, "jans_audit_events_total");
        let status = exporter
            .terminate(Duration::from_secs(5))
            .expect("exits within 5 s");
        assert!(status.success());
        // While down: rotate and keep writing.
        if round % 2 == 0 {
            writer.rotate_rename();
        } else {
            writer.rotate_copytruncate();
        }
        writer.write(200);
    }
    let exporter = Exporter::start(&config);
    let m = wait_for_records(&exporter, writer.truth.records);
    assert_exact(&m, &writer.truth);
    assert_eq!(monthly(&m), single_run_mau(&writer.pattern()));
    assert_eq!(sample(&m, "jans_exporter_log_files_lost_total"), 0.0);
    // The first save of this run comes one flush interval after start: wait for it
    // rather than for a fixed time (a loaded machine can take longer).
    let saved = wait_for(Duration::from_secs(10), || {
        (sample(&exporter.metrics(), "jans_exporter_state_bytes") > 0.0).then_some(())
    });
    assert!(
        saved.is_some(),
        "no snapshot written:\n{}",
        exporter.log_text()
    );
}

/// log4j rotates `jans-auth_audit.log` to `jans-auth_audit-<date>-<n>.log` while the
/// sidecar is down. The default patterns (rooted in a temporary folder) count every
/// record afterwards; the old default, the live file alone, loses what was written
/// before the rotation — and says so at start.
#[test]
fn log4j_rotation_while_down_is_exact_with_the_default_patterns() {
    let run = |patterns: Vec<String>| -> (String, u64, String) {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let mut writer = LogWriter::named(&logs, "jans-auth_audit.log", 41);
        let paths: Vec<std::path::PathBuf> = patterns
            .iter()
            .map(|p| std::path::PathBuf::from(p.replace("{logs}", &logs.display().to_string())))
            .collect();
        let config = write_config(dir.path(), &paths, "");
        writer.write(300);
        let mut exporter = Exporter::start(&config);
        wait_for_records(&exporter, 300);
        let status = exporter.terminate(Duration::from_secs(5)).expect("exits");
        assert!(status.success());
        // While down: more records, log4j's rename, records in the new live file.
        writer.write(200);
        writer.rotate_to("jans-auth_audit-2026-12-02-1.log");
        writer.write(100);
        let exporter = Exporter::start(&config);
        exporter.wait_ready();
        let m = wait_for(Duration::from_secs(10), || {
            let m = exporter.metrics();
            (family_sum(&m, "jans_audit_events_total") as u64 >= writer.truth.records).then_some(m)
        })
        .unwrap_or_else(|| exporter.metrics());
        if family_sum(&m, "jans_audit_events_total") as u64 == writer.truth.records {
            assert_exact(&m, &writer.truth);
        }
        (m, writer.truth.records, exporter.log_text())
    };

    let defaults = jans_exporter::config::default_log_paths("{logs}");
    let (m, written, log) = run(defaults);
    assert_eq!(family_sum(&m, "jans_audit_events_total") as u64, written);
    assert_eq!(sample(&m, "jans_exporter_log_files_lost_total"), 0.0);
    assert!(!log.contains("not the names log4j rotates it to"), "{log}");

    // The control: the live file alone cannot find the rotated one.
    let (m, written, log) = run(vec!["{logs}/jans-auth_audit.log".into()]);
    assert!(
        (family_sum(&m, "jans_audit_events_total") as u64) < written,
        "the live file alone lost nothing?"
    );
    assert!(log.contains("not the names log4j rotates it to"), "{log}");
}

#[test]
fn a_file_rotated_away_and_deleted_while_down_is_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut writer = LogWriter::new(&logs, 23);
    let config = write_config(dir.path(), &[writer.live.clone()], "");
    writer.write(50);
    let mut exporter = Exporter::start(&config);
    wait_for_records(&exporter, 50);
    assert!(exporter
        .terminate(Duration::from_secs(5))
        .unwrap()
        .success());
    writer.rotate_rename();
    std::fs::remove_file(logs.join("audit.log.1")).unwrap();
    writer.write(5);
    let exporter = Exporter::start(&config);
    let m = wait_for_records(&exporter, writer.truth.records);
    assert_eq!(sample(&m, "jans_exporter_log_files_lost_total"), 1.0);
    assert_exact(&m, &writer.truth);
}

#[test]
fn a_corrupt_snapshot_is_moved_aside_counted_and_the_exporter_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut writer = LogWriter::new(&logs, 24);
    writer.write(120);
    let config = write_config(dir.path(), &[writer.live.clone()], "");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("state.json"), b"JANSX-STATE 1 00 99\n{\"half\":").unwrap();
    let exporter = Exporter::start(&config);
    let m = wait_for_records(&exporter, 120);
    assert_exact(&m, &writer.truth);
    assert_eq!(sample(&m, "jans_exporter_state_load_failures_total"), 1.0);
    let aside: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.json.unusable-"))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside: {aside:?}");
    // And the fresh state is saved in its place.
    assert!(wait_for(Duration::from_secs(5), || state
        .join("state.json")
        .exists()
        .then_some(()))
    .is_some());
}

#[test]
fn an_unwritable_state_folder_counts_failures_and_readyz_says_so_while_ingestion_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut writer = LogWriter::new(&logs, 25);
    writer.write(80);
    // A regular file where the state folder's parent should be: nothing can be created
    // there, even by root.
    std::fs::write(dir.path().join("blocker"), b"").unwrap();
    let config = write_config(dir.path(), &[writer.live.clone()], "");
    let text = std::fs::read_to_string(&config).unwrap();
    let unwritable = dir.path().join("blocker").join("state");
    let text = text.replace(
        &format!("{:?}", dir.path().join("state").display().to_string()),
        &format!("{:?}", unwritable.display().to_string()),
    );
    std::fs::write(&config, text).unwrap();

    let exporter = Exporter::start(&config);
    let m = wait_for_records(&exporter, 80);
    assert_exact(&m, &writer.truth);
    let failures = wait_for(Duration::from_secs(10), || {
        let m = exporter.metrics();
        (sample(&m, "jans_exporter_state_save_failures_total") >= 2.0).then_some(())
    });
    assert!(failures.is_some(), "save failures not counted");
    let ready = exporter.get("/readyz", &[]);
    assert_eq!(ready.status, 503);
    assert!(
        ready.text().contains("state is not being saved"),
        "{}",
        ready.text()
    );
    assert_eq!(exporter.get("/healthz", &[]).status, 200);
    writer.write(10);
    assert_exact(&wait_for_records(&exporter, 90), &writer.truth);
}
