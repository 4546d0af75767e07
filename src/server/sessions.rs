//! Refresh-token families: rotation and reuse detection.
//!
//! A login or registration starts a *family* (a session). Every refresh token names its
//! family (`sid`) and its generation (`jti`); the store remembers only the current `jti`
//! of each family. Refreshing with the current token rotates it (a new `jti`, the old
//! token is spent). Presenting a spent token means two parties hold tokens of one family,
//! one of them a thief who copied it, and we cannot tell which: the whole family is
//! revoked (OAuth 2.0 Security BCP, section 4.14), which also ends its access tokens,
//! since they carry the same `sid` and are checked against this store.
//!
//! A client that races itself (two refreshes with one token at once) therefore logs
//! itself out; that is the price of detecting theft, and the standard one.
//!
//! Nothing secret is stored: tokens are signed JWTs, and the store holds ids only.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

struct Family {
    user_id: u64,
    current_jti: String,
    revoked: bool,
}

/// Why a refresh was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshRefused {
    /// No such family, another user's, or it was revoked earlier.
    Invalid,
    /// A spent token: the family has just been revoked.
    Reused,
}

pub(crate) struct Sessions {
    inner: Mutex<Inner>,
}

struct Inner {
    families: HashMap<u64, Family>,
    next_id: u64,
}

impl Sessions {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                families: HashMap::new(),
                next_id: 1,
            }),
        }
    }

    /// Each critical section is one map operation: a poisoned lock still guards
    /// consistent data, and must not turn later requests into 500s.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a family for `user_id`; returns its id and first `jti`.
    pub fn start(&self, user_id: u64) -> (u64, String) {
        let jti = new_jti();
        let mut inner = self.lock();
        let sid = inner.next_id;
        inner.next_id += 1;
        inner.families.insert(
            sid,
            Family {
                user_id,
                current_jti: jti.clone(),
                revoked: false,
            },
        );
        (sid, jti)
    }

    /// Spends the refresh token `(sid, jti)` of `user_id` and returns the next `jti`.
    pub fn rotate(&self, sid: u64, user_id: u64, jti: &str) -> Result<String, RefreshRefused> {
        let mut inner = self.lock();
        let family = inner
            .families
            .get_mut(&sid)
            .filter(|f| f.user_id == user_id && !f.revoked)
            .ok_or(RefreshRefused::Invalid)?;
        if family.current_jti != jti {
            family.revoked = true;
            return Err(RefreshRefused::Reused);
        }
        let next = new_jti();
        family.current_jti.clone_from(&next);
        Ok(next)
    }

    /// Ends a family (logout). Returns whether it was live.
    pub fn revoke(&self, sid: u64, user_id: u64) -> bool {
        match self.lock().families.get_mut(&sid) {
            Some(f) if f.user_id == user_id && !f.revoked => {
                f.revoked = true;
                true
            }
            _ => false,
        }
    }

    /// Whether access tokens of this family are still good.
    pub fn is_live(&self, sid: u64) -> bool {
        self.lock().families.get(&sid).is_some_and(|f| !f.revoked)
    }
}

fn new_jti() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_and_reuse() {
        let s = Sessions::new();
        let (sid, j1) = s.start(7);
        assert!(s.is_live(sid));
        let j2 = s.rotate(sid, 7, &j1).unwrap();
        assert_ne!(j1, j2);
        // Another user's family is not theirs to use.
        assert_eq!(s.rotate(sid, 8, &j2), Err(RefreshRefused::Invalid));
        // Reusing the spent token revokes the family, current token included.
        assert_eq!(s.rotate(sid, 7, &j1), Err(RefreshRefused::Reused));
        assert!(!s.is_live(sid));
        assert_eq!(s.rotate(sid, 7, &j2), Err(RefreshRefused::Invalid));
    }

    #[test]
    fn logout_revokes() {
        let s = Sessions::new();
        let (sid, j) = s.start(1);
        assert!(s.revoke(sid, 1));
        assert!(!s.revoke(sid, 1));
        assert!(!s.is_live(sid));
        assert_eq!(s.rotate(sid, 1, &j), Err(RefreshRefused::Invalid));
        assert!(!s.is_live(999));
    }
}
