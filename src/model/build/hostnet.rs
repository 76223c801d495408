//! Host links and the management network, checked and numbered: names as the kernel will
//! see them, subnets that overlap nothing else in the file, and ifindexes and MACs derived
//! like every other interface's. Whether a host name or subnet is free on the host itself
//! is only known at `up` (`apply::hostnet`).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::layout::{Layout, ifindex};
use super::macs::{NodeMacs, free_mac};
use crate::diag::{Sink, Span};
use crate::model::hostnet::{HostLink, Mgmt};
use crate::model::names::{check_ifname, check_network_name, identity_hash};
use crate::spec::hostnet::{RawHostLink, RawMgmt, RawNodeMgmt};
use crate::spec::raw::RawTopology;

/// The node-side name of a management interface unless `mgmt.iface` says otherwise.
pub const DEFAULT_MGMT_IFACE: &str = "mgmt0";

/// What the host links being built share: names and numbers taken so far.
struct Taken {
    /// Subnets of the lab's own links, bridges and loopbacks.
    lab: Vec<IpNet>,
    /// Subnets of host links and the management network, with where they were written.
    host_nets: Vec<(IpNet, Span, usize)>,
    host_names: HashMap<String, Span>,
    host_ix: HashSet<u32>,
    node_ix: Vec<HashSet<u32>>,
    node_if: Vec<HashSet<String>>,
    /// The MACs on each node, its devices' included.
    node_mac: NodeMacs,
    /// The MACs of the host's ends and the management bridge.
    host_mac: HashSet<[u8; 6]>,
}

pub(super) fn build(
    sink: &mut Sink,
    lab: &str,
    raw: &RawTopology,
    names: &HashMap<String, usize>,
    l: &Layout,
    node_mac: NodeMacs,
) -> (Vec<HostLink>, Option<Mgmt>) {
    let mut t = Taken {
        lab: lab_subnets(l),
        host_nets: Vec::new(),
        host_names: HashMap::new(),
        host_ix: HashSet::new(),
        // A node's own interfaces (dummies, vlans, macvlans) are made before these, and
        // their names and indexes are as taken as its links'.
        node_ix: l
            .nodes
            .iter()
            .map(|n| {
                let links = n.interfaces.iter().map(|i| i.ifindex);
                links.chain(n.devices.iter().map(|d| d.ifindex)).collect()
            })
            .collect(),
        node_if: l
            .nodes
            .iter()
            .map(|n| {
                let links = n.interfaces.iter().map(|i| i.name.clone());
                links
                    .chain(n.devices.iter().map(|d| d.name.clone()))
                    .collect()
            })
            .collect(),
        node_mac,
        host_mac: HashSet::new(),
    };
    // A shared network's bridge is numbered from the network's name alone, before
    // anything of the lab's, so every lab joining it plans the same bridge.
    let shared = raw
        .mgmt
        .as_ref()
        .and_then(|m| m.network.as_ref())
        .filter(|n| match check_network_name(&n.value) {
            Ok(()) => true,
            Err(e) => {
                sink.error(Some(n.span), e)
                    .hint("a network is named as a lab is, for example `network: clab`");
                false
            }
        })
        .map(|n| {
            let (ix, mac) = shared_numbers(&n.value);
            t.host_ix.insert(ix);
            t.host_mac.insert(mac);
            (n.value.clone(), ix, mac)
        });
    let mut out: Vec<HostLink> = raw
        .host_links
        .iter()
        .enumerate()
        .filter_map(|(i, h)| host_link(sink, lab, names, l, &mut t, (i, h)))
        .collect();
    for (h, at) in raw.host_links.iter().filter_map(|h| Some((h, h.mgmt?))) {
        if raw.mgmt.is_none() {
            sink.error(
                Some(at),
                format!(
                    "host interface `{}` joins the management bridge, but the lab has no `mgmt:`",
                    h.host.value
                ),
            )
            .hint("add a top-level `mgmt: { subnet: ... }`, or remove `mgmt: true`");
        }
    }
    let mgmt = raw
        .mgmt
        .as_ref()
        .and_then(|m| mgmt(sink, lab, raw, l, &mut t, m, &mut out));
    let mgmt = match (mgmt, shared) {
        (Some(m), Some((network, ifindex, mac))) => Some(Mgmt {
            network: Some(network),
            ifindex,
            mac,
            ..m
        }),
        (m, _) => m,
    };
    (out, mgmt)
}

/// The ifindex and MAC of a shared network's bridge, from its name alone: every lab
/// that joins it plans the same ones.
pub fn shared_numbers(network: &str) -> (u32, [u8; 6]) {
    let ix = ifindex(&["ifindex", "@host", "mgmt", network], &mut HashSet::new());
    let mac = free_mac("@mgmt", "@host", network, &mut HashSet::new());
    (ix, mac)
}

