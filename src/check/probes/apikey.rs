//! API-key probes (`apikey.*`): every step that sends an API key is replayed with the key
//! missing, wrong and empty. A service that accepts any of these lets anyone past its
//! first gate, so each must be refused with 401 or 403.

use super::{judge_rejection, result, step_name};
use crate::check::jwt;
use crate::check::roles::Roles;
use crate::check::target::Target;
use crate::check::{ProbeResult, Severity};

pub(super) async fn api_key_probes(t: &Target, roles: &Roles) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    for (i, header) in &roles.api_key {
        let name = step_name(t, *i);
        // The register step gets a fresh identity (and its own prelude) per request, so
        // an accepted request cannot hide the next one behind "email already registered".
        let fresh = Some(*i) == roles.register;
        let ctx = t.prefix(*i).await;
        let cases: [(&str, &str, Option<&str>); 3] = [
            ("missing", "no API key header", None),
            ("wrong", "a wrong API key", Some("wrong")),
            ("empty", "an empty API key", Some("")),
        ];
        for (case, what, value) in cases {
            let id = format!("apikey.{case}[{name}]");
            let r = result(
                id.clone(),
                Severity::High,
                &format!("{what} is refused"),
                format!("{} {} with {what} ({header})", t.step(*i).method, name),
                "401 or 403",
            );
            let session = match &ctx {
                Ok(_) if fresh => match t.prefix(*i).await {
                    Ok(v) => v,
                    Err(e) => {
                        out.push(r.setup_failed(&e));
                        continue;
                    }
                },
                Ok(v) => v.clone(),
                Err(e) => {
                    out.push(r.setup_failed(e));
                    continue;
                }
            };
            let probe = match t.build_in(*i, &session) {
                Ok(p) => p,
                Err(e) => {
                    out.push(r.skip(e.to_string()));
                    continue;
                }
            };
            let probe = match value {
                None => probe.remove_header(header),
                Some("wrong") => {
                    let mut v = session.clone();
                    v.vars[crate::scenario::SLOT_API_KEY] = format!("wrong-{}", jwt::garbage());
                    match t.build_in(*i, &v) {
                        Ok(p) => p,
                        Err(e) => {
                            out.push(r.skip(e.to_string()));
                            continue;
                        }
                    }
                }
                Some(v) => probe.header(header.clone(), v),
            };
            let reply = t.send(&id, probe).await;
            out.push(judge_rejection(
                t,
                *i,
                &session,
                r,
                &reply,
                &[401, 403],
                true,
            ));
        }
    }
    out
}
