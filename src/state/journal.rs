//! The journal: one JSON record per line, appended with `write(2)` before the object it
//! names is created. A `kill -9` cannot lose a record that was written (the page cache
//! outlives the process), so `down` always knows everything `up` may have created.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StateError;
use crate::plan::Undo;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    /// `up` started.
    Begin {
        lab: String,
        pid: u32,
        version: String,
        started: u64,
        file: String,
    },
    /// An object about to be created, as the step that removes it.
    Object { undo: Undo },
    /// An object of an earlier `Object` record turned out to exist already (it is not the
    /// lab's): teardown must leave it alone.
    Disown { undo: Undo },
    /// `up` finished; the lab is complete.
    Up { finished: u64 },
    /// An `apply` started changing the running lab. Until its `Applied`, what it retired
    /// may still exist, so teardown still undoes it (a gone object is no error).
    Apply {
        pid: u32,
        started: u64,
        file: String,
    },
    /// An object an `apply` is about to remove, as the step that removes it.
    Retire { undo: Undo },
    /// The `apply` finished (or rolled back): the lab is what its stored plan says.
    Applied { finished: u64 },
}

pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Starts a new journal; fails if one exists (the lab is up or was interrupted).
    pub fn create(path: &Path) -> Result<Journal, StateError> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| StateError::io(path, e))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Continues a lab's journal (an `apply`); the file must exist and not be a link.
    pub fn open(path: &Path) -> Result<Journal, StateError> {
        let file = OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| StateError::io(path, e))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record with a single `write(2)` of a whole line.
    pub fn append(&mut self, r: &Record) -> Result<(), StateError> {
        let mut line = serde_json::to_vec(r).expect("records serialize");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| StateError::io(&self.path, e))
    }

    /// Reads every record. A torn last line (a crash mid-write) is ignored; a corrupt
    /// line elsewhere is an error.
    pub fn read(path: &Path) -> Result<Vec<Record>, StateError> {
        parse_lines(path, &super::files::read(path)?, "")
    }
}

/// The namespace an object record names, read straight from the text. nslab writes
/// namespace names without escapes, so the first `"netns":"..."` is exact.
fn netns_of(line: &str) -> Option<&str> {
    // As nslab writes it, the namespace follows the op; a substring search for it was
    // most of the time `down` spent reading a 1,000-node journal.
    let after_op = line
        .strip_prefix("{\"record\":\"object\",\"undo\":{\"op\":\"")
        .and_then(|r| r.split_once('"'))
        .and_then(|(_, r)| r.strip_prefix(",\"netns\":\""));
    let rest = match after_op {
        Some(r) => r,
        None => &line[line.find("\"netns\":\"")? + 9..],
    };
    rest.split_once('"').map(|(ns, _)| ns)
}

/// How the journal starts a `delete-netns` record.
const NETNS_OBJECT: &str = "{\"record\":\"object\",\"undo\":{\"op\":\"delete-netns\",";

/// The namespace of a `delete-netns` record exactly as the journal writes it, when its
/// name needs no JSON escapes (lab and node names never do); `None` sends the line to the
/// JSON parser.
fn plain_netns(line: &str) -> Option<&str> {
    let name = line
        .strip_prefix(NETNS_OBJECT)?
        .strip_prefix("\"netns\":\"")?
        .strip_suffix("\"}}")?;
    (!name.is_empty() && !name.contains(['"', '\\'])).then_some(name)
}