/// Every subnet the lab itself uses: a host route to any of them would shadow the lab's.
fn lab_subnets(l: &Layout) -> Vec<IpNet> {
    let links = l.links.iter().flat_map(|x| x.subnets.iter().copied());
    let bridges = l.bridges.iter().flat_map(|b| b.subnets.iter().copied());
    let ifaces = l.nodes.iter().flat_map(|n| {
        n.loopback
            .iter()
            .chain(n.interfaces.iter().flat_map(|i| i.addresses.iter()))
            .chain(n.devices.iter().flat_map(|d| d.addresses.iter()))
            .map(IpNet::trunc)
    });
    links.chain(bridges).chain(ifaces).collect()
}

/// A subnet's addresses a host or node may hold: IPv6's subnet-router anycast (the
/// network address) is left out as IPv4's network and broadcast are.
fn hosts(net: &IpNet) -> impl Iterator<Item = IpAddr> + use<> {
    let network = net.network();
    net.hosts().filter(move |a| *a != network)
}

/// Whether `a` is one of [`hosts`] of `net`, without walking a /64.
fn is_host(net: &IpNet, a: IpAddr) -> bool {
    let v4_broadcast =
        matches!(net, IpNet::V4(n) if n.prefix_len() < 31 && a == IpAddr::V4(n.broadcast()));
    let v4_network = matches!(net, IpNet::V4(n) if n.prefix_len() < 31) && a == net.network();
    let v6_network = net.addr().is_ipv6() && a == net.network();
    net.contains(&a) && !v4_broadcast && !v4_network && !v6_network
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

impl Taken {
    /// Records a subnet on the host, refusing one that overlaps the lab's or another's.
    /// `owner` tells host links apart: the two ends of one share their subnet.
    fn subnet(&mut self, sink: &mut Sink, net: IpNet, span: Span, owner: usize, what: &str) {
        let net = net.trunc();
        if let Some(x) = self.lab.iter().find(|x| overlaps(x, &net)) {
            sink.error(
                Some(span),
                format!("{what}: {net} overlaps the lab's subnet {x}"),
            )
            .hint("the host would route that subnet to this link: use a subnet no link, bridge or loopback of the lab uses");
        } else if let Some((x, at, _)) = self
            .host_nets
            .iter()
            .find(|(x, _, o)| *o != owner && overlaps(x, &net))
        {
            {
                sink.error(
                    Some(span),
                    format!("{what}: {net} overlaps {x}, used by another host link"),
                )
                .note(*at, "used here")
                .hint("each link to the host needs a subnet of its own");
            }
        } else {
            self.host_nets.push((net, span, owner));
        }
    }

    /// Records a name in the host's namespace, refusing a bad or repeated one.
    fn host_name(&mut self, sink: &mut Sink, name: &str, span: Span) -> bool {
        if let Err(e) = check_ifname(name) {
            sink.error(Some(span), format!("host interface: {e}"));
            return false;
        }
        if let Some(at) = self.host_names.get(name) {
            sink.error(
                Some(span),
                format!("host interface `{name}` is named twice"),
            )
            .note(*at, "first here");
            return false;
        }
        self.host_names.insert(name.to_string(), span);
        true
    }

    /// Records a node's interface name, refusing a bad or taken one.
    fn node_iface(
        &mut self,
        sink: &mut Sink,
        l: &Layout,
        n: usize,
        iface: &str,
        span: Span,
    ) -> bool {
        if let Err(e) = check_ifname(iface) {
            sink.error(Some(span), e);
            return false;
        }
        if !self.node_if[n].insert(iface.to_string()) {
            sink.error(
                Some(span),
                format!(
                    "interface `{iface}` of node `{}` is already used by another link or interface",
                    l.nodes[n].name
                ),
            )
            .hint("name a free interface; an interface joins one link, and is not one of the node's `interfaces:`");
            return false;
        }
        true
    }
}

fn host_link(
    sink: &mut Sink,
    lab: &str,
    names: &HashMap<String, usize>,
    l: &Layout,
    t: &mut Taken,
    (owner, h): (usize, &RawHostLink),
) -> Option<HostLink> {
    let Some(&n) = names.get(&h.node.value) else {
        sink.error(
            Some(h.node.span),
            format!("unknown node `{}`", h.node.value),
        );
        return None;
    };
    let Some(iface) = &h.iface else {
        sink.error(Some(h.node.span), "a host link names the node's interface")
            .hint(format!("for example `{}:eth9`", h.node.value));
        return None;
    };
    let ok_node = t.node_iface(sink, l, n, &iface.value, iface.span);
    let ok_host = t.host_name(sink, &h.host.value, h.host.span);
    let what = format!("host link {}:{}", h.node.value, iface.value);
    // A port of the management bridge is on the management network's segment.
    let own_segment = h.mgmt.is_none().then_some(&h.addresses);
    for a in own_segment.into_iter().flatten().chain(&h.host_addresses) {
        t.subnet(sink, a.value, a.span, owner, &what);
    }
    if !(ok_node && ok_host) {
        return None;
    }
    let node = &l.nodes[n].name;
    Some(HostLink {
        node: n,
        iface: iface.value.clone(),
        ifindex: ifindex(&["ifindex", node, &iface.value], &mut t.node_ix[n]),
        mac: t.node_mac.derive(lab, n, node, &iface.value),
        addresses: h.addresses.iter().map(|a| a.value).collect(),
        host_iface: h.host.value.clone(),
        host_ifindex: ifindex(&["ifindex", "@host", lab, &h.host.value], &mut t.host_ix),
        host_mac: free_mac(lab, "@host", &h.host.value, &mut t.host_mac),
        host_addresses: h.host_addresses.iter().map(|a| a.value).collect(),
        mtu: h.mtu.as_ref().map(|m| m.value),
        mgmt: h.mgmt.is_some(),
        span: h.span,
        written: Vec::new(),
        written_at: None,
    })
}

/// The host-end name of a node's management link: `<lab>-<node>`, or `<lab>-` and hex
/// digits of a hash of the node when that is longer than 15 bytes or not a valid name.
/// The hashed form also stands in when a host link of the file already has the plain name.
pub fn mgmt_host_iface(lab: &str, node: &str, taken: &HashMap<String, Span>) -> String {
    let plain = format!("{lab}-{node}");
    if check_ifname(&plain).is_ok() && !taken.contains_key(&plain) {
        return plain;
    }
    let hex = format!("{:016x}", identity_hash(&["mgmt", lab, node]));
    // A lab name too long to leave room is an error reported elsewhere; a digit stands in.
    let room = 15usize.saturating_sub(lab.len() + 1).clamp(1, hex.len());
    format!("{lab}-{}", &hex[..room])
}

/// The subnets, in family order, with the host's address (the first) on each.
fn mgmt_subnets(sink: &mut Sink, m: &RawMgmt) -> Vec<(IpNet, crate::diag::Span)> {
    let mut nets = Vec::new();
    for (s, v6) in [(&m.subnet, false), (&m.subnet6, true)] {
        let Some(s) = s else { continue };
        if s.value.addr().is_ipv6() != v6 {
            let key = if v6 { "subnet6" } else { "subnet" };
            sink.error(
                Some(s.span),
                format!(
                    "`mgmt.{key}` must be an IPv{} prefix",
                    if v6 { 6 } else { 4 }
                ),
            );
            continue;
        }
        if hosts(&s.value).nth(1).is_none() {
            sink.error(
                Some(s.span),
                format!(
                    "`{}` holds no address for a node besides the host's",
                    s.value
                ),
            );
            continue;
        }
        nets.push((s.value, s.span));
    }
    nets
}

/// A node's written management addresses (IPv4, IPv6) and where.
type Written = (Option<IpNet>, Option<IpNet>, Span);

/// The per-node settings by node index, `None` for a node left out.
fn node_settings(raw: &RawTopology, l: &Layout) -> Vec<Option<Written>> {
    l.nodes
        .iter()
        .map(
            |n| match raw.node_mgmt.iter().find(|(k, _)| k.value == n.name) {
                Some((_, RawNodeMgmt::Off(_))) => None,
                Some((
                    _,
                    RawNodeMgmt::At {
                        span,
                        address,
                        address6,
                    },
                )) => Some((
                    address.as_ref().map(|a| a.value),
                    address6.as_ref().map(|a| a.value),
                    *span,
                )),
                None => Some((None, None, Span::default())),
            },
        )
        .collect()
}

fn mgmt(
    sink: &mut Sink,
    lab: &str,
    raw: &RawTopology,
    l: &Layout,
    t: &mut Taken,
    m: &RawMgmt,
    out: &mut Vec<HostLink>,
) -> Option<Mgmt> {
    let owner = m.network.as_ref().map_or(lab, |n| n.value.as_str());
    let bridge = m
        .bridge
        .as_ref()
        .map_or(format!("br-{owner}"), |b| b.value.clone());
    let bspan = m.bridge.as_ref().map_or(m.span, |b| b.span);
    let ok_bridge = t.host_name(sink, &bridge, bspan);
    let iface = m.iface.as_ref().map_or(DEFAULT_MGMT_IFACE, |i| &i.value);
    let ispan = m.iface.as_ref().map_or(m.span, |i| i.span);
    let nets = mgmt_subnets(sink, m);
    for (net, span) in &nets {
        t.subnet(sink, *net, *span, usize::MAX, "`mgmt`");
    }
    let host_addrs: Vec<IpNet> = nets
        .iter()
        .filter_map(|(n, _)| IpNet::new(hosts(n).next()?, n.prefix_len()).ok())
        .collect();
    let settings = node_settings(raw, l);
    // Written addresses first, so the ones handed out skip them.
    let mut used: HashSet<IpAddr> = host_addrs.iter().map(IpNet::addr).collect();
    written(sink, l, &nets, &settings, &mut used);
    let mut free: Vec<Box<dyn Iterator<Item = IpAddr>>> = nets
        .iter()
        .map(|(n, _)| Box::new(hosts(n)) as Box<dyn Iterator<Item = IpAddr>>)
        .collect();
    for (ix, s) in settings.iter().enumerate() {
        let Some((a4, a6, at)) = s else { continue };
        let node = &l.nodes[ix].name;
        if !t.node_iface(sink, l, ix, iface, ispan) {
            continue;
        }
        let mut addresses = Vec::new();
        for ((net, span), next) in nets.iter().zip(free.iter_mut()) {
            let written = [a4, a6]
                .into_iter()
                .flatten()
                .find(|a| a.addr().is_ipv6() == net.addr().is_ipv6());
            let addr = match written {
                Some(a) => Some(a.addr()),
                None => next.find(|a| !used.contains(a)),
            };
            match addr {
                Some(a) => {
                    used.insert(a);
                    addresses.push(IpNet::new(a, net.prefix_len()).expect("prefix of a subnet"));
                }
                None => {
                    sink.error(
                        Some(*span),
                        format!("`mgmt` subnet {net} has no address left for node `{node}`"),
                    );
                }
            }
        }
        let written = [a4, a6]
            .into_iter()
            .flatten()
            .filter_map(|a| addresses.iter().find(|x| x.addr() == a.addr()).copied())
            .collect();
        let host_iface = mgmt_host_iface(lab, node, &t.host_names);
        if !t.host_name(sink, &host_iface, ispan) {
            continue;
        }
        out.push(HostLink {
            node: ix,
            iface: iface.to_string(),
            ifindex: ifindex(&["ifindex", node, iface], &mut t.node_ix[ix]),
            mac: t.node_mac.derive(lab, ix, node, iface),
            addresses,
            host_ifindex: ifindex(&["ifindex", "@host", lab, &host_iface], &mut t.host_ix),
            host_mac: free_mac(lab, "@host", &host_iface, &mut t.host_mac),
            host_iface,
            host_addresses: Vec::new(),
            mtu: None,
            mgmt: true,
            span: m.span,
            written,
            written_at: (a4.is_some() || a6.is_some()).then_some(*at),
        });
    }
    ok_bridge.then(|| Mgmt {
        network: None,
        ifindex: ifindex(&["ifindex", "@host", lab, &bridge], &mut t.host_ix),
        mac: free_mac(lab, "@host", &bridge, &mut t.host_mac),
        bridge,
        addresses: host_addrs,
        span: m.span,
    })
}

/// Checks the addresses nodes wrote (in a subnet of their family, free, not the host's)
/// and reserves them in `used`.
fn written(
    sink: &mut Sink,
    l: &Layout,
    nets: &[(IpNet, Span)],
    settings: &[Option<Written>],
    used: &mut HashSet<IpAddr>,
) {
    for (ix, s) in settings.iter().enumerate() {
        let Some((a4, a6, span)) = s else { continue };
        for a in [a4, a6].into_iter().flatten() {
            let Some((net, _)) = nets
                .iter()
                .find(|(n, _)| n.addr().is_ipv6() == a.addr().is_ipv6())
            else {
                sink.error(
                    Some(*span),
                    format!(
                        "node `{}`: mgmt address {} has no `mgmt` subnet of its family",
                        l.nodes[ix].name,
                        a.addr()
                    ),
                );
                continue;
            };
            if !is_host(net, a.addr()) || !used.insert(a.addr()) {
                sink.error(
                    Some(*span),
                    format!(
                        "node `{}`: mgmt address {} is not a free address of {net}",
                        l.nodes[ix].name,
                        a.addr()
                    ),
                )
                .hint("the subnet's first address is the host's; each node needs its own");
            }
        }
    }
}
