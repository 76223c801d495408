//! `nslab k8s FILE [--namespace NS] [--image IMAGE]`

use std::path::Path;

use super::{CliError, compile, exit};
use crate::k8s::{self, K8sError, K8sInput};
use crate::model::Topology;

pub fn run(file: &Path, namespace: Option<&str>, image: &str) -> Result<u8, CliError> {
    let c = compile(file)?;
    let t = &c.topology;
    let file_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CliError::Usage(format!("{}: not a file name", file.display())))?;
    let (files, mut problems) = match k8s::files::collect(t, &file.display().to_string()) {
        Ok(files) => (files, Vec::new()),
        Err(problems) => (Vec::new(), problems),
    };
    let input = K8sInput {
        lab: t.lab.clone(),
        namespace: namespace.map_or_else(|| k8s::default_namespace(&t.lab), str::to_string),
        image: image.to_string(),
        file_name: file_name.to_string(),
        topology: c.warnings.source.clone(),
        files,
        hosts: host_names(t),
        load: busiest(t),
    };
    match k8s::manifests(&input) {
        Ok(m) if problems.is_empty() => {
            crate::out!("{}", k8s::to_yaml(&m));
            note_client_apply(&m);
            Ok(exit::OK)
        }
        Ok(_) => Err(K8sError::Invalid(problems).into()),
        Err(K8sError::Invalid(more)) => {
            problems.extend(more);
            Err(K8sError::Invalid(problems).into())
        }
    }
}

/// The Kubernetes node names the lab is placed on (its `hosts:`), sorted. A lab without
/// `hosts:` runs whole on every node the DaemonSet lands on.
fn host_names(t: &Topology) -> Vec<String> {
    let mut names: Vec<String> = t.hosts.iter().map(|h| h.name.clone()).collect();
    names.sort();
    names
}

/// What the busiest machine runs: each host's nodes (every node without `hosts:`, as
/// each machine then runs the whole lab), weighed by memory. One Pod template serves
/// every machine, so each Pod requests what the largest share needs.
fn busiest(t: &Topology) -> k8s::Load {
    let on = |host: Option<&str>| {
        let mut load = k8s::Load::default();
        for n in t
            .nodes
            .iter()
            .filter(|n| host.is_none() || n.host.as_deref() == host)
        {
            load.nodes += 1;
            load.memory += n.limits.memory.unwrap_or(0);
            load.cpu += n.limits.cpu.unwrap_or(0.0);
        }
        load
    };
    if t.hosts.is_empty() {
        return on(None);
    }
    t.hosts
        .iter()
        .map(|h| on(Some(&h.name)))
        .max_by_key(|l| (l.memory + l.nodes as u64 * (1 << 20), l.nodes))
        .unwrap_or_default()
}

/// A ConfigMap too large for `kubectl apply`'s own copy of it (client-side apply keeps
/// the whole object in an annotation) applies only with `--server-side`: say so on
/// stderr, which the pipe into kubectl leaves on the terminal.
fn note_client_apply(manifests: &[k8s::Manifest]) {
    let large: Vec<String> = manifests
        .iter()
        .filter(|m| matches!(m, k8s::Manifest::ConfigMap(_)))
        .filter(|m| serde_json::to_string(m).map_or(0, |j| j.len()) > k8s::CLIENT_APPLY_LIMIT)
        .map(k8s::Manifest::id)
        .collect();
    if !large.is_empty() {
        crate::errln!(
            "note: {} larger than the {} bytes `kubectl apply` can keep a copy of: apply with `kubectl apply --server-side -f -`",
            large.join(", "),
            k8s::CLIENT_APPLY_LIMIT
        );
    }
}
