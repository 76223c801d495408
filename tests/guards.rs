//! Guard rails against a hostile topology or a hostile host (root): sysctl keys that
//! would leave `net.*`, planted links in the run directory, journal records that name
//! objects of another lab. Each test failed on the code before its guard.

mod support;

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
    let own_ns = support::netns::ForeignNetns::new(own);
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
    let h2 = other.addr("h2", "eth0", false);
    assert!(other.ping("h1", &h2), "the other lab was damaged");
    assert!(!std::path::Path::new("/run/netns").join(own).exists());
    assert!(!std::path::Path::new("/run/nslab/gx-jrnl.journal").exists());
    other.down();
    drop(own_ns);
    std::fs::remove_file(&victim).unwrap();
    assert_same_host(&before, &host_snapshot(), "a hostile journal");
}

/// A bridge of the host's own, made for one test and deleted when dropped.
struct HostBridge(&'static str);

impl HostBridge {
    fn new(name: &'static str, address: &str) -> HostBridge {
        let ip = |args: &[&str]| {
            let ok = std::process::Command::new("ip")
                .args(args)
                .status()
                .unwrap();
            assert!(ok.success(), "ip {args:?}");
        };
        ip(&["link", "add", name, "type", "bridge"]);
        let d = HostBridge(name);
        ip(&["addr", "add", address, "dev", name]);
        d
    }

    fn ifindex(&self) -> u32 {
        let path = format!("/sys/class/net/{}/ifindex", self.0);
        std::fs::read_to_string(path)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn addresses(&self) -> String {
        let o = std::process::Command::new("ip")
            .args(["-o", "addr", "show", "dev", self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for HostBridge {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", self.0])
            .status();
    }
}

#[test]
fn down_never_deletes_a_host_address_by_number_alone() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let victim = HostBridge::new("gx-haddr-v", "192.0.2.77/32");
    let lab = Lab::new("gx-haddr", "nodes: { n1: {} }\n");
    lab.up();
    // Records edited in by hand: the victim's address by its number alone, by its
    // number under a name the interface does not have, and by its real name and number.
    let forged = |link: &str| {
        format!(
            r#"{{"record":"object","undo":{{"op":"delete-address","netns":"@host","ifindex":{},"address":"192.0.2.77/32"{link}}}}}"#,
            victim.ifindex()
        ) + "\n"
    };
    let mut journal = std::fs::OpenOptions::new()
        .append(true)
        .open("/run/nslab/gx-haddr.journal")
        .unwrap();
    use std::io::Write;
    let records =
        forged("") + &forged(r#","link":"gx-haddr-x""#) + &forged(r#","link":"gx-haddr-v""#);
    journal.write_all(records.as_bytes()).unwrap();
    drop(journal);
    // None is acted on. A record with no link name is one an older nslab wrote (its
    // link's deletion takes the address): dropped without a word. One whose name the
    // interface at that number does not have names nothing that is there. One with the
    // real name and number is refused: the kernel does not tag the victim as the lab's.
    let o = nslab().args(["down", "gx-haddr"]).output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("1 of its journal records was refused"),
        "{out}"
    );
    assert!(out.contains("gx-haddr-v"), "{out}");
    assert!(out.contains("without the lab's tag"), "{out}");
    assert!(
        victim.addresses().contains("192.0.2.77/32"),
        "the host's address was deleted"
    );
    assert!(!lab.is_up());
    drop(victim);
    assert_same_host(&before, &host_snapshot(), "a forged host address record");
}

#[test]
fn links_planted_in_the_run_directory_are_refused_never_followed() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let dir = std::env::temp_dir().join("nslab-tests/gx-planted");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let victim_file = dir.join("file");
    let victim_dir = dir.join("dir");
    std::fs::create_dir_all(&victim_dir).unwrap();
    let lab = Lab::new(
        "gx-plant",
        "nodes:\n  a:\n    processes: [{ name: s, cmd: \"sleep 1000\" }]\n  b: {}\nlinks: [[a:eth0, b:eth0]]\n",
    );
    let run = std::path::Path::new("/run/nslab");
    std::fs::create_dir_all(run).unwrap();
    // (suffix, target, whether `up` must refuse it rather than replace the link)
    let cases = [
        (".lock", &victim_file, true),
        (".events", &victim_file, false),
        (".json", &victim_file, false),
        (".json.tmp", &victim_file, false),
        (".yaml", &victim_file, false),
        (".yaml.tmp", &victim_file, false),
        (".plan.json", &victim_file, false),
        (".plan.json.tmp", &victim_file, false),
        (".nodes", &victim_dir, true),
        (".logs", &victim_dir, true),
    ];
    for (suffix, target, refused) in cases {
        std::fs::write(&victim_file, "keep").unwrap();
        let link = run.join(format!("gx-plant{suffix}"));
        std::os::unix::fs::symlink(target, &link).unwrap();
        let o = lab.up_with(&[]);
        if refused {
            assert_ne!(o.status.code(), Some(0), "{suffix}: {}", text(&o));
            assert!(
                text(&o).contains("is a symbolic link"),
                "{suffix}: {}",
                text(&o)
            );
        } else {
            assert!(o.status.success(), "{suffix}: {}", text(&o));
            lab.down();
        }
        assert_eq!(
            std::fs::read_to_string(&victim_file).unwrap(),
            "keep",
            "{suffix}"
        );
        assert_eq!(
            std::fs::read_dir(&victim_dir).unwrap().count(),
            0,
            "{suffix}: something was made in the link's target"
        );
        let _ = std::fs::remove_file(&link);
        assert!(!lab.is_up(), "{suffix}");
    }
    // A planted journal: `down` names the link instead of reading through it.
    let journal = run.join("gx-plant.journal");
    std::os::unix::fs::symlink(&victim_file, &journal).unwrap();
    let o = nslab().args(["down", "gx-plant"]).output().unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("is a symbolic link"), "{}", text(&o));
    std::fs::remove_file(&journal).unwrap();
    // With the link gone nothing is on record: `down` says so and takes its lock file.
    let o = nslab().args(["down", "gx-plant"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!run.join("gx-plant.lock").exists(), "the lock file stayed");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_same_host(&before, &host_snapshot(), "planted links");
}

#[test]
fn environment_paths_are_used_only_when_nobody_else_could_write_them() {
    if !privileged() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let _host = shared();
    let dir = std::env::temp_dir().join("nslab-tests/gx-env");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let bin = dir.join("fake-nslab");
    std::fs::write(&bin, "#!/bin/sh\ntouch \"$0.ran\"\n").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let lab = Lab::new(
        "gx-env",
        "nodes:\n  a:\n    processes: [{ name: s, cmd: \"sleep 1000\" }]\n",
    );
    // A run directory and an init binary below a directory anyone can write.
    let o = nslab()
        .arg("up")
        .arg(&lab.file)
        .env("NSLAB_RUN_DIR", dir.join("run"))
        .env("NSLAB_BIN", &bin)
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("NSLAB_RUN_DIR="), "{out}");
    assert!(out.contains("NSLAB_BIN="), "{out}");
    assert!(out.contains("others can write"), "{out}");
    assert!(
        !dir.join("run").exists(),
        "the untrusted run directory was used"
    );
    assert!(
        !dir.join("fake-nslab.ran").exists(),
        "the untrusted binary ran"
    );
    assert!(!lab.is_up());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_disk_once_the_lab_is_built_rolls_it_back_and_leaves_no_tmp_files() {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let dir = std::env::temp_dir().join("nslab-tests/gx-full");
    let _ = std::fs::create_dir_all(&dir);
    // A run directory on a tiny disk of its own, filled while `up` runs.
    mount(
        Some("tmpfs"),
        &dir,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=64k,mode=0755"),
    )
    .unwrap();
    let run = dir.join("run");
    let lab = Lab::new(
        "gx-full",
        "nodes: { h1: {}, h2: {} }\nlinks: [[h1:eth0, h2:eth0]]\n",
    );
    let child = nslab()
        .arg("up")
        .arg(&lab.file)
        .env("NSLAB_RUN_DIR", &run)
        .env("NSLAB_TEST_STEP_DELAY_MS", "100")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the journal", || run.join("gx-full.journal").exists());
    // The journal's page is allocated: its records still fit, the summary will not.
    let mut fill = std::fs::File::create(dir.join("fill")).unwrap();
    while std::io::Write::write_all(&mut fill, &[0u8; 4096]).is_ok() {}
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("No space left"), "{}", text(&o));
    drop(fill);
    std::fs::remove_file(dir.join("fill")).unwrap();
    let left: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left in the run directory: {left:?}");
    umount2(&dir, MntFlags::MNT_DETACH).unwrap();
    std::fs::remove_dir(&dir).unwrap();
    assert_same_host(&before, &host_snapshot(), "a full disk");
}

#[test]
fn a_journal_cut_short_emptied_or_deleted_still_lets_down_remove_the_lab_by_name() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "gx-torn",
        "bridges: { sw: {} }\nnodes:\n  a:\n    limits: { pids: 64 }\n    processes: [{ name: s, cmd: \"sleep 1000\" }]\n  b: {}\nlinks: [[a:eth0, sw], [b:eth0, sw]]\n",
    );
    let journal = std::path::Path::new("/run/nslab/gx-torn.journal");
    let cut_short = |text: &str| {
        // Power lost mid-write: the first records and half of the next one.
        let keep: Vec<&str> = text.lines().take(2).collect();
        let next = text.lines().nth(2).unwrap();
        format!("{}\n{}", keep.join("\n"), &next[..next.len() / 2])
    };
    for (what, damage) in [
        ("cut short", Some(&cut_short as &dyn Fn(&str) -> String)),
        ("emptied", Some(&|_: &str| String::new() as _)),
        ("deleted", None),
    ] {
        lab.up();
        let written = std::fs::read_to_string(journal).unwrap();
        match damage {
            Some(f) => std::fs::write(journal, f(&written)).unwrap(),
            None => std::fs::remove_file(journal).unwrap(),
        }
        let o = nslab().args(["down", "gx-torn"]).output().unwrap();
        assert!(o.status.success(), "{what}: {}", text(&o));
        assert!(text(&o).contains("swept by name"), "{what}: {}", text(&o));
        assert_same_host(&before, &host_snapshot(), what);
    }
    // Nothing left, nothing to sweep: `down` says the lab is not up.
    let o = nslab().args(["down", "gx-torn"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no lab named `gx-torn` is up"),
        "{}",
        text(&o)
    );
}

#[test]
fn up_over_leftovers_without_a_journal_gives_a_hint_that_works() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "gx-wedge",
        "nodes: { h1: {}, h2: {} }\nlinks: [[h1:eth0, h2:eth0]]\n",
    );
    lab.up();
    std::fs::remove_file("/run/nslab/gx-wedge.journal").unwrap();
    let o = lab.up_with(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("`nslab down gx-wedge` removes them"),
        "{}",
        text(&o)
    );
    let o = nslab().args(["down", "gx-wedge"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    lab.up();
    lab.down();
    assert_same_host(&before, &host_snapshot(), "up over leftovers");
}

/// Appends records to a lab's journal, as an `apply` writes them.
fn append_journal(lab: &str, records: &[nslab::state::Record]) {
    use std::io::Write;
    let mut journal = std::fs::OpenOptions::new()
        .append(true)
        .open(format!("/run/nslab/{lab}.journal"))
        .unwrap();
    for r in records {
        let line = serde_json::to_string(r).unwrap() + "\n";
        journal.write_all(line.as_bytes()).unwrap();
    }
}

#[test]
fn apply_never_acts_on_an_unfinished_applys_records_naming_another_labs_objects() {
    use nslab::plan::Undo;
    use nslab::state::Record;
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let other = Lab::new(
        "gx-rt-other",
        "nodes: { h1: {}, h2: {} }\nlinks: [[h1:eth0, h2:eth0]]\n",
    );
    other.up();
    let lab = Lab::new("gx-rt", "nodes: { n1: {} }\n");
    lab.up();
    // An apply cut short, with retire records edited in that name the other lab's
    // namespace, node and link: the next apply finishes it, and must refuse them.
    append_journal(
        "gx-rt",
        &[
            Record::Apply {
                pid: 1,
                started: 0,
                file: String::new(),
            },
            Record::Retire {
                undo: Undo::DeleteNetns {
                    netns: "nslab.gx-rt-other.h1".into(),
                },
            },
            Record::Retire {
                undo: Undo::StopNode {
                    netns: "nslab.gx-rt-other.h2".into(),
                    node: "h2".into(),
                },
            },
            Record::Retire {
                undo: Undo::DeleteLink {
                    netns: "nslab.gx-rt-other.h2".into(),
                    name: "eth0".into(),
                    ifindex: other.ifindex("h2", "eth0"),
                },
            },
        ],
    );
    let o = nslab().arg("apply").arg(&lab.file).output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("3 of the journal records of an unfinished apply were refused"),
        "{out}"
    );
    assert!(out.contains("nslab.gx-rt-other.h1"), "{out}");
    // The other lab is whole; this one is up, its change finished.
    assert!(std::path::Path::new("/run/netns/nslab.gx-rt-other.h1").exists());
    let h2 = other.addr("h2", "eth0", false);
    assert!(other.ping("h1", &h2), "the other lab was damaged");
    assert!(lab.is_up());
    let o = nslab().arg("apply").arg(&lab.file).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    lab.down();
    other.down();
    assert_same_host(&before, &host_snapshot(), "forged retire records");
}

