//! `nslab k8s`: the Kubernetes objects that run a lab, one agent per machine. A
//! Namespace, a ConfigMap with the topology and the files its nodes mount, and a
//! privileged DaemonSet whose container runs `nslab agent` on the mounted file. Pure:
//! the caller reads the files; this only builds and checks typed values.

mod encode;
pub mod files;
mod pack;
pub mod types;

use std::collections::BTreeMap;

pub use encode::{base64, config_key};
pub use types::Manifest;
use types::*;

/// Where the ConfigMap is mounted in the agent's container.
pub const MOUNT_DIR: &str = "/etc/nslab";
/// Where the image puts the binary (deploy/Dockerfile).
pub const BIN: &str = "/usr/local/bin/nslab";
/// The API server refuses a ConfigMap whose keys and values add up to more.
pub const CONFIGMAP_LIMIT: usize = 1024 * 1024;
/// At most this many ConfigMaps carry one lab (16 MiB): more is refused, and reading the
/// mounted files stops there.
pub const MAX_CONFIGMAPS: usize = 16;
/// `kubectl apply` without `--server-side` keeps a copy of each object in an annotation,
/// and the API server refuses annotations above this many bytes.
pub const CLIENT_APPLY_LIMIT: usize = 262_144;
/// The default image, as `deploy/Dockerfile`'s README section tags it.
pub const DEFAULT_IMAGE: &str = "nslab:latest";

/// Everything the manifests are made of.
#[derive(Debug, Clone)]
pub struct K8sInput {
    pub lab: String,
    pub namespace: String,
    pub image: String,
    /// The topology's file name (no directory): the agent reads `MOUNT_DIR/<file_name>`.
    pub file_name: String,
    pub topology: String,
    /// Files the nodes mount, at their paths relative to the topology's directory.
    pub files: Vec<MountedFile>,
    /// Kubernetes node names the lab runs on; empty means every node.
    pub hosts: Vec<String>,
    /// What the busiest machine runs of the lab (the whole lab without `hosts:`).
    pub load: Load,
}

/// The nodes one machine runs, as the Pod's requests count them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Load {
    pub nodes: usize,
    /// The sum of those nodes' `limits: { memory }`, in bytes.
    pub memory: u64,
    /// The sum of their `limits: { cpu }`, in CPUs.
    pub cpu: f64,
}

/// The agent's own memory: nslab's peak RSS during `up` is 22 MB at 1,000 nodes and 38
/// MB at 2,000 (README, Performance), so 32 MiB plus a node's share below.
const AGENT_MEMORY: u64 = 32 << 20;
/// Each node's init (0.7 MB RSS measured) and its namespaces' kernel memory, rounded up.
const NODE_MEMORY: u64 = 1 << 20;
/// The agent's CPU between changes: a look at a file twice a second.
const AGENT_MILLICPU: u64 = 100;

