//! A real `redis-server` from Debian's packages on a free loopback port, without
//! persistence, stopped by PID when dropped.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// `None` (a loud skip) when redis-server is missing outside CI.
    pub fn start(dir: &Path) -> Option<RedisServer> {
        if !super::require_tool("redis-server") {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Some(RedisServer::start_on(dir, port))
    }

    /// A new, empty server on `port` (a restart of one that was stopped).
    pub fn start_on(dir: &Path, port: u16) -> RedisServer {
        RedisServer::start_args(dir, port, &[])
    }

    /// A server on `port` with more arguments (cluster mode, a sentinel's config,
    /// which must come first).
    pub fn start_args(dir: &Path, port: u16, extra: &[&str]) -> RedisServer {
        let child = Command::new("redis-server")
            .args(extra)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &dir.display().to_string(),
                "--logfile",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = RedisServer {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = server.client().get_connection() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }

    pub fn conn(&self) -> redis::Connection {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }

    /// SIGKILL: a crash, not a shutdown.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Redis Cluster of three masters on loopback, slots spread by `redis-cli --cluster
/// create`, stopped with its nodes.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(dir: &Path) -> Option<RedisCluster> {
        if !super::require_tool("redis-server") || !super::require_tool("redis-cli") {
            return None;
        }
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = free_port();
                let conf = format!("nodes-{port}.conf");
                RedisServer::start_args(
                    dir,
                    port,
                    &["--cluster-enabled", "yes", "--cluster-config-file", &conf],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in &nodes {
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut n.conn())
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster never became ok: {info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(RedisCluster { nodes })
    }

    /// The node serving `slot`.
    pub fn owner_of(&self, slot: u16) -> &RedisServer {
        let slots: Vec<(i64, i64, Vec<redis::Value>)> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut self.nodes[0].conn())
            .unwrap();
        let port = slots
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&i64::from(slot)))
            .and_then(|(_, _, node)| match node.get(1) {
                Some(redis::Value::Int(p)) => Some(*p as u16),
                _ => None,
            })
            .unwrap();
        self.nodes.iter().find(|n| n.port == port).unwrap()
    }
}

/// A sentinel on loopback watching the master at `master_port` as `name`.
pub fn start_sentinel(dir: &Path, master_port: u16, name: &str) -> RedisServer {
    let port = free_port();
    let conf = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\nsentinel monitor {name} 127.0.0.1 {master_port} 1\nsentinel down-after-milliseconds {name} 1000\n"
        ),
    )
    .unwrap();
    let conf = conf.display().to_string();
    RedisServer::start_args(dir, port, &[&conf, "--sentinel"])
}
