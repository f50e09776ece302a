//! `jans-exporter healthcheck`: asks a running exporter's `/healthz` and exits 0 only on
//! 200, for Docker's `HEALTHCHECK` in an image that has no shell and no curl.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    #[error("cannot reach {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no answer from {addr}: {source}")]
    NoAnswer {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr} answered `{status_line}`")]
    Unhealthy {
        addr: SocketAddr,
        status_line: String,
    },
}

/// The address to ask: the listen address, with an unspecified host (`0.0.0.0`, `::`)
/// replaced by the loopback of its family.
pub fn target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// One `GET /healthz` within `timeout` for each of connect, write and read; the first
/// line of the answer must say 200.
pub fn check(addr: SocketAddr, timeout: Duration) -> Result<(), HealthcheckError> {
    let connect = |source| HealthcheckError::Connect { addr, source };
    let no_answer = |source| HealthcheckError::NoAnswer { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(connect)?;
    stream.set_read_timeout(Some(timeout)).map_err(no_answer)?;
    stream.set_write_timeout(Some(timeout)).map_err(no_answer)?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(no_answer)?;
    // The status line is all that matters; 1 KiB bounds what is read.
    let mut head = Vec::with_capacity(1024);
    stream
        .take(1024)
        .read_to_end(&mut head)
        .map_err(no_answer)?;
    let status_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let mut fields = status_line.split(' ');
    let healthy =
        fields.next().is_some_and(|v| v.starts_with("HTTP/1.")) && fields.next() == Some("200");
    if healthy {
        Ok(())
    } else {
        Err(HealthcheckError::Unhealthy { addr, status_line })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_asked_on_its_loopback() {
        let t = |s: &str| target(s.parse().unwrap()).to_string();
        assert_eq!(t("0.0.0.0:9781"), "127.0.0.1:9781");
        assert_eq!(t("[::]:9781"), "[::1]:9781");
        assert_eq!(t("10.1.2.3:80"), "10.1.2.3:80");
    }
}
