//! The registry of a management network several labs share (`mgmt: { network: NAME }`):
//! `<run_dir>/mgmt/<NAME>.json`, mode 0600, never read or written through a link. It
//! says what the network is (its bridge and the host's addresses on it), which labs are
//! members, in the order they joined, and which addresses each holds. It is read and
//! written only under the host lock (`HostLock`), so two `up`s never hand out one address.
//! The bridge itself is nobody's lab: it carries the tag [`shared_tag`], and goes with
//! the last member.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{HostContext, StateError, files};
use crate::diag::Span;

/// What a shared network is: every lab joining it must agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub bridge: String,
    pub ifindex: u32,
    /// The host's addresses on the bridge, with the subnets' prefix lengths.
    pub host: Vec<IpNet>,
}

/// One lab on the network and the addresses its nodes hold there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub lab: String,
    /// The lab's topology file, to name it in a mismatch.
    pub file: String,
    pub nodes: Vec<Held>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub node: String,
    pub addresses: Vec<IpNet>,
}

/// The registry file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub network: String,
    #[serde(flatten)]
    pub shape: Shape,
    /// In the order they joined: the first made the bridge, the last removes it.
    pub members: Vec<Member>,
}

/// What a lab asks of the network at `up`.
#[derive(Debug, Clone)]
pub struct Join {
    pub network: String,
    pub shape: Shape,
    /// Where the lab's `mgmt:` is written.
    pub at: Span,
    pub lab: String,
    pub file: String,
    pub nodes: Vec<Want>,
}

/// A node's management link: the addresses compile gave it (one per subnet, in the
/// subnets' order), and those the file wrote, which it keeps.
#[derive(Debug, Clone)]
pub struct Want {
    pub node: String,
    pub planned: Vec<IpNet>,
    pub written: Vec<IpNet>,
    pub at: Span,
}

/// A refusal at the place in the lab's file it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub at: Span,
    pub what: String,
}

/// The alias of a shared network's bridge: the kernel's proof it is nslab's shared
/// network `network`, not any one lab's (their interfaces carry `nslab:<lab>`).
pub fn shared_tag(network: &str) -> String {
    format!("nslab-mgmt:{network}")
}

/// The registry's path: `<run_dir>/mgmt/<network>.json`. The name was checked as a lab
/// name is, so it is one path component.
pub fn path(host: &HostContext, network: &str) -> PathBuf {
    host.run_dir.join("mgmt").join(format!("{network}.json"))
}

/// The registry, `None` when no lab is on the network.
pub fn read(host: &HostContext, network: &str) -> Result<Option<Registry>, StateError> {
    let p = path(host, network);
    files::no_link(&host.run_dir.join("mgmt"))?;
    let text = match files::read(&p) {
        Ok(t) => t,
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let reg: Registry = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
        path: p.clone(),
        line: e.line(),
        msg: e.to_string(),
    })?;
    // The registry is written back by the name inside it: one naming another network
    // (or a path) would write that network's file, or one outside `mgmt/`.
    if reg.network != network {
        return Err(StateError::Corrupt {
            path: p,
            line: 1,
            msg: format!(
                "it is the registry of network `{}`, not `{network}`",
                reg.network.escape_debug()
            ),
        });
    }
    Ok(Some(reg))
}

/// Writes the registry, or removes it when no member is left.
pub fn write(host: &HostContext, reg: &Registry) -> Result<(), StateError> {
    let p = path(host, &reg.network);
    // Removing, too, never goes through a link at `mgmt/`.
    files::no_link(&host.run_dir.join("mgmt"))?;
    if reg.members.is_empty() {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StateError::io(&p, e));
            }
            _ => {}
        }
        // The directory goes with the last network (another's registry keeps it).
        let _ = std::fs::remove_dir(host.run_dir.join("mgmt"));
        return Ok(());
    }
    files::ensure_root(&host.run_dir)?;
    files::ensure_dir(&host.run_dir.join("mgmt"))?;
    let json = serde_json::to_vec_pretty(reg).expect("a registry serializes");
    files::replace(&p, &json)
}

