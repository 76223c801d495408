//! `nslab graph --lab LAB --serve [ADDR]`: the page over HTTP on a loopback address,
//! read afresh on every request, so the page's poll of `state.json` sees the lab change.
//! A thread per connection, at most [`LIMITS`]`.max` at once and `per_peer` per local
//! user: any local user can connect, and one that sends nothing (or a byte at a time),
//! or reads the answer slowly, must hold up only its own places, each for at most
//! `conn_time`, and no more than [`MAX_HEAD`] bytes of memory.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::{CliError, exit};
use super::live;
use crate::draw::{html, svg};

/// What a server allows each connection and each client.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Connections served at once; one more is closed unanswered.
    max: usize,
    /// Connections of one peer (a local user, by the uid owning its socket) at once:
    /// one user cannot take every place. A browser needs two (the page, its poll).
    per_peer: usize,
    /// How long a client has to send its whole request head (a byte a second never
    /// gets there).
    head_time: Duration,
    /// How long a connection lives in all, answer included (a client that reads the
    /// answer a byte at a time is cut off then).
    conn_time: Duration,
}

const LIMITS: Limits = Limits {
    max: 8,
    per_peer: 3,
    head_time: Duration::from_secs(5),
    conn_time: Duration::from_secs(10),
};

/// The longest request head (request line and headers) read; a longer one gets 431.
const MAX_HEAD: usize = 16 << 10;

/// Where `--serve` listens when given no address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7878";

/// Serves until the process is stopped. The first line on stdout is the URL (with the
/// port the kernel chose for `:0`).
pub fn run(host: &crate::state::HostContext, lab: &str, addr: &str) -> Result<u8, CliError> {
    let addr: SocketAddr = addr.parse().map_err(|_| {
        CliError::Usage(format!(
            "`{addr}` is not an address and port (for example {DEFAULT_ADDR})"
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(CliError::Usage(format!(
            "--serve listens on a loopback address only (127.0.0.1 or [::1]), not {}: the \
             page shows the lab's insides to anyone who can reach it",
            addr.ip()
        )));
    }
    // Fail before listening if the lab is not up.
    live::open(host, lab)?;
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    crate::outln!("serving lab `{lab}` on http://{local}/ (Ctrl-C stops)");
    serve(host, lab, listener, LIMITS)?;
    Ok(exit::OK)
}

/// Who a connection is from: the local user owning the client's socket, or (when the
/// kernel's table no longer has it) its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Peer {
    Uid(u32),
    Addr(IpAddr),
}

/// The places taken: in all, and by each peer.
#[derive(Default)]
struct Taken {
    all: usize,
    by: HashMap<Peer, usize>,
}

/// One place, given back when its connection's thread ends.
struct Slot(Arc<Mutex<Taken>>, Peer);

impl Slot {
    /// A place for `peer`, if one is free in all and for it.
    fn take(taken: &Arc<Mutex<Taken>>, peer: Peer, limits: Limits) -> Option<Slot> {
        let mut t = taken.lock().unwrap_or_else(|e| e.into_inner());
        let mine = t.by.get(&peer).copied().unwrap_or(0);
        if t.all >= limits.max || mine >= limits.per_peer {
            return None;
        }
        t.all += 1;
        t.by.insert(peer, mine + 1);
        Some(Slot(taken.clone(), peer))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        t.all -= 1;
        if let Some(n) = t.by.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                t.by.remove(&self.1);
            }
        }
    }
}

/// The peer of an accepted connection: on loopback every client has the same address,
/// so the uid owning its socket in the kernel's TCP table tells users apart.
fn peer_of(stream: &TcpStream, local: SocketAddr) -> Peer {
    let Ok(peer) = stream.peer_addr() else {
        return Peer::Addr(local.ip());
    };
    let file = if peer.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let table = std::fs::read_to_string(file).unwrap_or_default();
    socket_uid(&table, peer.port(), local.port()).map_or(Peer::Addr(peer.ip()), Peer::Uid)
}

/// In a `/proc/net/tcp` table, the uid of the socket from port `from` to port `to`.
fn socket_uid(table: &str, from: u16, to: u16) -> Option<u32> {
    let port = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, uid) = (f.get(1)?, f.get(2)?, f.get(7)?);
        (port(local)? == from && port(remote)? == to)
            .then(|| uid.parse().ok())
            .flatten()
    })
}

