//! Wiring: sources → store → views, for the three commands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::{Event, FileCheckpoint, Leadership, Message};
use crate::source::tailer::{Sink, SinkClosed, StartAt, Tailer, TailerConfig};
use crate::store::persist::{Loaded, StateFile};
use crate::store::{self, Persistence, Published, Store, StoreConfig};
use crate::upstream::leader::LeaderGate;
use crate::upstream::{self, fido2::Fido2Poller, health::HealthPoller, stat::StatPoller};
use crate::view::auth::{Authorizer, Introspection, StaticTokens};
use crate::view::basic_auth::BasicAuth;
use crate::view::http::{self, HttpApp, PolledTarget};
use crate::view::metrics;
use crate::view::web_config::WebConfigWatch;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("a worker thread failed: {0}")]
    Thread(String),
    #[error("upstream client: {0}")]
    Upstream(String),
    #[error("cannot read {path}: {source}")]
    Input {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("web config: {0}")]
    WebConfig(#[from] crate::view::web_config::WebConfigError),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("okta: {0}")]
    Okta(String),
    #[error("the store thread died ({0}); the process exits so that it is restarted")]
    StoreDied(String),
}

fn store_config(config: &Config) -> StoreConfig {
    let mut c = StoreConfig::new(
        config.sketch.precision,
        config.sketch.retain_months as usize,
        &config.active_actions(),
    );
    c.max_clock_ahead_ms =
        i64::try_from(config.sketch.max_clock_ahead.as_millis()).unwrap_or(i64::MAX);
    c.server_time_zone = config.server_time_zone().unwrap_or(chrono_tz::Tz::UTC);
    c.cluster = config.cluster.redis_url.is_some();
    c.okta = config
        .okta
        .org_url
        .is_some()
        .then_some(config.okta.max_authorization_servers);
    c
}

fn tailer_config(config: &Config, patterns: Vec<String>, start_at: StartAt) -> TailerConfig {
    TailerConfig {
        patterns,
        format: config.forced_format(),
        start_at,
        poll_interval: config.logs.poll_interval,
        max_files: None,
        threads: config.backfill_threads(),
    }
}

/// Applies messages straight to a store: replay needs no threads.
impl Sink for Store {
    fn send(&mut self, message: Message) -> Result<(), SinkClosed> {
        self.apply(message);
        Ok(())
    }
}

/// Reads `files` once and returns the OpenMetrics exposition. Every file must be a
/// readable file: a typo must not print zeros.
pub fn replay(config: &Config, files: &[PathBuf]) -> Result<String, AppError> {
    for path in files {
        let check = std::fs::File::open(path).and_then(|f| {
            if f.metadata()?.is_file() {
                Ok(())
            } else {
                Err(std::io::Error::other("not a regular file"))
            }
        });
        check.map_err(|source| AppError::Input {
            path: path.clone(),
            source,
        })?;
    }
    let patterns = files
        .iter()
        .map(|f| glob::Pattern::escape(&f.display().to_string()))
        .collect();
    let mut tailer = Tailer::new(tailer_config(config, patterns, StartAt::Beginning));
    let mut store = Store::new(store_config(config));
    // Sending to a store cannot fail.
    let _ = tailer.read_once(&mut store);
    store.finish_input();
    let published = Arc::new(Published::default());
    published.store(store.view(store::now_ms()));
    Ok(metrics::encode_openmetrics(&metrics::registry(
        published, None,
    )))
}

/// Who may read the Janssen-compatible stat endpoint: static tokens if configured, else
/// introspection through the upstream client (when it has credentials), else nobody.
fn stat_authorizer(
    config: &Config,
    client: Option<&Arc<upstream::Client>>,
) -> Result<Option<Arc<dyn Authorizer>>, AppError> {
    if let Some(path) = &config.api.static_tokens_file {
        let tokens = StaticTokens::load(path).map_err(|e| AppError::Upstream(e.to_string()))?;
        return Ok(Some(Arc::new(tokens)));
    }
    Ok(client.filter(|c| c.has_credentials()).map(|c| {
        Arc::new(Introspection::new(
            Arc::clone(c),
            &config.upstream.stat_scope,
        )) as Arc<dyn Authorizer>
    }))
}

