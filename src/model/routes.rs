//! Route resolution: every next hop becomes an address and an egress interface on a
//! directly connected subnet, or the route is rejected with the node's subnets as a hint.
//! `routing: static` computes shortest-path routes to every subnet and loopback.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::diag::{Sink, did_you_mean};
use crate::model::kinds::RouteKind;
use crate::model::{Bridge, End, NextHop, Node, Route};
use crate::spec::raw::{RawRoute, RawVia, RouteDest};

/// A neighbour reached over one of a node's interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjacency {
    pub iface: usize,
    pub node: usize,
    pub peer_iface: usize,
}

/// Every (my interface, neighbour, neighbour interface) of `node`, via links and bridges
/// (every member of the bridges joined to its own, which are one segment).
pub fn adjacencies(nodes: &[Node], bridges: &[Bridge], node: usize) -> Vec<Adjacency> {
    let mut out = Vec::new();
    for (i, iface) in nodes[node].interfaces.iter().enumerate() {
        match iface.peer {
            End::Node { node: n, iface: p } => out.push(Adjacency {
                iface: i,
                node: n,
                peer_iface: p,
            }),
            End::Uplink { .. } => unreachable!("an uplink joins two bridges"),
            End::Bridge { bridge, .. } => {
                let seg = crate::model::segment(bridges, bridge);
                for port in seg.iter().flat_map(|&b| &bridges[b].ports) {
                    if !(port.node == node && port.iface == i) {
                        out.push(Adjacency {
                            iface: i,
                            node: port.node,
                            peer_iface: port.iface,
                        });
                    }
                }
            }
        }
    }
    out
}

fn family_net(v6: bool) -> IpNet {
    if v6 {
        "::/0".parse().expect("valid")
    } else {
        "0.0.0.0/0".parse().expect("valid")
    }
}

/// The prefixes a route without next hops covers: `default` means both families on a
/// node that has IPv6.
fn destinations(to: &RouteDest, has_v6: bool) -> Vec<IpNet> {
    match to {
        RouteDest::Prefix(p) => vec![*p],
        RouteDest::Default4 => vec![family_net(false)],
        RouteDest::Default6 => vec![family_net(true)],
        RouteDest::Default if has_v6 => vec![family_net(false), family_net(true)],
        RouteDest::Default => vec![family_net(false)],
    }
}

/// The interface of `node` whose subnet holds `addr`, unless `addr` is the node's own.
fn connected(node: &Node, addr: IpAddr) -> Result<Option<usize>, ()> {
    for (i, (_, _, addrs)) in own_ifaces(node).enumerate() {
        for a in addrs {
            if a.addr() == addr {
                return Err(());
            }
            if a.contains(&addr) {
                return Ok(Some(i));
            }
        }
    }
    Ok(None)
}

/// A node's interfaces as its own routes see them: (name, ifindex, addresses) of its
/// link ends, then of its devices (dummies, vlans, macvlans). A route's interface is an
/// index into this sequence.
fn own_ifaces(node: &Node) -> impl Iterator<Item = (&str, u32, &[IpNet])> {
    let links = node
        .interfaces
        .iter()
        .map(|i| (i.name.as_str(), i.ifindex, i.addresses.as_slice()));
    let devices = node
        .devices
        .iter()
        .map(|d| (d.name.as_str(), d.ifindex, d.addresses.as_slice()));
    links.chain(devices)
}

/// The name and ifindex of the node's interface `i` (see [`own_ifaces`]).
fn own_iface(node: &Node, i: usize) -> (String, u32) {
    own_ifaces(node)
        .nth(i)
        .map(|(n, x, _)| (n.to_string(), x))
        .expect("an index from own_ifaces")
}

fn subnets_hint(node: &Node) -> String {
    let nets: Vec<String> = own_ifaces(node)
        .flat_map(|(name, _, addrs)| addrs.iter().map(move |a| format!("{} ({name})", a.trunc())))
        .collect();
    if nets.is_empty() {
        format!("node `{}` has no addressed interfaces", node.name)
    } else {
        format!(
            "the connected subnets of `{}` are: {}",
            node.name,
            nets.join(", ")
        )
    }
}

