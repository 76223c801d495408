//! `nslab capture NODE:IFACE`: the packets on a node's interface, both directions, as a
//! pcap stream that tcpdump, tshark and wireshark read. An AF_PACKET socket is opened inside
//! the node's network namespace and bound to the interface, so nothing needs installing in
//! the node. A filter runs in the kernel as a classic BPF program on that socket
//! ([`attach`]), so frames it drops are never copied to nslab.

use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::filter::Filter;
use super::filter::bpf::{Insn, reject_all};
use super::link::parse_target;
use super::{LiveLab, RuntimeError};
use crate::apply::netlink::NetlinkKernel;
use crate::sys::packet;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Frames bigger than this are cut (veths pass GSO super-frames of up to 64 KiB).
pub const SNAPLEN: u32 = 262_144;
const LINKTYPE_ETHERNET: u32 = 1;

/// When to stop: after `count` packets, after `duration`, or when `stop` is set; and which
/// frames to keep (all without a filter). `count` counts the frames kept, as tcpdump's -c.
/// `filter` is matched in user space: leave it out when the kernel runs it ([`attach`]).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub filter: Option<Filter>,
}

/// What a capture wrote, and what the kernel counted on its socket (`PACKET_STATISTICS`,
/// as tcpdump reports them): `received` is every frame the socket's filter let through,
/// queued or dropped; `dropped` the frames lost because the socket's queue was full (the
/// writer too slow). The kernel's counters are 32 bits and reset on each read, so they
/// are read now and then and summed here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets: u64,
    pub bytes: u64,
    pub received: u64,
    pub dropped: u64,
}

impl std::fmt::Display for Stats {
    /// tcpdump's three counts, on one line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} packets captured, {} received by filter, {} dropped by kernel",
            self.packets, self.received, self.dropped
        )
    }
}

/// How often a long capture reads the kernel's counters, well before a 32-bit count of
/// frames could wrap (at a million frames a second, in more than an hour).
const STATS_EVERY: Duration = Duration::from_secs(1);

/// An AF_PACKET socket bound to `node:iface`, opened in the node's namespace.
pub async fn open(
    kernel: &NetlinkKernel,
    live: &LiveLab,
    target: &str,
) -> Result<OwnedFd, RuntimeError> {
    let (node, iface) = parse_target(target)?;
    // `lo` is not in the summary (every node has it, as ifindex 1) but can be captured.
    let (n, ifindex) = match live.iface(node, iface) {
        Ok((n, i)) => (n, i.ifindex),
        Err(_) if iface == "lo" => (live.node(node)?, 1),
        Err(e) => return Err(e),
    };
    kernel
        .in_netns(&n.netns.as_str().into(), move || packet_socket(ifindex))
        .await
        .map_err(|source| {
            RuntimeError::kernel(
                &live.lab,
                node,
                format!("interface {iface}"),
                "open a capture on",
                source,
            )
        })
}

fn packet_socket(ifindex: u32) -> io::Result<OwnedFd> {
    let all = (libc::ETH_P_ALL as u16).to_be();
    let fd = packet::unbound()?;
    packet::bind(fd.as_fd(), all, ifindex as i32)?;
    // Promiscuous, as tcpdump is by default: frames for other MACs on a bridge port too.
    // (Best effort, as before: a refusal still captures the interface's own frames.)
    let _ = packet::promiscuous(fd.as_fd(), ifindex as i32);
    // Each frame's metadata, for the VLAN tag the kernel took out of it on receive.
    packet::set_int(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)?;
    Ok(fd)
}

pub(crate) fn attach_filter(fd: &OwnedFd, prog: &[Insn]) -> io::Result<()> {
    let insns: Vec<libc::sock_filter> = prog
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    packet::attach_filter(fd.as_fd(), &insns)
}

