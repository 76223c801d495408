//! Reading a containerlab topology file into located definitions. Values stay YAML trees
//! (with their positions) until the mapping, because containerlab resolves most keys only
//! after inheritance, and a warning must point at the level that set the key.

use crate::diag::{Sink, Span};
use crate::spec::raw::Sp;
use crate::spec::read;
use crate::spec::yaml::{Kind, Yaml};

const TOP_KEYS: &[&str] = &["name", "prefix", "mgmt", "topology", "settings", "debug"];
const TOPOLOGY_KEYS: &[&str] = &["defaults", "groups", "kinds", "nodes", "links"];

/// containerlab's node properties (`node-config` in its JSON schema): the same set for
/// nodes, groups, kinds and `defaults`.
pub const NODE_KEYS: &[&str] = &[
    "aliases",
    "auto-remove",
    "binds",
    "cap-add",
    "certificate",
    "cgroup-parent",
    "cgroupns-mode",
    "cmd",
    "components",
    "config",
    "cpu",
    "cpu-set",
    "credentials",
    "devices",
    "dns",
    "enforce-startup-config",
    "entrypoint",
    "env",
    "env-files",
    "exec",
    "extras",
    "group",
    "healthcheck",
    "hostname",
    "image",
    "image-pull-policy",
    "kind",
    "labels",
    "license",
    "link-apply-mode",
    "memory",
    "mgmt-ipv4",
    "mgmt-ipv6",
    "network-mode",
    "pid-mode",
    "ports",
    "privileged",
    "restart-policy",
    "runtime",
    "security-opts",
    "shm-size",
    "stages",
    "startup-config",
    "startup-delay",
    "suppress-startup-config",
    "sysctls",
    "tmpfs",
    "type",
    "user",
    "volumes",
];

/// One level of containerlab's inheritance (a node, a group, a kind or `defaults`): its
/// keys, checked against [`NODE_KEYS`], with their values as written.
#[derive(Debug, Clone, Default)]
pub struct Def {
    pub span: Span,
    pub fields: Vec<(Sp<String>, Yaml)>,
}

impl Def {
    /// A key's value, unless absent or null (containerlab treats both as unset).
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        self.fields
            .iter()
            .find(|(k, v)| k.value == key && !v.is_null())
            .map(|(_, v)| v)
    }

    /// A scalar key as text.
    pub fn text(&self, key: &str) -> Option<Sp<String>> {
        self.get(key)
            .and_then(|v| v.as_str().map(|s| Sp::new(s.to_string(), v.span)))
            .filter(|s| !s.value.is_empty())
    }
}

/// A containerlab file, read but not yet resolved.
#[derive(Debug, Clone, Default)]
pub struct ClabFile {
    pub span: Span,
    pub name: Option<Sp<String>>,
    pub defaults: Def,
    pub kinds: Vec<(Sp<String>, Def)>,
    pub groups: Vec<(Sp<String>, Def)>,
    pub nodes: Vec<(Sp<String>, Def)>,
    pub links: Vec<Yaml>,
    /// The top-level `mgmt:`, mapped by `clab::mgmt`.
    pub mgmt: Option<Yaml>,
}

impl ClabFile {
    pub fn kind(&self, name: &str) -> Option<&Def> {
        self.kinds
            .iter()
            .find(|(k, _)| k.value == name)
            .map(|(_, d)| d)
    }

    pub fn group(&self, name: &str) -> Option<&Def> {
        self.groups
            .iter()
            .find(|(k, _)| k.value == name)
            .map(|(_, d)| d)
    }

    pub fn node(&self, name: &str) -> Option<&Def> {
        self.nodes
            .iter()
            .find(|(k, _)| k.value == name)
            .map(|(_, d)| d)
    }
}

/// True when the tree is a containerlab topology: its top level has `topology:`, a key
/// nslab's own language does not have.
pub fn is_clab(root: &Yaml) -> bool {
    match &root.kind {
        Kind::Map(entries) => entries.iter().any(|(k, _)| k.as_str() == Some("topology")),
        _ => false,
    }
}

/// Reads the file's structure; unknown keys are errors (containerlab's schema allows no
/// others), keys with no meaning without Docker are warned about where they are written.
pub fn read(sink: &mut Sink, root: &Yaml) -> ClabFile {
    let mut c = ClabFile {
        span: root.span,
        ..Default::default()
    };
    let Some(f) = read::fields(sink, root, "the containerlab topology", TOP_KEYS) else {
        return c;
    };
    c.name = f
        .value("name")
        .and_then(|v| read::string(sink, v, "`name`"));
    if c.name.is_none() {
        sink.error(Some(f.span), "the containerlab topology needs a `name:`")
            .hint("add `name: mylab` at the top level");
    }
    for (key, why) in [
        (
            "prefix",
            "nslab names its namespaces `nslab.<lab>.<node>`; there are no containers to prefix",
        ),
        (
            "settings",
            "certificate and other Docker-side settings have no meaning in nslab",
        ),
        (
            "debug",
            "containerlab's debug logging has no counterpart: nslab's errors and warnings are always in full",
        ),
    ] {
        if let Some(span) = f.key_span(key) {
            sink.warning(Some(span), format!("`{key}` is not used: {why}"));
        }
    }
    c.mgmt = f.value("mgmt").cloned();
    let Some(topo) = f.get("topology") else {
        return c;
    };
    let Some(t) = read::fields(sink, topo, "`topology`", TOPOLOGY_KEYS) else {
        return c;
    };
    if let Some(v) = t.get("defaults") {
        c.defaults = def(sink, v, "`topology.defaults`");
    }
    c.kinds = defs(sink, t.get("kinds"), "kind");
    c.groups = defs(sink, t.get("groups"), "group");
    c.nodes = defs(sink, t.get("nodes"), "node");
    if c.nodes.is_empty() {
        sink.error(Some(t.span), "the topology has no `nodes:`")
            .hint("containerlab files list their nodes under `topology.nodes`");
    }
    if let Some(v) = t.value("links") {
        c.links = read::list(sink, v, "`topology.links`").to_vec();
    }
    c
}

fn defs(sink: &mut Sink, y: Option<&Yaml>, what: &str) -> Vec<(Sp<String>, Def)> {
    let Some(y) = y else { return Vec::new() };
    read::entries(sink, y, &format!("`{what}s`"))
        .iter()
        .map(|(k, v)| {
            let name = read::key(k);
            let d = def(sink, v, &format!("{what} `{}`", name.value));
            (name, d)
        })
        .collect()
}

fn def(sink: &mut Sink, y: &Yaml, what: &str) -> Def {
    let mut d = Def {
        span: y.span,
        fields: Vec::new(),
    };
    if read::fields(sink, y, what, NODE_KEYS).is_none() {
        return d;
    }
    if let Kind::Map(entries) = &y.kind {
        d.fields = entries
            .iter()
            .filter(|(k, _)| k.as_str().is_some_and(|k| NODE_KEYS.contains(&k)))
            .map(|(k, v)| (read::key(k), v.clone()))
            .collect();
    }
    d
}
