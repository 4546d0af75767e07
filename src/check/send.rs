//! Sending a probe's request: one request on a fresh connection ([`send_with`]), and a
//! setup step with `follow = true` followed hop by hop as `run` follows it (the cookies
//! of every hop stored in the session's jar, 303 and a 301 or 302 after a POST turned
//! into a GET, `Authorization` and the step's own `Cookie` not sent to another origin).

use std::time::Instant;

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE};
use reqwest::Method;
use url::Url;

use super::target::{Probe, Reply, SendError, Session, Target};
use crate::engine::cookies::Jar;
use crate::engine::flow::classify;
use crate::engine::redirect::{becomes_get, redirect_target};
use crate::scenario::MAX_REDIRECTS;

impl Target {
    /// Sends `p` as step `i` of `session`; when the step follows redirects, follows them
    /// (each hop recorded under `probe_id`). Returns the last answer and the URL it came
    /// from.
    pub async fn send_following(
        &self,
        probe_id: &str,
        i: usize,
        session: &mut Session,
        p: Probe,
    ) -> Result<(Reply, Option<Url>), SendError> {
        let follow = self.step(i).follow;
        let mut url = Some(p.request.url().clone());
        let mut next = if follow { p.request.try_clone() } else { None };
        let mut reply = self.send(probe_id, p).await?;
        let mut hops = 0;
        while follow && hops < MAX_REDIRECTS {
            let (Some(from), Some(mut req)) = (url.clone(), next.take()) else {
                break;
            };
            let Some(to) = redirect_target(&from, reply.status, &reply.headers) else {
                break;
            };
            if self.scenario.cookies && Jar::sets_cookies(&reply.headers) {
                session.jar.store(&reply.headers, &from);
            }
            if becomes_get(reply.status, req.method()) {
                *req.method_mut() = Method::GET;
                *req.body_mut() = None;
                req.headers_mut().remove(CONTENT_TYPE);
                req.headers_mut().remove(CONTENT_LENGTH);
            }
            req.headers_mut().remove(COOKIE);
            if to.origin() != from.origin() {
                req.headers_mut().remove(AUTHORIZATION);
            }
            *req.url_mut() = to.clone();
            next = req.try_clone();
            let probe = Probe { request: req }.cookies(session.jar.header(&to));
            reply = self.send(probe_id, probe).await?;
            url = Some(to);
            hops += 1;
        }
        Ok((reply, url))
    }
}

/// The causes of a transport error, innermost last, without the URL reqwest puts first.
pub(super) fn cause_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// Sends with `client` and reads at most `cap` bytes of the body (the rest is read and
/// dropped, and the reply says it was cut).
pub async fn send_with(
    client: &reqwest::Client,
    request: reqwest::Request,
    cap: usize,
) -> Result<Reply, SendError> {
    let start = Instant::now();
    let transport = |e: reqwest::Error| {
        SendError::Transport(format!("{} ({})", classify(&e).detail(), cause_chain(&e)))
    };
    let mut resp = client.execute(request).await.map_err(transport)?;
    let status = resp.status().as_u16();
    let version = format!("{:?}", resp.version());
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        let room = cap.saturating_sub(body.len());
        truncated |= chunk.len() > room;
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(Reply {
        status,
        headers,
        body,
        elapsed: start.elapsed(),
        truncated,
        version,
    })
}
