//! Tests of role inference: the default scenario, single credential steps, explicit
//! roles, client credentials and cookie sessions.

use super::*;

#[test]
fn default_scenario() {
    let s = Scenario::builtin();
    let r = Roles::detect(&s);
    assert_eq!(r.register, Some(0));
    assert_eq!(r.login, Some(1));
    assert_eq!(
        r.protected.iter().map(|p| p.step).collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(r.api_key.len(), 4);
    let t = r.token.unwrap();
    assert_eq!((t.step, t.pointer.as_str()), (1, "/access_token"));
    let f = r.login_fields.unwrap();
    assert_eq!(f.password, "password");
    assert_eq!(f.identity.as_deref(), Some("email"));
}

#[test]
fn single_credential_step_is_judged_by_its_path() {
    let text = r#"
name = "t"
[vars]
pw = "{{random}}"
[[steps]]
name = "signin"
method = "POST"
path = "/api/v1/sessions"
body = { user = "u{{seq}}", pwd = "{{pw}}" }
extract = { tok = "/token" }
[[steps]]
name = "me"
path = "/api/v1/me"
headers = { Authorization = "Token {{tok}}" }
[[steps]]
name = "denied"
path = "/api/v1/me"
headers = { Authorization = "Token {{tok}}" }
expect = 401
"#;
    let s = Scenario::parse(text, "t.toml").unwrap();
    let r = Roles::detect(&s);
    assert_eq!((r.register, r.login), (None, Some(0)));
    assert_eq!(
        r.protected.len(),
        1,
        "a step expecting 401 is not protected"
    );
    assert_eq!(r.login_fields.unwrap().identity.as_deref(), Some("user"));
    assert!(r.api_key.is_empty());
}

#[test]
fn explicit_roles_win_and_inference_fills_the_rest() {
    let text = r#"
name = "t"
[vars]
pw = "{{random}}"
[[steps]]
name = "signup"
method = "POST"
path = "/accounts"
body = { username = "u{{seq}}", secret = "{{pw}}" }
role = "register"
[[steps]]
name = "signin"
method = "POST"
path = "/oauth/token"
body = "grant_type=password&username=u{{seq}}&password={{pw}}"
extract = { tok = "/access_token" }
[[steps]]
name = "me"
path = "/me"
headers = { Authorization = "Bearer {{tok}}" }
[[steps]]
name = "bye"
method = "DELETE"
path = "/me/session"
headers = { Authorization = "Bearer {{tok}}" }
role = "logout"
"#;
    let s = Scenario::parse(text, "t.toml").unwrap();
    let r = Roles::detect(&s);
    // `secret` is no password key: only the role finds register.
    assert_eq!((r.register, r.login, r.logout), (Some(0), Some(1), Some(3)));
    assert_eq!(r.register_fields, None);
    // A form-encoded string body is a login with its fields.
    let lf = r.login_fields.clone().unwrap();
    assert_eq!(
        (lf.password.as_str(), lf.identity.as_deref()),
        ("password", Some("username"))
    );
    assert_eq!(r.protected.len(), 1);
    assert!(matches!(
        r.protected[0].auth,
        Auth::Header { scheme: Some(ref sc), .. } if sc == "Bearer"
    ));
    let text = r.explain_text(&s);
    assert!(
        text.contains("`role = \"logout\"` in the scenario"),
        "{text}"
    );
    assert!(text.contains("no step is: refresh"), "{text}");
}

#[test]
fn a_wrong_or_repeated_role_is_an_error() {
    let base = "name = \"t\"\n[[steps]]\nname = \"a\"\npath = \"/a\"\nrole = \"login\"\n[[steps]]\nname = \"b\"\npath = \"/b\"\nrole = ";
    let e = Scenario::parse(&format!("{base}\"signin\"\n"), "t.toml").unwrap_err();
    assert!(
        e.to_string()
            .contains("t.toml:9:8: `role = \"signin\"` is not a role"),
        "{e}"
    );
    let e = Scenario::parse(&format!("{base}\"login\"\n"), "t.toml").unwrap_err();
    assert!(e.to_string().contains("already step `a`'s"), "{e}");
    assert!(Scenario::parse(&format!("{base}\"protected\"\n"), "t.toml").is_ok());
}

#[test]
fn basic_client_credentials_and_cookie_sessions_are_inferred() {
    let cc = Scenario::parse(
        r#"
name = "cc"
[[steps]]
name = "token"
method = "POST"
path = "/token"
basic = { user = "id", password = "{{api_key}}" }
form = { grant_type = "client_credentials" }
extract = { t = "/access_token" }
[[steps]]
name = "introspect"
method = "POST"
path = "/token/introspection"
basic = { user = "id", password = "{{api_key}}" }
form = { token = "{{t}}" }
"#,
        "cc.toml",
    )
    .unwrap();
    let r = Roles::detect(&cc);
    assert_eq!((r.register, r.login), (None, Some(0)));
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/django-session.toml"
    ))
    .unwrap();
    let dj = Scenario::parse(&text, "django-session.toml");
    // The feeder file is relative to the scenario: parse it where it lives.
    let dj = dj.or_else(|_| {
        Scenario::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/django-session.toml"
        )))
    });
    let dj = dj.unwrap();
    let r = Roles::detect(&dj);
    assert_eq!(r.login, Some(1), "the 302 form login");
    assert_eq!(r.protected.len(), 1);
    assert_eq!(
        r.protected[0].auth,
        Auth::Cookie {
            name: Some("sessionid".into())
        }
    );
    assert_eq!(r.summary(&dj).session_cookie.as_deref(), Some("sessionid"));
}