#[test]
fn apply_refuses_a_stored_plan_edited_to_name_another_labs_namespace() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let other = Lab::new(
        "gx-sp-other",
        "nodes: { h1: {}, h2: {} }\nlinks: [[h1:eth0, h2:eth0]]\n",
    );
    other.up();
    let lab = Lab::new("gx-sp", "nodes: { n1: {}, n2: {} }\n");
    lab.up();
    // Node n2's steps edited to name the other lab's namespace; the new file drops n2,
    // so an apply trusting the plan would delete that namespace.
    let plan = "/run/nslab/gx-sp.plan.json";
    let text_of = std::fs::read_to_string(plan).unwrap();
    assert!(text_of.contains("\"nslab.gx-sp.n2\""));
    let edited = text_of.replace("\"nslab.gx-sp.n2\"", "\"nslab.gx-sp-other.h1\"");
    std::fs::write(plan, &edited).unwrap();
    std::fs::write(&lab.file, "name: gx-sp\nnodes: { n1: {} }\n").unwrap();
    let o = nslab().arg("apply").arg(&lab.file).output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains(plan), "{out}");
    assert!(out.contains("is not the lab's"), "{out}");
    assert!(
        out.contains("names namespace `nslab.gx-sp-other.h1`"),
        "{out}"
    );
    assert!(out.contains("nslab down gx-sp"), "{out}");
    // Nothing changed: the other lab is whole, this one as it ran, n2 included.
    assert!(std::path::Path::new("/run/netns/nslab.gx-sp-other.h1").exists());
    let h2 = other.addr("h2", "eth0", false);
    assert!(other.ping("h1", &h2), "the other lab was damaged");
    assert!(std::path::Path::new("/run/netns/nslab.gx-sp.n2").exists());
    assert_eq!(std::fs::read_to_string(plan).unwrap(), edited);
    // The hint works: down goes by the journal.
    lab.down();
    assert!(!std::path::Path::new("/run/netns/nslab.gx-sp.n2").exists());
    other.down();
    assert_same_host(&before, &host_snapshot(), "an edited stored plan");
}

