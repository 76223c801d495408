//! `nslab k8s` (no root): the manifests of an example against their golden file, every
//! example's manifests through `kubernetes-validate --strict` (the Kubernetes schemas,
//! offline), and the input it refuses, every problem at once and located.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{nslab, root, text};

/// `nslab k8s` run from the repository, so the file is named as in the README.
fn k8s(args: &[&str]) -> std::process::Output {
    nslab()
        .current_dir(root())
        .arg("k8s")
        .args(args)
        .output()
        .unwrap()
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nslab-k8s-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `UPDATE_GOLDEN=1` rewrites the golden file.
#[test]
fn the_manifests_of_an_example_match_their_golden_file() {
    let o = k8s(&["topologies/services.yaml", "--image", "nslab:test"]);
    assert!(o.status.success(), "{}", text(&o));
    let actual = String::from_utf8(o.stdout).unwrap();
    let path = root().join("tests/golden/services.k8s.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).expect("golden; run with UPDATE_GOLDEN=1");
    assert!(
        expected == actual,
        "services.k8s.yaml differs from its golden file; diff it or rerun with UPDATE_GOLDEN=1\n{actual}"
    );
    // The mounted file travels in the ConfigMap and lands at its path beside the file.
    assert!(actual.contains("configs_.index.html: |"), "{actual}");
    assert!(actual.contains("path: configs/index.html"), "{actual}");
}

/// kubernetes-validate, as `scripts/test --deps` installs it; under CI=true its absence
/// fails the test.
fn validator() -> Option<PathBuf> {
    let found = std::env::var_os("NSLAB_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/opt/nslab/k8s-venv/bin/kubernetes-validate")])
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "kubernetes-validate is not installed (scripts/test --deps installs it; CI=true forbids skipping)"
        );
        eprintln!("skipping: kubernetes-validate is not installed (scripts/test --deps)");
    }
    found
}

