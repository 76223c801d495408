//! Guard rails against a hostile topology or a hostile host (root): sysctl keys that
//! would leave `net.*`, planted links in the run directory, journal records that name
//! objects of another lab. Each test failed on the code before its guard.

mod support;

use std::process::Command;

use support::*;

/// Runs `f` on a fresh thread inside a network namespace of its own, which dies with it.
fn in_scratch_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare a netns");
        f()
    })
    .join()
    .expect("the namespace thread")
}

#[test]
fn a_sysctl_key_that_climbs_out_of_net_is_never_written() {
    if !privileged() {
        return;
    }
    // `net.//.net.ipv4.ip_forward` is `net/../net/ipv4/ip_forward` to the kernel: it climbs
    // out of net/ (the shape of `net.//.vm.swappiness`) but lands on a harmless file of a
    // scratch namespace, so the test cannot change the host even when the guard fails.
    let (written, forward) = in_scratch_netns(|| {
        let w = nslab::apply::netns::write_sysctl("net.//.net.ipv4.ip_forward", "1");
        let f = nslab::apply::netns::read_sysctl("net.ipv4.ip_forward");
        (w, f)
    });
    let err = written.expect_err("the climbing key was written");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("not a sysctl component"), "{err}");
    assert_eq!(forward.expect("read ip_forward"), "0");
    // The same write through a plain key works, so the guard is not refusing everything.
    let plain = in_scratch_netns(|| {
        nslab::apply::netns::write_sysctl("net.ipv4.ip_forward", "1")?;
        nslab::apply::netns::read_sysctl("net.ipv4.ip_forward")
    });
    assert_eq!(plain.expect("plain key"), "1");
}

#[test]
fn a_hostile_sysctl_key_fails_validate_and_up_before_touching_anything() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let swappiness = std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap();
    let lab = Lab::new(
        "gx-sysctl",
        "nodes:\n  r1:\n    sysctls:\n      net.//.vm.swappiness: 7\n",
    );
    let o = lab.up_with(&[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("gx-sysctl.yaml:5:7"),
        "not located: {}",
        text(&o)
    );
    assert!(!lab.is_up());
    assert_eq!(
        std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap(),
        swappiness
    );
    assert_same_host(&before, &host_snapshot(), "a refused sysctl key");
}

/// Appends journal records as `up` writes them.
fn write_journal(lab: &str, undos: &[nslab::plan::Undo]) {
    use nslab::state::Record;
    let mut text = serde_json::to_string(&Record::Begin {
        lab: lab.into(),
        pid: 1,
        version: "0".into(),
        started: 0,
        file: String::new(),
    })
    .unwrap();
    text.push('\n');
    for u in undos {
        text.push_str(&serde_json::to_string(&Record::Object { undo: u.clone() }).unwrap());
        text.push('\n');
    }
    std::fs::create_dir_all("/run/nslab").unwrap();
    std::fs::write(format!("/run/nslab/{lab}.journal"), text).unwrap();
}

#[test]
fn down_refuses_journal_records_that_name_another_labs_objects_or_paths() {
    use nslab::plan::Undo;
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let other = Lab::new(
        "gx-other",
        "nodes: { h1: {}, h2: {} }\nlinks: [[h1:eth0, h2:eth0]]\n",
    );
    other.up();
    let victim = std::env::temp_dir().join("nslab-tests/gx-victim");
    std::fs::write(&victim, "keep me").unwrap();
    // One object that is the lab's own, made the way `up` makes it.
    let own = "nslab.gx-jrnl.n1";
    assert!(
        Command::new("ip")
            .args(["netns", "add", own])
            .status()
            .unwrap()
            .success()
    );
    let ns = |n: &str| Undo::DeleteNetns { netns: n.into() };
    write_journal(
        "gx-jrnl",
        &[
            ns(own),
            ns("nslab.gx-other.h1"),
            ns(&format!("../..{}", victim.display())),
            Undo::StopNode {
                netns: "nslab.gx-other.h2".into(),
                node: "h2".into(),
            },
            Undo::RemoveCgroup {
                netns: "nslab.gx-jrnl.x".into(),
                node: "../../../x".into(),
            },
            Undo::UnmountRunDirs {
                lab: "gx-other".into(),
            },
        ],
    );
    let o = nslab().args(["down", "gx-jrnl"]).output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("5 of its journal records were refused"),
        "{out}"
    );
    assert!(out.contains("nslab.gx-other.h1"), "{out}");
    // Nothing outside the lab was touched; the lab's own object went, and so did its state.
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(std::path::Path::new("/run/netns/nslab.gx-other.h1").exists());
    assert!(other.ping("h1", "10.255.0.1"), "the other lab was damaged");
    assert!(!std::path::Path::new("/run/netns").join(own).exists());
    assert!(!std::path::Path::new("/run/nslab/gx-jrnl.journal").exists());
    other.down();
    std::fs::remove_file(&victim).unwrap();
    assert_same_host(&before, &host_snapshot(), "a hostile journal");
}
