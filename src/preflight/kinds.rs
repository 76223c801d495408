//! Interfaces the kernel or the host must provide: a dummy or vlan needs its module
//! (`dummy`, `8021q`), a macvlan its parent on the host. `validate` warns; `up` stops
//! before it makes anything (`apply::devices`), with the same module named.

use crate::apply::devices::Kinds;
use crate::diag::Diagnostic;
use crate::model::{DeviceKind, Topology};

pub fn check(t: &Topology, out: &mut Vec<Diagnostic>) {
    let has_devices = t.nodes.iter().any(|n| !n.devices.is_empty());
    if !has_devices {
        return;
    }
    let kinds = crate::apply::devices::kernel_kinds();
    // In a multi-host lab the parent is another host's business as often as this one's.
    let host_ifaces = t.hosts.is_empty().then(host_interfaces).flatten();
    out.extend(warnings(t, kinds, host_ifaces.as_deref()));
}

/// The host's interfaces, from sysfs (which shows the namespace it was mounted in: the
/// host's, where nslab makes its macvlans).
fn host_interfaces() -> Option<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Some(names)
}

/// One warning per interface this kernel or host cannot give; pure, for tests.
pub fn warnings(t: &Topology, kinds: Kinds, host_ifaces: Option<&[String]>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for n in &t.nodes {
        for d in &n.devices {
            let (kind, module, config, has) = match &d.kind {
                DeviceKind::Dummy => ("dummy", "dummy", "CONFIG_DUMMY", kinds.dummy),
                DeviceKind::Vlan { .. } => ("vlan", "8021q", "CONFIG_VLAN_8021Q", kinds.vlan),
                DeviceKind::Macvlan { parent, .. } => {
                    if let Some(names) = host_ifaces
                        && !names.iter().any(|x| x == parent)
                    {
                        out.push(
                            Diagnostic::warning(
                                Some(d.span),
                                format!("node `{}`: this host has no interface `{parent}` for the macvlan `{}`; `up` will fail", n.name, d.name),
                            )
                            .with_hint(format!("its interfaces are: {}", names.join(", "))),
                        );
                    }
                    continue;
                }
            };
            if has == Some(false) {
                out.push(
                    Diagnostic::warning(
                        Some(d.span),
                        format!("node `{}`: this kernel cannot make the {kind} interface `{}` (no `{module}` module); `up` will fail", n.name, d.name),
                    )
                    .with_hint(format!("`modprobe {module}`, or a kernel built with {config}")),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(yaml: &str) -> Topology {
        crate::compile_str(yaml, "t.yaml", std::path::Path::new("/"))
            .expect("compiles")
            .topology
    }

    #[test]
    fn a_kind_the_kernel_lacks_and_a_parent_the_host_lacks_warn_at_their_lines() {
        let t = compiled(
            "name: w\nnodes:\n  r1:\n    interfaces:\n      lo1: { kind: dummy }\n      v5: { kind: vlan, parent: eth1, id: 5 }\nlinks:\n  - [r1:eth1, { macvlan: nsltnone0 }]\n",
        );
        let host = ["eth0".to_string(), "lo".to_string()];
        let kinds = Kinds {
            dummy: Some(false),
            vlan: Some(true),
        };
        let out = warnings(&t, kinds, Some(&host));
        let text: Vec<String> = out
            .iter()
            .map(|d| {
                format!(
                    "{}:{} {}",
                    d.span.unwrap().line,
                    d.span.unwrap().col,
                    d.message
                )
            })
            .collect();
        assert_eq!(text.len(), 2, "{text:#?}");
        assert!(text[0].starts_with("5:7 node `r1`: this kernel cannot make the dummy interface `lo1` (no `dummy` module)"), "{text:#?}");
        assert!(
            text[1].starts_with("8:9 node `r1`: this host has no interface `nsltnone0`"),
            "{text:#?}"
        );
        assert!(
            out[0]
                .hint
                .as_deref()
                .is_some_and(|h| h.contains("CONFIG_DUMMY"))
        );
        assert!(
            out[1]
                .hint
                .as_deref()
                .is_some_and(|h| h.contains("eth0, lo"))
        );
        // A kernel with both, a host with the parent, or a probe that could not run: quiet.
        let all = Kinds {
            dummy: Some(true),
            vlan: None,
        };
        let host = ["nsltnone0".to_string()];
        assert!(warnings(&t, all, Some(&host)).is_empty());
    }
}
