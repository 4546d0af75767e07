//! Registration probes (`register.*`): duplicate and concurrent sign-ups of one email,
//! weak, missing, malformed, mistyped and oversized input, and passwords past bcrypt's
//! 72-byte limit. Sign-up is where accounts are created, so input it should refuse must
//! get a 4xx, never a 2xx or a 5xx, and a race must not create two accounts.

use reqwest::header::CONTENT_TYPE;
use tokio::task::JoinSet;

use super::{accepted, fields_of, judge_rejection, result, step_name, with_fields, Settings};
use crate::check::body;
use crate::check::roles::{Fields, Roles};
use crate::check::target::{Session, Target};
use crate::check::{Outcome, ProbeResult, Severity};

pub(super) async fn register_probes(t: &Target, roles: &Roles, s: &Settings) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    let titles: [(&str, Severity, &str, &str); 8] = [
        (
            "duplicate",
            Severity::High,
            "a duplicate email is refused",
            "4xx",
        ),
        (
            "race",
            Severity::High,
            "concurrent registrations of one email: one wins",
            "exactly one 2xx, no 5xx",
        ),
        (
            "short_password",
            Severity::Medium,
            "a 3-character password is refused",
            "4xx",
        ),
        (
            "missing_fields",
            Severity::Medium,
            "bodies missing a field are refused",
            "4xx for each",
        ),
        (
            "malformed_json",
            Severity::Medium,
            "malformed JSON is refused",
            "4xx",
        ),
        (
            "content_type",
            Severity::Low,
            "a non-JSON content type is refused",
            "4xx (415)",
        ),
        (
            "large_body",
            Severity::Medium,
            "a 1 MiB body is refused",
            "4xx (413)",
        ),
        (
            "long_password",
            Severity::High,
            "bcrypt's 72-byte limit is handled",
            "over-long refused, or both tails distinct",
        ),
    ];
    let (Some(reg), Some(fields)) = (roles.register, roles.register_fields.clone()) else {
        return titles
            .iter()
            .map(|(id, sev, title, exp)| {
                result(format!("register.{id}"), *sev, title, "–", exp)
                    .skip("no register step found in the scenario")
            })
            .collect();
    };
    let name = step_name(t, reg);
    let probe_result = |k: usize, sent: String| {
        let (id, sev, title, exp) = titles[k];
        result(format!("register.{id}"), sev, title, sent, exp)
    };

    // The steps before register (a sign-up form's CSRF token), for a fresh identity.
    if let Err(e) = t.prefix(reg).await {
        return titles
            .iter()
            .enumerate()
            .map(|(k, _)| probe_result(k, "–".into()).setup_failed(&e))
            .collect();
    }

    // Duplicate.
    {
        let r = probe_result(0, format!("{name} twice with one email"));
        let mut session = fresh(t, reg).await;
        match t.run_step(reg, &mut session).await {
            Err(e) => out.push(r.setup_failed(&e)),
            Ok(_) => {
                let reply = t
                    .send_step("register.duplicate", reg, &session, |p| p)
                    .await;
                out.push(judge_rejection(r, &reply, &[400, 409, 422], false));
            }
        }
    }

    // Race.
    {
        let r = probe_result(
            1,
            format!("{} concurrent {name} requests with one new email", s.race),
        );
        let session = fresh(t, reg).await;
        let mut set = JoinSet::new();
        let mut build_error = None;
        for _ in 0..s.race {
            match t.build_in(reg, &session) {
                Ok(p) => {
                    let (request, fut) = t.detached(p);
                    set.spawn(async move { (request, fut.await) });
                }
                Err(e) => build_error = Some(e),
            }
        }
        if let Some(e) = build_error {
            set.abort_all();
            out.push(r.unsent(&e));
        } else {
            let (mut ok, mut server_err, mut client_err, mut broken) = (0, 0, 0, 0);
            while let Some(j) = set.join_next().await {
                let j = j.map(|(request, result)| {
                    t.record("register.race", request, &result);
                    result
                });
                match j {
                    Ok(Ok(rep)) if accepted(t, reg, &rep) => ok += 1,
                    Ok(Ok(rep)) if rep.is_server_error() => server_err += 1,
                    Ok(Ok(_)) => client_err += 1,
                    _ => broken += 1,
                }
            }
            let got = format!(
                "{ok} × 2xx, {client_err} × 4xx, {server_err} × 5xx, {broken} without a response"
            );
            out.push(if ok == 1 && server_err == 0 && broken == 0 {
                r.judged(Outcome::Pass, got)
            } else if ok > 1 {
                r.judged(Outcome::Fail, got)
                    .note("several registrations of one email succeeded: the duplicate check races")
            } else {
                r.judged(Outcome::Fail, got)
            });
        }
    }

    let body_of = |session: &Session| fields_of(t, reg, &session.vars);
    const NOT_EDITABLE: &str = "the register body is not a JSON object or a form";

    // Short password.
    {
        let r = probe_result(2, format!("{name} with password \"a1!\""));
        let session = fresh(t, reg).await;
        match body_of(&session) {
            None => out.push(r.skip(NOT_EDITABLE)),
            Some(mut b) => {
                b.set(&fields.password, "a1!");
                let reply = match with_fields(t, reg, &session, &b) {
                    Ok(p) => t.send("register.short_password", p).await,
                    Err(e) => Err(e),
                };
                out.push(judge_rejection(r, &reply, &[400, 422], false));
            }
        }
    }

    // Missing fields: only those the login needs (its identifier and the password);
    // anything else the service may treat as optional.
    {
        let session = fresh(t, reg).await;
        let drops = required_fields(t, roles, reg, &fields, &session);
        let sent = format!(
            "{name} without {} and with an empty body",
            drops.join(", without ")
        );
        let r = probe_result(3, sent);
        match body_of(&session) {
            None => out.push(r.skip(NOT_EDITABLE)),
            Some(b) => {
                let mut bodies: Vec<body::Fields> = drops
                    .iter()
                    .map(|k| {
                        let mut b = b.clone();
                        b.remove(k);
                        b
                    })
                    .collect();
                bodies.push(b.empty());
                let mut worst: Option<ProbeResult> = None;
                let mut gots = Vec::new();
                for body in &bodies {
                    let reply = match with_fields(t, reg, &session, body) {
                        Ok(p) => t.send("register.missing_fields", p).await,
                        Err(e) => Err(e),
                    };
                    let j = judge_rejection(r.clone(), &reply, &[400, 422], false);
                    gots.push(j.got.clone());
                    if worst
                        .as_ref()
                        .is_none_or(|w| rank(j.outcome) > rank(w.outcome))
                    {
                        worst = Some(j);
                    }
                }
                if let Some(w) = worst {
                    let outcome = w.outcome;
                    let mut w = w.judged(outcome, gots.join("; "));
                    if outcome == Outcome::Pass {
                        w.note = None;
                    }
                    out.push(w);
                }
            }
        }
    }

    // Malformed JSON.
    {
        let r = probe_result(4, format!("{name} with a JSON body cut in half"));
        let session = fresh(t, reg).await;
        let text = match body_of(&session) {
            Some(b @ body::Fields::Json(_)) => String::from_utf8_lossy(&b.render().1).into_owned(),
            _ => "{\"a\":\"b\"}".into(),
        };
        let half = text.as_bytes()[..text.len() / 2].to_vec();
        let reply = t
            .send_step("register.malformed_json", reg, &session, |p| {
                p.header(CONTENT_TYPE, "application/json").body(half)
            })
            .await;
        out.push(judge_rejection(r, &reply, &[400, 422], false));
    }

    // Content type.
    {
        let r = probe_result(
            5,
            format!("{name} with a valid body as Content-Type: text/plain"),
        );
        let session = fresh(t, reg).await;
        let reply = t
            .send_step("register.content_type", reg, &session, |p| {
                p.header(CONTENT_TYPE, "text/plain")
            })
            .await;
        out.push(judge_rejection(r, &reply, &[415, 400, 422], false));
    }

    // Large body.
    {
        let r = probe_result(
            6,
            format!("{name} with a 1 MiB JSON body (a long extra field)"),
        );
        let session = fresh(t, reg).await;
        let mut b = body_of(&session).unwrap_or(body::Fields::Json(Default::default()));
        b.set("padding", &"a".repeat(1 << 20));
        let reply = match with_fields(t, reg, &session, &b) {
            Ok(p) => t.send("register.large_body", p).await,
            Err(e) => Err(e),
        };
        let j = judge_rejection(r, &reply, &[413], false);
        out.push(match &reply {
            Err(_) => j.note(
                "no answer on a fresh connection: the server closed it instead of answering; a 413 is clearer",
            ),
            Ok(rep) if rep.status != 413 && j.outcome == Outcome::Pass => {
                j.note("413 is the precise status")
            }
            _ => j,
        });
    }

    // Passwords over bcrypt's 72 bytes.
    let session = fresh(t, reg).await;
    out.push(
        long_password_probe(
            t,
            roles,
            reg,
            &fields,
            session,
            probe_result(7, String::new()),
        )
        .await,
    );
    out
}