/// The one client to the auth server, shared by the pollers and introspection (one
/// discovery, one token cache, one connection pool).
fn upstream_client(config: &Config) -> Result<Option<Arc<upstream::Client>>, AppError> {
    let Some(base) = &config.upstream.base_url else {
        tracing::info!("upstream.base_url is not set: not polling the auth server");
        return Ok(None);
    };
    let client = upstream::Client::new(&config.upstream, base)
        .map_err(|e| AppError::Upstream(e.to_string()))?;
    Ok(Some(Arc::new(client)))
}

/// The upstream pollers the configuration asks for.
fn pollers(
    config: &Config,
    client: Option<&Arc<upstream::Client>>,
    fido2_synced_ms: Option<i64>,
) -> Result<Vec<Box<dyn upstream::Poller>>, AppError> {
    let u = &config.upstream;
    let Some(client) = client else {
        return Ok(Vec::new());
    };
    let mut pollers: Vec<Box<dyn upstream::Poller>> = vec![Box::new(HealthPoller {
        client: Arc::clone(client),
        interval: u.health_interval,
    })];
    if client.has_credentials() {
        pollers.push(Box::new(StatPoller {
            client: Arc::clone(client),
            interval: u.stat_interval,
        }));
    } else {
        tracing::warn!(
            "upstream.client_id is not set: token figures from the stat endpoint are off"
        );
    }
    if !u.fido2_interval.is_zero() {
        let fido2_client = match &u.fido2_base_url {
            Some(url) => Arc::new(
                upstream::Client::new(u, url).map_err(|e| AppError::Upstream(e.to_string()))?,
            ),
            None => Arc::clone(client),
        };
        let overlap = u.fido2_overlap.as_millis() as i64;
        let since_ms = fido2_synced_ms.map_or_else(
            || store::now_ms() - u.fido2_backfill.as_millis() as i64,
            |t| t - overlap,
        );
        pollers.push(Box::new(Fido2Poller {
            client: fido2_client,
            interval: u.fido2_interval,
            overlap: u.fido2_overlap,
            since_ms,
        }));
    }
    Ok(pollers)
}

/// Starts the pollers; cluster-wide ones poll while `gate` lets them.
fn start_pollers(
    pollers: Vec<Box<dyn upstream::Poller>>,
    gate: &LeaderGate,
    tx: &tokio::sync::mpsc::Sender<Message>,
    cancel: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Vec<PolledTarget> {
    let mut polled = Vec::with_capacity(pollers.len());
    for p in pollers {
        polled.push(PolledTarget {
            name: p.name(),
            url: p.target(),
            every: p.interval(),
        });
        tasks.spawn(upstream::run(p, tx.clone(), gate.clone(), cancel.clone()));
    }
    polled
}

/// Queues one event before anything else runs (the channel is empty at start).
fn send_now(tx: &tokio::sync::mpsc::Sender<Message>, event: Event) {
    let _ = tx.try_send(Message::Batch(crate::event::Batch {
        events: vec![event],
        ..Default::default()
    }));
}

/// The store from the saved snapshot, or a fresh one; never fails the start.
fn load_store(config: &Config, file: &StateFile) -> (Store, Vec<FileCheckpoint>) {
    match file.load() {
        Loaded::Fresh => {
            tracing::info!(path = %file.path().display(), "no saved state: starting fresh");
            (Store::new(store_config(config)), Vec::new())
        }
        Loaded::Snapshot(snapshot) => {
            let checkpoints = snapshot.checkpoints.clone();
            tracing::info!(path = %file.path().display(), files = checkpoints.len(), "continuing from saved state");
            (Store::restore(store_config(config), &snapshot), checkpoints)
        }
        Loaded::Failed { error, moved_to } => {
            tracing::error!(
                path = %file.path().display(),
                %error,
                moved_to = ?moved_to,
                "saved state is unusable: moved aside, starting fresh"
            );
            let mut store = Store::new(store_config(config));
            store.note_load_failure();
            (store, Vec::new())
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; running until killed");
            std::future::pending::<()>().await;
        }
    }
}

/// The sidecar: follows the logs and serves the endpoints until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), AppError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(AppError::Runtime)?;
    runtime.block_on(serve(config))
}

/// How long pollers get to finish after a shutdown signal before they are aborted.
const POLLER_GRACE: Duration = Duration::from_secs(1);

