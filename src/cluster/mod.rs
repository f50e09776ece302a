//! The cluster of replicas through Redis: cluster-wide active users, and one poller of
//! the cluster-wide endpoints.
//!
//! Every `sync_interval` the syncer asks the store for this pod's registers (built as
//! Redis builds them, `store::redis_hll`) and merges the changed ones into the shared
//! keys in one script (`union`), reading back `PFCOUNT` of each. Merging is a
//! per-register maximum, so a repeated sync never double counts and a missed one is
//! repaired by the next; a Redis restarted empty is refilled by the live sidecars.
//! With upstream pollers configured it also keeps the lease that picks the one sidecar
//! polling the stat endpoint and the FIDO2 entries (`lease`). Results go back to the
//! store as events; scrapes never wait for Redis.

pub mod connection;
pub mod handover;
pub mod keys;
pub mod lease;
pub mod union;

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::ClusterConfig;
use crate::event::{Batch, ClusterErrorReason, ClusterReport, Event, Message, PeriodCount};
use connection::Redis;
use lease::Lease;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.redis_url: {0}")]
    Url(String),
    #[error("cannot read cluster.password_file {path}: {source}")]
    PasswordFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read cluster.ca_file {path}: {source}")]
    CaFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// A sync that failed, with its reason for the `reason` label.
#[derive(Debug)]
struct Failure(ClusterErrorReason, String);

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Failure {
        let reason = if e.is_timeout() {
            ClusterErrorReason::Timeout
        } else if e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
        {
            ClusterErrorReason::Auth
        } else if e.is_connection_refusal()
            || e.is_io_error()
            || e.is_connection_dropped()
            || matches!(
                e.kind(),
                redis::ErrorKind::ClusterConnectionNotFound
                    | redis::ErrorKind::MasterNameNotFoundBySentinel
                    | redis::ErrorKind::EmptySentinelList
            )
        {
            ClusterErrorReason::Connect
        } else {
            ClusterErrorReason::Response
        };
        Failure(reason, e.to_string())
    }
}

pub struct ClusterSync {
    redis: Redis,
    prefix: String,
    /// Names this process in Redis (random per start: two pods never share one): its
    /// staging key, and the lease's holder.
    instance: String,
    interval: Duration,
    timeout: Duration,
    retain_months: u32,
    sent: union::Sent,
    script: redis::Script,
    /// With cluster-wide pollers configured: the lease on them.
    lease: Option<Lease>,
}

impl ClusterSync {
    /// Prepares the connection (made lazily, re-made after every failure).
    pub fn new(config: &ClusterConfig, retain_months: u32) -> Result<ClusterSync, ClusterError> {
        Ok(ClusterSync {
            redis: Redis::new(config)?,
            prefix: config.key_prefix.clone(),
            instance: format!("{:016x}", fastrand::u64(..)),
            interval: config.sync_interval,
            timeout: config.timeout,
            retain_months,
            sent: union::Sent::default(),
            script: redis::Script::new(union::SCRIPT),
            lease: None,
        })
    }

    /// Also competes for the lease on the cluster-wide pollers, moving `gate`.
    pub fn with_lease(
        mut self,
        fido2_overlap: Duration,
        gate: tokio::sync::watch::Sender<crate::upstream::leader::Term>,
    ) -> ClusterSync {
        self.lease = Some(Lease::new(&self.prefix, self.interval, fido2_overlap, gate));
        self
    }

