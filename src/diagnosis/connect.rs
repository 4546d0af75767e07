//! Findings from connect times: SYN retransmissions (a full accept queue) and connection
//! setup (the TCP connect, and the TLS handshake on `https://`) that dominates the time to
//! first byte.

use super::{fmt_ms, Diagnosis};
use crate::report::{histogram, Report};

/// Linux re-sends an unanswered SYN after 1 s, then doubles the wait: a connect that lost
/// its first SYNs takes about 1, 3, 7 or 15 s. Windows around those times, in seconds.
const SYN_RETRIES: [(f64, f64, &str); 4] = [
    (0.9, 1.6, "≈1 s"),
    (2.8, 3.7, "≈3 s"),
    (6.7, 8.0, "≈7 s"),
    (14.5, 16.5, "≈15 s"),
];

/// A connect that took one of these times while others were this fast was a dropped SYN,
/// not a slow network.
const FAST_CONNECT_S: f64 = 0.3;

/// (connects in the SYN retransmission windows, all connects, per window), over every
/// step; (0, n, _) when the fastest connect was itself slow (then it is the network).
pub(super) fn syn_retransmits(run: &Report) -> (u64, u64, [u64; 4]) {
    let mut per = [0u64; 4];
    let mut total = 0;
    let mut fastest = f64::MAX;
    for st in &run.steps {
        if st.connect.count == 0 {
            continue;
        }
        total += st.connect.count;
        fastest = fastest.min(st.connect.min_ms / 1000.0);
        let Ok(h) = histogram::decode(&st.connect_histogram) else {
            continue;
        };
        for (i, (lo, hi, _)) in SYN_RETRIES.iter().enumerate() {
            per[i] += h.count_between((lo * 1e6) as u64, (hi * 1e6) as u64);
        }
    }
    if fastest >= FAST_CONNECT_S {
        return (0, total, [0; 4]);
    }
    (per.iter().sum(), total, per)
}

pub(super) fn findings(d: &Diagnosis, run: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let (syn, total, per) = syn_retransmits(run);
    if syn > 0 {
        let fastest = run
            .steps
            .iter()
            .filter(|s| s.connect.count > 0)
            .map(|s| s.connect.min_ms)
            .fold(f64::MAX, f64::min);
        let clusters: Vec<String> = SYN_RETRIES
            .iter()
            .zip(per)
            .filter(|(_, n)| *n > 0)
            .map(|((_, _, label), n)| format!("{n} at {label}"))
            .collect();
        out.push(format!(
            "{syn} of {total} new connections took a SYN retransmission time to connect ({}), while the fastest took {}: the server's accept queue was full and the kernel dropped their SYNs, which the client re-sent after 1 s (then 3 s, 7 s). Raise the server's listen backlog (the backlog of its listen(), e.g. uvicorn/gunicorn --backlog) and the kernel's cap on it, net.core.somaxconn, or make it accept faster.",
            clusters.join(", "),
            fmt_ms(fastest)
        ));
        return out;
    }
    // Connection setup (the TCP connect, and for `https://` the TLS handshake) that is
    // most of the time to first byte.
    for st in run.steps.iter().filter(|s| s.connect.count > 0) {
        let connect = st.connect.mean_ms * st.connect.count as f64;
        let tls = st.tls.mean_ms * st.tls.count as f64;
        let setup = connect + tls;
        let per_conn = setup / st.connect.count as f64;
        let ttfb = st.ttfb.mean_ms * st.ttfb.count as f64;
        if ttfb > 0.0 && setup >= 0.5 * ttfb && per_conn >= 1.0 {
            let (what, means) = if st.tls.count > 0 {
                (
                    "Connecting and the TLS handshake are",
                    format!(
                        "mean connect {}, mean TLS handshake {}",
                        fmt_ms(st.connect.mean_ms),
                        fmt_ms(st.tls.mean_ms)
                    ),
                )
            } else {
                (
                    "Connecting is",
                    format!("mean connect {}", fmt_ms(st.connect.mean_ms)),
                )
            };
            out.push(format!(
                "{what} {:.0}% of the time to first byte at `{}` ({} connections, {means} vs mean first byte {}): connection setup, not the server's work, dominates there; keep connections alive (`--connections shared`) or look at the network and the server's accept loop.",
                (setup / ttfb * 100.0).min(100.0),
                st.name,
                st.connect.count,
                fmt_ms(st.ttfb.mean_ms)
            ));
        }
    }
    let _ = d;
    out
}
