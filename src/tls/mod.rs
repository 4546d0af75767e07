//! TLS for every client that talks to a target: the hot path's connection-level client
//! ([`crate::engine::http1`]), reqwest (`check`, the fallback path, readiness polls) and the
//! preflight handshake all use the one rustls [`ClientConfig`] built here from
//! [`TlsOptions`], so `--insecure`, `--cacert` and `--cert`/`--key` mean the same thing
//! everywhere. rustls with the ring provider: no OpenSSL, no cmake.
//!
//! It owns the client side only; the crypto provider both sides use is [`crate::crypto`]'s,
//! and the reference server's certificate and listener are in [`crate::server`], and [`diagnose`] turns a failed handshake into one line naming the
//! cause and the flag that fixes it.

pub mod diagnose;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::crypto::provider;
use crate::options::TlsOptions;

/// Why the TLS settings could not be used; each names the flag and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file named by a flag could not be read or holds nothing usable.
    #[error("{flag} '{path}': {cause}")]
    File {
        flag: &'static str,
        path: String,
        cause: String,
    },
    /// rustls refused the combination (e.g. a key that does not match the certificate).
    #[error("{0}")]
    Config(String),
}

/// The client config for `opts`, trusting `extra_roots` as well (the in-process server's
/// generated certificate). ALPN offers http/1.1 only (the hot path speaks HTTP/1.1).
///
/// Session resumption is off: every new connection does a full handshake, as a new user's
/// first visit does, so the TLS handshake figure has one meaning (and `--connections
/// per-flow` measures a full handshake per flow) instead of mixing in cheaper resumptions.
pub fn client_config(
    opts: &TlsOptions,
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, TlsError> {
    // Read the files first, also with --insecure, so a wrong path is always an error.
    let cacerts = match &opts.cacert {
        Some(p) => read_certs("--cacert", p)?,
        None => Vec::new(),
    };
    let client_auth = match &opts.client_cert {
        Some((cert, key)) => Some((read_certs("--cert", cert)?, read_key(key)?)),
        None => None,
    };
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(system_roots().roots.iter().cloned());
        for c in cacerts.iter().cloned().chain(extra_roots.iter().cloned()) {
            roots
                .add(c)
                .map_err(|e| TlsError::Config(format!("--cacert: {e}")))?;
        }
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(format!("--cacert: {e}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedOrWebPki {
                webpki,
                pinned: cacerts,
            }))
    };
    let mut config = match client_auth {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Config(format!("--cert/--key: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The ALPN protocols a client offers for `version`: `h2` and `http/1.1` for `auto`
/// (the server picks), one of them otherwise.
pub fn alpn(version: crate::options::HttpVersion) -> Vec<Vec<u8>> {
    use crate::options::HttpVersion;
    match version {
        HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
        HttpVersion::Http2 => vec![b"h2".to_vec()],
    }
}

/// `config` offering [`alpn`]`(version)`.
pub fn with_alpn(
    config: &Arc<ClientConfig>,
    version: crate::options::HttpVersion,
) -> Arc<ClientConfig> {
    let mut c = ClientConfig::clone(config);
    c.alpn_protocols = alpn(version);
    Arc::new(c)
}

/// The client config for a target: `None` for an `http://` target given no TLS flag
/// (nothing to set up), else [`client_config`]. A flag's bad file is a usage error.
pub fn for_target(
    base_url: &str,
    opts: &TlsOptions,
    extra_roots: &[CertificateDer<'static>],
) -> Result<Option<Arc<ClientConfig>>, crate::error::RunError> {
    if !base_url.starts_with("https://") && *opts == TlsOptions::default() {
        return Ok(None);
    }
    client_config(opts, extra_roots)
        .map(Some)
        .map_err(|e| crate::error::RunError::Config(e.to_string()))
}

/// The general client's config when steps may go to other hosts than the target (a
/// step's `url`, a redirect followed): the target's, else the one the TLS flags make
/// (system roots), so an `https://` host is reachable from a plain-http target.
pub fn for_other_hosts(
    target: Option<Arc<ClientConfig>>,
    opts: &TlsOptions,
    other_hosts: bool,
) -> Result<Option<Arc<ClientConfig>>, crate::error::RunError> {
    match target {
        None if other_hosts => client_config(opts, &[])
            .map(Some)
            .map_err(|e| crate::error::RunError::Config(e.to_string())),
        t => Ok(t),
    }
}

/// Hands reqwest the same TLS config as the hot path, when there is one.
pub fn reqwest_tls(
    builder: reqwest::ClientBuilder,
    config: Option<&Arc<ClientConfig>>,
) -> reqwest::ClientBuilder {
    match config {
        Some(c) => builder.use_preconfigured_tls(ClientConfig::clone(c)),
        None => builder,
    }
}

/// The default roots: the system's store (rustls-native-certs reads the OS's CA bundle,
/// so a company CA installed on the machine is trusted as curl would trust it). When the
/// system has none (a slim container without ca-certificates), Mozilla's roots compiled
/// into webpki-roots, so public https targets still work. Read once per process.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if roots.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    })
}

/// The PEM certificates in `path` (at least one).
fn read_certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |cause: String| TlsError::File {
        flag,
        path: path.display().to_string(),
        cause,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(err("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The PEM private key in `path` (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let err = |cause: String| TlsError::File {
        flag: "--key",
        path: path.display().to_string(),
        cause,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| err(format!("holds no PEM private key ({e})")))
}

/// The name the server's certificate must carry, from a URL's host (`[::1]` or a name).
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.trim_matches(['[', ']']).to_string()).ok()
}

/// The roots' verification (webpki), plus one case webpki refuses and curl accepts: the
/// server presents, as its own certificate, exactly a certificate given with `--cacert`,
/// but one marked as a CA (`basicConstraints CA:TRUE`, which `openssl req -x509` sets by
/// default; webpki answers `CaUsedAsEndEntity`). The user pinned that very certificate, so
/// it is accepted, and its name is still checked against the target's host.
#[derive(Debug)]
struct PinnedOrWebPki {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            // rustls does not name webpki's reason in a type of its own: the Debug text of
            // `CertificateError::Other` is the one place it shows.
            Err(e)
                if format!("{e:?}").contains("CaUsedAsEndEntity")
                    && self
                        .pinned
                        .iter()
                        .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `--insecure`: any certificate, for any name, is accepted. The handshake signature is
/// not checked either: a signature by a key nobody vouches for proves nothing, and
/// checking it would only add CPU to every handshake (curl -k and oha --insecure do the
/// same).
///
/// The preflight's diagnosis uses the same verifier with `kept` set, to read the server's
/// certificate whatever it is (see `diagnose::peer_certificate`).
#[derive(Debug)]
pub(crate) struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
    /// Where the server's certificate is kept, when the caller wants it.
    kept: Option<std::sync::Mutex<Option<CertificateDer<'static>>>>,
}

impl AcceptAnyCertificate {
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> Self {
        AcceptAnyCertificate {
            provider,
            kept: None,
        }
    }

    /// One that keeps the certificate the server presents.
    pub(crate) fn keeping(provider: Arc<CryptoProvider>) -> Self {
        AcceptAnyCertificate {
            provider,
            kept: Some(std::sync::Mutex::new(None)),
        }
    }

    /// The certificate the server presented, if this verifier keeps it and saw one.
    pub(crate) fn take_kept(&self) -> Option<CertificateDer<'static>> {
        self.kept.as_ref()?.lock().ok()?.take()
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(Ok(mut kept)) = self.kept.as_ref().map(|k| k.lock()) {
            *kept = Some(end_entity.clone().into_owned());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_name_the_flag() {
        let opts = TlsOptions {
            cacert: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let e = client_config(&opts, &[]).unwrap_err().to_string();
        assert!(e.starts_with("--cacert '/nonexistent/ca.pem': "), "{e}");

        let empty = tempfile::NamedTempFile::new().unwrap();
        let opts = TlsOptions {
            cacert: Some(empty.path().into()),
            ..TlsOptions::default()
        };
        let e = client_config(&opts, &[]).unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
    }

    #[test]
    fn a_key_that_is_not_a_key_is_named() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.cert.pem()).unwrap();
        std::fs::write(&k, cert.cert.pem()).unwrap();
        let opts = TlsOptions {
            client_cert: Some((c.clone(), k)),
            ..TlsOptions::default()
        };
        let e = client_config(&opts, &[]).unwrap_err().to_string();
        assert!(e.starts_with("--key '"), "{e}");
        let k = dir.path().join("k2.pem");
        std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
        let opts = TlsOptions {
            client_cert: Some((c, k)),
            insecure: true,
            ..TlsOptions::default()
        };
        let cfg = client_config(&opts, &[]).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn aes_128_gcm_is_offered_first_as_browsers_do() {
        let suites: Vec<_> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(suites[0], rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert!(suites.contains(&rustls::CipherSuite::TLS13_AES_256_GCM_SHA384));
    }

    #[test]
    fn server_names_from_hosts() {
        assert!(matches!(
            server_name("[::1]"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("127.0.0.1"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("localhost"),
            Some(ServerName::DnsName(_))
        ));
    }
}
