//! Process attributes asked for in the topology (`rlimits`, `nice`, `oom_score_adj`,
//! `cpus`, `ionice`), as root: read from the host in /proc of the real processes of a
//! real node; what the host cannot give fails `up` naming the process; `apply` of a
//! changed attribute restarts that process alone. Labs here are named `at-*`.

mod support;

use std::collections::BTreeMap;

use support::*;

/// The host pids of the init's children by their command line (`sleep 1001`): a
/// plain-words `cmd` is exec'd straight from the init, so each is the process itself.
fn children(lab: &str, node: &str) -> BTreeMap<String, String> {
    let f = format!("/run/nslab/{lab}.nodes/{node}.pid");
    let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{f}: {e}"));
    let init = text.split_whitespace().next().unwrap().to_string();
    let kids = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap();
    kids.split_whitespace()
        .filter_map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let words: Vec<String> = cmd
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            Some((words.join(" "), pid.to_string()))
        })
        .collect()
}

/// The pid of the child running `cmd`, once the init has started it.
fn pid_of(lab: &str, node: &str, cmd: &str) -> String {
    let mut pid = None;
    wait_for(&format!("`{cmd}` to run in {lab}/{node}"), || {
        pid = children(lab, node).get(cmd).cloned();
        pid.is_some()
    });
    pid.unwrap()
}

/// What the host's /proc says about process `pid`: `Max open files` and the like as
/// `soft hard` from `limits`, `nice` (field 19 of `stat`), `oom_score_adj`,
/// `Cpus_allowed_list` from `status`, and the I/O priority (`ioprio_get`).
struct Seen {
    limits: BTreeMap<String, String>,
    nice: String,
    oom: String,
    cpus: String,
    ioprio: i64,
}

fn seen(pid: &str) -> Seen {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let limits = limits
        .lines()
        .skip(1)
        .filter_map(|l| {
            // "Max open files            1024                 65536                files"
            let (name, rest) = l.split_at(26.min(l.len()));
            let mut v = rest.split_whitespace();
            Some((
                name.trim().to_string(),
                format!("{} {}", v.next()?, v.next()?),
            ))
        })
        .collect();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    // Field 19 of stat is the 17th after the command name.
    let nice = after.split_whitespace().nth(16).unwrap().to_string();
    let oom = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let cpus = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    let pid_n: i32 = pid.parse().unwrap();
    // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, pid) reads another process's priority.
    let ioprio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid_n) };
    Seen {
        limits,
        nice,
        oom: oom.trim().to_string(),
        cpus,
        ioprio,
    }
}

/// The CPUs this test may use, as a list (`0-1`): the node's processes get them all.
fn own_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

/// The last CPU this test may use: a node pinned to it differs from the default
/// wherever the host has two or more.
fn last_cpu() -> String {
    let list = own_cpus();
    let last = list.rsplit(',').next().unwrap();
    last.rsplit('-').next().unwrap().to_string()
}

const LAB: &str = "
defaults: { rlimits: { core: unlimited } }
nodes:
  a:
    nice: 5
    oom_score_adj: 300
    cpus: 'CPU'
    rlimits: { nofile: 4096, memlock: 4M, stack: { soft: 16M, hard: unlimited } }
    processes:
      - { name: inherits, cmd: sleep 1001 }
      - name: own
        cmd: sleep 1002
        user: nobody
        nice: -3
        oom_score_adj: 100
        ionice: { class: best-effort, level: 7 }
        rlimits: { nofile: { soft: 2048, hard: 16384 }, nproc: 100 }
  b: { processes: [{ name: plain, cmd: sleep 1003 }] }
";

#[test]
fn a_nodes_processes_start_with_the_attributes_written_for_them() {
    if !privileged() {
        return;
    }
    // The host's state is compared before and after: no other lab may come or go.
    let _h = exclusive();
    let before = host_snapshot();
    let lab = Lab::new("at-node", &LAB.replace("CPU", &last_cpu()));
    lab.up();
    let node = seen(&pid_of("at-node", "a", "sleep 1001"));
    assert_eq!(node.limits["Max open files"], "4096 4096");
    assert_eq!(node.limits["Max locked memory"], "4194304 4194304");
    assert_eq!(node.limits["Max stack size"], "16777216 unlimited");
    assert_eq!(node.limits["Max core file size"], "unlimited unlimited");
    assert_eq!((node.nice.as_str(), node.oom.as_str()), ("5", "300"));
    assert_eq!(node.cpus, last_cpu());
    // No class: the I/O priority follows the nice value.
    assert_eq!(node.ioprio, 0);

    // Its own keys win, key by key and limit by limit; the rest is the node's. Set as
    // root before the switch to `nobody`, which could not have set them itself.
    let own = seen(&pid_of("at-node", "a", "sleep 1002"));
    assert_eq!(own.limits["Max open files"], "2048 16384");
    assert_eq!(own.limits["Max processes"], "100 100");
    assert_eq!(own.limits["Max locked memory"], "4194304 4194304");
    assert_eq!((own.nice.as_str(), own.oom.as_str()), ("-3", "100"));
    assert_eq!(own.cpus, last_cpu());
    // IOPRIO_CLASS_BE (2) << 13 | level 7.
    assert_eq!(own.ioprio, (2 << 13) | 7);

    // A node that asks for nothing keeps the defaults.
    let plain = seen(&pid_of("at-node", "b", "sleep 1003"));
    let mut nofile = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a local struct.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut nofile) },
        0
    );
    // Without CAP_SYS_RESOURCE the default hard limit cannot rise above the caller's.
    let hard = match has_sys_resource() {
        true => 524_288,
        false => nofile.rlim_max.min(524_288),
    };
    assert_eq!(plain.limits["Max open files"], format!("1024 {hard}"));
    assert_eq!(plain.limits["Max core file size"], "unlimited unlimited");
    assert_eq!((plain.nice.as_str(), plain.oom.as_str()), ("0", "0"));
    assert_eq!(plain.cpus, own_cpus());

    // `nslab exec` is the operator's command: it starts from the defaults, not the node's.
    let o = lab.exec(
        "a",
        &["sh", "-c", "ulimit -n; cat /proc/self/oom_score_adj"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1024\n0\n");
    lab.down();
    assert_same_host(&before, &host_snapshot(), "after at-node");
}

/// Whether this process may raise a hard limit (`CAP_SYS_RESOURCE`, 24): root in a VM or
/// container may lack it, and then so does nslab.
fn has_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    eff & (1 << 24) != 0
}

