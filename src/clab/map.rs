//! containerlab definitions to nslab's language: one resolved node at a time, into the
//! located tree nslab's reader takes (and `nslab import` prints).

use crate::clab::frr::{self, Files};
use crate::clab::images::{ImageMap, Profile};
use crate::clab::inherit::{self, Resolved};
use crate::clab::schema::ClabFile;
use crate::clab::tree::{self, map, named, plain, seq, text};
use crate::clab::{links, words};
use crate::diag::{Sink, Span};
use crate::spec::raw::Sp;
use crate::spec::read;
use crate::spec::yaml::{Kind, Yaml};

/// Keys read by the mapping. Every other key that is set gets a warning naming it.
const MAPPED: &[&str] = &[
    "kind",
    "group",
    "image",
    "binds",
    "exec",
    "env",
    "labels",
    "cmd",
    "entrypoint",
    "sysctls",
    "cpu",
    "cpu-set",
    "memory",
    "stages",
    "healthcheck",
    "restart-policy",
    "user",
    "mgmt-ipv4",
    "mgmt-ipv6",
];

/// Why a key has no nslab meaning, for the keys users meet most.
fn unmapped_reason(key: &str) -> &'static str {
    match key {
        "ports" => "nslab publishes no ports: reach a node at its `mgmt` address",
        "dns" | "aliases" => "there is no Docker DNS; nodes use the host's resolver files",
        "network-mode" => "every nslab node has its own network namespace",
        "hostname" => "a node's hostname is its name",
        "startup-delay" => {
            "nodes start as soon as what they depend on is up; use `stages` `wait-for`"
        }
        "image-pull-policy" | "auto-remove" | "runtime" | "restart-policy" => {
            "there are no containers"
        }
        _ => "it has no meaning without Docker",
    }
}

/// What a containerlab node becomes.
pub enum Role {
    Node,
    Bridge,
    /// The host itself (`kind: host`): nothing to create, links to it are dropped.
    Host,
    /// Reported as an error; left out of the document.
    Invalid,
}

/// The nslab document for a containerlab file.
pub fn document(sink: &mut Sink, c: &ClabFile, images: &ImageMap, files: &Files) -> Yaml {
    let mut top: Vec<(&str, Yaml)> = Vec::new();
    if let Some(name) = &c.name {
        top.push(("name", text(lab_name(sink, name), name.span)));
    }
    let (mut nodes, mut bridges, mut kinds) = (Vec::new(), Vec::new(), Vec::<(Yaml, Yaml)>::new());
    let mut roles = Vec::new();
    // Each node resolved once: mapped here, and read again below for whether it asks for
    // the management network.
    let mut resolved: Vec<Resolved> = Vec::with_capacity(c.nodes.len());
    for (name, def) in &c.nodes {
        let r = inherit::resolve(c, name, def);
        let role = role(sink, &r);
        match role {
            Role::Node => {
                let profile = image(sink, &r, images);
                if let Some(p) = profile
                    && let Some(spec) = &p.node
                    && !kinds
                        .iter()
                        .any(|(k, _)| k.as_str() == Some(p.name.as_str()))
                {
                    let at = r.field("image").map_or(r.name.span, |i| i.span);
                    kinds.push((text(p.name.clone(), at), tree::respan(spec, at)));
                }
                nodes.push((
                    text(name.value.clone(), name.span),
                    node(sink, &r, profile, files),
                ));
            }
            Role::Bridge => {
                warn_bridge_keys(sink, &r);
                bridges.push((
                    text(name.value.clone(), name.span),
                    map(Vec::new(), def.span),
                ));
            }
            Role::Host | Role::Invalid => {}
        }
        roles.push((name.value.clone(), role));
        resolved.push(r);
    }
    if !kinds.is_empty() {
        top.push(("kinds", named(kinds, c.span)));
    }
    top.push(("nodes", named(nodes, c.span)));
    if !bridges.is_empty() {
        top.push(("bridges", named(bridges, c.span)));
    }
    if crate::clab::mgmt::wanted(c, &resolved) {
        top.insert(
            usize::from(c.name.is_some()),
            ("mgmt", crate::clab::mgmt::top(sink, c)),
        );
    }
    let links = links::links(sink, c, &roles);
    if !links.is_empty() {
        top.push(("links", seq(links, c.span)));
    }
    map(top, c.span)
}

