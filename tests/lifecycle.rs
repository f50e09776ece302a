//! How the process starts and stops: `replay` refuses what it cannot read, and SIGTERM
//! exits promptly with the final snapshot saved even while the upstream hangs.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn replay_of_a_missing_file_or_a_folder_exits_non_zero_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = LogWriter::new(dir.path(), 3);
    writer.write(10);
    let missing = dir.path().join("no-such-audit.log");
    for bad in [&missing, &dir.path().to_path_buf()] {
        let out = Command::new(BIN)
            .arg("replay")
            .arg(&writer.live)
            .arg(bad)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad:?}: {stderr}");
        assert!(
            stderr.contains(&bad.display().to_string()),
            "names the file: {stderr}"
        );
        assert!(out.stdout.is_empty(), "no figures printed for a failed run");
    }
    // The good file alone replays.
    let out = Command::new(BIN)
        .arg("replay")
        .arg(&writer.live)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_exact(&String::from_utf8(out.stdout).unwrap(), &writer.truth);
}

/// A loopback listener that accepts every connection and never answers a byte.
struct HungUpstream {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl HungUpstream {
    fn start() -> HungUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (Arc::clone(&accepted), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !done.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        held.push(stream);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        HungUpstream {
            addr,
            accepted,
            stop,
        }
    }
}

impl Drop for HungUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn sigterm_exits_zero_within_five_seconds_with_the_snapshot_saved_while_upstream_hangs() {
    let upstream = HungUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut writer = LogWriter::new(&logs, 8);
    writer.write(500);
    // A long flush interval: only the final save can have written these records.
    let config = write_config(
        dir.path(),
        &[writer.pattern()],
        &format!(
            "[upstream]\nbase_url = \"http://{}\"\nclient_id = \"sidecar\"\nclient_secret = \"s\"\ntimeout = \"60s\"\nhealth_interval = \"1s\"\n",
            upstream.addr
        ),
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("flush_interval = \"200ms\"", "flush_interval = \"1h\"");
    std::fs::write(&config, text).unwrap();

    let mut exporter = Exporter::start(&config);
    wait_for_records(&exporter, writer.truth.records);
    writer.write(50);
    wait_for_records(&exporter, writer.truth.records);
    let hung = wait_for(Duration::from_secs(20), || {
        (upstream.accepted.load(Ordering::Relaxed) >= 2).then_some(())
    });
    assert!(hung.is_some(), "the pollers never reached the upstream");

    let started = Instant::now();
    let status = exporter.terminate(Duration::from_secs(30));
    let took = started.elapsed();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        exporter.log_text()
    );
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?}:\n{}",
        exporter.log_text()
    );

    // A fresh process without upstream continues from that snapshot alone.
    let plain = write_config(dir.path(), &[writer.pattern()], "");
    let text = std::fs::read_to_string(&plain)
        .unwrap()
        .replace("flush_interval = \"200ms\"", "flush_interval = \"1h\"");
    std::fs::write(&plain, text).unwrap();
    std::fs::remove_file(&writer.live).unwrap();
    let exporter = Exporter::start(&plain);
    exporter.wait_ready();
    let metrics = exporter.metrics();
    assert_exact(&metrics, &writer.truth);
    assert_eq!(
        sample(&metrics, "jans_exporter_log_files_lost_total"),
        1.0,
        "the live file went away while down; its records came from the snapshot"
    );
}