/// The lab joins `reg` (or starts the network when `reg` is `None`): the network must
/// be the shape the members agreed on, the addresses its file wrote must be free, and
/// the others are the lowest free ones of each subnet, in node order, after the
/// written ones. The same registry and lab always give the same addresses. A stale
/// membership of the same lab (one killed before its `down` finished) is replaced.
pub fn join(reg: Option<Registry>, j: &Join) -> Result<(Registry, Vec<Held>), Vec<Refusal>> {
    place(reg, j, false)
}

/// [`join`] for a lab that is on the network and stays (`apply`, or `plan` of a running
/// lab): each node keeps the address it holds in a subnet unless its file now writes
/// another or someone else holds it; nodes new to the network get the lowest free ones,
/// and the addresses of nodes no longer on it are free again in the result.
pub fn rejoin(reg: Option<Registry>, j: &Join) -> Result<(Registry, Vec<Held>), Vec<Refusal>> {
    place(reg, j, true)
}

/// [`join`] and [`rejoin`]: `keep` says whether the lab's current membership is kept
/// from, or replaced as stale.
fn place(
    reg: Option<Registry>,
    j: &Join,
    keep: bool,
) -> Result<(Registry, Vec<Held>), Vec<Refusal>> {
    let mut reg = reg.unwrap_or_else(|| Registry {
        network: j.network.clone(),
        shape: j.shape.clone(),
        members: Vec::new(),
    });
    let mine = reg
        .members
        .iter()
        .find(|m| m.lab == j.lab && keep)
        .map(|m| m.nodes.clone())
        .unwrap_or_default();
    reg.members.retain(|m| m.lab != j.lab);
    if reg.shape != j.shape && !reg.members.is_empty() {
        return Err(vec![mismatch(&reg, j)]);
    }
    if reg.members.is_empty() {
        reg.shape = j.shape.clone();
    }
    let mut refused = written_refusals(&reg, j);
    let mut used: HashSet<IpAddr> = reg.shape.host.iter().map(IpNet::addr).collect();
    for m in &reg.members {
        used.extend(
            m.nodes
                .iter()
                .flat_map(|n| n.addresses.iter().map(IpNet::addr)),
        );
    }
    used.extend(
        j.nodes
            .iter()
            .flat_map(|w| w.written.iter().map(IpNet::addr)),
    );
    // What each node keeps, taken before any node new to the network is given one, so
    // an earlier new node never takes a later node's address.
    let kept: Vec<Vec<Option<IpNet>>> = j
        .nodes
        .iter()
        .map(|w| {
            let held = mine.iter().find(|h| h.node == w.node);
            w.planned
                .iter()
                .map(|p| {
                    if w.written.contains(p) {
                        return Some(*p);
                    }
                    let a = held?
                        .addresses
                        .iter()
                        .find(|a| a.trunc() == p.trunc() && !used.contains(&a.addr()))?;
                    used.insert(a.addr());
                    Some(*a)
                })
                .collect()
        })
        .collect();
    let mut held = Vec::with_capacity(j.nodes.len());
    for (w, kept) in j.nodes.iter().zip(kept) {
        let mut addresses = Vec::with_capacity(w.planned.len());
        for (p, k) in w.planned.iter().zip(kept) {
            match k.or_else(|| lowest_free(p, &used)) {
                Some(a) => {
                    used.insert(a.addr());
                    addresses.push(a);
                }
                None => refused.push(Refusal {
                    at: j.at,
                    what: format!(
                        "network `{}`: subnet {} has no address left for node `{}` (its labs hold the rest)",
                        j.network,
                        p.trunc(),
                        w.node
                    ),
                }),
            }
        }
        held.push(Held {
            node: w.node.clone(),
            addresses,
        });
    }
    if !refused.is_empty() {
        return Err(refused);
    }
    reg.members.push(Member {
        lab: j.lab.clone(),
        file: j.file.clone(),
        nodes: held.clone(),
    });
    Ok((reg, held))
}

/// The lab's written addresses that another member holds, each at its node's line.
fn written_refusals(reg: &Registry, j: &Join) -> Vec<Refusal> {
    let holder = |a: IpAddr| {
        reg.members.iter().find_map(|m| {
            let n = m
                .nodes
                .iter()
                .find(|n| n.addresses.iter().any(|x| x.addr() == a))?;
            Some((m.lab.clone(), m.file.clone(), n.node.clone()))
        })
    };
    let mut refused = Vec::new();
    for w in &j.nodes {
        for a in &w.written {
            if let Some((lab, file, node)) = holder(a.addr()) {
                refused.push(Refusal {
                    at: w.at,
                    what: format!(
                        "node `{}`: mgmt address {} of network `{}` is held by node `{node}` of lab `{lab}` ({file})",
                        w.node,
                        a.addr(),
                        j.network
                    ),
                });
            }
        }
    }
    refused
}

