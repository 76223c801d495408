//! Resolving the checks of the `tests:` section: node names and selectors to node
//! indices, `reach` targets to nodes or addresses, `route.via` to next-hop addresses,
//! `expect_json_file` against the topology's directory. A `cmd` or `route` check on a
//! list or a label selector becomes one check per node, each reported on its own.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use super::resolve::{DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_TIMEOUT, Names, action_name, select};
use crate::diag::Sink;
use crate::model::kinds::*;
use crate::model::{Check, CheckBody, Command, Group, JsonExpect, JsonSource, Target};
use crate::spec::raw::{JsonSource as JsonSource_, *};

impl Names<'_> {
    /// The nodes a selector names; a located error for each unknown name, and for a
    /// selector that names none.
    pub(super) fn selector(
        &self,
        sink: &mut Sink,
        sel: &Sp<RawSelector>,
        what: &str,
    ) -> Vec<usize> {
        let found: Vec<usize> = match &sel.value {
            RawSelector::All => (0..self.all.len()).collect(),
            RawSelector::One(n) => self.node(sink, n, what).into_iter().collect(),
            RawSelector::Names(names) => names
                .iter()
                .filter_map(|n| self.node(sink, n, what))
                .collect(),
            RawSelector::Labels(l) => {
                let labels: Vec<BTreeMap<String, String>> =
                    self.all.iter().map(|n| n.labels.clone()).collect();
                let found = select(&labels, l);
                if found.is_empty() {
                    sink.error(
                        Some(sel.span),
                        format!("the label selector of {what} matches no node"),
                    )
                    .hint("labels are set per node (or kind, or `defaults`) under `labels:`");
                }
                return found;
            }
        };
        if matches!(&sel.value, RawSelector::Names(n) if n.is_empty()) {
            sink.error(Some(sel.span), format!("{what} names no node"));
        }
        found
    }

    /// `reach.to`: nodes, and addresses written as such (owned by the lab or not).
    fn targets(&self, sink: &mut Sink, sel: &Sp<RawSelector>, family: Family) -> Vec<Target> {
        let names = match &sel.value {
            RawSelector::One(n) => std::slice::from_ref(n),
            RawSelector::Names(n) => n.as_slice(),
            _ => {
                return self
                    .selector(sink, sel, "`reach.to`")
                    .into_iter()
                    .map(Target::Node)
                    .collect();
            }
        };
        if names.is_empty() {
            sink.error(Some(sel.span), "`reach.to` names no node or address");
        }
        let mut out = Vec::new();
        for n in names {
            let Ok(addr) = n.value.parse::<IpAddr>() else {
                out.extend(self.node(sink, n, "`reach.to`").map(Target::Node));
                continue;
            };
            let wrong = match family {
                Family::Ipv4 => addr.is_ipv6(),
                Family::Ipv6 => addr.is_ipv4(),
                Family::Both => false,
            };
            if wrong {
                sink.error(
                    Some(n.span),
                    format!("`reach.to` address {addr} is not of the check's family"),
                )
                .hint("drop `family:` (an address is probed in its own family) or fix the address");
            }
            out.push(Target::Addr(addr));
        }
        out
    }

    /// The checks of one `tests:` entry: one, or one per node of a many-node `cmd` or
    /// `route` (named `<name> [<node>]`, run together).
    pub fn check(&self, sink: &mut Sink, raw: &RawCheck, index: usize, base: &Path) -> Vec<Check> {
        let name = raw
            .name
            .as_ref()
            .map(|n| n.value.clone())
            .unwrap_or_else(|| default_check_name(&raw.body, index));
        let one = |body| {
            vec![Check {
                name: name.clone(),
                timeout: raw
                    .timeout
                    .as_ref()
                    .map(|t| t.value)
                    .unwrap_or(DEFAULT_CHECK_TIMEOUT),
                interval: raw
                    .interval
                    .as_ref()
                    .map(|t| t.value)
                    .unwrap_or(DEFAULT_CHECK_INTERVAL),
                group: None,
                body,
            }]
        };
        let (sel, what) = match &raw.body {
            RawCheckBody::Route { node, .. } => (node, "`route.node`"),
            RawCheckBody::Cmd { node, .. } => (node, "`cmd.node`"),
            other => return self.single(sink, other).map(one).unwrap_or_default(),
        };
        let many = !matches!(sel.value, RawSelector::One(_));
        let mut out = Vec::new();
        for n in self.selector(sink, sel, what) {
            let Some(body) = self.per_node(sink, &raw.body, n, base) else {
                continue;
            };
            let mut c = one(body).remove(0);
            if many {
                c.name = format!("{name} [{}]", self.all[n].name);
                c.group = Some(Group {
                    entry: index,
                    node: self.all[n].name.clone(),
                });
            }
            out.push(c);
        }
        out
    }

    /// A check on fixed ends: reach, tcp, path, or a scenario step.
    fn single(&self, sink: &mut Sink, body: &RawCheckBody) -> Option<CheckBody> {
        Some(match body {
            RawCheckBody::Reach {
                from,
                to,
                family,
                expect_ok,
                echo,
            } => {
                if let Some(a) = first_address(from) {
                    sink.error(
                        Some(a.span),
                        format!("`reach.from` takes nodes; `{}` is an address", a.value),
                    )
                    .hint("probes leave from a node's namespace: name the node that owns it");
                    return None;
                }
                CheckBody::Reach {
                    from: self.selector(sink, from, "`reach.from`"),
                    to: self.targets(sink, to, *family),
                    family: *family,
                    expect_ok: *expect_ok,
                    echo: *echo,
                }
            }
            RawCheckBody::Tcp {
                from,
                host,
                port,
                expect_ok,
            } => {
                let from = self.node(sink, from, "`tcp.from`");
                // A host that is neither an address nor a node would never resolve.
                if host.value.parse::<IpAddr>().is_err() {
                    self.node(sink, host, "`tcp.to`");
                }
                CheckBody::Tcp {
                    from: from?,
                    host: host.value.clone(),
                    port: *port,
                    expect_ok: *expect_ok,
                }
            }
            RawCheckBody::Path {
                from,
                to,
                hops,
                family,
            } => {
                let f = self.node(sink, from, "`path.from`");
                let t = self.node(sink, to, "`path.to`");
                let hops: Vec<usize> = hops
                    .iter()
                    .filter_map(|h| self.node(sink, h, "`path.hops`"))
                    .collect();
                CheckBody::Path {
                    from: f?,
                    to: t?,
                    hops,
                    family: *family,
                }
            }
            RawCheckBody::Action(a) => CheckBody::Action(self.action(sink, a)?),
            RawCheckBody::Route { .. } | RawCheckBody::Cmd { .. } => {
                unreachable!("per-node checks")
            }
        })
    }
}

