use super::*;

fn input() -> K8sInput {
    K8sInput {
        lab: "ring".into(),
        namespace: "nslab-ring".into(),
        image: "registry.example/nslab:1".into(),
        file_name: "ring.yaml".into(),
        topology: "name: ring\nnodes: { a: {} }\n".into(),
        files: vec![
            MountedFile {
                path: "configs/a/frr.conf".into(),
                bytes: b"router ospf\n".to_vec(),
                executable: false,
            },
            MountedFile {
                path: "bin/start_a.sh".into(),
                bytes: vec![0xff, 0x00, b'#'],
                executable: true,
            },
        ],
        hosts: vec!["worker-1".into(), "worker-2".into()],
        load: Load::default(),
    }
}

fn yaml(input: &K8sInput) -> serde_yaml::Value {
    let m = manifests(input).unwrap();
    serde_yaml::from_str(&serde_yaml::to_string(&m).unwrap()).unwrap()
}

#[test]
fn keys_escape_what_configmaps_refuse_and_never_collide() {
    assert_eq!(config_key("lab.yaml"), "lab.yaml");
    assert_eq!(config_key("configs/r1/frr.conf"), "configs_.r1_.frr.conf");
    assert_eq!(config_key("a_b"), "a__b");
    assert_eq!(config_key("..data"), "_x2e.data");
    assert_eq!(config_key("a b"), "a_x20b");
    let paths = [
        "a/b", "a_b", "a_.b", "a._b", "a__b", "a/_b", "a_/b", ".a", "_x2ea",
    ];
    let mut keys: Vec<String> = paths.iter().map(|p| config_key(p)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), paths.len(), "{keys:?}");
    let valid = |k: &str| {
        !k.starts_with("..")
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    assert!(keys.iter().all(|k| valid(k)), "{keys:?}");
}

#[test]
fn base64_matches_the_rfc_vectors() {
    let cases = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, coded) in cases {
        assert_eq!(base64(plain.as_bytes()), coded);
    }
    assert_eq!(base64(&[0xff, 0x00, b'#']), "/wAj");
}

#[test]
fn the_configmap_carries_text_as_data_bytes_as_binary_and_the_volume_lays_out_paths() {
    let v = yaml(&input());
    let cm = &v[1];
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["namespace"], "nslab-ring");
    assert_eq!(cm["data"]["ring.yaml"], "name: ring\nnodes: { a: {} }\n");
    assert_eq!(cm["data"]["configs_.a_.frr.conf"], "router ospf\n");
    assert_eq!(cm["binaryData"]["bin_.start__a.sh"], "/wAj");
    let items = &v[2]["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"];
    let items = items.as_sequence().unwrap();
    let paths: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["key"].as_str().unwrap(), i["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [
            ("ring.yaml", "ring.yaml"),
            ("configs_.a_.frr.conf", "configs/a/frr.conf"),
            ("bin_.start__a.sh", "bin/start_a.sh"),
        ]
    );
    assert_eq!(items[2]["mode"], 0o755);
    assert!(items[1].get("mode").is_none(), "absent, not null");
    // The topology holds every node's `env:`, and the nodes share the container's file
    // system: the agent's alone, as `<lab>.yaml` is in /run/nslab.
    assert_eq!(items[0]["mode"], 0o600);
}