/// What a lab holds while an `apply` changes it: what it held and what it will hold,
/// node by node, so neither is handed to another lab before the change is over (it may
/// yet be rolled back).
pub fn union(before: &[Held], after: &[Held]) -> Vec<Held> {
    let mut out = before.to_vec();
    for h in after {
        match out.iter_mut().find(|o| o.node == h.node) {
            Some(o) => {
                for a in &h.addresses {
                    if !o.addresses.contains(a) {
                        o.addresses.push(*a);
                    }
                }
            }
            None => out.push(h.clone()),
        }
    }
    out
}

/// Sets `lab`'s membership to `nodes` (added last when it is new), refusing an address
/// another member holds (one freed by a leave and taken since, say): the refusal names
/// every such address, and the node and lab holding it.
pub fn set_member(
    reg: &mut Registry,
    lab: &str,
    file: &str,
    nodes: Vec<Held>,
) -> Result<(), String> {
    let taken = held_by_others(reg, lab, &nodes);
    if !taken.is_empty() {
        return Err(taken.join("; "));
    }
    match reg.members.iter_mut().find(|m| m.lab == lab) {
        Some(m) => m.nodes = nodes,
        None => reg.members.push(Member {
            lab: lab.to_string(),
            file: file.to_string(),
            nodes,
        }),
    }
    Ok(())
}

/// Each address of `nodes` that a member other than `lab` holds, in the registry's
/// order, as `network `N`: mgmt address A is held by node `n` of lab `l` now`.
pub fn held_by_others(reg: &Registry, lab: &str, nodes: &[Held]) -> Vec<String> {
    let mut out = Vec::new();
    for m in reg.members.iter().filter(|m| m.lab != lab) {
        for n in &m.nodes {
            for a in n.addresses.iter().filter(|a| {
                nodes
                    .iter()
                    .any(|x| x.addresses.iter().any(|b| b.addr() == a.addr()))
            }) {
                out.push(format!(
                    "network `{}`: mgmt address {} is held by node `{}` of lab `{}` now",
                    reg.network,
                    a.addr(),
                    n.node,
                    m.lab
                ));
            }
        }
    }
    out
}

/// The refusal of a lab whose `mgmt:` describes the network otherwise than its members.
fn mismatch(reg: &Registry, j: &Join) -> Refusal {
    let first = &reg.members[0];
    let show = |s: &Shape| {
        let host: Vec<String> = s.host.iter().map(|a| a.trunc().to_string()).collect();
        format!("bridge `{}`, subnets {}", s.bridge, host.join(" "))
    };
    Refusal {
        at: j.at,
        what: format!(
            "lab `{}` joins management network `{}` as {}, but lab `{}` ({}) made it as {}: labs on one network must agree on its subnets and bridge",
            j.lab,
            j.network,
            show(&j.shape),
            first.lab,
            first.file,
            show(&reg.shape)
        ),
    }
}

/// The lowest address of `planned`'s subnet that is neither the network's nor the
/// subnet-router anycast nor IPv4's broadcast, and not in `used`.
fn lowest_free(planned: &IpNet, used: &HashSet<IpAddr>) -> Option<IpNet> {
    let net = planned.trunc();
    let network = net.network();
    net.hosts()
        .filter(|a| *a != network)
        .find(|a| !used.contains(a))
        .and_then(|a| IpNet::new(a, net.prefix_len()).ok())
}

/// The lab leaves: `true` when it was the last member (the bridge and the registry go).
pub fn leave(reg: &mut Registry, lab: &str) -> bool {
    reg.members.retain(|m| m.lab != lab);
    reg.members.is_empty()
}