/// The state file's identity (size, modification time), to tell later whether this
/// process has replaced the snapshot it loaded.
fn file_stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// Runs the store on its own thread. If it dies (a panic), the views are told, every
/// task is cancelled, and a snapshot this process has not replaced since loading it —
/// the likely cause — is moved aside so that the restart does not repeat the death.
fn spawn_store(
    run: impl FnOnce() -> Store + Send + 'static,
    published: Arc<Published>,
    state: Option<StateFile>,
    cancel: CancellationToken,
) -> Result<tokio::sync::oneshot::Receiver<Result<(), String>>, AppError> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let loaded_stamp = state.as_ref().and_then(|s| file_stamp(&s.path()));
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
            let result = match outcome {
                Ok(_) => Ok(()),
                Err(panic) => {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into());
                    published.mark_failed(&why);
                    if let Some(state) = &state {
                        if loaded_stamp.is_some() && file_stamp(&state.path()) == loaded_stamp {
                            let moved = state.move_aside();
                            tracing::error!(moved_to = ?moved, "the snapshot loaded at start was moved aside");
                        }
                    }
                    cancel.cancel();
                    Err(why)
                }
            };
            let _ = done_tx.send(result);
        })
        .map_err(|e| AppError::Thread(e.to_string()))?;
    Ok(done_rx)
}

