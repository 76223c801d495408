//! Whether a journal record names an object of its own lab. The journal is a file on
//! disk that `down` obeys as root: a record edited by hand, or written by a buggy or older
//! nslab, must never make `down` act outside the lab (another lab's namespace, a path
//! that climbs out of /run/netns, a cgroup or mount of another lab). In the host's
//! namespace no file is proof: an interface there is the lab's only when the kernel says
//! so, by the tag nslab gave it ([`host_tag`], judged by [`host_interface`]).

use crate::model::names::{check_ifname, check_node_name, fabric_netns, node_netns};
use crate::plan::{Op, Plan, Undo};

/// Checks one record against the lab's own names; the error says what it names instead.
pub fn check(lab: &str, undo: &Undo) -> Result<(), String> {
    let host = crate::model::hostnet::HOST_NETNS;
    match undo {
        // In the host's namespace a lab makes only its host links and management bridge
        // and their addresses: nothing else there (a route, a qdisc, the namespace) is
        // ever a lab's to undo.
        Undo::DeleteAddress { netns, link, .. } if **netns == *host => match link {
            // Deleted only while the interface still has this name and the lab's tag
            // (see [`host_interface`]).
            Some(name) => {
                check_ifname(name).map_err(|e| format!("host link {}: {e}", name.escape_debug()))
            }
            None => Err("an address of a host interface by number, on no named link".into()),
        },
        // A shared network is no lab's: leaving one deletes its bridge only for its last
        // member, and only while the bridge carries the network's tag.
        Undo::LeaveMgmt {
            netns,
            network,
            bridge,
            ..
        } => {
            if **netns != *host {
                return Err(format!(
                    "a management network in namespace `{}`",
                    netns.escape_debug()
                ));
            }
            crate::model::names::check_network_name(network)?;
            check_ifname(bridge).map_err(|e| format!("bridge {}: {e}", bridge.escape_debug()))
        }
        Undo::DeleteNetns { netns }
        | Undo::DeleteAddress { netns, .. }
        | Undo::DeleteRoute { netns, .. }
        | Undo::ClearImpair { netns, .. } => netns_of_lab(lab, netns),
        Undo::DeleteLink { netns, name, .. } | Undo::DeleteTunnel { netns, name, .. } => {
            if !(**netns == *host && matches!(undo, Undo::DeleteLink { .. })) {
                netns_of_lab(lab, netns)?;
            }
            // Bridges and veths are named as interfaces are; nothing else is the lab's.
            check_ifname(name).map_err(|e| format!("link {}: {e}", name.escape_debug()))
        }
        Undo::StopNode { netns, node }
        | Undo::RemoveCgroup { netns, node }
        | Undo::RetireProcess { netns, node, .. } => {
            check_node_name(node).map_err(|e| format!("node: {e}"))?;
            if **netns != node_netns(lab, node) {
                return Err(format!(
                    "node `{node}` with namespace `{}`, not `{}`",
                    netns.escape_debug(),
                    node_netns(lab, node)
                ));
            }
            Ok(())
        }
        Undo::RemoveMountTemplate { lab: of } | Undo::UnmountRunDirs { lab: of } => {
            if of == lab {
                Ok(())
            } else {
                Err(format!("the mounts of lab `{}`", of.escape_debug()))
            }
        }
    }
}

/// One journal's records, screened the one way `down` and `apply` both screen them.
#[derive(Debug, Default, PartialEq)]
pub struct Screened {
    /// The lab's own records, the only ones acted on.
    pub kept: Vec<Undo>,
    /// Records naming something not the lab's, with what they name instead: never acted
    /// on, and reported.
    pub refused: Vec<(Undo, String)>,
    /// Host addresses recorded by an nslab from before records named their link: never
    /// acted on (nothing says which interface holds that number now), and not worth a
    /// refusal, since deleting the lab's host link or bridge takes its addresses with it.
    pub dropped: Vec<Undo>,
}

