//! One attempt of each kind of check: what it probes and how it words what it saw.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;

use super::{Attempt, Captured, Context, cmd, route};
use crate::model::kinds::{Echo, Family};
use crate::model::{Check, CheckBody, Target};
use crate::plan::Name;
use crate::probe::{
    self,
    icmp::{IcmpError, PingResult},
};

/// A pair of a reach check: from, to, the address probed.
#[derive(Debug, Clone)]
pub struct Pair {
    from: usize,
    /// The node probed, or the one owning the address probed (None: not the lab's).
    to: Option<usize>,
    /// The target as written: a node, or an address.
    target: Target,
    addr: Option<IpAddr>,
    v6: bool,
}

pub enum State<'c> {
    Reach {
        pairs: Vec<Pair>,
        ok: Vec<bool>,
        /// The last "unreachable" a pair got: routers rate-limit ICMP errors, so a later
        /// attempt may hear nothing, and the network's own answer is the better reason.
        rejected: Vec<Option<(IpAddr, IcmpError)>>,
        expect_ok: bool,
        /// `size`, `df`, `ttl`: how the echo requests are built.
        echo: Echo,
        /// A note for a failure: the pairs need more neighbour entries than the host
        /// allows, or there are no pairs because nodes have no address.
        note: Option<String>,
    },
    Other(&'c Check),
}

/// The host's cap on neighbour entries: the ARP and ND tables are shared by every network
/// namespace, and the kernel refuses new entries past `gc_thresh3`.
fn neigh_limit(v6: bool) -> Option<usize> {
    let path = if v6 {
        "/proc/sys/net/ipv6/neigh/default/gc_thresh3"
    } else {
        "/proc/sys/net/ipv4/neigh/default/gc_thresh3"
    };
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Pairs whose ends share a bridge: each needs its own neighbour entry.
fn same_segment(ctx: &Context<'_>, a: usize, b: usize) -> bool {
    let bridges = |n: usize| {
        ctx.topology.nodes[n]
            .interfaces
            .iter()
            .filter_map(|i| match i.peer {
                crate::model::End::Bridge { bridge, .. } => Some(bridge),
                _ => None,
            })
    };
    bridges(a).any(|x| bridges(b).any(|y| x == y))
}

/// Routed link ends of the lab with an address of the family: traffic across the lab
/// needs a neighbour entry for the peer of each (the ARP/ND tables are host-wide).
fn routed_ends(t: &crate::model::Topology, v6: bool) -> usize {
    t.nodes
        .iter()
        .flat_map(|n| n.interfaces.iter())
        .filter(|i| matches!(i.peer, crate::model::End::Node { .. }))
        .filter(|i| i.addresses.iter().any(|a| a.addr().is_ipv6() == v6))
        .count()
}

/// When a reach check has no pair to probe: the nodes it names that have no address at
/// all (a node with no link, or only unnumbered ones), which is the usual reason.
fn unaddressed(ctx: &Context<'_>, from: &[usize], to: &[Target]) -> Option<String> {
    let t = ctx.topology;
    let mut names: Vec<&str> = Vec::new();
    let targets = to.iter().filter_map(|t| match t {
        Target::Node(n) => Some(*n),
        Target::Addr(_) => None,
    });
    for n in from.iter().copied().chain(targets) {
        let none = t.primary_address(n, false).is_none() && t.primary_address(n, true).is_none();
        if none && !names.contains(&name(ctx, n)) {
            names.push(name(ctx, n));
        }
    }
    (!names.is_empty()).then(|| {
        format!(
            "no address on {}: give it a link with addresses, or a `loopback`",
            names.join(", ")
        )
    })
}

fn fam(v6: bool) -> &'static str {
    if v6 { "IPv6" } else { "IPv4" }
}

