//! `nslab capture NODE:IFACE`: the packets on a node's interface, both directions, as a
//! pcap stream that tcpdump, tshark and wireshark read. An AF_PACKET socket is opened inside
//! the node's network namespace and bound to the interface, so nothing needs installing in
//! the node.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::filter::Filter;
use super::link::parse_target;
use super::{LiveLab, RuntimeError};
use crate::apply::netlink::NetlinkKernel;

/// Frames bigger than this are cut (veths pass GSO super-frames of up to 64 KiB).
pub const SNAPLEN: u32 = 262_144;
const LINKTYPE_ETHERNET: u32 = 1;

/// When to stop: after `count` packets, after `duration`, or when `stop` is set; and which
/// frames to keep (all without a filter). `count` counts the frames kept, as tcpdump's -c.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub filter: Option<Filter>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets: u64,
    pub bytes: u64,
}

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
    // SAFETY: socket(2); protocol 0 receives nothing until bind names the interface.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor, owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_ll is valid; the fields below make it a bind address.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = all;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: bind with a sockaddr_ll of the right size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // Promiscuous, as tcpdump is by default: frames for other MACs on a bridge port too.
    // SAFETY: an all-zero packet_mreq is valid; setsockopt with its size.
    let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
    mr.mr_ifindex = ifindex as i32;
    mr.mr_type = libc::PACKET_MR_PROMISC as u16;
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mr as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    };
    Ok(fd)
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
/// set; each packet is flushed, so a reader of a pipe sees it at once.
pub fn run(
    fd: &OwnedFd,
    out: &mut dyn Write,
    limits: &Limits,
    stop: &AtomicBool,
) -> io::Result<Stats> {
    write_header(out)?;
    out.flush()?;
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut buf = vec![0u8; SNAPLEN as usize];
    loop {
        if stop.load(Ordering::Relaxed) || limits.count.is_some_and(|c| stats.packets >= c) {
            break;
        }
        let mut wait = Duration::from_millis(100);
        if let Some(d) = limits.duration {
            let left = d.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            wait = wait.min(left);
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one descriptor we own.
        let n = unsafe { libc::poll(&mut pfd, 1, wait.as_millis().max(1) as i32) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            continue;
        }
        // SAFETY: recvfrom into our buffer and an address of the right size; MSG_TRUNC
        // returns the frame's real length.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        let len = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                &mut from as *mut _ as *mut libc::sockaddr,
                &mut from_len,
            )
        };
        if len < 0 {
            let e = io::Error::last_os_error();
            // ENETDOWN: the interface went down (`nslab link down`); the capture goes on
            // and sees the traffic again when it comes back up.
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) || e.raw_os_error() == Some(libc::ENETDOWN)
            {
                continue;
            }
            return Err(e);
        }
        // On loopback every packet is seen leaving and arriving: keep one copy, as
        // libpcap does.
        if from.sll_ifindex == 1 && from.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        let len = len as usize;
        let frame = &buf[..len.min(buf.len())];
        if limits.filter.as_ref().is_some_and(|f| !f.matches(frame)) {
            continue;
        }
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        write_record(out, at, frame, len)?;
        out.flush()?;
        stats.packets += 1;
        stats.bytes += len as u64;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

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