/// A hard limit above the caller's: set where nslab may raise it, else `up` fails saying
/// which limit of which process needs what.
#[test]
fn a_hard_limit_above_nslabs_own_is_set_or_fails_up_naming_what_it_needs() {
    if !privileged() {
        return;
    }
    // The host's state is compared before and after: no other lab may come or go.
    let _h = exclusive();
    let before = host_snapshot();
    let mut own = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a local struct.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut own) },
        0
    );
    if own.rlim_max == libc::RLIM_INFINITY {
        eprintln!("skipping: this process's locked-memory limit is unlimited");
        return;
    }
    // The default is 8 MiB: above both that and the caller's.
    let want = own.rlim_max.max(8 << 20) * 2;
    let lab = Lab::new(
        "at-hard",
        &format!(
            "nodes:\n  a:\n    processes: [{{ name: big, cmd: sleep 1007, rlimits: {{ memlock: {want} }} }}]\n"
        ),
    );
    let oom =
        "nodes:\n  a:\n    processes: [{ name: big, cmd: sleep 1007, oom_score_adj: -200 }]\n";
    if has_sys_resource() {
        lab.up();
        let got = seen(&pid_of("at-hard", "a", "sleep 1007"));
        assert_eq!(got.limits["Max locked memory"], format!("{want} {want}"));
        lab.down();
        std::fs::write(&lab.file, format!("name: at-hard\n{oom}")).unwrap();
        lab.up();
        assert_eq!(seen(&pid_of("at-hard", "a", "sleep 1007")).oom, "-200");
        lab.down();
    } else {
        lab.up_fails(&[
            "lab `at-hard`, node `a`: start process `big` failed: `rlimits.memlock`",
            &format!("`rlimits.memlock`: raising the hard limit from {} to {want} needs CAP_SYS_RESOURCE", own.rlim_max.min(8 << 20)),
        ]);
        std::fs::write(&lab.file, format!("name: at-hard\n{oom}")).unwrap();
        lab.up_fails(&[
            "start process `big` failed: `oom_score_adj: -200` is below 0, which needs CAP_SYS_RESOURCE",
        ]);
    }
    assert_same_host(&before, &host_snapshot(), "after at-hard");
}

/// `validate` (and `up`, before anything is made) reads the host's online CPUs: a CPU
/// it lacks is an error at the process, naming the CPUs it has.
#[test]
fn cpus_the_host_lacks_fail_up_naming_the_process_and_the_cpus_it_has() {
    if !privileged() {
        return;
    }
    // The host's state is compared before and after: no other lab may come or go.
    let _h = exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "at-cpus",
        "nodes:\n  a:\n    processes: [{ name: gen, cmd: sleep 1004, cpus: '1023' }]\n",
    );
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let o = lab.up_with(&[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    for needle in [
        "at-cpus.yaml:4:53",
        "node `a`, process `gen`: `cpus: 1023` names CPU 1023, which this host does not have online",
        &format!("(it has {})", online.trim()),
    ] {
        assert!(
            text(&o).contains(needle),
            "`{needle}` missing from: {}",
            text(&o)
        );
    }
    assert!(!lab.is_up());
    assert_same_host(&before, &host_snapshot(), "after at-cpus");
}

#[test]
fn apply_restarts_a_process_whose_attributes_changed_and_only_it() {
    if !privileged() {
        return;
    }
    // The host's state is compared before and after: no other lab may come or go.
    let _h = exclusive();
    let before = host_snapshot();
    let yaml = "nodes:\n  a:\n    processes:\n      - { name: p, cmd: sleep 1005, rlimits: { nofile: 2000 } }\n      - { name: q, cmd: sleep 1006 }\n";
    let lab = Lab::new("at-apply", yaml);
    lab.up();
    let (p, q) = (
        pid_of("at-apply", "a", "sleep 1005"),
        pid_of("at-apply", "a", "sleep 1006"),
    );
    assert_eq!(seen(&p).limits["Max open files"], "2000 2000");
    std::fs::write(
        &lab.file,
        format!(
            "name: at-apply\n{}",
            yaml.replace("nofile: 2000 }", "nofile: 3000 }, nice: 2")
        ),
    )
    .unwrap();
    let o = nslab().arg("apply").arg(&lab.file).output().unwrap();
    assert!(o.status.success(), "apply: {}", text(&o));
    let p2 = pid_of("at-apply", "a", "sleep 1005");
    assert_ne!(p, p2, "p was started again: {}", text(&o));
    let now = seen(&p2);
    assert_eq!(now.limits["Max open files"], "3000 3000");
    assert_eq!(now.nice, "2");
    assert_eq!(pid_of("at-apply", "a", "sleep 1006"), q, "q kept running");
    lab.down();
    assert_same_host(&before, &host_snapshot(), "after at-apply");
}
