//! Time per bcrypt hash and verify at every cost 4..=14, and one argon2id point at OWASP's
//! parameters (19 MiB, t=2, p=1) for comparison.
//!
//! `cargo bench --bench bcrypt_cost` (one cost: `cargo bench --bench bcrypt_cost -- 'hash/12$'`).
//! Each +1 of cost should double the time; the sample count falls as cost rises so the
//! whole sweep stays within a couple of minutes.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};

const PASSWORD: &str = "correct horse battery staple";

fn bcrypt_costs(c: &mut Criterion) {
    for op in ["hash", "verify"] {
        let mut g = c.benchmark_group(format!("bcrypt/{op}"));
        g.sampling_mode(SamplingMode::Flat);
        for cost in 4u32..=14 {
            // Criterion needs at least 10 samples; above cost 10 one iteration per sample.
            g.sample_size(if cost <= 10 { 20 } else { 10 });
            g.warm_up_time(Duration::from_millis(if cost <= 10 { 500 } else { 1 }));
            g.measurement_time(Duration::from_secs(if cost <= 10 { 3 } else { 1 }));
            let hashed = bcrypt::hash(PASSWORD, cost).expect("valid cost");
            g.bench_with_input(BenchmarkId::from_parameter(cost), &cost, |b, &cost| {
                if op == "hash" {
                    b.iter(|| bcrypt::hash(PASSWORD, cost).expect("valid cost"));
                } else {
                    b.iter(|| bcrypt::verify(PASSWORD, &hashed).expect("valid hash"));
                }
            });
        }
        g.finish();
    }
}

fn argon2id_owasp(c: &mut Criterion) {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP parameters are valid");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = argon2::password_hash::SaltString::encode_b64(b"authbench-salt16").expect("salt");
    let mut g = c.benchmark_group("argon2id");
    g.sample_size(20);
    g.bench_function("owasp-19MiB-t2-p1", |b| {
        b.iter(|| {
            argon
                .hash_password(PASSWORD.as_bytes(), &salt)
                .expect("hashing succeeds")
        })
    });
    g.finish();
}

criterion_group!(benches, bcrypt_costs, argon2id_owasp);
criterion_main!(benches);
