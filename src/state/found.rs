//! Every lab something of which nslab recorded on this host, and where: `ls` and
//! `down --all` must find a lab that only one record names (a journal deleted by hand
//! leaves its summary and plan; a member whose files are all gone is still in its shared
//! network's registry), or the lab holds its addresses and files forever.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{HostContext, mgmtnet};

/// What is known of a lab from its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Seen {
    /// Its journal says `up` finished, and no `apply` is left half done.
    Up,
    /// Something of it is on record, but not a finished `up`: an `up` or `apply` cut
    /// short (or running now), a journal deleted, files left behind.
    Partial,
    /// Only a shared management network's registry names it: a member whose own state
    /// is gone, holding addresses on the network.
    Orphaned,
}

impl Seen {
    pub fn word(self) -> &'static str {
        match self {
            Seen::Up => "up",
            Seen::Partial => "partial",
            Seen::Orphaned => "orphaned",
        }
    }
}

/// One lab, its state, and the records that name it (`journal`, `summary`,
/// `registry smnet`, ...), in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub lab: String,
    pub state: Seen,
    pub records: Vec<String>,
}

impl Found {
    /// Whether only a lock file names the lab (a command killed after the lab was gone):
    /// nothing of it is left to take down, and the lock goes with the next command.
    pub fn only_lock(&self) -> bool {
        self.records == ["lock"]
    }
}

/// A lab's files in the run directory, by the suffix after `<lab>.`, and what each is
/// called in `ls` (see `LabDir` and `NodePaths`). The order is the order shown.
const SUFFIXES: [(&str, &str); 12] = [
    ("journal", "journal"),
    ("json", "summary"),
    ("plan.json", "plan"),
    ("plan.next.json", "next plan"),
    ("yaml", "source"),
    ("events", "events"),
    ("vnis.json", "vni claim"),
    ("nodes", "pid files"),
    ("logs", "logs"),
    ("host-sysctls", "host sysctls"),
    ("holder", "holder"),
    ("lock", "lock"),
];

/// Every lab on record on this host, sorted by name: from its files in the run directory
/// and from the shared management networks' registries. Nothing is followed through a
/// link and nothing is written; a name that is not a lab name is skipped.
pub fn find(host: &HostContext) -> Vec<Found> {
    let mut records: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for name in names_in(&host.run_dir) {
        let Some((lab, suffix)) = name.split_once('.') else {
            continue;
        };
        if crate::model::names::check_lab_name(lab).is_err() {
            continue;
        }
        if let Some(i) = SUFFIXES.iter().position(|(s, _)| *s == suffix) {
            records
                .entry(lab.to_string())
                .or_default()
                .push((i, SUFFIXES[i].1.to_string()));
        }
    }
    for network in networks(host) {
        let Ok(Some(reg)) = mgmtnet::read(host, &network) else {
            continue;
        };
        for m in reg.members {
            if crate::model::names::check_lab_name(&m.lab).is_ok() {
                records
                    .entry(m.lab)
                    .or_default()
                    .push((SUFFIXES.len(), format!("registry {network}")));
            }
        }
    }
    records
        .into_iter()
        .map(|(lab, mut recs)| {
            recs.sort();
            let records: Vec<String> = recs.into_iter().map(|(_, r)| r).collect();
            Found {
                state: state_of(host, &lab, &records),
                lab,
                records,
            }
        })
        .collect()
}

/// `up` only from a journal with a finished `up` and no unfinished `apply`; a lab named
/// by registries alone is orphaned; anything else is partial.
fn state_of(host: &HostContext, lab: &str, records: &[String]) -> Seen {
    if records.iter().all(|r| r.starts_with("registry ")) {
        return Seen::Orphaned;
    }
    let journal = host.lab_dir(lab).journal_path();
    match super::apply_state(&journal) {
        Ok((true, None)) => Seen::Up,
        _ => Seen::Partial,
    }
}

