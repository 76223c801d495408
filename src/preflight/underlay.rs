//! The machine a multi-host share runs on, against what the file says of its host: the
//! host's `address:` must be one of the machine's (else its tunnels' local end is
//! missing and they never come up), and the underlay towards each peer should carry the
//! host's `mtu:` (else frames near the tunnels' MTU are fragmented or dropped on the
//! way). The engine reads the machine over netlink (`apply::underlay`); what to make of
//! it is decided here, pure, so it is tested without root.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::model::{End, Topology};
use crate::plan::share::Share;

/// An interface of the machine, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub mtu: u32,
    pub addresses: Vec<IpAddr>,
}

/// Where the machine's route towards a peer host's address leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// By `iface` (its MTU), with the route's own `mtu` metric if it has one.
    Via {
        iface: String,
        iface_mtu: u32,
        route_mtu: Option<u32>,
    },
    /// No route: the kernel's answer.
    None(String),
}

/// The machine as netlink shows it from the namespace nslab runs in.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub ifaces: Vec<Iface>,
    /// Per peer host (by index into `Topology::hosts`), its route.
    pub routes: Vec<(usize, Route)>,
}

/// The host's address is not the machine's: refused before anything is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotHere {
    pub why: String,
    pub hint: String,
}

/// A problem with the underlay that leaves the lab runnable, said before it comes up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub what: String,
    pub hint: String,
}

/// The hosts this share has a tunnel to: the other end of each cross-host link with an
/// end here, the other replicas of each bridge with one here.
pub fn peers(t: &Topology, share: &Share) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let host_of = |e: &End| match e {
        End::Node { node, .. } => t.host_of(*node),
        _ => None,
    };
    for (l, vni) in t.links.iter().zip(&share.vnis) {
        let ends = [host_of(&l.a), host_of(&l.b)];
        if vni.is_some() && ends.contains(&Some(share.host)) {
            out.extend(ends.into_iter().flatten());
        }
    }
    let here = &t.hosts[share.host].name;
    for (b, vni) in t.bridges.iter().zip(&share.bridge_vnis) {
        if vni.is_some() && b.hosts.contains(here) {
            out.extend(
                b.hosts
                    .iter()
                    .filter_map(|h| t.hosts.iter().position(|x| &x.name == h)),
            );
        }
    }
    out.remove(&share.host);
    out
}

/// The machine's addresses, as a list to print: `address (iface)`, loopback left out.
fn listed(m: &Machine) -> String {
    let all: Vec<String> = m
        .ifaces
        .iter()
        .flat_map(|i| i.addresses.iter().map(move |a| (a, &i.name)))
        .filter(|(a, _)| !a.is_loopback())
        .map(|(a, i)| format!("{a} ({i})"))
        .collect();
    if all.is_empty() {
        "none but loopback".to_string()
    } else {
        all.join(", ")
    }
}

/// Whether host `share.host`'s address is the machine's, and the warnings for an
/// underlay that carries less than its `mtu:`.
pub fn assess(t: &Topology, share: &Share, m: &Machine) -> Result<Vec<Warning>, NotHere> {
    let host = &t.hosts[share.host];
    let Some(own) = m
        .ifaces
        .iter()
        .find(|i| i.addresses.contains(&host.address))
    else {
        return Err(NotHere {
            why: format!(
                "host `{}`'s address {} is not an address of this machine (its addresses: {})",
                host.name,
                host.address,
                listed(m)
            ),
            hint: format!(
                "the tunnels' local end would be missing and they would never come up; is this machine `{}` (a wrong `--host`?), or is `hosts: {}: address:` wrong in the file?",
                host.name, host.name
            ),
        });
    };
    let mut out = Vec::new();
    if own.mtu < host.mtu {
        out.push(short(
            t,
            share,
            None,
            &own.name,
            own.mtu,
            "owns its address",
        ));
    }
    for (peer, route) in &m.routes {
        let p = &t.hosts[*peer];
        match route {
            Route::Via {
                iface,
                iface_mtu,
                route_mtu,
            } => {
                let (mtu, by) = match route_mtu {
                    Some(r) if r < iface_mtu => (*r, "route's MTU"),
                    _ => (*iface_mtu, "MTU"),
                };
                if mtu < host.mtu && !(iface == &own.name && by == "MTU") {
                    out.push(short(t, share, Some(*peer), iface, mtu, by));
                }
            }
            Route::None(why) => out.push(Warning {
                what: format!(
                    "host `{}` has no route to host `{}`'s address {}: {why}",
                    host.name, p.name, p.address
                ),
                hint: "the tunnels to that host stay down until the machine has a route to it"
                    .into(),
            }),
        }
    }
    Ok(out)
}