/// The networks whose registries name `lab` as a member, for a `down` whose journal was
/// lost.
pub fn memberships(host: &HostContext, lab: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(host.run_dir.join("mgmt")) else {
        return Vec::new();
    };
    let mut nets: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .filter(|n| crate::model::names::check_network_name(n).is_ok())
        .filter(|n| {
            read(host, n)
                .ok()
                .flatten()
                .is_some_and(|r| r.members.iter().any(|m| m.lab == lab))
        })
        .collect();
    nets.sort();
    nets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn shape(bridge: &str) -> Shape {
        Shape {
            bridge: bridge.into(),
            ifindex: 4000,
            host: vec![net("172.20.20.1/24"), net("3fff:172:20:20::1/64")],
        }
    }

    fn want(node: &str, planned: &[&str], written: &[&str]) -> Want {
        Want {
            node: node.into(),
            planned: planned.iter().map(|a| net(a)).collect(),
            written: written.iter().map(|a| net(a)).collect(),
            at: Span::new(7, 3, 2),
        }
    }

    fn lab(lab: &str, nodes: Vec<Want>) -> Join {
        Join {
            network: "clab".into(),
            shape: shape("br-clab"),
            at: Span::new(2, 7, 4),
            lab: lab.into(),
            file: format!("/labs/{lab}.yaml"),
            nodes,
        }
    }

    fn addrs(held: &[Held]) -> Vec<String> {
        held.iter()
            .flat_map(|h| h.addresses.iter().map(move |a| format!("{}={a}", h.node)))
            .collect()
    }

    const R: [&str; 2] = ["172.20.20.2/24", "3fff:172:20:20::2/64"];
    const S: [&str; 2] = ["172.20.20.3/24", "3fff:172:20:20::3/64"];

    #[test]
    fn the_second_lab_gets_the_addresses_after_the_first_labs() {
        let (reg, a) = join(
            None,
            &lab("a", vec![want("r1", &R, &[]), want("r2", &S, &[])]),
        )
        .expect("the first lab joins");
        // Alone on the network, a lab gets what compile planned.
        assert_eq!(
            addrs(&a),
            [
                "r1=172.20.20.2/24",
                "r1=3fff:172:20:20::2/64",
                "r2=172.20.20.3/24",
                "r2=3fff:172:20:20::3/64"
            ]
        );
        // The second lab planned the same addresses, alone; joining, it gets the next ones.
        let (reg, b) = join(Some(reg), &lab("b", vec![want("r1", &R, &[])])).expect("joins");
        assert_eq!(addrs(&b), ["r1=172.20.20.4/24", "r1=3fff:172:20:20::4/64"]);
        let labs: Vec<&str> = reg.members.iter().map(|m| m.lab.as_str()).collect();
        assert_eq!(labs, ["a", "b"]);
        // Deterministic: the same order of `up`s gives the same addresses.
        let (_, again) = join(Some(reg.clone()), &lab("b", vec![want("r1", &R, &[])])).unwrap();
        assert_eq!(
            again, b,
            "a stale membership of b is replaced, not added to"
        );
        // Leaving frees the addresses; the last one out says so.
        let mut reg = reg;
        assert!(!leave(&mut reg, "a"));
        let (_, c) = join(Some(reg.clone()), &lab("c", vec![want("x", &R, &[])])).unwrap();
        assert_eq!(
            addrs(&c)[0],
            "x=172.20.20.2/24",
            "a's address is free again"
        );
        assert!(leave(&mut reg, "b"));
        assert!(reg.members.is_empty());
    }

    #[test]
    fn a_running_lab_keeps_what_its_nodes_hold_and_frees_what_removed_nodes_held() {
        let (reg, _) = join(None, &lab("a", vec![want("r1", &R, &[])])).unwrap();
        let (reg, b) = join(
            Some(reg),
            &lab("b", vec![want("h1", &R, &[]), want("h2", &S, &[])]),
        )
        .unwrap();
        assert_eq!(addrs(&b)[0], "h1=172.20.20.3/24");
        assert_eq!(addrs(&b)[2], "h2=172.20.20.4/24");
        // b drops h1 and adds h0 before h2: h2 keeps .4, h0 gets the lowest free (.3,
        // h1's), where a fresh `join` would have moved h2.
        let next = lab("b", vec![want("h0", &R, &[]), want("h2", &S, &[])]);
        let (after, got) = rejoin(Some(reg.clone()), &next).unwrap();
        assert_eq!(
            addrs(&got),
            [
                "h0=172.20.20.3/24",
                "h0=3fff:172:20:20::3/64",
                "h2=172.20.20.4/24",
                "h2=3fff:172:20:20::4/64"
            ]
        );
        let fresh = join(Some(reg.clone()), &next).unwrap().1;
        assert_eq!(addrs(&fresh)[2], "h2=172.20.20.4/24");
        assert_eq!(after.members.len(), 2);
        assert_eq!(after.members[1].nodes, got);
        // A node whose file now writes an address holds that one instead.
        let moved = lab(
            "b",
            vec![want("h2", &["172.20.20.9/24", S[1]], &["172.20.20.9/24"])],
        );
        let (_, got) = rejoin(Some(reg.clone()), &moved).unwrap();
        assert_eq!(addrs(&got)[0], "h2=172.20.20.9/24");
        // Not a member yet (a lab switching networks): as `join`.
        let (_, c) = rejoin(Some(reg.clone()), &lab("c", vec![want("x", &R, &[])])).unwrap();
        assert_eq!(addrs(&c)[0], "x=172.20.20.5/24");
        // While the change runs the lab holds both; once over, only the new.
        let mid = union(&reg.members[1].nodes, &got);
        let h2 = mid.iter().find(|h| h.node == "h2").unwrap();
        assert_eq!(h2.addresses.len(), 3, "{mid:?}");
        assert!(mid.iter().any(|h| h.node == "h1"), "{mid:?}");
        let mut r = reg.clone();
        set_member(&mut r, "b", "/labs/b.yaml", mid).unwrap();
        assert_eq!(r.members.len(), 2);
        // An address another member holds is never set (one taken while freed).
        let stolen = vec![Held {
            node: "h9".into(),
            addresses: vec![net("172.20.20.2/24")],
        }];
        let e = set_member(&mut r, "b", "/labs/b.yaml", stolen).expect_err("held by a");
        assert!(e.contains("172.20.20.2") && e.contains("lab `a`"), "{e}");
    }

    #[test]
    fn a_written_address_another_lab_holds_is_refused_naming_both() {
        let written = ["172.20.20.9/24", "3fff:172:20:20::2/64"];
        let (reg, _) = join(
            None,
            &lab("a", vec![want("r1", &written, &["172.20.20.9/24"])]),
        )
        .unwrap();
        // b writes the address a's r1 holds, and plans one a holds by allocation: only
        // the written one is an error; the planned one moves.
        let e = join(
            Some(reg.clone()),
            &lab(
                "b",
                vec![want(
                    "h1",
                    &["172.20.20.9/24", "3fff:172:20:20::2/64"],
                    &["172.20.20.9/24"],
                )],
            ),
        )
        .expect_err("refused");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].at, Span::new(7, 3, 2));
        for part in [
            "node `h1`",
            "172.20.20.9",
            "node `r1` of lab `a`",
            "/labs/a.yaml",
        ] {
            assert!(e[0].what.contains(part), "{part}: {}", e[0].what);
        }
        // A written address no one holds is kept, and skipped by the others' allocation.
        let (_, b) = join(
            Some(reg),
            &lab(
                "b",
                vec![
                    want("h1", &R, &[]),
                    want(
                        "h2",
                        &["172.20.20.2/24", "3fff:172:20:20::5/64"],
                        &["172.20.20.2/24"],
                    ),
                ],
            ),
        )
        .unwrap();
        assert_eq!(
            addrs(&b),
            [
                "h1=172.20.20.3/24",
                "h1=3fff:172:20:20::3/64",
                "h2=172.20.20.2/24",
                "h2=3fff:172:20:20::4/64"
            ]
        );
    }

    #[test]
    fn a_lab_describing_the_network_otherwise_is_refused_naming_the_first() {
        let (reg, _) = join(None, &lab("a", vec![want("r1", &R, &[])])).unwrap();
        let mut other = lab("b", vec![]);
        other.shape.host = vec![net("172.20.30.1/24")];
        let e = join(Some(reg.clone()), &other).expect_err("refused");
        assert_eq!(e[0].at, Span::new(2, 7, 4));
        for part in [
            "lab `b`",
            "lab `a` (/labs/a.yaml)",
            "172.20.30.0/24",
            "172.20.20.0/24",
            "agree",
        ] {
            assert!(e[0].what.contains(part), "{part}: {}", e[0].what);
        }
        let mut other = lab("b", vec![]);
        other.shape.bridge = "br-other".into();
        assert!(join(Some(reg.clone()), &other).is_err());
        // Once its members are gone, the network may come back otherwise.
        let mut reg = reg;
        leave(&mut reg, "a");
        let mut other = lab("b", vec![]);
        other.shape.bridge = "br-other".into();
        assert_eq!(join(Some(reg), &other).unwrap().0.shape.bridge, "br-other");
    }

    #[test]
    fn a_full_subnet_is_an_error_at_the_labs_mgmt() {
        let mut j = lab(
            "a",
            vec![
                want("r1", &["10.9.0.2/30"], &[]),
                want("r2", &["10.9.0.2/30"], &[]),
            ],
        );
        j.shape.host = vec![net("10.9.0.1/30")];
        let e = join(None, &j).expect_err("a /30 holds the host and one node");
        assert!(e[0].what.contains("no address left for node `r2`"), "{e:?}");
    }

    #[test]
    fn the_registry_file_is_the_owners_alone_never_through_a_link_and_goes_with_the_last() {
        use std::os::unix::fs::MetadataExt;
        let (dir, host) = scratch("file");
        assert_eq!(read(&host, "clab").unwrap(), None);
        let (reg, _) = join(None, &lab("a", vec![want("r1", &R, &[])])).unwrap();
        write(&host, &reg).unwrap();
        let p = path(&host, "clab");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(read(&host, "clab").unwrap(), Some(reg.clone()));
        assert_eq!(memberships(&host, "a"), ["clab"]);
        assert!(memberships(&host, "b").is_empty());
        // A link planted as the registry is refused, never followed.
        std::fs::remove_file(&p).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "{}").unwrap();
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        assert!(matches!(read(&host, "clab"), Err(StateError::Link(_))));
        std::fs::remove_file(&p).unwrap();
        write(&host, &reg).unwrap();
        let mut reg = reg;
        assert!(leave(&mut reg, "a"));
        write(&host, &reg).unwrap();
        assert!(!p.exists(), "the last member out removes the registry");
        assert!(!dir.join("mgmt").exists(), "and its directory, now empty");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "{}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn scratch(tag: &str) -> (PathBuf, HostContext) {
        crate::state::scratch_host("mgmtnet", tag)
    }

    #[test]
    fn a_registry_naming_another_network_is_refused_and_never_written_elsewhere() {
        let (dir, host) = scratch("forged");
        let (reg, _) = join(None, &lab("a", vec![want("r1", &R, &[])])).unwrap();
        std::fs::create_dir(dir.join("mgmt")).unwrap();
        // A half-written or forged file at clab.json that says it is another network's (or
        // names a path out of mgmt/): joining or leaving clab must not write by that name.
        for forged in ["other", "../victim"] {
            let mut bad = reg.clone();
            bad.network = forged.into();
            let text = serde_json::to_string(&bad).unwrap();
            std::fs::write(path(&host, "clab"), &text).unwrap();
            // What a `leave-mgmt` of lab `b` does with what it reads.
            if let Ok(Some(mut r)) = read(&host, "clab") {
                leave(&mut r, "b");
                let _ = write(&host, &r);
            }
            let e = read(&host, "clab").expect_err(forged);
            assert!(matches!(e, StateError::Corrupt { .. }), "{forged}: {e}");
            assert!(e.to_string().contains(forged), "{forged}: {e}");
            assert_eq!(std::fs::read_to_string(path(&host, "clab")).unwrap(), text);
        }
        assert!(!path(&host, "other").exists());
        assert!(!dir.join("victim.json").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_last_member_out_never_removes_through_a_linked_mgmt_directory() {
        let (dir, host) = scratch("linkdir");
        let (reg, _) = join(None, &lab("a", vec![want("r1", &R, &[])])).unwrap();
        // mgmt/ is a link to another directory holding a file of the registry's name.
        let elsewhere = dir.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("clab.json"), "keep").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("mgmt")).unwrap();
        let mut reg = reg;
        assert!(leave(&mut reg, "a"));
        assert!(matches!(write(&host, &reg), Err(StateError::Link(_))));
        assert_eq!(
            std::fs::read_to_string(elsewhere.join("clab.json")).unwrap(),
            "keep"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