/// The lab name, made to fit nslab's rule (lowercase letters, digits and `-`, at most
/// 12 characters: the control socket of a node lives at
/// `<run dir>/<lab>.nodes/<node>.sock`, and a socket path has 107 bytes).
fn lab_name(sink: &mut Sink, name: &Sp<String>) -> String {
    let max = crate::model::names::LAB_NAME_MAX;
    let mapped: String = name
        .value
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut s: String = mapped.trim_start_matches('-').chars().take(max).collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() {
        s = "clab".into();
    }
    if s != name.value {
        sink.warning(
            Some(name.span),
            format!("the lab is named `{s}`: `{}` is not an nslab lab name", name.value),
        )
        .hint(format!(
            "nslab lab names are lowercase letters, digits and `-`, at most {max} characters; `nslab down {s}` takes it down"
        ));
    }
    s
}

fn role(sink: &mut Sink, r: &Resolved) -> Role {
    let Some(kind) = &r.kind else {
        sink.error(Some(r.name.span), format!("node `{}` has no kind", r.name.value))
            .hint("containerlab needs `kind:` on the node, its group, or in `defaults`; nslab runs `linux` and `bridge` nodes");
        return Role::Invalid;
    };
    match kind.value.as_str() {
        "linux" => Role::Node,
        "bridge" | "ovs-bridge" => {
            sink.warning(
                Some(kind.span),
                format!("bridge `{}` is made by nslab, inside the lab", r.name.value),
            )
            .hint("containerlab expects a bridge that already exists on the host; nslab creates its own in the lab's fabric namespace and leaves the host alone");
            Role::Bridge
        }
        "host" => {
            sink.warning(
                Some(kind.span),
                format!("node `{}` of kind `host` is left out", r.name.value),
            )
            .hint("it stands for the host itself; a link to `host:IF` is a host link");
            Role::Host
        }
        "ext-container" => {
            sink.error(
                Some(kind.span),
                format!(
                    "node `{}`: kind `ext-container` joins a running container, which nslab cannot",
                    r.name.value
                ),
            )
            .hint("replace it with a `linux` node");
            Role::Invalid
        }
        other => {
            sink.error(
                Some(kind.span),
                format!("node `{}`: kind `{other}` is not supported", r.name.value),
            )
            .hint("nslab runs `linux` and `bridge` nodes with the host's programs; vendor NOS kinds need their images or VMs");
            Role::Invalid
        }
    }
}

fn warn_bridge_keys(sink: &mut Sink, r: &Resolved) {
    for (k, _) in &r.def.fields {
        if !matches!(k.value.as_str(), "kind" | "group") {
            sink.warning(
                Some(k.span),
                format!("`{}` of bridge `{}` is not used", k.value, r.name.value),
            );
        }
    }
}

/// The image's profile; an image the map does not know is a warning.
fn image<'m>(sink: &mut Sink, r: &Resolved, images: &'m ImageMap) -> Option<&'m Profile> {
    let image = r.text("image")?;
    let found = images.find(&image.value);
    if found.is_none() {
        sink.warning(
            Some(image.span),
            format!("image `{}` is not in the image map: node `{}` runs the host's programs and no process of its own", image.value, r.name.value),
        )
        .hint("say what the image runs in an image map (`nslab import --image-map FILE`), or give the node a `cmd:`");
    }
    found
}

