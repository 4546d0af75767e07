//! The probes' view of the service: fresh identities (a per-flow variable table and a
//! cookie jar, as `run` makes them), requests built from a scenario step and then
//! altered, the flow replayed up to a step to get a valid context (a registered user, a
//! live token, a session cookie), and a log of every exchange, for the scans that run
//! last and for each row's request and response excerpt.
//!
//! **Probes are independent of the service's connection handling**: every request goes
//! out on a connection of its own (the client keeps no idle connection), so a service
//! that closes or resets a connection after an error, or answers a body it never read,
//! cannot make the next probe, or its set-up, fail. A request that gets no answer got
//! none on a fresh connection: the probe reports `error` with the transport's cause.
//!
//! Responses are read up to [`MAX_BODY`] (a probe that reads a collection asks for more);
//! nothing a server sends can make a probe panic. A rate-limited answer is retried once
//! after the wait it advises (at most [`MAX_RETRY_WAIT`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE, ORIGIN,
};
use url::Url;

use crate::engine::cookies::{self, Jar};
use crate::engine::flow::{check_with_cookies, FlowContext};
use crate::scenario::{Scenario, Step};

use super::roles::render_json;

pub use super::reply::{
    excerpt, redact, Exchange, Reply, DEFAULT_RETRY_WAIT, MAX_BODY, MAX_KEPT_BODY, MAX_RETRY_WAIT,
};
pub use super::send::send_with;

/// A request could not be completed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("the request could not be built from step '{0}'")]
    Build(String),
    /// No answer on a fresh connection; the transport's cause.
    #[error("no answer on a fresh connection: {0}")]
    Transport(String),
}

/// Why the steps a probe needs before its own request did not all succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SetupError {
    #[error("setup failed: step '{step}': the request could not be built")]
    Build { step: String },
    /// The service gave no answer on a fresh connection: the probe is an `error`.
    #[error("setup failed: step '{step}': no answer on a fresh connection: {cause}")]
    NoAnswer { step: String, cause: String },
    /// The service answered 429 (or 503 with `Retry-After`), also to the one retry: the
    /// probe is `inconclusive`.
    #[error("setup step '{step}' was rate limited: {got}")]
    RateLimited { step: String, got: String },
    /// The service answered, but not as the scenario expects.
    #[error("setup failed: step '{step}' failed ({detail}): {got}")]
    Refused {
        step: String,
        detail: String,
        got: String,
    },
}

/// A request under construction: the step's request with alterations.
pub struct Probe {
    pub request: reqwest::Request,
}

impl Probe {
    pub fn remove_header(mut self, name: &HeaderName) -> Self {
        self.request.headers_mut().remove(name);
        self
    }

    /// Sets a header; a value that is not a valid header value leaves it unchanged
    /// (only ever called with values the probes make).
    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.request.headers_mut().insert(name, v);
        }
        self
    }

    pub fn body(mut self, bytes: Vec<u8>) -> Self {
        *self.request.body_mut() = Some(bytes.into());
        self
    }

    pub fn json_body(self, value: &serde_json::Value) -> Self {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.header(CONTENT_TYPE, "application/json").body(bytes)
    }

    /// Sends `cookie` as the `Cookie` header (after the step's own), or none at all.
    pub fn cookies(mut self, cookie: Option<HeaderValue>) -> Self {
        let own = self.request.headers().get(COOKIE).cloned();
        self.request.headers_mut().remove(COOKIE);
        let merged = match (own, cookie) {
            (own, Some(c)) => Some(cookies::merge(own.as_ref(), c)),
            (own, None) => own,
        };
        if let Some(v) = merged {
            self.request.headers_mut().insert(COOKIE, v);
        }
        self
    }
}

/// One identity part-way through the flow: its variables, its cookies, and the replies
/// of the steps run so far.
#[derive(Clone, Default)]
pub struct Session {
    pub vars: Vec<String>,
    pub jar: Jar,
    pub replies: Vec<Reply>,
    /// What each step run so far sent, as [`describe`] tells it.
    pub requests: Vec<String>,
}

pub struct Target {
    pub scenario: Arc<Scenario>,
    flow: FlowContext,
    /// Opens a new connection for every request (no idle connection is kept): no probe
    /// can be spoiled by a connection another probe left behind.
    pub client: reqwest::Client,
    seq: AtomicU64,
    log: Mutex<Vec<Exchange>>,
    /// The HTTP versions answers came over.
    protocols: Mutex<std::collections::BTreeSet<String>>,
    /// The longest wait before the one retry of a rate-limited request.
    retry_wait: Duration,
}

