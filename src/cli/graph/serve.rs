//! `nslab graph --lab LAB --serve [ADDR]`: the page over HTTP on a loopback address,
//! read afresh on every request, so the page's poll of `state.json` sees the lab change.
//! One connection at a time on std's listener: a page and its poll every two seconds need
//! no more, and there is nothing to configure or secure beyond staying on loopback.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use super::super::{CliError, exit};
use super::live;
use crate::draw::{html, svg};

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
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        if let Err(e) = answer(host, lab, local, stream) {
            crate::err!("graph --serve: {e}");
        }
    }
    Ok(exit::OK)
}

/// Reads one request and answers it; the connection then closes.
fn answer(
    host: &crate::state::HostContext,
    lab: &str,
    local: SocketAddr,
    stream: TcpStream,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers, read (bounded, so a client cannot hold the loop forever); only Host
    // is kept.
    let mut line = String::new();
    let mut host_header = None;
    for _ in 0..100 {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("host")
        {
            host_header = Some(value.trim().to_string());
        }
    }
    let mut words = request.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, kind, body) = if !host_ok(host_header.as_deref(), local) {
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
    use std::io::Read;

    /// The status line of the answer to `request`, from a server with no lab up.
    fn status_of(request: &str) -> String {
        let dir = std::env::temp_dir().join(format!("nslab-serve-{}", std::process::id()));
        let host = crate::state::HostContext {
            run_dir: dir.join("run"),
            netns_dir: dir.join("netns"),
            privileged: false,
            host: None,
        };
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
