//! Template functions: `{{value|lower}}`, `{{totp(secret)}}` and the auth primitives
//! that flows generate (`pkce_verifier`, `pkce_challenge`, `state`, `nonce`).
//!
//! A function applies to one variable's value at render time; `{{f(x)}}` is the same as
//! `{{x|f}}`, and filters chain left to right (`{{x|lower|urlencode}}`). Names resolve to
//! a [`Func`] when the scenario loads, so an unknown one is a load error and rendering
//! never looks a name up. Only templates that use a function pay for it: plain `{{x}}`
//! segments render as before.
//!
//! The hashes and MACs are `ring`'s (already linked for TLS). Base32 (RFC 4648), the
//! form TOTP secrets are shared in, is decoded here: twenty lines, and no crate for it is
//! in the dependency tree.

use std::fmt::Write;

use base64::Engine;

/// A function a template applies to a variable's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// RFC 6238 TOTP of a base32 secret at the current time: HMAC-SHA-1, 30 s steps, 6
    /// digits. A secret that is not base32 renders empty (the server refuses the code).
    Totp,
    /// Lower case (Unicode).
    Lower,
    /// Upper case (Unicode).
    Upper,
    /// Percent-encoding of everything but RFC 3986's unreserved characters (a space is
    /// `%20`), for a value inside a URL's query or path.
    Urlencode,
    /// Base64url without padding (RFC 4648 section 5) of the value's UTF-8 bytes.
    Base64url,
    /// SHA-256 of the value's UTF-8 bytes, as lower-case hex.
    Sha256,
}

/// Every function with its one-line description, for errors and `authbench docs`.
pub const FUNCTIONS: &[(&str, Func, &str)] = &[
    (
        "totp",
        Func::Totp,
        "RFC 6238 code of a base32 secret now (SHA-1, 30 s, 6 digits)",
    ),
    ("lower", Func::Lower, "lower case"),
    ("upper", Func::Upper, "upper case"),
    (
        "urlencode",
        Func::Urlencode,
        "percent-encoded but for A-Z a-z 0-9 - . _ ~",
    ),
    ("base64url", Func::Base64url, "base64url without padding"),
    ("sha256", Func::Sha256, "SHA-256 as lower-case hex"),
];

impl Func {
    /// The function called `name`.
    pub fn parse(name: &str) -> Option<Func> {
        FUNCTIONS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, f, _)| *f)
    }

    /// Names of every function, for an error message.
    pub fn names() -> String {
        let names: Vec<&str> = FUNCTIONS.iter().map(|(n, _, _)| *n).collect();
        names.join(", ")
    }

    /// Appends `self(value)` to `out`.
    pub fn apply(self, value: &str, out: &mut String) {
        match self {
            Func::Totp => {
                if let Some(key) = base32_decode(value) {
                    let _ = write!(out, "{:06}", totp_now(&key));
                }
            }
            Func::Lower => out.push_str(&value.to_lowercase()),
            Func::Upper => out.push_str(&value.to_uppercase()),
            Func::Urlencode => percent_encode(value, out),
            Func::Base64url => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(value, out)
            }
            Func::Sha256 => {
                for b in ring::digest::digest(&ring::digest::SHA256, value.as_bytes()).as_ref() {
                    let _ = write!(out, "{b:02x}");
                }
            }
        }
    }
}

/// Applies `funcs` in order to `value`, appending the result to `out`.
pub fn apply_chain(funcs: &[Func], value: &str, out: &mut String) {
    match funcs {
        [] => out.push_str(value),
        [one] => one.apply(value, out),
        [first, rest @ ..] => {
            let mut cur = String::new();
            first.apply(value, &mut cur);
            for f in rest {
                let mut next = String::new();
                f.apply(&cur, &mut next);
                cur = next;
            }
            out.push_str(&cur);
        }
    }
}

