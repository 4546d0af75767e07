//! This machine's side of a new connection: the local address it leaves from
//! (`--source-addr`), what a failed connect says about the generator itself (no local port
//! left, no file descriptor left) rather than about the target, and the two limits behind
//! those failures: the descriptor limit, raised to its hard limit at start as most load
//! generators do, and the ephemeral port range.
//!
//! Ports: a TCP connection is named by its 4-tuple, and the side that closes first keeps it
//! in TIME_WAIT for 60 s. A generator that closes first spends one of its ~28,000 ephemeral
//! ports (Linux default) per new connection for a minute, so it runs out at ~470 new
//! connections/s against one target address; [`super::http1`] therefore lets the server
//! close first. Each source address has its own port range, hence `--source-addr`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpSocket, TcpStream};

use crate::samples::FailureKind;

/// The local addresses new connections leave from, taken in turn; empty lets the kernel
/// choose (the usual case).
#[derive(Debug, Default)]
pub struct Sources {
    addrs: Vec<IpAddr>,
    next: AtomicUsize,
}

impl Sources {
    pub fn new(addrs: Vec<IpAddr>) -> Sources {
        Sources {
            addrs,
            next: AtomicUsize::new(0),
        }
    }

    /// A TCP connection to `target`, from the next source address in turn.
    pub async fn connect(&self, target: SocketAddr) -> io::Result<TcpStream> {
        if self.addrs.is_empty() {
            return TcpStream::connect(target).await;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        bound_socket(self.addrs[i])?.connect(target).await
    }
}

/// A socket bound to `ip` whose port is chosen at connect time, not at bind time: a port
/// bound before connecting cannot be shared between destinations, which would shrink the
/// port range to one connection per port (Linux `IP_BIND_ADDRESS_NO_PORT`).
fn bound_socket(ip: IpAddr) -> io::Result<TcpSocket> {
    let socket = match ip {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor, an option of type int, and its size.
        // Best effort: without it, binding still works with a smaller port range.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    socket.bind(SocketAddr::new(ip, 0))?;
    Ok(socket)
}

/// Checks, before the run, that every source address can be used to reach `target`: same
/// address family, and an address of this machine. The error names the address.
pub fn check_sources(addrs: &[IpAddr], target: SocketAddr) -> Result<(), String> {
    for ip in addrs {
        if ip.is_ipv4() != target.is_ipv4() {
            return Err(format!(
                "--source-addr {ip}: the target {target} is {}, the source address is not",
                if target.is_ipv4() { "IPv4" } else { "IPv6" }
            ));
        }
        bound_socket(*ip).map_err(|e| {
            format!(
                "--source-addr {ip}: cannot bind to it ({e}); is it an address of this machine?"
            )
        })?;
    }
    Ok(())
}

/// What a failed connect (or socket) call says: the generator ran out of ports or of
/// descriptors, or the connection itself failed.
pub fn classify_io(e: &io::Error) -> FailureKind {
    match e.raw_os_error() {
        Some(libc::EADDRNOTAVAIL | libc::EADDRINUSE) => FailureKind::Ports,
        Some(libc::EMFILE | libc::ENFILE) => FailureKind::Descriptors,
        _ => FailureKind::Connect,
    }
}

/// The ephemeral port range (inclusive), from `/proc/sys/net/ipv4/ip_local_port_range`.
pub fn ephemeral_ports() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(str::parse::<u32>);
    match (it.next()?.ok()?, it.next()?.ok()?) {
        (lo, hi) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}

/// The descriptor limit before and after [`raise_fd_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub before: u64,
    pub now: u64,
}

/// Raises this process's soft descriptor limit to its hard limit (capped at the kernel's
/// `nr_open`), as most load generators do. `None` where limits cannot be read.
pub fn raise_fd_limit() -> Option<FdLimit> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid out-pointer to an rlimit.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return None;
        }
        let before = lim.rlim_cur;
        let mut target = lim.rlim_max;
        if target == libc::RLIM_INFINITY {
            target = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(1 << 20);
        }
        if target > before {
            lim.rlim_cur = target;
            // SAFETY: a valid pointer to an rlimit whose soft limit is within the hard one.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
                lim.rlim_cur = before;
            }
        }
        // rlim_t is u64 here, narrower on some platforms.
        #[allow(clippy::unnecessary_cast)]
        Some(FdLimit {
            before: before as u64,
            now: lim.rlim_cur as u64,
        })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_that_are_the_generators_own_have_their_own_class() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(classify_io(&os(libc::EADDRNOTAVAIL)).class(), "ports");
        assert_eq!(classify_io(&os(libc::EMFILE)).class(), "descriptors");
        assert_eq!(classify_io(&os(libc::ENFILE)).class(), "descriptors");
        assert_eq!(classify_io(&os(libc::ECONNREFUSED)).class(), "connect");
        assert!(FailureKind::Ports.detail().contains("ip_local_port_range"));
        assert!(FailureKind::Descriptors.detail().contains("ulimit -n"));
    }

    #[test]
    fn a_source_address_of_another_family_or_machine_is_refused_by_name() {
        let target: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert!(check_sources(&[v6], target).unwrap_err().contains("::1"));
        // TEST-NET-1: never an address of this machine.
        let foreign: IpAddr = "192.0.2.1".parse().unwrap();
        let e = check_sources(&[foreign], target).unwrap_err();
        assert!(e.contains("192.0.2.1") && e.contains("cannot bind"), "{e}");
        assert!(check_sources(&["127.0.0.2".parse().unwrap()], target).is_ok());
    }

    #[test]
    fn the_descriptor_limit_is_raised_to_the_hard_limit() {
        let l = raise_fd_limit().expect("rlimits on unix");
        assert!(l.now >= l.before);
        // A second call finds it raised already.
        assert_eq!(raise_fd_limit().unwrap().before, l.now);
    }
}
