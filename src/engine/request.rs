//! A step's request, rendered before the clock starts: for hyper's HTTP/1.1 client, for
//! the HTTP/2 client, the headers (templates, the cookie jar's header), and the per-flow
//! built-ins (`{{uuid}}`, `{{random}}`). Rendering is the harness's work, so none of it is
//! inside a step's time.

use reqwest::header::{HeaderMap, HeaderValue, COOKIE};

use super::cookies;
use super::transport::http1::Http1;
use super::transport::http2::{H2Request, Http2};
use crate::samples::FailureKind;
use crate::scenario::Step;

/// Step `index`'s request for hyper's connection-level client (see
/// [`super::transport::http1`]), rendered with `vars`.
pub(super) fn http1_request(
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

/// Step `index`'s request for the HTTP/2 client, rendered with `vars` (its URI
/// absolute: scheme and authority go out as pseudo-headers).
pub(super) fn h2_request(
    h2: &Http2,
    index: usize,
    step: &Step,
    vars: &[String],
    body: &mut Vec<u8>,
    scratch: &mut String,
) -> Result<H2Request, FailureKind> {
    let uri = match h2.static_uri(index) {
        Some(u) => u,
        None => {
            let mut path = String::with_capacity(h2.base.len() + 32);
            path.push_str(&h2.base);
            step.path.render_into(vars, &mut path);
            hyper::Uri::try_from(path).map_err(|_| FailureKind::Request)?
        }
    };
    let headers = render_headers(step, vars, scratch)?;
    let body = match &step.body {
        Some(b) => {
            body.clear();
            b.render_into(vars, body, scratch);
            bytes::Bytes::from(std::mem::take(body))
        }
        None => bytes::Bytes::new(),
    };
    Ok(H2Request {
        method: step.method.clone(),
        uri,
        headers,
        body,
    })
}

/// The step's headers with their variables rendered, and its `basic` credentials.
pub(super) fn render_headers(
    step: &Step,
    vars: &[String],
    scratch: &mut String,
) -> Result<HeaderMap, FailureKind> {
    let mut headers = HeaderMap::with_capacity(step.headers.len() + 1);
    for (name, t) in &step.headers {
        scratch.clear();
        t.render_into(vars, scratch);
        let v = HeaderValue::from_str(scratch).map_err(|_| FailureKind::Request)?;
        headers.insert(name.clone(), v);
    }
    if let Some(basic) = &step.basic {
        use base64::Engine;
        basic.render_into(vars, scratch);
        let mut v = String::with_capacity(6 + scratch.len().div_ceil(3) * 4);
        v.push_str("Basic ");
        base64::engine::general_purpose::STANDARD.encode_string(scratch.as_bytes(), &mut v);
        let v = HeaderValue::from_maybe_shared(bytes::Bytes::from(v))
            .map_err(|_| FailureKind::Request)?;
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    Ok(headers)
}

/// Adds the jar's `Cookie` header, after any the step sets itself.
pub(super) fn add_cookie(headers: &mut HeaderMap, jar: Option<HeaderValue>) {
    if let Some(v) = jar {
        let merged = cookies::merge(headers.get(COOKIE), v);
        headers.insert(COOKIE, merged);
    }
}

pub(super) fn uuid_v4(r: u128) -> String {
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

pub(super) fn random_alnum(n: usize) -> String {
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
}
