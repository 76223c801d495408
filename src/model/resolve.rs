//! Resolving what runs on a node (sysctls, commands, processes, mounts, limits), the
//! daemonsets, the `depends_on` references and the checks of the `tests:` section.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use super::placeholders::{self, Vars};
use crate::diag::{Sink, Span, did_you_mean};
use crate::model::kinds::*;
use crate::model::{
    Action, Bridge, DaemonSet, Dep, Exec, Limits, Mount, Node, PrivateDir, Process, Readiness,
    Ready, Sysctl,
};
use crate::spec::raw::*;

pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_READY_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Sysctls every node gets unless the topology sets them: no IPv6 duplicate address
/// detection, so link-local addresses are usable as soon as a link is up.
pub const IMPLICIT_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
];

/// Sysctls of the fabric namespace, the one that holds the lab's bridges: it is a switch,
/// not a host. Without IPv6 its bridge and ports send no duplicate address detection, MLD
/// reports or router solicitations of their own, which a bridge of N ports would flood to
/// every node (measured at 1,000 ports: more than a CPU-second of softirq per second for
/// seconds after `up`). Frames of any protocol are still bridged.
pub const FABRIC_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
];

/// Validates sysctls: only `net.*` (the only ones a network namespace owns), checked as
/// the path the kernel will open (see `sysctl::parse`), and per-interface keys must name
/// an interface of the node.
pub fn sysctls(sink: &mut Sink, node: &Node, raw: &[(Sp<String>, Sp<String>)]) -> Vec<Sysctl> {
    let mut out = Vec::new();
    for (k, v) in raw {
        let key = k.value.as_str();
        let path = match super::sysctl::parse(key) {
            Ok(p) => p,
            Err(e) => {
                sysctl_key_error(sink, k, e);
                continue;
            }
        };
        let mut iface = None;
        if let Some(ifname) = path.iface
            && !matches!(ifname.as_str(), "all" | "default" | "lo")
        {
            if node.interfaces.iter().any(|i| i.name == ifname) {
                iface = Some(ifname);
            } else {
                let d = sink.error(
                    Some(k.span),
                    format!(
                        "sysctl `{key}` names interface `{ifname}`, which node `{}` does not have",
                        node.name
                    ),
                );
                if let Some(s) =
                    did_you_mean(&ifname, node.interfaces.iter().map(|i| i.name.as_str()))
                {
                    d.hint(format!("did you mean `{s}`?"));
                }
                continue;
            }
        }
        let value = match v.value.as_str() {
            "true" => "1".to_string(),
            "false" => "0".to_string(),
            other => other.to_string(),
        };
        if value.contains('\n') || value.contains('\0') {
            sink.error(
                Some(v.span),
                format!("the value of sysctl `{key}` holds a newline or NUL"),
            );
            continue;
        }
        out.push(Sysctl {
            key: key.to_string(),
            value,
            iface,
        });
    }
    out
}

fn sysctl_key_error(sink: &mut Sink, k: &Sp<String>, e: super::sysctl::KeyError) {
    use super::sysctl::KeyError;
    let key = k.value.escape_debug();
    match e {
        KeyError::Outside => {
            sink.error(Some(k.span), format!("sysctl `{key}` is outside `net.*`"))
                .hint("a node owns only its network namespace's sysctls (`net.*`); others would change the host");
        }
        KeyError::Invalid(why) => {
            sink.error(Some(k.span), format!("`{key}` is not a valid sysctl name: {why}"))
                .hint("sysctl names look like `net.ipv4.ip_forward` or `net.ipv6.conf.eth1.forwarding`; a `/` stands for a `.` only in an interface name (`net.ipv4.conf.eth0/100.forwarding`)");
        }
        KeyError::BadIface(why) => {
            sink.error(Some(k.span), format!("sysctl `{key}` does not name an interface: {why}"))
                .hint("the fourth component is an interface name, `all` or `default`; write a `.` in it as `/`");
        }
    }
}

/// One-shot commands, with `{node}` and `{lab}` filled in.
pub fn exec(sink: &mut Sink, raw: &[RawExec], vars: Vars) -> Vec<Exec> {
    raw.iter()
        .map(|e| Exec {
            cmd: placeholders::command(sink, &e.cmd.value, e.cmd.span, "`exec`", vars),
            ignore_errors: e.ignore_errors,
            timeout: e.timeout.as_ref().map(|t| t.value),
        })
        .collect()
}

