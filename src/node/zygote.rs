//! The fork server (`nslab __zygote PAD`): one process per spawner thread of nslab,
//! exec'd once, that forks a node's init shim on request. An exec'd shim pays for the
//! exec, the C library's and Rust's start-up and faulting its code in, per node; a fork
//! of this small, single-threaded process starts where those are done, and runs the same
//! shim as `nslab __init -` ([`super::init::main`]).
//!
//! A request is one datagram on stdin (a `SOCK_SEQPACKET` socket): the node's title
//! (`lab/node`, for `ps`) with the three descriptors to be the shim's stdin, stdout and
//! stderr. The shim then speaks the protocol of an exec'd one on them. End of file on the
//! socket (nslab exited) ends the server.
//!
//! A forked shim must start as an exec'd one would: only descriptors 0-2, no blocked
//! signal, the environment the server got (empty), and `__init - lab/node` as its
//! command line, written over the server's padding argument.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Stdio;

use nix::fcntl::OFlag;

use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{ForkResult, fork, pipe2};

use super::init::close_from;

/// The padding argument: room for `__init - lab/node` in the command line.
pub const PAD: usize = 200;

/// Where the server's arguments after `argv[0]` lie in its memory: a forked shim writes
/// its own there. `None` when /proc cannot say.
fn argument_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may hold spaces: state is field 3, arg_start
    // and arg_end are 48 and 49.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split_whitespace().skip(45);
    let start: usize = f.next()?.parse().ok()?;
    let end: usize = f.next()?.parse().ok()?;
    let cmdline = std::fs::read("/proc/self/cmdline").ok()?;
    let first = cmdline.iter().position(|&b| b == 0)? + 1;
    (start + first < end).then_some((start + first, end))
}

/// Writes `__init`, `-` and `title` over the server's arguments, NUL-padded (the kernel
/// shows the whole area when its last byte is NUL): `ps` and the tests name an init so.
fn set_command_line(area: Option<(usize, usize)>, title: &[u8]) {
    let Some((start, end)) = area else { return };
    let len = end - start;
    let mut args = b"__init\0-\0".to_vec();
    args.extend_from_slice(title);
    args.truncate(len - 1);
    args.resize(len, 0);
    // SAFETY: the area is this process's own argument strings (from /proc/self/stat),
    // writable stack memory that nothing else here reads.
    unsafe { std::ptr::copy_nonoverlapping(args.as_ptr(), start as *mut u8, len) };
}

/// A request: the shim's title and its stdin, stdout and stderr.
type Request = (Vec<u8>, [RawFd; 3]);

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
        let got: Result<[RawFd; 3], _> = fds.as_slice().try_into();
        match got {
            Ok(three) => return Ok(Some((buf[..n].to_vec(), three))),
            // A malformed request: drop what came with it and wait for the next.
            Err(_) => fds.into_iter().for_each(|fd| {
                // SAFETY: descriptors just received, owned by nobody else.
                unsafe { libc::close(fd) };
            }),
        }
    }
}

/// The forked shim: its descriptors and signal mask as an exec'd one's, then the shim.
fn shim(area: Option<(usize, usize)>, title: &[u8], fds: [RawFd; 3]) -> ! {
    for (fd, to) in fds.into_iter().zip(0..) {
        // SAFETY: moving received descriptors (all above 2) onto 0-2; the originals are
        // closed below.
        if unsafe { libc::dup2(fd, to) } < 0 {
            std::process::exit(1);
        }
    }
    close_from(3, 0);
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    set_command_line(area, title);
    std::process::exit(super::init::main("-"))
}

/// Reaps shims that have exited (they are this server's children until then).
fn reap() {
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
}

/// `nslab __zygote PAD`: serves requests on stdin until nslab closes it.
pub fn main() -> i32 {
    // Only the request socket (stdin) and /dev/null on 1 and 2 should be open; anything
    // else the caller left must not reach a node.
    close_from(3, 0);
    let _ = std::env::set_current_dir("/");
    let area = argument_area();
    super::init::learn_droppable();
    // SAFETY: stdin stays open for the life of this process.
    let sock = unsafe { BorrowedFd::borrow_raw(0) };
    loop {
        reap();
        let (title, fds) = match receive(sock) {
            Ok(Some(r)) => r,
            Ok(None) => return 0,
            Err(_) => return 1,
        };
        // SAFETY: single-threaded, so the child may go on with ordinary code.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => shim(area, &title, fds),
            // A failed fork closes the descriptors: nslab reads end of file and says so.
            Ok(ForkResult::Parent { .. }) | Err(_) => {}
        }
        for fd in fds {
            // SAFETY: received descriptors, the child has its own copies.
            unsafe { libc::close(fd) };
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
    /// Ends the server and waits for it: its shims (the nodes' inits) live on, handed by
    /// the kernel to the nearest reaper.
    fn drop(&mut self) {
        // Shutting the socket down gives the server end of file even while a copy of our
        // end is open elsewhere.
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `bin __zygote` with the request socket as its stdin, nothing else open,
    /// and an empty environment (a shim's is the server's).
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

    /// Has the server fork a shim titled `title`; returns nslab's ends of its stdin,
    /// stdout and stderr.
    pub fn fork_shim(&self, title: &str) -> std::io::Result<[File; 3]> {
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
        // Ours close here: the shim's output ends when the shim and the init let go.
        drop((in_r, out_w, err_w));
        Ok([in_w.into(), out_r.into(), err_r.into()])
    }
}
