//! The checks one host of a multi-host lab runs: a probe starts in its source node's
//! namespace, which exists only on that node's host, so each host runs the checks whose
//! source is its own and leaves the others to their hosts. Targets need no namespace here
//! (a node is probed at its address), so reach, path and route work across hosts.

use std::collections::BTreeMap;

use crate::model::{Action, Check, CheckBody, Topology};

/// `host`'s part of the lab's checks, and the ones it leaves to other hosts.
#[derive(Debug, Default)]
pub struct Local {
    pub checks: Vec<Check>,
    /// The checks left to other hosts, each with its host's name.
    pub left: Vec<(Check, String)>,
}

impl Local {
    /// For each other host (by name), how many checks start there: counted from
    /// [`Local::left`], so the two can never disagree.
    pub fn skipped(&self) -> BTreeMap<&str, usize> {
        let mut out = BTreeMap::new();
        for (_, h) in &self.left {
            *out.entry(h.as_str()).or_default() += 1;
        }
        out
    }

    /// The checks left to other hosts as skipped results naming the host, so JSON and
    /// JUnit reports list every check of the lab, and a CI run on each host shows where
    /// each one ran.
    pub fn left_results(&self) -> Vec<super::CheckResult> {
        self.left
            .iter()
            .map(|(c, h)| {
                super::not_run(
                    c,
                    &format!("its source lives on host {h}; `nslab --host {h} test` runs it there"),
                )
            })
            .collect()
    }

    /// `skipped 2 checks whose source lives on another host: 1 on hb, 1 on hc`, or None.
    pub fn note(&self) -> Option<String> {
        let total = self.left.len();
        if total == 0 {
            return None;
        }
        let each: Vec<String> = self
            .skipped()
            .iter()
            .map(|(h, n)| format!("{n} on {h}"))
            .collect();
        Some(format!(
            "skipped {} whose source lives on another host: {}",
            crate::words::count(total, "check"),
            each.join(", ")
        ))
    }
}

/// Splits `t`'s checks for `host`. A reach from many nodes keeps its local sources (the
/// other hosts probe from theirs); a check or step whose source is elsewhere is counted
/// under that host. A `sleep` step has no source and runs everywhere.
pub fn for_host(t: &Topology, host: &str) -> Local {
    let mut out = Local::default();
    let host_of = |n: usize| t.nodes[n].host.as_deref().unwrap_or(host);
    for check in &t.checks {
        let source = match &check.body {
            CheckBody::Reach { from, .. } => {
                let here: Vec<usize> = from
                    .iter()
                    .copied()
                    .filter(|&n| host_of(n) == host)
                    .collect();
                if here.is_empty() {
                    from.first().copied()
                } else {
                    let mut c = check.clone();
                    if let CheckBody::Reach { from, .. } = &mut c.body {
                        *from = here;
                    }
                    out.checks.push(c);
                    continue;
                }
            }
            CheckBody::Tcp { from, .. } | CheckBody::Path { from, .. } => Some(*from),
            CheckBody::Route { node, .. } | CheckBody::Cmd { node, .. } => Some(*node),
            CheckBody::Action(a) => match a {
                Action::Link { node, .. }
                | Action::Impair { node, .. }
                | Action::Node { node, .. } => Some(*node),
                Action::Sleep { .. } => None,
            },
        };
        match source.map(host_of) {
            Some(h) if h != host => {
                out.left.push((check.clone(), h.to_string()));
            }
            _ => out.checks.push(check.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "
name: local
hosts:
  ha: { address: 192.0.2.1 }
  hb: { address: 192.0.2.2 }
  hc: { address: 192.0.2.3 }
nodes:
  a1: { host: ha, loopback: 10.0.0.1/32 }
  a2: { host: ha, loopback: 10.0.0.2/32 }
  b1: { host: hb, loopback: 10.0.0.3/32 }
  c1: { host: hc, loopback: 10.0.0.4/32 }
links:
  - [a1:eth1, a2:eth1]
  - [a2:eth2, b1:eth1]
  - [b1:eth2, c1:eth1]
tests:
  - reach: { from: all, to: c1, name: all-to-c1 }
  - reach: { from: b1, to: a1, name: b1-to-a1 }
  - path: { from: a1, to: c1, hops: [a2, b1, c1], name: a1-path }
  - path: { from: c1, to: a1, hops: [b1, a2, a1], name: c1-path }
  - route: { node: all, to: 10.0.0.4/32, name: to-c1 }
  - sleep: 1s
";

    fn lab() -> Topology {
        crate::compile_str(LAB, "lab.yaml", std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{e}"))
            .topology
    }

    fn names(l: &Local) -> Vec<String> {
        l.checks.iter().map(|c| c.name.clone()).collect()
    }

    #[test]
    fn each_host_runs_the_checks_that_start_on_it() {
        let t = lab();
        let ha = for_host(&t, "ha");
        assert_eq!(
            names(&ha),
            [
                "all-to-c1",
                "a1-path",
                "to-c1 [a1]",
                "to-c1 [a2]",
                "6: sleep 1s"
            ]
            .map(String::from)
            .to_vec(),
            "{:?}",
            names(&ha)
        );
        // The many-source reach keeps ha's sources only.
        let CheckBody::Reach { from, .. } = &ha.checks[0].body else {
            panic!("not a reach");
        };
        let from: Vec<&str> = from.iter().map(|&n| t.nodes[n].name.as_str()).collect();
        assert_eq!(from, ["a1", "a2"]);
        assert_eq!(ha.skipped(), BTreeMap::from([("hb", 2), ("hc", 2)]));
        assert_eq!(
            ha.note().as_deref(),
            Some("skipped 4 checks whose source lives on another host: 2 on hb, 2 on hc")
        );
        // The same four as skipped results, each naming its host.
        let left: Vec<(String, String)> = ha
            .left_results()
            .into_iter()
            .map(|r| {
                assert_eq!(r.status, crate::harness::Status::Skipped);
                (r.name, r.reason.unwrap())
            })
            .collect();
        let on = |h: &str| {
            format!("not run: its source lives on host {h}; `nslab --host {h} test` runs it there")
        };
        assert_eq!(
            left,
            [
                ("b1-to-a1".to_string(), on("hb")),
                ("c1-path".to_string(), on("hc")),
                ("to-c1 [b1]".to_string(), on("hb")),
                ("to-c1 [c1]".to_string(), on("hc")),
            ]
        );
        let hc = for_host(&t, "hc");
        assert_eq!(
            names(&hc),
            ["all-to-c1", "c1-path", "to-c1 [c1]", "6: sleep 1s"]
        );
    }

    #[test]
    fn every_check_runs_on_exactly_one_host() {
        let t = lab();
        let per_source: usize = ["ha", "hb", "hc"]
            .iter()
            .map(|h| {
                let l = for_host(&t, h);
                l.checks.len() + l.skipped().values().sum::<usize>()
            })
            .sum();
        // Each host sees every check once (run or skipped); the reach from all and the
        // sleep run on all three.
        assert_eq!(per_source, 3 * t.checks.len());
        let run: usize = ["ha", "hb", "hc"]
            .iter()
            .map(|h| for_host(&t, h).checks.len())
            .sum();
        assert_eq!(run, t.checks.len() - 2 + 2 * 3);
    }
}