impl<'c> State<'c> {
    pub fn new(ctx: &Context<'_>, check: &'c Check) -> State<'c> {
        let CheckBody::Reach {
            from,
            to,
            family,
            expect_ok,
            echo,
        } = &check.body
        else {
            return State::Other(check);
        };
        let t = ctx.topology;
        let has = |n: usize, v6: bool| t.primary_address(n, v6).is_some();
        let mut pairs = Vec::new();
        for &a in from {
            for &target in to {
                let b = match target {
                    Target::Node(b) if b == a => continue,
                    Target::Node(b) => b,
                    Target::Addr(addr) => {
                        pairs.push(Pair {
                            from: a,
                            to: ctx.owners.get(&addr).copied(),
                            target,
                            addr: Some(addr),
                            v6: addr.is_ipv6(),
                        });
                        continue;
                    }
                };
                let fams: Vec<bool> = match family {
                    Family::Ipv4 => vec![false],
                    Family::Ipv6 => vec![true],
                    // Both: every family the two ends have.
                    Family::Both => [false, true]
                        .into_iter()
                        .filter(|v6| has(a, *v6) && has(b, *v6))
                        .collect(),
                };
                for v6 in fams {
                    pairs.push(Pair {
                        from: a,
                        to: Some(b),
                        target,
                        addr: t.primary_address(b, v6),
                        v6,
                    });
                }
            }
        }
        let ok = vec![false; pairs.len()];
        let mut note = None;
        for v6 in [false, true] {
            let shared = pairs
                .iter()
                .filter(|p| p.v6 == v6 && p.to.is_some_and(|to| same_segment(ctx, p.from, to)))
                .count();
            let routed = routed_ends(ctx.topology, v6);
            let Some(limit) = neigh_limit(v6) else {
                continue;
            };
            if shared + routed <= limit {
                continue;
            }
            let key = if v6 {
                "net.ipv6.neigh.default.gc_thresh3"
            } else {
                "net.ipv4.neigh.default.gc_thresh3"
            };
            note = Some(format!(
                "note: these pairs need about {} {} neighbour entries ({shared} for pairs sharing a bridge, {routed} for routed link ends), over the host-wide limit of {limit} ({key}, shared by all namespaces); probe fewer pairs or raise that limit",
                shared + routed,
                fam(v6)
            ));
        }
        if pairs.is_empty() {
            note = unaddressed(ctx, from, to);
        }
        State::Reach {
            rejected: vec![None; pairs.len()],
            pairs,
            ok,
            expect_ok: *expect_ok,
            echo: *echo,
            note,
        }
    }

    /// One poll, with what a `cmd` check's command printed (other checks print nothing).
    pub async fn attempt(
        &mut self,
        ctx: &Context<'_>,
        budget: Duration,
    ) -> (Attempt, Option<Captured>) {
        let a = match self {
            State::Reach {
                pairs,
                ok,
                rejected,
                expect_ok,
                echo,
                note,
            } => {
                let probe = Probe {
                    expect_ok: *expect_ok,
                    echo,
                    budget,
                };
                let mut a = reach(ctx, pairs, ok, rejected, &probe).await;
                if let (false, Some(n)) = (a.holds, note) {
                    a.seen = format!("{}; {n}", a.seen);
                }
                a
            }
            State::Other(check) => match &check.body {
                CheckBody::Tcp {
                    from,
                    host,
                    port,
                    expect_ok,
                } => tcp(ctx, *from, host, *port, *expect_ok, budget).await,
                CheckBody::Route {
                    node,
                    dst,
                    via,
                    dev,
                    table,
                    vrf,
                    absent,
                } => {
                    let want = route::Want {
                        dsts: dst,
                        via,
                        dev: dev.as_deref(),
                        table: *table,
                        vrf: vrf.as_deref(),
                        absent: *absent,
                    };
                    route::route(ctx, *node, &want).await
                }
                CheckBody::Path {
                    from,
                    to,
                    hops,
                    family,
                } => path(ctx, *from, *to, hops, *family, budget).await,
                CheckBody::Cmd {
                    node,
                    run,
                    exit,
                    stdout,
                    stderr,
                    json,
                } => {
                    let want = cmd::Want {
                        exit: *exit,
                        stdout: stdout.as_deref(),
                        stderr: stderr.as_deref(),
                        json: json.as_ref(),
                    };
                    let (a, printed) = cmd::cmd(ctx, *node, run, &want, check.timeout).await;
                    return (a, printed);
                }
                CheckBody::Reach { .. } => unreachable!("reach checks have their own state"),
                // Steps are done once by `actions::perform`, never polled.
                CheckBody::Action(_) => Attempt {
                    holds: false,
                    seen: "a scenario step is not a check".into(),
                },
            },
        };
        (a, None)
    }
}