impl Names<'_> {
    /// A `route` or `cmd` check on one node.
    fn per_node(
        &self,
        sink: &mut Sink,
        body: &RawCheckBody,
        n: usize,
        base: &Path,
    ) -> Option<CheckBody> {
        Some(match body {
            RawCheckBody::Route {
                to,
                via,
                dev,
                table,
                vrf,
                absent,
                ..
            } => {
                let dst = self.route_dsts(n, &to.value);
                let mut addrs = Vec::new();
                for v in via {
                    addrs.extend(self.via_addresses(sink, n, v, &dst));
                }
                if let Some(d) = dev
                    && !self.all[n].interfaces.iter().any(|i| i.name == d.value)
                {
                    sink.error(
                        Some(d.span),
                        format!("node `{}` has no interface `{}`", self.all[n].name, d.value),
                    );
                }
                CheckBody::Route {
                    node: n,
                    dst,
                    via: addrs,
                    dev: dev.as_ref().map(|d| d.value.clone()),
                    table: table.as_ref().map_or(RouteTable::MAIN, |t| t.value).0,
                    vrf: vrf.as_ref().map(|v| v.value.clone()),
                    absent: *absent,
                }
            }
            RawCheckBody::Cmd {
                run,
                exit,
                stdout,
                stderr,
                json,
                ..
            } => CheckBody::Cmd {
                node: n,
                run: super::placeholders::command(
                    sink,
                    &run.value,
                    run.span,
                    "`cmd.run`",
                    super::placeholders::Vars {
                        node: &self.all[n].name,
                        lab: self.lab,
                    },
                ),
                exit: *exit,
                stdout: stdout.as_ref().map(|s| s.value.clone()),
                stderr: stderr.as_ref().map(|s| s.value.clone()),
                json: json.as_ref().map(|j| JsonExpect {
                    source: match &j.source {
                        JsonSource_::Inline(v) => JsonSource::Inline(v.clone()),
                        // Like mount sources: relative to the topology file.
                        JsonSource_::File(f) => JsonSource::File {
                            path: base.join(&f.value),
                            span: f.span,
                        },
                    },
                    exact: j.exact,
                }),
            },
            _ => unreachable!("only route and cmd checks are per node"),
        })
    }

    /// The prefixes a route check looks for; `default` covers the families the node has
    /// addresses in.
    fn route_dsts(&self, n: usize, to: &RouteDest) -> Vec<ipnet::IpNet> {
        let v4: ipnet::IpNet = "0.0.0.0/0".parse().expect("valid");
        let v6: ipnet::IpNet = "::/0".parse().expect("valid");
        match to {
            RouteDest::Prefix(p) => vec![*p],
            RouteDest::Default4 => vec![v4],
            RouteDest::Default6 => vec![v6],
            RouteDest::Default => {
                let node = &self.all[n];
                let has = |six: bool| {
                    node.loopback
                        .iter()
                        .chain(node.interfaces.iter().flat_map(|i| &i.addresses))
                        .any(|a| a.addr().is_ipv6() == six)
                };
                let mut d = Vec::new();
                if has(false) || !has(true) {
                    d.push(v4);
                }
                if has(true) {
                    d.push(v6);
                }
                d
            }
        }
    }

    /// A route check's `via`: an address, or a neighbour whose addresses on the shared
    /// segment are the expected gateways.
    fn via_addresses(
        &self,
        sink: &mut Sink,
        node: usize,
        via: &Sp<String>,
        dst: &[ipnet::IpNet],
    ) -> Vec<IpAddr> {
        if let Ok(a) = via.value.parse::<IpAddr>() {
            return vec![a];
        }
        let Some(peer) = self.node(sink, via, "`route.via`") else {
            return Vec::new();
        };
        let me = &self.all[node];
        let mine: Vec<ipnet::IpNet> = me
            .interfaces
            .iter()
            .flat_map(|i| i.addresses.clone())
            .collect();
        let fams: Vec<bool> = dst.iter().map(|d| d.addr().is_ipv6()).collect();
        let found: Vec<IpAddr> = self.all[peer]
            .interfaces
            .iter()
            .flat_map(|i| i.addresses.iter())
            .filter(|a| {
                fams.contains(&a.addr().is_ipv6()) && mine.iter().any(|m| m.contains(&a.addr()))
            })
            .map(|a| a.addr())
            .collect();
        if found.is_empty() {
            sink.error(
                Some(via.span),
                format!(
                    "`{}` shares no subnet with node `{}`, so it cannot be its next hop",
                    via.value, me.name
                ),
            );
        }
        found
    }
}

