//! The password-hash algorithms of the reference server, each from its well-kept crate:
//! bcrypt (`bcrypt`), argon2id (`argon2`), scrypt (`scrypt`) and PBKDF2-HMAC-SHA256
//! (`pbkdf2`), with their parameters, the parsers of `--argon2 m=..,t=..,p=..`,
//! `--scrypt n=..,r=..,p=..` and `--pbkdf2 iterations=..`, and the OWASP Password Storage
//! Cheat Sheet's minimum for each.
//!
//! It hashes and verifies; where the reference server runs the work is a [`HashMode`]
//! (defined here because the options name it too), and the pool itself is the server's.
//! An input floor: it knows nothing of the server, the engine or a report.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// A hash algorithm with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// bcrypt at `cost` (log2 of the rounds, 4..=31).
    Bcrypt { cost: u32 },
    /// argon2id: memory `m` in KiB, `t` passes, `p` lanes.
    Argon2id { m: u32, t: u32, p: u32 },
    /// scrypt: CPU/memory cost `n` (a power of two), block size `r`, parallelism `p`.
    Scrypt { n: u32, r: u32, p: u32 },
    /// PBKDF2-HMAC-SHA256 with `iterations`.
    Pbkdf2 { iterations: u32 },
}

/// The algorithms by name, as `--hash` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlgorithmKind {
    Bcrypt,
    Argon2id,
    Scrypt,
    Pbkdf2,
}

/// OWASP Password Storage Cheat Sheet: argon2id m=19456 KiB (19 MiB), t=2, p=1.
pub const OWASP_ARGON2ID: Algorithm = Algorithm::Argon2id {
    m: 19456,
    t: 2,
    p: 1,
};
/// OWASP Password Storage Cheat Sheet: scrypt N=2^17 (128 MiB), r=8, p=1.
pub const OWASP_SCRYPT: Algorithm = Algorithm::Scrypt {
    n: 1 << 17,
    r: 8,
    p: 1,
};
/// OWASP Password Storage Cheat Sheet: PBKDF2-HMAC-SHA256, 600,000 iterations.
pub const OWASP_PBKDF2: Algorithm = Algorithm::Pbkdf2 {
    iterations: 600_000,
};
/// OWASP Password Storage Cheat Sheet: bcrypt work factor 10.
pub const OWASP_BCRYPT: Algorithm = Algorithm::Bcrypt { cost: 10 };

/// Why a hash could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("bcrypt: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
    #[error("{0}")]
    PasswordHash(String),
    #[error("invalid parameters: {0}")]
    Params(String),
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Algorithm::Bcrypt { cost } => write!(f, "bcrypt cost {cost}"),
            Algorithm::Argon2id { m, t, p } => write!(f, "argon2id m={m},t={t},p={p}"),
            Algorithm::Scrypt { n, r, p } => write!(f, "scrypt n={n},r={r},p={p}"),
            Algorithm::Pbkdf2 { iterations } => write!(f, "pbkdf2 iterations={iterations}"),
        }
    }
}

impl Algorithm {
    /// The algorithm at OWASP's minimum parameters.
    pub fn owasp(kind: AlgorithmKind) -> Algorithm {
        match kind {
            AlgorithmKind::Bcrypt => OWASP_BCRYPT,
            AlgorithmKind::Argon2id => OWASP_ARGON2ID,
            AlgorithmKind::Scrypt => OWASP_SCRYPT,
            AlgorithmKind::Pbkdf2 => OWASP_PBKDF2,
        }
    }

    pub fn kind(&self) -> AlgorithmKind {
        match self {
            Algorithm::Bcrypt { .. } => AlgorithmKind::Bcrypt,
            Algorithm::Argon2id { .. } => AlgorithmKind::Argon2id,
            Algorithm::Scrypt { .. } => AlgorithmKind::Scrypt,
            Algorithm::Pbkdf2 { .. } => AlgorithmKind::Pbkdf2,
        }
    }

