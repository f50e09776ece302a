//! One Redis connection, whichever way Redis is deployed: a standalone server (or a
//! managed one behind one address), a Redis Cluster (commands routed by slot; every key
//! carries one hash tag, so each script runs on one node), or a master found through
//! Sentinel (asked again after every connection failure, so a failover is followed).
//! Everything is redis-rs's own: its connection manager, cluster client and sentinel
//! client; nothing here speaks RESP.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{Cmd, ConnectionInfo, IntoConnectionInfo, RedisFuture, RedisResult, Value};

use super::ClusterError;
use crate::config::{ClusterConfig, RedisMode};

/// What to connect to, decided once from the configuration.
enum Target {
    Standalone(ConnectionManager),
    Cluster(Box<redis::cluster::ClusterClient>),
    Sentinel(Box<redis::sentinel::SentinelClient>),
}

pub struct Redis {
    target: Target,
    /// The cluster's or the sentinel-found master's connection, made when first
    /// needed and dropped after a connection failure.
    live: Option<Live>,
    config: ConnectionManagerConfig,
}

enum Live {
    Cluster(ClusterConnection),
    Master(ConnectionManager),
}

/// The parsed addresses of `redis_url` (a comma-separated list in cluster and sentinel
/// modes), with the password of `password_file` put in.
fn addresses(config: &ClusterConfig) -> Result<Vec<ConnectionInfo>, ClusterError> {
    let url = config
        .redis_url
        .as_deref()
        .ok_or_else(|| ClusterError::Url("not set".into()))?;
    let password = match &config.password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|source| ClusterError::PasswordFile {
                    path: path.clone(),
                    source,
                })?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
        None => None,
    };
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            let info = u
                .into_connection_info()
                .map_err(|e| ClusterError::Url(e.to_string()))?;
            Ok(match (&password, config.mode) {
                // Sentinels have credentials of their own, in their URLs.
                (Some(p), RedisMode::Standalone | RedisMode::Cluster) => {
                    let settings = info.redis_settings().clone().set_password(p);
                    info.set_redis_settings(settings)
                }
                _ => info,
            })
        })
        .collect()
}

fn certificates(config: &ClusterConfig) -> Result<Option<redis::TlsCertificates>, ClusterError> {
    let Some(path) = &config.ca_file else {
        return Ok(None);
    };
    let pem = std::fs::read(path).map_err(|source| ClusterError::CaFile {
        path: path.clone(),
        source,
    })?;
    Ok(Some(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. })
}

impl Redis {
    /// Prepares the connection; nothing is dialled until the first command.
    pub fn new(config: &ClusterConfig) -> Result<Redis, ClusterError> {
        let url_error = |e: redis::RedisError| ClusterError::Url(e.to_string());
        let nodes = addresses(config)?;
        let first = nodes
            .first()
            .cloned()
            .ok_or_else(|| ClusterError::Url("no address".into()))?;
        let certs = certificates(config)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(config.timeout);
        let target = match config.mode {
            RedisMode::Standalone => {
                if nodes.len() > 1 {
                    return Err(ClusterError::Url(
                        "one address in standalone mode (several only with mode cluster or sentinel)"
                            .into(),
                    ));
                }
                let client = match certs {
                    Some(c) => redis::Client::build_with_tls(first, c),
                    None => redis::Client::open(first),
                }
                .map_err(url_error)?;
                Target::Standalone(
                    ConnectionManager::new_lazy_with_config(client, manager_config.clone())
                        .map_err(url_error)?,
                )
            }
            RedisMode::Cluster => {
                let mut builder = ClusterClientBuilder::new(nodes)
                    .connection_timeout(config.timeout)
                    .response_timeout(config.timeout)
                    .retries(1);
                if let Some(c) = certs {
                    builder = builder.certs(c);
                }
                Target::Cluster(Box::new(builder.build().map_err(url_error)?))
            }
            RedisMode::Sentinel => {
                let service = config.sentinel_master.as_deref().ok_or_else(|| {
                    ClusterError::Url("mode sentinel needs cluster.sentinel_master".into())
                })?;
                let tls = is_tls(&first);
                let mut builder = SentinelClientBuilder::new(
                    nodes.iter().map(|n| n.addr().clone()),
                    service,
                    SentinelServerType::Master,
                )
                .map_err(url_error)?;
                let sentinel_settings = first.redis_settings();
                if let Some(u) = sentinel_settings.username() {
                    builder = builder.set_client_to_sentinel_username(u);
                }
                if let Some(p) = sentinel_settings.password() {
                    builder = builder.set_client_to_sentinel_password(p);
                }
                // The master's password: the mounted one, else the sentinels'.
                let master_password = match &config.password_file {
                    Some(_) => addresses(&ClusterConfig {
                        mode: RedisMode::Standalone,
                        ..config.clone()
                    })?
                    .first()
                    .and_then(|n| n.redis_settings().password().map(str::to_string)),
                    None => sentinel_settings.password().map(str::to_string),
                };
                if let Some(p) = master_password {
                    builder = builder.set_client_to_redis_password(p);
                }
                if let Some(u) = sentinel_settings.username() {
                    builder = builder.set_client_to_redis_username(u);
                }
                builder = builder.set_client_to_redis_db(sentinel_settings.db());
                if tls {
                    builder = builder
                        .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure)
                        .set_client_to_redis_tls_mode(redis::TlsMode::Secure);
                }
                if let Some(c) = certs {
                    builder = builder
                        .set_client_to_sentinel_certificates(c.clone())
                        .set_client_to_redis_certificates(c);
                }
                Target::Sentinel(Box::new(builder.build().map_err(url_error)?))
            }
        };
        Ok(Redis {
            target,
            live: None,
            config: manager_config,
        })
    }

    /// The connection, made first if needed.
    async fn conn(&mut self) -> RedisResult<Conn<'_>> {
        match &mut self.target {
            Target::Standalone(m) => return Ok(Conn::Manager(m)),
            Target::Cluster(client) => {
                if self.live.is_none() {
                    self.live = Some(Live::Cluster(client.get_async_connection().await?));
                }
            }
            Target::Sentinel(sentinel) => {
                if self.live.is_none() {
                    let client = sentinel.async_get_client().await?;
                    self.live = Some(Live::Master(
                        ConnectionManager::new_with_config(client, self.config.clone()).await?,
                    ));
                }
            }
        }
        match &mut self.live {
            Some(Live::Cluster(c)) => Ok(Conn::Cluster(c)),
            Some(Live::Master(m)) => Ok(Conn::Manager(m)),
            None => Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "no connection",
            ))),
        }
    }

    /// After a connection failure the connection is dropped, so that the next call
    /// dials again (and asks the sentinels again).
    fn after<T>(&mut self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result {
            // READONLY: the master found earlier is a replica now (a failover).
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.code() == Some("READONLY")
            {
                self.live = None;
            }
        }
        result
    }

    /// Runs a script (`EVALSHA`, loading it when Redis does not know it).
    pub async fn invoke<T: redis::FromRedisValue>(
        &mut self,
        script: &redis::ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        let result = match self.conn().await {
            Ok(mut conn) => script.invoke_async(&mut conn).await,
            Err(e) => Err(e),
        };
        self.after(result)
    }
}

/// The connection a command runs on.
pub enum Conn<'a> {
    Manager(&'a mut ConnectionManager),
    Cluster(&'a mut ClusterConnection),
}

impl ConnectionLike for Conn<'_> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(m) => m.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(m) => m.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(m) => m.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