/// The requests of a machine that runs `load`: the agent's memory and CPU, each node's
/// init, and what the nodes' `limits:` declare for their processes (a node without
/// limits has no declared size and counts as its init alone). No limits on the
/// container: the nodes run in cgroups outside it, so a limit would bound the agent
/// alone, and cut it off in the middle of a large lab's `up`.
pub fn requests(load: &Load) -> BTreeMap<String, String> {
    let memory = AGENT_MEMORY + NODE_MEMORY * load.nodes as u64 + load.memory;
    let cpu = AGENT_MILLICPU + (load.cpu * 1000.0).ceil() as u64;
    BTreeMap::from([
        ("cpu".to_string(), format!("{cpu}m")),
        (
            "memory".to_string(),
            format!("{}Mi", memory.div_ceil(1 << 20)),
        ),
    ])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedFile {
    /// Relative, `/`-separated, no `.` or `..` component.
    pub path: String,
    pub bytes: Vec<u8>,
    /// Kept executable in the volume (a script a node runs).
    pub executable: bool,
}

/// One thing wrong with the input; [`K8sError::Invalid`] carries all of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error(
        "{what} `{name}` is not a valid Kubernetes name: {why} \
         (hint: Kubernetes names are lowercase letters, digits and `-`)"
    )]
    Name {
        what: &'static str,
        name: String,
        why: String,
    },
    #[error(
        "`{path}` would take {bytes} bytes of a ConfigMap; Kubernetes refuses more than {limit} \
         in one, and a file is never split across two (hint: {hint})"
    )]
    FileTooLarge {
        path: String,
        bytes: usize,
        limit: usize,
        hint: &'static str,
    },
    #[error(
        "the topology and the files its nodes mount add up to {bytes} bytes: {maps} ConfigMaps \
         of 1 MiB, more than the {max} nslab splits a lab into (hint: build large files into \
         the agent's image, deploy/Dockerfile's BASE, and drop their mounts)"
    )]
    TooLarge {
        bytes: usize,
        maps: usize,
        max: usize,
    },
    #[error("the image `{0}` is empty or holds white space (hint: --image REPOSITORY:TAG)")]
    Image(String),
    #[error("file `{0}` cannot be a ConfigMap key: {1} (hint: a shorter path)")]
    Key(String, String),
    #[error("{at}: {what} (hint: {hint})")]
    Mount {
        at: String,
        what: String,
        hint: &'static str,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

/// One problem a line; `main` puts `error: ` before the first.
fn list(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\nerror: ")
}

/// The default namespace of a lab: its own, so `kubectl delete -f` removes nothing else.
pub fn default_namespace(lab: &str) -> String {
    format!("nslab-{lab}")
}

/// The objects that run the lab, in the order `kubectl apply` should create them; every
/// problem with the input is reported at once.
pub fn manifests(input: &K8sInput) -> Result<Vec<Manifest>, K8sError> {
    let name = default_namespace(&input.lab);
    let mut problems = check_names(input, &name);
    let packed = pack::pack(input, &name, |n| meta(n, input), &mut problems);
    if !problems.is_empty() {
        return Err(K8sError::Invalid(problems));
    }
    let volume = pack::sources(&packed);
    let mut out = vec![Manifest::Namespace(Namespace {
        api_version: "v1",
        kind: "Namespace",
        metadata: ObjectMeta {
            name: input.namespace.clone(),
            namespace: None,
            labels: namespace_labels(&input.lab),
        },
    })];
    // The topology's ConfigMap last: `kubectl apply` goes in stream order, so the files
    // a changed topology mounts are in the cluster before the topology that needs them.
    out.extend(packed.into_iter().rev().map(|p| Manifest::ConfigMap(p.map)));
    out.push(Manifest::DaemonSet(daemon_set(input, &name, volume)));
    Ok(out)
}

/// The manifests as one YAML stream, `---` between objects, for `kubectl apply -f -`.
pub fn to_yaml(manifests: &[Manifest]) -> String {
    let docs: Vec<String> = manifests
        .iter()
        .map(|m| serde_yaml::to_string(m).expect("manifests serialize"))
        .collect();
    docs.join("---\n")
}

fn labels(lab: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "nslab".to_string()),
        ("app.kubernetes.io/instance".to_string(), lab.to_string()),
    ])
}

/// The lab's Namespace admits its privileged agent under Pod Security admission: a
/// cluster whose default level is `baseline` or `restricted` refuses the Pods otherwise,
/// and the DaemonSet sits at zero Pods with the reason only in its events.
fn namespace_labels(lab: &str) -> BTreeMap<String, String> {
    let mut l = labels(lab);
    l.insert(
        "pod-security.kubernetes.io/enforce".to_string(),
        "privileged".to_string(),
    );
    l
}

fn check_names(input: &K8sInput, name: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut check = |what, value: &str, rule: fn(&str) -> Result<(), String>| {
        if let Err(why) = rule(value) {
            out.push(Problem::Name {
                what,
                name: value.to_string(),
                why,
            });
        }
    };
    check("namespace", &input.namespace, dns_label);
    check("object name (from the lab name)", name, dns_label);
    check("lab name, as a label value", &input.lab, label_value);
    for h in &input.hosts {
        check("host (a Kubernetes node name)", h, label_value);
    }
    if input.image.is_empty() || input.image.contains(char::is_whitespace) {
        out.push(Problem::Image(input.image.clone()));
    }
    out
}

fn meta(name: &str, input: &K8sInput) -> ObjectMeta {
    ObjectMeta {
        name: name.to_string(),
        namespace: Some(input.namespace.clone()),
        labels: labels(&input.lab),
    }
}