/// A `linux` node's nslab keys.
fn node(sink: &mut Sink, r: &Resolved, profile: Option<&Profile>, files: &Files) -> Yaml {
    let programs: &[(String, String)] = profile.map_or(&[], |p| &p.programs);
    let mut out: Vec<(&str, Yaml)> = Vec::new();
    if let Some(p) = profile.filter(|p| p.node.is_some()) {
        let at = r.field("image").map_or(r.name.span, |i| i.span);
        out.push(("kind", text(p.name.clone(), at)));
    }
    warn_unmapped(sink, r);
    let busybox = profile.is_some_and(|p| p.busybox);
    let image_at = r.field("image").map_or(r.name.span, |i| i.span);
    for (key, out_key) in [("labels", "labels"), ("env", "env")] {
        let mut m = string_map(sink, r, key);
        if key == "env" && busybox {
            busybox_path(&mut m, image_at);
        }
        if !m.is_empty() {
            out.push((out_key, named(m, r.def.span)));
        }
    }
    let sysctls = sysctls(sink, r);
    if !sysctls.is_empty() {
        out.push(("sysctls", named(sysctls, r.def.span)));
    }
    let mut mounts = binds(sink, r);
    if busybox {
        mounts.extend(busybox_mounts(image_at));
    }
    // Read before the mounts go into the document; used only by an FRR image's node.
    let daemons = match profile
        .filter(|p| p.frr)
        .map(|_| frr::daemons_of(&mounts, files))
    {
        Some(Err(why)) => {
            sink.error(Some(image_at), format!("node `{}`: {why}", r.name.value))
                .hint("bind a regular file there: nslab reads it to know the daemons to run, and opens no FIFO or device for that");
            None
        }
        Some(Ok(text)) => text,
        None => None,
    };
    if !mounts.is_empty() {
        out.push(("mounts", seq(mounts, r.def.span)));
    }
    let process = process(sink, r, profile, programs);
    warn_user(sink, r, process.is_some());
    if let Some(w) = profile.and_then(|p| p.warning.as_ref())
        && process.is_none()
    {
        sink.warning(Some(image_at), format!("node `{}`: {w}", r.name.value))
            .hint("nslab runs the host's programs, and would run this one with the host's configuration; give the node a `cmd:` to run what you mean");
    }
    // An FRR image without a command of the file's: FRR's daemons, as its init would.
    let frr = profile.is_some_and(|p| p.frr) && process.is_none();
    let mut exec: Vec<Yaml> = Vec::new();
    if frr {
        let daemons = frr::parse(daemons.as_deref());
        let procs = frr::processes(sink, &r.name.value, &daemons, image_at);
        out.push(("processes", seq(procs, r.def.span)));
        exec.push(frr::config_exec(image_at));
    }
    if let Some(p) = process {
        out.push(("processes", seq(vec![p], r.def.span)));
    } else if let Some(h) = r.field("healthcheck") {
        let hint = match frr {
            true => {
                "nslab runs this node's FRR daemons and probes each on its vty socket (`ready: { unix: /var/run/frr/DAEMON.vty }`), so `up` waits for them without it"
            }
            false => {
                "nslab probes a process it runs; this node has no `cmd:` and its image map entry no process"
            }
        };
        sink.warning(
            Some(h.span),
            format!("the healthcheck of node `{}` is not used", r.name.value),
        )
        .hint(hint);
    }
    exec.extend(
        r.list("exec")
            .into_iter()
            .filter_map(|e| command(sink, e, programs)),
    );
    if !exec.is_empty() {
        out.push(("exec", seq(exec, r.def.span)));
    }
    if let Some(m) = crate::clab::mgmt::node(r) {
        out.push(("mgmt", m));
    }
    let limits = limits(sink, r);
    if !limits.is_empty() {
        out.push(("limits", map(limits, r.def.span)));
    }
    // Docker's cpuset (`--cpuset-cpus`) becomes the affinity the node's processes start
    // with: the same CPUs, though a process may widen its own affinity here.
    if let Some(c) = r
        .field("cpu-set")
        .and_then(|v| read::string(sink, v, "`cpu-set`"))
    {
        out.push(("cpus", text(c.value, c.span)));
    }
    let deps = depends_on(sink, r);
    if !deps.is_empty() {
        out.push(("depends_on", seq(deps, r.def.span)));
    }
    map(out, r.def.span)
}