/// Screens `undos` (a journal's teardown, or what an unfinished `apply` touched): legacy
/// nameless host addresses are dropped and every record must pass [`check`]. One
/// function for both, so what `down` and `apply` obey cannot drift apart. A host
/// address is not paired with a host link of the same records: an `apply` cut short
/// while it changed only a host link's address leaves exactly such a record, and the
/// engine deletes a host address only on an interface the kernel tags as the lab's
/// ([`host_interface`]), which no file can forge.
pub fn screen(lab: &str, undos: Vec<Undo>) -> Screened {
    let host = crate::model::hostnet::HOST_NETNS;
    let mut s = Screened::default();
    for u in undos {
        if matches!(&u, Undo::DeleteAddress { netns, link: None, .. } if **netns == *host) {
            s.dropped.push(u);
        } else if let Err(what) = check(lab, &u) {
            s.refused.push((u, what));
        } else {
            s.kept.push(u);
        }
    }
    s
}

/// The alias (`IFLA_IFALIAS`) nslab gives every interface it makes in the host's
/// namespace. The kernel keeps it with the interface, where no file on disk can forge
/// it: a host interface is deleted only while it carries its lab's tag.
pub fn host_tag(lab: &str) -> String {
    format!("nslab:{lab}")
}

/// Judges the host's interface at `ifindex`, which the kernel reports as `found` (its
/// name and alias, `None` when no interface has that number), against a record deleting
/// `name` there: `Ok(true)` when it is the lab's (that name and the lab's [`host_tag`]),
/// `Ok(false)` when the record's interface is gone (nothing to do), and an error saying
/// why not when an interface of that name is there without the lab's tag. An untagged
/// one may be an older nslab's, made before tags, or a crash between making and tagging:
/// it is left for the user, never deleted on a file's word.
pub fn host_interface(
    lab: &str,
    name: &str,
    ifindex: u32,
    found: Option<(&str, Option<&str>)>,
) -> Result<bool, String> {
    let Some((found_name, alias)) = found else {
        return Ok(false);
    };
    if found_name != name {
        // The number is another interface's now: the record's is gone.
        return Ok(false);
    }
    let tag = host_tag(lab);
    let has = match alias {
        Some(a) if a == tag => return Ok(true),
        Some(a) => format!("its alias is `{}`", a.escape_debug()),
        None => "it has none: an nslab from before tags made it, or one killed between making and tagging it, or not nslab".into(),
    };
    let name = name.escape_debug();
    Err(format!(
        "host interface `{name}` (index {ifindex}) without the lab's tag `{tag}` ({has}): left in place; once you have checked it is the lab's, remove it with `ip link del {name}`"
    ))
}

/// Whether a stored plan is the lab's, before `apply` removes what it has and the new
/// plan has not: the file is on disk like the journal. Its lab name, every step's undo
/// ([`check`]), and what removal does beyond undoing (a process retired from a node
/// that stays, a sysctl set back in its namespace) must all be the lab's. The error
/// names the first step that is not, and what it names instead.
pub fn plan(lab: &str, plan: &Plan) -> Result<(), String> {
    if plan.lab != lab {
        return Err(format!(
            "it is the plan of lab `{}`",
            plan.lab.escape_debug()
        ));
    }
    for step in &plan.steps {
        let what = match &step.op {
            Op::StartProcess {
                netns,
                node,
                process,
            } => check(
                lab,
                &Undo::RetireProcess {
                    netns: netns.clone(),
                    node: node.clone(),
                    process: process.clone(),
                },
            ),
            Op::SetSysctl { netns, key, .. } => netns_of_lab(lab, netns).and_then(|()| {
                crate::model::sysctl::parse(key)
                    .map(|_| ())
                    .map_err(|_| format!("sysctl key `{}`", key.escape_debug()))
            }),
            op => op.undo().map_or(Ok(()), |u| check(lab, &u)),
        };
        if let Err(what) = what {
            return Err(format!(
                "step {} ({}) names {what}",
                step.id,
                step.op.name()
            ));
        }
    }
    Ok(())
}