/// Checks a node-side path (a mount target or private directory): absolute, no `..`, and
/// not one the init cannot give the node (see [`reserved`]).
fn node_path(sink: &mut Sink, p: &Sp<String>, what: &str) -> bool {
    if !p.value.starts_with('/') || p.value.contains('\0') || p.value.split('/').any(|c| c == "..")
    {
        sink.error(
            Some(p.span),
            format!(
                "{what} `{}` must be an absolute path without `..`",
                p.value.escape_debug()
            ),
        )
        .hint("it is a path inside the node, like `/etc/frr`; mount sources are the ones relative to the topology file");
        return false;
    }
    if let Some((why, hint)) = reserved(&p.value) {
        sink.error(
            Some(p.span),
            format!("{what} `{}` cannot work: {why}", p.value),
        )
        .hint(hint);
        return false;
    }
    true
}

/// Why a node path cannot be mounted on or made private, if it cannot. The init mounts
/// the node's own /proc and /sys after the topology's mounts (hiding anything below
/// them) and binds every source through /proc/self/fd; a tmpfs or bind on `/` or `/dev`
/// hides the whole filesystem or the device nodes every program opens.
fn reserved(path: &str) -> Option<(&'static str, &'static str)> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    match parts.as_slice() {
        [] => Some((
            "it would cover the node's whole filesystem",
            "mount or make private a directory below `/`, like `/srv/app`",
        )),
        ["proc", ..] => Some((
            "the node's /proc is the kernel's view of its processes, mounted by nslab after the topology's mounts",
            "a node with its own pid namespace already sees only its own processes in /proc",
        )),
        ["sys", ..] => Some((
            "the node's /sys is the kernel's view of its network namespace, mounted by nslab after the topology's mounts",
            "interfaces and sysctls are set with `links:` and `sysctls:`",
        )),
        ["dev"] => Some((
            "a tmpfs or bind on /dev hides the device nodes programs need (/dev/null, /dev/pts)",
            "mount a single device, or make `/dev/shm` private",
        )),
        _ => None,
    }
}

/// Bind mounts, `{node}` and `{lab}` filled in on both sides; sources resolve against
/// the topology file's directory.
pub fn mounts(sink: &mut Sink, vars: Vars, base: &Path, raw: &[RawMount]) -> Vec<Mount> {
    let mut out = Vec::new();
    for m in raw {
        let target = placeholders::spanned(sink, &m.target, "the mount target", vars);
        if !node_path(sink, &target, "mount target") {
            continue;
        }
        let src = placeholders::expand(
            sink,
            &m.source.value,
            m.source.span,
            "the mount source",
            vars,
        );
        if src.is_empty() || src.contains('\0') {
            sink.error(Some(m.source.span), "the mount source is empty");
            continue;
        }
        out.push(Mount {
            span: m.source.span,
            target_span: m.target.span,
            source: base.join(src),
            target: target.value,
            readonly: m.readonly,
        });
    }
    out
}

/// Private directories, `{node}` and `{lab}` filled in.
pub fn private(sink: &mut Sink, vars: Vars, raw: &[RawPrivate]) -> Vec<PrivateDir> {
    let mut out = Vec::new();
    for p in raw {
        let path = placeholders::spanned(sink, &p.path, "the private directory", vars);
        if node_path(sink, &path, "private directory") {
            out.push(PrivateDir {
                span: p.path.span,
                path: path.value,
                owner: p.owner.as_ref().map(|o| o.value.clone()),
                mode: p.mode.as_ref().map(|m| m.value),
            });
        }
    }
    out
}

pub fn limits(raw: &RawLimits) -> Limits {
    Limits {
        memory: raw.memory.as_ref().map(|m| m.value),
        cpu: raw.cpu.as_ref().map(|c| c.value),
        pids: raw.pids.as_ref().map(|p| p.value),
    }
}

/// The first limit written, where an error about the node's limits points.
pub fn limits_span(raw: &RawLimits) -> Option<crate::diag::Span> {
    (raw.memory.as_ref().map(|m| m.span))
        .or(raw.cpu.as_ref().map(|c| c.span))
        .or(raw.pids.as_ref().map(|p| p.span))
}

pub fn isolation(sink: &mut Sink, raw: &Option<Sp<Vec<Sp<NsKind>>>>) -> Vec<NsKind> {
    let Some(list) = raw else {
        return NsKind::ALL.to_vec();
    };
    let mut kinds: Vec<NsKind> = list.value.iter().map(|k| k.value).collect();
    kinds.sort();
    kinds.dedup();
    if !kinds.contains(&NsKind::Net) {
        sink.error(Some(list.span), "`isolation` must include `net`")
            .hint("every node has its own network namespace; list the others it should have too, e.g. `[net, uts]`");
    }
    kinds
}