/// The busybox directory last on the node's PATH (after the file's own PATH, if it
/// sets one): the host's programs first, busybox's applets for what the host lacks.
fn busybox_path(env: &mut Vec<(Yaml, Yaml)>, at: Span) {
    use crate::clab::images::BUSYBOX_DIR;
    match env.iter_mut().find(|(k, _)| k.as_str() == Some("PATH")) {
        Some((_, v)) => {
            let path = format!("{}:{BUSYBOX_DIR}", v.as_str().unwrap_or_default());
            *v = text(path, v.span);
        }
        None => {
            let path = format!("{}:{BUSYBOX_DIR}", crate::node::environ::DEFAULT_PATH);
            env.push((text("PATH", at), text(path, at)));
        }
    }
}

/// The host's busybox bound read-only onto each applet's name in the node's busybox
/// directory (on the node's own `/run`): run by that name, busybox runs that applet.
fn busybox_mounts(at: Span) -> Vec<Yaml> {
    use crate::clab::images::{BUSYBOX, BUSYBOX_APPLETS, BUSYBOX_DIR};
    BUSYBOX_APPLETS
        .iter()
        .map(|a| {
            let fields = vec![
                ("source", text(BUSYBOX, at)),
                ("target", text(format!("{BUSYBOX_DIR}/{a}"), at)),
                ("readonly", plain(true, at)),
            ];
            map(fields, at)
        })
        .collect()
}

fn warn_unmapped(sink: &mut Sink, r: &Resolved) {
    for key in crate::clab::schema::NODE_KEYS {
        if MAPPED.contains(key) && *key != "restart-policy" {
            continue;
        }
        if *key == "restart-policy" && r.text("cmd").is_some() {
            continue;
        }
        if let Some(v) = r.field(key) {
            sink.warning(
                Some(v.span),
                format!(
                    "`{key}` of node `{}` is not used: {}",
                    r.name.value,
                    unmapped_reason(key)
                ),
            );
        }
    }
}

/// A merged map of scalars as nslab `key: "value"` entries.
fn string_map(sink: &mut Sink, r: &Resolved, key: &str) -> Vec<(Yaml, Yaml)> {
    for v in r.all(key) {
        if !matches!(v.kind, Kind::Map(_)) {
            read::entries(sink, v, &format!("`{key}`"));
        }
    }
    r.map(key)
        .into_iter()
        .filter_map(|(k, v)| {
            let value = match &v.kind {
                Kind::Null => String::new(),
                _ => read::string(sink, v, &format!("`{key}` value"))?.value,
            };
            let value = words::substitute(sink, &value, v.span);
            Some((text(k.as_str().unwrap_or("~"), k.span), text(value, v.span)))
        })
        .collect()
}

/// Sysctls: nslab sets only the node's own `net.*` keys.
fn sysctls(sink: &mut Sink, r: &Resolved) -> Vec<(Yaml, Yaml)> {
    string_map(sink, r, "sysctls")
        .into_iter()
        .filter(|(k, _)| {
            let net = k.as_str().is_some_and(|k| k.starts_with("net."));
            if !net {
                sink.warning(
                    Some(k.span),
                    format!("sysctl `{}` of node `{}` is not set", k.as_str().unwrap_or("~"), r.name.value),
                )
                .hint("a node shares everything but `net.*` with the host; nslab sets only `net.*` keys");
            }
            net
        })
        .collect()
}

