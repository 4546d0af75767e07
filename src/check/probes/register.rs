//! Registration probes (`register.*`): duplicate and concurrent sign-ups of one email,
//! weak, missing, malformed, mistyped and oversized input, and passwords past bcrypt's
//! 72-byte limit. Sign-up is where accounts are created, so input it should refuse must
//! get a 4xx, never a 2xx or a 5xx, and a race must not create two accounts.

use reqwest::header::CONTENT_TYPE;

use super::prelude::{attempt, Attempt};
use super::{accepted, fields_of, judge_rejection, result, step_name, with_fields, Settings};
use crate::check::body;
use crate::check::roles::{Fields, Roles};
use crate::check::target::{Reply, SendError, Session, SetupError, Target};
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

    // The steps before register (a sign-up form's CSRF token, a first request answered
    // with a session), for a fresh identity.
    if let Err(e) = t.prefix(reg).await {
        return titles
            .iter()
            .enumerate()
            .map(|(k, _)| probe_result(k, "–".into()).setup_failed(&e))
            .collect();
    }

    // Duplicate: a new attempt (its prelude run again, with fresh values of its own)
    // with the identifier of a finished registration, never a replay of that one.
    {
        let r = probe_result(
            0,
            format!("{name} twice with one identifier, each a whole new attempt"),
        );
        let mut first = fresh(t, reg).await;
        match t.run_step(reg, &mut first).await {
            Err(e) => out.push(r.setup_failed(&e)),
            Ok(_) => match t.prefix_as(reg, first.vars.clone()).await {
                Err(e) => out.push(r.setup_failed(&e)),
                Ok(second) => {
                    let reply = t.send_step("register.duplicate", reg, &second, |p| p).await;
                    out.push(judge_rejection(
                        t,
                        reg,
                        &second,
                        r,
                        &reply,
                        &[400, 409, 422],
                        false,
                    ));
                }
            },
        }
    }

    out.push(super::race::race_probe(t, reg, s, probe_result(1, String::new())).await);

    let body_of = |session: &Session| fields_of(t, reg, &session.vars);
    const NOT_EDITABLE: &str = "the register body is not a JSON object or a form";

    // Short password (also in the prelude steps that send the password).
    {
        let r = probe_result(2, format!("{name} with password \"a1!\""));
        let pw = fields.password.clone();
        let alter = |b: &mut body::Fields| b.set(&pw, "a1!");
        out.push(
            match altered(
                t,
                "register.short_password",
                reg,
                &[&fields.password],
                &alter,
            )
            .await
            {
                Err(Stop::Setup(e)) => r.setup_failed(&e),
                Err(Stop::NotEditable) => r.skip(NOT_EDITABLE),
                Ok((step, session, reply)) => {
                    judge_rejection(t, step, &session, r, &reply, &[400, 422], false)
                }
            },
        );
    }

    // Missing fields: only those the login needs (its identifier and the password);
    // anything else the service may treat as optional. Each body is its own attempt,
    // the field missing from the prelude steps that send it too.
    {
        let session = fresh(t, reg).await;
        let drops = required_fields(t, roles, reg, &fields, &session);
        let sent = format!(
            "{name} without {} and with an empty body",
            drops.join(", without ")
        );
        let r = probe_result(3, sent);
        if body_of(&session).is_none() {
            out.push(r.skip(NOT_EDITABLE));
        } else {
            let mut worst: Option<ProbeResult> = None;
            let mut gots = Vec::new();
            let all: Vec<&str> = drops.iter().map(String::as_str).collect();
            let mut cases: Vec<Option<&str>> = drops.iter().map(|d| Some(d.as_str())).collect();
            cases.push(None);
            for case in cases {
                let keys: Vec<&str> = match case {
                    Some(k) => vec![k],
                    None => all.clone(),
                };
                let alter = |b: &mut body::Fields| match case {
                    Some(k) => b.remove(k),
                    None => *b = b.empty(),
                };
                let j = match altered(t, "register.missing_fields", reg, &keys, &alter).await {
                    Err(Stop::Setup(e)) => r.clone().setup_failed(&e),
                    Err(Stop::NotEditable) => r.clone().skip(NOT_EDITABLE),
                    Ok((step, session, reply)) => {
                        judge_rejection(t, step, &session, r.clone(), &reply, &[400, 422], false)
                    }
                };
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
        out.push(judge_rejection(
            t,
            reg,
            &session,
            r,
            &reply,
            &[400, 422],
            false,
        ));
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
        out.push(judge_rejection(
            t,
            reg,
            &session,
            r,
            &reply,
            &[415, 400, 422],
            false,
        ));
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
        let j = judge_rejection(t, reg, &session, r, &reply, &[413], false);
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
    out.push(long_password_probe(t, roles, reg, &fields, probe_result(7, String::new())).await);
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

/// Why an altered registration could not be sent.
enum Stop {
    Setup(SetupError),
    NotEditable,
}

/// A registration attempt with its body changed by `alter`, and the prelude steps that
/// send one of `keys` changed alike: the step whose answer decides (register, or the
/// prelude step that refused the input), the session and that answer.
async fn altered(
    t: &Target,
    probe_id: &str,
    reg: usize,
    keys: &[&str],
    alter: &dyn Fn(&mut body::Fields),
) -> Result<(usize, Session, Result<Reply, SendError>), Stop> {
    match attempt(t, probe_id, reg, None, keys, alter).await {
        Attempt::Setup(e) => Err(Stop::Setup(e)),
        Attempt::Refused {
            step,
            session,
            reply,
        } => Ok((step, session, reply)),
        Attempt::Ready(session) => {
            let mut b = fields_of(t, reg, &session.vars).ok_or(Stop::NotEditable)?;
            alter(&mut b);
            let reply = match with_fields(t, reg, &session, &b) {
                Ok(p) => t.send(probe_id, p).await,
                Err(e) => Err(e),
            };
            Ok((reg, session, reply))
        }
    }
}

fn rank(o: Outcome) -> u8 {
    match o {
        Outcome::Pass => 0,
        Outcome::Skip => 1,
        Outcome::Warn => 2,
        Outcome::Inconclusive => 3,
        Outcome::Error => 4,
        Outcome::Fail => 5,
    }
}

async fn long_password_probe(
    t: &Target,
    roles: &Roles,
    reg: usize,
    fields: &Fields,
    mut r: ProbeResult,
) -> ProbeResult {
    let prefix: String = format!("Lp9-{}", "x".repeat(68));
    let (p1, p2) = (format!("{prefix}-tail-one"), format!("{prefix}-tail-two"));
    r.sent =
        "register with an 81-byte password, then log in with another sharing its first 72 bytes"
            .to_string();
    let pw = fields.password.clone();
    let alter = |b: &mut body::Fields| b.set(&pw, &p1);
    let (step, mut session, reply) = match altered(
        t,
        "register.long_password",
        reg,
        &[&fields.password],
        &alter,
    )
    .await
    {
        Err(Stop::Setup(e)) => return r.setup_failed(&e),
        Err(Stop::NotEditable) => {
            return r.skip("the register body is not a JSON object or a form")
        }
        Ok(x) => x,
    };
    let rep = match reply {
        Err(e) => return r.unsent(&e),
        Ok(rep) => rep,
    };
    if rep.rate_limited() {
        return r.limited(&rep);
    }
    if rep.is_server_error() {
        return r.judged(Outcome::Fail, rep.brief());
    }
    if step != reg || !t.accepts(reg, &session, &rep) {
        return r
            .judged(Outcome::Pass, format!("register: {}", rep.brief()))
            .note("over-long passwords are refused");
    }
    if t.finish_step(reg, &mut session, &rep).is_err() {
        return r.skip("the register answer could not be used for the login");
    }
    session.replies.push(rep.clone());
    let (Some(login), Some(lf)) = (roles.login, &roles.login_fields) else {
        return r.skip("accepted the long password, and there is no login step to test it");
    };
    // The steps between register and login (none, usually), then the login.
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
        Ok(l) if l.rate_limited() => r.limited(&l),
        Ok(l) if accepted(t, login, &session, &l) => r
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
