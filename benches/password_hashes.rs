//! Time per hash of argon2id, scrypt and PBKDF2-HMAC-SHA256 at the OWASP Password Storage
//! Cheat Sheet's minimums and around them (half and double the work), through the
//! reference server's own [`Algorithm`], so the figures are the server's.
//!
//! `cargo bench --bench password_hashes` (one algorithm: `-- argon2id`). Each doubling of
//! the work parameter (argon2id's m, scrypt's n, PBKDF2's iterations) should double the
//! time: the hash is linear in m·t, in n·r and in the iterations.

use std::time::Duration;

use authbench::password::{
    parse_argon2, parse_pbkdf2, parse_scrypt, Algorithm, OWASP_ARGON2ID, OWASP_PBKDF2, OWASP_SCRYPT,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};

const PASSWORD: &[u8] = b"correct horse battery staple";

fn group(c: &mut Criterion, name: &str, points: &[(String, Algorithm)]) {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(200));
    g.measurement_time(Duration::from_secs(3));
    for (label, a) in points {
        g.bench_with_input(BenchmarkId::from_parameter(label), a, |b, a| {
            b.iter(|| a.hash(PASSWORD).expect("valid parameters"))
        });
    }
    g.finish();
}

fn argon2id(c: &mut Criterion) {
    let p = |s: &str| (s.to_string(), parse_argon2(s).expect("valid"));
    group(
        c,
        "argon2id",
        &[
            p("m=9728,t=2,p=1"),
            (format!("owasp {OWASP_ARGON2ID}"), OWASP_ARGON2ID),
            p("m=38912,t=2,p=1"),
            p("m=19456,t=4,p=1"),
        ],
    );
}

fn scrypt(c: &mut Criterion) {
    let p = |s: &str| (s.to_string(), parse_scrypt(s).expect("valid"));
    group(
        c,
        "scrypt",
        &[
            p("n=32768,r=8,p=1"),
            p("n=65536,r=8,p=1"),
            (format!("owasp {OWASP_SCRYPT}"), OWASP_SCRYPT),
        ],
    );
}

fn pbkdf2(c: &mut Criterion) {
    let p = |s: &str| (s.to_string(), parse_pbkdf2(s).expect("valid"));
    group(
        c,
        "pbkdf2-sha256",
        &[
            p("iterations=300000"),
            (format!("owasp {OWASP_PBKDF2}"), OWASP_PBKDF2),
            p("iterations=1200000"),
        ],
    );
}

criterion_group!(benches, argon2id, scrypt, pbkdf2);
criterion_main!(benches);
