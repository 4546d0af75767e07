//! Runs one flow: the scenario's steps in order, with a per-flow variable table.
//!
//! Each step's request is rendered here, before the clock starts, and sent by
//! [`super::transport`], which times it from just before it is handed to the HTTP client
//! until the last byte of its body has arrived; the response is then checked here. A step
//! that fails ends its flow. The result of every step and of the flow goes out as a
//! [`Sample`]; nothing here prints or stores samples.
//!
//! A flow keeps its cookies in a [`Jar`] (when the scenario has `cookies = true`), starts
//! with its `[data]` row's values in its variable table, and sleeps a step's think time
//! after its response: outside the step's latency, inside the flow's time.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Sender;
use url::Url;

use super::cookies::Jar;
use super::request::{
    add_cookie, h2_request, http1_request, random_alnum, render_headers, uuid_v4,
};
use super::transport::http1::{Conn, Http1};
use super::transport::http2::{H2Conn, Http2};
use super::transport::{self, micros, Times};
use crate::samples::{Batch, FailureKind, Sample};
use crate::scenario::{
    Scenario, Step, SLOT_API_KEY, SLOT_NONCE, SLOT_PKCE_CHALLENGE, SLOT_PKCE_VERIFIER, SLOT_RANDOM,
    SLOT_RUN_ID, SLOT_SEQ, SLOT_STATE, SLOT_TARGET, SLOT_TARGET_ORIGIN, SLOT_UUID,
};

/// `scheme://host:port` of a base URL (what precedes its path), as written.
pub(crate) fn origin_of(base: &str) -> &str {
    let after = base.find("://").map_or(0, |i| i + 3);
    match base[after..].find('/') {
        Some(i) => &base[..after + i],
        None => base,
    }
}

/// `check` sends with reqwest too, and names its failures the same way.
pub use super::transport::classify;

/// `check` checks responses as flows do.
pub(crate) use super::response::check_with_cookies;

/// What every flow of a run shares.
pub struct FlowContext {
    pub scenario: Arc<Scenario>,
    pub client: reqwest::Client,
    /// Target URL without a trailing slash; step paths start with `/`.
    pub base_url: String,
    pub api_key: String,
    pub run_id: String,
    /// Per step, the parsed URL when its path has no variable: parsed once, not per request
    /// (URL parsing and IDNA were ~5% of the client's CPU on the health scenario).
    pub static_urls: std::sync::OnceLock<Vec<Option<reqwest::Url>>>,
    /// The hyper client for `http://` targets; `None` sends with reqwest (`https://`).
    pub fast: Option<Arc<Http1>>,
    /// The HTTP/2 client (`--http 2`, or ALPN picked `h2`); when set, it serves instead
    /// of `fast` and reqwest.
    pub h2: Option<Arc<Http2>>,
    /// Whether a flow takes a kept-alive connection and gives it back (`--connections
    /// shared`), or opens its own like a new user (`per-flow`).
    pub pool_connections: bool,
    /// `--max-body`: the most bytes of a response body kept (the rest is read, counted and
    /// dropped); a step that reads a longer body fails as `body_too_large`.
    pub max_body: usize,
}

/// How a flow ended, as its worker needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEnd {
    Ok,
    /// A step failed for another reason than a refused connection.
    Failed,
    /// A step could not connect (refused, unreachable): the target is not serving.
    Refused,
    /// A step could not open a connection for lack of a local port or descriptor: this
    /// machine's limit, not the target's.
    Starved,
}

/// When a flow started relative to its schedule, and whether it is measured.
#[derive(Debug, Clone, Copy)]
pub struct FlowTiming {
    /// How late the flow started against its intended start (0 in closed loop, where the
    /// intended start is when the worker is free).
    pub lateness_us: u64,
    /// False during the warm-up: the flow runs but its steps are not recorded.
    pub measured: bool,
}

impl FlowTiming {
    pub const ON_TIME: FlowTiming = FlowTiming {
        lateness_us: 0,
        measured: true,
    };
}