/// A veth pair of the host's own, made for one test (its first end optionally with an
/// alias) and deleted when dropped.
struct HostVeth(&'static str);

impl HostVeth {
    fn new(name: &'static str, peer: &str, alias: Option<&str>) -> HostVeth {
        ip(&["link", "add", name, "type", "veth", "peer", "name", peer]);
        let v = HostVeth(name);
        if let Some(a) = alias {
            ip(&["link", "set", name, "alias", a]);
        }
        v
    }

    fn ifindex(&self) -> u32 {
        ifindex_of(self.0).expect("the test's veth exists")
    }
}

impl Drop for HostVeth {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", self.0])
            .status();
    }
}

/// Runs `ip` for a test's own fixtures (nslab itself never does).
fn ip(args: &[&str]) {
    let ok = std::process::Command::new("ip")
        .args(args)
        .status()
        .unwrap();
    assert!(ok.success(), "ip {args:?}");
}

/// The host's interface `name`'s ifindex, if it exists.
fn ifindex_of(name: &str) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex")).ok()?;
    s.trim().parse().ok()
}

/// The host's interface `name`'s alias (empty when it has none).
fn alias_of(name: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifalias"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn down_never_deletes_a_host_interface_the_kernel_does_not_tag_as_the_labs() {
    use nslab::plan::Undo;
    use nslab::state::Record;
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    // Two host interfaces that are not the lab's: one untagged, one tagged as another
    // lab's. A record naming either by its real name and number passes every check a
    // file can: only the kernel's tag tells them from the lab's own.
    let untagged = HostVeth::new("gx-tag-v", "gx-tag-vp", None);
    let other = HostVeth::new("gx-tag-w", "gx-tag-wp", Some("nslab:gx-tag-other"));
    ip(&["addr", "add", "192.0.2.79/32", "dev", "gx-tag-v"]);
    let lab = Lab::new("gx-tag", "nodes: { n1: {} }\n");
    lab.up();
    let host_link = |name: &str, ifindex| Undo::DeleteLink {
        netns: "@host".into(),
        name: name.into(),
        ifindex,
    };
    let (v, w) = (untagged.ifindex(), other.ifindex());
    let records = [
        host_link("gx-tag-v", v),
        Undo::DeleteAddress {
            netns: "@host".into(),
            ifindex: v,
            address: "192.0.2.79/32".parse().unwrap(),
            link: Some("gx-tag-v".into()),
        },
        host_link("gx-tag-w", w),
    ];
    append_journal("gx-tag", &records.map(|undo| Record::Object { undo }));
    let o = nslab().args(["down", "gx-tag"]).output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("3 of its journal records were refused"),
        "{out}"
    );
    assert!(
        out.contains("host interface `gx-tag-v` (index")
            && out.contains("without the lab's tag `nslab:gx-tag`"),
        "{out}"
    );
    assert!(
        out.contains("remove it with `ip link del gx-tag-v`"),
        "{out}"
    );
    assert!(out.contains("its alias is `nslab:gx-tag-other`"), "{out}");
    // Both are where they were, under the same numbers, the address kept; the lab is gone.
    assert_eq!(
        ifindex_of("gx-tag-v"),
        Some(v),
        "the untagged veth was deleted"
    );
    assert_eq!(
        ifindex_of("gx-tag-w"),
        Some(w),
        "another lab's veth was deleted"
    );
    let o = std::process::Command::new("ip")
        .args(["-o", "addr", "show", "dev", "gx-tag-v"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("192.0.2.79/32"),
        "the host's address was deleted"
    );
    assert!(!lab.is_up());
    assert!(!std::path::Path::new("/run/nslab/gx-tag.journal").exists());
    drop((untagged, other));
    assert_same_host(
        &before,
        &host_snapshot(),
        "records naming untagged host interfaces",
    );
}

