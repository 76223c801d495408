//! Emptying a node's memory cgroup before `down` removes it. A removed group that still
//! has pages charged lives on, invisible, as a dying memory cgroup in unreclaimable slab:
//! 100 up/down cycles of a limited node grew SUnreclaim by about 51 kB a cycle.

use std::path::Path;
use std::time::{Duration, Instant};

/// How long a group's dirty page cache may take to be written back before the group is
/// removed anyway (a dying group is a leak, a `down` that hangs is worse). Reclaim cannot
/// drop a dirty page, only wake the flusher, which writes the whole host's backlog
/// oldest first: with ~1 GB dirty on a busy host the node's last writes wait seconds.
const WRITEBACK_WAIT: Duration = Duration::from_secs(10);

/// The control that reclaims a group's memory and the `memory.stat` keys of its pages
/// that reclaim cannot drop yet (dirty, or being written back).
struct Controls {
    reclaim: &'static str,
    unclean: [&'static str; 2],
}

const V1: Controls = Controls {
    reclaim: "memory.force_empty",
    unclean: ["dirty", "writeback"],
};
const V2: Controls = Controls {
    reclaim: "memory.reclaim",
    unclean: ["file_dirty", "file_writeback"],
};

/// Gives back the memory still charged to a group whose tasks are gone (page cache it
/// read or wrote, kernel objects), so the kernel can free the group when it is removed.
/// Returns whether the group is done with (no memory controller, or emptied); false
/// while it still has a task (a task would charge pages again, and v1's `force_empty`
/// succeeds regardless). Neither control fails while dirty pages stay charged
/// (`force_empty` gives up after its retries and returns success), so this reclaims again
/// until a pass started with none dirty or under writeback, for at most
/// [`WRITEBACK_WAIT`].
pub(super) fn empty(dir: &Path) -> bool {
    let Some(c) = [V1, V2].into_iter().find(|c| dir.join(c.reclaim).exists()) else {
        return true;
    };
    if has_tasks(dir) {
        return false;
    }
    let deadline = Instant::now() + WRITEBACK_WAIT;
    loop {
        let unclean = unclean_bytes(dir, &c);
        reclaim(dir, &c);
        if unclean == 0 || Instant::now() >= deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn has_tasks(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
}

/// One reclaim of everything charged to the group. A failed write is left to the next
/// pass and, in the end, to the dying group it leaves: removal goes ahead regardless.
fn reclaim(dir: &Path, c: &Controls) {
    let control = dir.join(c.reclaim);
    if c.reclaim == V1.reclaim {
        let _ = std::fs::write(&control, "0");
        return;
    }
    // EAGAIN when less than asked could be reclaimed: a second try finds what is left.
    for _ in 0..2 {
        let current = std::fs::read_to_string(dir.join("memory.current")).unwrap_or_default();
        match current.trim().parse::<u64>() {
            Ok(0) | Err(_) => break,
            Ok(bytes) => {
                let _ = std::fs::write(&control, bytes.to_string());
            }
        }
    }
}

/// Bytes of the group's page cache that are dirty or under writeback (0 if unreadable).
fn unclean_bytes(dir: &Path, c: &Controls) -> u64 {
    let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
    stat_sum(&stat, &c.unclean)
}

/// The sum of `keys`' values in a `memory.stat` text (`key value` lines).
fn stat_sum(stat: &str, keys: &[&str]) -> u64 {
    stat.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| keys.contains(k))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_without_a_memory_controller_is_done_with() {
        let dir = std::env::temp_dir().join(format!("nslab-cg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(empty(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unclean_pages_are_read_from_the_groups_own_counts() {
        // v1 lists the hierarchical totals too (`total_dirty`): a node's group has no
        // children, and its own counts are what reclaim of it can drop.
        let v1 = "cache 8478720\ndirty 8388608\nwriteback 4096\ntotal_dirty 99\n";
        assert_eq!(stat_sum(v1, &V1.unclean), 8392704);
        let v2 = "file 8478720\nfile_dirty 8192\nfile_writeback 0\nfile_mapped 4096\n";
        assert_eq!(stat_sum(v2, &V2.unclean), 8192);
        assert_eq!(stat_sum("anon 4096\n", &V2.unclean), 0);
    }
}
