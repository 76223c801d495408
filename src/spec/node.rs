//! Reading node specs (shared by `nodes`, `kinds` and `defaults`): routes, commands,
//! processes, mounts, private dirs and limits.

use crate::diag::Sink;
use crate::kinds::*;
use crate::spec::raw::*;
use crate::spec::read::{self, Fields};
use crate::spec::values;
use crate::spec::yaml::{Kind, Yaml};

pub const NODE_KEYS: &[&str] = &[
    "kind",
    "labels",
    "loopback",
    "sysctls",
    "routes",
    "exec",
    "processes",
    "mounts",
    "private",
    "limits",
    "isolation",
    "depends_on",
    "stop_timeout",
    "env",
    "host",
    "interfaces",
    "mgmt",
    "rlimits",
    "nice",
    "oom_score_adj",
    "cpus",
    "ionice",
];

const ROUTE_KEYS: &[&str] = &["to", "via", "dev", "metric", "type"];
const HOP_KEYS: &[&str] = &["hop", "weight"];
const EXEC_KEYS: &[&str] = &["cmd", "ignore_errors", "timeout"];
pub const PROCESS_KEYS: &[&str] = &[
    "name",
    "cmd",
    "env",
    "cwd",
    "restart",
    "ready",
    "depends_on",
    "stop_timeout",
    "user",
    "rlimits",
    "nice",
    "oom_score_adj",
    "cpus",
    "ionice",
];
const READY_KEYS: &[&str] = &[
    "cmd",
    "tcp",
    "unix",
    "file",
    "timeout",
    "interval",
    "probe_timeout",
    "attempts",
    "start_period",
];
/// The probe kinds of a `ready:` mapping; it takes exactly one.
const READY_PROBES: &[&str] = &["cmd", "tcp", "unix", "file"];
const MOUNT_KEYS: &[&str] = &["source", "target", "readonly"];
const PRIVATE_KEYS: &[&str] = &["path", "owner", "mode"];
const LIMIT_KEYS: &[&str] = &["memory", "cpu", "pids"];

/// Reads a node-like mapping. `allow_kind` is false inside `kinds:` (a kind has no kind,
/// and no host: where a node runs is the node's own business, or `defaults:`').
pub fn node_spec(sink: &mut Sink, y: &Yaml, what: &str, allow_kind: bool) -> RawNodeSpec {
    let keys: Vec<&str> = NODE_KEYS
        .iter()
        .copied()
        .filter(|k| allow_kind || (*k != "kind" && *k != "host"))
        .collect();
    let mut spec = RawNodeSpec {
        span: y.span,
        ..Default::default()
    };
    let Some(f) = read::fields(sink, y, what, &keys) else {
        return spec;
    };
    spec.kind = f
        .value("kind")
        .and_then(|v| read::string(sink, v, "`kind`"));
    if let Some(v) = f.get("labels") {
        spec.labels = read::string_map(sink, v, &format!("`labels` of {what}"));
    }
    if let Some(v) = f.value("loopback") {
        spec.loopback = loopback(sink, v);
    }
    if let Some(v) = f.get("sysctls") {
        spec.sysctls = read::string_map(sink, v, &format!("`sysctls` of {what}"));
    }
    if let Some(v) = f.get("env") {
        spec.env = env_map(sink, v, &format!("`env` of {what}"));
    }
    if let Some(v) = f.get("routes") {
        for item in read::list(sink, v, "`routes`") {
            if let Some(r) = route(sink, item) {
                spec.routes.push(r);
            }
        }
    }
    if let Some(v) = f.get("exec") {
        for item in read::list(sink, v, "`exec`") {
            if let Some(e) = exec(sink, item) {
                spec.exec.push(e);
            }
        }
    }
    if let Some(v) = f.get("processes") {
        for item in read::list(sink, v, "`processes`") {
            if let Some(p) = process(sink, item, "a process", PROCESS_KEYS) {
                spec.processes.push(p.0);
            }
        }
    }
    if let Some(v) = f.get("mounts") {
        for item in read::list(sink, v, "`mounts`") {
            if let Some(m) = mount(sink, item) {
                spec.mounts.push(m);
            }
        }
    }
    if let Some(v) = f.get("private") {
        for item in read::list(sink, v, "`private`") {
            if let Some(p) = private_dir(sink, item) {
                spec.private.push(p);
            }
        }
    }
    if let Some(v) = f.get("limits") {
        spec.limits = limits(sink, v, what);
    }
    spec.attrs = crate::spec::attrs::read(sink, &f, what);
    if let Some(v) = f.value("isolation") {
        let mut kinds = Vec::new();
        for item in read::one_or_many(v) {
            if let Some(k) = read::parsed(sink, item, "`isolation` entry", |s| {
                NsKind::ALL
                    .into_iter()
                    .find(|k| k.name() == s)
                    .ok_or_else(|| format!("`{s}` is not one of net, uts, mnt, pid, ipc"))
            }) {
                kinds.push(k);
            }
        }
        spec.isolation = Some(Sp::new(kinds, v.span));
    }
    if let Some(v) = f.value("depends_on") {
        spec.depends_on = read::strings(sink, v, "`depends_on` entry");
    }
    if let Some(v) = f.get("interfaces") {
        spec.interfaces = crate::spec::device::interfaces(sink, v);
    }
    spec.host = f
        .value("host")
        .and_then(|v| read::string(sink, v, "`host`"));
    spec.stop_timeout = f
        .value("stop_timeout")
        .and_then(|v| read::parsed(sink, v, "`stop_timeout`", values::parse_duration));
    spec
}

