//! The init's view of the processes below it, read from `/proc`: which ones a stop must
//! reach. A process group alone misses a daemon that called `setsid()`, and its parent
//! link is lost once its launcher dies (it is reparented to the init), so a retired
//! process's family is taken while its leader still lives and kept by identity (pid and
//! start time, so a reused pid is never signalled).

/// One line of the process table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    /// Exited, waiting to be reaped: nothing left to signal.
    pub zombie: bool,
    /// Start time in clock ticks since boot: with the pid, a process's identity.
    pub start: u64,
}

/// Parses `/proc/PID/stat` (the command name may hold spaces and parentheses).
pub fn parse_stat(pid: i32, stat: &str) -> Option<Entry> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Entry {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        zombie: f.first()? == &"Z",
        start: f.get(19)?.parse().ok()?,
    })
}

/// Every process this init's `/proc` shows.
pub fn scan() -> Vec<Entry> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(pid, &stat)
        })
        .collect()
}

/// The processes descending from `root` (not `root` itself), parents before children.
pub fn descendants(table: &[Entry], root: i32) -> Vec<Entry> {
    let mut found: Vec<Entry> = Vec::new();
    let mut parents = vec![root];
    let mut i = 0;
    while i < parents.len() {
        let parent = parents[i];
        for e in table.iter().filter(|e| e.ppid == parent && e.pid != root) {
            if !found.iter().any(|f| f.pid == e.pid) {
                found.push(*e);
                parents.push(e.pid);
            }
        }
        i += 1;
    }
    found
}

/// A process group the init created: its id is the pid of its first process, whose
/// start time tells that process apart from a later one given the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub id: i32,
    pub start: u64,
}

/// What belongs to the process that began `group`: the init's descendants in that group,
/// and everything descending from the group's leader while it lives (daemons that left
/// the group with `setsid()`). Nothing when the number now belongs to another process:
/// the group ended, and its id was given to someone else.
pub fn family(table: &[Entry], init: i32, group: Group) -> Vec<Entry> {
    let leader = table.iter().find(|e| e.pid == group.id);
    if leader.is_some_and(|l| l.start != group.start) {
        return Vec::new();
    }
    let mut out: Vec<Entry> = descendants(table, init)
        .into_iter()
        .filter(|e| e.pgrp == group.id)
        .collect();
    if leader.is_some_and(|l| !l.zombie) {
        for e in descendants(table, group.id) {
            if !out.iter().any(|o| o.pid == e.pid) {
                out.push(e);
            }
        }
    }
    out
}

/// The members of `known` that still run: same pid, same start time, not a zombie.
pub fn alive(table: &[Entry], known: &[Entry]) -> Vec<Entry> {
    known
        .iter()
        .filter(|k| {
            table
                .iter()
                .any(|e| e.pid == k.pid && e.start == k.start && !e.zombie)
        })
        .copied()
        .collect()
}

/// Sends `sig` to each entry, by pid.
pub fn signal(entries: &[Entry], sig: libc::c_int) {
    // Every entry is a process below this init, identified (pid and start time) by a
    // scan just before. A number that is no signal sends none (only checks).
    let sig = nix::sys::signal::Signal::try_from(sig).ok();
    for e in entries {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(e.pid), sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pid: i32, ppid: i32, pgrp: i32) -> Entry {
        Entry {
            pid,
            ppid,
            pgrp,
            zombie: false,
            start: pid as u64 * 10,
        }
    }

    #[test]
    fn stat_lines_parse_with_spaces_and_parentheses_in_the_name() {
        let stat =
            "42 (my (odd) prog) S 7 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10";
        let got = parse_stat(42, stat).unwrap();
        assert_eq!(
            got,
            Entry {
                pid: 42,
                ppid: 7,
                pgrp: 42,
                zombie: false,
                start: 12345
            }
        );
        let zombie = "43 (sh) Z 1 43 43 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 99 0 0";
        assert!(parse_stat(43, zombie).unwrap().zombie);
        assert_eq!(parse_stat(44, "44 (truncated"), None);
        assert_eq!(parse_stat(45, "45 (x) S 1"), None);
    }

    #[test]
    fn a_family_is_its_group_and_what_its_living_leader_started() {
        // init 1; process A (10, group 10) with a child in its group (11) and a daemon
        // that left the group (12, group 12) with a child (13); process B (20) apart;
        // a command entered from outside (30, parent 0) in group 10 is not the init's.
        let table = vec![
            e(1, 0, 1),
            e(10, 1, 10),
            e(11, 10, 10),
            e(12, 10, 12),
            e(13, 12, 12),
            e(20, 1, 20),
            e(30, 0, 10),
        ];
        let pids = |v: Vec<Entry>| {
            let mut p: Vec<i32> = v.iter().map(|e| e.pid).collect();
            p.sort();
            p
        };
        let g = |id: i32| Group {
            id,
            start: id as u64 * 10,
        };
        assert_eq!(pids(family(&table, 1, g(10))), vec![10, 11, 12, 13]);
        assert_eq!(pids(family(&table, 1, g(20))), vec![20]);
        // The leader gone, its group member and daemon were reparented to the init: only
        // the group is still known by the table; the daemon is known by identity.
        let after = vec![e(1, 0, 1), e(11, 1, 10), e(12, 1, 12), e(20, 1, 20)];
        assert_eq!(pids(family(&after, 1, g(10))), vec![11]);
        // The group ended and its number went to a new process leading its own group:
        // that one is not the old process's family.
        let reused_group = vec![
            e(1, 0, 1),
            Entry {
                start: 7,
                ..e(10, 1, 10)
            },
        ];
        assert!(family(&reused_group, 1, g(10)).is_empty());
        let known = family(&table, 1, g(10));
        assert_eq!(pids(alive(&after, &known)), vec![11, 12]);
        // A reused pid (another start time) or a zombie is not the one that was known.
        let reused = vec![
            Entry {
                start: 1,
                ..e(11, 1, 10)
            },
            Entry {
                zombie: true,
                ..e(12, 1, 12)
            },
        ];
        assert!(alive(&reused, &known).is_empty());
    }

    #[test]
    fn descendants_survive_a_cycle_in_a_racy_table() {
        // A table read while pids were reused can hold a loop; the walk still ends.
        let table = vec![e(5, 6, 5), e(6, 5, 5)];
        assert_eq!(descendants(&table, 5).len(), 1);
    }
}