#[test]
fn a_management_bridge_without_its_tag_is_left_with_the_command_that_removes_it() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "gx-old",
        "mgmt: { subnet: 172.31.249.0/24 }\nnodes: { n1: {} }\n",
    );
    lab.up();
    assert_eq!(alias_of("br-gx-old"), "nslab:gx-old");
    assert_eq!(alias_of("gx-old-n1"), "nslab:gx-old");
    // As an nslab from before tags left it: the lab's own bridge, by name and number in
    // its own journal, but nothing the kernel keeps says it is the lab's.
    ip(&["link", "set", "br-gx-old", "alias", ""]);
    assert_eq!(alias_of("br-gx-old"), "");
    let o = nslab().args(["down", "gx-old"]).output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("were refused"), "{out}");
    assert!(
        out.contains("delete link br-gx-old in @host: host interface `br-gx-old`")
            && out.contains("remove it with `ip link del br-gx-old`"),
        "{out}"
    );
    assert!(
        ifindex_of("br-gx-old").is_some(),
        "the untagged bridge was deleted"
    );
    // The tagged port went, the lab is down, and the hint does what it says.
    assert!(ifindex_of("gx-old-n1").is_none());
    assert!(!lab.is_up());
    ip(&["link", "del", "br-gx-old"]);
    assert_same_host(&before, &host_snapshot(), "an untagged management bridge");
}

