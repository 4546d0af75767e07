//! What the first successful flow of a run shows about the flow as a whole: the hosts
//! its steps went to (a login that crosses from an app to its identity provider) and
//! the JWTs its variables held (algorithm, lifetime, issuer, audience). Read once, from
//! that flow's variable table, after it ended: nothing here is on the request path.

use serde::{Deserialize, Serialize};

use super::claims::TokenFacts;
use super::flow::FlowContext;

/// One host a flow's steps went to, with those steps' names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSeen {
    /// `scheme://host:port`.
    pub origin: String,
    pub steps: Vec<String>,
}

/// Hosts and tokens of one successful flow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowFacts {
    pub hosts: Vec<HostSeen>,
    pub tokens: Vec<TokenFacts>,
}

/// The facts of a flow that ended with the variable table `vars`. Hosts are listed only
/// when some step gives a `url` (otherwise every step went to the target).
pub fn observe(ctx: &FlowContext, vars: &[String]) -> FlowFacts {
    let mut hosts: Vec<HostSeen> = Vec::new();
    let steps = match ctx.scenario.steps.iter().any(|s| s.url.is_some()) {
        true => &ctx.scenario.steps[..],
        false => &[],
    };
    for (i, step) in steps.iter().enumerate() {
        let Some(url) = ctx.step_url(i, vars) else {
            continue;
        };
        let origin = url.origin().ascii_serialization();
        match hosts.iter_mut().find(|h| h.origin == origin) {
            Some(h) => h.steps.push(step.name.to_string()),
            None => hosts.push(HostSeen {
                origin,
                steps: vec![step.name.to_string()],
            }),
        }
    }
    let mut tokens: Vec<TokenFacts> = Vec::new();
    for ex in ctx.scenario.steps.iter().flat_map(|s| &s.extract) {
        if tokens.iter().any(|t| t.var == ex.var) {
            continue;
        }
        if let Some(f) = vars.get(ex.slot).and_then(|v| TokenFacts::of(&ex.var, v)) {
            tokens.push(f);
        }
    }
    FlowFacts { hosts, tokens }
}

/// `a (steps x, y); b (steps z)`, for a report line.
pub fn describe_hosts(hosts: &[HostSeen]) -> String {
    let parts: Vec<String> = hosts
        .iter()
        .map(|h| format!("{} ({})", h.origin, h.steps.join(", ")))
        .collect();
    parts.join("; ")
}
