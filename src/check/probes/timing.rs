//! `login.timing`: whether the login's latency tells registered identifiers from unknown
//! ones. Two groups of logins, interleaved in random order within each pair: unknown
//! identifiers, and registered ones with a wrong password. The two are built to cost
//! the server the same work apart from the hash: the same wrong password in both (so
//! parsing and validation are identical), identifiers of one shape, one prelude context
//! each, every request on a fresh connection, none retried. A service that skips the
//! hash for unknown identifiers then shows a gap of one hash time, whatever else its
//! login does (a database lookup costs both groups alike).
//!
//! The verdict: a significant gap (Mann–Whitney U, p < [`ALPHA`]) of at least
//! [`GAP_FLOOR_MS`] and at least half a hash time fails, a quarter warns. The hash time
//! is `--hash-time` when given. Else it is the gap itself when one path skips the hash,
//! which no baseline can measure without the lookup both groups do; a login refused
//! before any lookup (`{}`) gives only an upper bound (hash plus lookup), so without
//! `--hash-time` a gap fails at a tenth of that bound ([`BOUND_FRACTION`]): a skipped
//! hash is at least that much of hash-plus-lookup wherever a lookup costs under nine
//! hashes, while a dummy hash of the same algorithm leaves a gap far below it.

use super::login::{fresh_identity, no_login, registered, unregistered, with_password};
use super::{accepted, fields_of, result, with_fields, Settings};
use crate::check::jwt;
use crate::check::roles::Roles;
use crate::check::target::Target;
use crate::check::timing::{mann_whitney, median};
use crate::check::{Outcome, ProbeResult, Severity};

/// Wrong-password attempts per account: under the per-account login limits services
/// commonly use (5), so the probe measures hashing, not throttling.
const ATTEMPTS_PER_ACCOUNT: usize = 4;
/// Significance level of the timing test.
const ALPHA: f64 = 0.01;
/// A gap below this is noise on any network path, whatever the test says.
const GAP_FLOOR_MS: f64 = 0.5;
/// Without `--hash-time`: the share of the hash-plus-lookup bound a significant gap
/// must reach to fail (see the module's docs).
const BOUND_FRACTION: f64 = 0.1;

