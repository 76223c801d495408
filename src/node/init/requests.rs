//! The control socket's side of the init: reading one bounded request, answering it
//! from the table, and the `wait`s answered later from the loop.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use super::Init;
use super::process::{Proc, Readiness};
use crate::node::config::ProcessSpec;
use crate::node::control::{self, ProcStatus, Request, Status};

/// A client's `wait NAME`, answered once that process is settled (see [`Proc::settled`]).
pub(super) struct Waiter {
    stream: UnixStream,
    name: String,
}

/// One request line, read whole (without its newline), but never more than
/// [`control::MAX_REQUEST`] bytes nor for more than 2 s: the init serves one client at a
/// time, and a client must not hold it or grow its memory. `None` when the client sent
/// nothing or broke off.
fn read_request(mut stream: &UnixStream) -> Result<Option<String>, String> {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut line: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Ok(None);
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(None),
        };
        let got = &chunk[..n];
        let end = got.iter().position(|&b| b == b'\n');
        line.extend_from_slice(&got[..end.unwrap_or(n)]);
        if line.len() > control::MAX_REQUEST {
            return Err(format!(
                "the request is longer than {} bytes",
                control::MAX_REQUEST
            ));
        }
        if end.is_some() || n == 0 {
            break;
        }
    }
    if line.is_empty() {
        return Ok(None);
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| "the request is not UTF-8".into())
}

/// Whether the peer runs as this init's own user (root, or in a rootless lab the user
/// namespace's root, which is the user): the socket's file mode already keeps others
/// out, and a request can run any command in the node as root, so a connection that got
/// past the mode anyway (a widened umask, a copied descriptor) is refused too.
fn peer_is_ours(stream: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials).is_ok_and(|c| c.uid() == nix::unistd::geteuid().as_raw())
}

impl Init {
    /// Answers every client waiting on the control socket, one after the other.
    pub(super) fn serve(&mut self, listener: &UnixListener) {
        while let Ok((stream, _)) = listener.accept() {
            if !peer_is_ours(&stream) {
                // Closed unanswered.
                continue;
            }
            let _ = stream.set_nonblocking(false);
            self.handle(stream);
            self.busy_now();
        }
    }

    pub(super) fn status(&self) -> Status {
        Status {
            node: self.cfg.start.node.clone(),
            processes: self
                .procs
                .iter()
                .map(|p| ProcStatus {
                    name: p.spec.name.clone(),
                    pid: p.pid,
                    state: p.state.to_string(),
                    restarts: p.restarts,
                    exit: p.exit,
                    ready: p.is_ready(),
                    ready_timed_out: p.ready == Readiness::TimedOut,
                    failed_probes: p.failures,
                    error: p.error.clone(),
                    uptime_ms: p
                        .started
                        .filter(|_| p.pid.is_some())
                        .map(|s| s.elapsed().as_millis() as u64),
                })
                .collect(),
            halting: self.halting.is_some(),
            grace_ms: self.grace().as_millis() as u64,
        }
    }

    pub(super) fn handle(&mut self, stream: UnixStream) {
        let reply = match read_request(&stream).map(|l| l.map(|l| Request::parse(&l))) {
            Ok(Some(Ok(Request::Wait(name)))) => match self.index(&name) {
                Ok(_) => {
                    self.waiters.push(Waiter { stream, name });
                    return;
                }
                Err(e) => control::error_reply(&e),
            },
            Ok(Some(Ok(request))) => self.answer(request),
            Ok(None) => return,
            Ok(Some(Err(e))) | Err(e) => control::error_reply(&e),
        };
        let mut w = &stream;
        let _ = writeln!(w, "{reply}");
    }