/// A resolved next hop before the route's family is fixed.
enum Hop {
    Addr(IpAddr, usize),
    /// A neighbour: its interface addresses on the shared segment, and my interface.
    Neighbour(Vec<IpAddr>, usize, String),
}

pub struct Resolver<'a> {
    pub nodes: &'a [Node],
    pub bridges: &'a [Bridge],
    pub names: &'a HashMap<String, usize>,
}

impl Resolver<'_> {
    fn hop(&self, sink: &mut Sink, node: usize, via: &RawVia) -> Option<Hop> {
        let me = &self.nodes[node];
        let text = via.target.value.as_str();
        if let Ok(addr) = text.parse::<IpAddr>() {
            return match connected(me, addr) {
                Ok(Some(i)) => Some(Hop::Addr(addr, i)),
                Ok(None) => {
                    sink.error(
                        Some(via.target.span),
                        format!(
                            "next hop {addr} of node `{}` is not on a connected subnet",
                            me.name
                        ),
                    )
                    .hint(subnets_hint(me));
                    None
                }
                Err(()) => {
                    sink.error(
                        Some(via.target.span),
                        format!("next hop {addr} is an address of node `{}` itself", me.name),
                    );
                    None
                }
            };
        }
        let (peer_name, peer_if) = match text.split_once(':') {
            Some((n, i)) => (n, Some(i)),
            None => (text, None),
        };
        let Some(&peer) = self.names.get(peer_name) else {
            let d = sink.error(
                Some(via.target.span),
                format!("next hop `{text}` is neither an address nor a node"),
            );
            if let Some(s) = did_you_mean(peer_name, self.names.keys().map(String::as_str)) {
                d.hint(format!("did you mean `{s}`?"));
            }
            return None;
        };
        let adj = adjacencies(self.nodes, self.bridges, node);
        let found: Vec<&Adjacency> = adj
            .iter()
            .filter(|a| a.node == peer)
            .filter(|a| {
                peer_if.is_none_or(|pi| self.nodes[peer].interfaces[a.peer_iface].name == pi)
            })
            .collect();
        match found.as_slice() {
            [a] => {
                let pi = &self.nodes[peer].interfaces[a.peer_iface];
                Some(Hop::Neighbour(
                    pi.addresses.iter().map(IpNet::addr).collect(),
                    a.iface,
                    format!("{}:{}", self.nodes[peer].name, pi.name),
                ))
            }
            [] => {
                let mut names: Vec<&str> = adj
                    .iter()
                    .map(|a| self.nodes[a.node].name.as_str())
                    .collect();
                names.dedup();
                sink.error(
                    Some(via.target.span),
                    format!("next hop `{text}` is not a neighbour of node `{}`", me.name),
                )
                .hint(if names.is_empty() {
                    format!("node `{}` has no links", me.name)
                } else {
                    format!("neighbours of `{}`: {}", me.name, names.join(", "))
                });
                None
            }
            many => {
                let opts: Vec<String> = many
                    .iter()
                    .map(|a| {
                        format!(
                            "`{peer_name}:{}`",
                            self.nodes[peer].interfaces[a.peer_iface].name
                        )
                    })
                    .collect();
                sink.error(
                    Some(via.target.span),
                    format!(
                        "next hop `{text}` is ambiguous: node `{}` shares {} links with it",
                        me.name,
                        many.len()
                    ),
                )
                .hint(format!(
                    "name the neighbour's interface: {}",
                    opts.join(" or ")
                ));
                None
            }
        }
    }

    /// Resolves the routes written for `node` into kernel-ready routes.
    pub fn routes(&self, sink: &mut Sink, node: usize, raw: &[RawRoute]) -> Vec<Route> {
        let me = &self.nodes[node];
        let mut out: Vec<Route> = Vec::new();
        let mut seen: HashMap<(IpNet, Option<u32>), crate::diag::Span> = HashMap::new();
        for r in raw {
            let before = out.len();
            self.route(sink, node, r, &mut out);
            for route in &out[before..] {
                if let Some(first) = seen.insert((route.dst, route.metric), r.span) {
                    sink.error(
                        Some(r.to.span),
                        format!("node `{}` has two routes to {} with the same metric", me.name, route.dst),
                    )
                    .note(first, "the first one")
                    .hint("merge them into one route with several `via`, or give them different `metric`s");
                }
            }
        }
        out
    }

    /// One written route: a route without next hops (blackhole and friends, or `dev`
    /// only), or one per address family its next hops cover. Problems go to `sink` and
    /// leave nothing in `out` for that route.
    fn route(&self, sink: &mut Sink, node: usize, r: &RawRoute, out: &mut Vec<Route>) {
        let me = &self.nodes[node];
        let metric = r.metric.as_ref().map(|m| m.value);
        let Some(dev) = route_dev(sink, me, r) else {
            return;
        };
        let has_v6 = own_ifaces(me)
            .flat_map(|(_, _, a)| a)
            .any(|a| a.addr().is_ipv6())
            || me.loopback.iter().any(|a| a.addr().is_ipv6());
        if r.kind.value != RouteKind::Unicast || r.via.is_empty() {
            let Some((kind, dev)) = hopless(sink, me, r, dev) else {
                return;
            };
            for dst in destinations(&r.to.value, has_v6) {
                out.push(Route {
                    dst,
                    kind,
                    nexthops: Vec::new(),
                    dev: dev.as_ref().map(|(name, _)| name.clone()),
                    dev_ifindex: dev.as_ref().map(|(_, ifindex)| *ifindex),
                    metric,
                });
            }
            return;
        }
        let mut hops = Vec::new();
        for v in &r.via {
            match self.hop(sink, node, v) {
                Some(h) => hops.push((h, v)),
                None => return,
            }
        }
        let Some(families) = families(sink, me, r, &hops) else {
            return;
        };
        for v6 in families {
            let dst = match &r.to.value {
                RouteDest::Prefix(p) => *p,
                _ => family_net(v6),
            };
            let Some(nexthops) = nexthops(sink, me, r, dst, &hops, dev) else {
                return;
            };
            out.push(Route {
                dst,
                kind: RouteKind::Unicast,
                nexthops,
                dev: None,
                dev_ifindex: None,
                metric,
            });
        }
    }
}

