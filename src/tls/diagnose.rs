//! The preflight's TLS handshake, and a failed handshake in one line: the cause and the
//! flag that fixes it ("certificate not trusted (self-signed): pass --cacert FILE ...").
//! `crate::pipeline::preflight` calls [`probe`] before any load, so an untrusted certificate, a
//! name mismatch, a protocol failure or a missing client certificate stops the run (exit
//! 3) instead of failing every flow with the same error.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{AlertDescription, CertificateError, ClientConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const SKIP: &str = "or --insecure to skip verification";
const CLIENT_CERT: &str = "pass --cert FILE --key FILE";

/// How long the probe waits for a refusal after a handshake in which the server asked for
/// a client certificate and got none (see [`probe`]).
const REFUSAL_WAIT: Duration = Duration::from_millis(300);

/// One TLS handshake with `host`'s server at `addr`, as the load will do it; on failure,
/// the one-line cause.
pub async fn probe(
    addr: SocketAddr,
    host: &str,
    config: &Arc<ClientConfig>,
    timeout: Duration,
) -> Result<(), String> {
    let name = super::server_name(host)
        .ok_or_else(|| format!("'{host}' is not a name a TLS certificate can carry"))?;
    // Without a certificate of our own, note whether the server asks for one.
    let asked = Arc::new(AskedForCertificate::default());
    let config = if config.client_auth_cert_resolver.has_certs() {
        config.clone()
    } else {
        let mut c = ClientConfig::clone(config);
        c.client_auth_cert_resolver = asked.clone();
        Arc::new(c)
    };
    let e = match handshake(addr, name.clone(), config, timeout).await {
        Ok(stream) if asked.get() => return refusal(stream, timeout).await,
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let Some(tls) = e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>()) else {
        return Err(match e.kind() {
            std::io::ErrorKind::TimedOut => format!(
                "no TLS handshake within {} ms (is the server speaking TLS on this port?)",
                timeout.as_millis()
            ),
            _ => format!("the connection failed during the TLS handshake: {e}"),
        });
    };
    // An unknown issuer: a second handshake that accepts anything keeps the certificate,
    // to say whether it is self-signed (the usual case on a test server).
    let self_signed = match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            peer_certificate(addr, name, timeout)
                .await
                .and_then(|c| self_issued(&c))
        }
        _ => None,
    };
    match tls {
        // TLS 1.2: the server refuses a missing certificate inside the handshake.
        rustls::Error::AlertReceived(_) if asked.get() => Err(format!(
            "the server asks for a client certificate and refused the handshake without one: {CLIENT_CERT}"
        )),
        _ => Err(describe(tls, host, self_signed)),
    }
}

/// After a handshake in which the server asked for a client certificate and got none:
/// under TLS 1.3 a server that requires one refuses only once the client's side of the
/// handshake is done, with an alert that follows at once. A server for which the
/// certificate is optional sends nothing until asked, so the wait ends quietly.
async fn refusal(
    mut stream: tokio_rustls::client::TlsStream<TcpStream>,
    timeout: Duration,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let refused = format!(
        "the server asks for a client certificate and refused the connection without one: {CLIENT_CERT}"
    );
    match tokio::time::timeout(REFUSAL_WAIT.min(timeout), stream.read(&mut [0u8; 1])).await {
        Ok(Ok(0)) | Ok(Err(_)) => Err(refused),
        Ok(Ok(_)) | Err(_) => Ok(()),
    }
}

async fn handshake(
    addr: SocketAddr,
    name: ServerName<'static>,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let attempt = async {
        let tcp = TcpStream::connect(addr).await?;
        TlsConnector::from(config).connect(name, tcp).await
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)?
}

/// The server's certificate, whatever it is (`None` when no handshake got that far).
async fn peer_certificate(
    addr: SocketAddr,
    name: ServerName<'static>,
    timeout: Duration,
) -> Option<CertificateDer<'static>> {
    let keep = Arc::new(super::AcceptAnyCertificate::keeping(
        crate::crypto::provider(),
    ));
    let config = ClientConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(keep.clone())
        .with_no_client_auth();
    drop(handshake(addr, name, Arc::new(config), timeout).await);
    keep.take_kept()
}