/// The register fields a login needs: the password, and the field holding the value the
/// login sends as its identifier (found by value, so `username` at login can be
/// `email` at sign-up); without a login step, the identifier register's own body names.
fn required_fields(
    t: &Target,
    roles: &Roles,
    reg: usize,
    fields: &Fields,
    session: &Session,
) -> Vec<String> {
    let mut out = vec![fields.password.clone()];
    let reg_body = fields_of(t, reg, &session.vars);
    let by_login = roles
        .login
        .zip(roles.login_fields.as_ref())
        .and_then(|(l, lf)| {
            let value = fields_of(t, l, &session.vars)?.get(lf.identity.as_deref()?)?;
            let rb = reg_body.as_ref()?;
            rb.keys()
                .into_iter()
                .find(|k| *k != fields.password && rb.get(k).as_deref() == Some(value.as_str()))
        });
    if let Some(id) = by_login.or_else(|| fields.identity.clone()) {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// A new identity with the steps before register run (a sign-up form's CSRF token).
/// They succeeded for the first probe; a failure now shows in the probe's own answer.
async fn fresh(t: &Target, reg: usize) -> Session {
    t.prefix(reg).await.unwrap_or_else(|_| t.fresh())
}

fn rank(o: Outcome) -> u8 {
    match o {
        Outcome::Pass => 0,
        Outcome::Skip => 1,
        Outcome::Warn => 2,
        Outcome::Error => 3,
        Outcome::Fail => 4,
    }
}

async fn long_password_probe(
    t: &Target,
    roles: &Roles,
    reg: usize,
    fields: &Fields,
    session: Session,
    mut r: ProbeResult,
) -> ProbeResult {
    let prefix: String = format!("Lp9-{}", "x".repeat(68));
    let (p1, p2) = (format!("{prefix}-tail-one"), format!("{prefix}-tail-two"));
    r.sent =
        "register with an 81-byte password, then log in with another sharing its first 72 bytes"
            .to_string();
    let Some(mut b) = fields_of(t, reg, &session.vars) else {
        return r.skip("the register body is not a JSON object or a form");
    };
    b.set(&fields.password, &p1);
    let reply = match with_fields(t, reg, &session, &b) {
        Ok(p) => t.send("register.long_password", p).await,
        Err(e) => Err(e),
    };
    let rep = match reply {
        Err(e) => return r.unsent(&e),
        Ok(rep) => rep,
    };
    if rep.is_server_error() {
        return r.judged(Outcome::Fail, rep.brief());
    }
    if rep.is_client_error() {
        return r
            .judged(Outcome::Pass, format!("register: {}", rep.brief()))
            .note("over-long passwords are refused");
    }
    let (Some(login), Some(lf)) = (roles.login, &roles.login_fields) else {
        return r.skip("accepted the long password, and there is no login step to test it");
    };
    // The steps between register and login (none, usually), then the login.
    let mut session = session;
    for i in reg + 1..login {
        if let Err(e) = t.run_step(i, &mut session).await {
            return r.setup_failed(&e);
        }
    }
    let Some(mut lb) = fields_of(t, login, &session.vars) else {
        return r.skip("the login body is not a JSON object or a form");
    };
    lb.set(&lf.password, &p2);
    let reply = match with_fields(t, login, &session, &lb) {
        Ok(p) => t.send("register.long_password", p).await,
        Err(e) => Err(e),
    };
    match reply {
        Err(e) => r.unsent(&e),
        Ok(l) if accepted(t, login, &l) => r
            .judged(
                Outcome::Fail,
                format!(
                    "register: {}, login with the other password: {}",
                    rep.status,
                    l.brief()
                ),
            )
            .note("only the first 72 bytes count: reject longer passwords or pre-hash them"),
        Ok(l) if l.is_server_error() => r.judged(Outcome::Fail, l.brief()),
        Ok(l) if l.status == 429 => r
            .judged(Outcome::Warn, l.brief())
            .note("rate-limited before it could be tested"),
        Ok(l) => r
            .judged(
                Outcome::Pass,
                format!(
                    "register: {}, login with the other password: {}",
                    rep.status,
                    l.brief()
                ),
            )
            .note("long passwords are accepted and the bytes past 72 count"),
    }
}
