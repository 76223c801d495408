//! Per-node cgroups for `limits:`. Each controller (memory, cpu, pids) is used from cgroup
//! v2 when the v2 hierarchy has it, and from its v1 hierarchy otherwise; hybrid hosts
//! (v2 mounted beside v1 controllers, like this one) are common. Groups live under
//! `nslab/<lab>/<node>` in each hierarchy and are removed at `down`.

use std::path::{Path, PathBuf};

use crate::model::Limits;

const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Hierarchy {
    V2(PathBuf),
    V1 {
        mount: PathBuf,
        controllers: Vec<String>,
    },
}

fn hierarchies() -> Vec<Hierarchy> {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_, target, fstype, opts, ..] = f.as_slice() else {
            continue;
        };
        match *fstype {
            "cgroup2" => out.push(Hierarchy::V2(PathBuf::from(target))),
            "cgroup" => out.push(Hierarchy::V1 {
                mount: PathBuf::from(target),
                controllers: opts.split(',').map(str::to_string).collect(),
            }),
            _ => {}
        }
    }
    out
}

fn v2_has(root: &Path, controller: &str) -> bool {
    let enabled = |f: &str| {
        std::fs::read_to_string(root.join(f))
            .map(|s| s.split_whitespace().any(|c| c == controller))
            .unwrap_or(false)
    };
    // The root must already delegate it: nslab never changes the host's root cgroup.
    enabled("cgroup.controllers") && enabled("cgroup.subtree_control")
}

/// Where each controller lives on this host.
fn placement(controller: &str, all: &[Hierarchy]) -> Option<Hierarchy> {
    for h in all {
        if let Hierarchy::V2(root) = h
            && v2_has(root, controller)
        {
            return Some(h.clone());
        }
    }
    all.iter()
        .find(|h| matches!(h, Hierarchy::V1 { controllers, .. } if controllers.iter().any(|c| c == controller)))
        .cloned()
}

pub fn relative(lab: &str, node: &str) -> PathBuf {
    Path::new("nslab").join(lab).join(node)
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("{}: {e}", path.display()))
}

/// Creates the node's groups with its limits; returns the `cgroup.procs` files to join.
pub fn create(lab: &str, node: &str, limits: &Limits) -> Result<Vec<PathBuf>, String> {
    let all = hierarchies();
    let rel = relative(lab, node);
    let mut wanted: Vec<(&str, Hierarchy)> = Vec::new();
    for (ctrl, needed) in [
        ("memory", limits.memory.is_some()),
        ("cpu", limits.cpu.is_some()),
        ("pids", limits.pids.is_some()),
    ] {
        if !needed {
            continue;
        }
        let h = placement(ctrl, &all).ok_or_else(|| {
            format!("this kernel has no usable `{ctrl}` cgroup controller (neither in cgroup v2 nor mounted as v1); remove the `{ctrl}` limit")
        })?;
        wanted.push((ctrl, h));
    }
    let mut procs = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (ctrl, h) in &wanted {
        let dir = match h {
            Hierarchy::V2(root) | Hierarchy::V1 { mount: root, .. } => root.join(&rel),
        };
        if !dirs.contains(&dir) {
            if let Hierarchy::V2(root) = h {
                // Delegate the controllers down our own levels, never the host's root.
                let mut cur = root.clone();
                for part in [Path::new("nslab"), Path::new(lab)] {
                    cur = cur.join(part);
                    std::fs::create_dir_all(&cur).map_err(|e| format!("{}: {e}", cur.display()))?;
                    let _ = write(&cur.join("cgroup.subtree_control"), &format!("+{ctrl}"));
                }
            }
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            procs.push(dir.join("cgroup.procs"));
            dirs.push(dir.clone());
        } else if let Hierarchy::V2(_) = h {
            let _ = write(
                &dir.parent()
                    .expect("lab level")
                    .join("cgroup.subtree_control"),
                &format!("+{ctrl}"),
            );
        }
        let v2 = matches!(h, Hierarchy::V2(_));
        match *ctrl {
            "memory" => {
                let bytes = limits.memory.expect("wanted").to_string();
                if v2 {
                    write(&dir.join("memory.max"), &bytes)?;
                    let _ = write(&dir.join("memory.swap.max"), "0");
                } else {
                    write(&dir.join("memory.limit_in_bytes"), &bytes)?;
                    // Without swap accounting the file is absent; the limit alone holds.
                    let _ = write(&dir.join("memory.memsw.limit_in_bytes"), &bytes);
                }
            }
            "cpu" => {
                let quota =
                    ((limits.cpu.expect("wanted") * CPU_PERIOD_US as f64).round() as u64).max(1000);
                if v2 {
                    write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                } else {
                    write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
            }
            "pids" => write(
                &dir.join("pids.max"),
                &limits.pids.expect("wanted").to_string(),
            )?,
            _ => unreachable!("only the three controllers above"),
        }
    }
    Ok(procs)
}

/// The nodes that have a group under the lab's level in any hierarchy, found by name
/// (for a `down` whose journal was lost); names that are not node names are left alone.
pub fn nodes_of(lab: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in hierarchies() {
        let root = match h {
            Hierarchy::V2(root) | Hierarchy::V1 { mount: root, .. } => root,
        };
        let Ok(entries) = std::fs::read_dir(root.join("nslab").join(lab)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && crate::model::names::check_node_name(&name).is_ok() && !out.contains(&name)
            {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}

/// The `cgroup.procs` files of the node's groups, wherever the hierarchies are mounted
/// (the same search [`create`] and [`remove`] make): the files the init joins.
pub fn procs_files(lab: &str, node: &str) -> Vec<PathBuf> {
    let rel = relative(lab, node);
    let mut out: Vec<PathBuf> = Vec::new();
    for h in hierarchies() {
        let root = match h {
            Hierarchy::V2(root) | Hierarchy::V1 { mount: root, .. } => root,
        };
        let p = root.join(&rel).join("cgroup.procs");
        // Co-mounted v1 controllers show one group under several paths.
        if let Ok(real) = std::fs::canonicalize(&p)
            && !out.contains(&real)
        {
            out.push(real);
        }
    }
    out
}

/// Removes the node's groups from every hierarchy, and the lab's and nslab's levels when
/// they are empty. Groups that still hold a task are retried briefly (a process that was
/// just killed leaves its cgroup a moment later). Missing groups count as removed.
pub fn remove(lab: &str, node: &str) -> Result<(), String> {
    let rel = relative(lab, node);
    let mut errors = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for h in hierarchies() {
        let root = match h {
            Hierarchy::V2(root) | Hierarchy::V1 { mount: root, .. } => root,
        };
        let dir = root.join(&rel);
        if seen.contains(&dir) || !dir.exists() {
            continue;
        }
        seen.push(dir.clone());
        let mut last = None;
        for _ in 0..50 {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    last = None;
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
        if let Some(e) = last {
            errors.push(format!("{}: {e}", dir.display()));
            continue;
        }
        // Empty parents go too; a busy one belongs to another node or lab.
        let _ = std::fs::remove_dir(root.join("nslab").join(lab));
        let _ = std::fs::remove_dir(root.join("nslab"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
