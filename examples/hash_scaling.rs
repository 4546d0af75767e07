//! Does each password hash's cost grow linearly in its work parameter? For PBKDF2's
//! iterations, argon2id's m and t, and scrypt's n and r, hashes at x, 2x and 4x (the
//! reference server's own `Algorithm`, the other parameters at OWASP's minimum), fits
//! time = a + b·x (linear, not proportional: argon2id allocates and faults in its m KiB
//! once per hash) and reports how far the worst point is from the line. The memory-hard
//! parameters are taken where their memory is past the last-level cache (here 32 MiB):
//! across that boundary the cost per KiB changes, and no line fits both sides.
//!
//! A figure, not a test (timings depend on the machine): `scripts/hash-scaling.sh` runs it
//! and exits 1 when a parameter is more than 15% off linear. Each figure is the least CPU
//! time of the hashing thread over 7 hashes, so neighbours on a shared machine move it
//! less than wall time.

fn thread_cpu_ms() -> f64 {
    // SAFETY: clock_gettime only writes the timespec passed to it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn hash_cpu_ms(a: &authbench::password::Algorithm) -> f64 {
    let _ = a.hash(b"warm-up");
    (0..7)
        .map(|_| {
            let start = thread_cpu_ms();
            let _ = a.hash(b"correct horse battery staple");
            thread_cpu_ms() - start
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> std::process::ExitCode {
    let params = [
        "pbkdf2.iterations=150000,300000,600000",
        "argon2.m=19456,38912,77824",
        "argon2.t=2,4,8",
        "scrypt.n=65536,131072,262144",
        "scrypt.r=4,8,16",
    ];
    println!("| parameter (x, 2x, 4x) | CPU ms per hash | fit a + b·x (ms) | t(4x)/t(x) | worst point off the line |");
    println!("|---|---|---|---|");
    let mut failed = 0;
    for param in params {
        let p = match authbench::sweep::parse_param(param) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {param}: {e}");
                return std::process::ExitCode::from(2);
            }
        };
        let mut t = Vec::new();
        for v in &p.values {
            match p.at(*v) {
                Ok(a) => t.push(hash_cpu_ms(&a)),
                Err(e) => {
                    eprintln!("error: {param}: {e}");
                    return std::process::ExitCode::from(2);
                }
            }
        }
        // Least squares on x = 1, 2, 4 (in units of the first value).
        let xs = [1.0, 2.0, 4.0];
        let (mx, mt) = (7.0 / 3.0, t.iter().sum::<f64>() / 3.0);
        let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
        let sxt: f64 = xs.iter().zip(&t).map(|(x, t)| (x - mx) * (t - mt)).sum();
        let b = sxt / sxx;
        let a = mt - b * mx;
        let off = xs
            .iter()
            .zip(&t)
            .map(|(x, t)| ((a + b * x) - t).abs() / t)
            .fold(0.0, f64::max);
        let bad = off > 0.15;
        failed += usize::from(bad);
        println!(
            "| {param} | {:.1} / {:.1} / {:.1} | {a:.1} + {b:.1}·x | ×{:.2} | {:.1}%{} |",
            t[0],
            t[1],
            t[2],
            t[2] / t[0],
            off * 100.0,
            if bad { " **over 15%**" } else { "" }
        );
    }
    if failed > 0 {
        eprintln!("{failed} parameter(s) more than 15% off linear");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
