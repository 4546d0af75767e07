//! Runs one flow: the scenario's steps in order, with a per-flow variable table.
//!
//! Each step's request is rendered here, before the clock starts, and sent by
//! [`super::transport`], which times it from just before it is handed to the HTTP client
//! until the last byte of its body has arrived; the response is then checked here. A step
//! that fails ends its flow. The result of every step and of the flow goes out as a
//! [`Sample`]; nothing here prints or stores samples.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue};
use tokio::sync::mpsc::Sender;

use super::transport::http1::{Conn, Http1};
use super::transport::{self, micros, Times};
use crate::scenario::{
    Expectation, ExtractSource, Scenario, Step, SLOT_API_KEY, SLOT_RANDOM, SLOT_RUN_ID, SLOT_SEQ,
    SLOT_UUID,
};
use crate::stats::{Batch, FailureKind, Sample};

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
    /// Whether a flow takes a kept-alive connection and gives it back (`--connections
    /// shared`), or opens its own like a new user (`per-flow`).
    pub pool_connections: bool,
}

/// How a flow ended, as its worker needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEnd {
    Ok,
    /// A step failed for another reason than a refused connection.
    Failed,
    /// A step could not connect (refused, unreachable): the target is not serving.
    Refused,
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
        },
    )
}

/// A step's outcome before it becomes a sample.
struct StepOutcome {
    responded: bool,
    failure: Option<FailureKind>,
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
        }
    }
}

impl FlowContext {
    /// The per-flow variable table with the built-ins and `[vars]` filled in.
    pub(crate) fn new_vars(&self, seq: u64) -> Vec<String> {
        let mut vars = Vec::new();
        self.fill_vars(seq, &mut vars);
        vars
    }

    /// Resets `vars` to a fresh flow's table (keeping its allocations).
    fn fill_vars(&self, seq: u64, vars: &mut Vec<String>) {
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
        for (slot, t) in &self.scenario.vars {
            vars[*slot] = t.render(vars);
        }
    }

