//! containerlab topology files: the corpus under tests/clab/ imports, validates and comes
//! up; the mapping follows containerlab's inheritance; what cannot map is reported at its
//! line; `nslab import` output brings up the same kernel state as the file it came from.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nslab::{CompileError, compile_file, compile_str};
use support::{Lab, copy_dir, nslab, privileged, root, text};

fn corpus(rel: &str) -> PathBuf {
    root().join("tests/clab").join(rel)
}

/// Files that validate as they are.
const VALID: &[&str] = &[
    "containerlab/frr01/frr01.clab.yml",
    "containerlab/smoke/01-linux-single-node.clab.yml",
    "containerlab/smoke/03-linux-nodes-to-bridge-and-host.clab.yml",
    "containerlab/smoke/stages.clab.yml",
    "own/binds-env.clab.yml",
    "own/ospf-instances/ospf-instances.clab.yml",
    "cilium/bgp-cplane-dev-v4/topo.yaml",
    "cilium/bgp-cplane-dev-v6/topo.yaml",
    // These bind files directly under `/`: the node gets a new root.
    "containerlab/smoke/01-linux-nodes.clab.yml",
    "containerlab/smoke/24-basic-groups.clab.yaml",
];

fn import(file: &Path) -> String {
    let o = nslab().arg("import").arg(file).output().unwrap();
    assert!(
        o.status.success(),
        "import {}: {}",
        file.display(),
        text(&o)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn plan_of(c: &nslab::Compiled) -> String {
    nslab::plan::render_text(&nslab::plan::plan(&c.topology))
}

#[test]
fn every_corpus_file_imports_and_the_import_compiles_to_the_same_plan() {
    let all = VALID.iter();
    for rel in all {
        let file = corpus(rel);
        let direct = compile_file(&file).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let yaml = import(&file);
        assert!(!yaml.contains("topology:"), "{rel}: {yaml}");
        let imported = compile_str(&yaml, "imported.yaml", file.parent().unwrap())
            .unwrap_or_else(|e| panic!("{rel} imported: {e}\n{yaml}"));
        assert_eq!(plan_of(&direct), plan_of(&imported), "{rel}");
    }
}

#[test]
fn corpus_files_validate() {
    for rel in VALID {
        let o = nslab().arg("validate").arg(corpus(rel)).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{rel}: {}", text(&o));
    }
}

#[test]
fn the_mapping_follows_containerlab_inheritance() {
    let t = compile_file(&corpus("own/binds-env.clab.yml"))
        .unwrap()
        .topology;
    assert_eq!(t.lab, "binds-env");
    let node = |n: &str| t.nodes.iter().find(|x| x.name == n).unwrap();
    let env = |n: &str| {
        node(n)
            .env
            .iter()
            .find(|(k, _)| k == "GREETING")
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(env("h1"), "from-node");
    assert_eq!(env("h2"), "from-defaults");
    // containerlab's 1G is 10^9 bytes.
    assert_eq!(node("h2").limits.memory, Some(1_000_000_000));
    // The file's bind, and the busybox applets of its alpine image.
    let mounts = &node("h1").mounts;
    assert_eq!(mounts.len(), 1 + nslab::clab::images::BUSYBOX_APPLETS.len());
    assert_eq!(mounts[0].target, "/tmp/hello.txt");
    assert!(
        mounts[1..]
            .iter()
            .all(|m| m.source == Path::new("/bin/busybox"))
    );
    let h3_deps: Vec<&str> = node("h3")
        .depends_on
        .iter()
        .map(|d| t.nodes[d.node].name.as_str())
        .collect();
    assert_eq!(h3_deps, ["h1"]);
    assert_eq!(t.bridges.len(), 1);
    let iface = |n: &str, i: &str| {
        node(n)
            .interfaces
            .iter()
            .find(|x| x.name == i)
            .unwrap()
            .clone()
    };
    // Unnumbered unless the file gives addresses; containerlab's MTU unless it gives one.
    assert!(iface("h1", "eth1").addresses.is_empty());
    assert_eq!(iface("h1", "eth1").mtu, Some(9500));
    assert_eq!(iface("h2", "eth1").mac, [2, 0, 0, 0, 9, 2]);
    assert_eq!(iface("h1", "eth2").mtu, Some(1500));
    assert_eq!(
        iface("h1", "eth2").addresses,
        ["10.8.0.0/31".parse().unwrap()]
    );
}

fn errors(src: &str) -> String {
    match compile_str(src, "t.clab.yml", Path::new("/")) {
        Err(CompileError::Invalid(r)) => r.render(nslab::Severity::Error),
        Ok(c) => panic!("compiled: {}", c.warnings.render(nslab::Severity::Warning)),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn what_cannot_map_is_reported_at_its_line_all_at_once() {
    let src = "name: x\ntopology:\n  nodes:\n    sr1:\n      kind: nokia_srlinux\n    \
               l1:\n      kind: linux\n      imgae: alpine\n    l2:\n      kind: linux\n      \
               cmd: \"{{ .Cmd }}\"\n";
    let e = errors(src);
    assert!(
        e.contains("kind `nokia_srlinux` is not supported") && e.contains("t.clab.yml:5:13"),
        "{e}"
    );
    assert!(
        e.contains("unknown key `imgae`") && e.contains("did you mean `image`?"),
        "{e}"
    );
    assert!(
        e.contains("Go template") && e.contains("t.clab.yml:11:12"),
        "{e}"
    );
    let ok = "name: Very_Long_Lab_Name\nmgmt: { network: m }\ntopology:\n  nodes:\n    \
              l1: { kind: linux, image: ghcr.io/x/unknown:1, ports: [\"80:80\"] }\n  links:\n    \
              - endpoints: [\"l1:eth1\", \"macvlan:enp0s3\"]\n";
    let c = compile_str(ok, "w.clab.yml", Path::new("/")).unwrap();
    assert_eq!(c.topology.lab, "very-long-la");
    // The file's own management network, shared with every lab naming it.
    let m = c.topology.mgmt.as_ref().expect("a management network");
    assert_eq!(m.network.as_deref(), Some("m"));
    assert_eq!(m.bridge, "br-m");
    let w = c.warnings.render(nslab::Severity::Warning);
    for needle in [
        "`very-long-la`",
        "image `ghcr.io/x/unknown:1` is not in the image map",
        "`ports` of node `l1`",
    ] {
        assert!(w.contains(needle), "`{needle}` missing from {w}");
    }
    // A `macvlan:IF` end maps to nslab's macvlan on the host's IF, with no MTU of its own.
    assert!(!w.contains("macvlan"), "{w}");
    let l1 = c.topology.node("l1").unwrap();
    assert_eq!(l1.devices.len(), 1);
    assert_eq!(l1.devices[0].name, "eth1");
    assert_eq!(l1.devices[0].mtu, None);
    assert!(matches!(
        &l1.devices[0].kind,
        nslab::model::DeviceKind::Macvlan { parent, .. } if parent == "enp0s3"
    ));
}

/// The top-level keys that have no meaning here are each a warning at its line, none
/// silently dropped.
#[test]
fn unused_top_level_keys_are_each_a_located_warning() {
    let src = "name: x\nprefix: p\nsettings: {}\ndebug: true\ntopology:\n  nodes:\n    \
               a: { kind: linux }\n";
    let c = compile_str(src, "t.clab.yml", Path::new("/")).unwrap();
    let w = c.warnings.render(nslab::Severity::Warning);
    for (key, line) in [("prefix", 2), ("settings", 3), ("debug", 4)] {
        assert!(
            w.contains(&format!("`{key}` is not used"))
                && w.contains(&format!("t.clab.yml:{line}:1")),
            "`{key}` at line {line} missing from {w}"
        );
    }
}

#[test]
fn a_refused_node_is_one_error_and_its_links_are_not_called_unknown() {
    // A vendor node is refused at its kind; its links must not add "`sr1` is not a node
    // or bridge ... declare it under `nodes:`", which the file plainly does.
    let src = "name: x\ntopology:\n  nodes:\n    sr1: { kind: nokia_srlinux }\n    \
               l1: { kind: linux }\n  links:\n    - endpoints: [\"sr1:e1-1\", \"l1:eth1\"]\n";
    let e = errors(src);
    assert!(e.contains("kind `nokia_srlinux` is not supported"), "{e}");
    assert!(e.contains("1 error"), "{e}");
    assert!(!e.contains("not a node or bridge"), "{e}");
    // containerlab's vxlan link is left out with a hint that does not deny multi-host labs.
    let vx = "name: x\ntopology:\n  nodes:\n    l1: { kind: linux }\n  links:\n    \
              - { type: vxlan, endpoint: { node: l1, interface: eth1 }, remote: 10.0.0.1, vni: 9 }\n";
    let w = compile_str(vx, "v.clab.yml", Path::new("/"))
        .unwrap()
        .warnings
        .render(nslab::Severity::Warning);
    assert!(w.contains("a link of type `vxlan` is left out"), "{w}");
    assert!(
        w.contains("Multi-host labs") && !w.contains("one host"),
        "{w}"
    );
}

#[test]
fn the_long_form_of_a_macvlan_link_maps_with_its_mode() {
    let src = "name: mvl\ntopology:\n  nodes:\n    l1: { kind: linux }\n    l2: { kind: linux }\n  \
               links:\n    - type: macvlan\n      endpoint: { node: l1, interface: eth1 }\n      \
               host-interface: enp0s3\n      mode: passthru\n    \
               - type: macvlan\n      endpoint: { node: l2, interface: eth2, ipv4: 192.0.2.7/24 }\n      \
               host-interface: enp0s3\n";
    let c = compile_str(src, "mv.clab.yml", Path::new("/")).unwrap();
    let w = c.warnings.render(nslab::Severity::Warning);
    assert!(!w.contains("left out"), "{w}");
    let dev = |n: &str| c.topology.node(n).unwrap().devices[0].clone();
    let (l1, l2) = (dev("l1"), dev("l2"));
    assert_eq!((l1.name.as_str(), l2.name.as_str()), ("eth1", "eth2"));
    match (&l1.kind, &l2.kind) {
        (
            nslab::model::DeviceKind::Macvlan {
                parent: p1,
                mode: m1,
            },
            nslab::model::DeviceKind::Macvlan {
                parent: p2,
                mode: m2,
            },
        ) => {
            assert_eq!((p1.as_str(), p2.as_str()), ("enp0s3", "enp0s3"));
            assert_eq!(format!("{m1:?}"), "Passthru");
            assert_eq!(format!("{m2:?}"), "Bridge", "containerlab's default mode");
        }
        other => panic!("not macvlans: {other:?}"),
    }
    assert_eq!(l2.addresses.len(), 1);
    // A mode nslab does not make, and a missing host interface, are located errors.
    let bad = "name: mvb\ntopology:\n  nodes:\n    l1: { kind: linux }\n  links:\n    \
               - type: macvlan\n      endpoint: { node: l1, interface: eth1 }\n      \
               host-interface: enp0s3\n      mode: source\n    \
               - type: macvlan\n      endpoint: { node: l1, interface: eth2 }\n";
    let e = errors(bad);
    assert!(e.contains("t.clab.yml:9:13"), "the mode is located: {e}");
    assert!(e.contains("needs `host-interface:`"), "{e}");
}

#[test]
fn import_comments_every_construct_that_did_not_map() {
    let yaml = import(&corpus(
        "containerlab/smoke/03-linux-nodes-to-bridge-and-host.clab.yml",
    ));
    for needle in [
        "# ",
        // The file asks for the management network (its bridge) and a host link: both map.
        "mgmt:\n  network: clab\n  subnet: 172.20.20.0/24\n  subnet6: 3fff:172:20:20::/64\n  iface: eth0\n  bridge: 01-03-mgmt\n",
        "- l1:eth3\n    - host:l1-01-03-eth3\n",
        "kind `host` is left out",
    ] {
        assert!(yaml.contains(needle), "`{needle}` missing from {yaml}");
    }
    let dir = std::env::temp_dir().join("nslab-tests-clab-map");
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("images.yaml");
    std::fs::write(&map, "bird:\n  images: [ghcr.io/x/unknown]\n  node:\n    processes: [{ name: bird, cmd: \"bird -f\" }]\n").unwrap();
    let file = dir.join("t.clab.yml");
    std::fs::write(
        &file,
        "name: t\ntopology:\n  nodes:\n    r1: { kind: linux, image: ghcr.io/x/unknown:2 }\n",
    )
    .unwrap();
    let o = nslab()
        .arg("import")
        .arg(&file)
        .arg("--image-map")
        .arg(&map)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("kind: bird") && out.contains("bird -f"),
        "{out}"
    );
    std::fs::write(&map, "bird:\n  imags: [x]\n").unwrap();
    let o = nslab()
        .arg("import")
        .arg(&file)
        .arg("--image-map")
        .arg(&map)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("images.yaml:2:3"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The scratch directory of lab `lab`'s copy: one of its own directly under the
/// temporary directory (the test removes it), so no shared parent is left behind, nor
/// removed under a test running beside it.
fn scratch(lab: &str) -> PathBuf {
    std::env::temp_dir().join(format!("nslab-tests-clab-{lab}"))
}

/// A corpus file's directory copied to a temporary one, the lab renamed to `lab`.
fn copy_as(rel: &str, lab: &str) -> Lab {
    let src = corpus(rel);
    let dir = scratch(lab);
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(src.parent().unwrap(), &dir).unwrap();
    let file = dir.join(src.file_name().unwrap());
    let body = std::fs::read_to_string(&file).unwrap();
    let renamed: String = body
        .lines()
        .map(|l| {
            if l.starts_with("name:") {
                format!("name: {lab}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&file, renamed).unwrap();
    let _ = nslab().args(["down", lab]).output();
    Lab {
        name: lab.to_string(),
        file,
        dir: None,
    }
}

/// Polls until `ok` holds; routing daemons converge in their own time.
/// Each process of `node` and whether it is ready, as `nslab ps --json` tells them.
fn readiness(lab: &str, node: &str) -> Vec<(String, bool)> {
    let ps = nslab()
        .args(["ps", "--lab", lab, node, "--json"])
        .output()
        .unwrap();
    assert!(ps.status.success(), "{}", text(&ps));
    let rows: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    let ready: Vec<(String, bool)> = rows[0]["processes"]
        .as_array()
        .unwrap_or_else(|| panic!("{rows}"))
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["ready"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    ready
}

fn eventually(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn frr01_comes_up_with_the_hosts_frr_and_the_pcs_reach_each_other() {
    if !privileged() {
        return;
    }
    let lab = copy_as("containerlab/frr01/frr01.clab.yml", "clt-frr01");
    lab.up();
    // Addresses and routes from the PCs' `exec`, OSPF between the routers.
    let addr = lab.exec("PC1", &["ip", "-o", "addr", "show", "eth1"]);
    assert!(text(&addr).contains("192.168.11.2/24"), "{}", text(&addr));
    eventually(
        "PC1 reaches PC3 through OSPF",
        Duration::from_secs(90),
        || lab.ping("PC1", "192.168.13.2"),
    );
    eventually("PC2 reaches PC3", Duration::from_secs(90), || {
        lab.ping("PC2", "192.168.13.2")
    });
    eventually("PC3 reaches PC1", Duration::from_secs(90), || {
        lab.ping("PC3", "192.168.11.2")
    });
    // vtysh finds the vtysh.conf FRR's images ship, so it says nothing but its answer.
    let v = lab.exec("router1", &["vtysh", "-c", "show ip ospf neighbor"]);
    assert!(v.status.success(), "{}", text(&v));
    assert!(
        v.stderr.is_empty() && !text(&v).contains("Can't open"),
        "{}",
        text(&v)
    );
    lab.down();
    std::fs::remove_dir_all(lab.file.parent().unwrap()).unwrap();
}

/// A daemons file with `ospfd_instances=1,2`: each router runs ospfd twice, as FRR's
/// init does (`ospfd -n 1`, `ospfd -n 2`), each ready on its own vty socket; vtysh finds
/// both, `vtysh -b` gives each its `router ospf N`, and each instance reaches Full with
/// the other router's on its own link (instance 1 on eth1, 2 on eth2).
#[test]
fn ospfd_instances_each_run_answer_vtysh_and_reach_full_on_their_own_links() {
    if !privileged() || !support::installed(&["/usr/lib/frr/ospfd", "/usr/bin/vtysh"], "FRR") {
        return;
    }
    let lab = copy_as("own/ospf-instances/ospf-instances.clab.yml", "clt-ospfi");
    lab.up();
    let ready = readiness("clt-ospfi", "r1");
    let names = ["zebra", "ospfd-1", "ospfd-2", "staticd"];
    let want: Vec<(String, bool)> = names.iter().map(|n| (n.to_string(), true)).collect();
    assert_eq!(ready, want);
    for i in ["1", "2"] {
        let o = lab.exec("r1", &["cat", &format!("/var/run/frr/ospfd-{i}.pid")]);
        assert!(
            o.status.success(),
            "instance {i} has no pid file: {}",
            text(&o)
        );
        let v = lab.exec("r1", &["vtysh", "-c", &format!("show ip ospf {i}")]);
        let said = text(&v);
        assert!(v.status.success(), "{said}");
        for part in [
            format!("OSPF Instance: {i}"),
            format!("Router ID: 10.255.{i}.1"),
        ] {
            assert!(said.contains(&part), "`{part}` missing: {said}");
        }
    }
    // Each instance is adjacent with r2's on its own link, and only there.
    for (i, iface) in [("1", "eth1"), ("2", "eth2")] {
        let full = || {
            let v = lab.exec(
                "r1",
                &["vtysh", "-c", &format!("show ip ospf {i} neighbor json")],
            );
            let j: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap_or_default();
            let n = &j["neighbors"][format!("10.255.{i}.2")][0];
            n["converged"] == "Full" && n["ifaceName"].as_str().unwrap_or("").starts_with(iface)
        };
        eventually(
            &format!("instance {i} Full with r2 on {iface}"),
            Duration::from_secs(60),
            full,
        );
    }
    lab.down();
    std::fs::remove_dir_all(lab.file.parent().unwrap()).unwrap();
}

#[test]
fn binds_env_bridges_and_the_import_give_the_same_kernel_state() {
    if !privileged() {
        return;
    }
    let lab = copy_as("own/binds-env.clab.yml", "clt-binds");
    lab.up();
    let out = |node: &str, argv: &[&str]| {
        let o = lab.exec(node, argv);
        assert!(o.status.success(), "{node} {argv:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(out("h1", &["sh", "-c", "echo $GREETING"]), "from-node\n");
    assert_eq!(
        out("h2", &["sh", "-c", "echo $GREETING"]),
        "from-defaults\n"
    );
    assert_eq!(
        out("h2", &["cat", "/tmp/hello.txt"]),
        "bound from the host\n"
    );
    assert!(lab.ping("h1", "10.9.0.2"), "h1 and h2 share the bridge");
    assert!(lab.ping("h3", "10.8.0.1"));
    let direct =
        nslab::runtime::dump_lab(&nslab::state::HostContext::from_env(), &lab.name).unwrap();
    lab.down();

    let imported = lab.file.with_file_name("imported.yaml");
    std::fs::write(&imported, import(&lab.file)).unwrap();
    let again = Lab {
        name: lab.name.clone(),
        file: imported,
        dir: None,
    };
    again.up();
    let from_import =
        nslab::runtime::dump_lab(&nslab::state::HostContext::from_env(), &again.name).unwrap();
    again.down();
    assert_eq!(format!("{direct:#?}"), format!("{from_import:#?}"));
    std::fs::remove_dir_all(lab.file.parent().unwrap()).unwrap();
}

#[test]
fn the_smoke_files_come_up() {
    if !privileged() {
        return;
    }
    for (rel, lab, node, iface) in [
        (
            "containerlab/smoke/01-linux-single-node.clab.yml",
            "clt-single",
            "l1",
            "lo",
        ),
        (
            "containerlab/smoke/03-linux-nodes-to-bridge-and-host.clab.yml",
            "clt-bridge",
            "l1",
            "eth2",
        ),
        (
            "containerlab/smoke/stages.clab.yml",
            "clt-stages",
            "node4",
            "eth3",
        ),
    ] {
        let lab = copy_as(rel, lab);
        lab.up();
        let o = lab.exec(node, &["cat", &format!("/sys/class/net/{iface}/operstate")]);
        assert!(o.status.success(), "{rel}: {}", text(&o));
        lab.down();
        std::fs::remove_dir_all(lab.file.parent().unwrap()).unwrap();
    }
    the_smoke_lab_that_binds_under_root_comes_up_with_the_file();
    the_groups_lab_comes_up_with_busybox_and_its_groups_settings();
}

/// A node's cgroup control file, under cgroup v2 or the v1 controller's hierarchy.
fn cgroup_file(lab: &str, node: &str, v2: &str, v1: (&str, &str)) -> String {
    let group = format!("nslab/lab-{lab}/node-{node}");
    let v2 = Path::new("/sys/fs/cgroup").join(&group).join(v2);
    let v1 = Path::new("/sys/fs/cgroup")
        .join(v1.0)
        .join(&group)
        .join(v1.1);
    let f = if v2.exists() { v2 } else { v1 };
    std::fs::read_to_string(&f)
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        .trim()
        .to_string()
}

/// containerlab's groups lab: alpine and nginx:stable-alpine nodes, whose `ash` is the
/// host's busybox; each node gets what its group (or `defaults`' group) says.
fn the_groups_lab_comes_up_with_busybox_and_its_groups_settings() {
    let lab = copy_as("containerlab/smoke/24-basic-groups.clab.yaml", "clt-groups");
    lab.up();
    let out = |node: &str, argv: &[&str]| {
        let o = lab.exec(node, argv);
        assert!(o.status.success(), "{node} {argv:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // g1's `cmd` ran under ash (busybox's), with g1's env; /tmp is the node's own.
    assert_eq!(out("l1", &["cat", "/tmp/var"]), "MYVAR is SET\n");
    assert!(!Path::new("/tmp/var").exists(), "/tmp/var on the host");
    out("l1", &["pgrep", "-x", "sleep"]);
    assert!(out("l1", &["cat", "/01-test.txt"]).starts_with("Hello, containerlab"));
    // g1's cpu and memory (1G is 10^9 bytes, rounded down to pages by the kernel).
    let mem: u64 = cgroup_file(
        &lab.name,
        "l1",
        "memory.max",
        ("memory", "memory.limit_in_bytes"),
    )
    .parse()
    .unwrap();
    assert!(
        (1_000_000_000 - 4096..=1_000_000_000).contains(&mem),
        "{mem}"
    );
    let cpu = cgroup_file(&lab.name, "l1", "cpu.max", ("cpu", "cpu.cfs_quota_us"));
    assert!(cpu.starts_with("150000"), "{cpu}");
    // l2 (g2) and l3 (g3, from `defaults`) run no web server, but have busybox's
    // applets the host lacks, after the host's own programs on their PATH.
    for node in ["l2", "l3"] {
        assert_eq!(out(node, &["ash", "-c", "echo $0"]), "ash\n", "{node}");
        let nc = out(node, &["sh", "-c", "command -v nc; command -v ip"]);
        assert!(nc.starts_with("/run/busybox/nc\n/usr/"), "{node}: {nc}");
        assert!(!out(node, &["ps", "-e"]).contains("nginx"), "{node}");
    }
    // Their mgmt addresses: l2's from the file, l3's from the pool.
    assert!(out("l2", &["ip", "-o", "addr", "show", "eth0"]).contains("172.20.20.100/24"));
    assert!(lab.ping("l3", "172.20.20.99"), "l3 reaches l1 over mgmt");
    lab.down();
    std::fs::remove_dir_all(lab.file.parent().unwrap()).unwrap();
}

/// Without the host's busybox, validate says so once per node, at its `image:`, with the
/// install hint (the host's /bin is hidden by a tmpfs in a mount namespace of the test's).
#[test]
fn a_busybox_image_on_a_host_without_busybox_is_one_located_error_per_node() {
    if !privileged() {
        return;
    }
    let file = corpus("containerlab/smoke/24-basic-groups.clab.yaml");
    let script = format!(
        "mount -t tmpfs none /bin && exec {} validate {}",
        env!("CARGO_BIN_EXE_nslab"),
        file.display()
    );
    let o = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    let e = "the host has no /bin/busybox, which gives the node its image's busybox applets";
    assert_eq!(t.matches(e).count(), 3, "{t}");
    for at in [
        "24-basic-groups.clab.yaml:11:14",
        "24-basic-groups.clab.yaml:34:14",
    ] {
        assert!(t.contains(at), "{at}: {t}");
    }
    assert!(t.contains("apt-get install busybox"), "{t}");
}

/// containerlab's smoke lab binds `01-test.txt` onto `/01-test.txt`, which no host has:
/// the node gets a new root, the file arrives, and the host's `/` stays as it was. Run
/// after the other smoke files, not beside them: its `mgmt-net` link takes l2's eth0 down.
fn the_smoke_lab_that_binds_under_root_comes_up_with_the_file() {
    let lab = copy_as("containerlab/smoke/01-linux-nodes.clab.yml", "clt-2nodes");
    lab.up();
    let o = lab.exec("l1", &["cat", "/01-test.txt", "/test.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let got = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(got.starts_with("Hello, containerlab"), "{got}");
    for p in ["/01-test.txt", "/test.json"] {
        assert!(!Path::new(p).exists(), "{p} on the host while up");
    }
    // The `mgmt-net` link keeps its names: l2's eth5, and the host's l2eth5mgmt, a port of
    // the management bridge. With l2's eth0 down, l1 reaches l2 through it.
    let master = std::fs::read_link("/sys/class/net/l2eth5mgmt/master").unwrap();
    // containerlab's default network, shared with every lab on it.
    assert_eq!(master.file_name().unwrap(), "br-clab");
    let o = lab.exec(
        "l2",
        &[
            "sh",
            "-c",
            "ip link set eth0 down && ip addr add 172.20.20.50/24 dev eth5",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        lab.ping("l1", "172.20.20.50"),
        "l1 reaches l2's eth5 over mgmt"
    );
    lab.down();
    assert!(!Path::new("/sys/class/net/l2eth5mgmt").exists());
    for p in ["/01-test.txt", "/test.json"] {
        assert!(!Path::new(p).exists(), "{p} on the host after down");
    }
    std::fs::remove_dir_all(lab.file.parent().unwrap()).unwrap();
}

/// A containerlab file whose image only an image map of its own gives a process, and
/// that map, in a fresh directory.
fn image_map_lab(lab: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("nslab-tests-{lab}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("images.yaml");
    std::fs::write(
        &map,
        "sleeper:\n  images: [ghcr.io/x/sleeper]\n  node:\n    processes: [{ name: nap, cmd: \"sleep 3600\" }]\n",
    )
    .unwrap();
    let file = dir.join("t.clab.yml");
    std::fs::write(
        &file,
        format!("name: {lab}\ntopology:\n  nodes:\n    r1: {{ kind: linux, image: ghcr.io/x/sleeper:1 }}\n"),
    )
    .unwrap();
    (file, map)
}

#[test]
fn validate_plan_and_graph_take_an_image_map_for_a_clab_file() {
    let (file, map) = image_map_lab("clt-mapc");
    let run = |args: &[&str], with_map: bool| {
        let mut c = nslab();
        c.args(args).arg(&file);
        if with_map {
            c.arg("--image-map").arg(&map);
        }
        c.output().unwrap()
    };
    // Without the map the image means nothing: a warning, and no process.
    let o = run(&["plan"], false);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("is not in the image map"), "{}", text(&o));
    assert!(!text(&o).contains("nap"), "{}", text(&o));
    let o = run(&["plan"], true);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !text(&o).contains("is not in the image map"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("nap"), "{}", text(&o));
    let o = run(&["validate"], true);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["graph", "--format", "svg"], true);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("nap"), "{}", text(&o));
    // A broken map is invalid input, located in the map.
    std::fs::write(&map, "sleeper:\n  imags: [x]\n").unwrap();
    for cmd in ["validate", "plan", "up", "apply", "test"] {
        let o = run(&[cmd], true);
        assert_eq!(o.status.code(), Some(3), "{cmd}: {}", text(&o));
        assert!(text(&o).contains("images.yaml:2:3"), "{cmd}: {}", text(&o));
    }
    std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
}

#[test]
fn up_apply_and_test_take_an_image_map_for_a_clab_file() {
    if !privileged() {
        return;
    }
    let (file, map) = image_map_lab("clt-mapu");
    let lab = Lab {
        name: "clt-mapu".into(),
        file: file.clone(),
        dir: None,
    };
    let map_arg = map.to_str().unwrap();
    let o = lab.up_with(&["--image-map", map_arg]);
    assert!(o.status.success(), "{}", text(&o));
    let ps = nslab()
        .args(["ps", "--lab", "clt-mapu", "--json"])
        .output()
        .unwrap();
    assert!(text(&ps).contains("\"nap\""), "{}", text(&ps));
    // The same file with the same map changes nothing; without it, the process goes.
    let apply = |with_map: bool| {
        let mut c = nslab();
        c.arg("apply").arg(&file);
        if with_map {
            c.args(["--image-map", map_arg]);
        }
        c.output().unwrap()
    };
    let o = apply(true);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("nothing changed"), "{}", text(&o));
    let o = apply(false);
    assert!(o.status.success(), "{}", text(&o));
    let ps = nslab()
        .args(["ps", "--lab", "clt-mapu", "--json"])
        .output()
        .unwrap();
    assert!(!text(&ps).contains("\"nap\""), "{}", text(&ps));
    lab.down();
    let o = nslab()
        .arg("test")
        .arg(&file)
        .args(["--image-map", map_arg, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!lab.is_up());
    std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
}

/// The one process of node `n` in a containerlab file given as text.
fn clab_process(src: &str, n: &str) -> (nslab::model::Process, String) {
    let c = compile_str(src, "h.clab.yml", Path::new("/")).unwrap_or_else(|e| panic!("{e}"));
    let node = c.topology.nodes.iter().find(|x| x.name == n).unwrap();
    assert_eq!(node.processes.len(), 1, "{n}");
    (
        node.processes[0].clone(),
        c.warnings.render(nslab::Severity::Warning),
    )
}

#[test]
fn healthcheck_numbers_become_the_probes_interval_timeout_attempts_and_start_period() {
    let src = "name: h\ntopology:\n  nodes:\n    a:\n      kind: linux\n      cmd: sleep 100\n      \
               healthcheck:\n        test: [CMD-SHELL, cat /etc/os-release]\n        \
               start-period: 3\n        retries: 2\n        interval: 5\n        timeout: 4\n    \
               b:\n      kind: linux\n      cmd: sleep 100\n      healthcheck:\n        \
               test: [CMD, \"true\"]\n        interval: 0\n";
    let (a, warnings) = clab_process(src, "a");
    assert!(!warnings.contains("healthcheck"), "{warnings}");
    let r = a.ready.unwrap();
    assert!(
        matches!(&r.probe, nslab::model::Ready::Cmd(c) if c.display() == "cat /etc/os-release")
    );
    assert_eq!(r.interval, Duration::from_secs(5));
    assert_eq!(r.limits.probe_timeout_ms, Some(4_000));
    assert_eq!(r.limits.attempts, Some(2));
    assert_eq!(r.limits.start_period_ms, 3_000);
    // As long as Docker could take to call it unhealthy (3 + 2 × (5 + 4)), plus an
    // interval for the quick first polls.
    assert_eq!(r.timeout, Duration::from_secs(3 + 2 * 9 + 5));
    // Absent or 0 is Docker's default: interval 30, timeout 30, retries 3, no start period.
    let (b, _) = clab_process(src, "b");
    let r = b.ready.unwrap();
    assert_eq!(r.interval, Duration::from_secs(30));
    assert_eq!(r.limits.probe_timeout_ms, Some(30_000));
    assert_eq!(r.limits.attempts, Some(3));
    assert_eq!(r.limits.start_period_ms, 0);
    assert_eq!(r.timeout, Duration::from_secs(3 * 60 + 30));
    let bad = "name: h\ntopology:\n  nodes:\n    a:\n      kind: linux\n      cmd: sleep 1\n      \
               healthcheck: { test: [CMD, \"true\"], retries: many }\n";
    let e = errors(bad);
    assert!(e.contains("invalid healthcheck `retries`: `many`"), "{e}");
    assert!(e.contains("t.clab.yml:7:52"), "{e}");
}

#[test]
fn user_goes_to_the_cmd_process_and_what_runs_as_root_says_so() {
    let src = "name: u\ntopology:\n  nodes:\n    a:\n      kind: linux\n      cmd: sleep 100\n      \
               user: nobody\n      exec: [\"ip link\"]\n    b:\n      kind: linux\n      \
               user: \"100:101\"\n";
    let c = compile_str(src, "u.clab.yml", Path::new("/")).unwrap_or_else(|e| panic!("{e}"));
    let a = c.topology.nodes.iter().find(|x| x.name == "a").unwrap();
    assert_eq!(a.processes[0].user.as_deref(), Some("nobody"));
    let w = c.warnings.render(nslab::Severity::Warning);
    assert!(
        w.contains("the `exec` commands of node `a` run as root") && w.contains("u.clab.yml:7:13"),
        "{w}"
    );
    assert!(
        w.contains("`user` of node `b` is not used") && w.contains("u.clab.yml:11:13"),
        "{w}"
    );
    assert!(!w.contains("nslab runs a node's commands as root"), "{w}");
    // The import carries it over, and the imported file compiles to the same plan.
    let dir = std::env::temp_dir().join("nslab-tests-clab-user");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("u.clab.yml");
    std::fs::write(&file, src).unwrap();
    let yaml = import(&file);
    assert!(yaml.contains("user: nobody"), "{yaml}");
    let imported = compile_str(&yaml, "imported.yaml", &dir).unwrap();
    let direct = compile_file(&file).unwrap();
    assert_eq!(plan_of(&direct), plan_of(&imported));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Cilium's lab `version` as lab `lab`, with the whole `cilium/` directory copied (its
/// image map's mount source is beside the labs), and the map's path.
fn cilium_as(version: &str, lab: &str) -> (Lab, PathBuf) {
    let dir = scratch(lab);
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&corpus("cilium"), &dir).unwrap();
    let file = dir.join(format!("bgp-cplane-dev-{version}/topo.yaml"));
    let body = std::fs::read_to_string(&file).unwrap();
    let renamed = body.replacen(
        &format!("name: bgp-cplane-dev-{version}\n"),
        &format!("name: {lab}\n"),
        1,
    );
    assert_ne!(body, renamed);
    std::fs::write(&file, renamed).unwrap();
    let _ = nslab().args(["down", lab]).output();
    let map = dir.join("nslab/images.yaml");
    (
        Lab {
            name: lab.to_string(),
            file,
            dir: None,
        },
        map,
    )
}

#[test]
fn ciliums_bgp_router_labs_come_up_with_the_image_map_beside_them() {
    if !privileged() {
        return;
    }
    let host_log = Path::new("/var/log/frr.log");
    let host_log_before = host_log.exists();
    for (version, lab, server0, server2) in [
        ("v4", "clt-cil4", "10.0.1.2", "10.0.3.2"),
        ("v6", "clt-cil6", "fd00:10:0:1::2", "fd00:10:0:3::2"),
    ] {
        let (lab, map) = cilium_as(version, lab);
        let o = lab.up_with(&["--image-map", map.to_str().unwrap()]);
        assert!(o.status.success(), "{version}: {}", text(&o));
        // The addresses and routes of the file's `exec`, through router0.
        eventually(
            &format!("{version}: server0 reaches server2 through router0"),
            Duration::from_secs(10),
            || lab.ping("server0", server2),
        );
        assert!(lab.ping("server2", server0), "{version}");
        // The exec's sed, frrinit.sh and vtysh configured the node's own FRR.
        let o = lab.exec("router0", &["vtysh", "-c", "show running-config"]);
        assert!(o.status.success(), "{version}: {}", text(&o));
        assert!(
            text(&o).contains("router bgp 65000"),
            "{version}: {}",
            text(&o)
        );
        let o = lab.exec("router0", &["grep", "-c", "bgpd=yes", "/etc/frr/daemons"]);
        assert!(o.status.success(), "{version}: {}", text(&o));
        // Its /var/log is the node's own.
        let o = lab.exec("router0", &["stat", "-c", "%U", "/var/log/frr.log"]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "frr",
            "{}",
            text(&o)
        );
        lab.down();
        std::fs::remove_dir_all(lab.file.parent().unwrap().parent().unwrap()).unwrap();
    }
    // The host's /var/log gained no frr.log.
    assert_eq!(host_log.exists(), host_log_before);
}

/// A containerlab `user:` the node cannot resolve: `up` refuses the lab before making
/// anything, each unknown user located at its line and naming the files the node would
/// read (a bound /etc/passwd is the file's, not the host's); a user the bound file has,
/// or numbers without an entry, run the process as that user.
#[test]
fn a_user_the_node_cannot_resolve_is_a_located_error_and_nothing_comes_up() {
    if !privileged() {
        return;
    }
    let dir = std::env::temp_dir().join("nslab-tests-clab-users");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nlabuser:x:4321:4321::/:/bin/sh\n",
    )
    .unwrap();
    let node = |n: &str, user: &str, bind: bool| {
        let binds = if bind {
            "      binds: [passwd:/etc/passwd:ro]\n"
        } else {
            ""
        };
        format!(
            "    {n}:\n      kind: linux\n{binds}      cmd: sleep 100\n      user: \"{user}\"\n"
        )
    };
    let lab = |file: &str, nodes: &[String]| {
        let path = dir.join(file);
        let body = format!("name: clt-users\ntopology:\n  nodes:\n{}", nodes.concat());
        std::fs::write(&path, body).unwrap();
        Lab {
            name: "clt-users".into(),
            file: path,
            dir: None,
        }
    };
    let _ = nslab().args(["down", "clt-users"]).output();
    let bad = lab(
        "bad.clab.yml",
        &[node("a", "ghost", false), node("b", "frr", true)],
    );
    let o = bad.up_with(&[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    for needle in [
        "node `a`: process `cmd` cannot run as `ghost`: no user `ghost` in /etc/passwd or /etc/group",
        "bad.clab.yml:7:13",
        &format!(
            "node `b`: process `cmd` cannot run as `frr`: no user `frr` in {}",
            dir.join("passwd").display()
        ),
        "bad.clab.yml:12:13",
        "give numbers (`user: 100:101`), which need no entry",
    ] {
        assert!(t.contains(needle), "`{needle}` missing from: {t}");
    }
    assert!(!bad.is_up(), "clt-users is up");
    assert!(!Path::new("/run/netns/nslab.clt-users.a").exists());

    let good = lab(
        "good.clab.yml",
        &[node("b", "labuser", true), node("c", "4242:4242", false)],
    );
    good.up();
    for (n, ids) in [("b", "4321 4321"), ("c", "4242 4242")] {
        let o = good.exec(n, &["ps", "-o", "uid=,gid=", "-C", "sleep"]);
        let got = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(got, ids, "{n}: {}", text(&o));
    }
    good.down();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cpu_set_becomes_the_cpus_the_nodes_processes_start_on() {
    let src = "name: c\ntopology:\n  kinds:\n    linux: { cpu-set: \"0-1\" }\n  nodes:\n    \
               a:\n      kind: linux\n      cmd: sleep 100\n      cpu-set: \"0,2-3\"\n    \
               b:\n      kind: linux\n      cmd: sleep 100\n";
    let (a, warnings) = clab_process(src, "a");
    assert!(!warnings.contains("cpu-set"), "{warnings}");
    assert_eq!(a.attrs.cpus.unwrap().to_string(), "0,2-3");
    // Inherited from the kind, as containerlab resolves it.
    let (b, _) = clab_process(src, "b");
    assert_eq!(b.attrs.cpus.unwrap().to_string(), "0-1");
    let bad = "name: c\ntopology:\n  nodes:\n    a:\n      kind: linux\n      cmd: sleep 1\n      \
               cpu-set: \"1-0\"\n";
    let e = errors(bad);
    assert!(e.contains("the range `1-0` in `1-0` runs backwards"), "{e}");
    assert!(e.contains("t.clab.yml:7:16"), "{e}");
}

/// Each FRR image node of frr01 (compiled from its file, so its bound daemons files are
/// read) runs the daemons its `daemons` file enables, one process each, ready once its
/// vty socket accepts, every one but zebra after zebra; then `vtysh -b` applies frr.conf.
#[test]
fn frr_image_nodes_run_each_enabled_daemon_ready_on_its_vty_socket_after_zebra() {
    let c = compile_file(&corpus("containerlab/frr01/frr01.clab.yml")).unwrap();
    for node in ["router1", "router2", "router3"] {
        let n = c.topology.nodes.iter().find(|n| n.name == node).unwrap();
        let procs: Vec<serde_json::Value> = n
            .processes
            .iter()
            .map(|p| serde_json::to_value(p).unwrap())
            .collect();
        let names: Vec<&str> = procs.iter().map(|p| p["name"].as_str().unwrap()).collect();
        // zebra=yes, ospfd=yes, ldpd=yes in its daemons file; staticd as FRR always runs it.
        assert_eq!(names, ["zebra", "ospfd", "ldpd", "staticd"], "{node}");
        for p in &procs {
            let name = p["name"].as_str().unwrap();
            assert_eq!(
                p["ready"]["probe"]["unix"],
                format!("/var/run/frr/{name}.vty"),
                "{node}: {p}"
            );
            // After the node's own process 0, zebra.
            let deps = p["depends_on"].as_array().unwrap();
            let on_zebra = deps.len() == 1 && deps[0]["process"] == 0;
            assert_eq!(on_zebra, name != "zebra", "{node}: {p}");
            assert!(deps.is_empty() || on_zebra, "{node}: {p}");
            let argv = p["cmd"].to_string();
            assert!(argv.contains(&format!("/usr/lib/frr/{name}")), "{p}");
            // The file's `--daemon` would leave nslab's supervision.
            assert!(!argv.contains("--daemon"), "{p}");
        }
        let first = serde_json::to_string(&n.exec[0]).unwrap();
        assert!(first.contains("vtysh -b"), "{node}: {first}");
    }
    // Compiled from text alone nothing is read: the daemons FRR runs without a file.
    let text = std::fs::read_to_string(corpus("containerlab/frr01/frr01.clab.yml")).unwrap();
    let c = compile_str(&text, "frr01.clab.yml", Path::new("/nonexistent")).unwrap();
    let n = c
        .topology
        .nodes
        .iter()
        .find(|n| n.name == "router1")
        .unwrap();
    let names: Vec<&str> = n.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["zebra", "staticd"]);
}

/// A healthcheck on an FRR image node is not used, and the warning says why: the daemons
/// are probed on their vty sockets (not that the node runs no process, as on others).
#[test]
fn an_frr_image_nodes_healthcheck_is_not_used_and_the_hint_names_the_vty_probes() {
    let src = "name: hc\ntopology:\n  nodes:\n    r1:\n      kind: linux\n      \
               image: quay.io/frrouting/frr:8.4.1\n      \
               healthcheck: { test: [CMD, vtysh, -c, show version] }\n    h1:\n      \
               kind: linux\n      image: alpine\n      \
               healthcheck: { test: [CMD, \"true\"] }\n";
    let c = compile_str(src, "hc.clab.yml", Path::new("/nonexistent"))
        .unwrap_or_else(|e| panic!("{e}"));
    let w = c.warnings.render(nslab::Severity::Warning);
    let at = |node: &str| {
        let from = w
            .find(&format!("the healthcheck of node `{node}` is not used"))
            .unwrap_or_else(|| panic!("{w}"));
        let rest = &w[from..];
        rest[..rest[1..]
            .find("the healthcheck of node")
            .map_or(rest.len(), |i| i + 1)]
            .to_string()
    };
    let r1 = at("r1");
    assert!(
        r1.contains("vty socket") && !r1.contains("no process"),
        "{r1}"
    );
    let h1 = at("h1");
    assert!(
        h1.contains("no process") && !h1.contains("vty socket"),
        "{h1}"
    );
}

/// `up` of an FRR image lab returns once every daemon is ready and frr.conf is applied:
/// `vtysh` right after it shows the file's configuration, with nothing polled first.
#[test]
fn an_frr_image_lab_has_its_configuration_when_up_returns() {
    if !privileged() {
        return;
    }
    let lab = copy_as("containerlab/frr01/frr01.clab.yml", "clt-frrrdy");
    lab.up();
    let v = lab.exec("router2", &["vtysh", "-c", "show running-config"]);
    assert!(v.status.success(), "{}", text(&v));
    let conf = text(&v);
    for part in [
        "hostname router2",
        "router ospf",
        "ip address 10.10.10.2/32",
    ] {
        assert!(conf.contains(part), "`{part}` missing: {conf}");
    }
    let ready = readiness("clt-frrrdy", "router2");
    assert_eq!(
        ready,
        [
            ("zebra".to_string(), true),
            ("ospfd".to_string(), true),
            ("ldpd".to_string(), true),
            ("staticd".to_string(), true)
        ]
    );
    lab.down();
    std::fs::remove_dir_all(lab.file.parent().unwrap()).unwrap();
}

/// `validate` prints every warning `plan` prints, even when it then finds an error that
/// only it looks for (a bind whose source is missing on this host): the file is what CI
/// runs it on first. `up` and `test` do the same, before they touch anything.
#[test]
fn validate_warns_as_plan_does_even_when_it_finds_an_error() {
    let lab = copy_as("own/ospf-instances/ospf-instances.clab.yml", "clt-vwarn");
    let dir = lab.file.parent().unwrap().to_path_buf();
    let daemons = dir.join("r1/daemons");
    let mut text_of = std::fs::read_to_string(&daemons).unwrap();
    text_of.push_str("watchfrr_enable=yes\n");
    std::fs::write(&daemons, text_of).unwrap();
    let warning = "`watchfrr_enable` is not used";
    let run = |cmd: &str| nslab().arg(cmd).arg(&lab.file).output().unwrap();
    for cmd in ["validate", "plan"] {
        let o = run(cmd);
        assert!(o.status.success(), "{cmd}: {}", text(&o));
        assert!(text(&o).contains(warning), "{cmd}: {}", text(&o));
    }
    let body = std::fs::read_to_string(&lab.file).unwrap();
    let broken = body.replace(
        "        - r2/frr.conf:/etc/frr/frr.conf\n",
        "        - r2/frr.conf:/etc/frr/frr.conf\n        - nosuch-dir:/srv/data\n",
    );
    assert_ne!(broken, body);
    std::fs::write(&lab.file, broken).unwrap();
    let o = run("plan");
    assert!(o.status.success(), "plan: {}", text(&o));
    assert!(text(&o).contains(warning), "plan: {}", text(&o));
    for cmd in ["validate", "up", "test"] {
        let o = run(cmd);
        assert_eq!(o.status.code(), Some(3), "{cmd}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(warning), "{cmd}: {err}");
        assert!(err.contains("nosuch-dir"), "{cmd}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An FRR node's daemons file is read at compile time, as root for `validate`, `plan` and
/// `import` too, so a shared file's bind there may name anything on the host. A FIFO hung
/// the compile for ever and a device was opened (its driver's open runs: `/dev/watchdog`
/// arms the machine's watchdog); now neither is opened, and the compile says so.
#[test]
fn an_frr_daemons_file_that_is_a_fifo_or_a_device_is_never_opened() {
    let dir = std::env::temp_dir().join(format!("nslab-frr-nonreg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("daemons.fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for source in ["/dev/null", "daemons.fifo"] {
        let file = dir.join("t.clab.yml");
        std::fs::write(
            &file,
            format!(
                "name: t\ntopology:\n  nodes:\n    r1:\n      kind: linux\n      image: quay.io/frrouting/frr:10.5.1\n      binds:\n        - {source}:/etc/frr/daemons\n"
            ),
        )
        .unwrap();
        // On a thread: a compile that blocks on the FIFO fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(compile_file(&file).err().map(|e| e.to_string()));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{source}: the compile is still blocked after 60 s"));
        let e = got.unwrap_or_else(|| panic!("{source}: compiled without a word"));
        assert!(
            e.contains("is not a regular file, so it is not read"),
            "{source}: {e}"
        );
        assert!(e.contains("t.clab.yml:6:14"), "{source}: {e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
