//! Links joining two bridges, on real namespaces: a Mininet tree whose hosts all reach each
//! other through three joined switches, a branch cut by `apply`, and a ring of bridges
//! held loop-free by the kernel's spanning tree. Each test leaves the host as it found it.
//! Run as root; under CI=true a test that cannot run fails.

mod support;

use std::process::Output;

use support::*;

/// The lines of the host's snapshot (namespaces, mounts, cgroups, processes) that name
/// the lab: other labs may come and go on the machine meanwhile.
fn traces(lab: &str) -> Vec<String> {
    host_snapshot()
        .lines()
        .filter(|l| l.contains(lab))
        .map(str::to_string)
        .collect()
}

/// `nslab test --lab`: the running lab's checks, with real pings.
fn checks(lab: &Lab) -> Output {
    nslab().args(["test", "--lab", &lab.name]).output().unwrap()
}

#[test]
fn mininet_tree_reaches_every_host_and_apply_cuts_a_branch() {
    if !privileged() {
        return;
    }
    let _h = shared();
    assert_eq!(traces("it-mntree"), Vec::<String>::new());
    let lab = Lab::from_example("it-mntree", "mininet-tree.yaml");
    lab.up();
    let o = checks(&lab);
    assert!(o.status.success(), "reach all -> all: {}", text(&o));
    assert!(text(&o).contains("1 passed"), "{}", text(&o));
    // The switch-to-switch links are ports of both bridges, in the fabric.
    let ports = std::process::Command::new("ip")
        .args([
            "-n",
            "nslab.it-mntree",
            "-o",
            "link",
            "show",
            "master",
            "s1",
        ])
        .output()
        .unwrap();
    let ports = text(&ports);
    assert!(
        ports.contains("s1.s2@s2.s1") && ports.contains("s1.s3@s3.s1"),
        "{ports}"
    );

    // Cut s1 - s3: h3 and h4 are now a segment of their own.
    let yaml = std::fs::read_to_string(&lab.file).unwrap();
    assert!(yaml.contains("  s3: {}\n"));
    let cut = yaml.replace("  - [s1, s3]\n", "").replace(
        "  - reach: { from: all, to: all }",
        "  - reach: { from: h1, to: h3, expect: fail }\n  - reach: { from: h1, to: h2 }",
    );
    assert_ne!(cut, yaml);
    std::fs::write(&lab.file, cut).unwrap();
    let o = nslab().arg("apply").arg(&lab.file).output().unwrap();
    assert!(o.status.success(), "apply: {}", text(&o));
    let o = checks(&lab);
    assert!(o.status.success(), "after the cut: {}", text(&o));
    assert!(text(&o).contains("2 passed"), "{}", text(&o));
    let ports = std::process::Command::new("ip")
        .args(["-n", "nslab.it-mntree", "-o", "link"])
        .output()
        .unwrap();
    let ports = text(&ports);
    assert!(
        !ports.contains("s1.s3") && !ports.contains("s3.s1"),
        "{ports}"
    );
    assert!(ports.contains("s1.s2"), "{ports}");

    // Join s1 - s3 again, with STP turned on for s3 (the bridge is made again, and so is
    // every port on it): every host reaches every other again.
    std::fs::write(&lab.file, yaml.replace("  s3: {}", "  s3: { stp: true }")).unwrap();
    let o = nslab().arg("apply").arg(&lab.file).output().unwrap();
    assert!(o.status.success(), "apply: {}", text(&o));
    // s3 forwards after STP's listening and learning (4 s), within the check's 10 s.
    let o = checks(&lab);
    assert!(o.status.success(), "after joining again: {}", text(&o));
    assert!(text(&o).contains("1 passed"), "{}", text(&o));

    lab.down();
    let left = traces("it-mntree");
    assert!(left.is_empty(), "left on the host: {left:#?}");
}

#[test]
fn stp_ring_of_three_bridges_converges_and_reaches_every_host() {
    if !privileged() {
        return;
    }
    let _h = shared();
    assert_eq!(traces("it-stpring"), Vec::<String>::new());
    let lab = Lab::from_example("it-stpring", "stp-ring.yaml");
    lab.up();
    // The check polls until STP forwards (its timeout is 30 s), then every pair answers.
    let o = checks(&lab);
    assert!(o.status.success(), "reach all -> all: {}", text(&o));
    assert!(text(&o).contains("1 passed"), "{}", text(&o));
    // The kernel runs STP on each bridge, and it blocked one port of the ring.
    for br in ["s1", "s2", "s3"] {
        let path = format!("/sys/class/net/{br}/bridge/stp_state");
        let o = std::process::Command::new("ip")
            .args(["netns", "exec", "nslab.it-stpring", "cat", &path])
            .output()
            .unwrap();
        assert_eq!(text(&o).trim(), "1", "{br}: stp_state");
    }
    let o = std::process::Command::new("ip")
        .args(["netns", "exec", "nslab.it-stpring", "bridge", "link"])
        .output()
        .unwrap();
    let blocking = text(&o)
        .lines()
        .filter(|l| l.contains("state blocking"))
        .count();
    assert_eq!(blocking, 1, "one port of the ring blocked:\n{}", text(&o));
    lab.down();
    let left = traces("it-stpring");
    assert!(left.is_empty(), "left on the host: {left:#?}");
}