/// A flow's samples until they are sent. Dropped unsent (the flow was cut off by an
/// interrupt), it hands over the steps that finished, without waiting: the collector is
/// still draining then, and a full channel loses only these few.
struct Pending<'a> {
    samples: Batch,
    tx: &'a Sender<Batch>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.samples.is_empty() {
            let _ = self.tx.try_send(std::mem::take(&mut self.samples));
        }
    }
}

/// A step that got no complete response (not built, not sent, or no answer).
fn no_response(times: Times, k: FailureKind) -> (Times, StepOutcome) {
    (
        times,
        StepOutcome {
            responded: false,
            failure: Some(k),
            redirects: 0,
        },
    )
}

/// A step that got a response, checked.
fn responded(times: Times, failure: Option<FailureKind>) -> (Times, StepOutcome) {
    (
        times,
        StepOutcome {
            responded: true,
            failure,
            redirects: 0,
        },
    )
}

/// A step's outcome before it becomes a sample.
struct StepOutcome {
    responded: bool,
    failure: Option<FailureKind>,
    /// Redirects followed (`follow = true` steps only).
    redirects: u64,
}

/// What a worker reuses from one flow to the next: the variable table, scratch buffers,
/// and the request timer. The timer is reset for each request rather than made anew:
/// moving an armed timer's deadline later is one atomic operation in tokio, while a new
/// timer per request takes the timer wheel's lock twice (arm and disarm), which showed as
/// ~4% of the client's CPU on the health scenario.
pub struct FlowState {
    vars: Vec<String>,
    body: Vec<u8>,
    scratch: String,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Emptied at each flow's start and end: cookies never pass from flow to flow.
    jar: Jar,
    /// The hosts this flow's followed redirects reached; emptied at each flow's start.
    reached: super::seen::Reached,
}

impl FlowState {
    /// Must be called inside the runtime (the timer belongs to it), which is why there is
    /// no `Default`: it would panic where a default is expected not to.
    #[allow(clippy::new_without_default)]
    pub fn new() -> FlowState {
        FlowState {
            vars: Vec::new(),
            body: Vec::new(),
            scratch: String::new(),
            // Not armed until the first request resets it.
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(86_400 * 365))),
            jar: Jar::default(),
            reached: Default::default(),
        }
    }

    /// The variable table as the last flow left it (its `[vars]`, data columns and
    /// extracted values).
    pub fn vars(&self) -> &[String] {
        &self.vars
    }

    /// The hosts the last flow's followed redirects reached.
    pub fn reached(&self) -> &super::seen::Reached {
        &self.reached
    }
}

impl FlowContext {
    /// The per-flow variable table with the built-ins, the data row (row `seq`, wrapping
    /// around) and `[vars]` filled in.
    pub(crate) fn new_vars(&self, seq: u64) -> Vec<String> {
        let mut vars = Vec::new();
        let row = self.scenario.data.as_ref().map(|d| {
            let rows = d.feeder.len().max(1) as u64;
            (seq % rows) as usize
        });
        self.fill_vars(seq, row, &mut vars);
        vars
    }

    /// Resets `vars` to a fresh flow's table (keeping its allocations), with the values of
    /// data row `row`.
    fn fill_vars(&self, seq: u64, row: Option<usize>, vars: &mut Vec<String>) {
        vars.resize(self.scenario.slot_count, String::new());
        vars.iter_mut().for_each(String::clear);
        // Only the built-ins some template reads: the health scenario reads none, and a
        // UUID and a random string per flow are measurable at 20k flows/s.
        let used = |slot: usize| self.scenario.builtins_used.get(slot) == Some(&true);
        if used(SLOT_API_KEY) {
            vars[SLOT_API_KEY].push_str(&self.api_key);
        }
        if used(SLOT_SEQ) {
            use std::fmt::Write;
            let _ = write!(vars[SLOT_SEQ], "{seq}");
        }
        if used(SLOT_RUN_ID) {
            vars[SLOT_RUN_ID].push_str(&self.run_id);
        }
        if used(SLOT_UUID) {
            vars[SLOT_UUID] = uuid_v4(rand::random());
        }
        if used(SLOT_RANDOM) {
            vars[SLOT_RANDOM] = random_alnum(16);
        }
        if self.scenario.uses_auth_builtins() {
            self.fill_auth_builtins(vars);
        }
        if let (Some(d), Some(row)) = (&self.scenario.data, row) {
            for (i, (_, slot)) in d.columns().enumerate() {
                vars[slot].push_str(d.feeder.value(row, i));
            }
        }
        for (slot, t) in &self.scenario.vars {
            vars[*slot] = t.render(vars);
        }
    }

