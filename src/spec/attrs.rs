//! Reading a node's or a process's attributes (`rlimits`, `nice`, `oom_score_adj`,
//! `cpus`, `ionice`): each value checked as the kernel will see it, at its position.
//! What only the host knows (its CPUs, `fs.nr_open`, the privilege to raise a hard
//! limit) is checked where the process starts (`node::fresh`).

use crate::attrs::{Bound, CpuList, IoClass, IoNice, Resource, Rlimit, Unit};
use crate::diag::{Sink, Span};
use crate::spec::raw::Sp;
use crate::spec::read::{self, Fields};
use crate::spec::values;
use crate::spec::yaml::{Kind, Yaml};

/// The attribute keys a node (for its processes) and a process share.
pub const ATTR_KEYS: &[&str] = &["rlimits", "nice", "oom_score_adj", "cpus", "ionice"];

const RLIMIT_KEYS: &[&str] = &["soft", "hard"];
const IONICE_KEYS: &[&str] = &["class", "level"];

/// The highest open-file limit any kernel takes (`fs.nr_open`'s own ceiling on 64-bit);
/// the host's `fs.nr_open` (1048576 unless raised) is checked when the process starts.
pub const NOFILE_MAX: u64 = 2_147_483_584;

/// Attributes as written, with where.
#[derive(Debug, Clone, Default)]
pub struct RawAttrs {
    pub rlimits: Vec<(Sp<Resource>, Rlimit)>,
    pub nice: Option<Sp<i32>>,
    pub oom_score_adj: Option<Sp<i32>>,
    pub cpus: Option<Sp<CpuList>>,
    pub ionice: Option<Sp<IoNice>>,
}

/// Where the attributes the host decides on were written, for errors about them at
/// `validate` (a CPU the host lacks, too many files, what a rootless lab cannot give).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AttrSpans {
    pub cpus: Option<Span>,
    pub nofile: Option<Span>,
    /// The first attribute key written.
    pub first: Option<Span>,
}

impl AttrSpans {
    /// These, falling back to `base`'s (a process's own over its node's).
    pub fn over(self, base: AttrSpans) -> AttrSpans {
        AttrSpans {
            cpus: self.cpus.or(base.cpus),
            nofile: self.nofile.or(base.nofile),
            first: self.first.or(base.first),
        }
    }
}

impl RawAttrs {
    /// Where its keys were written.
    pub fn spans(&self) -> AttrSpans {
        let first = [
            self.rlimits.first().map(|(r, _)| r.span),
            self.nice.as_ref().map(|n| n.span),
            self.oom_score_adj.as_ref().map(|o| o.span),
            self.cpus.as_ref().map(|c| c.span),
            self.ionice.as_ref().map(|i| i.span),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|s| (s.line, s.col));
        AttrSpans {
            cpus: self.cpus.as_ref().map(|c| c.span),
            nofile: self
                .rlimits
                .iter()
                .find(|(r, _)| r.value == Resource::Nofile)
                .map(|(r, _)| r.span),
            first,
        }
    }

    /// `over` on top of `self`, key by key, limits resource by resource.
    pub fn merged(&self, over: &RawAttrs) -> RawAttrs {
        let mut rlimits = self.rlimits.clone();
        for (r, l) in &over.rlimits {
            match rlimits.iter().position(|(x, _)| x.value == r.value) {
                Some(i) => rlimits[i] = (r.clone(), *l),
                None => rlimits.push((r.clone(), *l)),
            }
        }
        RawAttrs {
            rlimits,
            nice: over.nice.clone().or_else(|| self.nice.clone()),
            oom_score_adj: over
                .oom_score_adj
                .clone()
                .or_else(|| self.oom_score_adj.clone()),
            cpus: over.cpus.clone().or_else(|| self.cpus.clone()),
            ionice: over.ionice.clone().or_else(|| self.ionice.clone()),
        }
    }

    /// The values without their positions.
    pub fn values(&self) -> crate::attrs::ProcAttrs {
        crate::attrs::ProcAttrs {
            rlimits: self.rlimits.iter().map(|(r, l)| (r.value, *l)).collect(),
            nice: self.nice.as_ref().map(|n| n.value),
            oom_score_adj: self.oom_score_adj.as_ref().map(|o| o.value),
            cpus: self.cpus.as_ref().map(|c| c.value.clone()),
            ionice: self.ionice.as_ref().map(|i| i.value),
        }
    }
}

