//! In-memory rate limiting of login and registration, per account and per client IP.
//!
//! Two limits with different jobs, chosen so that a load test (authbench's own `run`
//! drives thousands of successful flows from 127.0.0.1) is never throttled while a
//! password-guessing attack is:
//!
//! * **Per account** (the strict one): attempts on one email within a window. Login
//!   attempts are counted *when they start*, before hashing, so a burst of 50 concurrent
//!   guesses cannot all slip past the check before the first one is counted; a successful
//!   login clears the account's count. Registrations of one email are counted the same
//!   way. The count is keyed by the email as sent (lowercased), whether or not the
//!   account exists, so a 429 says nothing about which emails are registered.
//! * **Per IP** (generous): *failed* logins and registrations from one address within a
//!   window. Only failures count, so any number of successful flows from one load
//!   generator pass; a client spraying guesses over many accounts is stopped. It is
//!   counted when a failure is known (after hashing), so it can overshoot by the number
//!   of requests in flight; that is fine for a backstop.
//!
//! Windows are fixed (a count and the instant the window opened), which is simple, needs
//! one small entry per key, and gives an exact `Retry-After`: the time until the window
//! closes. Expired entries are swept every so often, so memory stays bounded by the
//! keys seen within one window.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::config::RateLimitConfig;

/// Sweep expired entries after this many inserts of new keys.
const SWEEP_EVERY: usize = 1024;

/// A counter per key over fixed windows of `window`.
struct Windowed<K> {
    limit: u32,
    window: Duration,
    inner: Mutex<WindowedInner<K>>,
}

struct WindowedInner<K> {
    entries: HashMap<K, (Instant, u32)>,
    inserts: usize,
}

impl<K: Hash + Eq + Clone> Windowed<K> {
    fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            inner: Mutex::new(WindowedInner {
                entries: HashMap::new(),
                inserts: 0,
            }),
        }
    }

    /// Critical sections are a map lookup and an add; a panic cannot leave them half
    /// done, so a poisoned lock still guards valid data.
    fn lock(&self) -> MutexGuard<'_, WindowedInner<K>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The count of `key` in the current window, or `None` once the window is over.
    fn live(&self, entry: Option<&(Instant, u32)>, now: Instant) -> Option<(Instant, u32)> {
        entry
            .copied()
            .filter(|(start, _)| now.duration_since(*start) < self.window)
    }

    /// Counts one event for `key` unless the limit is already reached, in which case the
    /// time until the window closes is returned and nothing is counted.
    fn try_take(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut inner = self.lock();
        let current = self.live(inner.entries.get(key), now);
        match current {
            Some((start, n)) if n >= self.limit => Err(self.remaining(start, now)),
            Some((start, n)) => {
                inner.entries.insert(key.clone(), (start, n + 1));
                Ok(())
            }
            None => {
                self.insert_new(&mut inner, key.clone(), now);
                Ok(())
            }
        }
    }

    /// Whether `key` is over its limit, without counting anything.
    fn check(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        match self.live(self.lock().entries.get(key), now) {
            Some((start, n)) if n >= self.limit => Err(self.remaining(start, now)),
            _ => Ok(()),
        }
    }

    /// Counts one event for `key` unconditionally.
    fn add(&self, key: &K) {
        let now = Instant::now();
        let mut inner = self.lock();
        match self.live(inner.entries.get(key), now) {
            Some((start, n)) => {
                inner
                    .entries
                    .insert(key.clone(), (start, n.saturating_add(1)));
            }
            None => self.insert_new(&mut inner, key.clone(), now),
        }
    }

    fn clear(&self, key: &K) {
        self.lock().entries.remove(key);
    }

    fn insert_new(&self, inner: &mut WindowedInner<K>, key: K, now: Instant) {
        inner.entries.insert(key, (now, 1));
        inner.inserts += 1;
        if inner.inserts >= SWEEP_EVERY {
            inner.inserts = 0;
            let window = self.window;
            inner
                .entries
                .retain(|_, (start, _)| now.duration_since(*start) < window);
        }
    }

    fn remaining(&self, start: Instant, now: Instant) -> Duration {
        self.window.saturating_sub(now.duration_since(start))
    }
}

