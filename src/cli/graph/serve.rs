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
        if let Err(e) = answer(host, lab, stream) {
            crate::err!("graph --serve: {e}");
        }
    }
    Ok(exit::OK)
}

/// Reads one request and answers it; the connection then closes.
fn answer(host: &crate::state::HostContext, lab: &str, stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers, read and dropped (bounded, so a client cannot hold the loop forever).
    let mut line = String::new();
    for _ in 0..100 {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut words = request.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, kind, body) = if method != "GET" {
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
