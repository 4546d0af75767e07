//! The probes' view of the service: fresh identities (a per-flow variable table, as
//! `run` makes them), requests built from a scenario step and then altered, the flow
//! replayed up to a step to get a valid context (a registered user, a live token), and a
//! record of every error body seen, for the leak probe.
//!
//! Responses are read up to [`MAX_BODY`]; nothing a server sends can make a probe panic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use crate::engine::flow::{check_response, classify, FlowContext};
use crate::scenario::{Scenario, Step};

use super::roles::render_json;

/// Bytes of a response body kept; the rest is read and dropped.
pub const MAX_BODY: usize = 1 << 20;
/// Bytes of an error body kept for the leak scan.
const MAX_KEPT_ERROR: usize = 4096;

/// A complete response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// From handing the request to the client to the last byte of the body.
    pub elapsed: Duration,
}

impl Reply {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as text, cut to `max` characters, for reports.
    pub fn excerpt(&self, max: usize) -> String {
        excerpt(&String::from_utf8_lossy(&self.body), max)
    }

    /// `401 {"detail":"Invalid API key"}`.
    pub fn brief(&self) -> String {
        let body = self.excerpt(80);
        if body.is_empty() {
            self.status.to_string()
        } else {
            format!("{} {body}", self.status)
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status)
    }
    pub fn is_server_error(&self) -> bool {
        self.status >= 500
    }
}

/// One line of text, cut to `max` characters.
pub fn excerpt(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max {
        flat.to_string()
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// An error response kept for the leak scan.
#[derive(Debug, Clone)]
pub struct SeenError {
    /// The probe that provoked it.
    pub probe: String,
    pub status: u16,
    pub body: String,
}

/// A request could not be completed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("the request could not be built from step '{0}'")]
    Build(String),
    #[error("no response: {0}")]
    Transport(String),
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
}

pub struct Target {
    pub scenario: Arc<Scenario>,
    flow: FlowContext,
    pub client: reqwest::Client,
    seq: AtomicU64,
    errors: Mutex<Vec<SeenError>>,
}

impl Target {
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
            pool_connections: true,
        };
        Target {
            scenario,
            flow,
            client,
            seq: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// A variable table for a new, never-used identity (a fresh `seq`, random values).
    pub fn fresh_vars(&self) -> Vec<String> {
        self.flow.new_vars(self.seq.fetch_add(1, Ordering::Relaxed))
    }

    pub fn step(&self, i: usize) -> &Step {
        &self.scenario.steps[i]
    }

    /// Step `i`'s request with `vars`, as `run` would send it.
    pub fn build(&self, i: usize, vars: &[String]) -> Result<Probe, SendError> {
        let step = self.step(i);
        let mut body = Vec::new();
        let mut scratch = String::new();
        self.flow
            .build_request(i, vars, &mut body, &mut scratch)
            .map(|request| Probe { request })
            .map_err(|_| SendError::Build(step.name.to_string()))
    }

    /// Step `i`'s JSON body as a value, to alter fields.
    pub fn json_body(&self, i: usize, vars: &[String]) -> Option<serde_json::Value> {
        self.step(i)
            .body
            .as_ref()
            .and_then(|b| render_json(b, vars))
    }

    /// Sends a request; error responses are kept for the leak scan under `probe`.
    pub async fn send(&self, probe_id: &str, p: Probe) -> Result<Reply, SendError> {
        let reply = send_with(&self.client, p.request).await?;
        if reply.status >= 400 {
            self.errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(SeenError {
                    probe: probe_id.to_string(),
                    status: reply.status,
                    body: String::from_utf8_lossy(
                        &reply.body[..reply.body.len().min(MAX_KEPT_ERROR)],
                    )
                    .into_owned(),
                });
        }
        Ok(reply)
    }

    /// Sends step `i` unaltered and applies its extraction and checks to `vars`.
    pub async fn run_step(&self, i: usize, vars: &mut [String]) -> Result<Reply, String> {
        let step = self.step(i);
        let p = self.build(i, vars).map_err(|e| e.to_string())?;
        let reply = self
            .send("setup", p)
            .await
            .map_err(|e| format!("step '{}': {e}", step.name))?;
        check_response(step, reply.status, &reply.headers, &reply.body, vars).map_err(|k| {
            format!(
                "step '{}' failed ({}: {}): {}",
                step.name,
                k.class(),
                k.detail(),
                reply.brief()
            )
        })?;
        Ok(reply)
    }

    /// A fresh identity with steps `0..upto` run, so step `upto` can be sent in a
    /// valid context; the replies of those steps are returned too.
    pub async fn prefix(&self, upto: usize) -> Result<(Vec<String>, Vec<Reply>), String> {
        let mut vars = self.fresh_vars();
        let mut replies = Vec::new();
        for i in 0..upto.min(self.scenario.steps.len()) {
            replies.push(self.run_step(i, &mut vars).await?);
        }
        Ok((vars, replies))
    }

    /// Every error response seen so far.
    pub fn seen_errors(&self) -> Vec<SeenError> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Sends with `client` and reads at most [`MAX_BODY`] bytes of the body.
pub async fn send_with(
    client: &reqwest::Client,
    request: reqwest::Request,
) -> Result<Reply, SendError> {
    let start = Instant::now();
    let transport =
        |e: reqwest::Error| SendError::Transport(format!("{} ({e})", classify(&e).detail()));
    let mut resp = client.execute(request).await.map_err(transport)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(Reply {
        status,
        headers,
        body,
        elapsed: start.elapsed(),
    })
}
