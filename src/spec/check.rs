//! Reading the `tests:` section: reach, tcp, route, path and cmd checks.

use crate::diag::Sink;
use crate::kinds::*;
use crate::spec::node::{command, required, route_dest};
use crate::spec::raw::*;
use crate::spec::read::{self, Fields};
use crate::spec::values;
use crate::spec::yaml::{Kind, Yaml};

/// Probes: polled until they hold.
const CHECK_KINDS: &[&str] = &["reach", "tcp", "route", "path", "cmd"];
/// Scenario steps: done once, in order, between the checks.
const ACTION_KINDS: &[&str] = &[
    "link_down",
    "link_up",
    "impair",
    "node_stop",
    "node_start",
    "node_restart",
    "sleep",
];
const LINK_ACTION_KEYS: &[&str] = &["link", "one_side", "name"];
const NODE_ACTION_KEYS: &[&str] = &["node", "name"];
const COMMON: &[&str] = &["name", "timeout", "interval"];
const REACH_KEYS: &[&str] = &["from", "to", "family", "expect", "size", "df", "ttl"];
const TCP_KEYS: &[&str] = &["from", "to", "expect"];
const ROUTE_KEYS: &[&str] = &["node", "to", "via", "dev", "table", "vrf", "expect"];
const PATH_KEYS: &[&str] = &["from", "to", "hops", "family"];
const CMD_KEYS: &[&str] = &[
    "node",
    "run",
    "exit",
    "expect",
    "stdout",
    "stderr",
    "expect_json",
    "expect_json_file",
    "json_exact",
];

pub fn check(sink: &mut Sink, y: &Yaml) -> Option<RawCheck> {
    let kinds: Vec<&str> = CHECK_KINDS.iter().chain(ACTION_KINDS).copied().collect();
    let f = read::fields(sink, y, "a check", &kinds)?;
    let present: Vec<&str> = kinds.iter().copied().filter(|k| f.has(k)).collect();
    let [kind] = present.as_slice() else {
        sink.error(
            Some(y.span),
            format!(
                "a check needs exactly one of {}, found {}",
                kinds.join(", "),
                if present.is_empty() {
                    "none".to_string()
                } else {
                    present.join(" and ")
                }
            ),
        )
        .hint("for example `- reach: { from: all, to: all }` or `- link_down: r1:eth1`");
        return None;
    };
    let body_y = f.get(kind)?;
    if ACTION_KINDS.contains(kind) {
        return action(sink, kind, body_y, y);
    }
    let what = format!("`{kind}` check");
    let own: &[&str] = match *kind {
        "reach" => REACH_KEYS,
        "tcp" => TCP_KEYS,
        "route" => ROUTE_KEYS,
        "path" => PATH_KEYS,
        _ => CMD_KEYS,
    };
    let keys: Vec<&str> = own.iter().chain(COMMON).copied().collect();
    let b = read::fields(sink, body_y, &what, &keys)?;
    let body = match *kind {
        "reach" => reach(sink, &b, &what),
        "tcp" => tcp(sink, &b, &what),
        "route" => route(sink, &b, &what),
        "path" => path(sink, &b, &what),
        _ => cmd(sink, &b, &what),
    }?;
    let dur = |sink: &mut Sink, k: &str| {
        b.value(k)
            .and_then(|v| read::parsed(sink, v, &format!("`{k}`"), values::parse_duration))
    };
    Some(RawCheck {
        span: y.span,
        name: b
            .value("name")
            .and_then(|v| read::string(sink, v, "check `name`")),
        timeout: dur(sink, "timeout"),
        interval: dur(sink, "interval"),
        body,
    })
}

fn expect_ok(sink: &mut Sink, f: &Fields, what: &str) -> bool {
    f.value("expect")
        .and_then(|v| {
            read::parsed(sink, v, &format!("`expect` of {what}"), |s| match s {
                "ok" | "pass" | "success" => Ok(true),
                "fail" => Ok(false),
                _ => Err(format!("`{s}` is not `ok` or `fail`")),
            })
        })
        .map(|e| e.value)
        .unwrap_or(true)
}