/// Answers the connections `listener` accepts, each on a thread of its own, until it
/// fails. Past `limits.max` at once, or `limits.per_peer` of its peer, a connection is
/// closed unanswered.
fn serve(
    host: &crate::state::HostContext,
    lab: &str,
    listener: TcpListener,
    limits: Limits,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let taken = Arc::new(Mutex::new(Taken::default()));
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let Some(slot) = Slot::take(&taken, peer_of(&stream, local), limits) else {
            continue;
        };
        let (host, lab) = (host.clone(), lab.to_string());
        let spawned = std::thread::Builder::new()
            .name("graph-serve".into())
            .spawn(move || {
                let _slot = slot;
                if let Err(e) = answer(&host, &lab, local, stream, limits) {
                    crate::errln!("graph --serve: {e}");
                }
            });
        if let Err(e) = spawned {
            crate::errln!("graph --serve: {e}");
        }
    }
    Ok(())
}

/// The request head up to its blank line, read by `deadline`; `None` when it is longer
/// than [`MAX_HEAD`] bytes.
fn read_head(mut stream: &TcpStream, deadline: Instant) -> std::io::Result<Option<String>> {
    let mut head: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = [&b"\r\n\r\n"[..], b"\n\n"]
            .iter()
            .filter_map(|sep| head.windows(sep.len()).position(|w| w == *sep))
            .min();
        if let Some(end) = end {
            head.truncate(end);
            break;
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r?,
        };
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// Reads one request and answers it, all within `limits.conn_time`; the connection then
/// closes.
fn answer(
    host: &crate::state::HostContext,
    lab: &str,
    local: SocketAddr,
    stream: TcpStream,
    limits: Limits,
) -> std::io::Result<()> {
    let start = Instant::now();
    let head = read_head(&stream, start + limits.head_time.min(limits.conn_time))?;
    let mut lines = head.as_deref().unwrap_or_default().lines();
    let request = lines.next().unwrap_or_default();
    // Only Host is kept of the headers.
    let host_header = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("host")
            .then(|| value.trim().to_string())
    });
    let mut words = request.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, kind, body) = if head.is_none() {
        (
            "431 Request Header Fields Too Large",
            "text/plain",
            format!("the request's head is longer than {MAX_HEAD} bytes\n"),
        )
    } else if !host_ok(host_header.as_deref(), local) {
        (
            "403 Forbidden",
            "text/plain",
            format!("the Host header must name this server ({local})\n"),
        )
    } else if method != "GET" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        )
    } else {
        page(host, lab, path)
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let deadline = start + limits.conn_time;
    write_by(&stream, head.as_bytes(), deadline)?;
    write_by(&stream, body.as_bytes(), deadline)
}