impl Target {
    /// `client` must keep no idle connection (`pool_max_idle_per_host(0)`): see the
    /// module's documentation.
    pub fn new(
        scenario: Arc<Scenario>,
        client: reqwest::Client,
        base_url: String,
        api_key: String,
    ) -> Self {
        let flow = FlowContext {
            scenario: scenario.clone(),
            client: client.clone(),
            base_url,
            api_key,
            run_id: format!("{:08x}", rand::random::<u32>()),
            static_urls: Default::default(),
            fast: None,
            h2: None,
            pool_connections: false,
            max_body: usize::MAX,
        };
        Target {
            scenario,
            flow,
            client,
            seq: AtomicU64::new(0),
            protocols: Mutex::default(),
            log: Mutex::new(Vec::new()),
            retry_wait: MAX_RETRY_WAIT,
        }
    }

    /// Caps the wait before retrying a rate-limited request (default [`MAX_RETRY_WAIT`]).
    pub fn with_retry_wait(mut self, wait: Duration) -> Self {
        self.retry_wait = wait.min(MAX_RETRY_WAIT);
        self
    }

    pub fn base_url(&self) -> &str {
        &self.flow.base_url
    }

    pub fn is_https(&self) -> bool {
        self.flow.base_url.starts_with("https://")
    }