fn family(sink: &mut Sink, f: &Fields, default: Family) -> Family {
    f.value("family")
        .and_then(|v| {
            read::parsed(sink, v, "`family`", |s| match s {
                "ipv4" | "4" => Ok(Family::Ipv4),
                "ipv6" | "6" => Ok(Family::Ipv6),
                "both" | "all" => Ok(Family::Both),
                _ => Err(format!("`{s}` is not ipv4, ipv6 or both")),
            })
        })
        .map(|f| f.value)
        .unwrap_or(default)
}

/// `all`, a name, a list of names, or a label map (`{ role: core }`).
fn selector(sink: &mut Sink, y: &Yaml, what: &str) -> Option<Sp<RawSelector>> {
    let sel = match &y.kind {
        Kind::Scalar { text, .. } if text == "all" => RawSelector::All,
        Kind::Scalar { .. } => RawSelector::One(read::string(sink, y, what)?),
        Kind::Map(_) => RawSelector::Labels(read::string_map(sink, y, "label selector")),
        _ => RawSelector::Names(read::strings(sink, y, what)),
    };
    Some(Sp::new(sel, y.span))
}

fn reach(sink: &mut Sink, f: &Fields, what: &str) -> Option<RawCheckBody> {
    let from = required(sink, f, "from", what).and_then(|v| selector(sink, v, "node name"));
    let to = required(sink, f, "to", what).and_then(|v| selector(sink, v, "target"));
    let family = family(sink, f, Family::Both);
    Some(RawCheckBody::Reach {
        echo: echo(sink, f, family),
        family,
        expect_ok: expect_ok(sink, f, what),
        from: from?,
        to: to?,
    })
}

/// `size`, `df` and `ttl` of a reach check, as `ping -s`, `-M` and `-t`: each checked
/// here, so a probe the kernel would refuse (or one whose option changes nothing) is a
/// located error rather than a check that fails for its own reasons.
fn echo(sink: &mut Sink, f: &Fields, family: Family) -> Echo {
    let (max, why) = if family == Family::Ipv6 {
        (
            Echo::MAX_SIZE_V6,
            "an IPv6 payload is at most 65,527 bytes (65,535 less the 8-byte ICMPv6 header)",
        )
    } else {
        (
            Echo::MAX_SIZE_V4,
            "an IPv4 packet is at most 65,535 bytes, so its payload at most 65,507 (less the 20-byte IP and 8-byte ICMP headers); `family: ipv6` allows 65,527",
        )
    };
    let size = whole(sink, f, "size", u64::from(max), &|sink, n| {
        sink.error(
            Some(n.span),
            format!(
                "`size: {}` is larger than one echo request can carry ({max})",
                n.value
            ),
        )
        .hint(format!(
            "{why}; `size` counts the payload bytes, as `ping -s` does"
        ));
    });
    let ttl = whole(sink, f, "ttl", 255, &|sink, t| {
        sink.error(
            Some(t.span),
            format!(
                "`ttl: {}` is past 255, the most an IP header holds",
                t.value
            ),
        )
        .hint("the TTL (IPv6: hop limit) is one byte; without `ttl` probes leave with 255");
    });
    let ttl = ttl.filter(|t| {
        if *t > 0 {
            return true;
        }
        sink.error(
            f.value("ttl").map(|v| v.span),
            "`ttl: 0` expires before the probe leaves the sender",
        )
        .hint(
            "`ttl: 1` reaches the sender's neighbours only: the first router answers time exceeded",
        );
        false
    });
    let df = f.value("df").and_then(|v| {
        let b = read::string(sink, v, "`df`")?;
        match b.value.as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            other => {
                sink.error(Some(b.span), format!("`df: {other}` is not true or false"))
                    .hint("`df: true` forbids fragmenting the probe (IPv4 don't-fragment, as `ping -M probe`); `df: false` lets it be fragmented");
                None
            }
        }
    });
    if f.value("df").is_some() && f.value("size").is_none() {
        sink.error(
            f.key_span("df"),
            format!(
                "`df` changes nothing without `size`: the default {}-byte probe fits every link",
                Echo::DEFAULT_SIZE
            ),
        )
        .hint("add `size:` (payload bytes: 1472 fills a 1500-byte MTU over IPv4, 1452 over IPv6)");
    }
    Echo {
        size: size.map(|n| n as u16),
        df,
        ttl: ttl.map(|t| t as u8),
    }
}