/// Writes all of `data` by `deadline`: a client that reads slowly is cut off then, not
/// kept as long as it takes each write in turn.
fn write_by(mut stream: &TcpStream, mut data: &[u8], deadline: Instant) -> std::io::Result<()> {
    while !data.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(data) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a request's Host names this server. Loopback is not enough: a page of any
/// site open in a browser on this machine can point its own name at 127.0.0.1 (DNS
/// rebinding) and read the lab's insides as same-origin; such a request carries that
/// site's name.
fn host_ok(header: Option<&str>, local: SocketAddr) -> bool {
    let Some(h) = header else { return false };
    let h = h.to_ascii_lowercase();
    let port = local.port();
    let mut names = vec![local.to_string(), format!("localhost:{port}")];
    if port == 80 {
        names.extend([local.ip().to_string(), "localhost".into()]);
        if local.is_ipv6() {
            names.push(format!("[{}]", local.ip()));
        }
    }
    names.contains(&h)
}

/// What a path answers: the page, its state, the bare SVG.
fn page(
    host: &crate::state::HostContext,
    lab: &str,
    path: &str,
) -> (&'static str, &'static str, String) {
    let kind = match path {
        "/" | "/index.html" => "text/html",
        "/state.json" => "application/json",
        "/graph.svg" => "image/svg+xml",
        _ => return ("404 Not Found", "text/plain", "not found\n".into()),
    };
    let state = live::open(host, lab).and_then(|r| live::read(&r).map(|l| (r, l)));
    let (running, state) = match state {
        Ok(s) => s,
        Err(e) => return ("503 Service Unavailable", "text/plain", format!("{e}\n")),
    };
    let t = &running.topology;
    let body = match path {
        "/state.json" => html::state_json(t, &state),
        "/graph.svg" => svg::render(&crate::draw::scene::build(t, Some(&state))),
        _ => html::render(
            t,
            Some(&state),
            &html::Options {
                refresh: Some("state.json".into()),
            },
        ),
    };
    ("200 OK", kind, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host whose run directory holds no lab (and is never made).
    fn no_lab_host() -> crate::state::HostContext {
        let dir = std::env::temp_dir().join(format!("nslab-serve-{}", std::process::id()));
        crate::state::HostContext {
            run_dir: dir.join("run"),
            netns_dir: dir.join("netns"),
            privileged: false,
            host: None,
        }
    }

    /// The status line of the answer to `request`, from a server with no lab up.
    fn status_of(request: &str) -> String {
        let host = no_lab_host();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let request = request.replace("PORT", &local.port().to_string());
        let client = std::thread::spawn(move || {
            let mut c = TcpStream::connect(local).unwrap();
            c.write_all(request.as_bytes()).unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            out
        });
        let (stream, _) = listener.accept().unwrap();
        answer(&host, "nolab", local, stream, LIMITS).unwrap();
        let out = client.join().unwrap();
        out.lines().next().unwrap_or("").to_string()
    }

    #[test]
    fn a_request_for_another_site_s_name_is_refused() {
        // DNS rebinding: the browser sends the attacker's name with the loopback port.
        let rebound = status_of("GET /state.json HTTP/1.1\r\nHost: evil.example:PORT\r\n\r\n");
        assert_eq!(rebound, "HTTP/1.1 403 Forbidden");
        let none = status_of("GET /state.json HTTP/1.0\r\n\r\n");
        assert_eq!(none, "HTTP/1.1 403 Forbidden");
        // Its own names go on to the lab (here none is up).
        for name in ["127.0.0.1:PORT", "localhost:PORT", "LocalHost:PORT"] {
            let ok = status_of(&format!("GET /state.json HTTP/1.1\r\nhost: {name}\r\n\r\n"));
            assert_eq!(ok, "HTTP/1.1 503 Service Unavailable", "{name}");
        }
    }

    /// A server on a free loopback port, serving from a thread for the test's life.
    fn server() -> SocketAddr {
        server_with(LIMITS)
    }

    fn server_with(limits: Limits) -> SocketAddr {
        let host = no_lab_host();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(&host, "nolab", listener, limits));
        local
    }

    /// The first line of the answer to a whole request on a new connection.
    fn ask(local: SocketAddr, request: &str) -> String {
        let mut c = TcpStream::connect(local).unwrap();
        let request = request.replace("PORT", &local.port().to_string());
        // The server may answer (and close) before it read all of a long request.
        let _ = c.write_all(request.as_bytes());
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out).into_owned();
        out.lines().next().unwrap_or("").to_string()
    }

    /// Whether the server still holds `c` open: nothing to read yet, no end of file.
    fn still_open(c: &TcpStream) -> bool {
        c.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let open =
            matches!((&*c).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        c.set_nonblocking(false).unwrap();
        open
    }

    #[test]
    fn a_client_that_sends_nothing_holds_up_no_other() {
        let local = server();
        // Connected, silent: the old server read from it for 5 s before anyone else.
        let silent = TcpStream::connect(local).unwrap();
        let status = ask(
            local,
            "GET /state.json HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n",
        );
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
        assert!(
            still_open(&silent),
            "the silent client was dropped before the other was answered"
        );
    }

    #[test]
    fn a_request_head_is_read_up_to_a_bound() {
        let local = server();
        // One header line of 1 MiB: the old server read it all into memory.
        let long = format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\nX: {}\r\n\r\n",
            "a".repeat(1 << 20)
        );
        assert_eq!(
            ask(local, &long),
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
        // A usual one is answered.
        let short = "GET /state.json HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n";
        assert_eq!(ask(local, short), "HTTP/1.1 503 Service Unavailable");
    }

    #[test]
    fn connections_past_the_bound_are_closed_at_once() {
        // Every place open to one user, to reach the bound in all.
        let local = server_with(Limits {
            per_peer: LIMITS.max,
            ..LIMITS
        });
        let held: Vec<TcpStream> = (0..LIMITS.max)
            .map(|_| TcpStream::connect(local).unwrap())
            .collect();
        // One more is closed unanswered while the others are served.
        let status = ask(
            local,
            "GET /state.json HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n",
        );
        assert_eq!(status, "");
        assert!(held.iter().all(still_open), "a held connection was dropped");
        drop(held);
    }

    /// Short times, so the tests see the server cut connections off.
    const QUICK: Limits = Limits {
        max: 8,
        per_peer: 2,
        head_time: Duration::from_millis(300),
        conn_time: Duration::from_millis(600),
    };

    /// Sends `request` a byte every 100 ms, as a slowloris client does, until the server
    /// closes; what it answered (empty when it closed unanswered) and how many bytes went.
    fn trickle(c: &mut TcpStream, request: &str) -> (String, usize) {
        let mut sent = 0;
        for b in request.as_bytes() {
            if c.write_all(&[*b]).is_err() || !still_open(c) {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        // A generous bound on the server's own deadline, not a timing of it.
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        (String::from_utf8_lossy(&out).into_owned(), sent)
    }

    #[test]
    fn a_client_sending_a_byte_at_a_time_is_cut_off_and_its_place_freed() {
        let local = server_with(QUICK);
        let request = format!(
            "GET /state.json HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Pad: {}\r\n\r\n",
            local.port(),
            "a".repeat(60)
        );
        // Both places of this user, held by two slow clients.
        let mut slow: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(local).unwrap()).collect();
        // A third of the same user is closed unanswered while they hold them.
        let status = ask(
            local,
            "GET /state.json HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n",
        );
        assert_eq!(status, "", "a third connection of one user was served");
        for c in &mut slow {
            let (answered, sent) = trickle(c, &request);
            assert_eq!(answered, "", "the slow client got an answer");
            assert!(
                sent < request.len(),
                "the slow client sent its whole request ({sent} bytes) before it was cut off"
            );
        }
        // Their places are free again.
        let status = ask(
            local,
            "GET /state.json HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n",
        );
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    }

    #[test]
    fn a_client_that_reads_its_answer_slowly_is_cut_off() {
        let local = server_with(QUICK);
        // A 404 is small; what matters is the server's write deadline. A client that
        // never reads leaves the answer in the socket's buffer, so the server finishes at
        // once and the place is free: the bound is the connection's whole life.
        let mut c = TcpStream::connect(local).unwrap();
        c.write_all(
            format!(
                "GET /nothing HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
                local.port()
            )
            .as_bytes(),
        )
        .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 404 Not Found"), "{out}");
        // An answer larger than the socket buffers, never read: the deadline ends it.
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(a.local_addr().unwrap()).unwrap();
        let (server_end, _) = a.accept().unwrap();
        let big = vec![b'x'; 64 << 20];
        let e = write_by(
            &server_end,
            &big,
            Instant::now() + Duration::from_millis(300),
        )
        .expect_err("64 MiB never read cannot be written");
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            "{e}"
        );
        drop(client);
    }

    #[test]
    fn one_user_cannot_take_the_places_of_another() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root to make a socket of another user");
            return;
        }
        let local = server_with(QUICK);
        let held: Vec<TcpStream> = (0..QUICK.per_peer)
            .map(|_| TcpStream::connect(local).unwrap())
            .collect();
        let request = format!(
            "GET /state.json HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            local.port()
        );
        assert_eq!(ask(local, &request), "", "this user's places are all taken");
        // Another user: a socket made while this thread's file-system uid is nobody's
        // belongs to nobody (setfsuid is per thread; the rest of the process is root).
        let other = std::thread::spawn(move || {
            let before = nix::unistd::setfsuid(nix::unistd::Uid::from_raw(65534));
            let c = TcpStream::connect(local);
            nix::unistd::setfsuid(before);
            c.unwrap()
        })
        .join()
        .unwrap();
        let mut other = other;
        other.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        other.read_to_string(&mut out).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 503 Service Unavailable"),
            "{out:?}"
        );
        assert!(held.iter().all(still_open), "a held connection was dropped");
    }

    #[test]
    fn the_socket_table_gives_the_uid_of_the_client_s_end() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1EC6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n   1: 0100007F:1EC6 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 2\n   2: 0100007F:A000 0100007F:1EC6 01 00000000:00000000 00:00000000 00000000  1000        0 3\n";
        assert_eq!(socket_uid(table, 0xA000, 0x1EC6), Some(1000));
        assert_eq!(socket_uid(table, 0xA001, 0x1EC6), None);
    }

    #[test]
    fn the_server_s_own_names_are_its_address_and_localhost() {
        let v4: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        assert!(host_ok(Some("127.0.0.1:7878"), v4));
        assert!(host_ok(Some("localhost:7878"), v4));
        assert!(!host_ok(Some("127.0.0.1:7879"), v4));
        assert!(!host_ok(Some("attacker.example:7878"), v4));
        assert!(!host_ok(None, v4));
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert!(host_ok(Some("[::1]:80"), v6));
        assert!(host_ok(Some("[::1]"), v6));
        assert!(host_ok(Some("localhost"), v6));
    }
}
