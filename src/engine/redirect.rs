//! Steps that leave the target's fast clients: a step on another host (`url = ...`) and
//! a step that follows redirects (`follow = true`). Both go over the general client
//! (reqwest: a connection pool per host, the run's TLS settings for every host), so the
//! hot path of plain steps is untouched and these cost only where a scenario uses them.
//!
//! Following is done here, hop by hop, as a browser does: each hop's `Set-Cookie` goes
//! into the flow's jar before the next request takes its `Cookie` from it; a 303, and a
//! 301 or 302 after a POST, become a GET without a body, while 307 and 308 keep method
//! and body; `Authorization` is not sent to another origin. The step's time is the sum
//! of its hops' times, and the last response is what its `expect`, extracts and checks
//! see.

use bytes::Bytes;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION};
use reqwest::Method;
use url::Url;

use super::cookies::Jar;
use super::request::{add_cookie, render_headers};
use super::seen::Reached;
use super::transport::{self, Response, Times};
use crate::samples::FailureKind;
use crate::scenario::{Step, MAX_REDIRECTS};

/// A general step's last response and the URL it came from, with the time of every hop.
pub(super) struct Followed {
    pub times: Times,
    pub result: Result<(Response, Url), FailureKind>,
    /// Redirects followed (0 when the first response was the last).
    pub hops: usize,
}

/// Sends `step` (number `index`) to `url` over `client`, following redirects when the
/// step asks and noting in `reached` the host each hop went to; cookies go to and come
/// from `jar` when `cookies` is on.
#[allow(clippy::too_many_arguments)]
pub(super) async fn send(
    client: &reqwest::Client,
    (index, step): (usize, &Step),
    url: Url,
    vars: &[String],
    body: &mut Vec<u8>,
    scratch: &mut String,
    (jar, reached): (&mut Jar, &mut Reached),
    cookies: bool,
    max_body: usize,
) -> Followed {
    let mut times = Times::default();
    let fail = |times: Times, k: FailureKind, hops: usize| Followed {
        times,
        result: Err(k),
        hops,
    };
    let mut headers = match render_headers(step, vars, scratch) {
        Ok(h) => h,
        Err(k) => return fail(times, k, 0),
    };
    let mut payload = match &step.body {
        Some(b) => {
            body.clear();
            b.render_into(vars, body, scratch);
            Some(Bytes::from(std::mem::take(body)))
        }
        None => None,
    };
    let mut method = step.method.clone();
    let mut url = url;
    let mut hops = 0;
    loop {
        let mut req = reqwest::Request::new(method.clone(), url.clone());
        *req.headers_mut() = headers.clone();
        if cookies && !jar.is_empty() {
            add_cookie(req.headers_mut(), jar.header(&url));
        }
        if let Some(p) = &payload {
            *req.body_mut() = Some(p.clone().into());
        }
        let sent = transport::send_reqwest_bounded(client, req, true, max_body).await;
        add(&mut times, &sent.times, hops == 0);
        let r = match sent.response {
            Ok(r) => r,
            Err(k) => return fail(times, k, hops),
        };
        if cookies && Jar::sets_cookies(&r.headers) {
            jar.store(&r.headers, &url);
        }
        let next = match step.follow && hops < MAX_REDIRECTS {
            true => redirect_target(&url, r.status, &r.headers),
            false => None,
        };
        let Some(next) = next else {
            return Followed {
                times,
                result: Ok((r, url)),
                hops,
            };
        };
        if becomes_get(r.status, &method) {
            method = Method::GET;
            payload = None;
            headers.remove(CONTENT_TYPE);
            headers.remove(CONTENT_LENGTH);
        }
        if next.origin() != url.origin() {
            strip_credentials(&mut headers);
        }
        reached.record(index, &next);
        url = next;
        hops += 1;
    }
}

/// The URL a redirect response points to, when it is one (301, 302, 303, 307, 308 with
/// a `Location` that resolves against `from`).
pub fn redirect_target(from: &Url, status: u16, headers: &HeaderMap) -> Option<Url> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let loc = headers.get(LOCATION)?.to_str().ok()?;
    from.join(loc).ok()
}

/// Whether a redirect with `status` turns `method` into a GET without a body (RFC 9110
/// section 15.4: 303 always but for HEAD; 301 and 302 after a POST, as every browser
/// does); 307 and 308 never.
pub fn becomes_get(status: u16, method: &Method) -> bool {
    match status {
        303 => *method != Method::HEAD,
        301 | 302 => *method == Method::POST,
        _ => false,
    }
}

/// Credentials the step set for its first host are not sent to another origin.
fn strip_credentials(headers: &mut HeaderMap) {
    headers.remove(AUTHORIZATION);
    headers.remove(COOKIE);
}

/// Adds one hop's times to the step's: the first hop's time to first byte stands.
fn add(total: &mut Times, hop: &Times, first: bool) {
    total.total_us += hop.total_us;
    total.body_bytes += hop.body_bytes;
    if first {
        total.ttfb_us = hop.ttfb_us;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn methods_change_as_browsers_change_them() {
        assert!(becomes_get(303, &Method::POST));
        assert!(becomes_get(303, &Method::PUT));
        assert!(!becomes_get(303, &Method::HEAD));
        assert!(becomes_get(302, &Method::POST));
        assert!(becomes_get(301, &Method::POST));
        assert!(!becomes_get(302, &Method::PUT));
        assert!(!becomes_get(307, &Method::POST));
        assert!(!becomes_get(308, &Method::POST));
    }

    #[test]
    fn locations_resolve_against_the_hop() {
        let from = Url::parse("http://127.0.0.1:1/a/b?x=1").unwrap();
        let mut h = HeaderMap::new();
        h.insert(LOCATION, HeaderValue::from_static("../c?y=2"));
        assert_eq!(
            redirect_target(&from, 302, &h).unwrap().as_str(),
            "http://127.0.0.1:1/c?y=2"
        );
        h.insert(LOCATION, HeaderValue::from_static("http://127.0.0.2:9/cb"));
        assert_eq!(
            redirect_target(&from, 307, &h).unwrap().as_str(),
            "http://127.0.0.2:9/cb"
        );
        assert_eq!(redirect_target(&from, 200, &h), None);
        assert_eq!(redirect_target(&from, 304, &h), None);
        assert_eq!(redirect_target(&from, 302, &HeaderMap::new()), None);
    }
}
