//! The conversation between nslab and a node's init over its control socket: one request
//! line, one JSON line back (the node's [`Status`], `{"ok":true}` for `stop`, or
//! `{"error":"..."}`). The requests:
//!
//! - `status`: the node's processes.
//! - `start NAME`: starts a process of the init's table (again, after it died with no
//!   restart policy or after a `halt`).
//! - `wait NAME`: answered only once the process is settled: ready, failed, ended before
//!   it was ready, or out of its readiness time (also when it is retired or the node
//!   stops). nslab waits this way instead of polling `status`, so a process getting ready
//!   costs no requests, however many wait at once.
//! - `halt`: stops every process and keeps the node; `start` brings them back.
//! - `stop`: ends the init and with it the node.
//! - `add JSON`: a new process (a [`ProcessSpec`] as one line of JSON) joins the table,
//!   `waiting` until `start NAME`, so a running lab takes a new process without touching
//!   the others. A name already in the table (even one still retiring) is an error.
//! - `retire NAME`: stops one process (SIGTERM to its group, its `stop_timeout`, then
//!   SIGKILL to what is left of its group and of what it started) and, once all of it
//!   is gone, drops it from the table. Until then it shows as `retiring`.
//!
//! A request line holds at most [`MAX_REQUEST`] bytes: the init reads it whole, and a
//! longer one gets an error instead of growing its memory.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::ProcessSpec;

/// The longest request line the init reads (an `add` carries a whole process spec).
pub const MAX_REQUEST: usize = 1 << 20;

/// The longest process name, in bytes: its log file, `<name>.log`, fits NAME_MAX.
const MAX_NAME: usize = 255 - ".log".len();

/// A request, as the init understands it.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Status,
    Start(String),
    Halt,
    Stop,
    Add(Box<ProcessSpec>),
    Retire(String),
    Wait(String),
}

impl Request {
    /// Parses one request line (without its newline); the error is the reply's text.
    pub fn parse(line: &str) -> Result<Request, String> {
        let line = line.trim_end_matches(['\n', '\r']);
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let one_name = |what: &str| -> Result<String, String> {
            let name = rest.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("`{what}` takes one process name"));
            }
            Ok(name.to_string())
        };
        match word {
            "status" => Ok(Request::Status),
            "halt" => Ok(Request::Halt),
            "stop" => Ok(Request::Stop),
            "start" => one_name("start").map(Request::Start),
            "retire" => one_name("retire").map(Request::Retire),
            "wait" => one_name("wait").map(Request::Wait),
            "add" => {
                let spec: ProcessSpec = serde_json::from_str(rest)
                    .map_err(|e| format!("`add` takes a process as JSON: {e}"))?;
                check_name(&spec.name)?;
                if spec.argv.is_empty() {
                    return Err(format!("process `{}` has an empty command", spec.name));
                }
                Ok(Request::Add(Box::new(spec)))
            }
            _ => Err("unknown request".into()),
        }
    }

    /// The request as one line (without its newline), for the client side.
    pub fn line(&self) -> String {
        match self {
            Request::Status => "status".into(),
            Request::Halt => "halt".into(),
            Request::Stop => "stop".into(),
            Request::Start(n) => format!("start {n}"),
            Request::Retire(n) => format!("retire {n}"),
            Request::Wait(n) => format!("wait {n}"),
            Request::Add(spec) => {
                format!(
                    "add {}",
                    serde_json::to_string(spec).expect("a spec serializes")
                )
            }
        }
    }
}

/// A process name becomes a log file name in the node's log directory and one word of
/// this protocol: the rules the compiler applies, checked again for what comes over the
/// socket (and by `nslab logs` for its argument).
pub fn check_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.contains(['/', ':', '\0'])
        && !name.contains("..")
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if plain {
        Ok(())
    } else {
        Err(format!(
            "process name `{}` must be one plain word (no `/`, `:`, `..`, space or control character, at most {MAX_NAME} bytes)",
            name.escape_debug()
        ))
    }
}

/// The JSON error reply.
pub fn error_reply(msg: &str) -> String {
    serde_json::json!({ "error": msg }).to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub node: String,
    pub processes: Vec<ProcStatus>,
    /// A `halt` is under way: processes are being stopped.
    #[serde(default)]
    pub halting: bool,
    /// The longest `stop_timeout` in the table: how long a stop of the node may take.
    /// It follows `add` and `retire`; nslab copies it into the init's pid file for `down`.
    #[serde(default)]
    pub grace_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcStatus {
    pub name: String,
    /// As seen inside the node.
    pub pid: Option<i32>,
    /// waiting, running, backoff, exited, failed, stopped (by a halt), retiring.
    pub state: String,
    pub restarts: u32,
    pub exit: Option<i32>,
    pub ready: bool,
    pub ready_timed_out: bool,
    /// Failed probes that counted toward `attempts` since the readiness wait began.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_probes: u32,
    pub error: Option<String>,
    pub uptime_ms: Option<u64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Deserialize)]
