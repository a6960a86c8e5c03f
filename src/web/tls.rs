//! Herald's own HTTPS: rustls (ring), ALPN `h2` and `http/1.1`, and a certificate that reloads
//! without dropping anything.
//!
//! Over HTTP/2 every tab's stream is one HTTP/2 stream on the browser's one connection, so the
//! six-connections-per-host limit of HTTP/1.1 no longer caps the tabs of a browser. A TLS
//! connection is served by hyper, HTTP/2 or HTTP/1.1 as ALPN chose, with the limits of plain
//! connections: the handshake and every request head within the header timeout, heads no
//! larger than `HERALD_MAX_HEADER_BYTES` (the header list on HTTP/2), the send timeout on the
//! socket under TLS, HTTP/2 pings that close a connection whose peer has gone, and at shutdown
//! a graceful close bounded by the grace. Streams here are response bodies read by hyper (there
//! is no socket of their own for the fan-out to write to).
//!
//! The certificate sits behind a resolver that hands each handshake the current one; [`Tls::reload`]
//! (on SIGHUP) reads the files again and swaps it, so new connections get the new certificate
//! while established ones, and the streams on them, go on. A reload that fails keeps the old
//! certificate and says why.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::client::Peer;
use super::connection::{Replay, Shared, hyper_builder, service};
use super::wire::{self, Stop};
use crate::config::ConnectionLimits;

/// HTTP/2 pings on an idle connection this often; a peer that does not answer within
/// [`PING_TIMEOUT`] is gone, and its connection (with every stream on it) is closed.
const PING_EVERY: Duration = Duration::from_secs(20);
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// HTTPS as configured: the acceptor for new connections, and the certificate it hands out.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    certificate: Arc<Certificate>,
}

impl Tls {
    /// Reads the PEM files (the certificate chain, leaf first, and its private key).
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, String> {
        let certificate = Arc::new(Certificate {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(certified_key(cert, key)?)),
        });
        let provider = Arc::new(ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        })
    }

    /// Reads the files again and hands the new certificate to every later handshake; on an
    /// error the current certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = certified_key(&self.certificate.cert, &self.certificate.key)?;
        *self
            .certificate
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }
}

/// The certificate and key files, and what was last read from them.
struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the key {}: {e}", key.display()))?;
    CertifiedKey::from_der(chain, private, &ring::default_provider()).map_err(|e| {
        format!(
            "the key {} does not go with the certificate {}: {e}",
            key.display(),
            cert.display()
        )
    })
}

/// Serves one TLS connection: the handshake, then HTTP/2 or HTTP/1.1 as ALPN chose, until the
/// client closes it, a limit does, or shutdown does.
pub(super) async fn serve(tcp: TcpStream, shared: Arc<Shared>, mut stop: Stop) {
    let (Ok(addr), Some(tls)) = (tcp.peer_addr(), &shared.tls) else {
        return;
    };
    let limits = &shared.limits;
    // The send timeout applies to the socket under TLS: a client that takes nothing of what is
    // written for that long loses the connection.
    let io = Replay::new(tcp, Vec::new(), limits.send_timeout);
    let handshake = tokio::select! {
        done = tokio::time::timeout(limits.header_timeout, tls.acceptor.accept(io)) => done,
        () = wire::stopping(&mut stop) => return,
    };
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return tracing::debug!(%addr, error = %e, "TLS handshake failed"),
        Err(_) => return tracing::debug!(%addr, "TLS handshake timed out"),
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let service = service(&shared, Peer { addr, tls: true });
    let io = TokioIo::new(stream);
    // ALPN has said which protocol it is: no sniffing, and each with its own builder, as HTTP/1.1
    // on a plain connection gets it (hyper-util's auto builder cannot bound an HTTP/1.1 head).
    let ended = if h2 {
        until_stopped!(http2(limits).serve_connection(io, service), stop)
    } else {
        until_stopped!(hyper_builder(limits).serve_connection(io, service), stop)
    };
    if let Some(Err(e)) = ended {
        tracing::trace!(error = %e, "TLS connection ended with an error");
    }
}

/// Drives a hyper connection until it ends; once shutdown begins, closes it gracefully (the
/// response in flight finishes), and cuts it at the shutdown deadline (`None`). A macro, since
/// hyper's HTTP/1.1 and HTTP/2 connections share no trait for `graceful_shutdown`.
macro_rules! until_stopped {
    ($conn:expr, $stop:ident) => {{
        let conn = $conn;
        tokio::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => Some(result),
            () = wire::stopping(&mut $stop) => {
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    result = conn.as_mut() => Some(result),
                    () = wire::deadline(&mut $stop) => None,
                }
            }
        }
    }};
}
use until_stopped;

/// HTTP/2 with Herald's limits: the header list no larger than `HERALD_MAX_HEADER_BYTES`,
/// and pings that close the connection of a peer that has gone.
fn http2(limits: &ConnectionLimits) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(PING_EVERY)
        .keep_alive_timeout(PING_TIMEOUT);
    builder
}
