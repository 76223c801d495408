//! The conversation between nslab and a node's init over its control socket: one request
//! line (`start NAME`, `status`, `halt`, `stop`), one JSON line back. `halt` stops the
//! node's processes and keeps the node; `stop` ends the init and with it the node.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub node: String,
    pub processes: Vec<ProcStatus>,
    /// A `halt` is under way: processes are being stopped.
    #[serde(default)]
    pub halting: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcStatus {
    pub name: String,
    /// As seen inside the node.
    pub pid: Option<i32>,
    /// waiting, running, backoff, exited, failed, stopped (by a halt).
    pub state: String,
    pub restarts: u32,
    pub exit: Option<i32>,
    pub ready: bool,
    pub ready_timed_out: bool,
    pub error: Option<String>,
    pub uptime_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ErrorReply {
    error: String,
}

/// Sends one request and reads the reply (blocking; for the CLI).
pub fn request(socket: &Path, line: &str) -> std::io::Result<String> {
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    writeln!(s, "{line}")?;
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply)?;
    Ok(reply)
}

/// The same from async code.
pub async fn request_async(socket: &Path, line: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(socket).await?;
    s.write_all(format!("{line}\n").as_bytes()).await?;
    let mut reply = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::BufReader::new(s).read_line(&mut reply),
    )
    .await
    .map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the node's init did not answer",
        )
    })??;
    Ok(reply)
}

/// Parses a status reply, or the init's error.
pub fn parse_status(reply: &str) -> Result<Status, String> {
    if let Ok(e) = serde_json::from_str::<ErrorReply>(reply) {
        return Err(e.error);
    }
    serde_json::from_str(reply).map_err(|e| format!("bad reply from the node's init: {e}"))
}