/// A whole number under `key`, at most `max`; `too_big` words the error past it.
fn whole(
    sink: &mut Sink,
    f: &Fields,
    key: &str,
    max: u64,
    too_big: &dyn Fn(&mut Sink, &Sp<u64>),
) -> Option<u64> {
    let v = read::string(sink, f.value(key)?, &format!("`{key}`"))?;
    let Ok(n) = v.value.parse::<u64>() else {
        sink.error(
            Some(v.span),
            format!("`{key}: {}` is not a whole number", v.value),
        )
        .hint(if key == "size" {
            "`size` is the echo payload in bytes, as `ping -s`: 1472 fills a 1500-byte MTU over IPv4"
        } else {
            "`ttl` is the number of routers the probe may cross, 1 to 255, as `ping -t`"
        });
        return None;
    };
    if n > max {
        too_big(sink, &Sp::new(n, v.span));
        return None;
    }
    Some(n)
}

fn tcp(sink: &mut Sink, f: &Fields, what: &str) -> Option<RawCheckBody> {
    let from = required(sink, f, "from", what).and_then(|v| read::string(sink, v, "`from`"));
    let to = required(sink, f, "to", what).and_then(|v| read::string(sink, v, "`to`"))?;
    let Some((host, port)) = to.value.rsplit_once(':') else {
        sink.error(Some(to.span), format!("`{}` is not `host:port`", to.value))
            .hint("for example `to: web:80` or `to: \"[fd00::1]:443\"`");
        return None;
    };
    let Some(port) = port.parse::<u16>().ok().filter(|p| *p > 0) else {
        sink.error(
            Some(to.span),
            format!("`{port}` is not a TCP port (1-65535)"),
        );
        return None;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Some(RawCheckBody::Tcp {
        expect_ok: expect_ok(sink, f, what),
        from: from?,
        host: Sp::new(host, to.span),
        port,
    })
}

fn route(sink: &mut Sink, f: &Fields, what: &str) -> Option<RawCheckBody> {
    let node = required(sink, f, "node", what).and_then(|v| selector(sink, v, "`node`"));
    let to = required(sink, f, "to", what)
        .and_then(|v| read::parsed(sink, v, "route destination", route_dest));
    let absent = f
        .value("expect")
        .and_then(|v| {
            read::parsed(sink, v, &format!("`expect` of {what}"), |s| match s {
                "present" | "ok" => Ok(false),
                "absent" => Ok(true),
                _ => Err(format!("`{s}` is not `present` or `absent`")),
            })
        })
        .is_some_and(|a| a.value);
    let via = f
        .value("via")
        .map(|v| read::strings(sink, v, "next hop"))
        .unwrap_or_default();
    let dev = f.value("dev").and_then(|v| read::string(sink, v, "`dev`"));
    if absent && (!via.is_empty() || dev.is_some()) {
        sink.error(
            f.key_span("expect"),
            "`expect: absent` means no route to `to` at all, so it takes no `via` or `dev`",
        )
        .hint("to check that a route moved, expect it present with its new `via`");
    }
    let vrf = f.value("vrf").and_then(|v| read::string(sink, v, "`vrf`"));
    if vrf.is_some() && f.value("table").is_some() {
        sink.error(
            f.key_span("vrf"),
            "`vrf` and `table` both choose the table to read; give one",
        )
        .hint("`vrf: NAME` reads the table of the node's VRF device NAME");
    }
    Some(RawCheckBody::Route {
        table: f
            .value("table")
            .and_then(|v| read::parsed(sink, v, "`table`", RouteTable::parse)),
        vrf,
        via,
        dev,
        absent,
        node: node?,
        to: to?,
    })
}

fn path(sink: &mut Sink, f: &Fields, what: &str) -> Option<RawCheckBody> {
    let from = required(sink, f, "from", what).and_then(|v| read::string(sink, v, "`from`"));
    let to = required(sink, f, "to", what).and_then(|v| read::string(sink, v, "`to`"));
    let hops = required(sink, f, "hops", what).map(|v| read::strings(sink, v, "hop"));
    Some(RawCheckBody::Path {
        family: family(sink, f, Family::Ipv4),
        from: from?,
        to: to?,
        hops: hops?,
    })
}

fn cmd(sink: &mut Sink, f: &Fields, what: &str) -> Option<RawCheckBody> {
    let node = required(sink, f, "node", what).and_then(|v| selector(sink, v, "`node`"));
    let run = required(sink, f, "run", what).and_then(|v| command(sink, v, "`run`"));
    let exit = f
        .value("exit")
        .and_then(|v| read::int(sink, v, "`exit`", 0, 255))
        .map(|e| e.value as i32);
    let fails = !expect_ok(sink, f, what);
    if fails && exit.is_some() {
        sink.error(
            f.key_span("expect"),
            "`expect: fail` means any non-zero exit status, so it takes no `exit`",
        )
        .hint("keep `exit: N` alone to want one status");
    }
    let exit = match (fails, exit) {
        (true, _) => Exit::Failure,
        (false, code) => Exit::Code(code.unwrap_or(0)),
    };
    Some(RawCheckBody::Cmd {
        stdout: regex(sink, f, "stdout"),
        stderr: regex(sink, f, "stderr"),
        json: json_expect(sink, f),
        node: node?,
        run: run?,
        exit,
    })
}

/// A regex key of a `cmd` check, compiled once here so a bad one is a located error.
/// A null (`stdout: ~`) means no check, like every other optional key.
fn regex(sink: &mut Sink, f: &Fields, key: &str) -> Option<Sp<String>> {
    let re = f
        .value(key)
        .and_then(|v| read::string(sink, v, &format!("`{key}`")))?;
    if let Err(e) = regex::Regex::new(&re.value) {
        sink.error(
            Some(re.span),
            format!("`{key}` is not a valid regular expression: {e}"),
        );
        return None;
    }
    Some(re)
}

/// `expect_json` or `expect_json_file`, with `json_exact`. A null means no JSON check
/// (so a `<<: *anchor` merge can drop an inherited one), never "stdout is `null`".
fn json_expect(sink: &mut Sink, f: &Fields) -> Option<RawJsonExpect> {
    let inline = f.value("expect_json");
    let file = f
        .value("expect_json_file")
        .and_then(|v| read::string(sink, v, "`expect_json_file`"));
    let exact = f
        .value("json_exact")
        .and_then(|v| read::boolean(sink, v, "`json_exact`"));
    let source = match (inline, file) {
        (Some(_), Some(file)) => {
            sink.error(
                Some(file.span),
                "a `cmd` check takes `expect_json` or `expect_json_file`, not both",
            );
            return None;
        }
        (Some(v), None) => JsonSource::Inline(v.to_json()),
        (None, Some(file)) if file.value.is_empty() || file.value.contains('\0') => {
            sink.error(Some(file.span), "`expect_json_file` is empty");
            return None;
        }
        (None, Some(file)) => JsonSource::File(file),
        (None, None) => {
            if exact.is_some() {
                sink.error(
                    f.key_span("json_exact"),
                    "`json_exact` needs `expect_json` or `expect_json_file`",
                );
            }
            return None;
        }
    };
    Some(RawJsonExpect {
        source,
        exact: exact.unwrap_or(false),
    })
}

/// A scenario step. The short forms take the target as a plain value (`link_down: r1:eth1`,
/// `node_restart: r2`, `sleep: 2s`); the long forms are mappings that may add `name`.
fn action(sink: &mut Sink, kind: &str, body: &Yaml, whole: &Yaml) -> Option<RawCheck> {
    let what = format!("`{kind}` step");
    let scalar = matches!(body.kind, Kind::Scalar { .. });
    let mut name = None;
    let action = match kind {
        "sleep" => {
            let d = read::parsed(sink, body, &what, values::parse_duration)?;
            RawAction::Sleep(d.value)
        }
        "node_stop" | "node_start" | "node_restart" => {
            let node = if scalar {
                read::string(sink, body, &what)
            } else {
                let f = read::fields(sink, body, &what, NODE_ACTION_KEYS)?;
                name = f
                    .value("name")
                    .and_then(|v| read::string(sink, v, "step `name`"));
                required(sink, &f, "node", &what).and_then(|v| read::string(sink, v, "`node`"))
            }?;
            let action = match kind {
                "node_stop" => NodeAction::Stop,
                "node_start" => NodeAction::Start,
                _ => NodeAction::Restart,
            };
            RawAction::Node { node, action }
        }
        "link_down" | "link_up" => {
            let (link, one_side) = if scalar {
                (read::string(sink, body, &what), false)
            } else {
                let f = read::fields(sink, body, &what, LINK_ACTION_KEYS)?;
                name = f
                    .value("name")
                    .and_then(|v| read::string(sink, v, "step `name`"));
                let one = f
                    .value("one_side")
                    .and_then(|v| read::boolean(sink, v, "`one_side`"))
                    .unwrap_or(false);
                (
                    required(sink, &f, "link", &what).and_then(|v| read::string(sink, v, "`link`")),
                    one,
                )
            };
            RawAction::Link {
                link: link_target(sink, link?)?,
                up: kind == "link_up",
                one_side,
            }
        }
        _ => {
            let keys: Vec<&str> = ["link", "one_side", "clear", "name"]
                .into_iter()
                .chain(crate::spec::link::IMPAIR_KEYS.iter().copied())
                .collect();
            let f = read::fields(sink, body, &what, &keys)?;
            name = f
                .value("name")
                .and_then(|v| read::string(sink, v, "step `name`"));
            let link = required(sink, &f, "link", &what)
                .and_then(|v| read::string(sink, v, "`link`"))
                .and_then(|l| link_target(sink, l));
            let one_side = f
                .value("one_side")
                .and_then(|v| read::boolean(sink, v, "`one_side`"))
                .unwrap_or(false);
            let clear = f
                .value("clear")
                .and_then(|v| read::boolean(sink, v, "`clear`"))
                .unwrap_or(false);
            let sets = crate::spec::link::IMPAIR_KEYS.iter().any(|k| f.has(k));
            let impair = match (clear, sets) {
                (true, true) => {
                    sink.error(
                        Some(body.span),
                        "an `impair` step either sets values or has `clear: true`, not both",
                    );
                    return None;
                }
                (true, false) => None,
                (false, _) => Some(crate::spec::link::impair(sink, &only_impair_keys(body))?),
            };
            RawAction::Impair {
                link: link?,
                impair,
                one_side,
            }
        }
    };
    Some(RawCheck {
        span: whole.span,
        name,
        timeout: None,
        interval: None,
        body: RawCheckBody::Action(action),
    })
}

/// `node:iface`, checked for its shape here and for its names when the model is built.
fn link_target(sink: &mut Sink, link: Sp<String>) -> Option<Sp<String>> {
    match link.value.split_once(':') {
        Some((n, i)) if !n.is_empty() && !i.is_empty() && !i.contains(':') => Some(link),
        _ => {
            sink.error(
                Some(link.span),
                format!("`{}` is not NODE:IFACE", link.value),
            )
            .hint("for example `link_down: r1:eth1`, or `link_down: s1:r1` for the port of bridge s1 to r1");
            None
        }
    }
}

/// The impairment keys of an `impair` step, as the link reader expects them.
fn only_impair_keys(y: &Yaml) -> Yaml {
    let Kind::Map(entries) = &y.kind else {
        return y.clone();
    };
    Yaml {
        kind: Kind::Map(
            entries
                .iter()
                .filter(|(k, _)| {
                    k.as_str()
                        .is_some_and(|k| crate::spec::link::IMPAIR_KEYS.contains(&k))
                })
                .cloned()
                .collect(),
        ),
        span: y.span,
    }
}
