//! The fork server (`nslab __zygote PAD`): one process per spawner thread of nslab,
//! exec'd once, that makes nodes' inits on request. An exec'd shim (`nslab __init -`,
//! [`super::launch::shim`]) pays for the exec, the C library's and Rust's start-up and
//! faulting its code in, per node; the server does a shim's work itself (reads the
//! configuration, joins the node's namespaces, makes the init in its new ones, records
//! it: [`super::launch`]), in a process where those are done and its pages mapped, so a
//! node costs one process, the init, instead of a shim and an init.
//!
//! A request is one datagram on stdin (a `SOCK_SEQPACKET` socket): the node's title
//! (`lab/node`, for `ps`) with the three descriptors to be a shim's stdin, stdout and
//! stderr. The server and the init then speak a shim's protocol on them. End of file on
//! the socket (nslab exited) ends the server.
//!
//! An init made here must start as one made by an exec'd shim would: only descriptors
//! 0-2, no blocked signal, the environment the server got (empty), and `__init -
//! lab/node` as its command line, written over the server's padding argument.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Stdio;

use nix::fcntl::OFlag;

use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::pipe2;

use super::config::NodeConfig;
use super::launch::{config_from, join, launch};
use crate::sys::child::SingleThreaded;
use crate::sys::cmdline::ArgArea;
use crate::sys::fd::close_from;

/// The padding argument: room for `__init - lab/node` in the command line.
pub const PAD: usize = 200;

/// Writes `__init`, `-` and `title` over the server's arguments: `ps` and the tests
/// name an init so.
fn set_command_line(area: Option<ArgArea>, title: &[u8]) {
    let Some(area) = area else { return };
    let mut args = b"__init\0-\0".to_vec();
    args.extend_from_slice(title);
    area.write(&args);
}

/// A request: the shim's title and its stdin, stdout and stderr.
type Request = (Vec<u8>, [OwnedFd; 3]);

/// One request, or `None` at end of file.
fn receive(sock: BorrowedFd) -> Result<Option<Request>, nix::Error> {
    let mut buf = [0u8; 512];
    let mut space = nix::cmsg_space!([RawFd; 3]);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::Error::EINTR) => continue,
            r => r?,
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(r) = c {
                fds.extend(r);
            }
        }
        let n = msg.bytes;
        if n == 0 && fds.is_empty() {
            return Ok(None);
        }
        // Owned from here: each closes when dropped.
        let fds = crate::sys::fd::received(&fds);
        if let Ok(three) = <[OwnedFd; 3]>::try_from(fds) {
            return Ok(Some((buf[..n].to_vec(), three)));
        }
        // A malformed request: what came with it is closed; wait for the next.
    }
}

/// The forked init, once recorded: its descriptors and signal mask as an exec'd one's,
/// then the init proper.
fn init(area: Option<ArgArea>, title: &[u8], fds: [BorrowedFd; 3], cfg: NodeConfig) -> ! {
    use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout};
    let [stdin, stdout, stderr] = fds;
    let moved = [dup2_stdin(stdin), dup2_stdout(stdout), dup2_stderr(stderr)];
    for (r, (fd, to)) in moved.into_iter().zip(fds.iter().zip(0..)) {
        if let Err(e) = r {
            let e = std::io::Error::from(e);
            let line = format!("init: dup2({}, {to}): {e}", fd.as_raw_fd());
            super::launch::say(stderr.as_raw_fd(), &line);
            std::process::exit(5);
        }
    }
    // The originals (all above 2) go: the server's copies are the parent's.
    close_from(3, false);
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    set_command_line(area, title);
    super::init::run(cfg)
}

/// An init made here that may not have said `ready` yet. The server keeps a copy of its
/// stdout, so that an init that dies first is reported there (with its exit status, which
/// only its parent can learn) instead of as a bare end of file; the copy goes once nslab
/// closes its end (the pipe polls POLLERR then). Its pidfd polls readable when it exits.
struct Pending {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    stdout: OwnedFd,
}

/// One request: the node's configuration read from its stdin, the node's namespaces
/// joined, and its init made, recorded and let go. What goes wrong goes to its stdout.
/// The server stays in the node's network namespace (the next node's replaces it), but
/// must go back to its own mount namespace: the lab's template has no named network
/// namespaces to open. Returns the init to watch (if one was made) and whether the server
/// got home.
fn serve(
    one: &SingleThreaded,
    home: &File,
    area: Option<ArgArea>,
    title: &[u8],
    fds: [OwnedFd; 3],
) -> (Option<Pending>, bool) {
    let pending = request(one, area, title, fds);
    let home_again = nix::sched::setns(home, nix::sched::CloneFlags::CLONE_NEWNS).is_ok();
    (pending, home_again)
}

/// The received descriptors are closed when this returns: the init has its own copies.
fn request(
    one: &SingleThreaded,
    area: Option<ArgArea>,
    title: &[u8],
    fds: [OwnedFd; 3],
) -> Option<Pending> {
    let [stdin, stdout, stderr] = fds.map(File::from);
    let mut out: &File = &stdout;
    let cfg = match config_from(&stdin).and_then(|cfg| join(&cfg).map(|()| cfg)) {
        Ok(cfg) => cfg,
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            return None;
        }
    };
    let views = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    let pid = launch(one, cfg, &mut out, stderr.as_raw_fd(), |cfg| {
        init(area, title, views, cfg)
    })?;
    // Without a pidfd nothing would wake the server when the init dies: nslab then sees
    // end of file instead of a status.
    let pidfd = crate::sys::pidfd::open(pid).ok()?;
    let stdout = stdout.try_clone().ok()?.into();
    Some(Pending { pid, pidfd, stdout })
}

