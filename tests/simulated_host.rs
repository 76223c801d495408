//! Full-isolation nodes inside a simulated host (root): a network namespace with a private
//! mount namespace and its own tmpfs on /run, as tests/multihost_up.rs makes them. The
//! lab's mount template must be bindable there: the kernel binds a mount namespace's file
//! only when its id is above the caller's, and ids come from per-CPU batches, so a host
//! whose namespace was made on one CPU and an nslab running on another is the case that
//! failed (EINVAL). Every pair of (host's CPU, nslab's CPU) is tried, up to three CPUs.

mod support;

use std::process::Command;

use support::simhost::SimHost;
use support::*;

/// The CPUs this test may run things on, at most three.
fn cpus() -> Vec<usize> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .take(3)
        .collect()
}

/// The inits of `lab` still running anywhere on the machine.
fn inits_of(lab: &str) -> Vec<String> {
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    text(&ps)
        .lines()
        .filter(|l| l.contains("__init") && l.contains(&format!(" {lab}/")))
        .map(str::to_string)
        .collect()
}

#[test]
fn full_isolation_nodes_come_up_in_a_simulated_host_and_go_away() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let dir = std::env::temp_dir().join("nslab-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let lab = "simh-full";
    let file = dir.join(format!("{lab}.yaml"));
    let _file = Scratch(file.clone());
    // Full isolation is the default; a process keeps each node's init busy.
    std::fs::write(
        &file,
        format!(
            "name: {lab}\nnodes:\n  a:\n    processes: [{{ name: idle, cmd: \"sleep 100000\" }}]\n  b: {{}}\nlinks:\n  - [a:eth0, b:eth0]\n"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_nslab");
    for host_cpu in cpus() {
        let host = SimHost::on_cpu(host_cpu);
        let host_mnt = host.ok(&["readlink", "/proc/self/ns/mnt"]);
        for cpu in cpus() {
            let at = format!("host made on CPU {host_cpu}, nslab on CPU {cpu}");
            let o = host.run_on(Some(cpu), &[bin, "up", file]);
            assert!(o.status.success(), "up ({at}): {}", text(&o));
            // The node has a mount namespace of its own (copied from the template) and
            // its own hostname and pid namespace.
            let node_mnt = host.ok(&[bin, "exec", "a", "--", "readlink", "/proc/self/ns/mnt"]);
            assert_ne!(node_mnt, host_mnt, "{at}");
            assert_eq!(host.ok(&[bin, "exec", "a", "--", "hostname"]).trim(), "a");
            let ps = host.ok(&[bin, "exec", "a", "--", "cat", "/proc/1/cmdline"]);
            assert!(ps.contains("__init"), "{at}: PID 1 of node a is {ps}");
            assert!(
                host.ok(&["cat", "/proc/self/mountinfo"])
                    .contains("template.mnt")
            );

            let o = host.run_on(Some(cpu), &[bin, "down", lab]);
            assert!(o.status.success(), "down ({at}): {}", text(&o));
            // Nothing of the lab is left in the host: namespaces, mounts, run files,
            // processes.
            assert_eq!(host.ok(&["ip", "netns", "list"]).trim(), "", "{at}");
            let mounts = host.ok(&["cat", "/proc/self/mountinfo"]);
            assert!(!mounts.contains(lab), "{at}: {mounts}");
            let run = host.ok(&["sh", "-c", "ls -A /run/nslab 2>/dev/null; true"]);
            assert!(!run.contains(lab), "{at}: /run/nslab holds {run}");
            wait_for("the lab's inits to end", || inits_of(lab).is_empty());
        }
    }
}
