//! `nslab graph --lab LAB --serve [ADDR]`: the page over HTTP on a loopback address,
//! read afresh on every request, so the page's poll of `state.json` sees the lab change.
//! A thread per connection, at most [`MAX_CONNECTIONS`] at once: any local user can
//! connect, and one that sends nothing (or a byte at a time) must hold up only its own
//! thread, for at most [`HEAD_TIME`], and no more than [`MAX_HEAD`] bytes of memory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::super::{CliError, exit};
use super::live;
use crate::draw::{html, svg};

/// How many connections are served at once; one more is closed unanswered.
const MAX_CONNECTIONS: usize = 8;

/// The longest request head (request line and headers) read; a longer one gets 431.
const MAX_HEAD: usize = 16 << 10;

/// How long a client has to send its whole request head.
const HEAD_TIME: Duration = Duration::from_secs(5);

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
    serve(host, lab, listener)?;
    Ok(exit::OK)
}

/// One of the [`MAX_CONNECTIONS`] places, given back when its connection's thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers the connections `listener` accepts, each on a thread of its own, until it
/// fails. Past [`MAX_CONNECTIONS`] at once, a connection is closed unanswered.
fn serve(
    host: &crate::state::HostContext,
    lab: &str,
    listener: TcpListener,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let busy = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        // Only this thread adds, so the count cannot pass the bound between the two.
        if busy.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue;
        }
        busy.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(busy.clone());
        let (host, lab) = (host.clone(), lab.to_string());
        let spawned = std::thread::Builder::new()
            .name("graph-serve".into())
            .spawn(move || {
                let _slot = slot;
                if let Err(e) = answer(&host, &lab, local, stream) {
                    crate::errln!("graph --serve: {e}");
                }
            });
        if let Err(e) = spawned {
            crate::errln!("graph --serve: {e}");
        }
    }
    Ok(())
}

/// The request head up to its blank line, read within [`HEAD_TIME`] in all; `None` when
/// it is longer than [`MAX_HEAD`] bytes.
fn read_head(mut stream: &TcpStream) -> std::io::Result<Option<String>> {
    let deadline = Instant::now() + HEAD_TIME;
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

/// Reads one request and answers it; the connection then closes.
fn answer(
    host: &crate::state::HostContext,
    lab: &str,
    local: SocketAddr,
    stream: TcpStream,
) -> std::io::Result<()> {
    stream.set_write_timeout(Some(HEAD_TIME))?;
    let head = read_head(&stream)?;
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
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(body.as_bytes())?;
    out.flush()
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
        answer(&host, "nolab", local, stream).unwrap();
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
        let host = no_lab_host();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(&host, "nolab", listener));
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
        let local = server();
        let held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
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