/// The cause of a failed handshake and what fixes it, in one line. `self_signed` says
/// whether an untrusted certificate is its own issuer, when that is known.
pub fn describe(e: &rustls::Error, host: &str, self_signed: Option<bool>) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => match self_signed {
                Some(true) => format!(
                    "certificate not trusted (self-signed): pass --cacert FILE with that certificate, {SKIP}"
                ),
                _ => format!(
                    "certificate not trusted (its issuer is not among the trusted roots): pass --cacert FILE with the issuing CA, {SKIP}"
                ),
            },
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "certificate not valid for '{host}' (hostname mismatch: it names {}): use a name it lists in --target, {SKIP}",
                presented.join(", ")
            ),
            CertificateError::NotValidForName => format!(
                "certificate not valid for '{host}' (hostname mismatch): use a name it lists in --target, {SKIP}"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("certificate expired: renew it, {SKIP}")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("certificate not valid yet (check both machines' clocks), {SKIP}")
            }
            other if format!("{other:?}").contains("CaUsedAsEndEntity") => format!(
                "the server's certificate is a CA certificate (basicConstraints CA:TRUE, as `openssl req -x509` makes by default): pass exactly that certificate with --cacert FILE, reissue it with `-addext basicConstraints=critical,CA:FALSE`, {SKIP}"
            ),
            other => format!("certificate rejected ({other:?}): fix the certificate, {SKIP}"),
        },
        rustls::Error::AlertReceived(alert) => {
            let client_cert = matches!(
                alert,
                AlertDescription::CertificateRequired
                    | AlertDescription::HandshakeFailure
                    | AlertDescription::BadCertificate
                    | AlertDescription::UnknownCA
            );
            format!(
                "the server ended the TLS handshake ({alert:?} alert){}",
                if client_cert {
                    ": if it requires a client certificate, pass --cert FILE --key FILE"
                } else {
                    ""
                }
            )
        }
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => "TLS protocol failure: the server did not answer with a TLS handshake (if it serves plain HTTP, use an http:// --target)".to_string(),
        rustls::Error::PeerIncompatible(p) => format!(
            "TLS protocol failure: the server shares no protocol version, cipher suite or group with authbench ({p:?})"
        ),
        rustls::Error::NoApplicationProtocol => {
            "TLS protocol failure: the server does not speak http/1.1 (ALPN)".to_string()
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Whether a DER certificate's issuer equals its subject (self-signed, or a root CA
/// itself); `None` when it cannot be read. A few lines of DER rather than an X.509 crate.
pub fn self_issued(der: &[u8]) -> Option<bool> {
    let cert = contents(der, 0x30)?.0;
    let mut tbs = contents(cert, 0x30)?.0;
    if tbs.first() == Some(&0xa0) {
        tbs = element(tbs)?.1; // version
    }
    tbs = element(tbs)?.1; // serial number
    tbs = element(tbs)?.1; // signature algorithm
    let (issuer, rest) = element(tbs)?;
    let rest = element(rest)?.1; // validity
    let (subject, _) = element(rest)?;
    Some(issuer == subject)
}

/// The first element of `b` (header included) and what follows it.
fn element(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (header, len) = header(b)?;
    let end = header.checked_add(len)?;
    (end <= b.len()).then(|| b.split_at(end))
}

/// The contents of the first element of `b`, which must have `tag`, and what follows.
fn contents(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *b.first()? != tag {
        return None;
    }
    let (header, len) = header(b)?;
    let (el, rest) = element(b)?;
    Some((&el[header..header + len], rest))
}

/// The header length and content length of the DER element at the start of `b`.
fn header(b: &[u8]) -> Option<(usize, usize)> {
    let first = *b.get(1)?;
    if first < 0x80 {
        return Some((2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let len = b
        .get(2..2 + n)?
        .iter()
        .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
    Some((2 + n, len))
}

/// Offers no client certificate and notes whether the server asked for one.
#[derive(Debug, Default)]
struct AskedForCertificate(AtomicBool);

impl AskedForCertificate {
    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl ResolvesClientCert for AskedForCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_and_ca_issued_certificates_are_told_apart() {
        let root = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        assert_eq!(self_issued(root.cert.der()), Some(true));

        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        assert_eq!(self_issued(leaf.der()), Some(false));
        assert_eq!(self_issued(ca.der()), Some(true));
    }

    #[test]
    fn garbage_is_not_a_certificate_and_never_panics() {
        for b in [
            &[][..],
            &[0x30],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x03, 0x30, 0x01],
            &[0x02, 0x01, 0x00],
        ] {
            assert_eq!(self_issued(b), None, "{b:?}");
        }
    }

    #[test]
    fn each_cause_names_its_fix() {
        let untrusted = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let d = describe(&untrusted, "h", Some(true));
        assert!(d.contains("self-signed") && d.contains("--cacert") && d.contains("--insecure"));
        assert!(describe(&untrusted, "h", None).contains("issuer"));
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("127.0.0.1").unwrap(),
            presented: vec!["DnsName(\"localhost\")".into()],
        });
        let d = describe(&name, "127.0.0.1", None);
        assert!(
            d.contains("hostname mismatch") && d.contains("localhost"),
            "{d}"
        );
        let alert = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        assert!(describe(&alert, "h", None).contains("--cert FILE --key FILE"));
    }
}