/// The objects teardown must undo, in creation order: every namespace, and whatever
/// lives outside the namespaces being deleted. Disowned objects are left out. Records of
/// objects inside a deleted namespace (most of a large journal) are recognised from
/// their text without being parsed.
pub fn teardown_objects(path: &Path) -> Result<Vec<Undo>, StateError> {
    let text = super::files::read(path)?;
    // (line number, text, whether it is a torn last line: a crash in mid-write).
    let lines = || {
        text.split_inclusive('\n').enumerate().map(|(i, l)| {
            let whole = l.strip_suffix('\n');
            let line = whole.unwrap_or(l);
            (
                i + 1,
                line.strip_suffix('\r').unwrap_or(line),
                whole.is_none(),
            )
        })
    };
    let parse = |n: usize, line: &str, torn: bool| -> Result<Option<Record>, StateError> {
        match serde_json::from_str::<Record>(line) {
            Ok(r) => Ok(Some(r)),
            Err(_) if torn => Ok(None),
            Err(e) => Err(StateError::Corrupt {
                path: path.to_path_buf(),
                line: n,
                msg: e.to_string(),
            }),
        }
    };
    let mut deleted: NameSet = NameSet::default();
    let mut disowned = Vec::new();
    let mut retired = Retirements::default();
    for (n, line, torn) in lines() {
        if line.starts_with("{\"record\":\"retire\"") || line.starts_with("{\"record\":\"appl") {
            if let Some(r) = parse(n, line, torn)? {
                retired.note(n, &r);
            }
        } else if line.starts_with(NETNS_OBJECT) {
            if let Some(ns) = netns_of(line) {
                deleted.insert(ns);
            }
        } else if line.starts_with("{\"record\":\"disown\"")
            && let Some(Record::Disown { undo }) = parse(n, line, torn)?
        {
            disowned.push(undo);
        }
    }
    for u in &disowned {
        if let Undo::DeleteNetns { netns } = u {
            deleted.remove(&**netns);
        }
    }
    let mut out = Vec::new();
    for (n, line, torn) in lines() {
        if !line.starts_with("{\"record\":\"object\"") {
            continue;
        }
        // Objects that die with their namespace are skipped unparsed; the rest (nodes,
        // cgroups) are always undone.
        let dies_with_netns = line
            .strip_prefix("{\"record\":\"object\",\"undo\":{\"op\":\"")
            .and_then(|r| r.split_once("\","))
            .is_some_and(|(op, _)| crate::plan::DIES_WITH_NETNS.contains(&op));
        if dies_with_netns && netns_of(line).is_some_and(|ns| deleted.contains(ns)) {
            continue;
        }
        let undo = match plain_netns(line) {
            // Most of a journal: namespaces, read without a JSON parser.
            Some(netns) => Undo::DeleteNetns {
                netns: netns.into(),
            },
            None => match parse(n, line, torn)? {
                Some(Record::Object { undo }) => undo,
                _ => continue,
            },
        };
        // (A record the text test could not read, checked again once parsed.)
        if undo.dies_with().is_some_and(|ns| deleted.contains(ns)) || disowned.contains(&undo) {
            continue;
        }
        out.push((n, undo));
    }
    Ok(retired.apply(out))
}

/// The retirements of finished `apply`s, by journal line. One of an unfinished `apply`
/// (killed, or its rollback incomplete) does not count: the object may still be there.
#[derive(Default)]
struct Retirements {
    pending: Vec<(usize, Undo)>,
    done: Vec<(usize, Undo)>,
}

impl Retirements {
    fn note(&mut self, line: usize, r: &Record) {
        match r {
            Record::Retire { undo } => self.pending.push((line, undo.clone())),
            Record::Applied { .. } => self.done.append(&mut self.pending),
            // An earlier apply cut short: the one starting now retires what it touched.
            Record::Apply { .. } => self.pending.clear(),
            _ => {}
        }
    }

    /// `objects` (line, undo) in creation order, without what a finished `apply` removed:
    /// each retirement takes the latest record of its object before it.
    fn apply(self, objects: Vec<(usize, Undo)>) -> Vec<Undo> {
        if self.done.is_empty() {
            return objects.into_iter().map(|(_, u)| u).collect();
        }
        let mut alive = vec![true; objects.len()];
        let mut by_undo: std::collections::HashMap<&Undo, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, (_, u)) in objects.iter().enumerate() {
            by_undo.entry(u).or_default().push(i);
        }
        for (line, undo) in &self.done {
            let Some(made) = by_undo.get(undo) else {
                continue;
            };
            if let Some(&i) = made
                .iter()
                .rev()
                .find(|&&i| objects[i].0 < *line && alive[i])
            {
                alive[i] = false;
            }
        }
        objects
            .into_iter()
            .zip(alive)
            .filter_map(|((_, u), a)| a.then_some(u))
            .collect()
    }
}

/// The namespaces a journal deletes, hashed with FNV-1a: a thousand names and three
/// lookups each in a 1,000-node journal, where SipHash's resistance to chosen keys buys
/// nothing (the journal is nslab's own).
type NameSet<'a> = std::collections::HashSet<&'a str, crate::model::names::FnvBuild>;

