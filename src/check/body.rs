//! A step's request body as fields the probes can change one at a time: a JSON object or
//! a form (`application/x-www-form-urlencoded`, from `form = {...}` or a string body that
//! is form-encoded). Anything else (a JSON array, free text) is not editable, and the
//! probes that need to edit it say so in their skip.

use serde_json::Value;

use crate::scenario::Body;

/// A rendered body whose fields can be replaced or removed.
#[derive(Debug, Clone, PartialEq)]
pub enum Fields {
    /// A JSON object.
    Json(serde_json::Map<String, Value>),
    /// Form fields in their order.
    Form(Vec<(String, String)>),
}

impl Fields {
    /// The body rendered with `vars`, when it is a JSON object or form-encoded.
    pub fn of(body: &Body, vars: &[String]) -> Option<Fields> {
        let mut out = Vec::new();
        let mut scratch = String::new();
        body.render_into(vars, &mut out, &mut scratch);
        let form = |b: &[u8]| {
            Fields::Form(
                form_urlencoded::parse(b)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            )
        };
        match body {
            Body::Json(_) => match serde_json::from_slice(&out).ok()? {
                Value::Object(o) => Some(Fields::Json(o)),
                _ => None,
            },
            Body::Form(_) => Some(form(&out)),
            Body::Text(_) => match serde_json::from_slice::<Value>(&out) {
                Ok(Value::Object(o)) => Some(Fields::Json(o)),
                Ok(_) => None,
                Err(_) if out.contains(&b'=') && !out.contains(&b' ') => Some(form(&out)),
                Err(_) => None,
            },
        }
    }

    /// An empty body of the same kind (`{}` or an empty form).
    pub fn empty(&self) -> Fields {
        match self {
            Fields::Json(_) => Fields::Json(Default::default()),
            Fields::Form(_) => Fields::Form(Vec::new()),
        }
    }

    /// The field's value as text (a JSON string, or the text of a number or boolean).
    pub fn get(&self, key: &str) -> Option<String> {
        match self {
            Fields::Json(o) => o.get(key).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
                _ => None,
            }),
            Fields::Form(f) => f.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()),
        }
    }

    pub fn keys(&self) -> Vec<String> {
        match self {
            Fields::Json(o) => o.keys().cloned().collect(),
            Fields::Form(f) => f.iter().map(|(k, _)| k.clone()).collect(),
        }
    }

    /// Sets a field to a string (added when absent).
    pub fn set(&mut self, key: &str, value: &str) {
        match self {
            Fields::Json(o) => {
                o.insert(key.to_string(), Value::String(value.to_string()));
            }
            Fields::Form(f) => match f.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value.to_string(),
                None => f.push((key.to_string(), value.to_string())),
            },
        }
    }

    pub fn remove(&mut self, key: &str) {
        match self {
            Fields::Json(o) => {
                o.remove(key);
            }
            Fields::Form(f) => f.retain(|(k, _)| k != key),
        }
    }

    /// The content type and bytes to send.
    pub fn render(&self) -> (&'static str, Vec<u8>) {
        match self {
            Fields::Json(o) => (
                "application/json",
                serde_json::to_vec(o).unwrap_or_default(),
            ),
            Fields::Form(f) => {
                let mut s = form_urlencoded::Serializer::new(String::new());
                for (k, v) in f {
                    s.append_pair(k, v);
                }
                ("application/x-www-form-urlencoded", s.finish().into_bytes())
            }
        }
    }

    /// What kind of body it is, for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Fields::Json(_) => "JSON",
            Fields::Form(_) => "form",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[test]
    fn form_and_json_bodies_edit_alike() {
        let s = Scenario::parse(
            r#"
name = "t"
[[steps]]
name = "a"
path = "/a"
form = { username = "u{{seq}}", password = "p w" }
[[steps]]
name = "b"
path = "/b"
body = { email = "e{{seq}}", password = "x" }
[[steps]]
name = "c"
path = "/c"
body = "grant_type=password&username=u{{seq}}"
[[steps]]
name = "d"
path = "/d"
body = "free text"
"#,
            "t.toml",
        )
        .unwrap();
        let mut vars = vec![String::new(); s.slot_count];
        vars[crate::scenario::SLOT_SEQ] = "7".into();
        let body = |i: usize| Fields::of(s.steps[i].body.as_ref().unwrap(), &vars);
        let mut a = body(0).unwrap();
        assert_eq!(a.get("username").as_deref(), Some("u7"));
        a.set("password", "new&pw");
        a.remove("username");
        assert_eq!(a.render().1, b"password=new%26pw");
        let mut b = body(1).unwrap();
        b.remove("email");
        assert_eq!(
            b.render(),
            ("application/json", br#"{"password":"x"}"#.to_vec())
        );
        assert_eq!(body(2).unwrap().get("username").as_deref(), Some("u7"));
        assert_eq!(body(3), None);
        assert_eq!(b.empty().render().1, b"{}");
    }
}
