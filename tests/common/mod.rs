//! Test harness: starts the real binary on 127.0.0.1 with an ephemeral port, talks to
//! it over loopback with bounded timeouts, and always stops it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_jans-exporter");

pub struct Exporter {
    child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Polls `f` until it returns `Some`, at most `limit`.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 client for loopback tests (Content-Length bodies).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        body = dechunk(&body).ok_or_else(|| std::io::Error::other("bad chunked body"))?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Decodes a chunked HTTP/1.1 body.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

impl Exporter {
    /// Starts `jans-exporter run --config <config>` and waits until it listens.
    pub fn start(config: &Path) -> Exporter {
        Self::start_with(config, &[])
    }

    pub fn start_with(config: &Path, env: &[(&str, &str)]) -> Exporter {
        Self::start_args(config, &[], env)
    }

    /// `jans-exporter run --config <config> <args>`.
    pub fn start_args(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Exporter {
        Self::start_under(&[], config, args, env)
    }

    /// The same, run by `wrapper` (`prlimit --nofile=…`, `setpriv --reuid=…`).
    pub fn start_under(
        wrapper: &[&str],
        config: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Exporter {
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.args(["run", "--config"])
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start jans-exporter");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let addr = wait_for(Duration::from_secs(20), || {
            log.lock().unwrap().iter().find_map(|l| {
                let rest = l.split("addr=").nth(1)?;
                rest.split_whitespace().next()?.parse().ok()
            })
        });
        let Some(addr) = addr else {
            let _ = child.kill();
            panic!(
                "exporter did not start listening:\n{}",
                log.lock().unwrap().join("\n")
            );
        };
        Exporter { child, addr, log }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        http(self.addr, "GET", path, headers, b"").expect("http get")
    }

    /// The OpenMetrics exposition.
    pub fn metrics(&self) -> String {
        self.get(
            "/metrics",
            &[("Accept", "application/openmetrics-text; version=1.0.0")],
        )
        .text()
    }

    pub fn wait_ready(&self) {
        let ok = wait_for(Duration::from_secs(20), || {
            (self.get("/readyz", &[]).status == 200).then_some(())
        });
        assert!(
            ok.is_some(),
            "never ready: {}",
            self.get("/readyz", &[]).text()
        );
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        signal(&self.child, "TERM");
        self.wait(limit)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_for(limit, || self.child.try_wait().ok().flatten())
    }

    /// Peak resident memory of the exporter so far (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

/// `name{labels}` → value, from an exposition (either format).
pub fn samples(exposition: &str) -> BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

pub fn sample(exposition: &str, series: &str) -> f64 {
    samples(exposition)
        .get(series)
        .copied()
        .unwrap_or_else(|| panic!("no series {series}"))
}

/// Writes a config file listening on an ephemeral loopback port.
pub fn write_config(dir: &Path, paths: &[PathBuf], extra: &str) -> PathBuf {
    let paths: Vec<String> = paths
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[logs]\npaths = [{}]\npoll_interval = \"50ms\"\n[state]\ndir = {:?}\nflush_interval = \"200ms\"\n{extra}",
        paths.join(", "),
        dir.join("state").display().to_string()
    );
    let path = dir.join("jans-exporter.toml");
    std::fs::write(&path, text).unwrap();
    path
}

use jans_exporter::generate::{write_record, Generator, Layout, Spec, Truth, DEFAULT_ACTIVE};

/// Writes an audit log like log4j (O_APPEND, records in several writes), rotating by
/// rename or copytruncate on request, and keeps the truth of what it wrote.
pub struct LogWriter {
    pub dir: PathBuf,
    pub live: PathBuf,
    file: std::fs::File,
    records: Generator,
    rng: fastrand::Rng,
    pub truth: Truth,
    rotated: u32,
}

impl LogWriter {
    pub fn new(dir: &Path, seed: u64) -> LogWriter {
        LogWriter::named(dir, "audit.log", seed)
    }

    /// A writer of `dir/name`.
    pub fn named(dir: &Path, name: &str, seed: u64) -> LogWriter {
        let live = dir.join(name);
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&live)
            .unwrap();
        LogWriter {
            dir: dir.to_path_buf(),
            live,
            file,
            records: Generator::new(Spec {
                seed,
                ..Spec::default()
            }),
            rng: fastrand::Rng::with_seed(seed),
            truth: Truth::default(),
            rotated: 0,
        }
    }

    /// Appends `n` records, each split in up to three writes, with short pauses.
    pub fn write(&mut self, n: usize) {
        for i in 0..n {
            let r = self.records.next().unwrap();
            self.truth.observe(&r, &DEFAULT_ACTIVE);
            let mut bytes = Vec::new();
            write_record(&mut bytes, Layout::Text, &r, 0).unwrap();
            let a = self.rng.usize(..bytes.len());
            let b = self.rng.usize(a..bytes.len());
            for piece in [&bytes[..a], &bytes[a..b], &bytes[b..]] {
                self.file.write_all(piece).unwrap();
            }
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(self.rng.u64(0..15)));
            }
        }
    }

    /// Appends `n` records in bursts of `burst`, pausing `pause` between bursts.
    pub fn write_paced(&mut self, n: usize, burst: usize, pause: Duration) {
        let mut left = n;
        while left > 0 {
            let now = left.min(burst);
            self.write(now);
            left -= now;
            std::thread::sleep(pause);
        }
    }

    /// log4j-style: rename the live file away, continue in a new one.
    pub fn rotate_rename(&mut self) {
        self.rotated += 1;
        std::fs::rename(
            &self.live,
            self.dir.join(format!("audit.log.{}", self.rotated)),
        )
        .unwrap();
        self.file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.live)
            .unwrap();
    }

    /// Renames the live file to `name` in the same folder and continues in a new one.
    pub fn rotate_to(&mut self, name: &str) {
        self.rotated += 1;
        std::fs::rename(&self.live, self.dir.join(name)).unwrap();
        self.file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.live)
            .unwrap();
    }

    /// logrotate copytruncate.
    pub fn rotate_copytruncate(&mut self) {
        self.rotated += 1;
        std::fs::copy(
            &self.live,
            self.dir.join(format!("audit.log.{}", self.rotated)),
        )
        .unwrap();
        self.file.set_len(0).unwrap();
    }

    /// The glob that matches the live file and every rotated one.
    pub fn pattern(&self) -> PathBuf {
        self.dir.join("audit.log*")
    }
}

