//! The host's neighbour-table limit. The ARP and ND tables are one per host, not one per
//! network namespace: their `gc_thresh*` limits exist only in the host's namespace (a new
//! namespace has no `net/ipv4/neigh/default/gc_thresh3`), and the entry count they bound
//! sums every namespace's entries. Past `gc_thresh3` the kernel refuses new entries
//! ("neighbour table overflow"), so a large L2 domain loses reachability at random.

use crate::diag::Diagnostic;
use crate::model::{End, Topology};

/// Neighbour entries the lab's L2 segments need when every member talks to every other:
/// m x (m - 1) for a segment of m members with an address of the family (a bridge with
/// the bridges joined to it, or a node-to-node link with m = 2). An estimate, pure so it can be tested without root.
pub fn entries(t: &Topology, v6: bool) -> usize {
    let has_family = |node: usize, iface: usize| {
        t.nodes[node].interfaces[iface]
            .addresses
            .iter()
            .any(|a| a.addr().is_ipv6() == v6)
    };
    let pairs = |m: usize| m * m.saturating_sub(1);
    // Each segment once, from its first bridge.
    let bridges: usize = (0..t.bridges.len())
        .map(|b| (b, crate::model::segment(&t.bridges, b)))
        .filter(|(b, seg)| seg[0] == *b)
        .map(|(_, seg)| {
            pairs(
                seg.iter()
                    .flat_map(|&b| &t.bridges[b].ports)
                    .filter(|p| has_family(p.node, p.iface))
                    .count(),
            )
        })
        .sum();
    let links: usize = t
        .links
        .iter()
        .filter_map(|l| match (l.a, l.b) {
            (End::Node { node: a, iface: i }, End::Node { node: b, iface: j }) => Some(pairs(
                usize::from(has_family(a, i)) + usize::from(has_family(b, j)),
            )),
            _ => None,
        })
        .sum();
    bridges + links
}

/// The sysctl that bounds the family's table, host-wide.
pub fn sysctl(v6: bool) -> &'static str {
    if v6 {
        "net.ipv6.neigh.default.gc_thresh3"
    } else {
        "net.ipv4.neigh.default.gc_thresh3"
    }
}

/// A family whose estimate passes the host's limit.
struct Over {
    v6: bool,
    need: usize,
    max: usize,
}

impl Over {
    /// What to raise the limit to: twice the need, to a power of two, so other
    /// namespaces on the host keep room.
    fn raise(&self) -> usize {
        (self.need * 2).next_power_of_two()
    }
}

/// The families whose estimate passes `limit(v6)` (an unknown limit passes nothing): the
/// one estimate that both [`warnings`] and [`raises`] read, so they always agree.
fn over(t: &Topology, limit: impl Fn(bool) -> Option<usize>) -> Vec<Over> {
    [false, true]
        .into_iter()
        .filter_map(|v6| {
            let max = limit(v6)?;
            let need = entries(t, v6);
            (need > max).then_some(Over { v6, need, max })
        })
        .collect()
}

/// A warning for each family whose estimate passes `limit(v6)`, with the sysctl to raise.
pub fn warnings(t: &Topology, limit: impl Fn(bool) -> Option<usize>) -> Vec<Diagnostic> {
    over(t, limit)
        .into_iter()
        .map(|o| {
            let Over { v6, need, max } = o;
            let family = if v6 { "IPv6" } else { "IPv4" };
            let key = sysctl(v6);
            let raise = o.raise();
            Diagnostic::warning(
                None,
                format!(
                    "the lab's L2 segments need up to {need} {family} neighbour entries when every member talks to every other, over the host's limit of {max} ({key}, one table shared by all namespaces on the host)"
                ),
            )
            .with_hint(format!(
                "past it the kernel drops new entries (neighbour table overflow); raise it with `sysctl -w {key}={raise}` (and gc_thresh2 likewise), or let `up --raise-neigh-limit` raise it until the lab's `down`, or split the large bridges"
            ))
        })
        .collect()
}

/// The sysctls `up --raise-neigh-limit` sets, for each family whose estimate passes
/// `limit(v6)`: `gc_thresh3` (the hard cap) to [`Over::raise`], and `gc_thresh2` (past
/// which the kernel collects entries after 5 s) to half of it, still above the need.
pub fn raises(t: &Topology, limit: impl Fn(bool) -> Option<usize>) -> Vec<(String, u64)> {
    over(t, limit)
        .into_iter()
        .flat_map(|o| {
            let raise = o.raise() as u64;
            let key = sysctl(o.v6);
            [
                (key.to_string(), raise),
                (key.replace("gc_thresh3", "gc_thresh2"), raise / 2),
            ]
        })
        .collect()
}

/// The host's `gc_thresh3` for the family, read from the initial namespace's /proc.
pub fn host_limit(v6: bool) -> Option<usize> {
    let path = format!("/proc/sys/{}", sysctl(v6).replace('.', "/"));
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The entries the family's table holds now, host-wide: the first column of the kernel's
/// table statistics (`/proc/net/stat/arp_cache`, `ndisc_cache`), every namespace's entries
/// counted.
pub fn in_table(v6: bool) -> Option<u64> {
    let name = if v6 { "ndisc_cache" } else { "arp_cache" };
    stat_entries(&std::fs::read_to_string(format!("/proc/net/stat/{name}")).ok()?)
}

/// The `entries` column of a table statistics file: a header line, then a line per CPU
/// whose first field is the table's count in hex (the same on every line).
fn stat_entries(text: &str) -> Option<u64> {
    let mut lines = text.lines();
    if lines.next()?.split_whitespace().next()? != "entries" {
        return None;
    }
    u64::from_str_radix(lines.next()?.split_whitespace().next()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_count_is_read_from_the_kernel_statistics() {
        let text =
            "entries  allocs   destroys\n00000422 0000cf60 0000e38e\n00000422 0000d910 0000c4e0\n";
        assert_eq!(stat_entries(text), Some(0x422));
        assert_eq!(
            stat_entries("allocs entries\n1 2\n"),
            None,
            "not the layout we know"
        );
        assert_eq!(stat_entries("entries\n"), None);
        assert_eq!(stat_entries("entries\nzz\n"), None);
    }
}
