//! ICMP echo (IPv4 and IPv6) from inside a node's namespace, in Rust: no `ping` binary.
//! A raw socket opened on a namespace thread stays in that namespace; tokio drives it. One
//! socket per source node probes every target at once, so a 100-node all-pairs matrix is
//! 100 sockets, not 9,900 processes.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrStorage, recvfrom, sendto,
    setsockopt, socket, sockopt,
};
use tokio::io::unix::AsyncFd;

use crate::apply::KernelError;
use crate::apply::netlink::NetlinkKernel;
use crate::kinds::Echo;
use crate::plan::Name;

/// What came back for one of our probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Echo {
        from: IpAddr,
        seq: u16,
    },
    /// A router (or the sender's own stack) said why the probe went no further.
    Error {
        from: IpAddr,
        seq: u16,
        error: IcmpError,
    },
}

/// An ICMP error about one of our probes, by what it means rather than by number: the
/// same failure has different types and codes in ICMPv4 and ICMPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// The TTL (hop limit) ran out on the way: a routing loop, or a longer path.
    TimeExceeded,
    /// Destination unreachable, with the family's code.
    Unreachable { v6: bool, code: u8 },
    /// Fragmentation needed with DF set (IPv4) or packet too big (IPv6): the next MTU.
    TooBig { mtu: u32 },
}

impl IcmpError {
    /// What an engineer calls it, and what usually causes it.
    pub fn describe(&self) -> String {
        match *self {
            IcmpError::TimeExceeded => "time to live exceeded".into(),
            IcmpError::TooBig { mtu } => {
                format!("fragmentation needed (packet too big): the next hop's MTU is {mtu}")
            }
            IcmpError::Unreachable { v6, code } => {
                let what = match (v6, code) {
                    (false, 0) | (true, 0) => "network unreachable",
                    (false, 1) | (true, 3) => "host unreachable",
                    (false, 2) => "protocol unreachable",
                    (false, 3) | (true, 4) => "port unreachable",
                    (false, 9) | (false, 10) | (false, 13) | (true, 1) => {
                        "communication administratively prohibited"
                    }
                    (true, 5) => "source address failed policy",
                    (true, 6) => "reject route",
                    _ => "destination unreachable",
                };
                format!("{what} (ICMP{} code {code})", if v6 { "v6" } else { "" })
            }
        }
    }

    /// The likely cause, as a hint for the check's failure.
    pub fn hint(&self) -> &'static str {
        match *self {
            IcmpError::TimeExceeded => "a routing loop, or a path over 255 hops, the probes' TTL",
            IcmpError::TooBig { .. } => "a link on the path has a smaller MTU",
            IcmpError::Unreachable { v6, code } => match (v6, code) {
                (_, 0) => "that router has no route to the destination",
                (false, 1) | (true, 3) => {
                    "no ARP/ND answer for the destination on that router's link"
                }
                (false, 9) | (false, 10) | (false, 13) | (true, 1) | (true, 6) => {
                    "a filter or a prohibit route rejected it"
                }
                _ => "the destination refused it",
            },
        }
    }
}

impl Reply {
    pub fn seq(&self) -> u16 {
        match self {
            Reply::Echo { seq, .. } | Reply::Error { seq, .. } => *seq,
        }
    }
}

/// Identifiers tell our probes from everyone else's on a shared raw socket.
fn next_id() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = (std::process::id() as u16).wrapping_mul(7919);
    base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn sockaddr(addr: IpAddr) -> SockaddrStorage {
    SockaddrStorage::from(SocketAddr::new(addr, 0))
}

fn from_sockaddr(ss: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(sin) = ss.as_sockaddr_in() {
        return Some(IpAddr::V4(sin.ip()));
    }
    ss.as_sockaddr_in6().map(|sin6| IpAddr::V6(sin6.ip()))
}

/// A raw ICMP socket living in one node's network namespace.
pub struct IcmpSocket {
    fd: AsyncFd<OwnedFd>,
    v6: bool,
    id: u16,
    /// Payload bytes and default TTL of its echo requests (see `configure`).
    size: u16,
    ttl: u8,
}

