//! The ConfigMaps that carry a lab: the topology and the files its nodes mount, packed
//! in file order into as few ConfigMaps as fit (the API server refuses one whose keys
//! and values add up to more than [`CONFIGMAP_LIMIT`]), laid out as one directory by a
//! projected volume when there are several. A 900-router lab with a config file per
//! router outgrows one ConfigMap; no single file is ever split across two.

use std::collections::BTreeMap;

use super::types::{ConfigMap, ConfigMapVolume, KeyToPath};
use super::{CONFIGMAP_LIMIT, K8sInput, MAX_CONFIGMAPS, MountedFile, Problem, base64, config_key};

/// One ConfigMap to be, and the volume items that lay its keys out.
pub struct Packed {
    pub name: String,
    pub map: ConfigMap,
    pub items: Vec<KeyToPath>,
    /// Keys and values, as the API server counts them (binary data unencoded).
    pub bytes: usize,
}

/// The name of the `i`th ConfigMap (from 0): the first is the lab's object name, the
/// topology's; the others get `-2`, `-3`, ...
pub fn name_of(name: &str, i: usize) -> String {
    if i == 0 {
        name.to_string()
    } else {
        format!("{name}-{}", i + 1)
    }
}

/// The topology first, then the mounted files in path order, each in the first
/// ConfigMap it still fits in with what went before (so the layout is the same for the
/// same files). `meta` gives each ConfigMap its metadata from its name.
pub fn pack(
    input: &K8sInput,
    name: &str,
    meta: impl Fn(&str) -> super::types::ObjectMeta,
    problems: &mut Vec<Problem>,
) -> Vec<Packed> {
    // A lab that fits one ConfigMap needs no marker and keeps the whole 1 MiB; a split
    // one is packed again with room for a marker in each part.
    let whole = pack_with(input, name, &meta, &mut Vec::new(), 0);
    if whole.len() == 1 {
        return pack_with(input, name, &meta, problems, 0);
    }
    let mut out = pack_with(input, name, &meta, problems, GENERATION_BYTES);
    mark_generation(&mut out);
    out
}

/// [`pack`], keeping `reserve` bytes free in each ConfigMap.
fn pack_with(
    input: &K8sInput,
    name: &str,
    meta: &impl Fn(&str) -> super::types::ObjectMeta,
    problems: &mut Vec<Problem>,
    reserve: usize,
) -> Vec<Packed> {
    let topology = MountedFile {
        path: input.file_name.clone(),
        bytes: input.topology.clone().into_bytes(),
        executable: false,
    };
    let files =
        std::iter::once(&topology).chain(input.files.iter().filter(|f| f.path != input.file_name));
    let mut out: Vec<Packed> = Vec::new();
    let mut total = 0;
    for (n, f) in files.enumerate() {
        let key = config_key(&f.path);
        if key.len() > 253 {
            problems.push(Problem::Key(f.path.clone(), "longer than 253 bytes".into()));
        }
        let size = key.len() + f.bytes.len();
        total += size;
        if size > CONFIGMAP_LIMIT {
            problems.push(Problem::FileTooLarge {
                path: f.path.clone(),
                bytes: size,
                limit: CONFIGMAP_LIMIT,
                hint: if n == 0 { TOPOLOGY_HINT } else { FILE_HINT },
            });
            continue;
        }
        if f.path.starts_with(PARTS_PREFIX) || key == GENERATION_KEY {
            problems.push(Problem::Key(
                f.path.clone(),
                format!("`{PARTS_PREFIX}` is where the agent reads which generation each ConfigMap is of"),
            ));
        }
        if n > 0
            && out
                .last()
                .is_some_and(|p| p.bytes + size > CONFIGMAP_LIMIT - reserve)
        {
            let map_name = name_of(name, out.len());
            out.push(empty(map_name.clone(), meta(&map_name)));
        } else if out.is_empty() {
            out.push(empty(name.to_string(), meta(name)));
        }
        let p = out.last_mut().expect("one");
        p.bytes += size;
        match std::str::from_utf8(&f.bytes) {
            Ok(text) => p.map.data.insert(key.clone(), text.to_string()),
            Err(_) => p.map.binary_data.insert(key.clone(), base64(&f.bytes)),
        };
        // The topology is the agent's alone (0600, as `<lab>.yaml` in /run/nslab): it
        // holds every node's `env:`, and the volume is in the container whose file
        // system the nodes share, so at the default 0644 a `user: nobody` process of
        // any node read it. The other files are there for the nodes, as mounted.
        let mode = if n == 0 {
            Some(0o600)
        } else {
            f.executable.then_some(0o755)
        };
        p.items.push(KeyToPath {
            key,
            path: f.path.clone(),
            mode,
        });
    }
    if out.len() > MAX_CONFIGMAPS {
        problems.push(Problem::TooLarge {
            bytes: total,
            maps: out.len(),
            max: MAX_CONFIGMAPS,
        });
    }
    out
}

/// The ConfigMap key of a part's generation marker, laid out at `.nslab-parts/<i>`.
pub const GENERATION_KEY: &str = "nslab-generation";
const PARTS_PREFIX: &str = ".nslab-parts/";
/// Room kept in each ConfigMap for its marker (key and value, 36 bytes).
const GENERATION_BYTES: usize = 64;

/// Gives every part of a split lab the generation of the whole (a hash of every key and
/// value of every part) and the number of parts, at `.nslab-parts/<i>`: the agent
/// applies only a volume whose parts agree (`agent::parts`), since `kubectl apply` and
/// the kubelet update the ConfigMaps one at a time.
fn mark_generation(out: &mut [Packed]) {
    let mut all: Vec<&str> = Vec::new();
    for p in out.iter() {
        for (k, v) in p.map.data.iter().chain(&p.map.binary_data) {
            all.extend([k.as_str(), v.as_str()]);
        }
    }
    let marker = crate::agent::parts::marker(crate::model::names::fnv1a(&all), out.len());
    for (i, p) in out.iter_mut().enumerate() {
        p.bytes += GENERATION_KEY.len() + marker.len();
        p.map.data.insert(GENERATION_KEY.into(), marker.clone());
        p.items.push(KeyToPath {
            key: GENERATION_KEY.into(),
            path: format!("{PARTS_PREFIX}{}", i + 1),
            mode: None,
        });
    }
}

const TOPOLOGY_HINT: &str = "shorten the file: `defaults:` and `kinds:` for what nodes share, \
    the short link form `[a:eth1, b:eth1]`, addresses from `addressing:` pools";
const FILE_HINT: &str = "build the file into the agent's image (deploy/Dockerfile's BASE is \
    every node's file system) and drop the mount";

fn empty(name: String, metadata: super::types::ObjectMeta) -> Packed {
    Packed {
        name,
        map: ConfigMap {
            api_version: "v1",
            kind: "ConfigMap",
            metadata,
            data: BTreeMap::new(),
            binary_data: BTreeMap::new(),
        },
        items: Vec::new(),
        bytes: 0,
    }
}

/// The volume source of each packed ConfigMap, for the DaemonSet.
pub fn sources(packed: &[Packed]) -> Vec<ConfigMapVolume> {
    packed
        .iter()
        .map(|p| ConfigMapVolume {
            name: p.name.clone(),
            items: p.items.clone(),
        })
        .collect()
}
