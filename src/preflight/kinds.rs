//! Interfaces the kernel or the host must provide: a dummy or vlan needs its module
//! (`dummy`, `8021q`), a macvlan its parent on the host. `validate` warns; `up` stops
//! before it makes anything (`apply::devices`), with the same module named.

use crate::apply::devices::Kinds;
use crate::apply::error::{kernel_module, load_module};
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
            let (kind, has) = match &d.kind {
                DeviceKind::Dummy => ("dummy", kinds.dummy),
                DeviceKind::Vlan { .. } => ("vlan", kinds.vlan),
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
                let (module, _) = kernel_module(kind);
                out.push(
                    Diagnostic::warning(
                        Some(d.span),
                        format!("node `{}`: this kernel cannot make the {kind} interface `{}` (no `{module}` module); `up` will fail", n.name, d.name),
                    )
                    .with_hint(load_module(kind)),
                );
            }
        }
    }
    out
}

/// Route checks reading a VRF's table (`vrf:`) on a kernel that makes no VRFs can never
/// pass: one warning per VRF name, naming the module. Only probed when a check uses one.
pub fn vrf_checks(t: &Topology, out: &mut Vec<Diagnostic>) {
    let uses_vrf = |c: &crate::model::Check| {
        matches!(&c.body, crate::model::CheckBody::Route { vrf: Some(_), .. })
    };
    if t.checks.iter().any(uses_vrf) {
        out.extend(vrf_warnings(t, crate::apply::inspect::kernel_has_vrf()));
    }
}

/// [`vrf_checks`]' warnings for a kernel that has VRFs or not (`None`: unknown); pure.
pub fn vrf_warnings(t: &Topology, has_vrf: Option<bool>) -> Vec<Diagnostic> {
    if has_vrf != Some(false) {
        return Vec::new();
    }
    let mut seen = std::collections::BTreeMap::<&str, Vec<&str>>::new();
    for c in &t.checks {
        if let crate::model::CheckBody::Route { vrf: Some(v), .. } = &c.body {
            let names = seen.entry(v.as_str()).or_default();
            if !names.contains(&c.name.as_str()) {
                names.push(&c.name);
            }
        }
    }
    seen.into_iter()
        .map(|(vrf, checks)| {
            Diagnostic::warning(
                None,
                format!(
                    "this kernel has no `vrf` link type, so no node can have the VRF `{vrf}`: check {} will fail",
                    checks.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ),
            )
            .with_hint(load_module("vrf"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vrf_check_on_a_kernel_without_vrfs_warns_once_per_vrf_naming_the_module() {
        let t = compiled(
            "name: w\nnodes: { a: {}, b: {} }\ntests:\n  - route: { node: [a, b], to: 10.0.0.0/24, vrf: red, name: r }\n  - route: { node: a, to: 10.0.0.0/24 }\n",
        );
        let out = vrf_warnings(&t, Some(false));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "this kernel has no `vrf` link type, so no node can have the VRF `red`: check `r [a]`, `r [b]` will fail"
        );
        assert!(
            out[0]
                .hint
                .as_deref()
                .is_some_and(|h| h.contains("modprobe vrf") && h.contains("CONFIG_NET_VRF"))
        );
        assert!(vrf_warnings(&t, Some(true)).is_empty());
        assert!(vrf_warnings(&t, None).is_empty());
    }

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
        // The same words as the failed step's (`apply::error::missing_link_kind`).
        assert_eq!(
            out[0].hint.as_deref(),
            Some(
                "load the `dummy` module (`modprobe dummy`) or use a kernel built with CONFIG_DUMMY"
            )
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