/// Sum of all series of a family.
pub fn family_sum(exposition: &str, family: &str) -> f64 {
    samples(exposition)
        .iter()
        .filter(|(k, _)| k.starts_with(family))
        .map(|(_, v)| v)
        .sum()
}

/// Asserts every exact counter equals the truth, and nothing was malformed.
pub fn assert_exact(metrics: &str, truth: &Truth) {
    use jans_exporter::event::Action;
    for a in Action::ALL {
        for (ok, outcome) in [(false, "failure"), (true, "success")] {
            let series = format!(
                "jans_audit_events_total{{action=\"{}\",outcome=\"{outcome}\"}}",
                a.as_str()
            );
            assert_eq!(
                sample(metrics, &series) as u64,
                truth.audit_count(a.as_str(), ok),
                "{series}"
            );
        }
    }
    for kind in ["user", "machine"] {
        for (ok, outcome) in [(false, "failure"), (true, "success")] {
            let series =
                format!("jans_token_requests_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}");
            let want = truth.token_requests.get(&(kind, ok)).copied().unwrap_or(0);
            assert_eq!(sample(metrics, &series) as u64, want, "{series}");
        }
    }
    let errors: Vec<(String, f64)> = samples(metrics)
        .into_iter()
        .filter(|(k, v)| k.starts_with("jans_exporter_parse_errors_total") && *v > 0.0)
        .collect();
    assert!(errors.is_empty(), "parse errors: {errors:?}");
}

/// Waits until the exporter has counted `records` audit records; returns the scrape.
pub fn wait_for_records(exporter: &Exporter, records: u64) -> String {
    let got = wait_for(Duration::from_secs(30), || {
        let m = exporter.metrics();
        (family_sum(&m, "jans_audit_events_total") as u64 >= records).then_some(m)
    });
    // Settle: a double count would show up as more than `records` shortly after.
    std::thread::sleep(Duration::from_millis(400));
    let m = exporter.metrics();
    assert!(
        got.is_some(),
        "never reached {records} records:\n{m}\n{}",
        exporter.log_text()
    );
    m
}

/// Whether a tool is installed. In CI (`CI` set) a missing tool fails the test: `.ci/run`
/// installs them all. Elsewhere the caller skips, with a notice.
/// Whether kustomize, or kubectl for its built-in kustomize, is here (the Helm
/// post-renderer needs one; in CI a missing one fails the test).
pub fn require_kustomize() -> bool {
    let kustomize = Command::new("sh")
        .args(["-c", "command -v kustomize"])
        .output()
        .is_ok_and(|o| o.status.success());
    kustomize || require_tool("kubectl")
}

/// `jans-exporter hash-token` of `token`: the line a static tokens file holds.
pub fn hash_token(token: &str) -> String {
    let mut hash = Command::new(BIN)
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    hash.stdin
        .take()
        .unwrap()
        .write_all(format!("{token}\n").as_bytes())
        .unwrap();
    String::from_utf8(hash.wait_with_output().unwrap().stdout).unwrap()
}

pub fn require_tool(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "{name} is required in CI"
    );
    if !found {
        eprintln!(
            "SKIPPED: {name} not installed (scripts/test-all.sh installs what the tests need)"
        );
    }
    found
}

/// Pipes an exposition through `promtool check metrics`: (passed, what it printed).
pub fn promtool_check_metrics(exposition: &[u8]) -> (bool, String) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition)
        .expect("write");
    let out = promtool.wait_with_output().expect("promtool output");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

/// An in-process fake upstream on 127.0.0.1 with an ephemeral port: its own runtime,
/// shared state built from its address, and `handle(state, request)` per request over
/// HTTP/1. Dropping it stops the runtime and with it the server.
pub struct FakeServer<S> {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<S>>,
    _runtime: tokio::runtime::Runtime,
}

pub type FakeResponse = hyper::Response<http_body_util::Full<bytes::Bytes>>;

impl<S: Send + 'static> FakeServer<S> {
    pub fn serve<F, Fut>(state: impl FnOnce(SocketAddr) -> S, handle: F) -> FakeServer<S>
    where
        F: Fn(Arc<Mutex<S>>, hyper::Request<hyper::body::Incoming>) -> Fut
            + Clone
            + Send
            + Sync
            + 'static,
        Fut: std::future::Future<Output = Result<FakeResponse, std::convert::Infallible>>
            + Send
            + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(state(addr)));
        let shared = Arc::clone(&state);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                let handle = handle.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| handle(Arc::clone(&state), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeServer {
            addr,
            state,
            _runtime: runtime,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut S) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}