    /// A variable table for a new, never-used identity (a fresh `seq`, random values).
    pub fn fresh_vars(&self) -> Vec<String> {
        self.flow.new_vars(self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// A new identity that has run no step.
    pub fn fresh(&self) -> Session {
        Session {
            vars: self.fresh_vars(),
            ..Session::default()
        }
    }

    pub fn step(&self, i: usize) -> &Step {
        &self.scenario.steps[i]
    }

    /// Step `i`'s URL with `vars`.
    pub fn url(&self, i: usize, vars: &[String]) -> Option<Url> {
        self.flow
            .step_url(i, vars)
            .map(std::borrow::Cow::into_owned)
    }

    /// Step `i`'s request with `vars`, as `run` would send it, without cookies.
    pub fn build(&self, i: usize, vars: &[String]) -> Result<Probe, SendError> {
        let step = self.step(i);
        let mut body = Vec::new();
        let mut scratch = String::new();
        self.flow
            .build_request(i, vars, &mut body, &mut scratch)
            .map(|request| Probe { request })
            .map_err(|_| SendError::Build(step.name.to_string()))
    }

    /// Step `i`'s request for `session`: its variables and the cookies its jar holds for
    /// the step's URL.
    pub fn build_in(&self, i: usize, session: &Session) -> Result<Probe, SendError> {
        let p = self.build(i, &session.vars)?;
        let cookie = self
            .url(i, &session.vars)
            .and_then(|u| session.jar.header(&u));
        Ok(p.cookies(cookie))
    }

    /// Step `i`'s JSON body as a value, to alter fields.
    pub fn json_body(&self, i: usize, vars: &[String]) -> Option<serde_json::Value> {
        self.step(i)
            .body
            .as_ref()
            .and_then(|b| render_json(b, vars))
    }

    /// Step `i`'s request in `session` ([`Target::build_in`]), changed by `alter` (a
    /// header, a body), sent as `probe_id` ([`Target::send`]).
    pub async fn send_step(
        &self,
        probe_id: &str,
        i: usize,
        session: &Session,
        alter: impl FnOnce(Probe) -> Probe,
    ) -> Result<Reply, SendError> {
        let p = self.build_in(i, session)?;
        self.send(probe_id, alter(p)).await
    }

    /// Sends a request on a fresh connection and records the exchange under `probe`. A
    /// rate-limited answer (429, or 503 with `Retry-After`) is retried once after the
    /// advised wait ([`DEFAULT_RETRY_WAIT`] when none, at most the retry cap); the second
    /// answer is the result, limited or not.
    pub async fn send(&self, probe_id: &str, p: Probe) -> Result<Reply, SendError> {
        self.send_capped(probe_id, p, MAX_BODY).await
    }

    /// [`Target::send`], keeping up to `cap` bytes of the body.
    pub async fn send_capped(
        &self,
        probe_id: &str,
        p: Probe,
        cap: usize,
    ) -> Result<Reply, SendError> {
        let again = p.request.try_clone();
        let request = describe(&p.request);
        let result = send_with(&self.client, p.request, cap).await;
        self.record(probe_id, request.clone(), &result);
        match (&result, again) {
            (Ok(rep), Some(again)) if rep.rate_limited() => {
                let wait = rep.retry_after().unwrap_or(DEFAULT_RETRY_WAIT);
                tokio::time::sleep(wait.min(self.retry_wait)).await;
                let result = send_with(&self.client, again, cap).await;
                self.record(probe_id, request, &result);
                result
            }
            _ => result,
        }
    }

    /// Sends once, never retried (a timing sample: a retry would measure the limiter).
    pub async fn send_once(&self, probe_id: &str, p: Probe) -> Result<Reply, SendError> {
        let request = describe(&p.request);
        let result = send_with(&self.client, p.request, MAX_BODY).await;
        self.record(probe_id, request, &result);
        result
    }

    /// Whether step `i` would count `rep` as its success, as `run` judges it: the
    /// status is in its `expect`, its `check`s hold and its extracts find their values
    /// (cookies the answer sets count toward a cookie extract). A probe that alters a
    /// credential calls the step accepted only then; anything else was refused.
    ///
    /// A 4xx or 5xx is never an acceptance, even for a step that expects one (a step
    /// that expects 401 for a spent token does not "accept" a request refused with 401).
    pub fn accepts(&self, i: usize, session: &Session, rep: &Reply) -> bool {
        let Some(step) = self.scenario.steps.get(i) else {
            return false;
        };
        if rep.status >= 400 {
            return false;
        }
        let mut vars = session.vars.clone();
        let mut jar = session.jar.clone();
        let url = self.url(i, &session.vars);
        if let Some(u) = &url {
            if Jar::sets_cookies(&rep.headers) {
                jar.store(&rep.headers, u);
            }
        }
        check_with_cookies(
            step,
            rep.status,
            &rep.headers,
            &rep.body,
            &mut vars,
            url.as_ref().map(|u| (&jar, u)),
        )
        .is_ok()
    }

    /// A request to send concurrently with others (a burst, a race): the future owns
    /// what it needs; [`Target::record`] logs its result afterwards.
    pub fn detached(
        &self,
        p: Probe,
    ) -> (
        String,
        impl std::future::Future<Output = Result<Reply, SendError>> + Send + 'static,
    ) {
        let request = describe(&p.request);
        let client = self.client.clone();
        (request, async move {
            send_with(&client, p.request, MAX_BODY).await
        })
    }

    /// Logs an exchange under `probe_id`; `request` is [`describe`]'s text.
    pub fn record(&self, probe_id: &str, request: String, result: &Result<Reply, SendError>) {
        if let Ok(reply) = result {
            self.protocols
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(reply.version.clone());
        }
        let exchange = match result {
            Ok(reply) => Exchange {
                probe: probe_id.to_string(),
                request,
                status: Some(reply.status),
                headers: reply.headers.clone(),
                body: String::from_utf8_lossy(&reply.body[..reply.body.len().min(MAX_KEPT_BODY)])
                    .into_owned(),
                error: None,
            },
            Err(e) => Exchange {
                probe: probe_id.to_string(),
                request,
                status: None,
                headers: HeaderMap::new(),
                body: String::new(),
                error: Some(match e {
                    SendError::Transport(c) => c.clone(),
                    other => other.to_string(),
                }),
            },
        };
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(exchange);
    }

    /// Sends step `i` for `session`, unaltered: stores the cookies the answer sets and
    /// applies the step's extraction and checks to the session's variables.
    pub async fn run_step(&self, i: usize, session: &mut Session) -> Result<Reply, SetupError> {
        let name = self.step(i).name.to_string();
        let p = self
            .build_in(i, session)
            .map_err(|_| SetupError::Build { step: name.clone() })?;
        self.run_request(i, session, "setup", p).await
    }

    /// Sends `p` as step `i` of `session` (under `probe_id`) and takes its answer as
    /// the step's: see [`Target::finish_step`].
    pub async fn run_request(
        &self,
        i: usize,
        session: &mut Session,
        probe_id: &str,
        p: Probe,
    ) -> Result<Reply, SetupError> {
        let name = self.step(i).name.to_string();
        session.requests.push(describe(&p.request));
        let (reply, at) =
            self.send_following(probe_id, i, session, p)
                .await
                .map_err(|e| match e {
                    SendError::Transport(cause) => SetupError::NoAnswer {
                        step: name.clone(),
                        cause,
                    },
                    SendError::Build(_) => SetupError::Build { step: name.clone() },
                })?;
        self.finish_step_at(i, session, &reply, at)?;
        Ok(reply)
    }

    /// Takes `reply` as step `i`'s answer in `session`: stores the cookies it sets and
    /// applies the step's extraction and checks to the session's variables.
    pub fn finish_step(
        &self,
        i: usize,
        session: &mut Session,
        reply: &Reply,
    ) -> Result<(), SetupError> {
        let url = self.url(i, &session.vars);
        self.finish_step_at(i, session, reply, url)
    }

    /// [`Target::finish_step`] for an answer that came from `url` (the last hop of a
    /// step that follows redirects).
    pub fn finish_step_at(
        &self,
        i: usize,
        session: &mut Session,
        reply: &Reply,
        url: Option<Url>,
    ) -> Result<(), SetupError> {
        let step = self.step(i);
        let name = step.name.to_string();
        if let Some(u) = &url {
            if self.scenario.cookies && Jar::sets_cookies(&reply.headers) {
                session.jar.store(&reply.headers, u);
            }
        }
        if reply.rate_limited() && !step.expect.contains(reply.status) {
            return Err(SetupError::RateLimited {
                step: name,
                got: reply.limited_reason(),
            });
        }
        let jar_view = url.as_ref().map(|u| (&session.jar, u));
        check_with_cookies(
            step,
            reply.status,
            &reply.headers,
            &reply.body,
            &mut session.vars,
            jar_view,
        )
        .map_err(|k| SetupError::Refused {
            step: name,
            detail: format!("{}: {}", k.class(), k.detail()),
            got: reply.brief(),
        })
    }

    /// A fresh identity with steps `0..upto` run, so step `upto` can be sent in a
    /// valid context; the replies of those steps are in the session.
    pub async fn prefix(&self, upto: usize) -> Result<Session, SetupError> {
        let mut session = self.fresh();
        for i in 0..upto.min(self.scenario.steps.len()) {
            let reply = self.run_step(i, &mut session).await?;
            session.replies.push(reply);
        }
        Ok(session)
    }

    /// Runs the steps from where `session` stopped up to (not including) `upto`.
    pub async fn advance(&self, session: &mut Session, upto: usize) -> Result<(), SetupError> {
        for i in session.replies.len()..upto.min(self.scenario.steps.len()) {
            let reply = self.run_step(i, session).await?;
            session.replies.push(reply);
        }
        Ok(())
    }

    /// Like [`Target::prefix`], for an identity with `vars`: the steps before `upto` run
    /// again with fresh values of their own (a new CSRF token, a new sign-up session),
    /// so a second registration with the same identifier is a new attempt, never a
    /// replay of a finished one.
    pub async fn prefix_as(&self, upto: usize, vars: Vec<String>) -> Result<Session, SetupError> {
        let mut session = Session {
            vars,
            ..Session::default()
        };
        self.advance(&mut session, upto).await?;
        Ok(session)
    }

    /// Like [`Target::prefix`], without step `skip` (an identity that was never
    /// registered, with a login form's context).
    pub async fn prefix_skipping(
        &self,
        upto: usize,
        skip: Option<usize>,
    ) -> Result<Session, SetupError> {
        let mut session = self.fresh();
        for i in 0..upto.min(self.scenario.steps.len()) {
            if Some(i) == skip {
                session.replies.push(Reply::none());
                session.requests.push(String::new());
                continue;
            }
            let reply = self.run_step(i, &mut session).await?;
            session.replies.push(reply);
        }
        Ok(session)
    }

    /// The HTTP versions the recorded answers came over, e.g. `["HTTP/2.0"]`.
    pub fn protocols(&self) -> Vec<String> {
        self.protocols
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Every exchange so far, in the order they ended.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `POST /auth/login [Authorization: Bearer; Cookie: sessionid; x-api-key]`: the method,
/// the path and which credentials the request carried (never their values).
pub fn describe(req: &reqwest::Request) -> String {
    let mut creds = Vec::new();
    for (name, value) in req.headers() {
        let v = value.to_str().unwrap_or("");
        if *name == AUTHORIZATION {
            let scheme = v.split_whitespace().next().unwrap_or("");
            creds.push(format!("Authorization: {}", excerpt(scheme, 16)));
        } else if *name == COOKIE {
            let names: Vec<&str> = v
                .split(';')
                .filter_map(|c| c.split('=').next())
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect();
            creds.push(format!("Cookie: {}", names.join(", ")));
        } else if name.as_str().contains("key") || name.as_str().contains("token") {
            creds.push(name.as_str().to_string());
        } else if *name == ORIGIN {
            creds.push(format!("Origin: {}", excerpt(v, 40)));
        }
    }
    let path = req.url().path();
    if creds.is_empty() {
        format!("{} {path} [no credentials]", req.method())
    } else {
        format!("{} {path} [{}]", req.method(), creds.join("; "))
    }
}