/// `binds` as mounts: containerlab keys them by target, the more specific level
/// winning, and sorts them.
fn binds(sink: &mut Sink, r: &Resolved) -> Vec<Yaml> {
    let mut by_target: Vec<(String, String, Yaml)> = Vec::new();
    for b in r.list("binds") {
        let Some(s) = read::string(sink, b, "a bind") else {
            continue;
        };
        let s = words::substitute(sink, &s.value, b.span);
        let parts: Vec<&str> = s.split(':').collect();
        let (source, target, opts) = match parts.as_slice() {
            [src, dst] => (*src, *dst, ""),
            [src, dst, opts] => (*src, *dst, *opts),
            _ => {
                sink.error(
                    Some(b.span),
                    format!("bind `{s}` is not `source:target[:options]`"),
                );
                continue;
            }
        };
        let mut readonly = false;
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            match opt {
                "ro" => readonly = true,
                "rw" => {}
                other => {
                    sink.warning(Some(b.span), format!("bind option `{other}` is not used"));
                }
            }
        }
        let mut fields = vec![
            ("source", text(source, b.span)),
            ("target", text(target, b.span)),
        ];
        if readonly {
            fields.push(("readonly", plain(true, b.span)));
        }
        let mount = map(fields, b.span);
        match by_target.iter_mut().find(|(t, _, _)| t == target) {
            Some(slot) => *slot = (target.to_string(), s.clone(), mount),
            None => by_target.push((target.to_string(), s.clone(), mount)),
        }
    }
    by_target.sort_by(|a, b| a.1.cmp(&b.1));
    by_target.into_iter().map(|(_, _, m)| m).collect()
}

/// A command as argv, split the way containerlab splits it, with the image's program
/// names mapped to the host's.
fn command(sink: &mut Sink, y: &Yaml, programs: &[(String, String)]) -> Option<Yaml> {
    let argv: Vec<String> = match &y.kind {
        Kind::Seq(items) => items
            .iter()
            .filter_map(|i| read::string(sink, i, "a command word").map(|s| s.value))
            .collect(),
        _ => {
            let s = read::string(sink, y, "a command")?;
            // Plain words mean the same to nslab's `/bin/sh -c`: kept as written.
            let plain_words = !s
                .value
                .contains(|c: char| "$`\"'\\|&;<>()*?[]#~{}\n".contains(c));
            let renamed = words::split(&s.value)
                .ok()
                .and_then(|w| w.first().cloned())
                .is_some_and(|first| programs.iter().any(|(from, _)| *from == first));
            if plain_words && !renamed && !s.value.contains("__clab") {
                return Some(text(s.value.trim(), y.span));
            }
            match words::split(&s.value) {
                Ok(w) => w,
                Err(e) => {
                    sink.error(
                        Some(y.span),
                        format!("cannot split command `{}`: {e}", s.value),
                    );
                    return None;
                }
            }
        }
    };
    let mut argv: Vec<String> = argv
        .iter()
        .map(|w| words::substitute(sink, w, y.span))
        .collect();
    if let Some(first) = argv.first_mut()
        && let Some((_, to)) = programs.iter().find(|(from, _)| from == first)
    {
        *first = to.clone();
    }
    if argv.is_empty() {
        sink.error(Some(y.span), "an empty command");
        return None;
    }
    Some(seq(
        argv.into_iter().map(|w| text(w, y.span)).collect(),
        y.span,
    ))
}