/// The shared networks with a registry here, by a name that is a network's.
fn networks(host: &HostContext) -> Vec<String> {
    let dir = host.run_dir.join("mgmt");
    if super::files::no_link(&dir).is_err() {
        return Vec::new();
    }
    names_in(&dir)
        .into_iter()
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .filter(|n| crate::model::names::check_network_name(n).is_ok())
        .collect()
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::mgmtnet::{Held, Member, Registry, Shape};

    fn scratch(tag: &str) -> (std::path::PathBuf, HostContext) {
        crate::state::scratch_host("found", tag)
    }

    fn member(lab: &str) -> Member {
        Member {
            lab: lab.into(),
            file: format!("/labs/{lab}.yaml"),
            nodes: vec![Held {
                node: "r1".into(),
                addresses: vec!["172.20.20.2/24".parse().unwrap()],
            }],
        }
    }

    #[test]
    fn every_record_names_its_lab_and_the_state_follows_from_them() {
        let (dir, host) = scratch("records");
        let up = "{\"record\":\"up\",\"finished\":0}\n";
        std::fs::write(dir.join("ok.journal"), up).unwrap();
        std::fs::write(dir.join("ok.json"), "{}").unwrap();
        // An `up` cut short: a journal without its `up` record.
        std::fs::write(dir.join("cut.journal"), "").unwrap();
        // The journal deleted by hand: the summary, the plan and the pid files are left.
        std::fs::write(dir.join("nojrnl.json"), "{}").unwrap();
        std::fs::write(dir.join("nojrnl.plan.json"), "{}").unwrap();
        std::fs::create_dir(dir.join("nojrnl.nodes")).unwrap();
        std::fs::write(dir.join("lockonly.lock"), "").unwrap();
        // Not a lab's: the host's own files, names that are no lab's, unknown suffixes.
        for other in [".netns-dir", "Bad.journal", "x.unknown", "mgmtx"] {
            std::fs::write(dir.join(other), "").unwrap();
        }
        let reg = Registry {
            network: "clab".into(),
            shape: Shape {
                bridge: "br-clab".into(),
                ifindex: 4000,
                host: vec!["172.20.20.1/24".parse().unwrap()],
            },
            members: vec![member("ok"), member("gone")],
        };
        mgmtnet::write(&host, &reg).unwrap();
        let found = find(&host);
        let got: Vec<(&str, &str, String)> = found
            .iter()
            .map(|f| (f.lab.as_str(), f.state.word(), f.records.join(",")))
            .collect();
        assert_eq!(
            got,
            [
                ("cut", "partial", "journal".to_string()),
                ("gone", "orphaned", "registry clab".to_string()),
                ("lockonly", "partial", "lock".to_string()),
                ("nojrnl", "partial", "summary,plan,pid files".to_string()),
                ("ok", "up", "journal,summary,registry clab".to_string()),
            ]
        );
        assert!(found[2].only_lock() && !found[0].only_lock());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_apply_cut_short_is_partial_and_a_linked_registry_directory_is_not_read() {
        let (dir, host) = scratch("apply");
        let up = "{\"record\":\"up\",\"finished\":0}\n";
        let apply = "{\"record\":\"apply\",\"pid\":1,\"started\":0,\"file\":\"f\"}\n";
        std::fs::write(dir.join("mid.journal"), format!("{up}{apply}")).unwrap();
        let elsewhere = dir.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let reg = Registry {
            network: "clab".into(),
            shape: Shape {
                bridge: "br-clab".into(),
                ifindex: 4000,
                host: vec![],
            },
            members: vec![member("planted")],
        };
        std::fs::write(
            elsewhere.join("clab.json"),
            serde_json::to_vec(&reg).unwrap(),
        )
        .unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("mgmt")).unwrap();
        let found = find(&host);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].lab.as_str(), found[0].state),
            ("mid", Seen::Partial)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