#[test]
fn an_apply_leaves_an_untagged_host_interface_and_says_how_to_remove_it() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "gx-oldap",
        "mgmt: { subnet: 172.31.250.0/24 }\nnodes: { n1: {}, n2: {} }\n",
    );
    lab.up();
    // n1's management port as an nslab from before tags left it; the change removes it.
    ip(&["link", "set", "gx-oldap-n1", "alias", ""]);
    let port = ifindex_of("gx-oldap-n1");
    let changed = lab.file.with_extension("next.yaml");
    std::fs::write(
        &changed,
        "name: gx-oldap\nmgmt: { subnet: 172.31.250.0/24 }\nnodes: { n1: { mgmt: false }, n2: {} }\n",
    )
    .unwrap();
    let o = nslab().arg("apply").arg(&changed).output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("1 host interface it was to delete was left in place")
            && out.contains("remove it with `ip link del gx-oldap-n1`"),
        "{out}"
    );
    assert_eq!(
        ifindex_of("gx-oldap-n1"),
        port,
        "the untagged port was deleted"
    );
    // The rest of the change stands: the lab is up, n2's port still tagged.
    assert!(lab.is_up());
    assert_eq!(alias_of("gx-oldap-n2"), "nslab:gx-oldap");
    // The hint does what it says (the port would otherwise go only once the kernel frees
    // n1's namespace, some time after `down`).
    ip(&["link", "del", "gx-oldap-n1"]);
    assert!(ifindex_of("gx-oldap-n1").is_none());
    lab.down();
    let _ = std::fs::remove_file(&changed);
    assert_same_host(
        &before,
        &host_snapshot(),
        "an apply over an untagged host port",
    );
}