/// A route's `dev`, as the index of the node's own interface: `Some(None)` without one,
/// `None` (reported) when the node has no such interface.
fn route_dev(sink: &mut Sink, me: &Node, r: &RawRoute) -> Option<Option<usize>> {
    let Some(d) = &r.dev else {
        return Some(None);
    };
    if let Some(i) = own_ifaces(me).position(|(n, _, _)| n == d.value) {
        return Some(Some(i));
    }
    let d2 = sink.error(
        Some(d.span),
        format!("node `{}` has no interface `{}`", me.name, d.value),
    );
    if let Some(s) = did_you_mean(&d.value, own_ifaces(me).map(|(n, _, _)| n)) {
        d2.hint(format!("did you mean `{s}`?"));
    }
    None
}

/// A route without next hops: its kind, and its interface's name and ifindex when it
/// has one. A blackhole, unreachable or prohibit route takes neither `via` nor `dev`; a
/// unicast one without `via` needs `dev`.
fn hopless(
    sink: &mut Sink,
    me: &Node,
    r: &RawRoute,
    dev: Option<usize>,
) -> Option<(RouteKind, Option<(String, u32)>)> {
    if r.kind.value != RouteKind::Unicast {
        if !r.via.is_empty() || dev.is_some() {
            sink.error(
                Some(r.span),
                format!("a {:?} route takes no `via` or `dev`", r.kind.value).to_lowercase(),
            );
            return None;
        }
        return Some((r.kind.value, None));
    }
    let Some(dev) = dev else {
        sink.error(
            Some(r.span),
            "a route needs `via` (a next hop) or `dev` (an interface)",
        )
        .hint("for example `{ to: default, via: r1 }`, or `type: blackhole` to drop the traffic");
        return None;
    };
    let (name, ifindex) = own_iface(me, dev);
    Some((RouteKind::Unicast, Some((name, ifindex))))
}