    /// Runs flow number `seq` with `client` and sends its samples, as one [`Batch`] when
    /// the flow ends. Returns whether it succeeded, or `None` when the collector has gone
    /// away (the run is being torn down). A flow cut off mid-way (an interrupt past the
    /// grace period drops it) still hands over the steps it finished, from a drop guard.
    pub async fn run_flow(
        &self,
        seq: u64,
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
        } = state;
        self.fill_vars(seq, vars);
        let mut conn: Option<Conn> = match &self.fast {
            Some(f) if self.pool_connections => f.take(),
            _ => None,
        };
        let mut pending = Pending {
            samples: Batch::new(),
            tx,
        };
        let flow_start = Instant::now();
        let mut failed_step = None;
        let mut refused = false;
        for (i, step) in self.scenario.steps.iter().enumerate() {
            let (t, outcome) = self
                .run_step(
                    client,
                    &mut conn,
                    i,
                    step,
                    vars,
                    body,
                    scratch,
                    timer.as_mut(),
                )
                .await;
            let failed = outcome.failure.is_some();
            refused = matches!(outcome.failure, Some(FailureKind::Connect));
            if timing.measured {
                if let Some(us) = t.connect_us {
                    pending.samples.push(Sample::Connect { step: i, us });
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
                    responded: outcome.responded,
                    failure: outcome.failure,
                });
            }
            if failed {
                failed_step = Some(i);
                break;
            }
        }
        let elapsed_us = micros(flow_start.elapsed());
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
            Some(_) => FlowEnd::Failed,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_step(
        &self,
        client: &reqwest::Client,
        conn: &mut Option<Conn>,
        index: usize,
        step: &Step,
        vars: &mut [String],
        body: &mut Vec<u8>,
        scratch: &mut String,
        timer: Pin<&mut tokio::time::Sleep>,
    ) -> (Times, StepOutcome) {
        // Build everything before the clock starts: templates, headers and body are the
        // harness's work, not the server's.
        let keep_headers = step.needs_headers();
        let sent = match &self.fast {
            Some(fast) => match http1_request(fast, index, step, vars, body, scratch) {
                Ok(req) => fast.exchange(conn, req, keep_headers, timer).await.into(),
                Err(k) => return no_response(Times::default(), k),
            },
            None => match self.build_request(index, vars, body, scratch) {
                Ok(req) => transport::send_reqwest(client, req, keep_headers).await,
                Err(k) => return no_response(Times::default(), k),
            },
        };
        match sent.response {
            Ok(r) => responded(
                sent.times,
                check_response(step, r.status, &r.headers, &r.body, vars).err(),
            ),
            Err(k) => no_response(sent.times, k),
        }
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
        let full = |vars: &[String]| {
            let mut url = String::with_capacity(self.base_url.len() + 32);
            url.push_str(&self.base_url);
            step.path.render_into(vars, &mut url);
            reqwest::Url::parse(&url).ok()
        };
        let statics = self.static_urls.get_or_init(|| {
            self.scenario
                .steps
                .iter()
                .map(|s| {
                    let path = s.path.constant()?;
                    reqwest::Url::parse(&format!("{}{path}", self.base_url)).ok()
                })
                .collect()
        });
        let cached = statics.get(index).cloned().flatten();
        let url = match cached {
            Some(u) => u,
            None => full(vars).ok_or(FailureKind::Request)?,
        };
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

/// Step `index`'s request for hyper's connection-level client (see
/// [`super::transport::http1`]), rendered with `vars`.
fn http1_request(
    fast: &Http1,
    index: usize,
    step: &Step,
    vars: &[String],
    body: &mut Vec<u8>,
    scratch: &mut String,
) -> Result<hyper::Request<http_body_util::Full<bytes::Bytes>>, FailureKind> {
    let uri = match fast.static_uri(index) {
        Some(u) => u,
        None => {
            let mut path = String::with_capacity(fast.prefix.len() + 32);
            path.push_str(&fast.prefix);
            step.path.render_into(vars, &mut path);
            hyper::Uri::try_from(path).map_err(|_| FailureKind::Request)?
        }
    };
    let headers = render_headers(step, vars, scratch)?;
    let payload = match &step.body {
        Some(b) => {
            body.clear();
            b.render_into(vars, body, scratch);
            // Hand the rendered buffer over instead of copying it.
            bytes::Bytes::from(std::mem::take(body))
        }
        None => bytes::Bytes::new(),
    };
    // Set the parts in place: the builder moves the whole request through a `Result`
    // at every call, which showed as copies in the profile.
    let mut req = hyper::Request::new(http_body_util::Full::new(payload));
    *req.method_mut() = step.method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}

/// The step's headers with their variables rendered.
fn render_headers(
    step: &Step,
    vars: &[String],
    scratch: &mut String,
) -> Result<HeaderMap, FailureKind> {
    let mut headers = HeaderMap::with_capacity(step.headers.len());
    for (name, t) in &step.headers {
        scratch.clear();
        t.render_into(vars, scratch);
        let v = HeaderValue::from_str(scratch).map_err(|_| FailureKind::Request)?;
        headers.insert(name.clone(), v);
    }
    Ok(headers)
}

/// Checks status, extracts values and runs the step's checks.
pub(crate) fn check_response(
    step: &Step,
    status: u16,
    headers: &HeaderMap,
    bytes: &[u8],
    vars: &mut [String],
) -> Result<(), FailureKind> {
    if !step.expect.contains(status) {
        return Err(FailureKind::Status(status));
    }
    let json: Option<serde_json::Value> = if step.needs_json() {
        Some(serde_json::from_slice(bytes).map_err(|_| FailureKind::NotJson)?)
    } else {
        None
    };
    for ex in &step.extract {
        let value = match &ex.source {
            ExtractSource::Pointer(p) => json
                .as_ref()
                .and_then(|j| j.pointer(p))
                .and_then(scalar_string)
                .ok_or_else(|| FailureKind::Missing(p.clone()))?,
            ExtractSource::Header(h) => headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| FailureKind::Missing(format!("header {h}").into()))?,
        };
        if let Some(slot) = vars.get_mut(ex.slot) {
            *slot = value;
        }
    }
    for c in &step.checks {
        let found = json.as_ref().and_then(|j| j.pointer(&c.pointer));
        let pass = match (&c.expect, found) {
            (_, None) => return Err(FailureKind::Missing(c.pointer.clone())),
            (Expectation::Exists, Some(_)) => true,
            (Expectation::EqualsJson(want), Some(v)) => v == want,
            (Expectation::EqualsStr(t), Some(v)) => v.as_str() == Some(t.render(vars).as_str()),
            (Expectation::Matches(re), Some(v)) => match v {
                serde_json::Value::String(s) => re.is_match(s),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                    re.is_match(&v.to_string())
                }
                _ => false,
            },
        };
        if !pass {
            return Err(FailureKind::Check(c.pointer.clone()));
        }
    }
    Ok(())
}