struct ErrorReply {
    error: String,
}

/// Sends one request and reads the reply (blocking; for the CLI). The reply has 5 s and
/// [`MAX_REQUEST`] bytes in all, and the close after it [`CLOSE_WAIT`]: a per-read
/// timeout alone let a peer that sends a byte every few seconds (an init stuck in a
/// loop, or whatever took its socket) hold `status`, `ps` or `graph --serve` forever.
pub fn request(socket: &Path, line: &str) -> std::io::Result<String> {
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    writeln!(s, "{line}")?;
    let mut reply = Vec::new();
    let end = read_until_by(&s, &mut reply, REPLY_WAIT, true)?;
    if !end {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the node's init did not answer in time",
        ));
    }
    // The init closes its end right after the line: once this read sees the end, the
    // request has left no trace in the init (best effort: a late close is no error).
    let _ = read_until_by(&s, &mut Vec::new(), CLOSE_WAIT, false);
    String::from_utf8(reply).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// How long the reply to a blocking request may take, all of it.
const REPLY_WAIT: Duration = Duration::from_secs(5);

/// Reads from `s` into `buf` until a newline (`line`, kept) or the end of the stream,
/// for at most `wait` in all and [`MAX_REQUEST`] bytes; whether it got there.
fn read_until_by(
    mut s: &std::os::unix::net::UnixStream,
    buf: &mut Vec<u8>,
    wait: Duration,
    line: bool,
) -> std::io::Result<bool> {
    use std::io::Read;
    let deadline = std::time::Instant::now() + wait;
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || buf.len() > MAX_REQUEST {
            return Ok(false);
        }
        s.set_read_timeout(Some(left))?;
        let n = match s.read(&mut chunk) {
            // The end: a reply cut short is still the reply, as it always was.
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        match chunk[..n].iter().position(|&b| b == b'\n') {
            Some(i) if line => {
                buf.extend_from_slice(&chunk[..=i]);
                return Ok(true);
            }
            _ if line => buf.extend_from_slice(&chunk[..n]),
            _ => {}
        }
    }
}

/// How long a client waits, after its reply, for the init to close the connection.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Reads what is left of a reply's connection until the init closes it, for at most
/// [`CLOSE_WAIT`]: a caller that goes on (`up` returning, a test reading `/proc`) then
/// finds no connection of its own still open in the init.
async fn until_closed<R: tokio::io::AsyncRead + Unpin>(r: R) {
    use tokio::io::AsyncReadExt;
    let mut rest = r.take(MAX_REQUEST as u64);
    let _ = tokio::time::timeout(
        CLOSE_WAIT,
        tokio::io::copy(&mut rest, &mut tokio::io::sink()),
    )
    .await;
}

/// The same from async code.
pub async fn request_async(socket: &Path, line: &str) -> std::io::Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::UnixStream::connect(socket).await?;
    s.write_all(format!("{line}\n").as_bytes()).await?;
    let mut r = tokio::io::BufReader::new(s);
    let reply = tokio::time::timeout(Duration::from_secs(5), read_reply(&mut r))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the node's init did not answer",
            )
        })??;
    until_closed(r).await;
    Ok(reply)
}

/// Reads one reply line of at most [`MAX_REQUEST`] bytes. Whatever answers on the socket
/// is inside the node, and nslab on the host is root and outside its `limits:`: an
/// endless line (a node's root can put its own server at the socket's path) must not
/// grow nslab's memory until the 5 s are up, or for ever in `wait`.
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<String> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut reply = String::new();
    r.take(MAX_REQUEST as u64 + 1).read_line(&mut reply).await?;
    if reply.len() > MAX_REQUEST {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the node's init answered more than {MAX_REQUEST} bytes in one line"),
        ));
    }
    Ok(reply)
}

/// Sends `wait NAME` and reads the reply, however long it takes: the init answers by the
/// process's readiness deadline at the latest, and its end closes the connection.
pub async fn wait_async(socket: &Path, process: &str) -> std::io::Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::UnixStream::connect(socket).await?;
    s.write_all(format!("{}\n", Request::Wait(process.into()).line()).as_bytes())
        .await?;
    let mut r = tokio::io::BufReader::new(s);
    let reply = read_reply(&mut r).await?;
    if reply.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the node's init ended while a process was being waited for",
        ));
    }
    until_closed(r).await;
    Ok(reply)
}