/// Which address families (`true` for IPv6) a route with next hops covers: its
/// prefix's, or for `default` those its next hops have (an address written as the next
/// hop decides; a neighbour named must have the family on the shared link).
fn families(
    sink: &mut Sink,
    me: &Node,
    r: &RawRoute,
    hops: &[(Hop, &RawVia)],
) -> Option<Vec<bool>> {
    let families: Vec<bool> = match &r.to.value {
        RouteDest::Prefix(p) => vec![p.addr().is_ipv6()],
        RouteDest::Default4 => vec![false],
        RouteDest::Default6 => vec![true],
        RouteDest::Default => {
            let explicit: BTreeSet<bool> = hops
                .iter()
                .filter_map(|(h, _)| match h {
                    Hop::Addr(a, _) => Some(a.is_ipv6()),
                    _ => None,
                })
                .collect();
            match explicit.len() {
                0 => [false, true]
                    .into_iter()
                    .filter(|v6| {
                        hops.iter().all(|(h, _)| match h {
                            Hop::Neighbour(addrs, _, _) => addrs.iter().any(|a| a.is_ipv6() == *v6),
                            Hop::Addr(..) => true,
                        })
                    })
                    .collect(),
                1 => explicit.into_iter().collect(),
                _ => {
                    sink.error(Some(r.span), "the next hops of one route mix IPv4 and IPv6");
                    return None;
                }
            }
        }
    };
    if families.is_empty() {
        sink.error(
            Some(r.span),
            format!(
                "node `{}` shares no address family with every next hop of this route",
                me.name
            ),
        );
        return None;
    }
    Some(families)
}

/// The next hops of the route to `dst`, each an address of `dst`'s family on one of the
/// node's interfaces (`dev`'s, when the route names one), none twice.
fn nexthops(
    sink: &mut Sink,
    me: &Node,
    r: &RawRoute,
    dst: IpNet,
    hops: &[(Hop, &RawVia)],
    dev: Option<usize>,
) -> Option<Vec<NextHop>> {
    let v6 = dst.addr().is_ipv6();
    let mut nexthops = Vec::new();
    for (h, v) in hops {
        let (gw, i) = match h {
            Hop::Addr(a, i) => {
                if a.is_ipv6() != v6 {
                    sink.error(
                        Some(v.target.span),
                        format!("next hop {a} is not in the family of destination {dst}"),
                    );
                    return None;
                }
                (*a, *i)
            }
            Hop::Neighbour(addrs, i, who) => {
                match addrs.iter().find(|a| a.is_ipv6() == v6) {
                    Some(a) => (*a, *i),
                    None => {
                        let fam = if v6 { "IPv6" } else { "IPv4" };
                        sink.error(
                        Some(v.target.span),
                        format!("next hop `{who}` has no {fam} address for the route to {dst}"),
                    )
                    .hint("give the shared link addresses of that family, or name a next hop address");
                        return None;
                    }
                }
            }
        };
        if let Some(d) = dev
            && d != i
        {
            sink.error(
                Some(v.target.span),
                format!(
                    "next hop {gw} is reached through `{}`, not `{}`",
                    own_iface(me, i).0,
                    own_iface(me, d).0
                ),
            );
            return None;
        }
        let (name, ifindex) = own_iface(me, i);
        nexthops.push(NextHop {
            gateway: gw,
            dev: name,
            ifindex,
            weight: v.weight.as_ref().map(|w| w.value).unwrap_or(0),
        });
    }
    let mut keys: Vec<_> = nexthops.iter().map(|n| (n.gateway, n.ifindex)).collect();
    keys.sort();
    keys.dedup();
    if keys.len() != nexthops.len() {
        sink.error(
            Some(r.span),
            format!("the route to {dst} lists the same next hop twice"),
        );
        return None;
    }
    Some(nexthops)
}

/// The most (node, destination) pairs `routing: static` computes routes for: about
/// 750 MB of routes, a leaf-spine fabric of 1,000 nodes. Time and memory grow with the
/// pairs (each node gets a route to each subnet), so a small file with 20,000 nodes in
/// a chain would otherwise take 400 million routes and the host's memory, at `validate`.
pub const MAX_STATIC_PAIRS: usize = 4_000_000;