/// The text of a JSON scalar (strings without quotes); objects, arrays and null are not
/// values a later request can use.
fn scalar_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `check` sends with reqwest too, and names its failures the same way.
pub use super::transport::classify;

fn uuid_v4(r: u128) -> String {
    let b =
        (r & !(0xF000u128 << 64) | (0x4000u128 << 64)) & !(0xC000u128 << 48) | (0x8000u128 << 48);
    let h = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn random_alnum(n: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant() {
        for r in [0u128, u128::MAX, 0x1234_5678_9abc_def0_1234_5678_9abc_def0] {
            let u = uuid_v4(r);
            assert_eq!(u.len(), 36);
            assert_eq!(&u[14..15], "4", "{u}");
            assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        }
    }

    #[test]
    fn checks_status_fields_and_extracts() {
        let s = Scenario::builtin();
        let login = &s.steps[1];
        let mut vars = vec![String::new(); s.slot_count];
        let h = HeaderMap::new();
        assert_eq!(
            check_response(login, 500, &h, b"{}", &mut vars),
            Err(FailureKind::Status(500))
        );
        assert_eq!(
            check_response(login, 200, &h, b"<html>", &mut vars),
            Err(FailureKind::NotJson)
        );
        assert_eq!(
            check_response(login, 200, &h, b"{\"token\":\"x\"}", &mut vars),
            Err(FailureKind::Missing("/access_token".into()))
        );
        check_response(login, 200, &h, b"{\"access_token\":\"abc\"}", &mut vars).unwrap();
        assert!(vars.contains(&"abc".to_string()));
        let verify = &s.steps[2];
        assert_eq!(
            check_response(verify, 200, &h, b"{\"valid\":false}", &mut vars),
            Err(FailureKind::Check("/valid".into()))
        );
    }

    mod props {
        use super::super::*;
        use crate::scenario::Scenario;
        use proptest::prelude::*;

        const WITH_POINTERS: &str = r#"
name = "p"
[[steps]]
name = "s"
path = "/x"
extract = { a = "/a/0/b", h = { header = "x-h" } }
check = [{ pointer = "/c", matches = "^[0-9]+$" }, { pointer = "/d~1e", equals = "{{seq}}" }]
"#;

        proptest! {
            #[test]
            fn checking_any_body_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200), status in 0u16..1000) {
                for s in [Scenario::builtin(), Scenario::parse(WITH_POINTERS, "p.toml").unwrap()] {
                    for step in &s.steps {
                        let mut vars = vec![String::new(); s.slot_count];
                        let _ = check_response(step, status, &HeaderMap::new(), &body, &mut vars);
                    }
                }
            }

            #[test]
            fn checking_any_json_never_panics(j in json_value(), ptr in "(/[a-z0-9~]{0,3}){0,4}") {
                let text = format!(
                    "name = \"p\"\n[[steps]]\nname = \"s\"\npath = \"/\"\nextract = {{ v = \"{ptr}\" }}\ncheck = [{{ pointer = \"{ptr}\", exists = true }}]\n"
                );
                let s = Scenario::parse(&text, "p.toml").unwrap();
                let bytes = serde_json::to_vec(&j).unwrap();
                let mut vars = vec![String::new(); s.slot_count];
                let r = check_response(&s.steps[0], 200, &HeaderMap::new(), &bytes, &mut vars);
                // Either the pointer resolves (to a scalar or not) or it is reported missing.
                if j.pointer(&ptr).is_none() {
                    prop_assert!(matches!(r, Err(FailureKind::Missing(_))));
                }
            }
        }

        fn json_value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                "[a-z]{0,4}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4)
                        .prop_map(serde_json::Value::from),
                    proptest::collection::btree_map("[a-z0-9~]{0,3}", inner, 0..4)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }
    }
}