    /// Answers every `wait` whose process has settled, is gone or being retired, or
    /// whose node is halting or stopping, with the status of now.
    pub(super) fn answer_waiters(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        let busy = self.halting.is_some() || self.stopping.is_some();
        let (done, keep): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| {
                busy || self
                    .procs
                    .iter()
                    .find(|p| p.spec.name == w.name)
                    .is_none_or(|p| p.retire.is_some() || p.settled())
            });
        self.waiters = keep;
        if done.is_empty() {
            return;
        }
        let reply = serde_json::to_string(&self.status())
            .unwrap_or_else(|e| control::error_reply(&e.to_string()));
        for w in done {
            // Never blocks the loop: a client that stopped reading loses its answer.
            let _ = w.stream.set_nonblocking(true);
            let _ = writeln!(&w.stream, "{reply}");
        }
    }

    /// The reply to one request (all but `wait`, which [`Init::handle`] keeps).
    pub(super) fn answer(&mut self, request: Request) -> String {
        let busy = self.halting.is_some() || self.stopping.is_some();
        let done = match request {
            Request::Start(_) if busy => Err("the node is stopping its processes".into()),
            Request::Start(name) => self.start_request(&name),
            Request::Status => Ok(()),
            Request::Halt => {
                self.halt();
                Ok(())
            }
            Request::Stop => {
                self.begin_stop();
                return "{\"ok\":true}".into();
            }
            Request::Add(_) | Request::Retire(_) if self.stopping.is_some() => {
                Err("the node is stopping".into())
            }
            Request::Add(spec) => self.add(*spec),
            Request::Retire(name) => self.retire(&name),
            Request::Wait(_) => Err("`wait` is answered by the loop".into()),
        };
        match done.and_then(|()| serde_json::to_string(&self.status()).map_err(|e| e.to_string())) {
            Ok(status) => status,
            Err(e) => control::error_reply(&e),
        }
    }

    pub(super) fn start_request(&mut self, name: &str) -> Result<(), String> {
        let i = self.index(name)?;
        let p = &self.procs[i];
        // Not asked for yet, or it died and nothing will restart it (a crash under
        // `restart: never`); a completed one-shot stays done.
        let dead = p.pid.is_none() && p.next_start.is_none() && !p.completed();
        if !p.requested || dead {
            self.procs[i].requested = true;
            self.start(i);
        }
        Ok(())
    }

    /// The table's entry for `name`; one being retired is no longer there to use.
    pub(super) fn index(&self, name: &str) -> Result<usize, String> {
        match self.procs.iter().position(|p| p.spec.name == name) {
            Some(i) if self.procs[i].retire.is_some() => {
                Err(format!("process `{name}` is being retired"))
            }
            Some(i) => Ok(i),
            None => Err(format!("no process `{name}`")),
        }
    }

    /// A new process joins the table, not started: `start NAME` starts it, with the usual
    /// readiness. The grace of the node (see [`Init::grace`]) follows.
    pub(super) fn add(&mut self, spec: ProcessSpec) -> Result<(), String> {
        if let Some(p) = self.procs.iter().find(|p| p.spec.name == spec.name) {
            return Err(if p.retire.is_some() {
                format!("process `{}` is still being retired", spec.name)
            } else {
                format!("process `{}` already exists", spec.name)
            });
        }
        self.procs.push(Proc::new(spec));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::read_request;
    use crate::node::control;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// What `read_request` makes of `data`, written (then closed) by another thread.
    fn read_what(data: Vec<u8>) -> Result<Option<String>, String> {
        let (mut client, server) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            // A refused request closes the socket before all of it is written.
            let _ = client.write_all(&data);
        });
        let got = read_request(&server);
        drop(server);
        writer.join().unwrap();
        got
    }

    #[test]
    fn requests_are_read_whole_one_line_and_bounded() {
        assert_eq!(
            read_what(b"status\nextra".to_vec()),
            Ok(Some("status".into()))
        );
        assert_eq!(read_what(b"halt".to_vec()), Ok(Some("halt".into())));
        assert_eq!(read_what(Vec::new()), Ok(None));
        let spec = format!("add {{\"name\":\"{}\"}}\n", "x".repeat(100_000));
        assert_eq!(
            read_what(spec.clone().into_bytes()),
            Ok(Some(spec.trim_end().into()))
        );
        let mut full = vec![b'a'; control::MAX_REQUEST];
        full.push(b'\n');
        let got = read_what(full).unwrap().unwrap();
        assert_eq!(got.len(), control::MAX_REQUEST);
        let huge = vec![b'a'; control::MAX_REQUEST + 10];
        let e = read_what(huge).unwrap_err();
        assert!(e.contains("longer than 1048576 bytes"), "{e}");
        assert!(
            read_what(vec![0xff, b'\n'])
                .unwrap_err()
                .contains("not UTF-8")
        );
    }
}