    /// Whether these parameters are below OWASP's minimum for the algorithm (any one
    /// parameter below it: argon2id's memory and passes trade off in OWASP's table, but
    /// its minimum row is the one cited here).
    pub fn below_owasp(&self) -> bool {
        match (*self, Algorithm::owasp(self.kind())) {
            (Algorithm::Bcrypt { cost }, Algorithm::Bcrypt { cost: min }) => cost < min,
            (Algorithm::Argon2id { m, t, .. }, Algorithm::Argon2id { m: mm, t: mt, .. }) => {
                u64::from(m) * u64::from(t) < u64::from(mm) * u64::from(mt)
            }
            (Algorithm::Scrypt { n, r, .. }, Algorithm::Scrypt { n: mn, r: mr, .. }) => {
                u64::from(n) * u64::from(r) < u64::from(mn) * u64::from(mr)
            }
            (Algorithm::Pbkdf2 { iterations }, Algorithm::Pbkdf2 { iterations: min }) => {
                iterations < min
            }
            _ => false,
        }
    }

    /// Checks the parameters (so a bad flag is a clear error before any server starts).
    pub fn check(&self) -> Result<(), HashError> {
        match *self {
            Algorithm::Bcrypt { cost } if !(4..=31).contains(&cost) => Err(HashError::Params(
                format!("bcrypt cost {cost} is outside 4..=31"),
            )),
            Algorithm::Bcrypt { .. } => Ok(()),
            Algorithm::Argon2id { .. } => self.argon2().map(|_| ()),
            Algorithm::Scrypt { .. } => self.scrypt_params().map(|_| ()),
            Algorithm::Pbkdf2 { iterations: 0 } => Err(HashError::Params(
                "pbkdf2 iterations must be at least 1".into(),
            )),
            Algorithm::Pbkdf2 { .. } => Ok(()),
        }
    }

