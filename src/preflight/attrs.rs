//! Process attributes against the host, at `validate` as at `up`: `cpus` naming a CPU
//! the host does not have online, `rlimits.nofile` above its `fs.nr_open`. The node's
//! init checks again when it starts the process (with the cpuset it runs in, and the
//! privileges it has), but a typo in a CPU list should not wait for `up`.

use crate::attrs::{CpuList, Resource};
use crate::diag::Diagnostic;
use crate::model::Node;

/// The host as these checks see it: its online CPUs and `fs.nr_open`.
pub struct Host {
    pub online: Option<CpuList>,
    pub nr_open: Option<u64>,
}

impl Host {
    pub fn read() -> Host {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        Host {
            online: read("/sys/devices/system/cpu/online")
                .and_then(|t| CpuList::parse(t.trim()).ok()),
            nr_open: read("/proc/sys/fs/nr_open").and_then(|t| t.trim().parse().ok()),
        }
    }
}

/// One error per node and problem (a node's `cpus` shared by its processes is one),
/// located at the key (the process's own, else its node's).
pub fn check(nodes: &[Node], host: &Host, out: &mut Vec<Diagnostic>) {
    for n in nodes {
        let mut seen: Vec<String> = Vec::new();
        for p in &n.processes {
            for (problem, at) in problems(&p.attrs, host) {
                if seen.contains(&problem) {
                    continue;
                }
                let at = match at {
                    Key::Cpus => p.attr_spans.cpus,
                    Key::Nofile => p.attr_spans.nofile,
                };
                out.push(
                    Diagnostic::error(
                        Some(at.unwrap_or(p.span)),
                        format!("node `{}`, process `{}`: {problem}", n.name, p.name),
                    )
                    .with_hint("the host decides these: pick CPUs it has, and at most `fs.nr_open` open files"),
                );
                seen.push(problem);
            }
        }
    }
}

/// Which key a problem is about, for where its error points.
enum Key {
    Cpus,
    Nofile,
}

fn problems(a: &crate::attrs::ProcAttrs, host: &Host) -> Vec<(String, Key)> {
    let mut out = Vec::new();
    if let (Some(want), Some(online)) = (&a.cpus, &host.online) {
        let missing: Vec<u32> = want
            .0
            .iter()
            .copied()
            .filter(|c| !online.0.contains(c))
            .collect();
        if !missing.is_empty() {
            out.push((
                format!(
                    "`cpus: {want}` names CPU {}, which this host does not have online (it has {online})",
                    CpuList(missing)
                ),
                Key::Cpus,
            ));
        }
    }
    if let (Some(l), Some(max)) = (a.rlimits.get(&Resource::Nofile), host.nr_open)
        && l.hard.0 > max
    {
        out.push((
            format!(
                "`rlimits.nofile` {} is above this host's fs.nr_open ({max})",
                l.hard
            ),
            Key::Nofile,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_the_host_lacks_and_too_many_files_are_one_error_per_node() {
        let t = crate::compile_str(
            "name: pa\nnodes:\n  a:\n    cpus: 0-5\n    processes:\n      - { name: p, cmd: sleep 1 }\n      - { name: q, cmd: sleep 1, rlimits: { nofile: 2000000 } }\n  b:\n    processes: [{ name: r, cmd: sleep 1, cpus: 1 }]\n",
            "t.yaml",
            std::path::Path::new("/"),
        )
        .unwrap()
        .topology;
        let host = Host {
            online: Some(CpuList(vec![0, 1])),
            nr_open: Some(1 << 20),
        };
        let mut out = Vec::new();
        check(&t.nodes, &host, &mut out);
        let got: Vec<(u32, &str)> = out
            .iter()
            .map(|d| (d.span.unwrap().line, d.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    4,
                    "node `a`, process `p`: `cpus: 0-5` names CPU 2-5, which this host does not have online (it has 0-1)"
                ),
                (
                    7,
                    "node `a`, process `q`: `rlimits.nofile` 2000000 is above this host's fs.nr_open (1048576)"
                ),
            ]
        );
    }
}