fn loopback(sink: &mut Sink, y: &Yaml) -> Option<Sp<RawLoopback>> {
    if y.as_str() == Some("auto") {
        return Some(Sp::new(RawLoopback::Auto, y.span));
    }
    let addrs: Vec<_> = read::one_or_many(y)
        .iter()
        .filter_map(|item| {
            read::parsed(sink, item, "loopback address", |s| {
                values::parse_cidr(s, true)
            })
        })
        .collect();
    Some(Sp::new(RawLoopback::Addrs(addrs), y.span))
}

pub fn route_dest(text: &str) -> Result<RouteDest, String> {
    match text {
        "default" => Ok(RouteDest::Default),
        "default4" => Ok(RouteDest::Default4),
        "default6" => Ok(RouteDest::Default6),
        _ => values::parse_cidr(text, true).map(|n| RouteDest::Prefix(n.trunc())),
    }
}

fn route(sink: &mut Sink, y: &Yaml) -> Option<RawRoute> {
    let f = read::fields(sink, y, "a route", ROUTE_KEYS)?;
    let Some(to_y) = f.value("to") else {
        sink.error(Some(y.span), "a route needs `to:`")
            .hint("for example `{ to: default, via: r1 }` or `{ to: 10.0.0.0/24, via: 10.1.0.1 }`");
        return None;
    };
    let to = read::parsed(sink, to_y, "route destination", route_dest)?;
    let mut via = Vec::new();
    if let Some(v) = f.value("via") {
        for item in read::one_or_many(v) {
            via.extend(hop(sink, item));
        }
    }
    let kind = match f.value("type") {
        Some(t) => read::parsed(sink, t, "route `type`", |s| match s {
            "unicast" => Ok(RouteKind::Unicast),
            "blackhole" => Ok(RouteKind::Blackhole),
            "unreachable" => Ok(RouteKind::Unreachable),
            "prohibit" => Ok(RouteKind::Prohibit),
            _ => Err(format!(
                "`{s}` is not one of unicast, blackhole, unreachable, prohibit"
            )),
        })?,
        None => Sp::new(RouteKind::Unicast, y.span),
    };
    let dev = f
        .value("dev")
        .and_then(|v| read::string(sink, v, "route `dev`"));
    let metric = f
        .value("metric")
        .and_then(|v| read::int(sink, v, "route `metric`", 0, u32::MAX as i64))
        .map(|m| Sp::new(m.value as u32, m.span));
    Some(RawRoute {
        span: y.span,
        to,
        via,
        dev,
        metric,
        kind,
    })
}

fn hop(sink: &mut Sink, y: &Yaml) -> Option<RawVia> {
    if let Kind::Map(_) = y.kind {
        let f = read::fields(sink, y, "a next hop", HOP_KEYS)?;
        let Some(h) = f.value("hop") else {
            sink.error(Some(y.span), "a weighted next hop needs `hop:`")
                .hint("for example `{ hop: r2, weight: 2 }`");
            return None;
        };
        let target = read::string(sink, h, "next hop")?;
        let weight = f
            .value("weight")
            .and_then(|w| read::int(sink, w, "next-hop `weight`", 1, 256))
            .map(|w| Sp::new((w.value - 1) as u8, w.span));
        return Some(RawVia { target, weight });
    }
    Some(RawVia {
        target: read::string(sink, y, "next hop")?,
        weight: None,
    })
}