/// Runs `prog` in the kernel on the capture socket, as libpcap does: a program that keeps
/// nothing first, then the frames queued since bind (which no filter saw) are drained,
/// then the real program. It is locked, so nothing can replace it on this socket.
pub fn attach(fd: &OwnedFd, prog: &[Insn]) -> io::Result<()> {
    attach_filter(fd, &reject_all())?;
    loop {
        // Each frame taken is discarded.
        if let Err(e) = packet::discard_one(fd.as_fd()) {
            match e.kind() {
                io::ErrorKind::WouldBlock => break,
                io::ErrorKind::Interrupted => continue,
                // A link going down meanwhile says so once; the queue is still drained.
                _ if e.raw_os_error() == Some(libc::ENETDOWN) => continue,
                _ => return Err(e),
            }
        }
    }
    // The drained frames were counted: the counts start with the real program.
    packet::counts(fd.as_fd())?;
    attach_filter(fd, prog)?;
    packet::set_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_LOCK_FILTER, 1)
}

/// Adds the kernel's counts since the last read to `stats`.
fn add_kernel_counts(fd: &OwnedFd, stats: &mut Stats) -> io::Result<()> {
    let (received, dropped) = packet::counts(fd.as_fd())?;
    stats.received += received;
    stats.dropped += dropped;
    Ok(())
}

/// Unhooks the socket from every interface (a bind to protocol 0, which the kernel
/// completes only once no frame is on its way in): what is queued can then be read to
/// the end, and the counts no longer move.
fn stop_receiving(fd: &OwnedFd) -> io::Result<()> {
    packet::bind(fd.as_fd(), 0, 0)
}

/// One frame as received: its length on the wire, where it came from, and a VLAN tag
/// (TPID, TCI) the kernel took out of it.
struct Received {
    len: usize,
    ifindex: i32,
    pkttype: u8,
    tag: Option<(u16, u16)>,
}

/// One frame into `buf`, with its VLAN tag from the auxiliary data (PACKET_AUXDATA).
fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Received> {
    let f = packet::recv(fd.as_fd(), buf)?;
    Ok(Received {
        len: f.len,
        ifindex: f.ifindex,
        pkttype: f.pkttype,
        tag: f.aux.as_ref().and_then(vlan_of),
    })
}

/// The tag in a frame's metadata, as libpcap reads it: a TCI or the valid flag, and the
/// TPID when the kernel gives one (802.1Q otherwise).
fn vlan_of(aux: &libc::tpacket_auxdata) -> Option<(u16, u16)> {
    if aux.tp_vlan_tci == 0 && aux.tp_status & libc::TP_STATUS_VLAN_VALID == 0 {
        return None;
    }
    let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
        aux.tp_vlan_tpid
    } else {
        libc::ETH_P_8021Q as u16
    };
    Some((tpid, aux.tp_vlan_tci))
}

/// Puts a tag back after the MACs: the frame was received at `buf[4..]`; the result
/// starts at `buf[0]`.
fn put_tag_back(buf: &mut [u8], caplen: usize, (tpid, tci): (u16, u16)) -> usize {
    if caplen < 12 {
        buf.copy_within(4..4 + caplen, 0);
        return caplen;
    }
    buf.copy_within(4..16, 0);
    buf[12..14].copy_from_slice(&tpid.to_be_bytes());
    buf[14..16].copy_from_slice(&tci.to_be_bytes());
    caplen + 4
}

/// The frame as the pcap record holds it (its tag put back) and its length on the wire,
/// from `buf`, which holds it from byte 4 on. A record is never longer than the header's
/// SNAPLEN: a tagged frame is cut 4 bytes shorter to make room for its tag. A record
/// 4 bytes over it (a tagged frame of 256 KiB, a GSO frame of a node's BIG TCP) made
/// libpcap stop reading the file there ("invalid packet capture length 262148, bigger
/// than snaplen of 262144"), and with it every packet after it.
fn kept<'a>(buf: &'a mut [u8], got: &Received) -> (&'a [u8], usize) {
    match got.tag {
        Some(tag) => {
            let caplen = got.len.min(SNAPLEN as usize - 4);
            let n = put_tag_back(buf, caplen, tag);
            (&buf[..n], got.len + 4)
        }
        None => (&buf[4..4 + got.len.min(SNAPLEN as usize)], got.len),
    }
}