pub(super) fn name<'a>(ctx: &'a Context<'_>, n: usize) -> &'a str {
    &ctx.topology.nodes[n].name
}

pub(super) fn netns(ctx: &Context<'_>, n: usize) -> Name {
    Name::from(ctx.topology.nodes[n].netns.as_str())
}

fn list(items: &[String], limit: usize) -> String {
    let mut s = items
        .iter()
        .take(limit)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > limit {
        s.push_str(&format!("; and {} more", items.len() - limit));
    }
    s
}

/// `a -> c (10.255.0.3)` for a node target; `a -> 10.0.0.1 (r1)` for an address, with
/// its owner, or `(outside the lab)`.
fn pair_text(ctx: &Context<'_>, p: &Pair) -> String {
    let from = name(ctx, p.from);
    match (p.target, p.to) {
        (Target::Node(_), Some(to)) => format!(
            "{from} -> {} ({})",
            name(ctx, to),
            p.addr.map(|a| a.to_string()).unwrap_or_default()
        ),
        (_, Some(owner)) => format!(
            "{from} -> {} ({})",
            p.addr.map(|a| a.to_string()).unwrap_or_default(),
            name(ctx, owner)
        ),
        (_, None) => format!(
            "{from} -> {} (outside the lab)",
            p.addr.map(|a| a.to_string()).unwrap_or_default()
        ),
    }
}

/// An ICMP error as a failure says it: what, at which address, the lab node that owns
/// that address (or the sender itself), and the likely cause.
fn said(ctx: &Context<'_>, p: &Pair, echo: &Echo, by: IpAddr, error: IcmpError) -> String {
    let who = match ctx.owners.get(&by) {
        Some(&n) if n == p.from => format!("{}, the sender itself", name(ctx, n)),
        Some(&n) => name(ctx, n).to_string(),
        None => "not a lab address".into(),
    };
    let mut hint = error.hint().to_string();
    match (error, echo.ttl) {
        (IcmpError::TooBig { mtu }, _) => hint.push_str(&fits(echo, p.v6, mtu)),
        // The check chose the TTL: running out is the likely story, not a loop.
        (IcmpError::TimeExceeded, Some(t)) => {
            hint = format!(
                "the check's `ttl: {t}` ran out there: the destination is more than {t} {} away, or the path loops",
                if t == 1 { "hop" } else { "hops" }
            )
        }
        _ => {}
    }
    format!("{} at {by} ({who}) ({hint})", error.describe())
}

/// For a packet too big: how big the probe was and the largest `size` that would fit.
fn fits(echo: &Echo, v6: bool, mtu: u32) -> String {
    let size = echo.size.unwrap_or(Echo::DEFAULT_SIZE);
    let headers = Echo::packet_size(0, v6);
    let mut s = format!(
        ": the probe was {} bytes ({size} of payload)",
        Echo::packet_size(size, v6)
    );
    if mtu > headers {
        s.push_str(&format!(", `size: {}` fits", mtu - headers));
    }
    s
}

/// One attempt's settings of a reach check.
struct Probe<'e> {
    expect_ok: bool,
    echo: &'e Echo,
    budget: Duration,
}

