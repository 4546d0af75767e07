//! The in-memory user store: users by lowercased email and by id, safe to
//! share between any number of concurrent requests.
//!
//! Registration is split in two so that hashing (slow, off the lock) cannot
//! race the duplicate check: [`UserStore::reserve`] claims the email at once,
//! under the lock, before any hashing starts; [`Reservation::commit`] turns
//! the claim into a user once the hash is ready. A reservation that is
//! dropped without being committed (hashing failed, or the client went away
//! and the handler future was dropped mid-hash) gives the email back, so a
//! failed registration never locks an address out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

/// A registered user. Immutable once created, shared as `Arc<User>`.
#[derive(Debug)]
pub(crate) struct User {
    pub id: u64,
    /// Lowercased; the same string the store is keyed by.
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// What registration knows about a user before the store assigns an id.
pub(crate) struct NewUser {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub password_hash: String,
}

enum Slot {
    /// A registration for this email is hashing its password right now.
    Reserved,
    Taken(Arc<User>),
}

struct Inner {
    by_email: HashMap<String, Slot>,
    by_id: HashMap<u64, Arc<User>>,
    next_id: u64,
}

pub(crate) struct UserStore {
    inner: Mutex<Inner>,
}

impl UserStore {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                by_email: HashMap::new(),
                by_id: HashMap::new(),
                next_id: 1,
            }),
        }
    }

    /// A std mutex rather than tokio's: every critical section is a few map
    /// operations with no `.await` inside, so an async mutex would only add
    /// overhead. Poisoning is recovered from rather than propagated: nothing
    /// inside a critical section touches client input in a way that can
    /// panic, and each one leaves the maps consistent after every single
    /// step, so the data behind a poisoned lock is still valid, and a panic
    /// elsewhere must not turn every later request into a 500.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `email` (already lowercased) for a registration in progress.
    /// `None` if it is registered or being registered.
    pub fn reserve(&self, email: String) -> Option<Reservation<'_>> {
        let mut inner = self.lock();
        if inner.by_email.contains_key(&email) {
            return None;
        }
        inner.by_email.insert(email.clone(), Slot::Reserved);
        Some(Reservation {
            store: self,
            email,
            committed: false,
        })
    }

    /// The registered user with this (lowercased) email. A registration
    /// still in progress does not count: it has no password hash yet.
    pub fn find_by_email(&self, email: &str) -> Option<Arc<User>> {
        match self.lock().by_email.get(email) {
            Some(Slot::Taken(user)) => Some(Arc::clone(user)),
            Some(Slot::Reserved) | None => None,
        }
    }

    pub fn find_by_id(&self, id: u64) -> Option<Arc<User>> {
        self.lock().by_id.get(&id).cloned()
    }

    /// Number of registered users (reservations not included).
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }
}

/// An email claimed by a registration that has not finished yet.
pub(crate) struct Reservation<'a> {
    store: &'a UserStore,
    email: String,
    committed: bool,
}

impl Reservation<'_> {
    /// Creates the user under the reserved email and gives it the next id.
    pub fn commit(mut self, new: NewUser) -> Arc<User> {
        let mut inner = self.store.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let user = Arc::new(User {
            id,
            email: self.email.clone(),
            first_name: new.first_name,
            last_name: new.last_name,
            password_hash: new.password_hash,
            created_at: Utc::now(),
        });
        inner.by_id.insert(id, Arc::clone(&user));
        inner
            .by_email
            .insert(self.email.clone(), Slot::Taken(Arc::clone(&user)));
        self.committed = true;
        user
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let mut inner = self.store.lock();
        if matches!(inner.by_email.get(&self.email), Some(Slot::Reserved)) {
            inner.by_email.remove(&self.email);
        }
    }
}