/// The warning for an interface (or route) carrying `mtu`, below the host's `mtu:`;
/// `peer` when it is the way towards that host, `by` what sets the limit.
fn short(
    t: &Topology,
    share: &Share,
    peer: Option<usize>,
    iface: &str,
    mtu: u32,
    by: &str,
) -> Warning {
    let host = &t.hosts[share.host];
    let over = host.vxlan_overhead();
    // The lab's tunnels from here: the smaller `mtu:` of the two hosts, less the overhead.
    let tunnel = match peer {
        Some(p) => host.mtu.min(t.hosts[p].mtu),
        None => host.mtu,
    }
    .saturating_sub(over);
    let way = match peer {
        Some(p) => format!(
            "the route towards host `{}` ({}) leaves by `{iface}`, whose {by} is {mtu}",
            t.hosts[p].name, t.hosts[p].address
        ),
        None => format!(
            "`{iface}`, which holds its address {}, has MTU {mtu}",
            host.address
        ),
    };
    let carried = mtu.saturating_sub(over);
    Warning {
        what: format!(
            "host `{}`: {way}, below the host's `mtu: {}`; the lab's tunnels get MTU {tunnel} but carry {carried} bytes unfragmented, so larger frames are fragmented or dropped on the way",
            host.name, host.mtu
        ),
        hint: format!(
            "lower `hosts: {}: mtu:` to {mtu} (tunnels of MTU {carried}), or raise the underlay's MTU to {}",
            host.name, host.mtu
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// r1 on ha, r2 on hb, r3 on hc; links r1-r2 and r2-r3 cross hosts.
    fn lab() -> Topology {
        let yaml = "name: ul-unit\nhosts:\n  ha: { address: 192.0.2.1 }\n  hb: { address: 192.0.2.2, mtu: 9000 }\n  hc: { address: 192.0.2.3 }\nnodes:\n  r1: { host: ha }\n  r2: { host: hb }\n  r3: { host: hc }\nlinks:\n  - [r1, r2]\n  - [r2, r3]\n";
        crate::compile_str(yaml, "t.yaml", std::path::Path::new("/"))
            .unwrap()
            .topology
    }

    fn iface(name: &str, mtu: u32, addrs: &[&str]) -> Iface {
        Iface {
            name: name.into(),
            mtu,
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    fn via(iface: &str, iface_mtu: u32, route_mtu: Option<u32>) -> Route {
        Route::Via {
            iface: iface.into(),
            iface_mtu,
            route_mtu,
        }
    }

    #[test]
    fn a_share_reaches_the_hosts_it_has_tunnels_to_only() {
        let t = lab();
        let peers_of = |h: &str| peers(&t, &Share::of(&t, h).unwrap());
        assert_eq!(peers_of("ha"), BTreeSet::from([1]));
        assert_eq!(peers_of("hb"), BTreeSet::from([0, 2]));
        assert_eq!(peers_of("hc"), BTreeSet::from([1]));
    }

    #[test]
    fn an_address_the_machine_lacks_is_refused_naming_the_host_and_the_machines_addresses() {
        let t = lab();
        let share = Share::of(&t, "ha").unwrap();
        let m = Machine {
            ifaces: vec![
                iface("lo", 65536, &["127.0.0.1"]),
                iface("eth0", 1500, &["192.0.2.2"]),
            ],
            routes: vec![],
        };
        let e = assess(&t, &share, &m).unwrap_err();
        assert_eq!(
            e.why,
            "host `ha`'s address 192.0.2.1 is not an address of this machine (its addresses: 192.0.2.2 (eth0))"
        );
        assert!(e.hint.contains("wrong `--host`"), "{}", e.hint);
        assert!(e.hint.contains("`hosts: ha: address:`"), "{}", e.hint);
    }

    #[test]
    fn a_machine_that_fits_the_file_gives_no_warning() {
        let t = lab();
        let share = Share::of(&t, "hb").unwrap();
        let m = Machine {
            ifaces: vec![iface("eth0", 9000, &["192.0.2.2", "fe80::1"])],
            routes: vec![
                (0, via("eth0", 9000, None)),
                (2, via("eth0", 9000, Some(9000))),
            ],
        };
        assert_eq!(assess(&t, &share, &m).unwrap(), vec![]);
    }

    #[test]
    fn an_underlay_below_mtu_is_warned_with_the_interface_its_mtu_and_the_tunnel_mtu() {
        let t = lab();
        let share = Share::of(&t, "hb").unwrap();
        // hb's own interface carries 1500 of its 9000: one warning, not one per peer too.
        let m = Machine {
            ifaces: vec![iface("eth0", 1500, &["192.0.2.2"])],
            routes: vec![(0, via("eth0", 1500, None)), (2, via("eth0", 1500, None))],
        };
        let w = assess(&t, &share, &m).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(
            w[0].what,
            "host `hb`: `eth0`, which holds its address 192.0.2.2, has MTU 1500, below the host's `mtu: 9000`; the lab's tunnels get MTU 8950 but carry 1450 bytes unfragmented, so larger frames are fragmented or dropped on the way"
        );
        assert!(
            w[0].hint.contains("lower `hosts: hb: mtu:` to 1500"),
            "{}",
            w[0].hint
        );
    }

    #[test]
    fn a_route_mtu_below_the_hosts_mtu_is_warned_per_peer_and_a_missing_route_too() {
        let t = lab();
        let share = Share::of(&t, "hb").unwrap();
        let m = Machine {
            ifaces: vec![
                iface("eth0", 9000, &["192.0.2.2"]),
                iface("eth1", 9000, &[]),
            ],
            routes: vec![
                (0, via("eth1", 9000, Some(1400))),
                (2, Route::None("Network is unreachable".into())),
            ],
        };
        let w = assess(&t, &share, &m).unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        // ha's `mtu:` is 1500: the tunnel to it is 1450, over the 1350 the route carries.
        assert_eq!(
            w[0].what,
            "host `hb`: the route towards host `ha` (192.0.2.1) leaves by `eth1`, whose route's MTU is 1400, below the host's `mtu: 9000`; the lab's tunnels get MTU 1450 but carry 1350 bytes unfragmented, so larger frames are fragmented or dropped on the way"
        );
        assert_eq!(
            w[1].what,
            "host `hb` has no route to host `hc`'s address 192.0.2.3: Network is unreachable"
        );
    }
}
