//! The VNIs other labs on this host already use, read from their stored plans: a VXLAN's
//! VNI may be used once per host and UDP port, across every lab (see `plan::share`).

use std::collections::BTreeSet;

use super::{HostContext, LabDir};
use crate::plan::{LinkSpec, Op};

/// The plan this host makes of `t`: the whole lab, or with `host.host` its share, whose
/// VNIs step around those other labs on this host already use. The error says what is
/// wrong with the host's name, for a usage error.
pub fn host_plan(
    host: &HostContext,
    t: &crate::model::Topology,
) -> Result<crate::plan::Plan, String> {
    let Some(name) = &host.host else {
        return Ok(crate::plan::plan(t));
    };
    if t.hosts.is_empty() {
        return Err(format!(
            "--host {name}: lab `{}` declares no `hosts:`; drop --host to run it all here",
            t.lab
        ));
    }
    let used = taken(host, &t.lab, t.vxlan_port);
    match crate::plan::share::Share::of(t, name, &used) {
        Some(share) => Ok(crate::plan::plan_share(t, &share)),
        None => Err(format!(
            "--host {name}: lab `{}` has no host `{name}`; its hosts: {}",
            t.lab,
            t.hosts
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// VNIs on `port` in the stored plans (and unfinished applies) of every lab but `lab`. A
/// plan that cannot be read counts as none: a broken lab's VNIs are the kernel's to refuse
/// (`EEXIST`), which names the clash.
pub fn taken(host: &HostContext, lab: &str, port: u16) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for other in host.labs().into_iter().filter(|l| l != lab) {
        let dir = host.lab_dir(&other);
        for path in [dir.plan_path(), dir.next_plan_path()] {
            let Ok(plan) = LabDir::read_plan(&path) else {
                continue;
            };
            for s in &plan.steps {
                if let Op::CreateLink(l) = &s.op
                    && let LinkSpec::Vxlan(v) = &l.kind
                    && v.port == port
                {
                    out.insert(v.vni);
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
    fn other_labs_stored_plans_hold_the_taken_vnis_of_their_port() {
        let dir = std::env::temp_dir().join(format!("nslab-vnis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let host = HostContext {
            run_dir: dir.clone(),
            netns_dir: dir.join("netns"),
            privileged: false,
            host: Some("ha".into()),
        };
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
        assert_eq!(seen[0], BTreeSet::from([5000]));
        assert_eq!(seen[1], BTreeSet::from([6000]));
        assert!(seen[2].is_empty());
    }
}
