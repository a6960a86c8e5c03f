//! HTTPS in tests: a certificate for `localhost` made at test time, and a client connector
//! that trusts exactly it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub struct TestCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate, DER-encoded (for a client that trusts exactly it).
    pub der: Vec<u8>,
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written into `dir` as
/// `<name>.crt` and `<name>.key`.
pub fn self_signed(dir: &Path, name: &str) -> TestCert {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a test certificate");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, made.cert.pem()).expect("certificate written");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("key written");
    TestCert {
        cert,
        key,
        der: made.cert.der().to_vec(),
    }
}

/// A connector for hyper's client: TLS to `localhost` trusting one certificate, offering
/// `alpn` (`h2`, `http/1.1`); hyper speaks HTTP/2 on connections where the server chose `h2`.
#[derive(Clone)]
pub struct Https {
    config: Arc<ClientConfig>,
}

impl Https {
    pub fn new(trusted: &[u8], alpn: &[&[u8]]) -> Https {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(trusted.to_vec()))
            .expect("a usable certificate");
        let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Every connection does a full handshake, so it sees the server's certificate of now.
        config.resumption = Resumption::disabled();
        Https {
            config: Arc::new(config),
        }
    }

    /// A TLS connection to `addr`, as this connector makes them.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<TlsIo> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("a server name");
        let tls = TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await?;
        Ok(TlsIo(tls))
    }
}

impl tower_service::Service<Uri> for Https {
    type Response = TokioIo<TlsIo>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<TlsIo>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = self.clone();
        Box::pin(async move {
            let authority = uri.authority().expect("an address in the URI").as_str();
            let addr: SocketAddr = authority.parse().expect("an IP address and port");
            https.connect(addr).await.map(TokioIo::new)
        })
    }
}

/// A client's TLS connection.
pub struct TlsIo(pub TlsStream<TcpStream>);

impl TlsIo {
    /// The protocol ALPN chose (`h2`, `http/1.1`).
    pub fn alpn(&self) -> Option<&[u8]> {
        self.0.get_ref().1.alpn_protocol()
    }

    /// The server's certificate, DER-encoded.
    pub fn server_certificate(&self) -> Vec<u8> {
        self.0
            .get_ref()
            .1
            .peer_certificates()
            .expect("a certificate")[0]
            .to_vec()
    }
}

impl Connection for TlsIo {
    fn connected(&self) -> Connected {
        match self.alpn() {
            Some(b"h2") => Connected::new().negotiated_h2(),
            _ => Connected::new(),
        }
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
