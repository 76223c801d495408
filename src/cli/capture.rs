//! `nslab capture NODE:IFACE [FILTER...] -w FILE|- [-c COUNT] [--duration D]
//! [--filter-in kernel|user]`

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{CliError, exit, lab_arg};
use crate::runtime::watch::LabWatch;
use crate::runtime::{Access, LiveLab, RuntimeError, Session, capture, events, filter};

pub struct Args<'a> {
    pub lab: Option<&'a str>,
    pub target: &'a str,
    pub write: &'a str,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// The filter's words, joined by spaces as tcpdump joins them.
    pub filter: &'a [String],
    /// Run the filter in the kernel (a BPF program), not in nslab.
    pub in_kernel: bool,
}

pub fn run(host: &crate::state::HostContext, a: Args) -> Result<u8, CliError> {
    // A bad filter is refused before anything is opened.
    let text = a.filter.join(" ");
    let filter = match text.trim() {
        "" => None,
        t => Some(filter::parse(t).map_err(|e| CliError::Usage(e.to_string()))?),
    };
    let lab = lab_arg(host, None, a.lab)?;
    let rt = crate::apply::tokio_runtime()?;
    let (fd, dir) = rt.block_on(async {
        let s = Session::open(host, &lab, Access::Read)?;
        Ok::<_, RuntimeError>((s.capture(a.target).await?, s.live.dir.clone()))
    })?;
    drop(rt);
    // The kernel program, when there is a filter (and it fits the kernel's limit).
    let filter = match filter
        .as_ref()
        .filter(|_| a.in_kernel)
        .and_then(filter::bpf::compile)
    {
        Some(prog) => {
            capture::attach(&fd, &prog).map_err(|e| RuntimeError::Host {
                lab: lab.clone(),
                source: io::Error::new(
                    e.kind(),
                    format!("attach the capture filter to {}: {e}", a.target),
                ),
            })?;
            None
        }
        None => filter,
    };
    let in_user = if filter.is_some() { ", in nslab" } else { "" };
    // SIGINT and SIGTERM end the capture cleanly: the file stays a whole pcap. So does the
    // lab going down, which would otherwise leave the capture waiting forever.
    stop_on_signals()?;
    let (node, _) = crate::runtime::parse_target(a.target)?;
    let lab_gone = LabWatch::node(host, &lab, node).spawn(&STOP);
    let mut out: Box<dyn Write> = if a.write == "-" {
        Box::new(io::stdout().lock())
    } else {
        let file = create_output(std::path::Path::new(a.write)).map_err(|e| {
            CliError::Usage(format!(
                "cannot write the capture to {}: {}",
                a.write,
                super::output::why(&e)
            ))
        })?;
        Box::new(io::BufWriter::new(file))
    };
    // On stderr, so `-w -` keeps stdout pure pcap; it also tells scripts the socket is open.
    let to = if a.write == "-" { "stdout" } else { a.write };
    let matching = match text.trim() {
        "" => String::new(),
        t => format!(" (frames matching `{t}`{in_user})"),
    };
    crate::errln!(
        "nslab: capturing on {}{matching} (lab `{lab}`) to {to}; Ctrl-C stops",
        a.target
    );
    let limits = capture::Limits {
        count: a.count,
        duration: a.duration,
        filter,
    };
    let stats = match capture::run(&fd, &mut out, &limits, &STOP) {
        Ok(s) => s,
        // The reader went away (`| head`, a closed wireshark): a normal end.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => capture::Stats::default(),
        Err(e) => {
            return Err(RuntimeError::Host {
                lab: lab.clone(),
                source: io::Error::new(e.kind(), format!("capture on {}: {e}", a.target)),
            }
            .into());
        }
    };
    drop(out);
    let detail = format!(
        "{} packet(s), {} byte(s) to {}{matching}",
        stats.packets, stats.bytes, a.write
    );
    // A lab taken down meanwhile gets no event log back (`down` may still be removing
    // its state).
    if lab_gone.load(Ordering::Relaxed) || LiveLab::open(host, &lab).is_err() {
        crate::errln!(
            "nslab: capture on {} ended: {detail} (lab `{lab}` is down)",
            a.target
        );
        return Ok(exit::OK);
    }
    let event = events::record(&dir, "capture", a.target, &detail).map_err(RuntimeError::from)?;
    crate::errln!("{}", super::event_line(&event));
    Ok(exit::OK)
}

/// Set by SIGINT or SIGTERM; the capture loop polls it between packets.
/// The `-w` file, never written through a link or into a file or FIFO another user
/// left at the name (see `output`). A FIFO of the caller's is kept, for `wireshark -k -i`.
fn create_output(path: &std::path::Path) -> io::Result<std::fs::File> {
    super::output::create(path)
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn stop_on_signals() -> io::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }.map_err(io::Error::from)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::create_output;

    #[test]
    fn the_capture_file_is_never_written_through_a_link() {
        let dir = std::env::temp_dir().join(format!("nslab-capw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let victim = dir.join("shadow");
        std::fs::write(&victim, "root:secret\n").unwrap();
        let link = dir.join("x.pcap");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let through_link = create_output(&link).map(|_| ());
        let victim_after = std::fs::read_to_string(&victim).unwrap();
        let plain = create_output(&dir.join("y.pcap")).map(|_| ());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(victim_after, "root:secret\n", "truncated through the link");
        let err = through_link.expect_err("a link at the name is refused");
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        plain.expect("a plain new file is made");
    }
}

#[cfg(test)]
mod planted {
    use super::create_output;
    use std::os::unix::fs::PermissionsExt;

    /// A directory anyone can write, as /tmp: what another user leaves there at the
    /// name must not receive the capture.
    #[test]
    fn a_file_or_fifo_another_user_left_in_a_shared_directory_gets_no_capture() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to give a file to another user");
            return;
        }
        let dir = std::env::temp_dir().join(format!("nslab-capshared-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        let theirs = dir.join("theirs.pcap");
        std::fs::write(&theirs, "").unwrap();
        nix::unistd::chown(&theirs, nobody, None).unwrap();
        let fifo = dir.join("fifo.pcap");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
        nix::unistd::chown(&fifo, nobody, None).unwrap();
        let file_result = create_output(&theirs).map(|_| ());
        // Without a reader a FIFO's open would block: a refusal must come first.
        let fifo_result = create_output(&fifo).map(|_| ());
        let mine = create_output(&dir.join("mine.pcap")).map(|_| ());
        std::fs::remove_dir_all(&dir).unwrap();
        let err = file_result.expect_err("another user's file is refused");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        let err = fifo_result.expect_err("another user's FIFO is refused");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        mine.expect("a new file is made");
    }
}

#[cfg(test)]
mod hard_links {
    use super::create_output;

    /// A hard link is another name of the same file: truncating it truncates the file
    /// (/etc/shadow, linked into /tmp where `protected_hardlinks` is off).
    #[test]
    fn a_name_with_other_hard_links_is_not_truncated() {
        let dir = std::env::temp_dir().join(format!("nslab-caplink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let victim = dir.join("shadow");
        std::fs::write(&victim, "root:secret\n").unwrap();
        let link = dir.join("x.pcap");
        std::fs::hard_link(&victim, &link).unwrap();
        let result = create_output(&link).map(|_| ());
        let victim_after = std::fs::read_to_string(&victim).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            victim_after, "root:secret\n",
            "truncated through a hard link"
        );
        let err = result.expect_err("a file with two names is refused");
        assert!(err.to_string().contains("hard link"), "{err}");
    }
}