fn readiness(sink: &mut Sink, r: &RawReady, vars: Vars) -> Readiness {
    Readiness {
        probe: match &r.probe {
            ReadyProbe::Cmd(c) => Ready::Cmd(placeholders::command(
                sink,
                c,
                r.span,
                "the `ready` probe",
                vars,
            )),
            ReadyProbe::Tcp(p) => Ready::Tcp(*p),
            ReadyProbe::Unix(p) => Ready::Unix(probe_path(sink, p, "unix", vars)),
            ReadyProbe::File(p) => Ready::File(probe_path(sink, p, "file", vars)),
        },
        timeout: r.timeout.unwrap_or(DEFAULT_READY_TIMEOUT),
        interval: r.interval.unwrap_or(DEFAULT_READY_INTERVAL),
        limits: r.limits,
    }
}

/// The longest path a unix socket address holds (`sun_path` less its NUL).
const UNIX_PATH_MAX: usize = 107;

/// The path of a `unix:` or `file:` probe, with placeholders filled in: absolute, since
/// the init probes it in the node's mount namespace with no working directory to speak of.
fn probe_path(sink: &mut Sink, p: &Sp<String>, kind: &str, vars: Vars) -> String {
    let what = format!("the `ready.{kind}` path");
    let path = placeholders::expand(sink, &p.value, p.span, &what, vars);
    if !path.starts_with('/') || path.contains('\0') {
        sink.error(
            Some(p.span),
            format!("{what} `{}` must be an absolute path", path.escape_debug()),
        )
        .hint("it is a path inside the node, like `/var/run/frr/zebra.vty`");
    } else if kind == "unix" && path.len() > UNIX_PATH_MAX {
        sink.error(
            Some(p.span),
            format!(
                "{what} is {} bytes long; a unix socket address holds at most {UNIX_PATH_MAX}",
                path.len()
            ),
        )
        .hint("no daemon can listen on a longer path; use the socket's real, shorter path");
    }
    path
}

/// A process without its `depends_on`, which needs every node's processes to resolve;
/// `{node}` and `{lab}` are filled in in its command, env values, cwd and ready probe.
pub fn process(
    sink: &mut Sink,
    raw: &RawProcess,
    daemonset: Option<&str>,
    node: (
        Duration,
        &crate::attrs::ProcAttrs,
        crate::spec::attrs::AttrSpans,
    ),
    vars: Vars,
) -> Process {
    let (node_stop, node_attrs, node_spans) = node;
    let what = format!("the `cmd` of process `{}`", raw.name.value);
    let env_what = format!("process `{}`: env", raw.name.value);
    Process {
        span: raw.cmd.span,
        name: raw.name.value.clone(),
        cmd: placeholders::command(sink, &raw.cmd.value, raw.cmd.span, &what, vars),
        env: placeholders::env(sink, &raw.env, &env_what, vars),
        cwd: raw
            .cwd
            .as_ref()
            .map(|c| placeholders::expand(sink, &c.value, c.span, "`cwd`", vars)),
        restart: raw
            .restart
            .as_ref()
            .map(|r| r.value)
            .unwrap_or(RestartPolicy::Never),
        ready: raw.ready.as_ref().map(|r| readiness(sink, r, vars)),
        user: raw.user.as_ref().map(|u| u.value.clone()),
        user_span: raw.user.as_ref().map_or(raw.span, |u| u.span),
        attrs: node_attrs.with(&raw.attrs.values()),
        attr_spans: raw.attrs.spans().over(node_spans),
        depends_on: Vec::new(),
        stop_timeout: raw
            .stop_timeout
            .as_ref()
            .map(|t| t.value)
            .unwrap_or(node_stop),
        daemonset: daemonset.map(str::to_string),
    }
}

/// The longest process name, in bytes: its log file, `<name>.log`, must fit NAME_MAX
/// (255 bytes).
pub const MAX_PROCESS_NAME: usize = 255 - ".log".len();