pub(super) async fn timing_probe(t: &Target, roles: &Roles, s: &Settings) -> ProbeResult {
    let n = s.timing_samples;
    let r = result(
        "login.timing",
        Severity::Medium,
        "login time does not reveal which emails exist",
        format!(
            "{n} logins as unknown identifiers and {n} as known ones, all with one wrong password, interleaved"
        ),
        "no significant gap of half a hash time or more",
    );
    let (Some(login), Some(fields)) = (roles.login, &roles.login_fields) else {
        return r.skip(no_login(roles));
    };
    let Some(reg) = roles.register else {
        return r.skip("no register step to create known users");
    };
    // n + 2 wrong-password attempts (two warm-up), at most ATTEMPTS_PER_ACCOUNT each.
    let accounts = (n + 2).div_ceil(ATTEMPTS_PER_ACCOUNT);
    let mut known = Vec::with_capacity(accounts);
    for _ in 0..accounts {
        match registered(t, login).await {
            Ok(v) => known.push(v),
            Err(e) => return r.setup_failed(&e),
        }
    }
    // The steps before the login other than register (a login form), run once: their
    // context serves every unknown identity, as each known identity's serves its own
    // attempts; the variables of each unknown identity are fresh.
    let unknown_ctx = match unregistered(t, login, reg).await {
        Ok(v) => v,
        Err(e) => return r.setup_failed(&e),
    };
    let Some(empty) = fields_of(t, login, &known[0].vars).map(|f| f.empty()) else {
        return r.skip("the login body is not a JSON object or a form");
    };
    // One wrong password for both groups: the same bytes to parse, validate and hash.
    let wrong = format!("Wrong-{}", jwt::garbage());
    let (mut unknown_ms, mut wrong_ms, mut base_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut limited, mut accepted_n, mut errors) = (0usize, 0usize, 0usize);
    let mut last_limit = None;
    // Two of each first, discarded: connection setup and cold caches.
    for i in 0..n + 2 {
        let mut kinds = [0u8, 1, 2];
        if rand::random::<bool>() {
            kinds.swap(0, 1);
        }
        for kind in kinds {
            let mut unknown = unknown_ctx.clone();
            let session = match kind {
                0 => {
                    unknown.vars = fresh_identity(t, &unknown_ctx);
                    &unknown
                }
                1 => &known[(i / ATTEMPTS_PER_ACCOUNT).min(accounts - 1)],
                _ => &known[0],
            };
            let probe = match kind {
                2 => with_fields(t, login, session, &empty),
                _ => with_password(t, login, fields, session, &wrong),
            };
            let reply = match probe {
                Ok(p) => t.send_once("login.timing", p).await,
                Err(e) => return r.skip(e.to_string()),
            };
            let rep = match reply {
                Ok(rep) => rep,
                Err(_) => {
                    errors += 1;
                    continue;
                }
            };
            if rep.rate_limited() {
                limited += 1;
                last_limit = Some(rep.limited_reason());
                continue;
            }
            if kind < 2 && accepted(t, login, session, &rep) {
                accepted_n += 1;
            }
            if i < 2 {
                continue;
            }
            let ms = rep.elapsed.as_secs_f64() * 1000.0;
            match kind {
                0 => unknown_ms.push(ms),
                1 => wrong_ms.push(ms),
                _ => base_ms.push(ms),
            }
        }
    }
    if accepted_n > 0 {
        return r.judged(
            Outcome::Fail,
            format!("{accepted_n} logins with bad credentials succeeded"),
        );
    }
    let enough = n / 2;
    if unknown_ms.len() < enough || wrong_ms.len() < enough {
        let got = format!(
            "only {} + {} usable samples ({limited} rate-limited, {errors} without a response)",
            unknown_ms.len(),
            wrong_ms.len()
        );
        return match last_limit {
            Some(why) => r.inconclusive(got, format!("{why}: too few samples to compare")),
            None => r
                .judged(Outcome::Warn, got)
                .note("too few samples to compare"),
        };
    }
    let (Some(mu), Some(mw)) = (median(&unknown_ms), median(&wrong_ms)) else {
        return r.skip("no samples");
    };
    let mb = median(&base_ms).unwrap_or(0.0);
    let gap = (mw - mu).abs();
    let bound = (mu.max(mw) - mb).max(0.0);
    let (fail_at, warn_at, hash_text) = match s.hash_time {
        Some(h) => {
            let h = h.as_secs_f64() * 1000.0;
            (0.5 * h, 0.25 * h, format!("hash {h:.2} ms (--hash-time)"))
        }
        None => (
            BOUND_FRACTION * bound,
            f64::INFINITY,
            format!("hash + lookup ≤ {bound:.2} ms"),
        ),
    };
    let test = mann_whitney(&unknown_ms, &wrong_ms);
    let p = test.map_or(1.0, |t| t.p);
    let got = format!(
        "median unknown {mu:.2} ms, wrong password {mw:.2} ms, gap {gap:.2} ms, p = {p:.3}; {hash_text}"
    );
    let rule = match s.hash_time {
        Some(_) => "fails at half the hash time, warns at a quarter".to_string(),
        None => format!(
            "without --hash-time a gap fails at {BOUND_FRACTION} of the hash-plus-lookup bound (slower median minus a login refused before any lookup)"
        ),
    };
    let note = format!(
        "Mann–Whitney U, two-sided, over {} + {} interleaved samples with the same wrong password; significant when p < {ALPHA}, and never below {GAP_FLOOR_MS} ms; {rule}{}",
        unknown_ms.len(),
        wrong_ms.len(),
        if limited > 0 {
            format!("; {limited} rate-limited samples dropped")
        } else {
            String::new()
        }
    );
    let significant = p < ALPHA;
    let outcome = if significant && gap >= fail_at.max(GAP_FLOOR_MS) {
        Outcome::Fail
    } else if significant && gap >= warn_at.max(GAP_FLOOR_MS) {
        Outcome::Warn
    } else {
        Outcome::Pass
    };
    let note = if outcome == Outcome::Fail {
        format!("{note}. One path skips (or adds) password hashing: verify against a dummy hash for unknown users")
    } else {
        note
    };
    r.judged(outcome, got).note(note)
}
