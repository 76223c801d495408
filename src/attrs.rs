//! Process attributes a topology asks for (`rlimits:`, `nice:`, `oom_score_adj:`,
//! `cpus:`, `ionice:`), per node as defaults for its processes and per process. Like
//! [`kinds`](crate::kinds), these values carry no source span and import nothing of the
//! crate: `spec` reads YAML into them, the plan carries them in each process's spec and a
//! node's init applies them (`node::fresh`) between fork and exec. Their serde form is the
//! plan's vocabulary.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A resource limit, by the name `ulimit`, Docker's `--ulimit` and `prlimit` give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

/// What a limit's number counts, which decides how it may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes: a size (`64M`) or a number.
    Bytes,
    Count,
    Seconds,
    Microseconds,
}

impl Resource {
    pub const ALL: [Resource; 16] = [
        Resource::As,
        Resource::Core,
        Resource::Cpu,
        Resource::Data,
        Resource::Fsize,
        Resource::Locks,
        Resource::Memlock,
        Resource::Msgqueue,
        Resource::Nice,
        Resource::Nofile,
        Resource::Nproc,
        Resource::Rss,
        Resource::Rtprio,
        Resource::Rttime,
        Resource::Sigpending,
        Resource::Stack,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Resource::As => "as",
            Resource::Core => "core",
            Resource::Cpu => "cpu",
            Resource::Data => "data",
            Resource::Fsize => "fsize",
            Resource::Locks => "locks",
            Resource::Memlock => "memlock",
            Resource::Msgqueue => "msgqueue",
            Resource::Nice => "nice",
            Resource::Nofile => "nofile",
            Resource::Nproc => "nproc",
            Resource::Rss => "rss",
            Resource::Rtprio => "rtprio",
            Resource::Rttime => "rttime",
            Resource::Sigpending => "sigpending",
            Resource::Stack => "stack",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Resource::As
            | Resource::Core
            | Resource::Data
            | Resource::Fsize
            | Resource::Memlock
            | Resource::Msgqueue
            | Resource::Rss
            | Resource::Stack => Unit::Bytes,
            Resource::Cpu => Unit::Seconds,
            Resource::Rttime => Unit::Microseconds,
            _ => Unit::Count,
        }
    }

    /// The kernel's number for it (`RLIMIT_*`).
    pub fn raw(self) -> u32 {
        match self {
            Resource::As => libc::RLIMIT_AS,
            Resource::Core => libc::RLIMIT_CORE,
            Resource::Cpu => libc::RLIMIT_CPU,
            Resource::Data => libc::RLIMIT_DATA,
            Resource::Fsize => libc::RLIMIT_FSIZE,
            Resource::Locks => libc::RLIMIT_LOCKS,
            Resource::Memlock => libc::RLIMIT_MEMLOCK,
            Resource::Msgqueue => libc::RLIMIT_MSGQUEUE,
            Resource::Nice => libc::RLIMIT_NICE,
            Resource::Nofile => libc::RLIMIT_NOFILE,
            Resource::Nproc => libc::RLIMIT_NPROC,
            Resource::Rss => libc::RLIMIT_RSS,
            Resource::Rtprio => libc::RLIMIT_RTPRIO,
            Resource::Rttime => libc::RLIMIT_RTTIME,
            Resource::Sigpending => libc::RLIMIT_SIGPENDING,
            Resource::Stack => libc::RLIMIT_STACK,
        }
    }
}

/// One bound of a limit: a number, or `unlimited` (the kernel's `RLIM_INFINITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bound(pub u64);

impl Bound {
    pub const UNLIMITED: Bound = Bound(libc::RLIM_INFINITY);

    pub fn is_unlimited(self) -> bool {
        self == Bound::UNLIMITED
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_unlimited() {
            f.write_str("unlimited")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Serialize for Bound {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_unlimited() {
            s.serialize_str("unlimited")
        } else {
            s.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Bound {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bound, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Bound(n)),
            Raw::S(s) if s == "unlimited" => Ok(Bound::UNLIMITED),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "`{s}` is not a number or `unlimited`"
            ))),
        }
    }
}

/// A soft and a hard limit (the soft one never above the hard one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub soft: Bound,
    pub hard: Bound,
}

/// A set of CPUs, as a sorted list of CPU numbers; written and shown as a CPU list
/// (`0-1,3`), the form of `taskset -c` and `/proc/PID/status`'s `Cpus_allowed_list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<u32>);

/// The highest CPU number a set may hold: what one `cpu_set_t` (1,024 bits) holds.
pub const MAX_CPU: u32 = 1023;

