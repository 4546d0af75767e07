//! `register.race`: [`BURSTS`] bursts of `--race` concurrent registrations, each burst
//! with an identifier of its own and each request a whole attempt (its prelude run
//! first, sequentially, with fresh values). A duplicate check that races shows up
//! intermittently, so one burst proves little: the row says how many bursts produced a
//! 5xx or more than one success.
//!
//! Per burst: exactly one success and no 5xx is clean; two or more successes, or a 5xx,
//! is the race. No success at all is inconclusive when some answers were rate limited
//! (the limiter, not the duplicate check, refused them) and a failure otherwise.

use tokio::task::JoinSet;

use super::{accepted, Settings};
use crate::check::target::{Session, Target};
use crate::check::{Outcome, ProbeResult};

/// Bursts of concurrent registrations.
pub(super) const BURSTS: usize = 5;

/// What one burst's answers were.
#[derive(Debug, Default, Clone, Copy)]
struct Burst {
    ok: usize,
    server_err: usize,
    limited: usize,
    client_err: usize,
    broken: usize,
}

impl Burst {
    fn raced(&self) -> bool {
        self.ok > 1 || self.server_err > 0
    }
}

pub(super) async fn race_probe(
    t: &Target,
    reg: usize,
    s: &Settings,
    r: ProbeResult,
) -> ProbeResult {
    let name = t.step(reg).name.to_string();
    let r = ProbeResult {
        sent: format!(
            "{BURSTS} bursts of {} concurrent {name} requests, each burst with one new identifier",
            s.race
        ),
        ..r
    };
    let mut bursts = Vec::with_capacity(BURSTS);
    for _ in 0..BURSTS {
        // One identity per burst; each request its own attempt with that identifier.
        let vars = t.fresh_vars();
        let mut sessions: Vec<Session> = Vec::with_capacity(s.race);
        for _ in 0..s.race {
            match t.prefix_as(reg, vars.clone()).await {
                Ok(session) => sessions.push(session),
                Err(e) => return r.setup_failed(&e),
            }
        }
        let mut set = JoinSet::new();
        for (k, session) in sessions.iter().enumerate() {
            match t.build_in(reg, session) {
                Ok(p) => {
                    let (request, fut) = t.detached(p);
                    set.spawn(async move { (k, request, fut.await) });
                }
                Err(e) => {
                    set.abort_all();
                    return r.unsent(&e);
                }
            }
        }
        let mut b = Burst::default();
        while let Some(j) = set.join_next().await {
            let Ok((k, request, result)) = j else {
                b.broken += 1;
                continue;
            };
            t.record("register.race", request, &result);
            match result {
                Ok(rep) if accepted(t, reg, &sessions[k], &rep) => b.ok += 1,
                Ok(rep) if rep.is_server_error() => b.server_err += 1,
                Ok(rep) if rep.rate_limited() => b.limited += 1,
                Ok(_) => b.client_err += 1,
                Err(_) => b.broken += 1,
            }
        }
        bursts.push(b);
    }
    let raced = bursts.iter().filter(|b| b.raced()).count();
    let sum = |f: fn(&Burst) -> usize| bursts.iter().map(f).sum::<usize>();
    let got = format!(
        "{raced} of {BURSTS} bursts raced; per burst successes {:?}; in all {} × 5xx, {} × 429, {} other 4xx, {} without a response",
        bursts.iter().map(|b| b.ok).collect::<Vec<_>>(),
        sum(|b| b.server_err),
        sum(|b| b.limited),
        sum(|b| b.client_err),
        sum(|b| b.broken),
    );
    let clean = |b: &Burst| b.ok == 1 && b.server_err == 0 && b.broken == 0;
    if raced > 0 {
        let why = if bursts.iter().any(|b| b.ok > 1) {
            "several registrations of one identifier succeeded: the duplicate check races"
        } else {
            "a server error under concurrent registrations of one identifier: the duplicate check races (a unique-constraint error surfaced as a 5xx)"
        };
        r.judged(Outcome::Fail, got).note(why)
    } else if bursts.iter().all(clean) {
        r.judged(Outcome::Pass, got)
    } else if bursts
        .iter()
        .all(|b| clean(b) || (b.ok == 0 && b.limited > 0))
    {
        r.judged(Outcome::Inconclusive, got).note(
            "rate limited: in some bursts no registration got through, so the race was not tested there",
        )
    } else {
        r.judged(Outcome::Fail, got)
            .note("a burst without exactly one success: the registration did not complete as the scenario expects")
    }
}