/// Reads the attribute keys of a node or process mapping whose keys were checked.
pub fn read(sink: &mut Sink, f: &Fields, what: &str) -> RawAttrs {
    let mut a = RawAttrs::default();
    if let Some(v) = f.value("rlimits") {
        a.rlimits = rlimits(sink, v, what);
    }
    a.nice = f.value("nice").and_then(|v| {
        let hint =
            "nice values run from -20 (most favoured) to 19 (least), as `nice -n` takes them";
        ranged(sink, v, &format!("`nice` of {what}"), (-20, 19), hint)
    });
    a.oom_score_adj = f.value("oom_score_adj").and_then(|v| {
        let hint =
            "the kernel takes -1000 (never killed for lack of memory) to 1000 (killed first)";
        ranged(
            sink,
            v,
            &format!("`oom_score_adj` of {what}"),
            (-1000, 1000),
            hint,
        )
    });
    a.cpus = f.value("cpus").and_then(|v| {
        read::parsed(sink, v, &format!("`cpus` of {what}"), |s| {
            let l = CpuList::parse(s)?;
            match l.0.is_empty() {
                true => Err("the list names no CPU".to_string()),
                false => Ok(l),
            }
        })
    });
    a.ionice = f.value("ionice").and_then(|v| ionice(sink, v, what));
    a
}

/// A whole number within `range`, else an error with `hint`.
fn ranged(sink: &mut Sink, y: &Yaml, what: &str, range: (i32, i32), hint: &str) -> Option<Sp<i32>> {
    let s = read::string(sink, y, what)?;
    match s.value.parse::<i32>() {
        Ok(n) if (range.0..=range.1).contains(&n) => Some(Sp::new(n, s.span)),
        Ok(n) => {
            sink.error(
                Some(s.span),
                format!("{what} is {n}, outside {} to {}", range.0, range.1),
            )
            .hint(hint);
            None
        }
        Err(_) => {
            sink.error(
                Some(s.span),
                format!("{what} is `{}`, not a whole number", s.value.escape_debug()),
            )
            .hint(hint);
            None
        }
    }
}

fn rlimits(sink: &mut Sink, y: &Yaml, what: &str) -> Vec<(Sp<Resource>, Rlimit)> {
    let names: Vec<&str> = Resource::ALL.iter().map(|r| r.name()).collect();
    let Some(f) = read::fields(sink, y, &format!("`rlimits` of {what}"), &names) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in Resource::ALL {
        let (Some(v), Some(at)) = (f.value(r.name()), f.key_span(r.name())) else {
            continue;
        };
        if let Some(l) = rlimit(sink, v, r, what) {
            out.push((Sp::new(r, at), l));
        }
    }
    out
}

