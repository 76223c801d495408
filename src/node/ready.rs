//! Readiness probes the init runs itself, without forking: a TCP or unix-socket connect,
//! or a path that exists. A forked probe (`vtysh -c ...`) costs more than many daemons
//! take to start; these cost a system call or two. Each answers at once and never
//! blocks the init's loop.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// The first wait between polls; it doubles up to the probe's `interval`.
const FIRST_DELAY: Duration = Duration::from_millis(5);

/// The wait after poll number `polls` (from 0): short at first, as most daemons are up
/// within tens of milliseconds and a process waited for holds up what depends on it,
/// then the probe's `interval`, so a slow daemon is not polled more often than asked.
pub fn delay(interval: Duration, polls: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(1u32 << polls.min(16))
        .min(interval)
}

/// Something listens on `port` of the node's loopback, IPv4 or IPv6.
pub fn tcp(port: u16) -> bool {
    ["127.0.0.1", "::1"].iter().any(|h| {
        let addr = SocketAddr::new(h.parse().expect("literal"), port);
        TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok()
    })
}

/// A listener accepts connections on the unix socket at `path`.
///
/// The connect is non-blocking: a daemon that listens but does not accept yet (still
/// reading its config) fills its backlog with our probes, and a blocking connect would
/// then stall the init. A full backlog reads as not ready.
pub fn unix(path: &str) -> bool {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    use std::os::fd::AsRawFd;
    // Too long for a socket address (or holding a NUL): nothing can listen there.
    let Ok(addr) = UnixAddr::new(path) else {
        return false;
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let Ok(sock) = socket(AddressFamily::Unix, SockType::Stream, flags, None) else {
        return false;
    };
    connect(sock.as_raw_fd(), &addr).is_ok()
}

/// `path` exists (through symlinks: a pid file or a socket a daemon links to).
pub fn file(path: &str) -> bool {
    Path::new(path).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn polls_start_fast_and_slow_down_to_the_interval() {
        let i = Duration::from_millis(100);
        let d: Vec<u128> = (0..7).map(|n| delay(i, n).as_millis()).collect();
        assert_eq!(d, [5, 10, 20, 40, 80, 100, 100]);
        assert_eq!(delay(i, u32::MAX), i);
        assert_eq!(delay(Duration::from_millis(2), 0), Duration::from_millis(2));
    }

    #[test]
    fn a_listening_socket_is_ready_and_a_missing_or_plain_file_is_not() {
        let dir = std::env::temp_dir().join(format!("nslab-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("d.vty");
        let sock = sock.to_str().unwrap();
        assert!(!unix(sock));
        assert!(!file(sock));
        let listener = UnixListener::bind(sock).unwrap();
        assert!(unix(sock));
        assert!(file(sock));
        drop(listener);
        // The socket file stays behind its listener: it exists, but nothing accepts.
        assert!(file(sock));
        assert!(!unix(sock));
        let plain = dir.join("plain");
        std::fs::write(&plain, "").unwrap();
        assert!(!unix(plain.to_str().unwrap()));
        assert!(!unix(&format!("/{}", "x".repeat(200))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_backlog_is_not_ready_and_does_not_block() {
        let dir = std::env::temp_dir().join(format!("nslab-backlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("busy.vty");
        let _listener = UnixListener::bind(&sock).unwrap();
        // Never accepted: the backlog (at most net.core.somaxconn) fills, and then a
        // probe answers "not ready" at once instead of blocking.
        let start = std::time::Instant::now();
        let path = sock.to_str().unwrap();
        assert!(unix(path));
        let full = (0..100_000).position(|_| !unix(path));
        assert!(full.is_some(), "the backlog never filled");
        assert!(start.elapsed() < Duration::from_secs(5));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
