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
    let stop = stop_on_signals()?;
    let (node, _) = crate::runtime::parse_target(a.target)?;
    let lab_gone = LabWatch::node(host, &lab, node).spawn(stop);
    let mut out: Box<dyn Write> = if a.write == "-" {
        Box::new(io::stdout().lock())
    } else {
        // Never through a link or into what another user left at the name (see `output`);
        // a FIFO of the caller's is kept, for `wireshark -k -i`.
        let file = super::output::create(std::path::Path::new(a.write)).map_err(|e| {
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
    let mut stats = capture::Stats::default();
    match capture::run(&fd, &mut out, &limits, stop, &mut stats) {
        Ok(()) => {}
        // The reader went away (`| head`, a closed wireshark): a normal end.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            return Err(RuntimeError::Host {
                lab: lab.clone(),
                source: io::Error::new(e.kind(), format!("capture on {}: {e}", a.target)),
            }
            .into());
        }
    }
    drop(out);
    // As tcpdump ends: what was kept, what the kernel let through, what it dropped.
    let slow = if stats.dropped > 0 {
        " (the socket's queue was full: the writer fell behind; a filter, which runs in the kernel, or a faster reader keeps more)"
    } else {
        ""
    };
    crate::errln!("nslab: {}: {stats}{slow}", a.target);
    let detail = format!(
        "{} packet(s), {} byte(s) to {}{matching}; {} received by filter, {} dropped by kernel",
        stats.packets, stats.bytes, a.write, stats.received, stats.dropped
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

/// Makes SIGINT and SIGTERM set a flag the capture loop polls between packets.
fn stop_on_signals() -> io::Result<&'static AtomicBool> {
    use nix::sys::signal::Signal;
    crate::sys::signal::raise_flag_on(&[Signal::SIGINT, Signal::SIGTERM]).map_err(io::Error::from)
}