/// Pings every pending pair once per attempt, one socket per source node, all sources at
/// once. A pair that answered stays answered.
async fn reach(
    ctx: &Context<'_>,
    pairs: &[Pair],
    ok: &mut [bool],
    rejected: &mut [Option<(IpAddr, IcmpError)>],
    probe: &Probe<'_>,
) -> Attempt {
    let Probe {
        expect_ok,
        echo,
        budget,
    } = *probe;
    let mut by_source: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        if (expect_ok && ok[i]) || p.addr.is_none() {
            continue;
        }
        match by_source.iter_mut().find(|(s, _)| *s == p.from) {
            Some((_, v)) => v.push(i),
            None => by_source.push((p.from, vec![i])),
        }
    }
    let interval = Duration::from_millis(200).min(budget);
    let probes = by_source.iter().map(|(src, idx)| {
        let targets: Vec<IpAddr> = idx.iter().filter_map(|i| pairs[*i].addr).collect();
        let ns = netns(ctx, *src);
        async move {
            let r = probe::icmp::ping_many(ctx.kernel, &ns, &targets, echo, budget, interval).await;
            (idx, r)
        }
    });
    let mut problems = Vec::new();
    let mut answered = Vec::new();
    // Pairs that got no answer because they could not be probed at all.
    let mut unprobed = Vec::new();
    for (idx, r) in join_all(probes).await {
        match r {
            Ok(results) => {
                for (i, res) in idx.iter().zip(results) {
                    let p = &pairs[*i];
                    let what = pair_text(ctx, p);
                    match res {
                        PingResult::Reply(rtt) => {
                            ok[*i] = true;
                            answered.push(format!(
                                "{what} replied in {:.2} ms",
                                rtt.as_secs_f64() * 1000.0
                            ));
                        }
                        PingResult::Error(by, error) => {
                            rejected[*i] = Some((by, error));
                            problems.push(format!(
                                "{what}: no reply: {}",
                                said(ctx, p, echo, by, error)
                            ))
                        }
                        PingResult::NoReply(send) => problems.push(match (rejected[*i], send) {
                            (Some((by, error)), _) => format!(
                                "{what}: no reply: {} (on an earlier attempt)",
                                said(ctx, p, echo, by, error)
                            ),
                            (None, Some(errno)) => {
                                format!("{what}: no reply: {}", probe::icmp::send_refused(errno))
                            }
                            (None, None) => format!("{what}: no reply"),
                        }),
                    }
                }
            }
            Err(e) => {
                let e = format!("cannot probe from {}: {e}", name(ctx, pairs[idx[0]].from));
                problems.push(e.clone());
                unprobed.push(e);
            }
        }
    }
    for (i, p) in pairs.iter().enumerate() {
        if p.addr.is_none() {
            let to = p.to.map(|t| name(ctx, t)).unwrap_or("?");
            let e = format!("{to} has no {} address to probe", fam(p.v6));
            problems.push(e.clone());
            unprobed.push(e);
            ok[i] = false;
        }
    }
    verdict(
        expect_ok,
        ok,
        &Findings {
            problems,
            answered,
            unprobed,
        },
    )
}

/// What one round of pings found, worded per pair.
struct Findings {
    problems: Vec<String>,
    answered: Vec<String>,
    /// Pairs that could not be probed at all.
    unprobed: Vec<String>,
}

/// Whether a reach check holds after a round: every pair answered (`expect: ok`), or none
/// did and every pair was probed (`expect: fail`).
fn verdict(expect_ok: bool, ok: &[bool], f: &Findings) -> Attempt {
    let Findings {
        problems,
        answered,
        unprobed,
    } = f;
    if expect_ok {
        let failing = ok.iter().filter(|o| !**o).count();
        Attempt {
            holds: failing == 0 && !ok.is_empty(),
            seen: if ok.is_empty() {
                "no pairs to probe (the selectors matched one node, or nodes without addresses)"
                    .into()
            } else {
                format!(
                    "{failing} of {} pairs unreachable: {}",
                    ok.len(),
                    list(problems, 5)
                )
            },
        }
    } else if !unprobed.is_empty() || ok.is_empty() {
        // Silence proves nothing when the probe never went out.
        Attempt {
            holds: false,
            seen: if ok.is_empty() {
                "no pairs to probe (the selectors matched one node, or nodes without addresses)"
                    .into()
            } else {
                format!(
                    "expected no replies, but could not probe: {}",
                    list(unprobed, 5)
                )
            },
        }
    } else {
        Attempt {
            holds: answered.is_empty(),
            seen: format!(
                "expected no replies, but {} of {} pairs answered: {}",
                answered.len(),
                ok.len(),
                list(answered, 5)
            ),
        }
    }
}