/// Shortest-path static routes for every node to every subnet and loopback it is not
/// attached to. Ties go to the node declared first (as destination and as next hop), so
/// the result is deterministic and predictable from the file. `Err` with the number of
/// (node, destination) pairs when there are more than [`MAX_STATIC_PAIRS`], before any
/// is computed.
pub fn static_routes(nodes: &[Node], bridges: &[Bridge]) -> Result<Vec<Vec<Route>>, usize> {
    let adj: Vec<Vec<Adjacency>> = (0..nodes.len())
        .map(|n| adjacencies(nodes, bridges, n))
        .collect();
    // Destinations: (prefix, nodes attached to it).
    let mut dests: Vec<(IpNet, Vec<usize>)> = Vec::new();
    let mut index: HashMap<IpNet, usize> = HashMap::new();
    for (n, node) in nodes.iter().enumerate() {
        let nets = node
            .interfaces
            .iter()
            .flat_map(|i| i.addresses.iter().map(IpNet::trunc))
            .chain(node.loopback.iter().map(IpNet::trunc))
            // A node's dummies, vlans and macvlans are reached through the node.
            .chain(
                node.devices
                    .iter()
                    .flat_map(|d| d.addresses.iter().map(IpNet::trunc)),
            );
        for net in nets {
            let i = *index.entry(net).or_insert_with(|| {
                dests.push((net, Vec::new()));
                dests.len() - 1
            });
            if !dests[i].1.contains(&n) {
                dests[i].1.push(n);
            }
        }
    }
    let pairs = nodes.len().saturating_mul(dests.len());
    if pairs > MAX_STATIC_PAIRS {
        return Err(pairs);
    }
    let mut all = Vec::new();
    for s in 0..nodes.len() {
        // BFS from s; first[n] = the adjacency of s that starts the path to n.
        let mut first: Vec<Option<Adjacency>> = vec![None; nodes.len()];
        let mut dist = vec![usize::MAX; nodes.len()];
        dist[s] = 0;
        let mut q = VecDeque::from([s]);
        // Among equally short paths the first hop is the neighbour declared first (then
        // the lower interface): a node of the next layer is only popped once every node
        // of this layer has offered its first hop.
        let rank = |a: &Adjacency| (a.node, a.iface);
        while let Some(u) = q.pop_front() {
            for a in &adj[u] {
                // Only addressed hops can forward.
                if nodes[a.node].interfaces[a.peer_iface].addresses.is_empty() {
                    continue;
                }
                let offer = if u == s { Some(*a) } else { first[u] };
                if dist[a.node] == usize::MAX {
                    dist[a.node] = dist[u] + 1;
                    first[a.node] = offer;
                    q.push_back(a.node);
                } else if dist[a.node] == dist[u] + 1
                    && let (Some(o), Some(f)) = (offer, first[a.node])
                    && rank(&o) < rank(&f)
                {
                    first[a.node] = offer;
                }
            }
        }
        let mut routes = Vec::new();
        for (net, attached) in &dests {
            if attached.contains(&s) {
                continue;
            }
            let Some(&target) = attached
                .iter()
                .filter(|n| dist[**n] != usize::MAX)
                .min_by_key(|n| (dist[**n], **n))
            else {
                continue;
            };
            let Some(hop) = first[target] else { continue };
            let v6 = net.addr().is_ipv6();
            let peer = &nodes[hop.node].interfaces[hop.peer_iface];
            let Some(gw) = peer
                .addresses
                .iter()
                .map(IpNet::addr)
                .find(|a| a.is_ipv6() == v6)
            else {
                continue;
            };
            let iface = &nodes[s].interfaces[hop.iface];
            routes.push(Route {
                dst: *net,
                kind: RouteKind::Unicast,
                nexthops: vec![NextHop {
                    gateway: gw,
                    dev: iface.name.clone(),
                    ifindex: iface.ifindex,
                    weight: 0,
                }],
                dev: None,
                dev_ifindex: None,
                metric: None,
            });
        }
        all.push(routes);
    }
    Ok(all)
}