/// The pcap file header (microsecond timestamps, Ethernet).
pub fn write_header(out: &mut dyn Write) -> io::Result<()> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&SNAPLEN.to_le_bytes());
    h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    out.write_all(&h)
}

pub(crate) fn write_record(
    out: &mut dyn Write,
    at: Duration,
    frame: &[u8],
    len: usize,
) -> io::Result<()> {
    let mut h = Vec::with_capacity(16 + frame.len());
    h.extend_from_slice(&(at.as_secs() as u32).to_le_bytes());
    h.extend_from_slice(&at.subsec_micros().to_le_bytes());
    h.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    h.extend_from_slice(&(len as u32).to_le_bytes());
    h.extend_from_slice(frame);
    out.write_all(&h)
}

/// Copies packets from the socket to `out` as pcap until a limit is reached or `stop` is
/// set; each packet is flushed, so a reader of a pipe sees it at once. Stopped by `stop`
/// or the duration, the socket stops receiving and what it had queued is written too,
/// so every frame the kernel counted is either in the pcap (or left out by a user-space
/// filter) or dropped. `stats` is filled in whatever the result (a reader gone away
/// still gets the counts), the kernel's counts last.
pub fn run(
    fd: &OwnedFd,
    out: &mut dyn Write,
    limits: &Limits,
    stop: &AtomicBool,
    stats: &mut Stats,
) -> io::Result<()> {
    let copied = copy(fd, out, limits, stop, stats);
    let counted = add_kernel_counts(fd, stats);
    copied.and(counted)
}

