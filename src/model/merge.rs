//! Merging `defaults`, the node's kind and the node itself (node > kind > defaults).
//! Scalars are overridden, maps merge key by key, and lists concatenate, except that a
//! process, mount or private dir of the same name or path replaces the earlier one.

use crate::spec::raw::{RawLimits, RawNodeSpec, Sp};

/// Merges `over` onto `base` and returns the result.
pub fn merge(base: &RawNodeSpec, over: &RawNodeSpec) -> RawNodeSpec {
    let mut m = base.clone();
    m.span = over.span;
    if over.kind.is_some() {
        m.kind = over.kind.clone();
    }
    merge_map(&mut m.labels, &over.labels);
    merge_map(&mut m.sysctls, &over.sysctls);
    merge_map(&mut m.env, &over.env);
    if over.host.is_some() {
        m.host = over.host.clone();
    }
    if over.loopback.is_some() {
        m.loopback = over.loopback.clone();
    }
    m.routes.extend(over.routes.iter().cloned());
    m.exec.extend(over.exec.iter().cloned());
    for p in &over.processes {
        replace_or_push(&mut m.processes, p.clone(), |a, b| {
            a.name.value == b.name.value
        });
    }
    for mnt in &over.mounts {
        replace_or_push(&mut m.mounts, mnt.clone(), |a, b| {
            a.target.value == b.target.value
        });
    }
    for p in &over.private {
        replace_or_push(&mut m.private, p.clone(), |a, b| {
            a.path.value == b.path.value
        });
    }
    for d in &over.interfaces {
        replace_or_push(&mut m.interfaces, d.clone(), |a, b| {
            a.name.value == b.name.value
        });
    }
    m.limits = RawLimits {
        memory: over.limits.memory.clone().or(m.limits.memory),
        cpu: over.limits.cpu.clone().or(m.limits.cpu),
        pids: over.limits.pids.clone().or(m.limits.pids),
    };
    m.attrs = m.attrs.merged(&over.attrs);
    if over.isolation.is_some() {
        m.isolation = over.isolation.clone();
    }
    m.depends_on.extend(over.depends_on.iter().cloned());
    if over.stop_timeout.is_some() {
        m.stop_timeout = over.stop_timeout.clone();
    }
    m
}

fn merge_map(base: &mut Vec<(Sp<String>, Sp<String>)>, over: &[(Sp<String>, Sp<String>)]) {
    for (k, v) in over {
        replace_or_push(base, (k.clone(), v.clone()), |a, b| a.0.value == b.0.value);
    }
}

fn replace_or_push<T>(list: &mut Vec<T>, item: T, same: impl Fn(&T, &T) -> bool) {
    match list.iter().position(|x| same(x, &item)) {
        Some(i) => list[i] = item,
        None => list.push(item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;

    fn kv(k: &str, v: &str) -> (Sp<String>, Sp<String>) {
        (
            Sp::new(k.into(), Span::default()),
            Sp::new(v.into(), Span::default()),
        )
    }

    #[test]
    fn node_overrides_kind_overrides_defaults() {
        let defaults = RawNodeSpec {
            sysctls: vec![kv("net.ipv4.ip_forward", "0"), kv("net.a", "1")],
            labels: vec![kv("site", "lab")],
            ..Default::default()
        };
        let kind = RawNodeSpec {
            sysctls: vec![kv("net.ipv4.ip_forward", "1")],
            limits: RawLimits {
                pids: Some(Sp::new(64, Span::default())),
                ..Default::default()
            },
            ..Default::default()
        };
        let node = RawNodeSpec {
            labels: vec![kv("role", "core")],
            limits: RawLimits {
                memory: Some(Sp::new(1 << 20, Span::default())),
                ..Default::default()
            },
            ..Default::default()
        };
        let m = merge(&merge(&defaults, &kind), &node);
        let sys: Vec<_> = m
            .sysctls
            .iter()
            .map(|(k, v)| (k.value.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(sys, vec![("net.ipv4.ip_forward", "1"), ("net.a", "1")]);
        assert_eq!(m.labels.len(), 2);
        assert_eq!(m.limits.pids.unwrap().value, 64);
        assert_eq!(m.limits.memory.unwrap().value, 1 << 20);
    }
}
