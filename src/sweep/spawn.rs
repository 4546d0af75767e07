//! `sweep --spawn`: the user's service started once per cost, in its own process group,
//! and always stopped again.
//!
//! The command runs under `sh -c` as the leader of a new process group, so whatever it
//! starts (a server behind a wrapper script, workers it forks) can be signalled as one:
//! SIGTERM to the group, up to [`STOP_GRACE`] to exit, then SIGKILL. [`ProcessGroup`]'s
//! `Drop` kills the group too, so an error, a panic or an early return never leaves a
//! server holding the port for the next cost.
//!
//! The leader (our child) is never reaped before the group has been signalled for the
//! last time: while it is an unreaped zombie its pid cannot be reused, so `kill(-pgid)`
//! can only ever reach our group.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long a service gets to exit after SIGTERM before the group is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Groups started and not yet stopped, for [`kill_live_groups`].
static LIVE: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<i32>> {
    // A panic while holding the lock leaves a plain Vec behind: still usable.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// SIGKILLs every group still running, for an exit that skips destructors (a second
/// Ctrl-C calls `process::exit`): the services must not outlive authbench.
pub fn kill_live_groups() {
    for pgid in live().drain(..) {
        signal_group(pgid, libc::SIGKILL);
    }
}

/// How `--spawn` is run.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// The command, with `{cost}` where the cost goes; run by `sh -c`.
    pub command: String,
    /// The service's base URL.
    pub target: String,
    /// Polled with GET until it answers 2xx (e.g. `/health`).
    pub ready_path: String,
    /// How long the service may take to become ready.
    pub ready_timeout: Duration,
    /// API key for the scenario (`{{api_key}}`).
    pub api_key: Option<String>,
    /// The service's time per hash at each cost, if the user knows it (for the capacity).
    pub hash_time_ms: Option<f64>,
    /// TLS settings for an `https://` target (the readiness check and the runs).
    pub tls: crate::options::TlsOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("could not build the HTTP client for the readiness check: {0}")]
    Client(String),
    #[error("could not start `{command}`: {source}")]
    Start {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` exited ({status}) before {url} answered 2xx")]
    Exited {
        command: String,
        url: String,
        status: ExitStatus,
    },
    #[error("`{command}` did not answer 2xx at {url} within {timeout_ms} ms (last: {last})")]
    NotReady {
        command: String,
        url: String,
        timeout_ms: u128,
        last: String,
    },
}

/// A command running as the leader of its own process group; the group is killed when
/// this is dropped without [`ProcessGroup::stop`].
#[derive(Debug)]
pub struct ProcessGroup {
    child: Child,
    pgid: i32,
    command: String,
    /// The group was stopped and the leader reaped; nothing left to do on drop.
    finished: bool,
}

impl ProcessGroup {
    /// Starts `sh -c command` in a new process group. Its stdout is discarded (a server's
    /// request log would bury the table); stderr is passed through, so its errors show.
    pub fn start(command: &str) -> Result<ProcessGroup, SpawnError> {
        let child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|source| SpawnError::Start {
                command: command.to_string(),
                source,
            })?;
        let pgid = match i32::try_from(child.id()) {
            Ok(p) => p,
            Err(_) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(SpawnError::Start {
                    command: command.to_string(),
                    source: std::io::Error::other("process id out of range"),
                });
            }
        };
        live().push(pgid);
        Ok(ProcessGroup {
            child,
            pgid,
            command: command.to_string(),
            finished: false,
        })
    }

    /// The process group id (the leader's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Whether the leader has exited, without reaping it (so the pgid stays ours).
    fn leader_exited(&self) -> bool {
        // SAFETY: waitid only writes the siginfo_t we pass; WNOWAIT leaves the child
        // waitable, WNOHANG makes it return at once.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pgid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // With WNOHANG, si_pid stays 0 while the child runs.
        rc == 0 && unsafe { info.si_pid() } != 0
    }

    /// When the leader has exited: kills what is left of the group and returns the
    /// leader's exit status.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.finished || !self.leader_exited() {
            return None;
        }
        signal_group(self.pgid, libc::SIGKILL);
        wait_until_gone(self.pgid);
        let status = self.child.wait().ok();
        self.finish();
        status
    }

    /// SIGTERM to the group, up to `grace` for every member to exit, then SIGKILL, then
    /// reaps the leader.
    pub async fn stop(mut self, grace: Duration) {
        if self.finished {
            return;
        }
        signal_group(self.pgid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while group_alive(self.pgid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill_and_reap();
    }

    fn kill_and_reap(&mut self) {
        if group_alive(self.pgid) {
            signal_group(self.pgid, libc::SIGKILL);
        }
        wait_until_gone(self.pgid);
        // After SIGKILL the leader exits at once, so this wait is short.
        let _ = self.child.wait();
        self.finish();
    }

    fn finish(&mut self) {
        self.finished = true;
        live().retain(|p| *p != self.pgid);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.finished {
            self.kill_and_reap();
        }
    }
}

/// Waits (at most 2 s) for a SIGKILLed group's members to be gone. They die as soon as
/// the kernel delivers the signal, which on a busy machine can be a moment after `kill`
/// returns: waiting makes "stopped" mean gone, with the port free for whatever starts
/// next. Called before the leader is reaped, so the pgid is still ours.
fn wait_until_gone(pgid: i32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while group_alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal_group(pgid: i32, sig: libc::c_int) {
    if pgid > 1 {
        // SAFETY: kill has no memory effects; a negative pid addresses the group.
        // Failure (ESRCH: already gone) is the outcome we want anyway.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Whether any member of the group still runs. Zombies do not count: they are dead, and
/// their parent (after an orphaning, often a pid 1 that never reaps) may never collect
/// them, yet `kill(-pgid, 0)` still finds them.
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    if unsafe { libc::kill(-pgid, 0) } != 0 {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    dir.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut f = rest.split_whitespace();
        let state = f.next();
        let pgrp = f.nth(1).and_then(|p| p.parse::<i32>().ok());
        pgrp == Some(pgid) && !matches!(state, Some("Z" | "X"))
    })
}

/// What [`wait_ready`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The stop flag was raised while waiting.
    Stopped,
}

/// Polls `GET url` until it answers 2xx, the command exits, `timeout` passes, or `stop`
/// turns true.
pub async fn wait_ready(
    group: &mut ProcessGroup,
    url: &str,
    timeout: Duration,
    stop: &mut watch::Receiver<bool>,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Result<Readiness, SpawnError> {
    let client = crate::tls::reqwest_tls(reqwest::Client::builder(), tls)
        .no_proxy()
        .build()
        .map_err(|e| SpawnError::Client(e.to_string()))?;
    let start = Instant::now();
    let mut last = "no answer yet".to_string();
    loop {
        if *stop.borrow() {
            return Ok(Readiness::Stopped);
        }
        if let Some(status) = group.exited() {
            return Err(SpawnError::Exited {
                command: group.command.clone(),
                url: url.to_string(),
                status,
            });
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(SpawnError::NotReady {
                command: group.command.clone(),
                url: url.to_string(),
                timeout_ms: timeout.as_millis(),
                last,
            });
        }
        let per_try = left.min(Duration::from_secs(1));
        match client.get(url).timeout(per_try).send().await {
            Ok(r) if r.status().is_success() => return Ok(Readiness::Ready),
            Ok(r) => last = format!("status {}", r.status()),
            Err(e) => last = error_chain(&e),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100).min(left)) => {}
            _ = stop.changed() => {}
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