/// `entrypoint` and `cmd` as one process. It takes the name of the image's own process,
/// so it replaces it, as a container's command replaces the image's.
fn process(
    sink: &mut Sink,
    r: &Resolved,
    profile: Option<&Profile>,
    programs: &[(String, String)],
) -> Option<Yaml> {
    let parts: Vec<&Yaml> = ["entrypoint", "cmd"]
        .iter()
        .filter_map(|k| r.field(k))
        .collect();
    let first = *parts.first()?;
    let mut argv = Vec::new();
    for p in &parts {
        match command(sink, p, programs).map(|c| c.kind) {
            Some(Kind::Seq(w)) => argv.extend(w),
            Some(Kind::Scalar { text: t, .. }) => {
                argv.extend(t.split_whitespace().map(|w| text(w, p.span)))
            }
            _ => {}
        }
    }
    if argv.is_empty() {
        return None;
    }
    let name = profile
        .and_then(|p| p.node.as_ref())
        .and_then(first_process_name)
        .unwrap_or_else(|| "cmd".to_string());
    let mut fields = vec![
        ("name", text(name, first.span)),
        ("cmd", seq(argv, first.span)),
    ];
    if let Some(policy) = r.text("restart-policy") {
        let restart = match policy.value.as_str() {
            "no" => "never",
            "on-failure" => "on-failure",
            _ => "always",
        };
        fields.push(("restart", text(restart, policy.span)));
    }
    if let Some(ready) = healthcheck(sink, r, programs) {
        fields.push(("ready", ready));
    }
    if let Some(user) = r
        .field("user")
        .and_then(|u| read::string(sink, u, "`user`"))
    {
        fields.push(("user", text(user.value, user.span)));
    }
    Some(map(fields, first.span))
}

/// `user` becomes the `cmd` process's user; what else Docker would run as that user
/// (the image's own command, `exec`) runs as root, and says so.
fn warn_user(sink: &mut Sink, r: &Resolved, has_process: bool) {
    let Some(user) = r.field("user") else { return };
    let name = &r.name.value;
    if !has_process {
        sink.warning(
            Some(user.span),
            format!("`user` of node `{name}` is not used: the node has no `cmd` or `entrypoint` to run as that user"),
        )
        .hint("nslab gives `user` to the process made from `cmd`; an image map entry's own processes take `user:` in the map");
    }
    if !r.list("exec").is_empty() {
        sink.warning(
            Some(user.span),
            format!("the `exec` commands of node `{name}` run as root, not as its `user`"),
        )
        .hint("nslab's `exec:` has no user; run them as the user explicitly (`su -s /bin/sh USER -c '...'`), or set `user:` on a process instead");
    }
}

fn first_process_name(node: &Yaml) -> Option<String> {
    let Kind::Map(entries) = &node.kind else {
        return None;
    };
    let (_, procs) = entries
        .iter()
        .find(|(k, _)| k.as_str() == Some("processes"))?;
    let Kind::Seq(items) = &procs.kind else {
        return None;
    };
    let Kind::Map(p) = &items.first()?.kind else {
        return None;
    };
    p.iter()
        .find(|(k, _)| k.as_str() == Some("name"))
        .and_then(|(_, v)| tree::scalar_text(v))
}

/// `healthcheck` as the process's ready probe: `CMD-SHELL` runs through the shell,
/// `CMD` as argv; see [`probe_timing`] for the numbers.
fn healthcheck(sink: &mut Sink, r: &Resolved, programs: &[(String, String)]) -> Option<Yaml> {
    let h = r.field("healthcheck")?;
    let f = read::fields(
        sink,
        h,
        "`healthcheck`",
        &["test", "start-period", "interval", "timeout", "retries"],
    )?;
    let test = f.value("test")?;
    let items = read::list(sink, test, "healthcheck `test`");
    let words: Vec<String> = items
        .iter()
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect();
    let cmd = match words.split_first() {
        Some((k, rest)) if k == "CMD-SHELL" => text(rest.join(" "), test.span),
        Some((k, rest)) if k == "CMD" && !rest.is_empty() => {
            let argv = Yaml {
                kind: Kind::Seq(items[1..].to_vec()),
                span: test.span,
            };
            command(sink, &argv, programs)?
        }
        _ => {
            sink.error(
                Some(test.span),
                "healthcheck `test` must start with `CMD` or `CMD-SHELL`",
            );
            return None;
        }
    };
    let mut fields = vec![("cmd", cmd)];
    fields.extend(probe_timing(sink, &f, h.span));
    Some(map(fields, h.span))
}