    /// Syncs every interval and keeps the lease until cancelled; the first of each
    /// right away. A clean stop lets the lease go with a last handover.
    pub async fn run(mut self, tx: mpsc::Sender<Message>, cancel: CancellationToken) {
        let mut failing = false;
        let mut lease_failing = false;
        let (lease_every, ..) = lease::timings(self.interval);
        let mut next_sync = tokio::time::Instant::now();
        let mut next_lease = next_sync;
        loop {
            let next = if self.lease.is_some() {
                next_sync.min(next_lease)
            } else {
                next_sync
            };
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = cancel.cancelled() => break,
            }
            let now = tokio::time::Instant::now();
            if now >= next_lease {
                if let Some(lease) = &mut self.lease {
                    let round = lease.round(&mut self.redis, &self.instance, &tx);
                    let outcome = tokio::select! {
                        r = tokio::time::timeout(self.timeout * 2, round) => r,
                        () = cancel.cancelled() => break,
                    };
                    let failure = match outcome {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(Failure::from(e)),
                        Err(_) => {
                            lease.lapse_if_due(&tx).await;
                            Some(Failure(ClusterErrorReason::Timeout, "no answer".into()))
                        }
                    };
                    match failure {
                        None => lease_failing = false,
                        Some(Failure(reason, why)) => {
                            if !lease_failing {
                                tracing::warn!(reason = reason.as_str(), error = %why, "the poller lease could not be taken or renewed; retrying every third of sync_interval");
                            }
                            lease_failing = true;
                            let report = Event::Cluster(ClusterReport::LeaseFailed { reason });
                            let batch = Message::Batch(Batch {
                                events: vec![report],
                                ..Batch::default()
                            });
                            if tx.send(batch).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                next_lease = now + lease_every;
            }
            if now < next_sync {
                continue;
            }
            next_sync = now + self.interval;
            let started = Instant::now();
            let outcome = tokio::select! {
                o = tokio::time::timeout(self.timeout * 2, self.sync_once(&tx)) => o,
                () = cancel.cancelled() => break,
            };
            let duration_seconds = started.elapsed().as_secs_f64();
            let report = match outcome {
                Ok(Ok(counts)) => {
                    if failing {
                        tracing::info!("cluster sync works again");
                    }
                    failing = false;
                    ClusterReport::Synced {
                        at_ms: crate::store::now_ms(),
                        duration_seconds,
                        counts,
                    }
                }
                Ok(Err(Failure(reason, why))) => {
                    if !failing {
                        tracing::warn!(reason = reason.as_str(), error = %why, "cluster sync failed; local figures go on, retrying every sync_interval");
                    }
                    failing = true;
                    ClusterReport::Failed {
                        reason,
                        duration_seconds,
                    }
                }
                Err(_) => {
                    if !failing {
                        tracing::warn!("cluster sync timed out; retrying every sync_interval");
                    }
                    failing = true;
                    ClusterReport::Failed {
                        reason: ClusterErrorReason::Timeout,
                        duration_seconds,
                    }
                }
            };
            let batch = Message::Batch(Batch {
                events: vec![Event::Cluster(report)],
                ..Batch::default()
            });
            if tx.send(batch).await.is_err() {
                return;
            }
        }
        // A clean stop merges what was counted since the last sync and lets the lease
        // go, within the pollers' shutdown grace; what does not fit is merged again
        // from the snapshot at the next start, and the lease expires by itself.
        let last = Duration::from_millis(400).min(self.timeout);
        let _ = tokio::time::timeout(last, self.sync_once(&tx)).await;
        if let Some(lease) = &mut self.lease {
            let release = lease.release(&mut self.redis, &self.instance, &tx);
            let _ = tokio::time::timeout(last, release).await;
        }
    }

    async fn sync_once(&mut self, tx: &mpsc::Sender<Message>) -> Result<Vec<PeriodCount>, Failure> {
        let (reply, registers) = tokio::sync::oneshot::channel();
        let store_gone = || Failure(ClusterErrorReason::Store, "the store is gone".into());
        tx.send(Message::ExportRegisters(reply))
            .await
            .map_err(|_| store_gone())?;
        let registers = registers.await.map_err(|_| store_gone())?;
        let now_ms = crate::store::now_ms();
        let plan = self
            .sent
            .plan(&registers, &self.prefix, now_ms, self.retain_months);
        let mut invocation = self.script.key(keys::staging(&self.prefix, &self.instance));
        for (_, key) in &plan.counted {
            invocation.key(key);
        }
        // The staging key outlives a script stopped half-way by at most this.
        invocation.arg(self.timeout.as_millis().max(1000) as u64 * 10);
        for m in &plan.merged {
            invocation
                .arg(m.counted + 2)
                .arg(m.expires_at_ms)
                .arg(m.hyll);
        }
        let counts: Vec<i64> = self.redis.invoke(&invocation).await?;
        if counts.len() != plan.counted.len() {
            return Err(Failure(
                ClusterErrorReason::Response,
                format!("{} counts for {} keys", counts.len(), plan.counted.len()),
            ));
        }
        Ok(self.sent.answered(&plan, &counts, now_ms))
    }
}
