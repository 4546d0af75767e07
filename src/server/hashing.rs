//! Password hashing and verifying (bcrypt, or the [`Algorithm`] configured), run where
//! [`HashMode`] says.
//!
//! In [`HashMode::Pool`] every hash or verify first takes a permit from a
//! semaphore of `hash_threads` permits and then runs on tokio's blocking
//! pool. The semaphore, not the runtime's `max_blocking_threads`, is what
//! bounds the work, for two reasons:
//!
//! * it belongs to the state, so the bound holds whichever runtime serves
//!   the router (the server's own, or a test's runtime under `oneshot`);
//! * tokio's semaphore is fair (FIFO), so under overload hashes complete in
//!   arrival order at full speed, one core each. With an unbounded pool,
//!   200 hashes on 2 cores all share the cores and all finish late together,
//!   which turns a queue into a timeout storm.
//!
//! The permit is moved into the blocking closure, so it is released when the
//! hash actually finishes, not when the request future is dropped: a client
//! that gives up mid-hash must not let another hash start on a core that is
//! still busy.
//!
//! In [`HashMode::Inline`] the work runs directly in the async handler,
//! blocking the (single) runtime thread on purpose.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::config::HashMode;
use super::error::{AuthError, ServerError};
use super::store::User;
use crate::password::Algorithm;

pub(crate) struct Hasher {
    mode: HashMode,
    algorithm: Algorithm,
    permits: Arc<Semaphore>,
    /// A hash of a random password at the configured cost. Logins for an
    /// unknown email verify against it, so they cost one full bcrypt verify
    /// like a real user's wrong password, and response time does not tell
    /// which emails are registered.
    dummy_hash: Arc<str>,
}

impl Hasher {
    /// Computes the dummy hash, so this takes one hash with `algorithm`.
    pub fn new(mode: HashMode, algorithm: Algorithm, threads: usize) -> Result<Self, ServerError> {
        let dummy_password: [u8; 32] = rand::random();
        let dummy_hash = algorithm
            .hash(&dummy_password)
            .map_err(|e| ServerError::Algorithm(e.to_string()))?;
        Ok(Self {
            mode,
            algorithm,
            permits: Arc::new(Semaphore::new(threads)),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a password that has already passed the length checks.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        let algorithm = self.algorithm;
        self.run(move || algorithm.hash(password.as_bytes()))
            .await?
            .map_err(|_| AuthError::Internal)
    }

    /// Checks a login. Runs exactly one bcrypt verify whether or not `user`
    /// exists, and returns the user only if the password matches.
    pub async fn verify_login(
        &self,
        password: String,
        user: Option<Arc<User>>,
    ) -> Result<Option<Arc<User>>, AuthError> {
        let dummy = Arc::clone(&self.dummy_hash);
        let algorithm = self.algorithm;
        self.run(move || match user {
            Some(user) => match algorithm.verify(password.as_bytes(), &user.password_hash) {
                Ok(true) => Ok(Some(user)),
                Ok(false) => Ok(None),
                // Our own stored hash failed to parse: a bug, not bad input.
                Err(_) => Err(AuthError::Internal),
            },
            None => {
                // Result ignored: only the time it takes matters.
                let _ = algorithm.verify(password.as_bytes(), &dummy);
                Ok(None)
            }
        })
        .await?
    }

    async fn run<T, F>(&self, work: F) -> Result<T, AuthError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.mode {
            HashMode::Inline => Ok(work()),
            HashMode::Pool => {
                // The semaphore is never closed, so this cannot fail.
                let permit = Arc::clone(&self.permits)
                    .acquire_owned()
                    .await
                    .map_err(|_| AuthError::Internal)?;
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    work()
                })
                .await
                .map_err(|_| AuthError::Internal)
            }
        }
    }
}