    fn argon2(&self) -> Result<argon2::Argon2<'static>, HashError> {
        let Algorithm::Argon2id { m, t, p } = *self else {
            return Err(HashError::Params("not argon2id".into()));
        };
        let params = argon2::Params::new(m, t, p, None)
            .map_err(|e| HashError::Params(format!("argon2id m={m},t={t},p={p}: {e}")))?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }

    fn scrypt_params(&self) -> Result<scrypt::Params, HashError> {
        let Algorithm::Scrypt { n, r, p } = *self else {
            return Err(HashError::Params("not scrypt".into()));
        };
        if n < 2 || !n.is_power_of_two() {
            return Err(HashError::Params(format!(
                "scrypt n={n} must be a power of two, at least 2"
            )));
        }
        let log_n = n.trailing_zeros() as u8;
        scrypt::Params::new(log_n, r, p, scrypt::Params::RECOMMENDED_LEN)
            .map_err(|e| HashError::Params(format!("scrypt n={n},r={r},p={p}: {e}")))
    }

    /// Hashes `password` into its encoded form (bcrypt's `$2b$`, or a PHC string).
    pub fn hash(&self, password: &[u8]) -> Result<String, HashError> {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| HashError::PasswordHash(e.to_string()))?;
        let phc = |r: Result<PasswordHash<'_>, argon2::password_hash::Error>| {
            r.map(|h| h.to_string())
                .map_err(|e| HashError::PasswordHash(e.to_string()))
        };
        match *self {
            Algorithm::Bcrypt { cost } => Ok(bcrypt::hash(password, cost)?),
            Algorithm::Argon2id { .. } => phc(self.argon2()?.hash_password(password, &salt)),
            Algorithm::Scrypt { .. } => phc(scrypt::Scrypt.hash_password_customized(
                password,
                None,
                None,
                self.scrypt_params()?,
                &salt,
            )),
            Algorithm::Pbkdf2 { iterations } => phc(pbkdf2::Pbkdf2.hash_password_customized(
                password,
                Some(pbkdf2::Algorithm::Pbkdf2Sha256.ident()),
                None,
                pbkdf2::Params {
                    rounds: iterations,
                    output_length: 32,
                },
                &salt,
            )),
        }
    }

    /// Checks `password` against a hash this algorithm made (the parameters are read
    /// from the hash, as a real service does after its parameters change).
    pub fn verify(&self, password: &[u8], encoded: &str) -> Result<bool, HashError> {
        if let Algorithm::Bcrypt { .. } = self {
            return Ok(bcrypt::verify(password, encoded)?);
        }
        let parsed =
            PasswordHash::new(encoded).map_err(|e| HashError::PasswordHash(e.to_string()))?;
        let r = match self {
            Algorithm::Argon2id { .. } => self.argon2()?.verify_password(password, &parsed),
            Algorithm::Scrypt { .. } => scrypt::Scrypt.verify_password(password, &parsed),
            Algorithm::Pbkdf2 { .. } => pbkdf2::Pbkdf2.verify_password(password, &parsed),
            Algorithm::Bcrypt { .. } => unreachable!("handled above"),
        };
        match r {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::Password) => Ok(false),
            Err(e) => Err(HashError::PasswordHash(e.to_string())),
        }
    }

    /// These parameters with one changed: `name` is `cost` (bcrypt), `m`, `t`, `p`
    /// (argon2id), `n`, `r`, `p` (scrypt) or `iterations` (pbkdf2).
    pub fn with(&self, name: &str, value: u32) -> Result<Algorithm, String> {
        let mut a = *self;
        match (&mut a, name) {
            (Algorithm::Bcrypt { cost }, "cost") => *cost = value,
            (Algorithm::Argon2id { m, .. }, "m") => *m = value,
            (Algorithm::Argon2id { t, .. }, "t") => *t = value,
            (Algorithm::Argon2id { p, .. }, "p") => *p = value,
            (Algorithm::Scrypt { n, .. }, "n") => *n = value,
            (Algorithm::Scrypt { r, .. }, "r") => *r = value,
            (Algorithm::Scrypt { p, .. }, "p") => *p = value,
            (Algorithm::Pbkdf2 { iterations }, "iterations") => *iterations = value,
            _ => {
                return Err(format!(
                    "{} has no parameter '{name}' (bcrypt: cost; argon2id: m, t, p; scrypt: n, r, p; pbkdf2: iterations)",
                    self.kind_name()
                ))
            }
        }
        a.check().map_err(|e| e.to_string())?;
        Ok(a)
    }

    /// `bcrypt`, `argon2`, `scrypt`, `pbkdf2`: the prefix of `--param`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Algorithm::Bcrypt { .. } => "bcrypt",
            Algorithm::Argon2id { .. } => "argon2",
            Algorithm::Scrypt { .. } => "scrypt",
            Algorithm::Pbkdf2 { .. } => "pbkdf2",
        }
    }

    /// The work the time of one hash is linear in: 2^cost, m·t, n·r, iterations.
    pub fn work(&self) -> f64 {
        match *self {
            Algorithm::Bcrypt { cost } => 2f64.powi(cost as i32),
            Algorithm::Argon2id { m, t, .. } => f64::from(m) * f64::from(t),
            Algorithm::Scrypt { n, r, .. } => f64::from(n) * f64::from(r),
            Algorithm::Pbkdf2 { iterations } => f64::from(iterations),
        }
    }
}

/// `k=v,k=v` into pairs, each key one of `keys`.
fn pairs(s: &str, keys: &[&str], example: &str) -> Result<Vec<(String, u32)>, String> {
    s.split(',')
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("'{s}': expected {example}"))?;
            let k = k.trim().to_ascii_lowercase();
            if !keys.contains(&k.as_str()) {
                return Err(format!(
                    "'{s}': unknown parameter '{k}'; expected {example}"
                ));
            }
            let v = crate::units::parse_count(v.trim())
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| format!("'{s}': '{}' is not a whole number", v.trim()))?;
            Ok((k, v))
        })
        .collect()
}

fn set(base: Algorithm, s: &str, keys: &[&str], example: &str) -> Result<Algorithm, String> {
    let mut a = base;
    for (k, v) in pairs(s, keys, example)? {
        a = a.with(&k, v)?;
    }
    Ok(a)
}