/// The IP_MTU_DISCOVER (IPV6_MTU_DISCOVER) mode for a check's `df`.
///
/// `df: true` is PROBE, not DO, as `ping -M probe`: both set DF (IPv6: never fragment),
/// but DO sizes packets by the path MTU the sender has learned, so after the first
/// frag-needed the sender's own stack refuses every probe to that destination with
/// EMSGSIZE for `net.ipv4.route.mtu_expires` (10 minutes). The check would then no longer
/// hear which router and which link, and a later check (after a `link_down` moved the
/// path, say) would fail on a stale cache. PROBE sends at the sender's interface MTU
/// every time, so every attempt tests the path itself. The kernel still learns the path
/// MTU for the node's other traffic, as it would without nslab.
/// `df: false` is DONT: IPv4 clears DF, so routers fragment; IPv6 has no DF (routers
/// never fragment it) and the sender fragments to the path MTU it knows.
/// No `df` leaves the kernel's default (WANT, as `ping` does): DF set until a router
/// says the path MTU is smaller, then fragmented by the sender.
fn pmtudisc(v6: bool, df: bool) -> (libc::c_int, libc::c_int, libc::c_int) {
    match (v6, df) {
        (false, true) => (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        ),
        (false, false) => (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DONT,
        ),
        (true, true) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_PROBE,
        ),
        (true, false) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DONT,
        ),
    }
}

impl IcmpSocket {
    /// Opens the socket on a namespace thread; it stays bound to that namespace.
    pub async fn open(
        kernel: &NetlinkKernel,
        netns: &Name,
        v6: bool,
    ) -> Result<IcmpSocket, KernelError> {
        let fd = kernel
            .in_netns(netns, move || {
                let (domain, proto) = if v6 {
                    (AddressFamily::Inet6, SockProtocol::IcmpV6)
                } else {
                    (AddressFamily::Inet, SockProtocol::Icmp)
                };
                let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
                socket(domain, SockType::Raw, flags, proto).map_err(io::Error::from)
            })
            .await?;
        Ok(IcmpSocket {
            fd: crate::sys::fd::async_fd(fd).map_err(KernelError::Io)?,
            v6,
            id: next_id(),
            size: Echo::DEFAULT_SIZE,
            ttl: 255,
        })
    }

