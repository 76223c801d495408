//! A process's log, capped and rotated by the init. The process writes into a pipe and
//! the init copies what arrives to `name.log`: a process holding the file itself could
//! fill the lab's logs tmpfs between two looks (`yes` writes about 1 GB/s), while a pipe
//! that is not read blocks its writer. Past the cap, `name.log` becomes `name.log.1`
//! (older parts move one further, the oldest beyond `keep` is dropped) and a new
//! `name.log` starts, cut after a whole line when one fits.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl, openat, renameat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, pipe2, unlinkat};

use crate::model::LogPolicy;

pub struct LogSink {
    dir: OwnedFd,
    base: String,
    policy: LogPolicy,
    /// The read end, non-blocking; the init polls it.
    pipe: OwnedFd,
    /// The write end, kept open by the init so a restarted process writes into the same
    /// pipe and the read end never sees an end of file.
    write_end: OwnedFd,
    file: Option<File>,
    size: u64,
}

/// What one read takes from a pipe: its default capacity.
const CHUNK: usize = 64 << 10;

impl LogSink {
    /// A pipe for process `name`, logging into the directory `dir`.
    pub fn new(dir: &OwnedFd, name: &str, policy: LogPolicy) -> std::io::Result<LogSink> {
        let (pipe, write_end) = pipe2(OFlag::O_CLOEXEC)?;
        let flags = OFlag::from_bits_truncate(fcntl(&pipe, FcntlArg::F_GETFL)?);
        fcntl(&pipe, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        let mut sink = LogSink {
            dir: dir.try_clone()?,
            base: format!("{name}.log"),
            policy,
            pipe,
            write_end,
            file: None,
            size: 0,
        };
        sink.open(false)?;
        Ok(sink)
    }

    pub fn fd(&self) -> RawFd {
        self.pipe.as_raw_fd()
    }

    /// The process's stdout and stderr.
    pub fn writer(&self) -> std::io::Result<File> {
        Ok(File::from(self.write_end.try_clone()?))
    }

    /// Opens `name.log`: appending to what a previous init left, or new after a rotation.
    /// Never through a symbolic link: the init is root, and a link planted in the logs
    /// directory would have it append to (or, at a rotation, truncate) any file.
    fn open(&mut self, truncate: bool) -> std::io::Result<()> {
        let mut flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_APPEND
            | OFlag::O_CLOEXEC
            | OFlag::O_NOFOLLOW;
        if truncate {
            flags |= OFlag::O_TRUNC;
        }
        let fd = openat(
            self.dir.as_fd(),
            self.base.as_str(),
            flags,
            Mode::from_bits_truncate(0o640),
        )?;
        let file = File::from(fd);
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    fn part(&self, i: u32) -> String {
        if i == 0 {
            self.base.clone()
        } else {
            format!("{}.{i}", self.base)
        }
    }

    /// `name.log.(k-1)` to `name.log.k` down to `name.log` to `name.log.1`, then a new
    /// `name.log`; with `keep: 0` the log starts over.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        if self.policy.keep == 0 {
            let _ = unlinkat(
                self.dir.as_fd(),
                self.base.as_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
        for i in (0..self.policy.keep).rev() {
            match renameat(
                self.dir.as_fd(),
                self.part(i).as_str(),
                self.dir.as_fd(),
                self.part(i + 1).as_str(),
            ) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.open(true)
    }

    /// Writes `data`, rotating as often as the cap requires.
    pub fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        let max = self.policy.max_bytes;
        while !data.is_empty() {
            if self.file.is_none() {
                self.open(false)?;
            }
            let room = max.saturating_sub(self.size) as usize;
            let cut = if data.len() <= room {
                data.len()
            } else {
                // After the last whole line that fits; a line longer than the cap is cut
                // where it must be, and a started part that fits none is rotated first.
                data[..room]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(if self.size == 0 { room } else { 0 }, |i| i + 1)
            };
            if cut > 0 {
                let f = self.file.as_mut().expect("opened above");
                f.write_all(&data[..cut])?;
                self.size += cut as u64;
                data = &data[cut..];
            }
            if !data.is_empty() {
                self.rotate()?;
            }
        }
        Ok(())
    }

    /// Copies what the pipe holds to the log, at most `rounds` reads of 64 KiB (so one
    /// busy process cannot keep the init from the rest of its loop). Returns whether the
    /// pipe may hold more.
    pub fn drain(&mut self, rounds: usize) -> bool {
        // Not zeroed: the init trims its heap when idle, so zeroing 64 KiB faulted in 16
        // fresh pages at every drain, most of an init's own work when `down` stops it.
        // A read touches only the pages it fills.
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
        for _ in 0..rounds {
            match crate::sys::fd::read_spare(self.pipe.as_fd(), &mut buf) {
                Ok(0) => return false,
                Ok(_) => {
                    // A full tmpfs loses this part of the output, not the init.
                    let _ = self.write(&buf);
                    buf.clear();
                }
                Err(Errno::EINTR) => {}
                Err(_) => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(dir: &std::path::Path, max: u64, keep: u32) -> LogSink {
        let fd = OwnedFd::from(File::open(dir).unwrap());
        LogSink::new(
            &fd,
            "p",
            LogPolicy {
                max_bytes: max,
                keep,
            },
        )
        .unwrap()
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("nslab-logsink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn logs_rotate_at_line_ends_and_keep_only_their_parts() {
        let d = tmp("rotate");
        let mut s = sink(&d, 10, 2);
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gg\n",
        ] {
            s.write(line.as_bytes()).unwrap();
        }
        let read = |p: &str| std::fs::read_to_string(d.join(p)).unwrap_or_default();
        assert_eq!(read("p.log"), "gg\n");
        assert_eq!(read("p.log.1"), "eeee\nffff\n");
        assert_eq!(read("p.log.2"), "cccc\ndddd\n");
        assert!(!d.join("p.log.3").exists(), "only two old parts are kept");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_line_longer_than_the_cap_is_cut_and_keep_zero_starts_over() {
        let d = tmp("long");
        let mut s = sink(&d, 4, 0);
        s.write(b"0123456789\n").unwrap();
        assert_eq!(std::fs::read_to_string(d.join("p.log")).unwrap(), "89\n");
        assert!(!d.join("p.log.1").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_link_at_the_log_is_refused_not_written_through() {
        let d = tmp("link");
        let target = d.join("target");
        std::fs::write(&target, "keep\n").unwrap();
        std::os::unix::fs::symlink(&target, d.join("p.log")).unwrap();
        let fd = OwnedFd::from(File::open(&d).unwrap());
        let policy = LogPolicy {
            max_bytes: 1 << 20,
            keep: 1,
        };
        let e = LogSink::new(&fd, "p", policy)
            .err()
            .expect("opened through a link");
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn what_the_process_writes_into_the_pipe_reaches_the_log() {
        let d = tmp("pipe");
        let mut s = sink(&d, 1 << 20, 1);
        let mut w = s.writer().unwrap();
        w.write_all(b"hello\n").unwrap();
        drop(w);
        s.drain(4);
        assert_eq!(std::fs::read_to_string(d.join("p.log")).unwrap(), "hello\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_drain_takes_several_chunks_whole_and_in_order() {
        let d = tmp("chunks");
        let mut s = sink(&d, 1 << 20, 1);
        let w = s.writer().unwrap();
        // Room for all of it, so it is written before the first read.
        fcntl(&w, FcntlArg::F_SETPIPE_SZ(1 << 18)).unwrap();
        let text: Vec<u8> = (0..3 * CHUNK + 100)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        let mut w = w;
        w.write_all(&text).unwrap();
        drop(w);
        assert!(!s.drain(16), "the pipe was emptied");
        assert_eq!(std::fs::read(d.join("p.log")).unwrap(), text);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
