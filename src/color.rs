//! Whether a stream gets ANSI colour, and the few styles authbench uses. Decided once per
//! process and per stream by the command line ([`crate::cli`]): on when the stream is a
//! terminal, off when it is not, off under `NO_COLOR` (no-color.org), on under
//! `CLICOLOR_FORCE`, and `--color always|never` over all of them. Lower layers (the
//! terminal tables, the progress bar) only ever receive the resulting `bool`.

use std::ffi::OsString;

/// `--color`: when to write colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum When {
    /// On a terminal, unless `NO_COLOR` is set (or forced by `CLICOLOR_FORCE`).
    #[default]
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
}

/// The decision for one stream, from the flag, whether the stream is a terminal, and the
/// values of `NO_COLOR` and `CLICOLOR_FORCE`. `NO_COLOR` (any non-empty value) wins over
/// `CLICOLOR_FORCE` (any value but empty or `0`): an explicit opt-out is respected.
pub fn decide(
    when: When,
    is_terminal: bool,
    no_color: Option<OsString>,
    clicolor_force: Option<OsString>,
) -> bool {
    let set = |v: &Option<OsString>| v.as_ref().is_some_and(|v| !v.is_empty());
    match when {
        When::Always => true,
        When::Never => false,
        When::Auto if set(&no_color) => false,
        When::Auto if set(&clicolor_force) && clicolor_force.as_deref() != Some("0".as_ref()) => {
            true
        }
        When::Auto => is_terminal,
    }
}

/// [`decide`] with this process's environment.
pub fn decide_from_env(when: When, is_terminal: bool) -> bool {
    decide(
        when,
        is_terminal,
        std::env::var_os("NO_COLOR"),
        std::env::var_os("CLICOLOR_FORCE"),
    )
}

/// An SGR style: the escape that starts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style(&'static str);

pub const ERROR: Style = Style("\x1b[1;31m");
pub const WARNING: Style = Style("\x1b[1;33m");
pub const GOOD: Style = Style("\x1b[32m");
pub const BAD: Style = Style("\x1b[31m");
pub const NOTICE: Style = Style("\x1b[33m");

/// `text` in `style` when `on`, else `text` unchanged.
pub fn paint(on: bool, style: Style, text: &str) -> String {
    if on {
        format!("{}{text}\x1b[0m", style.0)
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn the_flag_wins_then_no_color_then_clicolor_force_then_the_terminal() {
        assert!(decide(When::Always, false, os("1"), None));
        assert!(!decide(When::Never, true, None, os("1")));
        assert!(!decide(When::Auto, true, os("1"), None));
        assert!(!decide(When::Auto, true, os("1"), os("1")));
        assert!(decide(When::Auto, false, None, os("1")));
        assert!(!decide(When::Auto, false, None, os("0")));
        assert!(decide(When::Auto, true, None, None));
        assert!(!decide(When::Auto, false, None, None));
        // An empty NO_COLOR does not count (no-color.org).
        assert!(decide(When::Auto, true, os(""), None));
    }

    #[test]
    fn paint_is_the_identity_when_off() {
        assert_eq!(paint(false, ERROR, "error:"), "error:");
        assert_eq!(paint(true, ERROR, "error:"), "\x1b[1;31merror:\x1b[0m");
    }
}