#[test]
fn the_daemonset_runs_the_agent_on_the_named_hosts_with_the_hosts_state() {
    let v = yaml(&input());
    assert_eq!(v[0]["kind"], "Namespace");
    assert_eq!(v[0]["metadata"]["name"], "nslab-ring");
    // Pod Security admission at `baseline` (a common default) would refuse the agent.
    assert_eq!(
        v[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    let ds = &v[2];
    assert_eq!(ds["apiVersion"], "apps/v1");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["hostPID"], true);
    // The agent reads its ConfigMap from a volume and never calls the API server: no
    // token in the container, where every node's processes (a `user: nobody` one too)
    // could read it from /var/run/secrets.
    assert_eq!(pod["automountServiceAccountToken"], false);
    let c = &pod["containers"][0];
    assert_eq!(
        c["command"],
        serde_yaml::from_str::<serde_yaml::Value>(
            "[/usr/local/bin/nslab, agent, /etc/nslab/ring.yaml, --host, $(NODE_NAME)]"
        )
        .unwrap()
    );
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert_eq!(c["securityContext"]["privileged"], true);
    assert_eq!(c["image"], "registry.example/nslab:1");
    let netns = &c["volumeMounts"][1];
    assert_eq!(netns["mountPath"], "/run/netns");
    assert_eq!(netns["mountPropagation"], "Bidirectional");
    assert_eq!(c["volumeMounts"][2]["mountPath"], "/run/nslab");
    // The host lock is the machine's, so agents and a host nslab share it.
    let lock = &c["volumeMounts"][3];
    assert_eq!(lock["mountPath"], "/run/nslab.lock");
    let vols = pod["volumes"].as_sequence().unwrap();
    let lock_vol = vols.iter().find(|v| v["name"] == lock["name"]).unwrap();
    assert_eq!(lock_vol["hostPath"]["path"], "/run/nslab.lock");
    assert_eq!(lock_vol["hostPath"]["type"], "FileOrCreate");
    let host = crate::state::HostContext {
        run_dir: "/run/nslab".into(),
        netns_dir: "/run/netns".into(),
        privileged: true,
        host: None,
    };
    assert_eq!(
        crate::state::host_lock_path(&host).to_str(),
        lock["mountPath"].as_str()
    );
    let term = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0]["matchExpressions"][0];
    assert_eq!(term["key"], "kubernetes.io/hostname");
    assert_eq!(term["operator"], "In");
    assert_eq!(term["values"][1], "worker-2");
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"],
        ds["spec"]["template"]["metadata"]["labels"]
    );
}

#[test]
fn without_hosts_there_is_no_affinity() {
    let v = yaml(&K8sInput {
        hosts: vec![],
        ..input()
    });
    assert!(v[2]["spec"]["template"]["spec"].get("affinity").is_none());
}

#[test]
fn a_mounted_copy_of_the_topology_is_carried_once() {
    let mut i = input();
    i.files.push(MountedFile {
        path: "ring.yaml".into(),
        bytes: i.topology.clone().into_bytes(),
        executable: false,
    });
    let v = yaml(&i);
    let items = &v[2]["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"];
    assert_eq!(items.as_sequence().unwrap().len(), 3);
}