/// The agent's DaemonSet. Why each host setting:
/// - hostNetwork: links between machines run over the machine's own address;
/// - hostPID: the nodes' processes must outlive a restarted agent (a pod's own PID
///   namespace dies, and takes them, with its first process);
/// - privileged: namespaces, mounts and netlink, as `nslab up` as root;
/// - /run/netns and /run/nslab from the host, Bidirectional: the namespaces and the
///   journal stay on the machine, so the next agent adopts the lab;
/// - the host's /run/nslab.lock (the host lock, beside the run directory, not in it):
///   without it each Pod would lock a file of its own /run, and two agents on one
///   machine, or an agent and an `nslab` run there, would prepare or release the
///   machine's /run/netns at once;
/// - /sys/fs/cgroup from the host: nodes' cgroups outside the pod's, which goes with it.
fn daemon_set(input: &K8sInput, name: &str, maps: Vec<ConfigMapVolume>) -> DaemonSet {
    let affinity = (!input.hosts.is_empty()).then(|| Affinity {
        node_affinity: NodeAffinity {
            required_during_scheduling_ignored_during_execution: NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: vec![Requirement {
                        key: "kubernetes.io/hostname".into(),
                        operator: "In",
                        values: input.hosts.clone(),
                    }],
                }],
            },
        },
    });
    let container = Container {
        name: "agent".into(),
        image: input.image.clone(),
        command: vec![
            BIN.into(),
            "agent".into(),
            format!("{MOUNT_DIR}/{}", input.file_name),
            "--host".into(),
            "$(NODE_NAME)".into(),
        ],
        env: vec![EnvVar {
            name: "NODE_NAME".into(),
            value_from: EnvVarSource {
                field_ref: FieldRef {
                    field_path: "spec.nodeName".into(),
                },
            },
        }],
        security_context: SecurityContext { privileged: true },
        volume_mounts: vec![
            mount("topology", MOUNT_DIR, Some(true), None),
            mount("netns", "/run/netns", None, Some("Bidirectional")),
            mount("run", "/run/nslab", None, Some("Bidirectional")),
            mount("lock", HOST_LOCK, None, None),
            mount("cgroup", "/sys/fs/cgroup", None, None),
        ],
        resources: Resources {
            requests: requests(&input.load),
        },
    };
    DaemonSet {
        api_version: "apps/v1",
        kind: "DaemonSet",
        metadata: meta(name, input),
        spec: DaemonSetSpec {
            selector: LabelSelector {
                match_labels: labels(&input.lab),
            },
            template: PodTemplate {
                metadata: TemplateMeta {
                    labels: labels(&input.lab),
                },
                spec: PodSpec {
                    host_network: true,
                    host_pid: true,
                    dns_policy: "ClusterFirstWithHostNet",
                    automount_service_account_token: false,
                    // `down` of a large lab takes seconds; the default 30 s is tight.
                    termination_grace_period_seconds: 120,
                    affinity,
                    containers: vec![container],
                    volumes: vec![
                        topology_volume(maps),
                        host_path("netns", "/run/netns", "DirectoryOrCreate"),
                        host_path("run", "/run/nslab", "DirectoryOrCreate"),
                        host_path("lock", HOST_LOCK, "FileOrCreate"),
                        host_path("cgroup", "/sys/fs/cgroup", "Directory"),
                    ],
                },
            },
        },
    }
}

/// The host lock of a root nslab (`state::host_lock_path` of /run/nslab). The kubelet
/// makes a missing one an empty 0644 file; nslab makes it 0600 on first use.
const HOST_LOCK: &str = "/run/nslab.lock";

fn mount(
    name: &str,
    path: &str,
    read_only: Option<bool>,
    propagation: Option<&'static str>,
) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only,
        mount_propagation: propagation,
    }
}

/// The ConfigMap volume, or a projected volume of all of them when the lab took several:
/// either way one directory laid out as the topology's.
fn topology_volume(mut maps: Vec<ConfigMapVolume>) -> Volume {
    let (config_map, projected) = if maps.len() == 1 {
        (maps.pop(), None)
    } else {
        let sources = maps
            .into_iter()
            .map(|config_map| ProjectedSource { config_map })
            .collect();
        (None, Some(ProjectedVolume { sources }))
    };
    Volume {
        name: "topology".into(),
        config_map,
        projected,
        host_path: None,
    }
}

fn host_path(name: &str, path: &str, kind: &'static str) -> Volume {
    Volume {
        name: name.into(),
        config_map: None,
        projected: None,
        host_path: Some(HostPathVolume {
            path: path.into(),
            kind,
        }),
    }
}

/// A DNS-1123 label: namespaces and the names nslab gives its objects.
fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "holds `{}`; only lowercase letters, digits and `-` are allowed",
            c.escape_debug()
        ));
    }
    ends_alnum(s)
}

/// A label value: node names in the `kubernetes.io/hostname` label, the lab's name.
fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "holds `{}`; only letters, digits, `-`, `_` and `.` are allowed",
            c.escape_debug()
        ));
    }
    ends_alnum(s)
}

fn ends_alnum(s: &str) -> Result<(), String> {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if alnum(s.chars().next()) && alnum(s.chars().last()) {
        Ok(())
    } else {
        Err("must start and end with a letter or digit".into())
    }
}

#[cfg(test)]
mod tests;