    /// Builds this socket's echo requests as a reach check's `size`, `df` and `ttl` say.
    pub fn configure(&mut self, echo: &Echo) -> io::Result<()> {
        if let Some(df) = echo.df {
            let (level, opt, mode) = pmtudisc(self.v6, df);
            crate::sys::fd::set_int_sockopt(self.fd.get_ref().as_fd(), level, opt, mode)?;
        }
        self.size = echo.size.unwrap_or(Echo::DEFAULT_SIZE);
        self.ttl = echo.ttl.unwrap_or(255);
        Ok(())
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    /// Sends one echo request; `ttl` limits the hops (for path probes), else the
    /// socket's (255 unless configured: the default of 64 would fail across a long chain).
    pub fn send_echo(&self, dst: IpAddr, seq: u16, ttl: Option<u8>) -> io::Result<()> {
        let fd = self.fd.get_ref();
        let v = libc::c_int::from(ttl.unwrap_or(self.ttl));
        if self.v6 {
            setsockopt(fd, sockopt::Ipv6Ttl, &v)?;
        } else {
            setsockopt(fd, sockopt::Ipv4Ttl, &v)?;
        }
        let pkt = echo_request(self.v6, self.id, seq, self.size);
        sendto(fd.as_raw_fd(), &pkt, &sockaddr(dst), MsgFlags::empty())?;
        Ok(())
    }

    /// The next reply to one of this socket's probes.
    pub async fn recv(&self) -> io::Result<Reply> {
        let mut buf = [0u8; 2048];
        loop {
            let mut guard = self.fd.readable().await?;
            let got = guard.try_io(|inner| {
                recvfrom::<SockaddrStorage>(inner.get_ref().as_raw_fd(), &mut buf)
                    .map_err(io::Error::from)
            });
            let (n, ss) = match got {
                Ok(r) => r?,
                Err(_would_block) => continue,
            };
            let data = &buf[..n];
            let Some(ss) = ss else {
                continue;
            };
            let Some(from) = from_sockaddr(&ss) else {
                continue;
            };
            if let Some(r) = parse(self.v6, self.id, data, from) {
                return Ok(r);
            }
        }
    }
}

/// An echo request of identifier `id` with `size` payload bytes: the payload repeats
/// `nslab-pb`, so a capture shows whose probe it is.
fn echo_request(v6: bool, id: u16, seq: u16, size: u16) -> Vec<u8> {
    let mut pkt = vec![0u8; 8];
    pkt[0] = if v6 { 128 } else { 8 };
    pkt[4..6].copy_from_slice(&id.to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt.extend(b"nslab-pb".iter().cycle().take(usize::from(size)));
    if !v6 {
        // The kernel fills in the ICMPv6 checksum; ICMPv4 is ours to compute.
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    pkt
}

/// One received packet as a reply to the probes of identifier `id`, if it is one.
fn parse(v6: bool, id: u16, data: &[u8], from: IpAddr) -> Option<Reply> {
    // IPv4 raw sockets deliver the IP header; IPv6 ones do not.
    let icmp = if v6 {
        data
    } else {
        let ihl = usize::from(data.first()? & 0x0f) * 4;
        data.get(ihl..)?
    };
    let (ty, code) = (*icmp.first()?, *icmp.get(1)?);
    let be16 = |b: &[u8], at: usize| Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]));
    let (echo_reply, time_exceeded, unreachable, too_big) =
        if v6 { (129, 3, 1, 2) } else { (0, 11, 3, 255) };
    if ty == echo_reply {
        return (be16(icmp, 4)? == id).then(|| Reply::Echo {
            from,
            seq: be16(icmp, 6).unwrap_or(0),
        });
    }
    let error = if ty == time_exceeded {
        IcmpError::TimeExceeded
    } else if ty == too_big {
        IcmpError::TooBig {
            mtu: u32::from_be_bytes(icmp.get(4..8)?.try_into().ok()?),
        }
    } else if ty == unreachable && !v6 && code == 4 {
        IcmpError::TooBig {
            mtu: u32::from(be16(icmp, 6)?),
        }
    } else if ty == unreachable {
        IcmpError::Unreachable { v6, code }
    } else {
        return None;
    };
    // An error quotes our original packet: its IP header, then our ICMP header.
    let inner = icmp.get(8..)?;
    let orig = if v6 {
        inner.get(40..)?
    } else {
        let ihl = usize::from(inner.first()? & 0x0f) * 4;
        inner.get(ihl..)?
    };
    let echo_request = if v6 { 128 } else { 8 };
    if *orig.first()? != echo_request || be16(orig, 4)? != id {
        return None;
    }
    let seq = be16(orig, 6)?;
    Some(Reply::Error { from, seq, error })
}

/// Why the sender's own stack refused to send a probe, from the errno of `sendto`.
pub fn send_refused(errno: i32) -> String {
    match errno {
        libc::ENETUNREACH | libc::EHOSTUNREACH => {
            "the sender has no route to it (refused before sending)".into()
        }
        libc::EMSGSIZE => {
            "the probe is larger than the MTU of the sender's own outgoing link, and `df: true` forbids fragmenting it (refused before sending)".into()
        }
        libc::EPERM | libc::EACCES => "the sender's own filter refused it".into(),
        e => format!("the send failed: {}", io::Error::from_raw_os_error(e)),
    }
}

/// What a ping to one target found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingResult {
    Reply(Duration),
    /// No echo reply; the last ICMP error about the probes, and who sent it.
    Error(IpAddr, IcmpError),
    /// Nothing came back; the errno of the last send that failed, if one did (the
    /// sender's own stack refused it: ENETUNREACH for no route, say).
    NoReply(Option<i32>),
}