    /// The target and the per-flow auth primitives (PKCE, `state`, `nonce`), the ones some
    /// template reads.
    fn fill_auth_builtins(&self, vars: &mut [String]) {
        use crate::scenario::functions;
        let used = |slot: usize| self.scenario.builtins_used.get(slot) == Some(&true);
        if used(SLOT_TARGET) {
            vars[SLOT_TARGET].push_str(&self.base_url);
        }
        if used(SLOT_TARGET_ORIGIN) {
            vars[SLOT_TARGET_ORIGIN].push_str(origin_of(&self.base_url));
        }
        if used(SLOT_PKCE_VERIFIER) || used(SLOT_PKCE_CHALLENGE) {
            vars[SLOT_PKCE_VERIFIER] = functions::pkce_verifier();
            vars[SLOT_PKCE_CHALLENGE] = functions::pkce_challenge(&vars[SLOT_PKCE_VERIFIER]);
        }
        if used(SLOT_STATE) {
            vars[SLOT_STATE] = functions::random_token(16);
        }
        if used(SLOT_NONCE) {
            vars[SLOT_NONCE] = functions::random_token(16);
        }
    }

    /// Runs flow number `seq` (with data row `row`) with `client` and sends its samples,
    /// as one [`Batch`] when the flow ends. Returns how it ended, or `None` when the
    /// collector has gone away (the run is being torn down). A flow cut off mid-way (an
    /// interrupt past the grace period drops it) still hands over the steps it finished,
    /// from a drop guard.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_flow(
        &self,
        seq: u64,
        row: Option<usize>,
        client: &reqwest::Client,
        timing: FlowTiming,
        tx: &Sender<Batch>,
        state: &mut FlowState,
    ) -> Option<FlowEnd> {
        let FlowState {
            vars,
            body,
            scratch,
            timer,
            jar,
            reached,
        } = state;
        self.fill_vars(seq, row, vars);
        // A flow cut off by an interrupt may have left cookies behind.
        jar.clear();
        reached.clear();
        let mut conn: Option<Conn> = match &self.fast {
            Some(f) if self.pool_connections => f.take(),
            _ => None,
        };
        // Per-flow connections under HTTP/2: the flow's own, dropped (closed) at its end.
        let mut h2_own: Option<Arc<H2Conn>> = None;
        let mut pending = Pending {
            samples: Batch::new(),
            tx,
        };
        let flow_start = Instant::now();
        let mut failed_step = None;
        let (mut refused, mut starved) = (false, false);
        let last = self.scenario.steps.len().saturating_sub(1);
        for (i, step) in self.scenario.steps.iter().enumerate() {
            let (t, outcome) = self
                .run_step(
                    client,
                    &mut conn,
                    &mut h2_own,
                    i,
                    step,
                    vars,
                    body,
                    scratch,
                    (jar, reached),
                    timer.as_mut(),
                )
                .await;
            let failed = outcome.failure.is_some();
            refused = matches!(outcome.failure, Some(FailureKind::Connect));
            starved = matches!(
                outcome.failure,
                Some(FailureKind::Ports | FailureKind::Descriptors)
            );
            if timing.measured {
                if let Some(us) = t.connect_us {
                    pending.samples.push(Sample::Connect { step: i, us });
                }
                if let Some(us) = t.tls_us {
                    pending.samples.push(Sample::Tls { step: i, us });
                }
                if outcome.redirects > 0 {
                    let hops = outcome.redirects;
                    pending.samples.push(Sample::Redirects { step: i, hops });
                }
                if let Some(FailureKind::Closed { reused, .. }) = outcome.failure {
                    pending.samples.push(Sample::Closed {
                        step: i,
                        reused,
                        idle_us: t.idle_us.unwrap_or(0),
                        waited_us: t.total_us,
                    });
                }
                pending.samples.push(Sample::Step {
                    step: i,
                    elapsed_us: t.total_us,
                    ttfb_us: t.ttfb_us,
                    bytes: t.body_bytes,
                    responded: outcome.responded,
                    failure: outcome.failure,
                });
            }
            if failed {
                failed_step = Some(i);
                break;
            }
            // Think time: after the response, before the next step; in the flow's time,
            // not the step's. Nothing follows the last step, so it has none.
            if let (Some(think), true) = (&step.think, i < last) {
                tokio::time::sleep(think.sample()).await;
            }
        }
        let elapsed_us = micros(flow_start.elapsed());
        jar.clear();
        if let (Some(f), Some(c), true) = (&self.fast, conn, self.pool_connections) {
            f.give(c);
        }
        pending.samples.push(Sample::Flow {
            elapsed_us,
            lateness_us: timing.lateness_us,
            failed_step,
            measured: timing.measured,
        });
        let batch = std::mem::take(&mut pending.samples);
        tx.send(batch).await.ok()?;
        Some(match failed_step {
            None => FlowEnd::Ok,
            Some(_) if refused => FlowEnd::Refused,
            Some(_) if starved => FlowEnd::Starved,
            Some(_) => FlowEnd::Failed,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_step(
        &self,
        client: &reqwest::Client,
        conn: &mut Option<Conn>,
        h2_own: &mut Option<Arc<H2Conn>>,
        index: usize,
        step: &Step,
        vars: &mut [String],
        body: &mut Vec<u8>,
        scratch: &mut String,
        (jar, reached): (&mut Jar, &mut super::seen::Reached),
        timer: Pin<&mut tokio::time::Sleep>,
    ) -> (Times, StepOutcome) {
        let cookies = self.scenario.cookies;
        if step.general() {
            return self
                .run_general_step(client, index, step, vars, body, scratch, (jar, reached))
                .await;
        }
        // Build everything before the clock starts: templates, headers, body and cookies
        // are the harness's work, not the server's.
        // The response headers are kept (moved, not copied) when the jar may need them.
        let keep_headers = step.needs_headers() || cookies;
        let cookie = match jar.is_empty() {
            true => None,
            false => self.step_url(index, vars).and_then(|url| jar.header(&url)),
        };
        // A new connection per flow: its last request asks the server to close it first,
        // so the TIME_WAIT (and its port) is the server's, not this machine's.
        let last = !self.pool_connections && index + 1 == self.scenario.steps.len();
        let sent = match (&self.h2, &self.fast) {
            (Some(h2), _) => match h2_request(h2, index, step, vars, body, scratch) {
                Ok(mut req) => {
                    add_cookie(&mut req.headers, cookie);
                    let own = (!self.pool_connections).then_some(h2_own);
                    h2.exchange(own, req, keep_headers, timer).await.into()
                }
                Err(k) => return no_response(Times::default(), k),
            },
            (None, Some(fast)) => match http1_request(fast, index, step, vars, body, scratch) {
                Ok(mut req) => {
                    add_cookie(req.headers_mut(), cookie);
                    fast.exchange(conn, req, keep_headers, last, timer)
                        .await
                        .into()
                }
                Err(k) => return no_response(Times::default(), k),
            },
            (None, None) => match self.build_request(index, vars, body, scratch) {
                Ok(mut req) => {
                    add_cookie(req.headers_mut(), cookie);
                    if last && !req.headers().contains_key(reqwest::header::CONNECTION) {
                        req.headers_mut().insert(
                            reqwest::header::CONNECTION,
                            reqwest::header::HeaderValue::from_static("close"),
                        );
                    }
                    transport::send_reqwest_bounded(client, req, keep_headers, self.max_body).await
                }
                Err(k) => return no_response(Times::default(), k),
            },
        };
        let r = match sent.response {
            Ok(r) => r,
            Err(k) => return no_response(sent.times, k),
        };
        // Cookies are stored whatever the status, as a browser does, before extraction
        // reads them.
        let sets = cookies && Jar::sets_cookies(&r.headers);
        let url = match sets || (cookies && step.reads_cookies()) {
            true => self.step_url(index, vars),
            false => None,
        };
        if let (true, Some(u)) = (sets, &url) {
            jar.store(&r.headers, u);
        }
        if r.truncated && step.reads_body() {
            let limit = u64::try_from(self.max_body).unwrap_or(u64::MAX);
            return responded(sent.times, Some(FailureKind::BodyTooLarge { limit }));
        }
        let jar_view = url.as_deref().map(|u| (&*jar, u));
        responded(
            sent.times,
            check_with_cookies(step, r.status, &r.headers, &r.body, vars, jar_view).err(),
        )
    }

    /// A step on another host or following redirects: over the general client, hop by
    /// hop (see [`super::redirect`]), then checked like any step.
    #[allow(clippy::too_many_arguments)]
    async fn run_general_step(
        &self,
        client: &reqwest::Client,
        index: usize,
        step: &Step,
        vars: &mut [String],
        body: &mut Vec<u8>,
        scratch: &mut String,
        (jar, reached): (&mut Jar, &mut super::seen::Reached),
    ) -> (Times, StepOutcome) {
        let Some(url) = self.step_url(index, vars).map(Cow::into_owned) else {
            return no_response(Times::default(), FailureKind::Request);
        };
        let cookies = self.scenario.cookies;
        let f = super::redirect::send(
            client,
            (index, step),
            url,
            vars,
            body,
            scratch,
            (jar, reached),
            cookies,
            self.max_body,
        )
        .await;
        let hops = f.hops as u64;
        let with_hops = |(t, mut o): (Times, StepOutcome)| {
            o.redirects = hops;
            (t, o)
        };
        let (r, url) = match f.result {
            Ok(r) => r,
            Err(k) => return with_hops(no_response(f.times, k)),
        };
        if r.truncated && step.reads_body() {
            let limit = u64::try_from(self.max_body).unwrap_or(u64::MAX);
            let too_large = Some(FailureKind::BodyTooLarge { limit });
            return with_hops(responded(f.times, too_large));
        }
        let jar_view = cookies.then_some((&*jar, &url));
        let failure = check_with_cookies(step, r.status, &r.headers, &r.body, vars, jar_view);
        with_hops(responded(f.times, failure.err()))
    }

    /// Per step, its URL when its path (or `url`) has no variable, parsed once per run.
    fn static_urls(&self) -> &[Option<Url>] {
        self.static_urls.get_or_init(|| {
            self.scenario
                .steps
                .iter()
                .map(|s| match &s.url {
                    Some(u) => reqwest::Url::parse(&u.constant()?).ok(),
                    None => {
                        let path = s.path.constant()?;
                        reqwest::Url::parse(&format!("{}{path}", self.base_url)).ok()
                    }
                })
                .collect()
        })
    }

    /// Step `index`'s URL with `vars`: the cached one when its path is constant.
    pub(crate) fn step_url(&self, index: usize, vars: &[String]) -> Option<Cow<'_, Url>> {
        if let Some(u) = self.static_urls().get(index).and_then(Option::as_ref) {
            return Some(Cow::Borrowed(u));
        }
        let step = self.scenario.steps.get(index)?;
        let mut url = String::with_capacity(self.base_url.len() + 32);
        match &step.url {
            Some(u) => u.render_into(vars, &mut url),
            None => {
                url.push_str(&self.base_url);
                step.path.render_into(vars, &mut url);
            }
        }
        Url::parse(&url).ok().map(Cow::Owned)
    }

    /// Step `index`'s request, rendered with `vars`.
    pub(crate) fn build_request(
        &self,
        index: usize,
        vars: &[String],
        body: &mut Vec<u8>,
        scratch: &mut String,
    ) -> Result<reqwest::Request, FailureKind> {
        let step = self.scenario.steps.get(index).ok_or(FailureKind::Request)?;
        let url = self
            .step_url(index, vars)
            .ok_or(FailureKind::Request)?
            .into_owned();
        let mut req = reqwest::Request::new(step.method.clone(), url);
        *req.headers_mut() = render_headers(step, vars, scratch)?;
        if let Some(b) = &step.body {
            body.clear();
            b.render_into(vars, body, scratch);
            *req.body_mut() = Some(std::mem::take(body).into());
        }
        Ok(req)
    }
}
