//! The Rust API's guard: a process that takes a lab down when the test process that
//! brought it up dies without doing so. Drop covers a failed assertion (a panic), but
//! not Ctrl-C of `cargo test` (SIGINT to every process of the terminal's foreground
//! group, the test binary among them, which has no handler), a `kill`, a timeout's
//! SIGKILL or `panic = "abort"`: the lab would stay up, and the next run's `up` of the
//! same name would be refused.
//!
//! `nslab __guard LAB` runs in a session of its own (no terminal signal reaches it) with
//! the read end of a pipe as its stdin; the write end stays in the test process only
//! (close-on-exec). One byte `d` says the lab was taken down: the guard exits. End of
//! file without it means the test process is gone: the guard becomes `nslab down LAB`,
//! which the lab's lock orders after any command the test had running.

use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// What the guard says once it waits, so a binary without one is noticed at `up`.
const ARMED: &str = "armed";

/// A running guard of one lab, held by the [`crate::RunningLab`].
#[derive(Debug)]
pub struct Guard {
    child: Child,
    done: Option<File>,
}

/// Starts `bin __guard LAB` and waits until it says it is armed.
pub fn start(bin: &Path, lab: &str) -> std::io::Result<Guard> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut cmd = Command::new(bin);
    cmd.args(["__guard", lab])
        .stdin(Stdio::from(read))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // A session of its own: setsid is a system call, fit for between fork and exec.
    crate::sys::child::before_exec(&mut cmd, |_| {
        nix::unistd::setsid().map(drop).map_err(Into::into)
    });
    let mut child = cmd.spawn()?;
    let mut said = String::new();
    let out = child.stdout.take().expect("piped");
    let _ = std::io::BufReader::new(out).read_line(&mut said);
    if said.trim() != ARMED {
        let _ = child.kill();
        let _ = child.wait();
        return Err(std::io::Error::other(format!(
            "{} cannot guard lab `{lab}` (an nslab binary older than this library?): install the nslab of the same version, or point NSLAB_BIN at it",
            bin.display()
        )));
    }
    Ok(Guard {
        child,
        done: Some(File::from(write)),
    })
}

impl Guard {
    /// The lab is down (or was never left to the guard): the guard exits without acting.
    pub fn release(mut self) {
        if let Some(mut w) = self.done.take() {
            let _ = w.write_all(b"d");
        }
        let _ = self.child.wait();
    }
}

/// The guard's side, `nslab __guard LAB`: waits on stdin, and on end of file runs
/// `nslab down LAB` in its place. Returns an exit code only when it does not exec.
pub fn main(lab: &str) -> i32 {
    println!("{ARMED}");
    let _ = std::io::stdout().flush();
    // The test's end of that pipe goes once it has read the line; nothing more is said.
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    let mut byte = [0u8; 1];
    let read = loop {
        match std::io::stdin().read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    if matches!(read, Ok(1)) && byte[0] == b'd' {
        return 0;
    }
    crate::errln!(
        "nslab: the test process that brought lab `{lab}` up ended without taking it down; taking it down"
    );
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            crate::errln!("nslab: cannot take lab `{lab}` down: {e}");
            return 1;
        }
    };
    let e = Command::new(exe)
        .args(["down", "--quiet", lab])
        .stdin(Stdio::null())
        .exec();
    crate::errln!("nslab: cannot take lab `{lab}` down: {e}");
    1
}
