//! Whole preludes: a probe that registers (or logs in) with altered input replays the
//! steps before that step with fresh values for its own attempt (a CSRF page, a first
//! request answered with a session or a challenge), and alters those of them that carry
//! the same fields the same way. A two-step sign-up that sends the password in its
//! first request and keeps it in the session would otherwise accept a second request
//! "without a password" because the first one had it.
//!
//! A prelude step that answers the altered input with something other than its
//! expected answer has refused it: the probe judges that answer.

use super::{fields_of, with_fields};
use crate::check::body::Fields;
use crate::check::target::{Reply, SendError, Session, SetupError, Target};

/// Where an altered attempt stopped.
pub(super) enum Attempt {
    /// Every step before the target step ran: it can be sent in this session.
    Ready(Session),
    /// Prelude step `step` answered the altered input as its scenario does not expect:
    /// the service refused it there.
    Refused {
        step: usize,
        session: Session,
        reply: Result<Reply, SendError>,
    },
    /// A step the alteration does not touch failed: no verdict from this attempt.
    Setup(SetupError),
}

/// Whether step `i`'s body carries one of `keys` (the fields an alteration changes).
fn carries(t: &Target, i: usize, vars: &[String], keys: &[&str]) -> bool {
    fields_of(t, i, vars).is_some_and(|b| b.keys().iter().any(|k| keys.contains(&k.as_str())))
}

/// Runs steps `0..upto` for a fresh identity (or one with `vars`), applying `alter` to
/// the body of each step that carries one of `keys`; the replies are kept under
/// `probe_id`.
pub(super) async fn attempt(
    t: &Target,
    probe_id: &str,
    upto: usize,
    vars: Option<Vec<String>>,
    keys: &[&str],
    alter: &dyn Fn(&mut Fields),
) -> Attempt {
    let mut session = match vars {
        Some(vars) => Session {
            vars,
            ..Session::default()
        },
        None => t.fresh(),
    };
    for i in 0..upto.min(t.scenario.steps.len()) {
        if !carries(t, i, &session.vars, keys) {
            match t.run_step(i, &mut session).await {
                Ok(reply) => session.replies.push(reply),
                Err(e) => return Attempt::Setup(e),
            }
            continue;
        }
        let Some(mut body) = fields_of(t, i, &session.vars) else {
            continue;
        };
        alter(&mut body);
        let probe = match with_fields(t, i, &session, &body) {
            Ok(p) => p,
            Err(e) => {
                return Attempt::Refused {
                    step: i,
                    session,
                    reply: Err(e),
                }
            }
        };
        session
            .requests
            .push(crate::check::target::describe(&probe.request));
        let reply = match t.send(probe_id, probe).await {
            Ok(reply) => reply,
            Err(e) => {
                return Attempt::Refused {
                    step: i,
                    session,
                    reply: Err(e),
                }
            }
        };
        match t.finish_step(i, &mut session, &reply) {
            Ok(()) => session.replies.push(reply),
            Err(SetupError::Refused { .. }) => {
                return Attempt::Refused {
                    step: i,
                    session,
                    reply: Ok(reply),
                }
            }
            Err(e) => return Attempt::Setup(e),
        }
    }
    Attempt::Ready(session)
}