/// `--argon2 m=19456,t=2,p=1` (parameters not named keep OWASP's values).
pub fn parse_argon2(s: &str) -> Result<Algorithm, String> {
    set(OWASP_ARGON2ID, s, &["m", "t", "p"], "m=19456,t=2,p=1")
}

/// `--scrypt n=131072,r=8,p=1` (parameters not named keep OWASP's values).
pub fn parse_scrypt(s: &str) -> Result<Algorithm, String> {
    set(OWASP_SCRYPT, s, &["n", "r", "p"], "n=131072,r=8,p=1")
}

/// `--pbkdf2 iterations=600000` (also `600k`).
pub fn parse_pbkdf2(s: &str) -> Result<Algorithm, String> {
    set(OWASP_PBKDF2, s, &["iterations"], "iterations=600000")
}

/// Where bcrypt work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashMode {
    /// Hash and verify on a bounded pool of blocking threads (`hash_threads`
    /// at a time, first come first served), so the async workers keep
    /// accepting connections and answering cheap requests (verify, profile,
    /// health) while passwords are being hashed.
    #[default]
    Pool,
    /// Hash and verify directly inside the async handler, and serve on a
    /// current-thread runtime. This reproduces a service with a single
    /// event-loop worker that calls bcrypt synchronously: every request,
    /// even `/health`, waits behind every hash in progress. It exists to
    /// reproduce that production failure, not to be used.
    Inline,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parameters_and_refuses_bad_ones() {
        assert_eq!(
            parse_argon2("m=8192,t=3").unwrap(),
            Algorithm::Argon2id {
                m: 8192,
                t: 3,
                p: 1
            }
        );
        assert_eq!(
            parse_scrypt("n=16384").unwrap(),
            Algorithm::Scrypt {
                n: 16384,
                r: 8,
                p: 1
            }
        );
        assert_eq!(
            parse_pbkdf2("iterations=600k").unwrap(),
            Algorithm::Pbkdf2 {
                iterations: 600_000
            }
        );
        for bad in ["m", "x=1", "m=abc", "m=1", "t=0", "m=-5"] {
            assert!(parse_argon2(bad).is_err(), "{bad}");
        }
        assert!(parse_scrypt("n=1000").unwrap_err().contains("power of two"));
        assert!(parse_pbkdf2("iterations=0").is_err());
        assert!(OWASP_ARGON2ID.with("cost", 4).is_err());
    }

    #[test]
    fn owasp_minimums() {
        for a in [OWASP_BCRYPT, OWASP_ARGON2ID, OWASP_SCRYPT, OWASP_PBKDF2] {
            assert!(!a.below_owasp(), "{a}");
            a.check().unwrap();
        }
        assert!(Algorithm::Bcrypt { cost: 9 }.below_owasp());
        assert!(parse_argon2("m=8192").unwrap().below_owasp());
        assert!(parse_scrypt("n=16384").unwrap().below_owasp());
        assert!(parse_pbkdf2("iterations=100000").unwrap().below_owasp());
        // Django's default (1,000,000) is above the minimum.
        assert!(!parse_pbkdf2("iterations=1000000").unwrap().below_owasp());
    }

    #[test]
    fn every_algorithm_hashes_and_verifies() {
        for a in [
            Algorithm::Bcrypt { cost: 4 },
            Algorithm::Argon2id { m: 64, t: 1, p: 1 },
            Algorithm::Scrypt { n: 16, r: 8, p: 1 },
            Algorithm::Pbkdf2 { iterations: 1000 },
        ] {
            let h = a.hash(b"secret").unwrap();
            assert!(a.verify(b"secret", &h).unwrap(), "{a}: {h}");
            assert!(!a.verify(b"wrong", &h).unwrap(), "{a}");
            assert!(a.verify(b"secret", "not a hash").is_err(), "{a}");
        }
        let h = Algorithm::Pbkdf2 { iterations: 1000 }.hash(b"x").unwrap();
        assert!(h.starts_with("$pbkdf2-sha256$i=1000"), "{h}");
    }
}
