//! The VNIs other labs on this host already use, read from their stored plans: a VXLAN's
//! VNI may be used once per host and UDP port, across every lab (see `plan::share`).

use std::collections::BTreeSet;

use super::{HostContext, LabDir};
use crate::plan::{LinkSpec, Op};

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