async fn serve(config: Config) -> Result<(), AppError> {
    let addr = config.server.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Listen { addr, source })?;
    // The bound address, so `:0` (tests) reports the port chosen.
    let addr = listener
        .local_addr()
        .map_err(|source| AppError::Listen { addr, source })?;
    tracing::info!(%addr, paths = ?config.logs.paths, "jans-exporter {} listening", env!("CARGO_PKG_VERSION"));
    for (live, rotated) in crate::config::rotations_not_matched(&config.logs.paths) {
        tracing::warn!(
            live = %live,
            rotated_example = %rotated,
            "logs.paths follows this log but not the names log4j rotates it to: records written between a rotation and a restart of the sidecar would be lost; add a pattern such as `<dir>/<name>*.log`"
        );
    }

    // The one shutdown primitive: every task and thread holds this token.
    let cancel = CancellationToken::new();
    let state_file = StateFile::new(&config.state.dir);
    let (store, checkpoints) = load_store(&config, &state_file);
    let closed: Vec<FileCheckpoint> = store.closed_files().cloned().collect();
    let persistence = Persistence {
        file: state_file,
        every: config.state.flush_interval,
    };
    let fido2_synced_ms = store.fido2_synced_ms();
    let okta_next = store.okta_next();
    let published = Arc::new(Published::default());
    let (tx, rx) = tokio::sync::mpsc::channel::<Message>(64);
    let client = upstream_client(&config)?;
    if let Some(c) = &client {
        c.record_calls_to(&tx);
    }
    let pollers = pollers(&config, client.as_ref(), fido2_synced_ms)?;
    let mut tasks = tokio::task::JoinSet::new();
    let cluster = match config.cluster.redis_url {
        Some(_) => Some(
            crate::cluster::ClusterSync::new(&config.cluster, config.sketch.retain_months)
                .map_err(|e| AppError::Cluster(e.to_string()))?,
        ),
        None => None,
    };
    // With several replicas, one sidecar at a time polls what the whole cluster shares.
    let cluster_wide = pollers.iter().any(|p| p.cluster_wide());
    let (gate, cluster) = match (cluster, cluster_wide) {
        (Some(sync), true) => {
            let (lease, gate) = LeaderGate::new();
            (
                gate,
                Some(sync.with_lease(config.upstream.fido2_overlap, lease)),
            )
        }
        (sync, cluster_wide) => {
            if cluster_wide {
                send_now(&tx, Event::Leadership(Box::new(Leadership::Alone)));
            }
            (LeaderGate::always(), sync)
        }
    };
    let polled = start_pollers(pollers, &gate, &tx, &cancel, &mut tasks);
    if let Some(sync) = cluster {
        tasks.spawn(sync.run(tx.clone(), cancel.clone()));
    }
    if config.okta.org_url.is_some() {
        let okta = crate::okta::OktaSource::new(&config.okta)
            .map_err(|e| AppError::Okta(e.to_string()))?;
        tasks.spawn(okta.run(okta_next, tx.clone(), cancel.clone()));
    }
    let store_published = Arc::clone(&published);
    let mut store_done = spawn_store(
        move || store::run(store, rx, &store_published, Some(persistence)),
        Arc::clone(&published),
        Some(StateFile::new(&config.state.dir)),
        cancel.clone(),
    )?;

    let mut tailer = Tailer::new(tailer_config(
        &config,
        config.logs.paths.clone(),
        config.logs.start_at,
    ))
    .with_checkpoints(checkpoints)
    .with_closed_files(closed)
    .with_silence_warnings(config.logs.stale_after)
    .with_stop(cancel.clone());
    if config.logs.watch {
        tailer = tailer.with_wakeups();
    }
    let tailer_cancel = cancel.clone();
    let tailer_thread = std::thread::Builder::new()
        .name("tailer".into())
        .spawn(move || {
            let mut tx = tx;
            tailer.run(&mut tx, &tailer_cancel);
        })
        .map_err(|e| AppError::Thread(e.to_string()))?;

    let process: Arc<dyn metrics::ProcessInfo> = Arc::new(crate::process::ProcSelf);
    let app = Arc::new(HttpApp {
        registry: metrics::registry(Arc::clone(&published), Some(process)),
        published,
        stat_auth: stat_authorizer(&config, client.as_ref())?,
        health_stale_after: config.upstream.health_interval * 3,
        compat_slots: tokio::sync::Semaphore::new(64),
        error_reason: config.api.error_reason,
        polled,
        web: match &config.server.web_config_file {
            Some(path) => WebConfigWatch::load(path)?,
            None => WebConfigWatch::none(),
        },
        basic_auth: BasicAuth::default(),
    });
    let signal_cancel = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal_cancel.cancel();
    });
    // The store may die while serving: that ends the process too.
    let mut store_result: Option<Result<(), String>> = None;
    let served_cancel = cancel.clone();
    tokio::select! {
        () = http::serve(listener, app, served_cancel.cancelled_owned()) => {}
        done = &mut store_done => {
            store_result = Some(done.unwrap_or(Err("store thread vanished".into())));
            cancel.cancel();
        }
    }
    cancel.cancel();

    // Pollers get a moment to finish a send, then are aborted (a hung upstream
    // must not hold the shutdown).
    let drained = tokio::time::timeout(POLLER_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    drop(client);
    let tailer_ok = tokio::task::spawn_blocking(move || tailer_thread.join().is_ok())
        .await
        .unwrap_or(false);
    let store_result = match store_result {
        Some(r) => r,
        None => store_done
            .await
            .unwrap_or(Err("store thread vanished".into())),
    };
    match (tailer_ok, store_result) {
        (_, Err(why)) => Err(AppError::StoreDied(why)),
        (false, _) => Err(AppError::Thread("the tailer panicked".into())),
        (true, Ok(())) => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    /// An empty store with its snapshot saved in a fresh folder.
    fn saved_store() -> (tempfile::TempDir, StateFile, Store) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(dir.path());
        let store = Store::new(StoreConfig::new(14, 13, &[]));
        state.save(&store.snapshot_out()).unwrap();
        (dir, state, store)
    }

    #[test]
    fn a_dying_store_is_reported_cancels_everything_and_moves_its_snapshot_aside() {
        let (dir, state, _) = saved_store();
        let published = Arc::new(Published::default());
        let cancel = CancellationToken::new();
        let done = spawn_store(
            || panic!("index out of bounds in a sketch"),
            Arc::clone(&published),
            Some(StateFile::new(dir.path())),
            cancel.clone(),
        )
        .unwrap();
        let result = done.blocking_recv().unwrap();
        assert_eq!(result, Err("index out of bounds in a sketch".to_string()));
        assert!(cancel.is_cancelled());
        assert_eq!(
            published.failure().as_deref(),
            Some("index out of bounds in a sketch")
        );
        assert!(!state.path().exists(), "the loaded snapshot is moved aside");
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("state.json.unusable-")
            })
            .count();
        assert_eq!(aside, 1);
    }

    #[test]
    fn a_store_that_ends_normally_keeps_its_snapshot() {
        let (dir, state, store) = saved_store();
        let published = Arc::new(Published::default());
        let cancel = CancellationToken::new();
        let done = spawn_store(
            move || store,
            Arc::clone(&published),
            Some(StateFile::new(dir.path())),
            cancel.clone(),
        )
        .unwrap();
        assert_eq!(done.blocking_recv().unwrap(), Ok(()));
        assert!(!cancel.is_cancelled());
        assert_eq!(published.failure(), None);
        assert!(state.path().exists());
    }
}