fn copy(
    fd: &OwnedFd,
    out: &mut dyn Write,
    limits: &Limits,
    stop: &AtomicBool,
    stats: &mut Stats,
) -> io::Result<()> {
    write_header(out)?;
    out.flush()?;
    let start = Instant::now();
    let mut counted = start;
    let mut buf = vec![0u8; SNAPLEN as usize + 4];
    let full = |stats: &Stats| limits.count.is_some_and(|c| stats.packets >= c);
    loop {
        if full(stats) {
            return Ok(());
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if counted.elapsed() >= STATS_EVERY {
            add_kernel_counts(fd, stats)?;
            counted = Instant::now();
        }
        let mut wait = Duration::from_millis(100);
        if let Some(d) = limits.duration {
            let left = d.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            wait = wait.min(left);
        }
        let mut pfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
        let n = match poll(&mut pfd, PollTimeout::from(ms)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n > 0 {
            take(fd, &mut buf, out, limits, stats)?;
        }
    }
    stop_receiving(fd)?;
    while !full(stats) && take(fd, &mut buf, out, limits, stats)? {}
    Ok(())
}

/// Reads one frame and writes it to `out` unless it is left out; false when none was
/// queued.
fn take(
    fd: &OwnedFd,
    buf: &mut [u8],
    out: &mut dyn Write,
    limits: &Limits,
    stats: &mut Stats,
) -> io::Result<bool> {
    // Received 4 bytes in, so a tag the kernel took out can be put back in front.
    let got = match recv(fd, &mut buf[4..]) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
        // ENETDOWN: the interface went down (`nslab link down`), said once; the capture
        // goes on and sees the traffic again when it comes back up.
        Err(e)
            if e.kind() == io::ErrorKind::Interrupted
                || e.raw_os_error() == Some(libc::ENETDOWN) =>
        {
            return Ok(true);
        }
        Err(e) => return Err(e),
    };
    // On loopback every packet is seen leaving and arriving: keep one copy, as
    // libpcap does.
    if got.ifindex == 1 && got.pkttype == libc::PACKET_OUTGOING {
        return Ok(true);
    }
    let (frame, len) = kept(buf, &got);
    if limits.filter.as_ref().is_some_and(|f| !f.matches(frame)) {
        return Ok(true);
    }
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    write_record(out, at, frame, len)?;
    out.flush()?;
    stats.packets += 1;
    stats.bytes += len as u64;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_never_longer_than_the_snaplen_of_the_header() {
        let mut buf = vec![0xabu8; SNAPLEN as usize + 4];
        for (len, tag) in [
            (SNAPLEN as usize + 100, Some((0x8100, 5))),
            (SNAPLEN as usize, Some((0x8100, 5))),
            (SNAPLEN as usize + 100, None),
        ] {
            let got = Received {
                len,
                ifindex: 2,
                pkttype: 0,
                tag,
            };
            let (frame, wire) = kept(&mut buf, &got);
            assert_eq!(frame.len(), SNAPLEN as usize, "{len} {tag:?}");
            assert_eq!(wire, len + if tag.is_some() { 4 } else { 0 });
        }
        // A short tagged frame keeps all of itself and its tag.
        let got = Received {
            len: 60,
            ifindex: 2,
            pkttype: 0,
            tag: Some((0x8100, 5)),
        };
        assert_eq!(kept(&mut buf, &got).0.len(), 64);
    }

    #[test]
    fn a_tag_from_the_metadata_goes_back_after_the_macs() {
        let frame: Vec<u8> = (0u8..20).collect();
        let mut buf = vec![0u8; 4];
        buf.extend_from_slice(&frame);
        let n = put_tag_back(&mut buf, frame.len(), (0x88a8, 0x2000 | 10));
        assert_eq!(n, 24);
        assert_eq!(&buf[..12], &frame[..12]);
        assert_eq!(&buf[12..16], &[0x88, 0xa8, 0x20, 0x0a]);
        assert_eq!(&buf[16..24], &frame[12..]);
        let mut aux = libc::tpacket_auxdata {
            tp_status: 0,
            tp_len: 0,
            tp_snaplen: 0,
            tp_mac: 0,
            tp_net: 0,
            tp_vlan_tci: 0,
            tp_vlan_tpid: 0,
        };
        assert_eq!(vlan_of(&aux), None, "no tag");
        aux.tp_status = libc::TP_STATUS_VLAN_VALID;
        assert_eq!(
            vlan_of(&aux),
            Some((0x8100, 0)),
            "VLAN 0, TPID by default 802.1Q"
        );
        aux.tp_status |= libc::TP_STATUS_VLAN_TPID_VALID;
        (aux.tp_vlan_tpid, aux.tp_vlan_tci) = (0x88a8, 20);
        assert_eq!(vlan_of(&aux), Some((0x88a8, 20)));
    }

    #[test]
    fn pcap_header_and_records_follow_the_format() {
        let mut out = Vec::new();
        write_header(&mut out).unwrap();
        assert_eq!(out.len(), 24);
        assert_eq!(&out[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian magic");
        assert_eq!(u32::from_le_bytes(out[20..24].try_into().unwrap()), 1);
        write_record(&mut out, Duration::new(5, 250_000_000), &[1, 2, 3], 60).unwrap();
        let r = &out[24..];
        assert_eq!(u32::from_le_bytes(r[0..4].try_into().unwrap()), 5);
        assert_eq!(u32::from_le_bytes(r[4..8].try_into().unwrap()), 250_000);
        assert_eq!(
            u32::from_le_bytes(r[8..12].try_into().unwrap()),
            3,
            "captured"
        );
        assert_eq!(
            u32::from_le_bytes(r[12..16].try_into().unwrap()),
            60,
            "on the wire"
        );
        assert_eq!(&r[16..], &[1, 2, 3]);
    }
}