/// The address a check's `host` stands for: a literal, or a node's primary address.
fn resolve(ctx: &Context<'_>, host: &str) -> Option<IpAddr> {
    if let Ok(a) = host.parse() {
        return Some(a);
    }
    let n = ctx.topology.nodes.iter().position(|n| n.name == host)?;
    ctx.topology
        .primary_address(n, false)
        .or_else(|| ctx.topology.primary_address(n, true))
}

async fn tcp(
    ctx: &Context<'_>,
    from: usize,
    host: &str,
    port: u16,
    expect_ok: bool,
    budget: Duration,
) -> Attempt {
    let Some(ip) = resolve(ctx, host) else {
        return Attempt {
            holds: false,
            seen: format!("`{host}` has no address"),
        };
    };
    let target = SocketAddr::new(ip, port);
    let r = match probe::tcp_connect(ctx.kernel, &netns(ctx, from), target, budget).await {
        Ok(r) => r,
        // Not an answer either way: `expect: fail` must not pass on a broken probe.
        Err(e) => {
            return Attempt {
                holds: false,
                seen: format!("cannot probe from {}: {e}", name(ctx, from)),
            };
        }
    };
    match (r, expect_ok) {
        (Ok(_), true) => Attempt {
            holds: true,
            seen: String::new(),
        },
        (Err(e), true) => Attempt {
            holds: false,
            seen: format!(
                "expected {} to connect to {target}; it failed: {e}",
                name(ctx, from)
            ),
        },
        (Ok(d), false) => Attempt {
            holds: false,
            seen: format!(
                "expected the connection from {} to {target} to fail; it connected in {:.2} ms",
                name(ctx, from),
                d.as_secs_f64() * 1000.0
            ),
        },
        (Err(_), false) => Attempt {
            holds: true,
            seen: String::new(),
        },
    }
}

async fn path(
    ctx: &Context<'_>,
    from: usize,
    to: usize,
    hops: &[usize],
    family: Family,
    budget: Duration,
) -> Attempt {
    let v6 = family == Family::Ipv6;
    let Some(dst) = ctx.topology.primary_address(to, v6) else {
        return Attempt {
            holds: false,
            seen: format!("{} has no {} address", name(ctx, to), fam(v6)),
        };
    };
    let max = (hops.len() + 2).min(32) as u8;
    let wait = (budget / u32::from(max).max(1))
        .clamp(Duration::from_millis(100), Duration::from_millis(500));
    let expected: Vec<String> = hops.iter().map(|h| name(ctx, *h).to_string()).collect();
    match probe::trace(ctx.kernel, &netns(ctx, from), dst, max, wait).await {
        Ok(seen) => {
            let names: Vec<String> = seen
                .iter()
                .map(|h| match h {
                    Some(a) => ctx
                        .owners
                        .get(a)
                        .map(|n| name(ctx, *n).to_string())
                        .unwrap_or_else(|| a.to_string()),
                    None => "*".to_string(),
                })
                .collect();
            Attempt {
                holds: names == expected,
                seen: format!(
                    "expected the path {}, saw {}",
                    expected.join(" "),
                    names.join(" ")
                ),
            }
        }
        Err(e) => Attempt {
            holds: false,
            seen: format!("cannot trace from {}: {e}", name(ctx, from)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::routed_ends;

    #[test]
    fn routed_link_ends_are_counted_per_family_and_bridge_ports_are_not() {
        let yaml = "name: ends\naddressing: { ipv6: fd00:e::/48 }\nbridges: { sw: {} }\nnodes: { a: {}, b: {}, c: {} }\nlinks:\n  - [a:eth1, b:eth1]\n  - [b:eth2, c:eth1]\n  - [c:eth2, sw]\n";
        let c = crate::compile_str(yaml, "ends.yaml", std::path::Path::new("/")).unwrap();
        assert_eq!(routed_ends(&c.topology, false), 4);
        assert_eq!(routed_ends(&c.topology, true), 4);
    }
}