#[test]
fn an_apply_that_would_make_anew_an_untagged_host_interface_is_refused_before_any_change() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "gx-reup",
        "nodes: { n1: {} }\nlinks:\n  - endpoints: [n1:eth1, { host: gx-reup-h }]\n",
    );
    lab.up();
    ip(&["link", "set", "gx-reup-h", "alias", ""]);
    let host_end = ifindex_of("gx-reup-h");
    // The link is made anew (its node end renamed) under the same host end's name: the
    // old one would not go, so the new one clashes with it, and nothing changes.
    let changed = lab.file.with_extension("next.yaml");
    std::fs::write(
        &changed,
        "name: gx-reup\nnodes: { n1: {} }\nlinks:\n  - endpoints: [n1:eth2, { host: gx-reup-h }]\n",
    )
    .unwrap();
    let o = nslab().arg("apply").arg(&changed).output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("interface `gx-reup-h` already exists on the host"),
        "{out}"
    );
    assert_eq!(ifindex_of("gx-reup-h"), host_end);
    assert!(
        lab.exec("n1", &["ip", "link", "show", "eth1"])
            .status
            .success()
    );
    assert!(lab.is_up());
    ip(&["link", "del", "gx-reup-h"]);
    lab.down();
    let _ = std::fs::remove_file(&changed);
    assert_same_host(
        &before,
        &host_snapshot(),
        "an apply over an untagged host end",
    );
}

#[test]
fn down_never_signals_a_process_a_forged_pid_file_names() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "gx-pidf",
        "nodes:\n  a:\n    processes:\n      - { name: p, cmd: \"sleep 1000\" }\n",
    );
    lab.up();
    // A process of the host's, named by the node's pid file with its true start time
    // (both readable from /proc), as a forged or stale record would.
    let mut victim = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let pid = victim.id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let start = rest.split_whitespace().nth(19).unwrap();
    std::fs::write(
        "/run/nslab/gx-pidf.nodes/a.pid",
        format!("{pid} {start} 100\n"),
    )
    .unwrap();
    // down still removes the lab: its init is found in the lab's namespaces.
    lab.down();
    assert!(!std::path::Path::new("/run/netns/nslab.gx-pidf.a").exists());
    // down waits for what it signals: a victim it had signalled would have exited.
    let alive = victim.try_wait().unwrap().is_none();
    let _ = victim.kill();
    let _ = victim.wait();
    assert!(alive, "down signalled the process a forged pid file named");
}

