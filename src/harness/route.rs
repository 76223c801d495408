//! The `route` check: a node's routing table (main unless `table:` says otherwise) has a
//! route to each destination, with the expected next hops and device; or, with
//! `expect: absent`, has none (a withdrawn prefix).

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::checks::{name, netns};
use super::{Attempt, Context};
use crate::apply::inspect::{self, RouteEntry, VrfLookup};
use crate::model::kinds::RouteTable;

/// What a route check wants of one node.
pub struct Want<'a> {
    pub dsts: &'a [ipnet::IpNet],
    pub via: &'a [IpAddr],
    pub dev: Option<&'a str>,
    pub table: u32,
    /// A VRF device whose table is read instead of `table`.
    pub vrf: Option<&'a str>,
    pub absent: bool,
}

pub async fn route(ctx: &Context<'_>, node: usize, want: &Want<'_>) -> Attempt {
    let (table_id, in_table) = match want.vrf {
        None => (want.table, in_table(want.table)),
        Some(vrf) => match vrf_table(ctx, node, vrf).await {
            Ok(t) => (t, format!(" in VRF {vrf} (table {t})")),
            Err(seen) => return Attempt { holds: false, seen },
        },
    };
    let entries = match inspect::route_entries(ctx.kernel, &netns(ctx, node), table_id).await {
        Ok(e) => e,
        Err(e) => {
            return Attempt {
                holds: false,
                seen: format!("cannot read the routes of {}: {e}", name(ctx, node)),
            };
        }
    };
    let mut problems = Vec::new();
    for dst in want.dsts {
        let found: Vec<&RouteEntry> = entries.iter().filter(|e| e.dst == *dst).collect();
        let n = name(ctx, node);
        match (found.first(), want.absent) {
            (None, true) => {}
            (Some(e), true) => problems.push(format!(
                "expected no route to {dst} on {n}{in_table}, found {}",
                describe(ctx, node, e)
            )),
            (None, false) => {
                if want.via.is_empty()
                    || want.via.iter().any(|v| v.is_ipv6() == dst.addr().is_ipv6())
                {
                    problems.push(format!("{n} has no route to {dst}{in_table}"));
                }
            }
            (Some(e), false) => problems.extend(mismatch(ctx, node, dst, e, want)),
        }
    }
    Attempt {
        holds: problems.is_empty(),
        seen: problems.join("; "),
    }
}

/// How messages name the table: the main one goes unnamed, as `ip route` shows it.
fn in_table(table: u32) -> String {
    if table == RouteTable::MAIN.0 {
        String::new()
    } else {
        format!(" in table {}", RouteTable(table).name())
    }
}

/// The table of the node's VRF device `vrf`, or why there is none: naming the kernel
/// module when this kernel cannot make VRFs at all, since then no setup of the node's
/// could have made one.
async fn vrf_table(ctx: &Context<'_>, node: usize, vrf: &str) -> Result<u32, String> {
    let n = name(ctx, node);
    match inspect::vrf_table(ctx.kernel, &netns(ctx, node), vrf).await {
        Ok(VrfLookup::Table(t)) => Ok(t),
        Ok(VrfLookup::NotVrf(kind)) => Err(format!(
            "{n}'s interface `{vrf}` is {}, not a VRF",
            if kind.is_empty() {
                "no device of a kind".to_string()
            } else {
                format!("a {kind}")
            }
        )),
        Ok(VrfLookup::Missing) => {
            let why = match inspect::kernel_has_vrf() {
                Some(false) => format!(
                    "; this kernel has no `vrf` link type: {}",
                    crate::apply::error::load_module("vrf")
                ),
                _ => String::new(),
            };
            Err(format!("{n} has no VRF `{vrf}`{why}"))
        }
        Err(e) => Err(format!("cannot read the interfaces of {n}: {e}")),
    }
}

fn ifname(ctx: &Context<'_>, node: usize, ix: u32) -> String {
    if ix == 1 {
        return "lo".to_string();
    }
    ctx.topology.nodes[node]
        .interfaces
        .iter()
        .find(|i| i.ifindex == ix)
        .map(|i| i.name.clone())
        .unwrap_or_else(|| format!("#{ix}"))
}

fn join(s: impl IntoIterator<Item = impl ToString>) -> String {
    s.into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A route as `ip route` words it: `unicast via 10.0.0.1 dev eth0`.
fn describe(ctx: &Context<'_>, node: usize, e: &RouteEntry) -> String {
    let mut s = format!("a {} route", e.kind);
    if !e.gateways.is_empty() {
        s.push_str(&format!(" via {}", join(&e.gateways)));
    }
    if !e.oifs.is_empty() {
        s.push_str(&format!(
            " dev {}",
            join(e.oifs.iter().map(|i| ifname(ctx, node, *i)))
        ));
    }
    s
}

/// How a present route differs from the expected next hops and device.
fn mismatch(
    ctx: &Context<'_>,
    node: usize,
    dst: &ipnet::IpNet,
    e: &RouteEntry,
    want: &Want<'_>,
) -> Vec<String> {
    let n = name(ctx, node);
    let mut problems = Vec::new();
    let expected: BTreeSet<IpAddr> = want
        .via
        .iter()
        .filter(|v| v.is_ipv6() == dst.addr().is_ipv6())
        .copied()
        .collect();
    let have: BTreeSet<IpAddr> = e.gateways.iter().copied().collect();
    let devs: Vec<String> = e.oifs.iter().map(|i| ifname(ctx, node, *i)).collect();
    if !expected.is_empty() && have.is_empty() {
        problems.push(format!(
            "the route to {dst} on {n} has no gateway ({} route via {}); expected via {}",
            if e.kind == "unicast" {
                "a connected"
            } else {
                e.kind.as_str()
            },
            if devs.is_empty() {
                "-".to_string()
            } else {
                devs.join(", ")
            },
            join(&expected)
        ));
    } else if !expected.is_empty() && expected != have {
        problems.push(format!(
            "the route to {dst} on {n} goes via {{{}}}, expected {{{}}}",
            join(&have),
            join(&expected)
        ));
    }
    if let Some(d) = want.dev
        && !devs.iter().any(|x| x == d)
    {
        problems.push(format!(
            "the route to {dst} on {n} leaves through {}, expected {d}",
            devs.join(", ")
        ));
    }
    problems
}