/// The first name of a selector that is an address, if any.
fn first_address(sel: &Sp<RawSelector>) -> Option<&Sp<String>> {
    let is_addr = |n: &&Sp<String>| n.value.parse::<IpAddr>().is_ok();
    match &sel.value {
        RawSelector::One(n) => Some(n).filter(is_addr),
        RawSelector::Names(ns) => ns.iter().find(is_addr),
        _ => None,
    }
}

fn selector_text(s: &Sp<RawSelector>) -> String {
    match &s.value {
        RawSelector::All => "all".to_string(),
        RawSelector::One(n) => n.value.clone(),
        RawSelector::Names(n) => n
            .iter()
            .map(|n| n.value.as_str())
            .collect::<Vec<_>>()
            .join(","),
        RawSelector::Labels(l) => l
            .iter()
            .map(|(k, v)| format!("{}={}", k.value, v.value))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// A reach check's probe options as its default name shows them: ` size 1472 df ttl 3`.
fn echo_text(e: &Echo) -> String {
    let mut s = String::new();
    if let Some(n) = e.size {
        s.push_str(&format!(" size {n}"));
    }
    match e.df {
        Some(true) => s.push_str(" df"),
        Some(false) => s.push_str(" no-df"),
        None => {}
    }
    if let Some(t) = e.ttl {
        s.push_str(&format!(" ttl {t}"));
    }
    s
}

fn default_check_name(body: &RawCheckBody, index: usize) -> String {
    let sel = selector_text;
    let n = index + 1;
    match body {
        RawCheckBody::Reach {
            from,
            to,
            expect_ok,
            echo,
            ..
        } => {
            let not = if *expect_ok { "" } else { " (expect fail)" };
            format!(
                "{n}: reach {} -> {}{}{not}",
                sel(from),
                sel(to),
                echo_text(echo)
            )
        }
        RawCheckBody::Tcp {
            from,
            host,
            port,
            expect_ok,
        } => {
            let not = if *expect_ok { "" } else { " (expect fail)" };
            format!("{n}: tcp {} -> {}:{port}{not}", from.value, host.value)
        }
        RawCheckBody::Route {
            node,
            to,
            absent,
            table,
            vrf,
            ..
        } => {
            let dst = match &to.value {
                RouteDest::Prefix(p) => p.to_string(),
                RouteDest::Default => "default".into(),
                RouteDest::Default4 => "default4".into(),
                RouteDest::Default6 => "default6".into(),
            };
            let table = table
                .as_ref()
                .map(|t| format!(" table {}", t.value.name()))
                .or_else(|| vrf.as_ref().map(|v| format!(" vrf {}", v.value)))
                .unwrap_or_default();
            let not = if *absent { " (expect absent)" } else { "" };
            format!("{n}: route {} {dst}{table}{not}", sel(node))
        }
        RawCheckBody::Path { from, to, .. } => format!("{n}: path {} -> {}", from.value, to.value),
        RawCheckBody::Action(a) => format!("{n}: {}", action_name(a)),
        RawCheckBody::Cmd {
            node, run, exit, ..
        } => {
            let c: Command = run.value.clone().into();
            let mut text = c.display();
            if text.chars().count() > 40 {
                text = text.chars().take(37).collect::<String>() + "...";
            }
            let not = if *exit == Exit::Failure {
                " (expect fail)"
            } else {
                ""
            };
            format!("{n}: cmd {}: {text}{not}", sel(node))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::kinds::Exit;
    use crate::model::{CheckBody, JsonSource, Target};

    const LAB: &str = "name: ck\nnodes:\n  a: { labels: { role: core } }\n  b: { labels: { role: core } }\n  c: {}\nlinks: [[a:eth0, b:eth0], [b:eth1, c:eth0]]\n";

    fn compile(tests: &str) -> Result<crate::Compiled, String> {
        let yaml = format!("{LAB}{tests}");
        crate::compile_str(&yaml, "ck.yaml", std::path::Path::new("/labs/ck"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn null_means_unset_for_every_cmd_key_even_through_merges() {
        // `expect_json: ~` used to expect stdout to be JSON `null`: a check never passing.
        let c = compile(
            "tests:\n  - cmd: &base { node: a, run: \"echo {}\", stdout: \"x\", stderr: \"y\", expect_json: { k: 1 }, name: full }\n  - cmd: { <<: *base, stdout: ~, stderr: ~, expect_json: ~, name: plain }\n",
        );
        let c = c.unwrap();
        let plain = c
            .topology
            .checks
            .iter()
            .find(|c| c.name == "plain")
            .unwrap();
        let CheckBody::Cmd {
            stdout,
            stderr,
            json,
            exit,
            ..
        } = &plain.body
        else {
            panic!("a cmd check");
        };
        assert_eq!((stdout, stderr, json.is_none()), (&None, &None, true));
        assert_eq!(*exit, Exit::Code(0));
    }

    #[test]
    fn many_node_checks_become_one_check_per_node() {
        let c = compile("tests:\n  - cmd: { node: { role: core }, run: \"true\", name: up }\n  - route: { node: [a, c], to: 10.9.0.0/16, expect: absent }\n  - cmd: { node: a, run: \"true\", name: one }\n").unwrap();
        let names: Vec<(&str, Option<usize>)> = c
            .topology
            .checks
            .iter()
            .map(|c| (c.name.as_str(), c.group.as_ref().map(|g| g.entry)))
            .collect();
        assert_eq!(
            names,
            [
                ("up [a]", Some(0)),
                ("up [b]", Some(0)),
                ("2: route a,c 10.9.0.0/16 (expect absent) [a]", Some(1)),
                ("2: route a,c 10.9.0.0/16 (expect absent) [c]", Some(1)),
                ("one", None),
            ]
        );
    }

    #[test]
    fn reach_targets_mix_nodes_and_addresses() {
        let c = compile(
            "tests:\n  - reach: { from: a, to: [c, 10.255.0.1, 192.0.2.1, \"fd00::1\"] }\n",
        )
        .unwrap();
        let CheckBody::Reach { to, .. } = &c.topology.checks[0].body else {
            panic!("a reach check");
        };
        assert_eq!(
            to,
            &[
                Target::Node(2),
                Target::Addr("10.255.0.1".parse().unwrap()),
                Target::Addr("192.0.2.1".parse().unwrap()),
                Target::Addr("fd00::1".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn reach_probe_options_are_kept_and_shown_in_the_default_name() {
        let c = compile("tests:\n  - reach: { from: a, to: c, size: 1472, df: true, ttl: 3 }\n  - reach: { from: a, to: c, size: 65527, family: ipv6, df: false, expect: fail }\n  - reach: { from: a, to: c }\n").unwrap();
        let echoes: Vec<(&str, crate::kinds::Echo)> = c
            .topology
            .checks
            .iter()
            .map(|c| match &c.body {
                CheckBody::Reach { echo, .. } => (c.name.as_str(), *echo),
                _ => panic!("reach checks"),
            })
            .collect();
        let echo = |size, df, ttl| crate::kinds::Echo { size, df, ttl };
        assert_eq!(
            echoes,
            [
                (
                    "1: reach a -> c size 1472 df ttl 3",
                    echo(Some(1472), Some(true), Some(3))
                ),
                (
                    "2: reach a -> c size 65527 no-df (expect fail)",
                    echo(Some(65527), Some(false), None)
                ),
                ("3: reach a -> c", echo(None, None, None)),
            ]
        );
    }

    #[test]
    fn json_files_resolve_against_the_topology_directory_and_tables_by_name() {
        let c = compile("tests:\n  - cmd: { node: a, run: \"true\", expect_json_file: want/a.json, json_exact: true }\n  - route: { node: a, to: 10.0.0.1/32, table: local }\n  - route: { node: a, to: 10.0.0.1/32, table: 1000 }\n  - cmd: { node: a, run: \"false\", expect: fail }\n").unwrap();
        let checks = &c.topology.checks;
        let CheckBody::Cmd { json: Some(j), .. } = &checks[0].body else {
            panic!("a cmd check with JSON");
        };
        assert!(j.exact);
        assert!(
            matches!(&j.source, JsonSource::File { path, .. } if path == std::path::Path::new("/labs/ck/want/a.json"))
        );
        let tables: Vec<u32> = checks[1..3]
            .iter()
            .map(|c| match c.body {
                CheckBody::Route { table, .. } => table,
                _ => 0,
            })
            .collect();
        assert_eq!(tables, [255, 1000]);
        assert!(matches!(
            checks[3].body,
            CheckBody::Cmd {
                exit: Exit::Failure,
                ..
            }
        ));
    }

    #[test]
    fn a_vrf_is_kept_by_name_for_run_time_and_excludes_table() {
        let c = compile("tests:\n  - route: { node: a, to: 10.0.0.1/32, vrf: red }\n").unwrap();
        let check = &c.topology.checks[0];
        assert_eq!(check.name, "1: route a 10.0.0.1/32 vrf red");
        assert!(
            matches!(&check.body, CheckBody::Route { vrf: Some(v), table: 254, .. } if v == "red")
        );
        let e = compile("tests:\n  - route: { node: a, to: 10.0.0.1/32, vrf: red, table: 10 }\n")
            .unwrap_err();
        assert!(
            e.contains("`vrf` and `table` both choose the table to read; give one"),
            "{e}"
        );
        assert!(e.contains("ck.yaml:"), "located: {e}");
    }
}