/// Whether process `pid` is alive and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].to_string()))
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// A node without a uts namespace of its own shares its init's with whoever ran `up`; a
/// `down` run from another uts namespace (a service with `ProtectHostname=`, a container,
/// `unshare -u`) took that namespace for the node's and stopped every process in it as a
/// stray: from the host's, every process on the machine. Here `up` runs in a uts
/// namespace of its own beside a bystander, and `down` from the test's.
#[test]
fn down_from_other_namespaces_stops_no_process_outside_the_node() {
    if !privileged() {
        return;
    }
    let _host = shared();
    let lab = Lab::new(
        "gd-nsother",
        "nodes:\n  a:\n    isolation: [net, mnt, ipc]\n    processes: [{ name: s, cmd: \"sleep 1000\" }]\n",
    );
    let script = format!(
        "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; exec '{}' up '{}'",
        env!("CARGO_BIN_EXE_nslab"),
        lab.file.display()
    );
    let o = std::process::Command::new("unshare")
        .args(["-u", "sh", "-c", &script])
        .output()
        .unwrap();
    let bystander: i32 = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no bystander pid: {}", text(&o)));
    let (up_ok, up_text) = (o.status.success(), text(&o));
    // The control: a daemon `nslab exec` left in the node is a stray, and must still go.
    let o = lab.exec(
        "a",
        &[
            "sh",
            "-c",
            "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!",
        ],
    );
    let stray: Option<i32> = text(&o).trim().parse().ok();
    lab.down();
    let survived = alive(bystander);
    let stray_left = stray.is_some_and(alive);
    // SAFETY: kills of processes this test started, by their pids.
    unsafe {
        libc::kill(bystander, libc::SIGKILL);
        if let Some(p) = stray.filter(|_| stray_left) {
            libc::kill(p, libc::SIGKILL);
        }
    }
    assert!(up_ok, "up failed: {up_text}");
    assert!(stray.is_some(), "no stray pid: {}", text(&o));
    assert!(
        survived,
        "down killed pid {bystander}, which only shared the uts namespace `up` ran in"
    );
    assert!(!stray_left, "the node's stray outlived down");
    assert!(!lab.is_up());
}

#[test]
fn an_untagged_management_port_is_never_deleted_by_down_even_when_its_namespace_stays() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "gx-untag",
        "mgmt: { subnet: 172.31.234.0/24 }\nnodes: { n1: {}, n2: {} }\n",
    );
    lab.up();
    // n1's port without its tag, and n1's namespace held open by a process outside the
    // lab: when `down` deletes the namespace's name, the kernel cannot take the port
    // with it, so only nslab could delete it, and it must not.
    ip(&["link", "set", "gx-untag-n1", "alias", ""]);
    let ns = std::fs::File::open("/run/netns/nslab.gx-untag.n1").unwrap();
    let mut holder = std::process::Command::new("sleep")
        .arg("600")
        .stdin(std::process::Stdio::from(ns))
        .spawn()
        .unwrap();
    let o = nslab().args(["down", "gx-untag"]).output().unwrap();
    let out = text(&o);
    let port_left = ifindex_of("gx-untag-n1").is_some();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("delete link gx-untag-n1 in @host: host interface `gx-untag-n1`")
            && out.contains("without the lab's tag `nslab:gx-untag`"),
        "{out}"
    );
    assert!(port_left, "the untagged port was deleted: {out}");
    // The tagged port and the bridge went, and the lab is down.
    assert!(ifindex_of("gx-untag-n2").is_none());
    assert!(ifindex_of("br-gx-untag").is_none());
    assert!(!lab.is_up());
    // Let go, the namespace is freed and the kernel takes the pair.
    wait_for("the untagged port to go with its namespace", || {
        ifindex_of("gx-untag-n1").is_none()
    });
    assert_same_host(&before, &host_snapshot(), "an untagged management port");
}