/// Parses a status reply, or the init's error.
pub fn parse_status(reply: &str) -> Result<Status, String> {
    if let Ok(e) = serde_json::from_str::<ErrorReply>(reply) {
        return Err(e.error);
    }
    serde_json::from_str(reply).map_err(|e| format!("bad reply from the node's init: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kinds::RestartPolicy;

    fn spec(name: &str) -> ProcessSpec {
        ProcessSpec {
            name: name.into(),
            argv: vec!["sleep".into(), "1000".into()],
            env: vec![("A".into(), "b c".into())],
            cwd: None,
            restart: RestartPolicy::Always,
            ready: None,
            ready_limits: Default::default(),
            stop_timeout_ms: 300,
            user: None,
            attrs: Default::default(),
        }
    }

    #[test]
    fn requests_parse_and_print_back() {
        for r in [
            Request::Status,
            Request::Halt,
            Request::Stop,
            Request::Start("web-1".into()),
            Request::Retire("web-1".into()),
            Request::Wait("web-1".into()),
            Request::Add(Box::new(spec("web-1"))),
        ] {
            let line = r.line();
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(Request::parse(&format!("{line}\n")), Ok(r));
        }
    }

    #[test]
    fn bad_requests_are_errors_that_say_why() {
        let err = |l: &str| Request::parse(l).unwrap_err();
        assert_eq!(err("reboot"), "unknown request");
        assert_eq!(err(""), "unknown request");
        assert!(err("start").contains("one process name"));
        assert!(err("retire a b").contains("one process name"));
        assert!(err("wait").contains("one process name"));
        assert!(err("add {not json").contains("`add` takes a process as JSON"));
        assert!(err("add").contains("`add` takes a process as JSON"));
        // A name becomes a log file in the node's log directory: no way out of it.
        for name in ["../x", "a/b", "", "a b", "a:b", "tab\t"] {
            let line = Request::Add(Box::new(spec(name))).line();
            assert!(
                err(&line).contains("plain word"),
                "{name:?}: {}",
                err(&line)
            );
        }
        let long = "x".repeat(252);
        assert!(err(&Request::Add(Box::new(spec(&long))).line()).contains("plain word"));
        assert!(Request::parse(&Request::Add(Box::new(spec(&long[1..]))).line()).is_ok());
        let mut empty = spec("e");
        empty.argv.clear();
        assert!(err(&Request::Add(Box::new(empty)).line()).contains("empty command"));
    }

    /// A peer on the socket that answers a byte at a time, never ending its line.
    #[test]
    fn a_reply_that_trickles_without_end_is_given_up_on() {
        use std::io::{BufRead, BufReader};
        use std::os::unix::net::UnixListener;
        let dir = std::env::temp_dir().join(format!("nslab-trickle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let (slow, fine) = (dir.join("slow.sock"), dir.join("fine.sock"));
        let slow_l = UnixListener::bind(&slow).unwrap();
        let fine_l = UnixListener::bind(&fine).unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = slow_l.accept().unwrap();
            // Until the client hangs up.
            while c.write_all(b"x").is_ok() {
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        std::thread::spawn(move || {
            let (mut c, _) = fine_l.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&c).read_line(&mut line).unwrap();
            c.write_all(b"{\"ok\":true}\n").unwrap();
        });
        let slow_reply = request(&slow, "status");
        let fine_reply = request(&fine, "status");
        std::fs::remove_dir_all(&dir).unwrap();
        let e = slow_reply.expect_err("given up on");
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        assert_eq!(fine_reply.unwrap(), "{\"ok\":true}\n");
    }

    /// Whatever answers on the socket (a node's root can put its own server at the
    /// socket's path): a line longer than the bound is an error, not a reply held in
    /// memory, for `status` as for `wait`.
    #[test]
    fn an_endless_reply_is_refused_not_held_in_memory() {
        use std::os::unix::net::UnixListener;
        let dir = std::env::temp_dir().join(format!("nslab-endless-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let long = dir.join("long.sock");
        let l = UnixListener::bind(&long).unwrap();
        std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut c, _) = l.accept().unwrap();
                let _ = c.write_all(&vec![b'x'; 3 * MAX_REQUEST]);
                let _ = c.write_all(b"\n");
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (asked, waited) = rt.block_on(async {
            (
                request_async(&long, "status").await,
                wait_async(&long, "p").await,
            )
        });
        std::fs::remove_dir_all(&dir).unwrap();
        for e in [asked.unwrap_err(), waited.unwrap_err()] {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
            assert!(e.to_string().contains("more than"), "{e}");
        }
    }

    #[test]
    fn error_replies_are_json_even_with_quotes() {
        let reply = error_reply("no process `a\"b`");
        assert_eq!(parse_status(&reply).unwrap_err(), "no process `a\"b`");
    }
}
