//! `jans-exporter healthcheck`: asks a running exporter's `/healthz` and exits 0 only on
//! 200, for Docker's `HEALTHCHECK` in an image that has no shell and no curl.
//!
//! With TLS in the web config it speaks TLS without checking the certificate: it asks
//! its own process on loopback whether it is alive and sends nothing secret. A web
//! config that requires client certificates cannot be asked this way.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

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
pub fn check(addr: SocketAddr, timeout: Duration, tls: bool) -> Result<(), HealthcheckError> {
    let connect = |source| HealthcheckError::Connect { addr, source };
    let no_answer = |source| HealthcheckError::NoAnswer { addr, source };
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(connect)?;
    stream.set_read_timeout(Some(timeout)).map_err(no_answer)?;
    stream.set_write_timeout(Some(timeout)).map_err(no_answer)?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let head = if tls {
        let config = tls_client().map_err(no_answer)?;
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(config, name)
            .map_err(|e| no_answer(std::io::Error::other(e)))?;
        exchange(rustls::StreamOwned::new(conn, stream), &request).map_err(no_answer)?
    } else {
        exchange(stream, &request).map_err(no_answer)?
    };
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

/// Writes the request and reads the start of the answer: the status line is all that
/// matters, and 1 KiB bounds what is read.
fn exchange(mut stream: impl Read + Write, request: &str) -> std::io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut head = Vec::with_capacity(1024);
    match stream.take(1024).read_to_end(&mut head) {
        Ok(_) => Ok(head),
        // A TLS peer that closes without close_notify after answering: keep the answer.
        Err(e) if !head.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(head),
        Err(e) => Err(e),
    }
}

fn tls_client() -> std::io::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts any server certificate, checking only that the handshake is signed by it.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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