/// One limit: a single value (soft and hard alike), or `{ soft, hard }`.
fn rlimit(sink: &mut Sink, y: &Yaml, r: Resource, what: &str) -> Option<Rlimit> {
    let label = format!("`rlimits.{}` of {what}", r.name());
    let l = match &y.kind {
        Kind::Map(_) => {
            let f = read::fields(sink, y, &label, RLIMIT_KEYS)?;
            let get = |sink: &mut Sink, k: &str| match f.value(k) {
                Some(v) => bound(sink, v, r, &format!("`{k}` of {label}")),
                None => {
                    sink.error(Some(y.span), format!("{label} has no `{k}:`"))
                        .hint(format!("write both, `{{ soft: 1024, hard: 65536 }}`, or one value for both, `{}: 65536`", r.name()));
                    None
                }
            };
            let (soft, hard) = (get(sink, "soft"), get(sink, "hard"));
            let l = Rlimit {
                soft: soft?,
                hard: hard?,
            };
            if l.soft > l.hard {
                sink.error(
                    Some(y.span),
                    format!("{label}: the soft limit {} is above the hard limit {}", l.soft, l.hard),
                )
                .hint("the kernel refuses a soft limit above the hard one; a process may raise its soft limit up to the hard one itself");
                return None;
            }
            l
        }
        _ => {
            let b = bound(sink, y, r, &label)?;
            Rlimit { soft: b, hard: b }
        }
    };
    if r == Resource::Nofile && l.hard.0 > NOFILE_MAX {
        sink.error(
            Some(y.span),
            format!("{label}: the kernel takes at most {NOFILE_MAX} open files, not {}", l.hard),
        )
        .hint("write a number such as 65536 or 1048576 (the host's `fs.nr_open` is the limit; `unlimited` is refused)");
        return None;
    }
    let ceiling = match r {
        Resource::Nice => Some(40),
        Resource::Rtprio => Some(99),
        _ => None,
    };
    if let Some(max) = ceiling
        && l.hard.0 > max
    {
        sink.error(
            Some(y.span),
            format!(
                "{label}: {} is above {max}, the highest value it can mean",
                l.hard
            ),
        )
        .hint(match r {
            Resource::Nice => {
                "`nice` as a limit is 20 minus the lowest nice value allowed (0 to 40)"
            }
            _ => "realtime priorities run from 1 to 99",
        });
        return None;
    }
    Some(l)
}

/// A number, `unlimited` (or -1, Docker's word for it), or for byte-counted limits a
/// size like `64M`.
fn bound(sink: &mut Sink, y: &Yaml, r: Resource, what: &str) -> Option<Bound> {
    read::parsed(sink, y, what, |s| match s {
        "unlimited" | "infinity" | "-1" => Ok(Bound::UNLIMITED),
        _ => match (s.parse::<u64>(), r.unit()) {
            (Ok(n), _) if n < libc::RLIM_INFINITY => Ok(Bound(n)),
            (Err(_), Unit::Bytes) => values::parse_size(s)
                .map(Bound)
                .map_err(|_| format!("`{s}` is not a size like 65536, 64M or `unlimited`")),
            _ => Err(format!("`{s}` is not a whole number or `unlimited`")),
        },
    })
    .map(|b| b.value)
}

/// `ionice: idle`, `ionice: best-effort` (level 4), or `{ class: best-effort, level: 7 }`.
fn ionice(sink: &mut Sink, y: &Yaml, what: &str) -> Option<Sp<IoNice>> {
    let label = format!("`ionice` of {what}");
    let class = |sink: &mut Sink, v: &Yaml| {
        read::parsed(sink, v, &label, |s| match s {
            "realtime" => Ok(IoClass::Realtime),
            "best-effort" => Ok(IoClass::BestEffort),
            "idle" => Ok(IoClass::Idle),
            _ => Err(format!("`{s}` is not one of realtime, best-effort, idle")),
        })
    };
    if !matches!(y.kind, Kind::Map(_)) {
        let c = class(sink, y)?;
        let level = if c.value == IoClass::Idle { 0 } else { 4 };
        return Some(Sp::new(
            IoNice {
                class: c.value,
                level,
            },
            y.span,
        ));
    }
    let f = read::fields(sink, y, &label, IONICE_KEYS)?;
    let Some(c) = f.value("class") else {
        sink.error(Some(y.span), format!("{label} has no `class:`"))
            .hint("for example `ionice: { class: best-effort, level: 7 }` or `ionice: idle`");
        return None;
    };
    let c = class(sink, c)?;
    let level = match f.value("level") {
        Some(_) if c.value == IoClass::Idle => {
            sink.error(
                f.key_span("level"),
                format!("{label}: the idle class has no level"),
            )
            .hint("write `ionice: idle`");
            return None;
        }
        Some(v) => read::int(sink, v, &format!("`ionice.level` of {what}"), 0, 7)?.value as u8,
        None if c.value == IoClass::Idle => 0,
        None => 4,
    };
    Some(Sp::new(
        IoNice {
            class: c.value,
            level,
        },
        y.span,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_processes_take_every_attribute_key() {
        for k in ATTR_KEYS {
            assert!(crate::spec::node::NODE_KEYS.contains(k), "node: {k}");
            assert!(crate::spec::node::PROCESS_KEYS.contains(k), "process: {k}");
        }
    }
}
