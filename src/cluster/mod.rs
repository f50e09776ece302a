//! Cluster-wide active users through Redis's own HyperLogLog.
//!
//! Every `sync_interval` the syncer asks the store for this pod's registers (built as
//! Redis builds them, `store::redis_hll`), and in one transaction per sync writes each
//! period's registers to a staging key, `PFMERGE`s it into the period's shared key,
//! deletes the staging key, sets the shared key's expiry and reads `PFCOUNT`. Merging
//! is a per-register maximum, so a repeated sync never double counts and a missed one
//! is repaired by the next; a Redis restarted empty is refilled by the live sidecars.
//! The result goes back to the store as an event; scrapes never wait for Redis.

pub mod keys;

use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

use crate::config::ClusterConfig;
use crate::event::{
    Batch, ClusterErrorReason, ClusterReport, Event, Message, PeriodKind, PeriodRegisters,
};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.redis_url: {0}")]
    Url(String),
    #[error("cannot read cluster.password_file {path}: {source}")]
    PasswordFile {
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
        } else if e.is_connection_refusal() || e.is_io_error() || e.is_connection_dropped() {
            ClusterErrorReason::Connect
        } else {
            ClusterErrorReason::Response
        };
        Failure(reason, e.to_string())
    }
}

pub struct ClusterSync {
    manager: ConnectionManager,
    prefix: String,
    /// Names this process's staging keys (random per start: two pods never share one).
    instance: String,
    interval: Duration,
    timeout: Duration,
    retain_months: u32,
}

impl ClusterSync {
    /// Prepares the connection (made lazily, re-made after every failure).
    pub fn new(config: &ClusterConfig, retain_months: u32) -> Result<ClusterSync, ClusterError> {
        let url = config
            .redis_url
            .as_deref()
            .ok_or_else(|| ClusterError::Url("not set".into()))?;
        let mut info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| ClusterError::Url(e.to_string()))?;
        if let Some(path) = &config.password_file {
            let password =
                std::fs::read_to_string(path).map_err(|source| ClusterError::PasswordFile {
                    path: path.clone(),
                    source,
                })?;
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.trim_end_matches(['\r', '\n']));
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| ClusterError::Url(e.to_string()))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(config.timeout);
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| ClusterError::Url(e.to_string()))?;
        Ok(ClusterSync {
            manager,
            prefix: config.key_prefix.clone(),
            instance: format!("{:016x}", fastrand::u64(..)),
            interval: config.sync_interval,
            timeout: config.timeout,
            retain_months,
        })
    }

    /// Syncs every interval until cancelled; the first sync right away.
    pub async fn run(mut self, tx: tokio::sync::mpsc::Sender<Message>, cancel: CancellationToken) {
        let mut failing = false;
        loop {
            let started = Instant::now();
            let outcome = tokio::select! {
                o = tokio::time::timeout(self.timeout * 2, self.sync_once(&tx)) => o,
                () = cancel.cancelled() => return,
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
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    async fn sync_once(
        &mut self,
        tx: &tokio::sync::mpsc::Sender<Message>,
    ) -> Result<Vec<(PeriodKind, u32, u64)>, Failure> {
        let (reply, registers) = tokio::sync::oneshot::channel();
        let store_gone = || Failure(ClusterErrorReason::Store, "the store is gone".into());
        tx.send(Message::ExportRegisters(reply))
            .await
            .map_err(|_| store_gone())?;
        let registers = registers.await.map_err(|_| store_gone())?;
        let plan = self.plan(&registers, crate::store::now_ms());
        if plan.is_empty() {
            // Nothing to merge yet: still find out whether Redis answers.
            redis::cmd("PING")
                .query_async::<String>(&mut self.manager)
                .await?;
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (p, shared, staging, expires_at_ms) in &plan {
            pipe.cmd("SET")
                .arg(staging)
                .arg(&p.hyll)
                .arg("PX")
                .arg(self.timeout.as_millis().max(1000) as u64 * 10)
                .ignore()
                .cmd("PFMERGE")
                .arg(shared)
                .arg(staging)
                .ignore()
                .cmd("DEL")
                .arg(staging)
                .ignore()
                .cmd("PEXPIREAT")
                .arg(shared)
                .arg(*expires_at_ms)
                .ignore()
                .cmd("PFCOUNT")
                .arg(shared);
        }
        let counts: Vec<u64> = pipe.query_async(&mut self.manager).await?;
        if counts.len() != plan.len() {
            return Err(Failure(
                ClusterErrorReason::Response,
                format!("{} counts for {} periods", counts.len(), plan.len()),
            ));
        }
        Ok(plan
            .iter()
            .zip(counts)
            .map(|((p, ..), n)| (p.kind, p.key, n))
            .collect())
    }

    /// The periods worth writing (not yet expired), with their keys and expiry.
    fn plan<'a>(
        &self,
        registers: &'a [PeriodRegisters],
        now_ms: i64,
    ) -> Vec<(&'a PeriodRegisters, String, String, i64)> {
        registers
            .iter()
            .filter_map(|p| {
                let label = keys::period_label(p.kind, p.key)?;
                let expires = keys::expires_at_ms(p.kind, p.key, self.retain_months)?;
                (expires > now_ms).then(|| {
                    (
                        p,
                        keys::shared(&self.prefix, p.kind, &label),
                        keys::staging(&self.prefix, &self.instance, p.kind, &label),
                        expires,
                    )
                })
            })
            .collect()
    }
}