/// A command: a string runs through `/bin/sh -c`, a list is the argv itself.
pub fn command(sink: &mut Sink, y: &Yaml, what: &str) -> Option<Sp<RawCommand>> {
    match &y.kind {
        Kind::Seq(items) => {
            let argv: Vec<String> = items
                .iter()
                .filter_map(|i| read::string(sink, i, what).map(|s| s.value))
                .collect();
            if argv.is_empty() || argv[0].is_empty() {
                sink.error(Some(y.span), format!("{what} is an empty command"));
                return None;
            }
            Some(Sp::new(RawCommand::Argv(argv), y.span))
        }
        _ => {
            let s = read::string(sink, y, what)?;
            if s.value.trim().is_empty() {
                sink.error(Some(s.span), format!("{what} is an empty command"));
                return None;
            }
            Some(Sp::new(RawCommand::Shell(s.value), s.span))
        }
    }
}

fn exec(sink: &mut Sink, y: &Yaml) -> Option<RawExec> {
    if !matches!(y.kind, Kind::Map(_)) {
        return Some(RawExec {
            span: y.span,
            cmd: command(sink, y, "`exec` command")?,
            ignore_errors: false,
            timeout: None,
        });
    }
    let f = read::fields(sink, y, "an `exec` entry", EXEC_KEYS)?;
    let cmd = required(sink, &f, "cmd", "an `exec` entry")
        .and_then(|c| command(sink, c, "`exec` command"))?;
    Some(RawExec {
        span: y.span,
        cmd,
        ignore_errors: f
            .value("ignore_errors")
            .and_then(|v| read::boolean(sink, v, "`ignore_errors`"))
            .unwrap_or(false),
        timeout: f
            .value("timeout")
            .and_then(|v| read::parsed(sink, v, "`timeout`", values::parse_duration)),
    })
}

/// Why `key` cannot be an environment variable's name, if it cannot: execve splits
/// `KEY=VALUE` at the first `=`, and a NUL ends the string early.
pub fn bad_env_key(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("is empty")
    } else if key.contains('=') {
        Some("holds `=`")
    } else if key.contains('\0') {
        Some("holds a NUL byte")
    } else {
        None
    }
}

/// Why `user` cannot name a user and group at all, whatever the node's files say.
pub fn bad_user(user: &str) -> Option<&'static str> {
    let mut parts = user.split(':');
    let (u, g) = (parts.next().unwrap_or(""), parts.next());
    if parts.next().is_some() {
        Some("has more than one `:`")
    } else if u.is_empty() || g.is_some_and(str::is_empty) {
        Some("names no user or no group")
    } else if user
        .chars()
        .any(|c| c.is_whitespace() || crate::model::names::is_hidden(c))
    {
        Some("holds a space, or a control or format character")
    } else {
        None
    }
}

/// Why `value` cannot be an environment variable's value, if it cannot.
pub fn bad_env_value(value: &str) -> Option<&'static str> {
    value.contains('\0').then_some("holds a NUL byte")
}

/// An `env:` mapping; a name or value that execve could not pass is an error, located
/// at the name or value.
fn env_map(sink: &mut Sink, y: &Yaml, what: &str) -> Vec<(Sp<String>, Sp<String>)> {
    let env = read::string_map(sink, y, what);
    for (k, v) in &env {
        if let Some(why) = bad_env_key(&k.value) {
            sink.error(
                Some(k.span),
                format!("variable name `{}` in {what} {why}", k.value.escape_debug()),
            )
            .hint("a variable's name is a plain word, like SITE or LOG_LEVEL");
        }
        if let Some(why) = bad_env_value(&v.value) {
            sink.error(
                Some(v.span),
                format!("the value of `{}` in {what} {why}", k.value.escape_debug()),
            )
            .hint("a process cannot receive a NUL byte in its environment");
        }
    }
    env
}

pub fn required<'y>(sink: &mut Sink, f: &Fields<'y>, key: &str, what: &str) -> Option<&'y Yaml> {
    let v = f.value(key);
    if v.is_none() {
        sink.error(Some(f.span), format!("{what} needs `{key}:`"));
    }
    v
}

