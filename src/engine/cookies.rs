//! A flow's cookie jar, as a browser keeps one: `Set-Cookie` headers stored by the rules
//! of RFC 6265 (domain, path, expiry and `Max-Age`, several cookies per response), sent
//! back in a `Cookie` header on the later requests they match, and dropped when the flow
//! ends. Storage and matching are `cookie_store`'s; parsing is the `cookie` crate's.
//!
//! One difference from browsers, on purpose: a `Secure` cookie is sent only over
//! `https://`. Browsers also trust plain-http loopback; a load tester pointed at a server
//! over plain http would then hide a deployment that cannot work behind a real host.
//!
//! A jar that never received a cookie costs nothing: no URL is parsed, no header built.

use cookie_store::CookieStore;
use reqwest::header::{HeaderMap, HeaderValue, SET_COOKIE};
use url::Url;

/// The cookies of one flow.
#[derive(Default, Clone)]
pub struct Jar {
    store: CookieStore,
    /// Whether a cookie was stored since the last [`Jar::clear`]: until one is, the jar
    /// is known empty without looking into the store.
    used: bool,
}

impl Jar {
    /// True until a response stores a cookie.
    pub fn is_empty(&self) -> bool {
        !self.used
    }

    /// Forgets every cookie (a flow's end).
    pub fn clear(&mut self) {
        if self.used {
            self.store.clear();
            self.used = false;
        }
    }

    /// Whether `headers` hold any `Set-Cookie` (cheap: one lookup).
    pub fn sets_cookies(headers: &HeaderMap) -> bool {
        headers.contains_key(SET_COOKIE)
    }

    /// Stores every `Set-Cookie` of a response to `url`. Cookies the rules refuse (a
    /// `Domain` the host does not match, an unparsable header) are ignored, as a browser
    /// does; a cookie that expires one already stored removes it.
    pub fn store(&mut self, headers: &HeaderMap, url: &Url) {
        let cookies = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
            .filter_map(|s| cookie::Cookie::parse(s.to_owned()).ok());
        self.store.store_response_cookies(cookies, url);
        self.used = true;
    }

    /// The `Cookie` header for a request to `url`, or `None` when no cookie matches.
    pub fn header(&self, url: &Url) -> Option<HeaderValue> {
        let mut out = String::new();
        self.write_matching(url, None, &mut out);
        if out.is_empty() {
            return None;
        }
        HeaderValue::from_maybe_shared(bytes::Bytes::from(out)).ok()
    }

    /// Appends `name=value; ...` for the cookies a request to `url` sends (none over
    /// plain http that are `Secure`), leaving out the cookie named `skip`.
    fn write_matching(&self, url: &Url, skip: Option<&str>, out: &mut String) {
        if !self.used {
            return;
        }
        let https = url.scheme() == "https";
        for c in self.store.matches(url) {
            if (c.secure() == Some(true) && !https) || skip == Some(c.name()) {
                continue;
            }
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(c.name());
            out.push('=');
            out.push_str(c.value());
        }
    }

    /// The value of the cookie `name`: the one a request to `url` would send, else any
    /// unexpired cookie of that name in the jar (one scoped to another path).
    pub fn value(&self, name: &str, url: &Url) -> Option<&str> {
        if !self.used {
            return None;
        }
        self.store
            .matches(url)
            .into_iter()
            .find(|c| c.name() == name)
            .or_else(|| self.store.iter_unexpired().find(|c| c.name() == name))
            .map(|c| c.value())
    }
}

impl Jar {
    /// The `Cookie` header for `url` with the cookie `name` left out (`value` `None`) or
    /// sent with `value` instead of the stored one (added when the jar has none): what
    /// `authbench check` sends to see whether a session survives a missing, forged or
    /// planted cookie.
    pub fn header_replacing(
        &self,
        url: &Url,
        name: &str,
        value: Option<&str>,
    ) -> Option<HeaderValue> {
        let mut out = String::new();
        self.write_matching(url, Some(name), &mut out);
        if let Some(v) = value {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(name);
            out.push('=');
            out.push_str(v);
        }
        if out.is_empty() {
            return None;
        }
        HeaderValue::from_str(&out).ok()
    }

    /// Stores `name=value` as if `url` had set it (path `/`): a cookie the client chose,
    /// as an attacker plants one before the victim logs in.
    pub fn plant(&mut self, url: &Url, name: &str, value: &str) {
        let raw = cookie::Cookie::build((name.to_string(), value.to_string()))
            .path("/")
            .build();
        let _ = self.store.insert_raw(&raw, url);
        self.used = true;
    }
}

/// A `Cookie` header value merged with one the step sets itself (the step's first).
pub fn merge(own: Option<&HeaderValue>, jar: HeaderValue) -> HeaderValue {
    match own {
        None => jar,
        Some(own) => {
            let mut v = own.as_bytes().to_vec();
            v.extend_from_slice(b"; ");
            v.extend_from_slice(jar.as_bytes());
            HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).unwrap_or(jar)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(SET_COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn stores_sends_scopes_and_expires() {
        let mut jar = Jar::default();
        assert!(jar.is_empty());
        let u = url("http://127.0.0.1:8000/login");
        jar.store(
            &set(&[
                "a=1; Path=/",
                "b=2; Path=/admin",
                "s=3; Path=/; Secure",
                "gone=x; Path=/; Max-Age=0",
            ]),
            &u,
        );
        let h = jar.header(&url("http://127.0.0.1:8000/home")).unwrap();
        assert_eq!(h, "a=1");
        let h = jar.header(&url("http://127.0.0.1:8000/admin/x")).unwrap();
        let mut parts: Vec<&str> = h.to_str().unwrap().split("; ").collect();
        parts.sort();
        assert_eq!(parts, ["a=1", "b=2"]);
        // Secure cookies go over https only.
        let h = jar.header(&url("https://127.0.0.1:8000/")).unwrap();
        assert!(h.to_str().unwrap().contains("s=3"), "{h:?}");
        // Max-Age=0 removes a stored cookie.
        jar.store(&set(&["a=; Path=/; Max-Age=0"]), &u);
        assert_eq!(jar.header(&url("http://127.0.0.1:8000/home")), None);
        assert_eq!(jar.value("b", &url("http://127.0.0.1:8000/")), Some("2"));
        // Another host gets nothing.
        assert_eq!(jar.header(&url("http://10.0.0.1:8000/admin/x")), None);
        jar.clear();
        assert!(jar.is_empty());
        assert_eq!(jar.value("b", &u), None);
    }

    #[test]
    fn merges_with_the_steps_own_cookie_header() {
        let jar = HeaderValue::from_static("a=1");
        assert_eq!(merge(None, jar.clone()), "a=1");
        assert_eq!(
            merge(Some(&HeaderValue::from_static("x=y")), jar),
            "x=y; a=1"
        );
    }
}
