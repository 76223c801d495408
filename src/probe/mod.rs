//! Native probes for `nslab test`: ICMP echo, TCP connect, hop-by-hop paths and route
//! lookups, each run inside a node's network namespace.

pub mod icmp;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::apply::KernelError;
use crate::apply::netlink::NetlinkKernel;
use crate::plan::Name;

/// Connects to `addr` from inside `netns`; the socket is created (and connects) on a
/// namespace thread, so it lives in the node's namespace. The outer error means the probe
/// could not run at all (no namespace, no socket), the inner one that the connection
/// failed (refused, timed out, unreachable): only the latter is an answer.
pub async fn tcp_connect(
    kernel: &NetlinkKernel,
    netns: &Name,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<std::io::Result<Duration>, KernelError> {
    kernel
        .in_netns(netns, move || {
            let start = Instant::now();
            Ok(std::net::TcpStream::connect_timeout(&addr, timeout).map(|_| start.elapsed()))
        })
        .await
}

/// The hops from `netns` to `dst`: for each TTL, who answered (None: nobody in time).
/// Stops at the destination or after `max_hops`.
pub async fn trace(
    kernel: &NetlinkKernel,
    netns: &Name,
    dst: IpAddr,
    max_hops: u8,
    wait: Duration,
) -> Result<Vec<Option<IpAddr>>, KernelError> {
    let sock = icmp::IcmpSocket::open(kernel, netns, dst.is_ipv6()).await?;
    let mut hops = Vec::new();
    for ttl in 1..=max_hops {
        // Three tries per hop: the first may be spent on neighbour resolution.
        let mut answer = None;
        for attempt in 0..3u16 {
            let seq = u16::from(ttl) * 4 + attempt;
            if let Some(a) = icmp::probe_hop(&sock, dst, ttl, seq, wait)
                .await
                .map_err(KernelError::Io)?
            {
                answer = Some(a);
                break;
            }
        }
        match answer {
            Some((from, reached)) => {
                hops.push(Some(from));
                if reached {
                    break;
                }
            }
            None => hops.push(None),
        }
    }
    Ok(hops)
}
