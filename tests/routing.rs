//! Real routing daemons, as root: FRR labs side by side (two copies of one lab, so every
//! router name, config path and socket path is the same in both) and the isolation of
//! each router's FRR directories. The labs' own checks and scenarios (OSPF adjacencies and
//! rerouting, BGP AS paths and a transit crash, BIRD) run in tests/checks.rs.

mod support;

use support::*;

#[test]
fn two_copies_of_an_frr_lab_run_side_by_side_with_private_frr_directories() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let a = Lab::from_example("rt-ospf-a", "ospf-ring.yaml");
    let b = Lab::from_example("rt-ospf-b", "ospf-ring.yaml");
    a.up();
    b.up();
    for lab in [&a, &b] {
        let o = nslab().args(["test", "--lab", &lab.name]).output().unwrap();
        assert!(o.status.success(), "{}: {}", lab.name, text(&o));
    }
    // Each router sees only its own daemons' pid files and vty sockets, and the host's
    // /var/run/frr is untouched.
    let host_before: Vec<_> = std::fs::read_dir("/var/run/frr")
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    for lab in [&a, &b] {
        let o = lab.exec("r2", &["ls", "/var/run/frr"]);
        let listed = String::from_utf8_lossy(&o.stdout).to_string();
        let names: Vec<&str> = listed.split_whitespace().collect();
        for want in [
            "ospfd.pid",
            "ospfd.vty",
            "zebra.pid",
            "zebra.vty",
            "zserv.api",
        ] {
            assert!(
                names.contains(&want),
                "{}: {want} missing: {names:?}",
                lab.name
            );
        }
        // The pid file is this router's own ospfd, as nslab supervises it.
        let pid = lab.exec("r2", &["cat", "/var/run/frr/ospfd.pid"]);
        let ps: serde_json::Value = serde_json::from_slice(
            &nslab()
                .args(["ps", "--json", "--lab", &lab.name, "r2"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let ospfd = ps[0]["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "ospfd")
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&pid.stdout).trim(),
            ospfd["pid"].to_string(),
            "{}",
            lab.name
        );
    }
    let host_after: Vec<_> = std::fs::read_dir("/var/run/frr")
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(host_before, host_after, "the host's /var/run/frr changed");
    // Stopping one lab's r2 leaves the other's alone.
    let o = nslab()
        .args(["node", "stop", "--lab", "rt-ospf-a", "r2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let ps: serde_json::Value = serde_json::from_slice(
        &nslab()
            .args(["ps", "--json", "--lab", "rt-ospf-b", "r2"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for p in ps[0]["processes"].as_array().unwrap() {
        assert_eq!(p["state"], "running", "{p}");
    }
    a.down();
    b.down();
}
