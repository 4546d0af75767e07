//! HTTPS for the reference server: a certificate generated at start ([`TlsIdentity`],
//! rcgen, for 127.0.0.1 and localhost unless told otherwise) and a listener that does
//! the TLS handshakes ([`TlsListener`]) in front of the same axum app, offering `h2` and
//! `http/1.1` in ALPN.
//!
//! Handshakes run in a task per connection, never in the accept loop, so a slow or
//! silent client cannot hold up the others; finished connections are handed to
//! `axum::serve` through a channel. The server offers no session resumption: every
//! client, authbench or a peer tool, pays for a full handshake, so handshake rates of
//! different tools against it compare like with like.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::error::ServerError;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's certificate and key.
#[derive(Clone)]
pub struct TlsIdentity {
    cert: CertificateDer<'static>,
    cert_pem: String,
    /// PKCS#8 DER of the private key.
    key: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// A self-signed certificate for 127.0.0.1 and localhost, the names the in-process
    /// server is reached by.
    pub fn self_signed() -> Result<TlsIdentity, ServerError> {
        TlsIdentity::self_signed_for(&["127.0.0.1", "localhost"])
    }

    /// A self-signed certificate for `names` (DNS names or IP addresses), ECDSA P-256.
    pub fn self_signed_for(names: &[&str]) -> Result<TlsIdentity, ServerError> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let generated = rcgen::generate_simple_self_signed(names)
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        Ok(TlsIdentity {
            cert: generated.cert.der().clone(),
            cert_pem: generated.cert.pem(),
            key: generated.key_pair.serialize_der(),
        })
    }

    /// A certificate and its PKCS#8 private key, both PEM (one certificate).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<TlsIdentity, ServerError> {
        use rustls::pki_types::pem::PemObject;
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| ServerError::Tls(format!("certificate: {e}")))?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| ServerError::Tls(format!("private key: {e}")))?;
        Ok(TlsIdentity {
            cert,
            cert_pem: cert_pem.to_string(),
            key: key.secret_pkcs8_der().to_vec(),
        })
    }

    /// The certificate, for a client's roots.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certificate in PEM, for another tool's `--cacert`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The rustls server config: this certificate, no client authentication, HTTP/1.1,
    /// no session resumption (see the module docs).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, ServerError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(crate::crypto::provider())
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth()
                    .with_single_cert(vec![self.cert.clone()], key)
            })
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        // HTTP/2 first: axum serves both on the same connection handler (it tells them
        // apart by the preface), so a client offering h2 gets it.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }
}

/// Accepts TCP connections, does their TLS handshakes concurrently, and yields the
/// finished ones to `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Must be called inside the runtime that will serve (the accept task starts here).
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(256);
        let tls = TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            while !tx.is_closed() {
                let (stream, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    // Out of file descriptors and the like: wait instead of spinning.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    // A failed handshake is the client's problem; the server carries on.
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await
                    {
                        let _ = tx.send((s, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accept task is gone (the runtime is shutting down): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