/// Pings every target from one namespace until each has answered or `deadline` passes,
/// resending every `interval` to those that have not.
pub async fn ping_many(
    kernel: &NetlinkKernel,
    netns: &Name,
    targets: &[IpAddr],
    echo: &Echo,
    deadline: Duration,
    interval: Duration,
) -> Result<Vec<PingResult>, KernelError> {
    let mut out = vec![PingResult::NoReply(None); targets.len()];
    let mut pending: HashMap<u16, usize> = HashMap::new();
    for fam in [false, true] {
        let idx: Vec<usize> = (0..targets.len())
            .filter(|i| targets[*i].is_ipv6() == fam)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let mut sock = IcmpSocket::open(kernel, netns, fam).await?;
        sock.configure(echo).map_err(KernelError::Io)?;
        let start = Instant::now();
        pending.clear();
        for &i in &idx {
            pending.insert(i as u16, i);
        }
        let mut sent_at: HashMap<u16, Instant> = HashMap::new();
        let mut round = usize::from(sock.id());
        loop {
            let now = Instant::now();
            for (seq, i) in send_order(&pending, round) {
                if sent_at
                    .get(&seq)
                    .is_none_or(|t| now.duration_since(*t) >= interval)
                {
                    // A send error (no route yet) counts as no reply; we retry.
                    if let Err(e) = sock.send_echo(targets[i], seq, None)
                        && let PingResult::NoReply(last) = &mut out[i]
                    {
                        *last = e.raw_os_error();
                    }
                    sent_at.insert(seq, now);
                }
            }
            round = round.wrapping_add(1);
            if pending.is_empty() || start.elapsed() >= deadline {
                break;
            }
            let wait = interval.min(deadline.saturating_sub(start.elapsed()));
            let Ok(r) = tokio::time::timeout(wait, sock.recv()).await else {
                continue;
            };
            match r.map_err(KernelError::Io)? {
                Reply::Echo { from, seq } => {
                    if let Some(&i) = pending.get(&seq)
                        && from == targets[i]
                    {
                        out[i] = PingResult::Reply(
                            sent_at.get(&seq).map(|t| t.elapsed()).unwrap_or_default(),
                        );
                        pending.remove(&seq);
                    }
                }
                Reply::Error { from, seq, error } => {
                    if let Some(&i) = pending.get(&seq) {
                        out[i] = PingResult::Error(from, error);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The pending probes in the order to send them this round: by sequence, starting at a
/// different one each round (and each socket, so each attempt). A router lets out ICMP
/// errors to one sender a few at a time, to whichever probes come first; in a fixed order
/// the same pairs of a many-target check would come last every round and never hear why
/// they fail (12 unrouted targets through one router: 3 of the first 5 named nothing).
fn send_order(pending: &HashMap<u16, usize>, round: usize) -> Vec<(u16, usize)> {
    let mut due: Vec<(u16, usize)> = pending.iter().map(|(s, i)| (*s, *i)).collect();
    due.sort_unstable();
    if !due.is_empty() {
        let n = due.len();
        due.rotate_left(round % n);
    }
    due
}

/// One probe with a given TTL; returns who answered (a router's time-exceeded, or the
/// target's echo reply) and whether it was the target.
pub async fn probe_hop(
    sock: &IcmpSocket,
    dst: IpAddr,
    ttl: u8,
    seq: u16,
    wait: Duration,
) -> io::Result<Option<(IpAddr, bool)>> {
    sock.send_echo(dst, seq, Some(ttl))?;
    let until = Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let Ok(r) = tokio::time::timeout(left, sock.recv()).await else {
            return Ok(None);
        };
        match r? {
            Reply::Echo { from, seq: s } if s == seq => return Ok(Some((from, true))),
            Reply::Error { from, seq: s, .. } if s == seq => return Ok(Some((from, false))),
            _ => {}
        }
    }
}

/// The socket address of a literal or node-resolved host.
pub fn socket_addr(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ICMP error quoting an echo request of `id` with sequence `seq` (IPv4).
    fn v4_error(ty: u8, code: u8, rest: [u8; 4], id: u16, seq: u16) -> Vec<u8> {
        let mut p = vec![0x45u8; 1];
        p.resize(20, 0);
        p.extend([ty, code, 0, 0]);
        p.extend(rest);
        p.push(0x45);
        p.resize(p.len() + 19, 0);
        p.extend([8, 0, 0, 0]);
        p.extend(id.to_be_bytes());
        p.extend(seq.to_be_bytes());
        p
    }

    #[test]
    fn icmp_errors_about_our_probes_are_read_by_meaning() {
        let from: IpAddr = "10.255.0.1".parse().unwrap();
        let at = |data: &[u8]| parse(false, 7, data, from);
        let err = |error| {
            Some(Reply::Error {
                from,
                seq: 3,
                error,
            })
        };
        let frag = v4_error(3, 4, [0, 0, 0x05, 0x78], 7, 3);
        assert_eq!(at(&frag), err(IcmpError::TooBig { mtu: 1400 }));
        let ttl = v4_error(11, 0, [0; 4], 7, 3);
        assert_eq!(at(&ttl), err(IcmpError::TimeExceeded));
        let net = v4_error(3, 0, [0; 4], 7, 3);
        assert_eq!(at(&net), err(IcmpError::Unreachable { v6: false, code: 0 }));
        // Another prober's identifier is not ours.
        assert_eq!(at(&v4_error(11, 0, [0; 4], 8, 3)), None);
        // IPv6: no IP header delivered; packet too big carries a 32-bit MTU.
        let mut ptb = vec![2u8, 0, 0, 0, 0, 0, 0x05, 0x00];
        ptb.extend([0x60u8]);
        ptb.resize(8 + 40, 0);
        ptb.extend([128, 0, 0, 0, 0, 7, 0, 3]);
        let v6from: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(
            parse(true, 7, &ptb, v6from),
            Some(Reply::Error {
                from: v6from,
                seq: 3,
                error: IcmpError::TooBig { mtu: 1280 }
            })
        );
        assert!(
            IcmpError::TooBig { mtu: 1400 }
                .describe()
                .contains("MTU is 1400")
        );
    }

    #[test]
    fn echo_requests_carry_size_payload_bytes_and_a_valid_checksum() {
        for size in [0u16, 1, 16, 1472, Echo::MAX_SIZE_V4] {
            let pkt = echo_request(false, 0x1234, 9, size);
            assert_eq!(pkt.len(), 8 + usize::from(size));
            assert_eq!(&pkt[..2], &[8, 0]);
            assert_eq!(&pkt[4..8], &[0x12, 0x34, 0, 9]);
            assert_eq!(checksum(&pkt), 0, "size {size}");
            assert!(
                pkt[8..]
                    .iter()
                    .zip(b"nslab-pb".iter().cycle())
                    .all(|(a, b)| a == b)
            );
        }
        let v6 = echo_request(true, 1, 2, Echo::MAX_SIZE_V6);
        assert_eq!((v6.len(), v6[0]), (65_535, 128));
    }

    #[test]
    fn each_round_sends_first_to_another_pending_probe() {
        let pending: HashMap<u16, usize> = [(4, 0), (9, 1), (2, 2)].into_iter().collect();
        let firsts: Vec<u16> = (0..4).map(|r| send_order(&pending, r)[0].0).collect();
        assert_eq!(firsts, [2, 4, 9, 2]);
        assert_eq!(send_order(&pending, 1), [(4, 0), (9, 1), (2, 2)]);
        assert!(send_order(&HashMap::new(), 5).is_empty());
    }

    #[test]
    fn checksum_of_an_echo_request() {
        // Type 8, code 0, id 1, seq 1, no payload: checksum is 0xf7fd.
        let pkt = [8u8, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(checksum(&pkt), 0xf7fd);
        let mut with = pkt;
        with[2..4].copy_from_slice(&0xf7fdu16.to_be_bytes());
        assert_eq!(checksum(&with), 0);
    }
}
