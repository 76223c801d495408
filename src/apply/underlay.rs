//! Reads the machine a multi-host share runs on for `preflight::underlay`: its
//! interfaces with their MTUs and addresses, and the route the kernel picks towards each
//! peer host's address (RTM_GETROUTE with the peer as destination and this host's
//! address as source, as the tunnels' packets are routed: the output interface and any
//! route MTU). Read from the namespace nslab runs in, which is the machine's.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteMetric};

use super::error::{ApplyError, KernelError};
use crate::model::Topology;
use crate::plan::share::Share;
use crate::preflight::underlay::{self, Iface, Machine, Route};

/// Checks host `name`'s share of `t` against the machine before anything is made: a
/// host address the machine lacks is refused, an underlay carrying less than the
/// host's `mtu:` said on stderr (the lab runs; see README "Multi-host labs").
pub async fn check(t: &Topology, name: &str) -> Result<(), ApplyError> {
    let Some(share) = Share::of(t, name) else {
        // An unknown host is `host_plan`'s error, said before the engine runs.
        return Ok(());
    };
    let peers = underlay::peers(t, &share);
    let addrs: Vec<(usize, IpAddr)> = peers.iter().map(|&p| (p, t.hosts[p].address)).collect();
    let machine = read(t.hosts[share.host].address, &addrs)
        .await
        .map_err(|e| ApplyError::Host {
            lab: t.lab.clone(),
            source: std::io::Error::other(format!(
                "reading the machine's addresses and routes for host `{name}`: {e}"
            )),
        })?;
    match underlay::assess(t, &share, &machine) {
        Err(not) => Err(ApplyError::NotThisHost {
            lab: t.lab.clone(),
            why: not.why,
            hint: not.hint,
        }),
        Ok(warnings) => {
            for w in warnings {
                crate::errln!(
                    "nslab: lab `{}`: warning: {}\n  hint: {}",
                    t.lab,
                    w.what,
                    w.hint
                );
            }
            Ok(())
        }
    }
}

/// The machine's interfaces and its routes from `own` (this host's address) towards
/// `peers`.
async fn read(own: IpAddr, peers: &[(usize, IpAddr)]) -> Result<Machine, KernelError> {
    // Tokio's threads stay in nslab's own namespace: this socket is the machine's.
    let (conn, h, _) = rtnetlink::new_connection().map_err(KernelError::Io)?;
    tokio::spawn(conn);
    let links = super::inspect::links(&h).await?;
    let ifaces: Vec<Iface> = links
        .iter()
        .map(|l| Iface {
            name: l.name.clone(),
            mtu: l.mtu,
            addresses: l.addresses.iter().map(|a| a.addr()).collect(),
        })
        .collect();
    let mut routes = Vec::new();
    for &(peer, addr) in peers {
        let route = match route_to(&h, own, addr).await {
            Ok(Some((oif, route_mtu))) => match links.iter().find(|l| l.ifindex == oif) {
                Some(l) => Route::Via {
                    iface: l.name.clone(),
                    iface_mtu: l.mtu,
                    route_mtu,
                },
                None => Route::None(format!("its output interface #{oif} is gone")),
            },
            Ok(None) => Route::None("the kernel's route names no output interface".into()),
            Err(e) => Route::None(e.to_string()),
        };
        routes.push((peer, route));
    }
    Ok(Machine { ifaces, routes })
}

/// The output interface of the kernel's route from `from` to `to`, and the route's MTU if
/// it has one. The source is the tunnels' local address, as in their packets: on a
/// machine with several uplinks, a rule (`ip rule add from ADDR table N`) may send those
/// packets another way than the main table would.
async fn route_to(
    h: &Handle,
    from: IpAddr,
    to: IpAddr,
) -> Result<Option<(u32, Option<u32>)>, KernelError> {
    let mut msg = RouteMessage::default();
    let (family, len, src, dst) = match (from, to) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (
            AddressFamily::Inet,
            32,
            RouteAddress::Inet(s),
            RouteAddress::Inet(d),
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => (
            AddressFamily::Inet6,
            128,
            RouteAddress::Inet6(s),
            RouteAddress::Inet6(d),
        ),
        // All hosts use one family (a compile error otherwise).
        _ => return Ok(None),
    };
    msg.header.address_family = family;
    msg.header.destination_prefix_length = len;
    msg.header.source_prefix_length = len;
    msg.attributes.push(RouteAttribute::Destination(dst));
    msg.attributes.push(RouteAttribute::Source(src));
    let got: Vec<RouteMessage> = h
        .route()
        .get(msg)
        .execute()
        .try_collect()
        .await
        .map_err(KernelError::netlink)?;
    let Some(r) = got.first() else {
        return Ok(None);
    };
    let oif = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    });
    let mtu = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Metrics(ms) => ms.iter().find_map(|m| match m {
            RouteMetric::Mtu(v) => Some(*v),
            _ => None,
        }),
        _ => None,
    });
    Ok(oif.map(|o| (o, mtu)))
}