/// Reads a process (or the process part of a daemonset, whose extra keys the caller
/// passes in `keys` and reads from the returned fields).
pub fn process<'y>(
    sink: &mut Sink,
    y: &'y Yaml,
    what: &str,
    keys: &[&str],
) -> Option<(RawProcess, Fields<'y>)> {
    let f = read::fields(sink, y, what, keys)?;
    let name =
        required(sink, &f, "name", what).and_then(|v| read::string(sink, v, "process `name`"));
    let cmd = required(sink, &f, "cmd", what).and_then(|v| command(sink, v, "process `cmd`"));
    let restart = f.value("restart").and_then(|v| {
        read::parsed(sink, v, "`restart`", |s| match s {
            "never" | "no" => Ok(RestartPolicy::Never),
            "on-failure" => Ok(RestartPolicy::OnFailure),
            "always" => Ok(RestartPolicy::Always),
            _ => Err(format!("`{s}` is not one of never, on-failure, always")),
        })
    });
    let ready = f.value("ready").and_then(|v| ready(sink, v));
    let env = f
        .get("env")
        .map(|v| env_map(sink, v, "process `env`"))
        .unwrap_or_default();
    let cwd = f.value("cwd").and_then(|v| read::string(sink, v, "`cwd`"));
    let depends_on = f
        .value("depends_on")
        .map(|v| read::strings(sink, v, "`depends_on` entry"))
        .unwrap_or_default();
    let stop_timeout = f
        .value("stop_timeout")
        .and_then(|v| read::parsed(sink, v, "`stop_timeout`", values::parse_duration));
    let user = f.value("user").and_then(|v| {
        read::parsed(sink, v, "process `user`", |s| match bad_user(s) {
            None => Ok(s.to_string()),
            Some(why) => Err(format!(
                "`{}` {why}: a user is `name`, `uid`, `name:group` or `uid:gid`",
                s.escape_debug()
            )),
        })
    });
    let proc_what = match &name {
        Some(n) => format!("process `{}`", n.value),
        None => what.to_string(),
    };
    let attrs = crate::spec::attrs::read(sink, &f, &proc_what);
    let p = RawProcess {
        span: y.span,
        attrs,
        name: name?,
        cmd: cmd?,
        env,
        cwd,
        restart,
        ready,
        depends_on,
        stop_timeout,
        user,
    };
    Some((p, f))
}

fn ready(sink: &mut Sink, y: &Yaml) -> Option<RawReady> {
    if !matches!(y.kind, Kind::Map(_)) {
        let cmd = command(sink, y, "`ready` command")?;
        return Some(RawReady {
            span: y.span,
            probe: ReadyProbe::Cmd(cmd.value),
            timeout: None,
            interval: None,
            limits: ProbeLimits::default(),
        });
    }
    let f = read::fields(sink, y, "`ready`", READY_KEYS)?;
    let given: Vec<(&str, &Yaml)> = READY_PROBES
        .iter()
        .filter_map(|k| f.value(k).map(|v| (*k, v)))
        .collect();
    let probe = match given.as_slice() {
        [("cmd", c)] => ReadyProbe::Cmd(command(sink, c, "`ready` command")?.value),
        [("tcp", p)] => {
            ReadyProbe::Tcp(read::int(sink, p, "`ready.tcp` port", 1, 65535)?.value as u16)
        }
        [("unix", p)] => ReadyProbe::Unix(read::string(sink, p, "`ready.unix` path")?),
        [("file", p)] => ReadyProbe::File(read::string(sink, p, "`ready.file` path")?),
        _ => {
            sink.error(
                Some(y.span),
                "`ready` needs exactly one of `cmd:`, `tcp:`, `unix:` or `file:`",
            )
            .hint("for example `ready: { unix: /var/run/frr/zebra.vty }`, `ready: { tcp: 179 }` or `ready: \"vtysh -c 'show version'\"`");
            return None;
        }
    };
    Some(RawReady {
        span: y.span,
        probe,
        timeout: f
            .value("timeout")
            .and_then(|v| read::parsed(sink, v, "`timeout`", values::parse_duration))
            .map(|d| d.value),
        interval: f
            .value("interval")
            .and_then(|v| read::parsed(sink, v, "`interval`", values::parse_duration))
            .map(|d| d.value),
        limits: probe_limits(sink, &f),
    })
}

/// `probe_timeout`, `attempts` and `start_period` of a `ready:` mapping.
fn probe_limits(sink: &mut Sink, f: &Fields) -> ProbeLimits {
    let ms = |sink: &mut Sink, key: &str| {
        f.value(key)
            .and_then(|v| read::parsed(sink, v, &format!("`{key}`"), values::parse_duration))
            .map(|d| d.value.as_millis() as u64)
    };
    ProbeLimits {
        probe_timeout_ms: ms(sink, "probe_timeout"),
        start_period_ms: ms(sink, "start_period").unwrap_or(0),
        attempts: f
            .value("attempts")
            .and_then(|v| read::int(sink, v, "`attempts`", 1, u32::MAX as i64))
            .map(|a| a.value as u32),
    }
}

