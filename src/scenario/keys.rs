//! The small settings of a step, each its own type: `basic` credentials (rendered per
//! request), `think` time (drawn per flow and step) and `role` (what the step is to
//! `authbench check`).

use std::fmt;
use std::time::Duration;

use super::template::Template;

/// What a step does for the account, as `authbench check` needs to know. `run` ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Creates the account.
    Register,
    /// Exchanges credentials for a token or a session.
    Login,
    /// Needs the token or session the login gave.
    Protected,
    /// Exchanges a refresh token for a new access token.
    Refresh,
    /// Ends the session or revokes the token.
    Logout,
    /// Starts an OAuth 2.0 authorization code flow (the request to the authorization
    /// endpoint, with the PKCE challenge, `state` and `redirect_uri`).
    Authorize,
    /// Exchanges an authorization code for tokens (with the PKCE verifier).
    Token,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Register,
        Role::Login,
        Role::Protected,
        Role::Refresh,
        Role::Logout,
        Role::Authorize,
        Role::Token,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Register => "register",
            Role::Login => "login",
            Role::Protected => "protected",
            Role::Refresh => "refresh",
            Role::Logout => "logout",
            Role::Authorize => "authorize",
            Role::Token => "token",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// `basic = { user, password, encode }`: HTTP Basic credentials.
#[derive(Debug, Clone)]
pub struct Basic {
    pub user: Template,
    pub password: Template,
    /// `encode = "form"`: OAuth 2.0 client credentials (RFC 6749 section 2.3.1), whose
    /// client id and secret are each form-urlencoded before they are joined with `:` and
    /// base64-encoded. Plain HTTP Basic (RFC 7617) sends them as they are.
    pub form_encoded: bool,
}

impl Basic {
    /// `user:password` into `out` (cleared), each form-urlencoded first when
    /// [`Basic::form_encoded`]. Plain credentials render straight into `out`; only the
    /// form-encoded ones need a buffer of their own.
    pub fn render_into(&self, vars: &[String], out: &mut String) {
        out.clear();
        let mut part = String::new();
        for (i, t) in [&self.user, &self.password].into_iter().enumerate() {
            if i == 1 {
                out.push(':');
            }
            if self.form_encoded {
                part.clear();
                t.render_into(vars, &mut part);
                out.extend(form_urlencoded::byte_serialize(part.as_bytes()));
            } else {
                t.render_into(vars, out);
            }
        }
    }
}

/// Think time after a step: fixed (`min == max`) or uniform in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Think {
    pub min: Duration,
    pub max: Duration,
}

impl Think {
    /// One pause, drawn uniformly from the range.
    pub fn sample(&self) -> Duration {
        if self.max <= self.min {
            return self.min;
        }
        use rand::Rng;
        rand::thread_rng().gen_range(self.min..=self.max)
    }
}

impl fmt::Display for Think {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: Duration| format!("{}ms", d.as_millis());
        if self.min == self.max {
            f.write_str(&d(self.min))
        } else {
            write!(f, "{}-{}", d(self.min), d(self.max))
        }
    }
}