/// Process names become log file names and words of the init's control protocol: plain,
/// short, one word, unique within the node.
pub fn check_process_names(sink: &mut Sink, node: &str, raw: &[&RawProcess]) {
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for p in raw {
        let name = p.name.value.as_str();
        if name.is_empty()
            || name.contains('/')
            || name.contains("..")
            || name.contains('\0')
            || name.contains(':')
        {
            sink.error(
                Some(p.name.span),
                format!(
                    "process name `{}` on node `{node}` must be a plain name (no `/`, `:`, `..`)",
                    name.escape_debug()
                ),
            );
        }
        if name.len() > MAX_PROCESS_NAME {
            sink.error(
                Some(p.name.span),
                format!(
                    "process name on node `{node}` is {} bytes long; the limit is {MAX_PROCESS_NAME}",
                    name.len()
                ),
            )
            .hint("its log is `<name>.log`, and a file name holds at most 255 bytes");
        } else if let Some(c) = name
            .chars()
            .find(|&c| c != '\0' && (c.is_whitespace() || super::names::is_hidden(c)))
        {
            sink.error(
                Some(p.name.span),
                format!(
                    "process name `{}` on node `{node}` holds {}",
                    name.escape_debug(),
                    super::names::describe(c)
                ),
            )
            .hint(
                "`nslab logs` and `nslab node` name a process in one word, like `bgpd` or `web-1`",
            );
        }
        if let Some(first) = seen.insert(name, p.name.span) {
            sink.error(
                Some(p.name.span),
                format!("node `{node}` has two processes named `{name}`"),
            )
            .note(first, "the first one");
        }
    }
}

/// Nodes whose labels hold every key/value of the selector.
pub fn select(
    labels: &[BTreeMap<String, String>],
    selector: &[(Sp<String>, Sp<String>)],
) -> Vec<usize> {
    labels
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            selector
                .iter()
                .all(|(k, v)| l.get(&k.value) == Some(&v.value))
        })
        .map(|(i, _)| i)
        .collect()
}

pub fn daemonset_summary(raw: &RawDaemonSet, nodes: Vec<usize>) -> DaemonSet {
    DaemonSet {
        name: raw.process.name.value.clone(),
        selector: raw
            .selector
            .iter()
            .map(|(k, v)| (k.value.clone(), v.value.clone()))
            .collect(),
        nodes,
    }
}

/// Name lookups shared by dependency and check resolution.
pub struct Names<'a> {
    pub nodes: &'a HashMap<String, usize>,
    pub all: &'a [Node],
    pub lab: &'a str,
    /// Known only once the layout is done; empty before.
    pub bridges: &'a [Bridge],
}

