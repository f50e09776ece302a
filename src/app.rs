//! Wiring: sources → store → views, for the three commands.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::event::{FileCheckpoint, Message};
use crate::source::tailer::{Sink, SinkClosed, StartAt, Tailer, TailerConfig};
use crate::store::persist::{Loaded, StateFile};
use crate::store::{self, Persistence, Published, Store, StoreConfig};
use crate::upstream::{self, fido2::Fido2Poller, health::HealthPoller, stat::StatPoller};
use crate::view::auth::{Authorizer, Introspection, StaticTokens};
use crate::view::http::{self, HttpApp};
use crate::view::metrics;

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
}

fn store_config(config: &Config) -> StoreConfig {
    StoreConfig::new(
        config.sketch.precision,
        config.sketch.retain_months as usize,
        &config.active_actions(),
    )
}

fn tailer_config(config: &Config, patterns: Vec<String>, start_at: StartAt) -> TailerConfig {
    TailerConfig {
        patterns,
        format: config.forced_format(),
        start_at,
        poll_interval: config.logs.poll_interval,
    }
}

/// Applies messages straight to a store: replay needs no threads.
impl Sink for Store {
    fn send(&mut self, message: Message) -> Result<(), SinkClosed> {
        self.apply(message);
        Ok(())
    }
}

/// Reads `files` once and returns the OpenMetrics exposition.
pub fn replay(config: &Config, files: &[PathBuf]) -> String {
    let patterns = files
        .iter()
        .map(|f| glob::Pattern::escape(&f.display().to_string()))
        .collect();
    let mut tailer = Tailer::new(tailer_config(config, patterns, StartAt::Beginning));
    let mut store = Store::new(store_config(config));
    // Sending to a store cannot fail.
    let _ = tailer.read_once(&mut store);
    let published = Arc::new(Published::default());
    published.store(store.view(store::now_ms()));
    metrics::encode_openmetrics(&metrics::registry(published, None))
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

/// Starts the upstream pollers the configuration asks for.
fn start_pollers(
    config: &Config,
    client: Option<&Arc<upstream::Client>>,
    fido2_synced_ms: Option<i64>,
    tx: &tokio::sync::mpsc::Sender<Message>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, AppError> {
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
    Ok(pollers
        .into_iter()
        .map(|p| tokio::spawn(upstream::run(p, tx.clone(), stop.clone())))
        .collect())
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

    let state_file = StateFile::new(&config.state.dir);
    let (store, checkpoints) = load_store(&config, &state_file);
    let persistence = Persistence {
        file: state_file,
        every: config.state.flush_interval,
    };
    let fido2_synced_ms = store.fido2_synced_ms();
    let published = Arc::new(Published::default());
    let (tx, rx) = tokio::sync::mpsc::channel::<Message>(64);
    let (poll_stop, poll_stop_rx) = tokio::sync::watch::channel(false);
    let client = upstream_client(&config)?;
    let pollers = start_pollers(&config, client.as_ref(), fido2_synced_ms, &tx, poll_stop_rx)?;
    let store_published = Arc::clone(&published);
    let store_thread = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || store::run(store, rx, &store_published, Some(persistence)))
        .map_err(|e| AppError::Thread(e.to_string()))?;

    let stop = Arc::new(AtomicBool::new(false));
    let mut tailer = Tailer::new(tailer_config(
        &config,
        config.logs.paths.clone(),
        config.logs.start_at,
    ))
    .with_checkpoints(checkpoints)
    .with_stop(Arc::clone(&stop));
    let tailer_stop = Arc::clone(&stop);
    let tailer_thread = std::thread::Builder::new()
        .name("tailer".into())
        .spawn(move || {
            let mut tx = tx;
            tailer.run(&mut tx, &tailer_stop);
        })
        .map_err(|e| AppError::Thread(e.to_string()))?;

    let process: Arc<dyn metrics::ProcessInfo> = Arc::new(crate::process::ProcSelf);
    let app = Arc::new(HttpApp {
        registry: metrics::registry(Arc::clone(&published), Some(process)),
        published,
        stat_auth: stat_authorizer(&config, client.as_ref())?,
        health_stale_after: config.upstream.health_interval * 3,
        compat_slots: tokio::sync::Semaphore::new(64),
    });
    http::serve(listener, app, shutdown_signal()).await;

    stop.store(true, Ordering::Relaxed);
    let _ = poll_stop.send(true);
    for poller in pollers {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), poller).await;
    }
    let joined = tokio::task::spawn_blocking(move || {
        let tailer = tailer_thread.join();
        let store = store_thread.join();
        (tailer.is_ok(), store.is_ok())
    })
    .await;
    match joined {
        Ok((true, true)) => {
            tracing::info!("stopped");
            Ok(())
        }
        _ => Err(AppError::Thread("a worker panicked during shutdown".into())),
    }
}