#[test]
fn every_bad_name_is_reported_at_once() {
    let bad = K8sInput {
        lab: "ring-".into(),
        namespace: "Ring_NS".into(),
        image: "nslab latest".into(),
        hosts: vec!["worker-1".into(), "bad host".into()],
        ..input()
    };
    let Err(K8sError::Invalid(problems)) = manifests(&bad) else {
        panic!("bad names accepted");
    };
    let text = K8sError::Invalid(problems.clone()).to_string();
    assert_eq!(problems.len(), 5, "{text}");
    for needle in [
        "namespace `Ring_NS`",
        "`nslab-ring-`",
        "lab name, as a label value `ring-`",
        "`bad host`",
        "image `nslab latest`",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
    assert_eq!(text.lines().count(), 5, "one problem a line:\n{text}");
}

#[test]
fn a_file_over_one_mebibyte_is_refused_by_name_and_a_full_configmap_is_exactly_the_limit() {
    let mut i = input();
    i.files.push(MountedFile {
        path: "big.bin".into(),
        bytes: vec![b'x'; CONFIGMAP_LIMIT],
        executable: false,
    });
    let Err(K8sError::Invalid(problems)) = manifests(&i) else {
        panic!("a file larger than a ConfigMap was accepted");
    };
    assert!(
        matches!(&problems[..], [Problem::FileTooLarge { path, hint, .. }] if path == "big.bin" && hint.contains("image")),
        "{problems:?}"
    );
    // A topology that large gets the hint to shorten it.
    let mut i = input();
    i.topology = "#".repeat(CONFIGMAP_LIMIT);
    let Err(K8sError::Invalid(problems)) = manifests(&i) else {
        panic!("a topology larger than a ConfigMap was accepted");
    };
    assert!(
        matches!(&problems[..], [Problem::FileTooLarge { path, hint, .. }] if path == "ring.yaml" && hint.contains("defaults:")),
        "{problems:?}"
    );
    // Exactly at the limit is one ConfigMap: keys and values add up to 1 MiB.
    let mut i = input();
    i.files.clear();
    // The topology's key and text, then the key `f` and its bytes.
    let room = CONFIGMAP_LIMIT - i.file_name.len() - i.topology.len() - "f".len();
    i.files.push(MountedFile {
        path: "f".into(),
        bytes: vec![b'x'; room],
        executable: false,
    });
    let m = manifests(&i).unwrap();
    assert_eq!(
        m.len(),
        3,
        "one byte short of the limit took more than one ConfigMap"
    );
    // One byte more and `f` goes to a second one.
    i.files[0].bytes.push(b'x');
    let m = manifests(&i).unwrap();
    let ids: Vec<String> = m.iter().map(Manifest::id).collect();
    assert_eq!(
        ids,
        [
            "Namespace/nslab-ring",
            "ConfigMap/nslab-ring-2",
            "ConfigMap/nslab-ring",
            "DaemonSet/nslab-ring"
        ]
    );
}

/// Many files past 1 MiB in all: several ConfigMaps, each within the limit, every file
/// in exactly one, and a projected volume laying them all out as one directory.
#[test]
fn files_past_one_mebibyte_are_split_over_configmaps_projected_as_one_directory() {
    let mut i = input();
    i.files = (0..900)
        .map(|n| MountedFile {
            path: format!("configs/r{n}/frr.conf"),
            bytes: format!("hostname r{n}\n{}", "!\n".repeat(1000)).into_bytes(),
            executable: n % 2 == 0,
        })
        .collect();
    let m = manifests(&i).unwrap();
    let maps: Vec<&types::ConfigMap> = m
        .iter()
        .filter_map(|m| match m {
            Manifest::ConfigMap(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(maps.len(), 2, "900 files of 2 KB take two ConfigMaps");
    let mut keys = std::collections::BTreeSet::new();
    for c in &maps {
        let size: usize = c.data.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(size <= CONFIGMAP_LIMIT, "{} holds {size}", c.metadata.name);
        for k in c.data.keys().filter(|k| *k != pack::GENERATION_KEY) {
            assert!(keys.insert(k.clone()), "{k} in two ConfigMaps");
        }
    }
    assert_eq!(keys.len(), 901, "every file and the topology, once");
    // The topology's own ConfigMap comes last, after the files it mounts.
    assert!(
        maps[1].data.contains_key("ring.yaml"),
        "{:?}",
        maps[1].metadata
    );
    let y = yaml(&i);
    let volume = &y[maps.len() + 1]["spec"]["template"]["spec"]["volumes"][0];
    assert!(volume.get("configMap").is_none(), "{volume:?}");
    let sources = volume["projected"]["sources"].as_sequence().unwrap();
    let names: Vec<&str> = sources
        .iter()
        .map(|s| s["configMap"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nslab-ring", "nslab-ring-2"]);
    let items: usize = sources
        .iter()
        .map(|s| s["configMap"]["items"].as_sequence().unwrap().len())
        .sum();
    assert_eq!(
        items, 903,
        "every file, the topology, and each part's marker"
    );
    let first = &sources[0]["configMap"]["items"][1];
    assert_eq!(first["path"].as_str(), Some("configs/r0/frr.conf"));
    assert_eq!(first["mode"].as_u64(), Some(0o755));
}

#[test]
fn the_stream_is_yaml_documents_that_read_back_as_the_objects() {
    let m = manifests(&input()).unwrap();
    let text = to_yaml(&m);
    assert_eq!(text.matches("\n---\n").count(), 2, "{text}");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "DaemonSet"]);
    assert_eq!(m[2].id(), "DaemonSet/nslab-ring");
}

/// Each part of a split lab carries the generation of the whole and the number of parts,
/// laid out at `.nslab-parts/<i>`, where the agent checks that all parts agree; any
/// change to any file changes every part's marker. A lab in one ConfigMap has none.
#[test]
fn every_part_of_a_split_lab_carries_the_generation_of_the_whole() {
    let mut i = input();
    i.files = (0..900)
        .map(|n| MountedFile {
            path: format!("configs/r{n}/frr.conf"),
            bytes: format!("hostname r{n}\n{}", "!\n".repeat(1000)).into_bytes(),
            executable: false,
        })
        .collect();
    let markers = |i: &K8sInput| -> Vec<String> {
        manifests(i)
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                Manifest::ConfigMap(c) => Some(c.data[pack::GENERATION_KEY].clone()),
                _ => None,
            })
            .collect()
    };
    let before = markers(&i);
    assert_eq!(before.len(), 2);
    assert_eq!(before[0], before[1], "the parts of one generation agree");
    assert!(before[0].ends_with(" 2\n"), "{}", before[0]);
    let y = yaml(&i);
    let sources = y[3]["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]
        .as_sequence()
        .unwrap();
    let paths: Vec<&str> = sources
        .iter()
        .filter_map(|s| {
            s["configMap"]["items"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|it| it["key"].as_str() == Some(pack::GENERATION_KEY))?["path"]
                .as_str()
        })
        .collect();
    assert_eq!(paths, [".nslab-parts/1", ".nslab-parts/2"]);

    // One file of the second part changes: both parts' markers change.
    i.files[899].bytes.push(b'!');
    let after = markers(&i);
    assert!(after[0] != before[0] && after[0] == after[1], "{after:?}");

    // One ConfigMap: no marker, no item for it.
    let small = input();
    let y = yaml(&small);
    assert!(
        y[1]["data"].get(pack::GENERATION_KEY).is_none(),
        "{:?}",
        y[1]
    );

    // A mounted file where the markers go is refused by name.
    let mut clash = input();
    clash.files.push(MountedFile {
        path: ".nslab-parts/1".into(),
        bytes: b"x".to_vec(),
        executable: false,
    });
    let Err(K8sError::Invalid(problems)) = manifests(&clash) else {
        panic!("a file at the markers' path was accepted");
    };
    assert!(
        matches!(&problems[..], [Problem::Key(p, why)] if p == ".nslab-parts/1" && why.contains("generation")),
        "{problems:?}"
    );
}

/// The Pod's requests grow with the nodes the busiest machine runs and what their
/// `limits:` declare; there are no limits on the container.
#[test]
fn the_pod_requests_what_its_machines_share_of_the_lab_needs() {
    let none = requests(&Load::default());
    assert_eq!(
        (none["memory"].as_str(), none["cpu"].as_str()),
        ("32Mi", "100m")
    );
    let load = Load {
        nodes: 300,
        memory: 100 * (256 << 20),
        cpu: 12.5,
    };
    let r = requests(&load);
    assert_eq!(r["memory"], format!("{}Mi", 32 + 300 + 100 * 256));
    assert_eq!(r["cpu"], "12600m");
    let mut i = input();
    i.load = load;
    let y = yaml(&i);
    let res = &y[2]["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(
        res["requests"]["memory"].as_str(),
        Some("25932Mi"),
        "{res:?}"
    );
    assert!(res.get("limits").is_none(), "{res:?}");
}
