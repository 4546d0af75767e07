//! The TLS crypto both sides of a loopback benchmark share: one rustls provider (ring),
//! used by every client config ([`crate::tls`]) and by the reference server's listener
//! ([`crate::server`]), so neither needs the other's code. Ground floor: it imports
//! nothing from the crate.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The crypto provider of every config: ring, chosen explicitly rather than through a
/// process-wide default, so nothing depends on which dependency installed one first.
///
/// Cipher suites are offered in browsers' order, AES-128-GCM first (rustls' default puts
/// AES-256-GCM with SHA-384 first). A server that follows the client's order, as rustls'
/// does, then negotiates with authbench what it negotiates with Chrome or Firefox, so the
/// handshake and request figures are those of real users' connections; SHA-256 also runs
/// on the CPU's SHA extensions where SHA-384 has none.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::CipherSuite as S;
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            S::TLS13_AES_128_GCM_SHA256
                | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    Arc::new(p)
}