/// `nslab.<lab>` (the fabric) or `nslab.<lab>.<node>` with a valid node name: nothing
/// that could be another lab's or a path. The host's namespace is none of the lab's
/// namespaces: [`check`] lets through only the deletion of a host link or management
/// bridge there (which deletes only an interface still under the name the lab gave it
/// and with the lab's tag, see [`host_interface`]) and of their addresses.
pub fn netns_of_lab(lab: &str, netns: &str) -> Result<(), String> {
    if netns == fabric_netns(lab) {
        return Ok(());
    }
    let node = netns
        .strip_prefix(&fabric_netns(lab))
        .and_then(|rest| rest.strip_prefix('.'));
    match node {
        Some(node) if check_node_name(node).is_ok() => Ok(()),
        _ => Err(format!("namespace `{}`", netns.escape_debug())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(netns: &str) -> Undo {
        Undo::DeleteNetns {
            netns: netns.into(),
        }
    }

    #[test]
    fn the_labs_own_objects_pass() {
        for u in [
            ns("nslab.lab"),
            ns("nslab.lab.r1"),
            ns("nslab.lab.core-1.x"),
            Undo::StopNode {
                netns: "nslab.lab.r1".into(),
                node: "r1".into(),
            },
            Undo::DeleteLink {
                netns: "nslab.lab".into(),
                name: "lan1".into(),
                ifindex: 2,
            },
            Undo::UnmountRunDirs { lab: "lab".into() },
            // A host link or mgmt bridge, and an address on one.
            Undo::DeleteLink {
                netns: "@host".into(),
                name: "br-lab".into(),
                ifindex: 2,
            },
            Undo::DeleteAddress {
                netns: "@host".into(),
                ifindex: 2,
                address: "172.31.240.1/24".parse().unwrap(),
                link: Some("br-lab".into()),
            },
            Undo::DeleteAddress {
                netns: "nslab.lab.r1".into(),
                ifindex: 2,
                address: "10.0.0.1/31".parse().unwrap(),
                link: None,
            },
        ] {
            assert_eq!(check("lab", &u), Ok(()), "{u:?}");
        }
    }

    #[test]
    fn objects_of_other_labs_and_paths_are_refused() {
        for u in [
            ns("nslab.other.r1"),
            ns("nslab.lab2.r1"),
            ns("nslab.lab.."),
            ns("nslab.lab./../../etc"),
            ns("../../tmp/x"),
            ns("nslab.lab.r1/../../x"),
            Undo::StopNode {
                netns: "nslab.other.r1".into(),
                node: "r1".into(),
            },
            Undo::RemoveCgroup {
                netns: "nslab.lab.x".into(),
                node: "../../x".into(),
            },
            Undo::DeleteLink {
                netns: "nslab.lab".into(),
                name: "../x".into(),
                ifindex: 2,
            },
            Undo::RemoveMountTemplate {
                lab: "other".into(),
            },
            // The host's namespace: not a namespace of the lab, and nothing but its
            // host links and their addresses are the lab's there.
            ns("@host"),
            Undo::DeleteRoute {
                netns: "@host".into(),
                dst: "0.0.0.0/0".parse().unwrap(),
                gateways: Vec::new(),
            },
            Undo::ClearImpair {
                netns: "@host".into(),
                ifindex: 2,
            },
            Undo::DeleteTunnel {
                netns: "@host".into(),
                name: "vx0".into(),
                ifindex: 2,
            },
            // A host address by number alone, or on a name no link could have.
            Undo::DeleteAddress {
                netns: "@host".into(),
                ifindex: 2,
                address: "192.0.2.1/24".parse().unwrap(),
                link: None,
            },
            Undo::DeleteAddress {
                netns: "@host".into(),
                ifindex: 2,
                address: "192.0.2.1/24".parse().unwrap(),
                link: Some("../eth0".into()),
            },
        ] {
            assert!(check("lab", &u).is_err(), "{u:?} passed");
        }
        assert!(netns_of_lab("lab", "@host").is_err(), "a stray named @host");
    }

    #[test]
    fn a_stored_plan_of_another_lab_or_naming_what_is_not_the_labs_is_refused() {
        let mk = |lab: &str, op: Op| Plan {
            lab: lab.into(),
            steps: vec![crate::plan::Step {
                id: 0,
                op,
                deps: Vec::new(),
            }],
        };
        let netns = |n: &str| Op::CreateNetns { netns: n.into() };
        assert_eq!(plan("lab", &mk("lab", netns("nslab.lab.r1"))), Ok(()));
        for (of, op) in [
            ("other", netns("nslab.other.r1")),
            ("lab", netns("nslab.other.r1")),
            (
                "lab",
                Op::StartProcess {
                    netns: "nslab.other.r1".into(),
                    node: "r1".into(),
                    process: "p".into(),
                },
            ),
            (
                "lab",
                Op::SetSysctl {
                    netns: "nslab.lab.r1".into(),
                    key: "../../vm/swappiness".into(),
                    value: "0".into(),
                },
            ),
        ] {
            let p = mk(of, op);
            assert!(plan("lab", &p).is_err(), "{p:?} passed");
        }
    }

    #[test]
    fn one_screening_keeps_refuses_and_drops() {
        let link = |name: &str, ifindex| Undo::DeleteLink {
            netns: "@host".into(),
            name: name.into(),
            ifindex,
        };
        let addr = |link: Option<&str>, ifindex| Undo::DeleteAddress {
            netns: "@host".into(),
            ifindex,
            address: "192.0.2.1/24".parse().unwrap(),
            link: link.map(Into::into),
        };
        let legacy = addr(None, 7);
        let other = ns("nslab.other.r1");
        let eth0 = addr(Some("eth0"), 2);
        let undos = vec![
            ns("nslab.lab.r1"),
            link("br-lab", 7),
            addr(Some("br-lab"), 7),
            legacy.clone(),
            other.clone(),
            eth0.clone(),
        ];
        let s = screen("lab", undos);
        // A named host address passes the screening, `eth0` included: only the kernel
        // can say whether that interface is the lab's, and the engine asks it
        // (`a_host_interface_is_the_labs_only_by_name_and_tag`).
        assert_eq!(
            s.kept,
            [
                ns("nslab.lab.r1"),
                link("br-lab", 7),
                addr(Some("br-lab"), 7),
                eth0
            ]
        );
        assert_eq!(s.dropped, [legacy]);
        let refused: Vec<&Undo> = s.refused.iter().map(|(u, _)| u).collect();
        assert_eq!(refused, [&other]);
        // A host address whose link the records do not delete is kept: an `apply` cut
        // short while it changed only that link's address leaves such a record.
        let alone = screen("lab", vec![addr(Some("br-lab"), 7)]);
        assert_eq!(alone.kept, [addr(Some("br-lab"), 7)], "{alone:?}");
        // A name the kernel would never take is refused by `check`.
        let bad = screen("lab", vec![addr(Some("no/slash"), 7)]);
        assert_eq!(bad.refused.len(), 1, "{bad:?}");
    }

    #[test]
    fn leaving_a_shared_network_names_it_and_its_bridge_as_the_kernel_would() {
        let leave = |netns: &str, network: &str, bridge: &str| Undo::LeaveMgmt {
            netns: netns.into(),
            network: network.into(),
            bridge: bridge.into(),
            ifindex: 4000,
        };
        assert_eq!(check("lab", &leave("@host", "clab", "br-clab")), Ok(()));
        for u in [
            leave("nslab.lab", "clab", "br-clab"),
            leave("@host", "../x", "br-clab"),
            leave("@host", "Clab", "br-clab"),
            leave("@host", "clab", "br/clab"),
            leave("@host", "clab", "a-bridge-name-too-long"),
        ] {
            assert!(check("lab", &u).is_err(), "{u:?} passed");
        }
    }

    #[test]
    fn a_host_interface_is_the_labs_only_by_name_and_tag() {
        let tag = host_tag("lab");
        assert_eq!(tag, "nslab:lab");
        let judge = |found| host_interface("lab", "br-lab", 7, found);
        assert_eq!(judge(Some(("br-lab", Some(tag.as_str())))), Ok(true));
        // Gone, or the number is another interface's now: nothing to delete.
        assert_eq!(judge(None), Ok(false));
        assert_eq!(judge(Some(("eth0", Some(tag.as_str())))), Ok(false));
        // There under the name, but not tagged as the lab's: refused, with the command.
        for alias in [
            None,
            Some("nslab:other"),
            Some("uplink"),
            Some("nslab:lab2"),
        ] {
            let e = judge(Some(("br-lab", alias))).expect_err("refused");
            assert!(e.contains("`ip link del br-lab`"), "{e}");
            assert!(e.contains("index 7"), "{e}");
        }
    }
}