/// Docker's healthcheck numbers (seconds; 0 or absent is Docker's default: interval 30,
/// timeout 30, retries 3, start-period 0) as the probe's: `interval`, `probe_timeout`
/// (one probe), `attempts` (failed probes at the interval) and `start_period` (failures
/// that do not count). The whole wait's `timeout` is as long as Docker could take to call
/// the container unhealthy, start-period + retries × (interval + timeout), plus an
/// interval for nslab's quicker first polls, so the attempts end it, not the default 30 s.
fn probe_timing(sink: &mut Sink, f: &read::Fields, at: Span) -> Vec<(&'static str, Yaml)> {
    let mut get = |key: &str, default: u64| {
        let v = f.value(key).and_then(|v| {
            let unit = if key == "retries" { "" } else { " (seconds)" };
            read::int(sink, v, &format!("healthcheck `{key}`{unit}"), 0, 1 << 31)
        });
        match v {
            Some(v) if v.value > 0 => (v.value as u64, v.span),
            Some(v) => (default, v.span),
            None => (default, at),
        }
    };
    let (interval, i_at) = get("interval", 30);
    let (timeout, t_at) = get("timeout", 30);
    let (retries, r_at) = get("retries", 3);
    let (start, s_at) = get("start-period", 0);
    let total = retries
        .saturating_mul(interval + timeout)
        .saturating_add(start + interval);
    let mut out = vec![
        ("interval", text(format!("{interval}s"), i_at)),
        ("probe_timeout", text(format!("{timeout}s"), t_at)),
        ("attempts", plain(retries, r_at)),
    ];
    if start > 0 {
        out.push(("start_period", text(format!("{start}s"), s_at)));
    }
    out.push(("timeout", text(format!("{total}s"), at)));
    out
}

fn limits(sink: &mut Sink, r: &Resolved) -> Vec<(&'static str, Yaml)> {
    let mut out = Vec::new();
    if let Some(cpu) = r.field("cpu").and_then(|v| read::string(sink, v, "`cpu`")) {
        out.push(("cpu", plain(cpu.value, cpu.span)));
    }
    if let Some(m) = r.field("memory")
        && let Some(bytes) = read::parsed(sink, m, "`memory`", words::docker_size)
    {
        out.push(("memory", plain(bytes.value, bytes.span)));
    }
    out
}

/// The nodes a node waits for in any of its stages (`stages.<stage>.wait-for`).
fn depends_on(sink: &mut Sink, r: &Resolved) -> Vec<Yaml> {
    let mut out: Vec<Yaml> = Vec::new();
    for stages in r.all("stages") {
        for (stage, body) in read::entries(sink, stages, "`stages`") {
            let Kind::Map(keys) = &body.kind else {
                continue;
            };
            for (k, v) in keys {
                match k.as_str() {
                    Some("wait-for") => wait_for(sink, v, &mut out),
                    Some("exec") => {
                        sink.warning(
                            Some(k.span),
                            format!("the `exec` of stage `{}` is not run", stage.as_str().unwrap_or("~")),
                        )
                        .hint("move the commands to the node's `exec:`, which runs once the lab is wired");
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

fn wait_for(sink: &mut Sink, v: &Yaml, out: &mut Vec<Yaml>) {
    for item in read::list(sink, v, "`wait-for`") {
        let Kind::Map(entries) = &item.kind else {
            continue;
        };
        let get = |key| {
            entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v)
        };
        let Some(node) =
            get("node").and_then(|n| n.as_str().map(|s| Sp::new(s.to_string(), n.span)))
        else {
            continue;
        };
        if let Some(stage) = get("stage").and_then(|s| s.as_str().map(|t| (t.to_string(), s.span)))
            && !matches!(stage.0.as_str(), "create" | "healthy")
        {
            sink.warning(
                Some(stage.1),
                format!("waiting for stage `{}` of `{}` becomes waiting for `{}` to be up", stage.0, node.value, node.value),
            )
            .hint("nslab orders whole nodes: a node starts once the nodes it depends on are up and their processes ready");
        }
        if !out.iter().any(|o| o.as_str() == Some(node.value.as_str())) {
            out.push(text(node.value, node.span));
        }
    }
}
