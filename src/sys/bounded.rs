//! A command's output, read with a bound on what is kept. Commands nslab runs in a node
//! (`exec:` commands, `cmd` checks) print what they like, and so do the daemons they
//! ask (`curl`, `vtysh`): a `user: nobody` web server answering a check's `curl` with
//! an endless body made nslab, root and outside the node's `limits:`, hold all of it in
//! memory. Both streams are still read to their end, so the command never blocks on a
//! full pipe: what passes the bound is read and dropped.

use std::io;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncRead, AsyncReadExt};

/// What a command printed (at most the bounds asked for) and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Whether stdout printed more than was kept.
    pub stdout_cut: bool,
}

/// Runs `cmd` with stdout and stderr piped to nslab, keeps at most `max_out` and
/// `max_err` bytes of them, and waits for it as `Command::output` does (both streams at
/// their end, then its exit).
pub async fn output(
    mut cmd: tokio::process::Command,
    max_out: usize,
    max_err: usize,
) -> io::Result<Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let out = child.stdout.take().expect("stdout is piped");
    let err = child.stderr.take().expect("stderr is piped");
    let (out, err) = tokio::try_join!(collect(out, max_out), collect(err, max_err))?;
    Ok(Output {
        status: child.wait().await?,
        stdout: out.0,
        stderr: err.0,
        stdout_cut: out.1,
    })
}

/// Reads `r` to its end, keeping its first `max` bytes; whether there was more.
async fn collect<R: AsyncRead + Unpin>(mut r: R, max: usize) -> io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut cut = false;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) => return Ok((kept, cut)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let room = max.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        cut |= n > room;
    }
}

#[cfg(test)]
mod tests {
    use super::output;

    fn run(script: &str, max_out: usize, max_err: usize) -> super::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", script]);
        rt.block_on(output(cmd, max_out, max_err)).unwrap()
    }

    #[test]
    fn only_the_bound_is_kept_and_the_command_still_runs_to_its_end() {
        // 8 MiB on each stream, 1 MiB and 4 KiB kept; the command is never blocked on a
        // full pipe, so it ends and its status is its own.
        let o = run(
            "head -c 8388608 /dev/zero; head -c 8388608 /dev/zero >&2; exit 3",
            1 << 20,
            4096,
        );
        assert_eq!(o.status.code(), Some(3));
        assert_eq!((o.stdout.len(), o.stderr.len()), (1 << 20, 4096));
        assert!(o.stdout_cut);
        let o = run("echo out; echo err >&2", 1 << 20, 4096);
        assert_eq!(
            (o.stdout.as_slice(), o.stderr.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
        assert!(!o.stdout_cut);
        assert!(o.status.success());
        // Nothing kept at all: read and dropped.
        let o = run("head -c 100000 /dev/zero", 0, 0);
        assert!(o.stdout.is_empty() && o.stdout_cut && o.status.success());
    }
}