fn validate(tool: &Path, file: &Path) -> std::process::Output {
    Command::new(tool)
        .args(["--strict", "--no-warn"])
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn every_examples_manifests_pass_strict_schema_validation() {
    let Some(tool) = validator() else { return };
    let dir = tempdir("validate");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root().join("topologies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let o = k8s(&[&format!("topologies/{name}")]);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let out = dir.join(&name);
        std::fs::write(&out, &o.stdout).unwrap();
        files.push(out);
    }
    assert!(files.len() >= 10, "only {} examples", files.len());
    for f in &files {
        let o = validate(&tool, f);
        assert!(o.status.success(), "{}: {}", f.display(), text(&o));
        // One line per object, and every object is one of the three.
        let out = String::from_utf8_lossy(&o.stdout);
        for kind in ["namespace/", "configmap/", "daemonset/"] {
            assert!(out.contains(kind), "{} not validated: {out}", kind);
        }
    }

    // The validator is strict: a field the schema does not have fails it.
    let good = std::fs::read_to_string(&files[0]).unwrap();
    let bad = good.replacen(
        "    privileged: true",
        "    privileged: true\n    privilegd: true",
        1,
    );
    assert_ne!(good, bad);
    let bad_file = dir.join("bad.yaml");
    std::fs::write(&bad_file, bad).unwrap();
    let o = validate(&tool, &bad_file);
    assert!(!o.status.success(), "an unknown field passed: {}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_mount_outside_the_topologys_directory_and_bad_names_are_all_reported() {
    let dir = tempdir("outside");
    std::fs::create_dir_all(dir.join("lab")).unwrap();
    std::fs::write(dir.join("secret.conf"), "x").unwrap();
    std::fs::create_dir_all(dir.join("lab/empty")).unwrap();
    let file = dir.join("lab/lab.yaml");
    std::fs::write(
        &file,
        "name: out\nnodes:\n  a:\n    mounts: [\"../secret.conf:/etc/x.conf\"]\n  b:\n    mounts: [\"empty:/srv\"]\n",
    )
    .unwrap();
    let o = nslab()
        .args(["k8s", file.to_str().unwrap(), "--namespace", "Bad_NS"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.stdout.is_empty(), "manifests printed despite errors");
    for needle in [
        format!("{}:4:14: the mount source", file.display()),
        "not below the topology's directory".into(),
        format!("{}:6:14: the mount source", file.display()),
        "holds no file".into(),
        "namespace `Bad_NS`".into(),
    ] {
        assert!(err.contains(&needle), "`{needle}` missing from:\n{err}");
    }
    assert_eq!(err.matches("hint").count(), 3, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_invalid_topology_is_reported_as_validate_does() {
    let dir = tempdir("invalid");
    let file = dir.join("lab.yaml");
    std::fs::write(&file, "name: bad\nnodes:\n  a: { lables: {} }\n").unwrap();
    let o = nslab()
        .args(["k8s", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("unknown key `lables`"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A lab with `hosts:` runs only on those machines: the DaemonSet's node affinity names
/// them, and each agent takes its share by the node name it is given.
#[test]
fn a_lab_with_hosts_is_pinned_to_those_kubernetes_nodes() {
    let o = k8s(&["topologies/two-machines.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let affinity = out
        .find("key: kubernetes.io/hostname")
        .map(|at| &out[at..])
        .unwrap_or_else(|| panic!("no node affinity:\n{out}"));
    let values = affinity.find("values:").map(|at| &affinity[at..]).unwrap();
    let listed: Vec<&str> = values
        .lines()
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- "))
        .map(|l| l.trim_start().trim_start_matches("- ").trim())
        .collect();
    assert_eq!(listed, ["ha", "hb"], "{out}");
    assert!(
        out.contains("--host"),
        "the agent is not given its host:\n{out}"
    );
    // Without hosts:, no affinity: the lab runs whole wherever an agent runs.
    let o = k8s(&["topologies/services.yaml"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("kubernetes.io/hostname"));
}

/// `nslab k8s` runs on the operator's machine and ships what it reads to the cluster: a
/// link planted in a shared lab directory (a mount source that is one, or one inside a
/// mounted directory) must be refused, never followed to the operator's files; a file
/// too large for a ConfigMap is refused without being read whole.
#[test]
fn links_in_a_mount_source_are_refused_never_followed_out_of_the_topologys_directory() {
    let dir = tempdir("links");
    let lab = dir.join("lab");
    std::fs::create_dir_all(lab.join("conf")).unwrap();
    std::fs::write(dir.join("secret"), "OPERATOR-SECRET").unwrap();
    std::fs::write(lab.join("conf/ok.conf"), "fine").unwrap();
    std::os::unix::fs::symlink(dir.join("secret"), lab.join("conf/leak")).unwrap();
    std::os::unix::fs::symlink(&dir, lab.join("up")).unwrap();
    std::os::unix::fs::symlink(dir.join("secret"), lab.join("key")).unwrap();
    // Sparse: 64 MiB to the kernel, nothing on disk.
    let big = std::fs::File::create(lab.join("big.img")).unwrap();
    big.set_len(64 << 20).unwrap();
    let file = lab.join("lab.yaml");
    std::fs::write(
        &file,
        "name: lk\nnodes:\n  a:\n    mounts: [\"conf:/etc/c\"]\n  b:\n    mounts: [\"up/secret:/etc/s\"]\n  c:\n    mounts: [\"key:/etc/k\"]\n  d:\n    mounts: [\"big.img:/srv/big.img\"]\n",
    )
    .unwrap();
    let o = nslab()
        .args(["k8s", file.to_str().unwrap()])
        .output()
        .unwrap();
    let all = text(&o);
    assert_eq!(o.status.code(), Some(3), "{all}");
    assert!(
        o.stdout.is_empty(),
        "manifests printed despite errors:\n{all}"
    );
    assert!(!all.contains("OPERATOR-SECRET"), "{all}");
    let err = String::from_utf8_lossy(&o.stderr);
    for needle in [
        format!(
            "{}:4:14: conf/leak is, or lies below, a symbolic link",
            file.display()
        ),
        format!(
            "{}:6:14: up/secret is, or lies below, a symbolic link",
            file.display()
        ),
        format!(
            "{}:8:14: key is, or lies below, a symbolic link",
            file.display()
        ),
        format!("{}:10:14: big.img does not fit", file.display()),
    ] {
        assert!(err.contains(&needle), "`{needle}` missing from:\n{err}");
    }
    // Without the links and the large file, the directory's own file is carried.
    for l in ["conf/leak", "up", "key", "big.img"] {
        std::fs::remove_file(lab.join(l)).unwrap();
    }
    std::fs::write(
        &file,
        "name: lk\nnodes:\n  a:\n    mounts: [\"conf:/etc/c\"]\n",
    )
    .unwrap();
    let o = nslab()
        .args(["k8s", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("conf/ok.conf") && out.contains("fine"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A 900-router lab, each router with its own FRR config (1.5 KB, as a real one runs),
/// outgrows one ConfigMap: its files are split over several, each within Kubernetes'
/// limit, projected into one directory; the output passes strict validation and stderr
/// says to apply it server-side (client-side apply's copy is limited to 256 KiB).
#[test]
fn a_900_router_lab_is_split_over_configmaps_that_each_fit_and_validate() {
    let dir = tempdir("large");
    let mut topo = String::from(
        "name: big900\nkinds:\n  frr:\n    isolation: [net, mnt]\n    mounts: [\"configs/{node}:/etc/frr\"]\nnodes:\n",
    );
    for n in 1..=900 {
        topo.push_str(&format!("  r{n}: {{ kind: frr }}\n"));
        let conf = dir.join(format!("configs/r{n}"));
        std::fs::create_dir_all(&conf).unwrap();
        let mut frr = format!(
            "hostname r{n}\nrouter ospf\n ospf router-id 10.0.{}.{}\n",
            n / 250,
            n % 250
        );
        while frr.len() < 1500 {
            frr.push_str(&format!(
                " network 10.{}.{}.0/31 area 0\n",
                n / 250,
                frr.len() % 250
            ));
        }
        std::fs::write(conf.join("frr.conf"), frr).unwrap();
    }
    topo.push_str("links:\n");
    for n in 1..900 {
        topo.push_str(&format!("  - [r{n}:eth1, r{}:eth2]\n", n + 1));
    }
    let file = dir.join("big.yaml");
    std::fs::write(&file, &topo).unwrap();
    let o = nslab()
        .args(["k8s", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let maps: Vec<&serde_yaml::Value> = docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some("ConfigMap"))
        .collect();
    assert_eq!(maps.len(), 2, "1.4 MB of files in two ConfigMaps");
    let mut files = 0;
    for m in &maps {
        let data = m["data"].as_mapping().unwrap();
        let size: usize = data
            .iter()
            .map(|(k, v)| k.as_str().unwrap().len() + v.as_str().unwrap().len())
            .sum();
        assert!(
            size <= 1 << 20,
            "{:?} holds {size} bytes",
            m["metadata"]["name"]
        );
        files += data.len();
    }
    // Each part also holds the generation of the whole, the same in both.
    assert_eq!(
        files, 903,
        "900 configs and the topology, each once, and 2 markers"
    );
    assert_eq!(
        maps[0]["data"]["nslab-generation"],
        maps[1]["data"]["nslab-generation"]
    );
    // The topology's ConfigMap comes after the one holding the files it mounts.
    assert_eq!(maps[1]["metadata"]["name"].as_str(), Some("nslab-big900"));
    assert!(maps[1]["data"].get("big.yaml").is_some());
    let volume = &docs.last().unwrap()["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(
        volume["projected"]["sources"].as_sequence().map(Vec::len),
        Some(2),
        "{volume:?}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("ConfigMap/nslab-big900-2") && err.contains("kubectl apply --server-side"),
        "{err}"
    );
    if let Some(tool) = validator() {
        let manifests = dir.join("manifests.yaml");
        std::fs::write(&manifests, &out).unwrap();
        let o = validate(&tool, &manifests);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout)
                .matches("configmap/")
                .count(),
            2
        );
    }
    // One config past 1 MiB is refused, naming it, with the hint to build it into the image.
    std::fs::write(dir.join("configs/r7/huge.bin"), vec![b'x'; (1 << 20) + 1]).unwrap();
    let o = nslab()
        .args(["k8s", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("configs/r7/huge.bin does not fit") && err.contains("agent's image"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
