//! Whether a lab's VNIs are free on this host: a VXLAN's VNI may be used once per host
//! and UDP port, across every lab and tool (see `plan::share`). Other labs' VNIs are read
//! from their stored plans, other tools' from the VXLAN devices in this host's namespace.
//! A clash is an error, never a quiet move to another VNI: the other hosts compute the
//! lab's VNIs from the file alone and would keep the old one.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use super::{HostContext, LabDir, StateError};
use crate::plan::share::{self, BLOCK, BLOCKS, Share};
use crate::plan::{LinkSpec, Op};

/// The plan this host makes of `t`: the whole lab, or with `host.host` its share, once
/// its VNIs are known to be free here. The error says what is wrong with the host's name,
/// or which VNIs are held and by whom.
pub fn host_plan(
    host: &HostContext,
    t: &crate::model::Topology,
) -> Result<crate::plan::Plan, StateError> {
    let Some(name) = &host.host else {
        return Ok(crate::plan::plan(t));
    };
    let share = share_of(t, name)?;
    check(host, t, &share)?;
    Ok(crate::plan::plan_share(t, &share))
}

/// The file in the run directory that the [`VniLock`] locks; it stays, empty.
pub const VNI_LOCK: &str = ".vnis.lock";

/// The host-wide lock on VNIs: a `flock` on [`VNI_LOCK`] in the run directory, a file of
/// the owner's alone (the directory anyone may open and `flock`). It is in the run
/// directory, beside the claims and stored plans it guards, so every nslab that reads
/// them (an agent's container too, which shares only that directory) locks the same
/// file. It is held only from checking a lab's VNIs until they are claimed on file
/// ([`VniLock::claim`], where [`taken`] reads them), so of two labs racing for one VNI
/// the second sees the first's claim and gets the clash message, not the kernel's
/// `EEXIST` halfway through, while labs on other VNIs come up side by side.
pub struct VniLock {
    _dir: Flock<File>,
    /// What the lab was checked for, which [`VniLock::claim`] records.
    claim: Claim,
}

/// A lab's VNIs on one UDP port, as `<lab>.vnis.json` records them.
#[derive(serde::Serialize, serde::Deserialize)]
struct Claim {
    port: u16,
    vnis: Vec<u32>,
}

/// Checks again, under the [`VniLock`], that the VNIs of this host's share of `t` are
/// free, and returns the lock, to hold until the lab claims them; `None` for a lab with no
/// tunnels here, which has nothing to check or claim.
pub fn lock_free(
    host: &HostContext,
    t: &crate::model::Topology,
) -> Result<Option<VniLock>, StateError> {
    let Some(name) = &host.host else {
        return Ok(None);
    };
    let share = share_of(t, name)?;
    let tunnels = share.tunnels(t);
    if tunnels.is_empty() {
        return Ok(None);
    }
    let dir = VniLock::acquire(&host.run_dir)?;
    check(host, t, &share)?;
    let claim = Claim {
        port: t.vxlan_port,
        vnis: tunnels.iter().map(|tu| tu.vni).collect(),
    };
    Ok(Some(VniLock { _dir: dir, claim }))
}

/// Drops the lab's claim once a stored plan holds its VNIs (or a rollback gave them up);
/// a claim this misses holds no more than the plan and goes with the lab's files.
pub fn release(dir: &LabDir) {
    let _ = std::fs::remove_file(dir.vnis_path());
}

impl VniLock {
    /// Records the checked VNIs beside the lab's journal and releases the lock: from here
    /// [`taken`] sees them as the lab's until its `down` (or rollback) removes its files,
    /// also after a `kill -9`, so the rest of `up` or `apply` needs no host-wide lock. The
    /// journal must exist already: other labs find this one by it.
    pub fn claim(self, dir: &LabDir) -> Result<(), StateError> {
        let json = serde_json::to_vec(&self.claim).expect("a claim serializes");
        super::files::replace(&dir.vnis_path(), &json)
    }

    fn acquire(dir: &Path) -> Result<Flock<File>, StateError> {
        loop {
            super::files::ensure_root(dir)?;
            let path = dir.join(VNI_LOCK);
            let file = super::lock::open_lock_file(&path)?;
            let locked = Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, e)| StateError::io(&path, e.into()))?;
            if super::lock::still_at(&locked, &path) {
                return Ok(locked);
            }
        }
    }
}

/// The share of `t` that host `name` runs.
fn share_of(t: &crate::model::Topology, name: &str) -> Result<Share, StateError> {
    if t.hosts.is_empty() {
        return Err(StateError::NoHosts {
            host: name.to_string(),
            lab: t.lab.clone(),
        });
    }
    Share::of(t, name).ok_or_else(|| StateError::NoSuchHost {
        host: name.to_string(),
        lab: t.lab.clone(),
        hosts: t.hosts.iter().map(|h| h.name.clone()).collect(),
    })
}