impl Names<'_> {
    pub fn node(&self, sink: &mut Sink, name: &Sp<String>, what: &str) -> Option<usize> {
        if let Some(i) = self.nodes.get(&name.value) {
            return Some(*i);
        }
        let d = sink.error(
            Some(name.span),
            format!("{what} names unknown node `{}`", name.value),
        );
        if let Some(s) = did_you_mean(&name.value, self.nodes.keys().map(String::as_str)) {
            d.hint(format!("did you mean `{s}`?"));
        }
        None
    }

    /// `node`, `node:process`, or (inside a process, `here` set) a process of the same node.
    pub fn dep(&self, sink: &mut Sink, text: &Sp<String>, here: Option<usize>) -> Option<Dep> {
        if let Some((n, p)) = text.value.split_once(':') {
            let node = self.node(sink, &Sp::new(n.to_string(), text.span), "`depends_on`")?;
            return self.process(sink, node, p, text.span).map(|p| Dep {
                node,
                process: Some(p),
            });
        }
        if let Some(h) = here
            && let Some(p) = self.all[h]
                .processes
                .iter()
                .position(|p| p.name == text.value)
        {
            return Some(Dep {
                node: h,
                process: Some(p),
            });
        }
        self.node(sink, text, "`depends_on`").map(|node| Dep {
            node,
            process: None,
        })
    }

    fn process(&self, sink: &mut Sink, node: usize, name: &str, span: Span) -> Option<usize> {
        let n = &self.all[node];
        if let Some(p) = n.processes.iter().position(|p| p.name == name) {
            return Some(p);
        }
        let d = sink.error(
            Some(span),
            format!("node `{}` has no process `{name}`", n.name),
        );
        if let Some(s) = did_you_mean(name, n.processes.iter().map(|p| p.name.as_str())) {
            d.hint(format!("did you mean `{s}`?"));
        }
        None
    }

    pub(super) fn action(&self, sink: &mut Sink, a: &RawAction) -> Option<Action> {
        Some(match a {
            RawAction::Link { link, up, one_side } => {
                let (node, iface, bridge) = self.link_end(sink, link)?;
                Action::Link {
                    node,
                    iface,
                    bridge,
                    up: *up,
                    one_side: *one_side,
                }
            }
            RawAction::Impair {
                link,
                impair,
                one_side,
            } => {
                let (node, iface, bridge) = self.link_end(sink, link)?;
                let impair = match impair {
                    Some(raw) => Some(super::impair::of_raw(sink, raw)?),
                    None => None,
                };
                Action::Impair {
                    node,
                    iface,
                    bridge,
                    impair,
                    one_side: *one_side,
                }
            }
            RawAction::Node { node, action } => {
                let n = self.node(sink, node, "the step")?;
                if self.all[n].processes.is_empty() {
                    sink.error(
                        Some(node.span),
                        format!("node `{}` has no processes to stop or start", node.value),
                    )
                    .hint("give the node `processes:` (or a kind or daemonset that adds them)");
                    return None;
                }
                Action::Node {
                    node: n,
                    action: *action,
                }
            }
            RawAction::Sleep(d) => Action::Sleep { duration: *d },
        })
    }

    /// `node:iface` of a step: a node of the lab and one of its interfaces.
    fn link_end(&self, sink: &mut Sink, link: &Sp<String>) -> Option<Port> {
        let (n, i) = link.value.split_once(':')?;
        if let Some(b) = self.bridges.iter().find(|b| b.name == n) {
            return self.bridge_end(sink, b, i, link.span);
        }
        let node = self.node(sink, &Sp::new(n.to_string(), link.span), "the step")?;
        let names: Vec<&str> = self.all[node]
            .interfaces
            .iter()
            .map(|x| x.name.as_str())
            .collect();
        if !names.contains(&i) {
            let d = sink.error(
                Some(link.span),
                format!("node `{n}` has no interface `{i}`"),
            );
            match did_you_mean(i, names.iter().copied()) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None => d.hint(format!("its interfaces are: {}", names.join(", "))),
            };
            return None;
        }
        Some((node, i.to_string(), None))
    }

    /// `BRIDGE:NODE` of a step: the bridge's port to the node (a switch port going down),
    /// resolved to the node's interface on that bridge. The hint lists the nodes on the
    /// bridge, not node names that merely look alike.
    fn bridge_end(&self, sink: &mut Sink, b: &Bridge, node: &str, span: Span) -> Option<Port> {
        let on: Vec<(&str, &str)> = b
            .ports
            .iter()
            .map(|p| {
                let n = &self.all[p.node];
                (n.name.as_str(), n.interfaces[p.iface].name.as_str())
            })
            .collect();
        let mine: Vec<&(&str, &str)> = on.iter().filter(|(n, _)| *n == node).collect();
        if let [(_, iface)] = mine.as_slice() {
            let n = self.all.iter().position(|n| n.name == node)?;
            return Some((n, iface.to_string(), Some(b.name.clone())));
        }
        let what = match mine.len() {
            0 => format!("bridge `{}` has no port to `{node}`", b.name),
            k => format!(
                "node `{node}` has {k} links to bridge `{}`, so `{}:{node}` does not say which port",
                b.name, b.name
            ),
        };
        let d = sink.error(Some(span), what);
        if on.is_empty() {
            d.hint(format!("no node is linked to bridge `{}`", b.name));
        } else if mine.is_empty() {
            let mut names: Vec<&str> = on.iter().map(|(n, _)| *n).collect();
            names.dedup();
            d.hint(format!(
                "`BRIDGE:NODE` names the bridge's port to a node; the nodes on `{}` are: {}",
                b.name,
                names.join(", ")
            ));
        } else {
            d.hint("name the node's end with `one_side: true` instead (that end goes down)");
        }
        None
    }
}

/// A step's link end: the node, its interface, and the bridge when the step names the
/// bridge's port (`BRIDGE:NODE`) rather than the node's end.
type Port = (usize, String, Option<String>);

/// `link_down r1:eth1`, `impair r1:eth1 rate 1mbit`, `node_restart r2`, `sleep 2s`.
pub(super) fn action_name(a: &RawAction) -> String {
    let side = |one: bool| if one { " (one side)" } else { "" };
    match a {
        RawAction::Link { link, up, one_side } => format!(
            "link_{} {}{}",
            if *up { "up" } else { "down" },
            link.value,
            side(*one_side)
        ),
        RawAction::Impair {
            link,
            impair,
            one_side,
        } => match impair {
            Some(i) => format!(
                "impair {} {}{}",
                link.value,
                super::impair::Impair::from(&**i),
                side(*one_side)
            ),
            None => format!("impair {} clear{}", link.value, side(*one_side)),
        },
        RawAction::Node { node, action } => {
            let verb = match action {
                NodeAction::Stop => "stop",
                NodeAction::Start => "start",
                NodeAction::Restart => "restart",
            };
            format!("node_{verb} {}", node.value)
        }
        RawAction::Sleep(d) => format!("sleep {}", crate::spec::raw::format_duration(*d)),
    }
}