fn percent_encode(value: &str, out: &mut String) {
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// RFC 4648 base32 (the alphabet `A-Z2-7`), case-insensitive, spaces and `=` padding
/// ignored, as authenticator apps accept secrets. `None` on any other character.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            b'=' | b' ' | b'-' => continue,
            _ => return None,
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The HMAC a TOTP is computed with (RFC 6238 allows SHA-1, SHA-256 and SHA-512).
#[derive(Debug, Clone, Copy)]
pub enum TotpHash {
    Sha1,
    Sha256,
    Sha512,
}

/// RFC 6238 TOTP of `key` at `unix` seconds: `step` seconds per code, `digits` digits.
pub fn totp_at(key: &[u8], unix: u64, step: u64, digits: u32, hash: TotpHash) -> u32 {
    let algo = match hash {
        TotpHash::Sha1 => ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        TotpHash::Sha256 => ring::hmac::HMAC_SHA256,
        TotpHash::Sha512 => ring::hmac::HMAC_SHA512,
    };
    let counter = (unix / step.max(1)).to_be_bytes();
    let tag = ring::hmac::sign(&ring::hmac::Key::new(algo, key), &counter);
    let mac = tag.as_ref();
    // RFC 4226 section 5.3: dynamic truncation.
    let off = usize::from(mac[mac.len() - 1] & 0x0f);
    let code = u32::from_be_bytes([mac[off] & 0x7f, mac[off + 1], mac[off + 2], mac[off + 3]]);
    code % 10u32.pow(digits.min(9))
}

/// The default TOTP (SHA-1, 30 s, 6 digits) of `key` now.
fn totp_now(key: &[u8]) -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    totp_at(key, now, 30, 6, TotpHash::Sha1)
}

/// A PKCE code verifier (RFC 7636 section 4.1): 32 random bytes as base64url, 43
/// characters of the unreserved set, as the RFC recommends.
pub fn pkce_verifier() -> String {
    random_token(32)
}

/// The S256 code challenge of `verifier` (RFC 7636 section 4.2):
/// `BASE64URL(SHA256(ASCII(verifier)))`.
pub fn pkce_challenge(verifier: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// `n` random bytes as base64url: a `state` or `nonce` (16 bytes, 22 characters).
pub fn random_token(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B: the seeds are the ASCII digits, 20, 32 and 64 bytes long.
    #[test]
    fn totp_matches_rfc_6238_test_vectors() {
        let sha1 = b"12345678901234567890";
        let sha256 = b"12345678901234567890123456789012";
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234";
        let rows: [(u64, u32, u32, u32); 6] = [
            (59, 94287082, 46119246, 90693936),
            (1111111109, 7081804, 68084774, 25091201),
            (1111111111, 14050471, 67062674, 99943326),
            (1234567890, 89005924, 91819424, 93441116),
            (2000000000, 69279037, 90698825, 38618901),
            (20000000000, 65353130, 77737706, 47863826),
        ];
        for (t, a, b, c) in rows {
            assert_eq!(totp_at(sha1, t, 30, 8, TotpHash::Sha1), a, "SHA-1 at {t}");
            assert_eq!(
                totp_at(sha256, t, 30, 8, TotpHash::Sha256),
                b,
                "SHA-256 at {t}"
            );
            assert_eq!(
                totp_at(sha512, t, 30, 8, TotpHash::Sha512),
                c,
                "SHA-512 at {t}"
            );
        }
        // Six digits are the last six of the eight.
        assert_eq!(totp_at(sha1, 59, 30, 6, TotpHash::Sha1), 287082);
    }

    #[test]
    fn base32_decodes_rfc_4648_vectors() {
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(base32_decode("mzxw 6ytb oi").unwrap(), b"foobar");
        assert_eq!(base32_decode("MY").unwrap(), b"f");
        assert_eq!(
            base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap(),
            b"12345678901234567890"
        );
        assert_eq!(base32_decode("not base32!"), None);
        assert_eq!(base32_decode(""), None);
    }

    #[test]
    fn pkce_challenge_is_base64url_of_sha256() {
        // Expected value from Python: base64.urlsafe_b64encode(hashlib.sha256(v).digest()).
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r7wW1gFWFOEjXk"),
            "bwWFMyPfdG9qreDhH2lmftFx_dFeLDalzcT1gb_j68g"
        );
    }

    #[test]
    fn verifier_is_43_unreserved_characters() {
        let v = pkce_verifier();
        assert_eq!(v.len(), 43);
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(v, pkce_verifier());
    }

    #[test]
    fn filters_transform_values() {
        let run = |f: &[Func], v: &str| {
            let mut s = String::from(">");
            apply_chain(f, v, &mut s);
            s
        };
        assert_eq!(run(&[Func::Lower], "A.B@Ex"), ">a.b@ex");
        assert_eq!(run(&[Func::Upper], "ab"), ">AB");
        assert_eq!(
            run(&[Func::Urlencode], "a b/c?d=é~"),
            ">a%20b%2Fc%3Fd%3D%C3%A9~"
        );
        assert_eq!(run(&[Func::Base64url], "\u{ff}?>"), ">w78_Pg");
        assert_eq!(
            run(&[Func::Sha256], "abc"),
            ">ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(run(&[Func::Lower, Func::Urlencode], "A B"), ">a%20b");
        assert_eq!(run(&[Func::Totp], "!!").len(), 1);
        assert_eq!(run(&[Func::Totp], "GEZDGNBVGY3TQOJQ").len(), 7);
    }
}