/// The lab's summary (`<lab>.json`) is what `link`, `capture`, `exec` and `shell` act on
/// as root: edited to give a node the host's namespace (`../../proc/self/ns/net`, which
/// the netns directory joins into the host's) and a host interface's number, it had
/// `nslab link down` set that host interface down.
#[test]
fn runtime_commands_refuse_a_summary_edited_to_lead_out_of_the_lab() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let victim = HostVeth::new("gx-sumv0", "gx-sumv1", None);
    ip(&["link", "set", "gx-sumv0", "up"]);
    ip(&["link", "set", "gx-sumv1", "up"]);
    let lab = Lab::new(
        "gx-sum",
        "nodes: { a: { isolation: [net] }, b: { isolation: [net] } }\nlinks: [[a:eth0, b:eth0]]\n",
    );
    lab.up();
    let path = "/run/nslab/gx-sum.json";
    let honest = std::fs::read_to_string(path).unwrap();
    let up = || {
        std::fs::read_to_string("/sys/class/net/gx-sumv0/flags")
            .map(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).unwrap() & 1 == 1)
            .unwrap()
    };
    let forge = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut s: serde_json::Value = serde_json::from_str(&honest).unwrap();
        edit(&mut s);
        std::fs::write(path, s.to_string()).unwrap();
    };
    let ix = victim.ifindex();
    type Edit<'a> = &'a dyn Fn(&mut serde_json::Value);
    let forgeries: [(&str, Edit); 3] = [
        ("has namespace `../../proc/self/ns/net`", &|s| {
            s["nodes"][0]["netns"] = "../../proc/self/ns/net".into();
            s["nodes"][0]["interfaces"][0]["ifindex"] = ix.into();
        }),
        ("is in namespace `../../proc/self/ns/net`", &|s| {
            s["nodes"][0]["interfaces"][0]["peer"]["netns"] = "../../proc/self/ns/net".into();
            s["nodes"][0]["interfaces"][0]["peer"]["ifindex"] = ix.into();
        }),
        ("summary of lab `other`", &|s| s["lab"] = "other".into()),
    ];
    for (why, edit) in forgeries {
        forge(edit);
        let o = nslab()
            .args(["link", "down", "--lab", "gx-sum", "a:eth0"])
            .output()
            .unwrap();
        let out = text(&o);
        assert!(!o.status.success(), "{why}: {out}");
        assert!(out.contains("refused, never acted on"), "{why}: {out}");
        assert!(out.contains(why), "{why}: {out}");
        assert!(out.contains("nslab down gx-sum"), "{why}: {out}");
        assert!(up(), "{why}: the host's interface was set down: {out}");
    }
    // The honest summary works as before; `down` goes by the journal either way.
    std::fs::write(path, &honest).unwrap();
    let o = nslab()
        .args(["link", "down", "--lab", "gx-sum", "a:eth0"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(up());
    lab.down();
}

/// `<lab>.host-sysctls` (what `up --raise-neigh-limit` raised) is written back by `down`
/// as root, key by key: a record edited to name any other file had `down` write its
/// `before` there (`"key": "/etc/..."` replaced `/proc/sys` in the path).
#[test]
fn down_never_writes_back_a_host_sysctl_record_naming_another_file() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("gx-hsys", "nodes: { a: {} }\n");
    lab.up();
    let victim = std::env::temp_dir().join(format!("nslab-gx-hsys-{}", std::process::id()));
    std::fs::write(&victim, "secret\n").unwrap();
    let record = serde_json::json!([
        { "key": victim.to_str().unwrap(), "before": "written by down", "set": "secret" }
    ]);
    std::fs::write("/run/nslab/gx-hsys.host-sysctls", record.to_string()).unwrap();
    let o = nslab().args(["down", "gx-hsys"]).output().unwrap();
    let out = text(&o);
    let after = std::fs::read_to_string(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap();
    assert_eq!(
        after, "secret\n",
        "down wrote into a file the record named: {out}"
    );
    assert!(out.contains("not a sysctl nslab raises"), "{out}");
    assert!(!std::path::Path::new("/run/nslab/gx-hsys.host-sysctls").exists());
    // What is left (the lab's files, kept with the refusal) goes with the next down.
    lab.down();
    assert!(!std::path::Path::new("/run/netns/nslab.gx-hsys.a").exists());
    assert!(!std::path::Path::new("/run/nslab/gx-hsys.journal").exists());
}