/// Whether every VNI of `share` is free here: held neither by another lab's stored plan
/// nor by a VXLAN device of this host's namespace.
fn check(host: &HostContext, t: &crate::model::Topology, share: &Share) -> Result<(), StateError> {
    let mut held = taken(host, &t.lab, t.vxlan_port);
    held.extend(devices(host, t.vxlan_port)?);
    match clashes(t, share, &held) {
        None => Ok(()),
        Some(why) => Err(StateError::VnisHeld(why)),
    }
}

/// The VXLAN devices in this host's namespace on `port`, by VNI. Listing needs no root;
/// when it fails unprivileged (a `plan` in a sandbox) nothing is known to be held.
fn devices(host: &HostContext, port: u16) -> Result<BTreeMap<u32, String>, StateError> {
    match crate::apply::inspect::host_vxlans() {
        Ok(devs) => Ok(devs
            .into_iter()
            .filter(|d| d.port == port)
            .map(|d| {
                (
                    d.vni,
                    format!("VXLAN device `{}` in this host's namespace", d.name),
                )
            })
            .collect()),
        Err(e) if host.privileged => Err(StateError::VxlanDevices(e)),
        Err(_) => Ok(BTreeMap::new()),
    }
}

/// The error for the tunnels of `share` whose VNI `held` names a holder of, all at once;
/// `None` when every one is free.
pub fn clashes(
    t: &crate::model::Topology,
    s: &Share,
    held: &BTreeMap<u32, String>,
) -> Option<String> {
    let lines: Vec<String> = s
        .tunnels(t)
        .iter()
        .filter_map(|tu| {
            held.get(&tu.vni)
                .map(|who| format!("  {}: VNI {}, held by {who}", tu.what, tu.vni))
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    let base = share::block_base(t);
    let free = (1..=BLOCKS)
        .map(|k| k * BLOCK)
        .find(|b| *b != base && held.range(*b..*b + BLOCK).next().is_none());
    let like = free.map_or(String::new(), |b| {
        format!(", like `vxlan: {{ vni: {b} }}` (a block nothing here uses)")
    });
    Some(format!(
        "host {}: lab `{}` cannot make its tunnels: {} on UDP port {} already held here\n{}\n\
         nslab does not pick other VNIs on its own: the other hosts compute the same VNIs from \
         the file and would not know, so the tunnels would be silently dead.\n\
         hint: move the lab's block of VNIs ({base}..{}) on every host at once with \
         `vxlan: {{ vni: N }}` in the file{like}, or give the lab another `vxlan: {{ port: P }}`",
        t.hosts[s.host].name,
        t.lab,
        crate::words::count(lines.len(), "VNI"),
        t.vxlan_port,
        lines.join("\n"),
        base + BLOCK - 1,
    ))
}

/// VNIs on `port` in the stored plans, unfinished applies and claims of every lab but
/// `lab`, each with its holder. A file that cannot be read counts as none: a broken lab's
/// VNIs are the kernel's to refuse (`EEXIST`).
pub fn taken(host: &HostContext, lab: &str, port: u16) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for other in host.labs().into_iter().filter(|l| l != lab) {
        let dir = host.lab_dir(&other);
        let mut held = |vni: u32| out.insert(vni, format!("lab `{other}`"));
        if let Ok(c) = super::files::read(&dir.vnis_path())
            && let Ok(c) = serde_json::from_str::<Claim>(&c)
            && c.port == port
        {
            c.vnis.into_iter().for_each(|v| {
                held(v);
            });
        }
        for path in [dir.plan_path(), dir.next_plan_path()] {
            let Ok(plan) = LabDir::read_plan(&path) else {
                continue;
            };
            for s in &plan.steps {
                if let Op::CreateLink(l) = &s.op
                    && let LinkSpec::Vxlan(v) = &l.kind
                    && v.port == port
                {
                    held(v.vni);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::links::{Link, Vxlan};
    use crate::plan::{Plan, Step};

    fn plan_with_vni(lab: &str, vni: u32, port: u16) -> Plan {
        Plan {
            lab: lab.into(),
            steps: vec![Step {
                id: 1,
                op: Op::CreateLink(Link {
                    netns: format!("nslab.{lab}.a").into(),
                    name: "eth0".into(),
                    ifindex: 2,
                    mac: [2, 0, 0, 0, 0, 1],
                    mtu: Some(1450),
                    master: None,
                    kind: LinkSpec::Vxlan(Vxlan {
                        vni,
                        port,
                        local: "192.0.2.1".parse().unwrap(),
                        remote: Some("192.0.2.2".parse().unwrap()),
                        flood: Vec::new(),
                    }),
                }),
                deps: vec![],
            }],
        }
    }

    #[test]
    fn a_host_name_that_does_not_fit_the_lab_is_a_usage_error_naming_its_hosts() {
        let compile = |yaml: &str| {
            crate::compile_str(yaml, "t.yaml", std::path::Path::new("/"))
                .unwrap()
                .topology
        };
        let host = |name: &str| HostContext {
            run_dir: "/nonexistent/run".into(),
            netns_dir: "/nonexistent/netns".into(),
            privileged: false,
            host: Some(name.into()),
        };
        let local = compile("name: vn-one\nnodes: { a: {} }\n");
        let e = host_plan(&host("ha"), &local).unwrap_err();
        assert!(e.is_usage());
        assert_eq!(
            e.to_string(),
            "--host ha: lab `vn-one` declares no `hosts:`; drop --host to run it all here"
        );
        let spread = compile(
            "name: vn-two\nhosts:\n  ha: { address: 192.0.2.1 }\n  hb: { address: 192.0.2.2 }\n\
             nodes:\n  a: { host: ha }\n  b: { host: hb }\n",
        );
        let e = host_plan(&host("hc"), &spread).unwrap_err();
        assert!(e.is_usage());
        assert_eq!(
            e.to_string(),
            "--host hc: lab `vn-two` has no host `hc`; its hosts: ha, hb"
        );
        // Without tunnels on this host there is nothing to check, or to lock.
        assert!(host_plan(&host("ha"), &spread).is_ok());
        assert!(lock_free(&host("ha"), &spread).unwrap().is_none());
    }

    /// Host `ha` with a run directory of its own in /tmp, which the test removes.
    fn scratch_host(name: &str) -> (std::path::PathBuf, HostContext) {
        let dir = std::env::temp_dir().join(format!("nslab-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let host = HostContext {
            run_dir: dir.clone(),
            netns_dir: dir.join("netns"),
            privileged: false,
            host: Some("ha".into()),
        };
        (dir, host)
    }

    #[test]
    fn other_labs_stored_plans_hold_the_taken_vnis_of_their_port() {
        let (dir, host) = scratch_host("vnis");
        for (lab, vni, port) in [("one", 5000, 14789), ("two", 6000, 4789)] {
            std::fs::write(dir.join(format!("{lab}.journal")), "").unwrap();
            let p = plan_with_vni(lab, vni, port);
            std::fs::write(host.lab_dir(lab).plan_path(), p.to_json()).unwrap();
        }
        let seen = [
            taken(&host, "me", 14789),
            taken(&host, "me", 4789),
            // A lab's own VNIs are its own to keep (an `apply` plans them again).
            taken(&host, "one", 14789),
        ];
        // Gone before the asserts, so a failure leaves nothing in /tmp.
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(seen[0], BTreeMap::from([(5000, "lab `one`".to_string())]));
        assert_eq!(seen[1], BTreeMap::from([(6000, "lab `two`".to_string())]));
        assert!(seen[2].is_empty());
    }

    #[test]
    fn a_claim_holds_the_checked_vnis_for_other_labs_until_the_labs_files_go() {
        let (dir, host) = scratch_host("vniclaim");
        let t = crate::compile_str(
            "name: vn-three\nhosts:\n  ha: { address: 192.0.2.1 }\n  hb: { address: 192.0.2.2 }\n\
             vxlan: { port: 14790 }\nnodes:\n  a: { host: ha }\n  b: { host: hb }\n\
             links:\n  - endpoints: [a:eth1, b:eth1]\n",
            "t.yaml",
            std::path::Path::new("/"),
        )
        .unwrap()
        .topology;
        let vni = share::vnis(&t)[0].unwrap();
        let lab = host.lab_dir("vn-three");
        std::fs::write(lab.journal_path(), "").unwrap();
        let before = taken(&host, "me", 14790);
        let claimed = lock_free(&host, &t).unwrap().unwrap().claim(&lab);
        let seen = [
            taken(&host, "me", 14790),
            taken(&host, "me", 4789),
            taken(&host, "vn-three", 14790),
        ];
        // Taken again at once: the claim released the host's VNI lock.
        let relocked = Flock::lock(
            File::open(dir.join(VNI_LOCK)).unwrap(),
            FlockArg::LockExclusiveNonblock,
        )
        .is_ok();
        lab.remove().unwrap();
        let after = taken(&host, "me", 14790);
        // The lock's own empty file stays, as the run directory does.
        let left = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != VNI_LOCK)
            .count();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(before.is_empty(), "{before:?}");
        claimed.unwrap();
        assert_eq!(
            seen[0],
            BTreeMap::from([(vni, "lab `vn-three`".to_string())])
        );
        assert!(seen[1].is_empty() && seen[2].is_empty(), "{seen:?}");
        assert!(relocked);
        assert!(after.is_empty(), "{after:?}");
        assert_eq!(left, 0, "the lab's files left something");
    }
}