/// The objects a journal names, in creation order, minus the disowned ones and those a
/// finished `apply` removed.
pub fn objects(records: &[Record]) -> Vec<Undo> {
    let disowned: Vec<&Undo> = records
        .iter()
        .filter_map(|r| match r {
            Record::Disown { undo } => Some(undo),
            _ => None,
        })
        .collect();
    let mut retired = Retirements::default();
    let mut out = Vec::new();
    for (line, r) in records.iter().enumerate() {
        match r {
            Record::Object { undo } if !disowned.contains(&undo) => out.push((line, undo.clone())),
            _ => retired.note(line, r),
        }
    }
    retired.apply(out)
}

/// Parses the records of `text`, the part of the journal at `path` that follows
/// `before` (counted only to name a corrupt line). A torn last line (a crash mid-write)
/// is ignored; a corrupt line elsewhere is an error naming its line.
fn parse_lines(path: &Path, text: &str, before: &str) -> Result<Vec<Record>, StateError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => {
                return Err(StateError::Corrupt {
                    path: path.to_path_buf(),
                    line: before.lines().count() + i + 1,
                    msg: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// What `apply` needs from a journal, read without parsing what comes before the last
/// `apply` record (most of a large journal): whether `up` finished, and what an
/// unfinished `apply` touched, if the last one did not finish.
pub fn apply_state(path: &Path) -> Result<(bool, Option<Vec<Undo>>), StateError> {
    let text = super::files::read(path)?;
    let up = text.lines().any(|l| l.starts_with("{\"record\":\"up\""));
    const APPLY: &str = "{\"record\":\"apply\"";
    let start = match text.rfind(&format!("\n{APPLY}")) {
        Some(i) => i + 1,
        None if text.starts_with(APPLY) => 0,
        None => return Ok((up, None)),
    };
    let records = parse_lines(path, &text[start..], &text[..start])?;
    Ok((up, unfinished_apply(&records)))
}

/// The objects an unfinished `apply` (the journal's last, without its `Applied`) made or
/// retired: whether each exists is unknown.
pub fn unfinished_apply(records: &[Record]) -> Option<Vec<Undo>> {
    let start = records
        .iter()
        .rposition(|r| matches!(r, Record::Apply { .. }))?;
    let rest = &records[start + 1..];
    if rest.iter().any(|r| matches!(r, Record::Applied { .. })) {
        return None;
    }
    Some(
        rest.iter()
            .filter_map(|r| match r {
                Record::Object { undo } | Record::Retire { undo } => Some(undo.clone()),
                _ => None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_records_read_without_the_parser_match_the_parser() {
        for name in ["nslab.lab.r1", "nslab.a-b_c.x9"] {
            let rec = Record::Object {
                undo: Undo::DeleteNetns { netns: name.into() },
            };
            let line = serde_json::to_string(&rec).unwrap();
            assert_eq!(plain_netns(&line), Some(name), "{line}");
        }
        // Anything the fast path is not sure of goes to the parser.
        assert_eq!(
            plain_netns(r#"{"record":"object","undo":{"op":"delete-netns","netns":"a\"b"}}"#),
            None
        );
        assert_eq!(
            plain_netns(r#"{"record":"object","undo":{"op":"delete-netns","netns":"a","x":1}}"#),
            None
        );
        assert_eq!(
            plain_netns(r#"{"record":"object","undo":{"op":"delete-netns","netns":""}}"#),
            None
        );
    }

    #[test]
    fn netns_of_reads_every_undo_with_a_namespace_as_serde_writes_it() {
        let ns: crate::plan::Name = "nslab.t.r1".into();
        let undos = [
            Undo::DeleteNetns { netns: ns.clone() },
            Undo::DeleteLink {
                netns: ns.clone(),
                name: "eth0".into(),
                ifindex: 2,
            },
            Undo::DeleteAddress {
                netns: ns.clone(),
                ifindex: 2,
                address: "10.0.0.1/31".parse().unwrap(),
                link: None,
            },
            Undo::DeleteRoute {
                netns: ns.clone(),
                dst: "0.0.0.0/0".parse().unwrap(),
                gateways: vec!["10.0.0.0".parse().unwrap()],
            },
            Undo::ClearImpair {
                netns: ns.clone(),
                ifindex: 2,
            },
            Undo::StopNode {
                netns: ns.clone(),
                node: "r1".into(),
            },
        ];
        for undo in undos {
            let line = serde_json::to_string(&Record::Object { undo }).unwrap();
            assert_eq!(netns_of(&line), Some("nslab.t.r1"), "{line}");
        }
        // Fields in another order still work, by the slower search.
        assert_eq!(
            netns_of(r#"{"record":"object","undo":{"ifindex":2,"op":"delete-link","netns":"x"}}"#),
            Some("x")
        );
        assert_eq!(netns_of(r#"{"record":"object","undo":{"op":"x"}}"#), None);
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let dir = std::env::temp_dir().join(format!("nslab-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("j.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut j = Journal::create(&path).unwrap();
        assert!(
            Journal::create(&path).is_err(),
            "a second journal must not start"
        );
        let undo = Undo::DeleteNetns {
            netns: "nslab.t.a".into(),
        };
        j.append(&Record::Object { undo: undo.clone() }).unwrap();
        j.append(&Record::Up { finished: 1 }).unwrap();
        // A crash in the middle of a write leaves half a line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"record\":\"obj")
            .unwrap();
        let recs = Journal::read(&path).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(objects(&recs), vec![undo.clone()]);
        assert_eq!(teardown_objects(&path).unwrap(), vec![undo]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod teardown_tests {
    use super::*;

    #[test]
    fn a_finished_apply_removes_what_it_retired_and_an_unfinished_one_does_not() {
        let dir = std::env::temp_dir().join(format!("nslab-journal3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("j.jsonl");
        let _ = std::fs::remove_file(&path);
        let ns = |n: &str| Undo::DeleteNetns { netns: n.into() };
        let (a, b, c) = (ns("nslab.t.a"), ns("nslab.t.b"), ns("nslab.t.c"));
        let obj = |u: &Undo| Record::Object { undo: u.clone() };
        let retire = |u: &Undo| Record::Retire { undo: u.clone() };
        let apply = Record::Apply {
            pid: 1,
            started: 1,
            file: String::new(),
        };
        let mut j = Journal::create(&path).unwrap();
        for r in [obj(&a), obj(&b), Record::Up { finished: 1 }] {
            j.append(&r).unwrap();
        }
        // b is replaced (retired, then made again) and a removed, in a finished apply.
        for r in [apply.clone(), retire(&b), retire(&a), obj(&b)] {
            j.append(&r).unwrap();
        }
        j.append(&Record::Applied { finished: 2 }).unwrap();
        assert_eq!(teardown_objects(&path).unwrap(), vec![b.clone()]);
        assert_eq!(objects(&Journal::read(&path).unwrap()), vec![b.clone()]);
        assert_eq!(apply_state(&path).unwrap(), (true, None));
        // An apply killed after retiring b and making c: both may exist.
        for r in [apply, retire(&b), obj(&c)] {
            j.append(&r).unwrap();
        }
        assert_eq!(teardown_objects(&path).unwrap(), vec![b.clone(), c.clone()]);
        let recs = Journal::read(&path).unwrap();
        assert_eq!(unfinished_apply(&recs), Some(vec![b.clone(), c.clone()]));
        assert_eq!(apply_state(&path).unwrap(), (true, Some(vec![b, c])));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn objects_inside_deleted_namespaces_are_skipped_and_disowned_ones_kept() {
        let dir = std::env::temp_dir().join(format!("nslab-journal2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("j.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut j = Journal::create(&path).unwrap();
        let a = Undo::DeleteNetns {
            netns: "nslab.t.a".into(),
        };
        let b = Undo::DeleteNetns {
            netns: "nslab.t.b".into(),
        };
        let link = Undo::DeleteLink {
            netns: "nslab.t.a".into(),
            name: "eth0".into(),
            ifindex: 2,
        };
        let host = Undo::DeleteLink {
            netns: "host".into(),
            name: "x".into(),
            ifindex: 9,
        };
        for u in [&a, &b, &link, &host] {
            j.append(&Record::Object { undo: u.clone() }).unwrap();
        }
        j.append(&Record::Disown { undo: b.clone() }).unwrap();
        assert_eq!(teardown_objects(&path).unwrap(), vec![a, host]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