fn mount(sink: &mut Sink, y: &Yaml) -> Option<RawMount> {
    if let Some(text) = y.as_str() {
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, readonly) = match parts.as_slice() {
            [s, t] => (*s, *t, false),
            [s, t, "ro"] => (*s, *t, true),
            [s, t, "rw"] => (*s, *t, false),
            _ => {
                sink.error(
                    Some(y.span),
                    format!("`{text}` is not a mount like `src:/target[:ro]`"),
                );
                return None;
            }
        };
        return Some(RawMount {
            span: y.span,
            source: Sp::new(source.to_string(), y.span),
            target: Sp::new(target.to_string(), y.span),
            readonly,
        });
    }
    let f = read::fields(sink, y, "a mount", MOUNT_KEYS)?;
    let source =
        required(sink, &f, "source", "a mount").and_then(|v| read::string(sink, v, "`source`"));
    let target =
        required(sink, &f, "target", "a mount").and_then(|v| read::string(sink, v, "`target`"));
    let readonly = f
        .value("readonly")
        .and_then(|v| read::boolean(sink, v, "`readonly`"))
        .unwrap_or(false);
    Some(RawMount {
        span: y.span,
        source: source?,
        target: target?,
        readonly,
    })
}

fn private_dir(sink: &mut Sink, y: &Yaml) -> Option<RawPrivate> {
    if y.as_str().is_some() {
        return Some(RawPrivate {
            span: y.span,
            path: read::string(sink, y, "private directory")?,
            owner: None,
            mode: None,
        });
    }
    let f = read::fields(sink, y, "a private directory", PRIVATE_KEYS)?;
    let path = required(sink, &f, "path", "a private directory")
        .and_then(|v| read::string(sink, v, "`path`"))?;
    let owner = f
        .value("owner")
        .and_then(|v| read::string(sink, v, "`owner`"));
    let mode = f.value("mode").and_then(|v| {
        read::parsed(sink, v, "`mode`", |s| {
            u32::from_str_radix(s.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("`{s}` is not an octal mode like \"0755\""))
        })
    });
    Some(RawPrivate {
        span: y.span,
        path,
        owner,
        mode,
    })
}

fn limits(sink: &mut Sink, y: &Yaml, what: &str) -> RawLimits {
    let mut l = RawLimits::default();
    let Some(f) = read::fields(sink, y, &format!("`limits` of {what}"), LIMIT_KEYS) else {
        return l;
    };
    l.memory = f.value("memory").and_then(|v| {
        read::parsed(
            sink,
            v,
            &format!("`limits.memory` of {what}"),
            values::parse_size,
        )
    });
    l.cpu = f.value("cpu").and_then(|v| {
        read::parsed(sink, v, &format!("`limits.cpu` of {what}"), |s| {
            s.parse::<f64>()
                .ok()
                .filter(|c| c.is_finite() && *c > 0.0 && *c <= 4096.0)
                .ok_or_else(|| format!("`{s}` is not a number of CPUs like 0.5 or 2"))
        })
    });
    l.pids = f
        .value("pids")
        .and_then(|v| read::int(sink, v, &format!("`limits.pids` of {what}"), 1, 4_194_304))
        .map(|p| Sp::new(p.value as u64, p.span));
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_equals_or_nul_are_refused_and_plain_ones_pass() {
        assert_eq!(bad_env_key("A=B"), Some("holds `=`"));
        assert_eq!(bad_env_key("A\0B"), Some("holds a NUL byte"));
        assert_eq!(bad_env_key(""), Some("is empty"));
        assert_eq!(bad_env_key("SITE_1"), None);
        assert_eq!(bad_env_value("a\0"), Some("holds a NUL byte"));
        assert_eq!(bad_env_value("a=b c"), None);
    }

    #[test]
    fn users_are_a_name_or_number_with_an_optional_group() {
        assert_eq!(bad_user("frr"), None);
        assert_eq!(bad_user("100:101"), None);
        assert_eq!(bad_user("frr:frrvty"), None);
        assert_eq!(bad_user("a:b:c"), Some("has more than one `:`"));
        assert_eq!(bad_user(":b"), Some("names no user or no group"));
        assert_eq!(bad_user("a:"), Some("names no user or no group"));
        assert_eq!(bad_user(""), Some("names no user or no group"));
        assert_eq!(
            bad_user("a b"),
            Some("holds a space, or a control or format character")
        );
        assert_eq!(
            bad_user("fr\u{202e}r"),
            Some("holds a space, or a control or format character")
        );
    }
}
