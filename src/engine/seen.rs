//! What the first successful flow of a run shows about the flow as a whole: the hosts
//! its steps and their followed redirects went to (a login that crosses from an app to
//! its identity provider) and the JWTs its variables held (algorithm, lifetime, issuer,
//! audience). Read once, from that flow's variable table and the hosts its redirects
//! reached, after it ended: only [`Reached::record`] is on the request path, and only
//! for a hop of a step that follows redirects.

use serde::{Deserialize, Serialize};
use url::{Origin, Url};

use super::claims::TokenFacts;
use super::flow::FlowContext;

/// One host a flow's steps (or a redirect one of them followed) went to, with those
/// steps' names.
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

/// The hosts one flow's followed redirects reached, each with the step that followed
/// it there (once per step and host).
#[derive(Debug, Default)]
pub struct Reached(Vec<(usize, Origin)>);

impl Reached {
    /// Forgets the last flow's hosts (keeps the room).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Step `step` followed a redirect to `url`.
    pub fn record(&mut self, step: usize, url: &Url) {
        let origin = url.origin();
        if !self.0.iter().any(|(s, o)| *s == step && *o == origin) {
            self.0.push((step, origin));
        }
    }

    /// The hosts step `step` was redirected to.
    fn of(&self, step: usize) -> impl Iterator<Item = &Origin> {
        self.0
            .iter()
            .filter(move |(s, _)| *s == step)
            .map(|(_, o)| o)
    }
}

/// The facts of a flow that ended with the variable table `vars`, its followed
/// redirects having reached `reached`. Hosts are listed only when the flow went beyond
/// the target: some step gives a `url`, or a redirect led to another host.
pub fn observe(ctx: &FlowContext, vars: &[String], reached: &Reached) -> FlowFacts {
    let mut hosts: Vec<HostSeen> = Vec::new();
    let any_url = ctx.scenario.steps.iter().any(|s| s.url.is_some());
    let steps = match any_url || !reached.0.is_empty() {
        true => &ctx.scenario.steps[..],
        false => &[],
    };
    for (i, step) in steps.iter().enumerate() {
        if let Some(url) = ctx.step_url(i, vars) {
            add_host(&mut hosts, url.origin().ascii_serialization(), &step.name);
        }
        for o in reached.of(i) {
            add_host(&mut hosts, o.ascii_serialization(), &step.name);
        }
    }
    // Every request went to the target: nothing to say.
    if !any_url && hosts.len() < 2 {
        hosts.clear();
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

/// Notes that step `name` went to `origin`.
fn add_host(hosts: &mut Vec<HostSeen>, origin: String, name: &str) {
    match hosts.iter_mut().find(|h| h.origin == origin) {
        Some(h) if h.steps.iter().any(|s| s == name) => {}
        Some(h) => h.steps.push(name.to_string()),
        None => hosts.push(HostSeen {
            origin,
            steps: vec![name.to_string()],
        }),
    }
}

/// `a (steps x, y); b (steps z)`, for a report line.
pub fn describe_hosts(hosts: &[HostSeen]) -> String {
    let parts: Vec<String> = hosts
        .iter()
        .map(|h| format!("{} ({})", h.origin, h.steps.join(", ")))
        .collect();
    parts.join("; ")
}