impl CpuList {
    pub fn parse(text: &str) -> Result<CpuList, String> {
        let mut cpus = Vec::new();
        for part in text.split(',').map(str::trim) {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let num = |s: &str| {
                s.parse::<u32>().map_err(|_| {
                    format!("`{text}` is not a CPU list like `0-1,3` (`{part}` is no CPU number or range)")
                })
            };
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(format!("the range `{part}` in `{text}` runs backwards"));
            }
            if b > MAX_CPU {
                return Err(format!(
                    "CPU {b} in `{text}` is above {MAX_CPU}, the highest CPU number nslab can set"
                ));
            }
            cpus.extend(a..=b);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList(cpus))
    }
}

impl std::fmt::Display for CpuList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

impl Serialize for CpuList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for CpuList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CpuList, D::Error> {
        CpuList::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An I/O scheduling class (`ionice -c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoClass {
    Realtime,
    BestEffort,
    Idle,
}

impl IoClass {
    /// The kernel's `IOPRIO_CLASS_*`.
    pub fn raw(self) -> u16 {
        match self {
            IoClass::Realtime => 1,
            IoClass::BestEffort => 2,
            IoClass::Idle => 3,
        }
    }
}

/// An I/O priority: a class and, for realtime and best-effort, a level 0 (first) to 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoNice {
    pub class: IoClass,
    #[serde(default)]
    pub level: u8,
}

impl IoNice {
    /// The value `ioprio_set` takes: the class in the top bits, the level below.
    pub fn raw(self) -> i32 {
        ((self.class.raw() as i32) << 13) | self.level as i32
    }
}

/// What a process starts with beyond nslab's defaults (see `node::fresh`); every field
/// unset by default. A process's own attributes are its node's with its own on top.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcAttrs {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rlimits: BTreeMap<Resource, Rlimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nice: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<CpuList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ionice: Option<IoNice>,
}

impl ProcAttrs {
    pub fn is_empty(&self) -> bool {
        *self == ProcAttrs::default()
    }

    /// `over` on top of `self`: each field `over` sets wins, limits resource by resource.
    pub fn with(&self, over: &ProcAttrs) -> ProcAttrs {
        let mut rlimits = self.rlimits.clone();
        rlimits.extend(over.rlimits.iter().map(|(r, l)| (*r, *l)));
        ProcAttrs {
            rlimits,
            nice: over.nice.or(self.nice),
            oom_score_adj: over.oom_score_adj.or(self.oom_score_adj),
            cpus: over.cpus.clone().or_else(|| self.cpus.clone()),
            ionice: over.ionice.or(self.ionice),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_read_and_print_as_taskset_writes_them() {
        let l = CpuList::parse("3, 0-1,1").unwrap();
        assert_eq!(l.0, vec![0, 1, 3]);
        assert_eq!(l.to_string(), "0-1,3");
        assert_eq!(CpuList::parse("5").unwrap().to_string(), "5");
        assert!(CpuList::parse("2-1").unwrap_err().contains("backwards"));
        assert!(CpuList::parse("0-1024").unwrap_err().contains("above 1023"));
        assert!(CpuList::parse("a").unwrap_err().contains("CPU list"));
        assert!(CpuList::parse("").is_err());
    }

    #[test]
    fn a_process_keeps_its_nodes_attributes_it_does_not_set() {
        let lim = |n| Rlimit {
            soft: Bound(n),
            hard: Bound(n),
        };
        let node = ProcAttrs {
            rlimits: [(Resource::Nofile, lim(4096)), (Resource::Core, lim(0))].into(),
            nice: Some(5),
            ..Default::default()
        };
        let own = ProcAttrs {
            rlimits: [(Resource::Nofile, lim(65536))].into(),
            oom_score_adj: Some(-500),
            ..Default::default()
        };
        let both = node.with(&own);
        assert_eq!(both.rlimits[&Resource::Nofile], lim(65536));
        assert_eq!(both.rlimits[&Resource::Core], lim(0));
        assert_eq!((both.nice, both.oom_score_adj), (Some(5), Some(-500)));
    }

    #[test]
    fn attributes_read_back_as_written() {
        let a = ProcAttrs {
            rlimits: [(
                Resource::Nofile,
                Rlimit {
                    soft: Bound(1024),
                    hard: Bound::UNLIMITED,
                },
            )]
            .into(),
            cpus: Some(CpuList(vec![0, 1, 3])),
            ionice: Some(IoNice {
                class: IoClass::BestEffort,
                level: 7,
            }),
            ..Default::default()
        };
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"{"rlimits":{"nofile":{"soft":1024,"hard":"unlimited"}},"cpus":"0-1,3","ionice":{"class":"best-effort","level":7}}"#
        );
        assert_eq!(serde_json::from_str::<ProcAttrs>(&json).unwrap(), a);
    }
}