/// The limits of one server, shared by every request.
pub(crate) struct RateLimiter {
    enabled: bool,
    login_per_account: Windowed<String>,
    register_per_account: Windowed<String>,
    failures_per_ip: Windowed<IpAddr>,
}

/// A request turned away; the value is how long until it may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limited(pub Duration);

impl RateLimiter {
    pub fn new(cfg: &RateLimitConfig) -> Self {
        Self {
            enabled: cfg.enabled,
            login_per_account: Windowed::new(cfg.login_attempts_per_account, cfg.window),
            register_per_account: Windowed::new(cfg.register_attempts_per_account, cfg.window),
            failures_per_ip: Windowed::new(cfg.failures_per_ip, cfg.window),
        }
    }

    /// Before a login is processed: the IP must be under its failure limit, and the
    /// attempt is counted against the account.
    pub fn begin_login(&self, ip: Option<IpAddr>, email: &str) -> Result<(), Limited> {
        if !self.enabled {
            return Ok(());
        }
        if let Some(ip) = ip {
            self.failures_per_ip.check(&ip).map_err(Limited)?;
        }
        self.login_per_account
            .try_take(&email.to_owned())
            .map_err(Limited)
    }

    /// Before a registration is processed, likewise.
    pub fn begin_register(&self, ip: Option<IpAddr>, email: &str) -> Result<(), Limited> {
        if !self.enabled {
            return Ok(());
        }
        if let Some(ip) = ip {
            self.failures_per_ip.check(&ip).map_err(Limited)?;
        }
        self.register_per_account
            .try_take(&email.to_owned())
            .map_err(Limited)
    }

    /// A login succeeded: the account's failed attempts no longer count.
    pub fn login_succeeded(&self, email: &str) {
        if self.enabled {
            self.login_per_account.clear(&email.to_owned());
        }
    }

    /// A login or registration failed for a reason the client controls.
    pub fn failed(&self, ip: Option<IpAddr>) {
        if let (true, Some(ip)) = (self.enabled, ip) {
            self.failures_per_ip.add(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(per_account: u32, per_ip: u32) -> RateLimitConfig {
        RateLimitConfig {
            enabled: true,
            window: Duration::from_secs(60),
            login_attempts_per_account: per_account,
            register_attempts_per_account: per_account,
            failures_per_ip: per_ip,
        }
    }

    #[test]
    fn account_attempts_are_limited_and_success_clears_them() {
        let rl = RateLimiter::new(&cfg(3, 100));
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..3 {
            rl.begin_login(ip, "a@x.io").unwrap();
        }
        let Limited(wait) = rl.begin_login(ip, "a@x.io").unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        // Another account is not affected.
        rl.begin_login(ip, "b@x.io").unwrap();
        rl.login_succeeded("a@x.io");
        rl.begin_login(ip, "a@x.io").unwrap();
    }

    #[test]
    fn ip_limit_counts_only_failures() {
        let rl = RateLimiter::new(&cfg(1000, 2));
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for i in 0..50 {
            rl.begin_register(ip, &format!("u{i}@x.io")).unwrap();
        }
        rl.failed(ip);
        rl.failed(ip);
        assert!(rl.begin_login(ip, "c@x.io").is_err());
        // Unknown IP (e.g. a test calling the router directly) is not IP-limited.
        rl.begin_login(None, "c@x.io").unwrap();
        rl.begin_login(Some(IpAddr::from([10, 0, 0, 2])), "d@x.io")
            .unwrap();
    }

    #[test]
    fn disabled_limits_nothing() {
        let mut c = cfg(0, 0);
        c.enabled = false;
        let rl = RateLimiter::new(&c);
        for _ in 0..10 {
            rl.begin_login(None, "a@x.io").unwrap();
        }
    }

    #[test]
    fn windows_expire() {
        let w: Windowed<u8> = Windowed::new(1, Duration::from_millis(1));
        w.try_take(&1).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        w.try_take(&1).unwrap();
    }
}
