//! `nslab k8s`: the Kubernetes objects that run a lab, one agent per machine. A
//! Namespace, a ConfigMap with the topology and the files its nodes mount, and a
//! privileged DaemonSet whose container runs `nslab agent` on the mounted file. Pure:
//! the caller reads the files; this only builds and checks typed values.

mod encode;
pub mod files;
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
        "the ConfigMap would hold {bytes} bytes (the topology and the files its nodes mount); \
         Kubernetes refuses more than {limit}; the largest: {largest} \
         (hint: leave large files on the machines and mount them from there)"
    )]
    TooLarge {
        bytes: usize,
        limit: usize,
        largest: String,
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
    let (config, items) = config_map(input, &name, &mut problems);
    if !problems.is_empty() {
        return Err(K8sError::Invalid(problems));
    }
    Ok(vec![
        Manifest::Namespace(Namespace {
            api_version: "v1",
            kind: "Namespace",
            metadata: ObjectMeta {
                name: input.namespace.clone(),
                namespace: None,
                labels: labels(&input.lab),
            },
        }),
        Manifest::ConfigMap(config),
        Manifest::DaemonSet(daemon_set(input, &name, items)),
    ])
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

/// The ConfigMap and the volume items that lay its keys out as the topology's directory.
fn config_map(
    input: &K8sInput,
    name: &str,
    problems: &mut Vec<Problem>,
) -> (ConfigMap, Vec<KeyToPath>) {
    let topology = MountedFile {
        path: input.file_name.clone(),
        bytes: input.topology.clone().into_bytes(),
        executable: false,
    };
    let files = std::iter::once(&topology)
        .chain(input.files.iter().filter(|f| f.path != input.file_name))
        .collect::<Vec<_>>();
    let (mut data, mut binary_data, mut items) = (BTreeMap::new(), BTreeMap::new(), Vec::new());
    let mut size = 0;
    for f in &files {
        let key = config_key(&f.path);
        if key.len() > 253 {
            problems.push(Problem::Key(f.path.clone(), "longer than 253 bytes".into()));
        }
        size += key.len() + f.bytes.len();
        match std::str::from_utf8(&f.bytes) {
            Ok(text) => data.insert(key.clone(), text.to_string()),
            Err(_) => binary_data.insert(key.clone(), base64(&f.bytes)),
        };
        // The topology is the agent's alone (0600, as `<lab>.yaml` in /run/nslab): it
        // holds every node's `env:`, and the volume is in the container whose file
        // system the nodes share, so at the default 0644 a `user: nobody` process of
        // any node read it. The other files are there for the nodes, as mounted.
        let mode = if std::ptr::eq(*f, &topology) {
            Some(0o600)
        } else {
            f.executable.then_some(0o755)
        };
        items.push(KeyToPath {
            key,
            path: f.path.clone(),
            mode,
        });
    }
    if size > CONFIGMAP_LIMIT {
        let largest = files.iter().max_by_key(|f| f.bytes.len()).expect("one");
        problems.push(Problem::TooLarge {
            bytes: size,
            limit: CONFIGMAP_LIMIT,
            largest: format!("{} ({} bytes)", largest.path, largest.bytes.len()),
        });
    }
    let config = ConfigMap {
        api_version: "v1",
        kind: "ConfigMap",
        metadata: meta(name, input),
        data,
        binary_data,
    };
    (config, items)
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
fn daemon_set(input: &K8sInput, name: &str, items: Vec<KeyToPath>) -> DaemonSet {
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
                        Volume {
                            name: "topology".into(),
                            config_map: Some(ConfigMapVolume {
                                name: name.to_string(),
                                items,
                            }),
                            host_path: None,
                        },
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

fn host_path(name: &str, path: &str, kind: &'static str) -> Volume {
    Volume {
        name: name.into(),
        config_map: None,
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
