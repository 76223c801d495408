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
];

/// Files that import but bind files directly under the host's `/`, which nslab refuses
/// at the bind's line.
const BIND_UNDER_ROOT: &[(&str, &str)] = &[
    ("containerlab/smoke/01-linux-nodes.clab.yml", ":15:11"),
    ("containerlab/smoke/24-basic-groups.clab.yaml", ":14:11"),
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
    let all = VALID.iter().chain(BIND_UNDER_ROOT.iter().map(|(f, _)| f));
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
fn corpus_files_validate_or_are_refused_at_the_line() {
    for rel in VALID {
        let o = nslab().arg("validate").arg(corpus(rel)).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{rel}: {}", text(&o));
    }
    for (rel, at) in BIND_UNDER_ROOT {
        let o = nslab().arg("validate").arg(corpus(rel)).output().unwrap();
        assert_eq!(o.status.code(), Some(3), "{rel}: {}", text(&o));
        assert!(
            text(&o).contains(&format!("{rel}{at}")),
            "{rel}: {}",
            text(&o)
        );
        assert!(text(&o).contains("/01-test.txt"), "{}", text(&o));
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
    assert_eq!(node("h1").mounts.len(), 1);
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
    let w = c.warnings.render(nslab::Severity::Warning);
    for needle in [
        "`very-long-la`",
        "`mgmt` is not used",
        "image `ghcr.io/x/unknown:1` is not in the image map",
        "`ports` of node `l1`",
        "`macvlan:`",
        "w.clab.yml:7:",
    ] {
        assert!(w.contains(needle), "`{needle}` missing from {w}");
    }
}

#[test]
fn import_comments_every_construct_that_did_not_map() {
    let yaml = import(&corpus(
        "containerlab/smoke/03-linux-nodes-to-bridge-and-host.clab.yml",
    ));
    for needle in [
        "# ",
        ":6:1: not mapped: `mgmt`",
        ":25:30: not mapped: a link to `host:`",
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

/// A corpus file's directory copied to a temporary one, the lab renamed to `lab`.
fn copy_as(rel: &str, lab: &str) -> Lab {
    let src = corpus(rel);
    let dir = std::env::temp_dir().join("nslab-tests-clab").join(lab);
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
    }
}

/// Polls until `ok` holds; routing daemons converge in their own time.
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
    lab.down();
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
}