/// Why an init ended, for nslab.
fn ending(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, core) => {
            format!(
                "was killed by {sig}{}",
                if core { " (core dumped)" } else { "" }
            )
        }
        other => format!("ended ({other:?})"),
    }
}

/// Reaps inits that have exited (they are this server's children while it runs), and
/// tells nslab about each that had not said `ready`.
fn reap(pending: &mut Vec<Pending>) {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        let Some(pid) = status.pid() else { break };
        if let Some(i) = pending.iter().position(|p| p.pid == pid.as_raw()) {
            let p = pending.swap_remove(i);
            let mut out = File::from(p.stdout);
            let _ = writeln!(
                out,
                "error: the node's init (pid {}) {} before it was ready",
                p.pid,
                ending(status)
            );
        }
    }
}

/// Waits until a request comes or a watched init exits or is ready (nslab closed its end
/// of the init's stdout, which is then dropped here). Returns whether a request came.
fn wait(sock: BorrowedFd, pending: &mut Vec<Pending>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds: Vec<PollFd> = std::iter::once(PollFd::new(sock, PollFlags::POLLIN))
        .chain(pending.iter().flat_map(|p| {
            [
                PollFd::new(p.pidfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(p.stdout.as_fd(), PollFlags::empty()),
            ]
        }))
        .collect();
    if !poll(&mut fds, PollTimeout::NONE).is_ok_and(|n| n > 0) {
        return false;
    }
    let came = |f: &PollFd, flag| f.revents().is_some_and(|r| r.intersects(flag));
    // An init whose stdout lost its reader has said `ready` (or nslab gave up on it).
    let gone: Vec<bool> = fds[1..]
        .chunks(2)
        .map(|f| came(&f[1], PollFlags::POLLERR))
        .collect();
    let request = fds[0].revents().is_some_and(|r| !r.is_empty());
    drop(fds);
    let mut gone = gone.into_iter();
    pending.retain(|_| !gone.next().unwrap_or(false));
    request
}

/// `nslab __zygote PAD`: serves requests on stdin until nslab closes it.
pub fn main() -> i32 {
    // Only the request socket (stdin) and /dev/null on 1 and 2 should be open; anything
    // else the caller left must not reach a node.
    close_from(3, false);
    let _ = std::env::set_current_dir("/");
    // A fresh exec with no thread started: every fork here is a single-threaded one.
    let Some(one) = SingleThreaded::check() else {
        return 1;
    };
    let area = ArgArea::find();
    super::init::learn_droppable();
    // Its own mount namespace, to go back to after each node's.
    let Ok(home) = File::open("/proc/self/ns/mnt") else {
        return 1;
    };
    // The request socket.
    let stdin = std::io::stdin();
    let sock = stdin.as_fd();
    let mut pending = Vec::new();
    loop {
        let request = wait(sock, &mut pending);
        reap(&mut pending);
        if !request {
            continue;
        }
        let (title, fds) = match receive(sock) {
            Ok(Some(r)) => r,
            Ok(None) => return 0,
            Err(_) => return 1,
        };
        let (made, home_again) = serve(&one, &home, area, &title, fds);
        pending.extend(made);
        if !home_again {
            // nslab starts a new server for the next node.
            return 1;
        }
    }
}

/// nslab's side: a running server and the socket to it. Dropping it closes the socket,
/// and the server exits.
pub struct Server {
    sock: OwnedFd,
    child: std::process::Child,
}

impl Drop for Server {
    /// Ends the server and waits for it: its children (the nodes' inits) live on, handed
    /// by the kernel to the nearest reaper.
    fn drop(&mut self) {
        // Shutting the socket down gives the server end of file even while a copy of our
        // end is open elsewhere.
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `bin __zygote` with the request socket as its stdin, nothing else open,
    /// and an empty environment (an init's is the server's).
    pub fn start(bin: &Path) -> std::io::Result<Server> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let child = std::process::Command::new(bin)
            .arg("__zygote")
            .arg("x".repeat(PAD))
            .env_clear()
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Server { sock: ours, child })
    }

    /// Has the server make an init titled `title`; returns nslab's ends of the stdin,
    /// stdout and stderr a shim would have.
    pub fn make_init(&self, title: &str) -> std::io::Result<[File; 3]> {
        let flags = OFlag::O_CLOEXEC;
        let (in_r, in_w) = pipe2(flags)?;
        let (out_r, out_w) = pipe2(flags)?;
        let (err_r, err_w) = pipe2(flags)?;
        let theirs = [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
        sendmsg::<()>(
            self.sock.as_raw_fd(),
            &[IoSlice::new(title.as_bytes())],
            &[ControlMessage::ScmRights(&theirs)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        // Ours close here: the output ends when the server and the init let go.
        drop((in_r, out_w, err_w));
        Ok([in_w.into(), out_r.into(), err_r.into()])
    }
}
