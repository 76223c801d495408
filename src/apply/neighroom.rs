//! Room in the host's neighbour table for a lab about to come up.
//!
//! The table is one per host, and a lab's entries leave it only as the kernel frees the
//! lab's namespaces, on its own workqueue after `down` has returned. Measured here, a
//! 30-host bridge (870 entries under the default limit of 1,024) taken down by `nslab
//! test` kept them for another 30 to 130 ms; an 18-host lab (306 entries) started at once
//! came up in 40 ms, its first ARP exchanges filled the table to the limit, and the kernel
//! refused 152 new entries (`table_fulls` in `/proc/net/stat/arp_cache`, "neighbor table
//! overflow"): its all-pairs check passed only on a retry. So `up` waits, before its
//! steps, while the table holds too many entries for the lab and is shrinking. A table
//! that holds still (other labs running beside this one) is not waited for: `up` warns.

use std::time::{Duration, Instant};

use crate::model::Topology;
use crate::preflight::neigh;

/// How often the table's count is read while `up` waits.
const POLL: Duration = Duration::from_millis(10);
/// How long a count that has stopped falling is watched before `up` goes on: the kernel
/// may take a while before it starts freeing a namespace (130 ms measured on a loaded
/// 2-CPU host), and a count that has not moved for this long is other labs' to keep.
const QUIET: Duration = Duration::from_millis(500);
/// The longest `up` waits in all, however the count moves.
const MOST: Duration = Duration::from_secs(5);

/// One family the lab needs room in: its estimate and the host's limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Need {
    pub(super) v6: bool,
    pub(super) need: u64,
    pub(super) limit: u64,
}

/// Waits until the host's neighbour tables have room for the lab's estimate (see the
/// module's doc); returns a warning for each family still short of room. Costs two file
/// reads a family when there is room. Blocks: an async caller runs it in `block_in_place`.
pub(super) fn make_room(t: &Topology) -> Vec<String> {
    let needs = needs(t, |v6| neigh::host_limit(v6).map(|l| l as u64));
    wait(&needs, neigh::in_table, sleeping(), room_warning)
}

/// The clock [`wait`] polls with: sleeps one [`POLL`], returns the time since the start.
pub(super) fn sleeping() -> impl FnMut() -> Duration {
    let start = Instant::now();
    move || {
        std::thread::sleep(POLL);
        start.elapsed()
    }
}

/// The families the lab has entries in, with the host's limit. A lab whose estimate alone
/// passes the limit is warned about at preflight (waiting gives it no room): left out.
fn needs(t: &Topology, limit: impl Fn(bool) -> Option<u64>) -> Vec<Need> {
    [false, true]
        .into_iter()
        .filter_map(|v6| {
            let need = neigh::entries(t, v6) as u64;
            let limit = limit(v6)?;
            (need > 0 && need <= limit).then_some(Need { v6, need, limit })
        })
        .collect()
}

/// Polls `count(v6)` until every family's count plus its need fits its limit, or the
/// counts have not fallen for [`QUIET`], or [`MOST`] has passed. `tick` waits one poll and
/// returns the time since the start. A count the kernel does not show counts as room.
/// Returns what `say` makes of each family still short of room, with its count.
pub(super) fn wait(
    needs: &[Need],
    mut count: impl FnMut(bool) -> Option<u64>,
    mut tick: impl FnMut() -> Duration,
    say: impl Fn(&Need, u64) -> String,
) -> Vec<String> {
    let mut read = || -> Vec<Option<u64>> { needs.iter().map(|n| count(n.v6)).collect() };
    let fits = |now: &[Option<u64>]| {
        needs
            .iter()
            .zip(now)
            .all(|(n, c)| c.is_none_or(|c| c + n.need <= n.limit))
    };
    let mut last = read();
    let mut fell = Duration::ZERO;
    while !fits(&last) {
        let elapsed = tick();
        let now = read();
        if now.iter().zip(&last).any(|(n, l)| n < l) {
            fell = elapsed;
        }
        last = now;
        if elapsed.saturating_sub(fell) >= QUIET || elapsed >= MOST {
            return short(needs, &last, say);
        }
    }
    Vec::new()
}

/// What `say` makes of the families still short of room.
fn short(needs: &[Need], now: &[Option<u64>], say: impl Fn(&Need, u64) -> String) -> Vec<String> {
    needs
        .iter()
        .zip(now)
        .filter_map(|(n, c)| {
            let c = (*c)?;
            (c + n.need > n.limit).then(|| say(n, c))
        })
        .collect()
}

/// `up`'s warning for a family still short of room.
fn room_warning(n: &Need, c: u64) -> String {
    format!(
        "warning: the host's IPv{} neighbour table already holds {c} entries (other labs', or ones the kernel has yet to free) and this lab may need up to {} more, over the limit of {} ({}): past it the kernel refuses new neighbours (neighbour table overflow); raise the limit, or bring this lab up once the others are down",
        if n.v6 { 6 } else { 4 },
        n.need,
        n.limit,
        neigh::sysctl(n.v6),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: Need = Need {
        v6: false,
        need: 306,
        limit: 1024,
    };

    /// Replays counts, one a poll, 10 ms apart; returns the polls taken and the warnings.
    fn replay(needs: &[Need], counts: &[u64]) -> (usize, Vec<String>) {
        let mut i = 0;
        let mut ticks = 0;
        let warnings = wait(
            needs,
            |_| {
                let n = counts[i.min(counts.len() - 1)];
                i += 1;
                Some(n)
            },
            || {
                ticks += 1;
                POLL * ticks as u32
            },
            room_warning,
        );
        (ticks, warnings)
    }

    /// Room at once: no poll at all (the cost of every `up` with room).
    #[test]
    fn room_at_once_costs_no_wait() {
        assert_eq!(replay(&[V4], &[718]), (0, Vec::new()));
    }

    /// A table holding a lab's 870 entries for 120 ms, then freeing them: `up` waits for
    /// the fall, however long the count held still before it (under [`QUIET`]).
    #[test]
    fn waits_through_the_kernels_delay_for_the_fall() {
        let mut counts = vec![870; 13];
        counts.extend([800, 3]);
        let (ticks, warnings) = replay(&[V4], &counts);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            ticks, 14,
            "12 polls at 870, one at 800 (still over), one at 3"
        );
    }

    /// A table that holds still over the limit (labs running beside this one) is watched
    /// for [`QUIET`] only, and said.
    #[test]
    fn a_count_that_holds_still_is_warned_about_after_the_quiet_time() {
        let (ticks, warnings) = replay(&[V4], &[900]);
        assert_eq!(ticks, (QUIET.as_millis() / POLL.as_millis()) as usize);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        for part in ["IPv4", "holds 900 entries", "306 more", "limit of 1024"] {
            assert!(warnings[0].contains(part), "{part}: {warnings:?}");
        }
    }

    /// A count that keeps falling slowly is followed, up to [`MOST`] in all.
    #[test]
    fn a_slow_fall_is_followed_up_to_the_longest_wait() {
        let counts: Vec<u64> = (0..1000).map(|k| 2000 - k).collect();
        let (ticks, warnings) = replay(&[V4], &counts);
        assert_eq!(ticks, (MOST.as_millis() / POLL.as_millis()) as usize);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    /// Each family is judged by its own count; one the kernel does not show is room.
    #[test]
    fn every_family_needs_room_and_an_unknown_count_is_room() {
        let v6 = Need { v6: true, ..V4 };
        let mut i = 0;
        let warnings = wait(
            &[V4, v6],
            |v6| Some(if v6 { 1000 } else { 10 }),
            || {
                i += 1;
                POLL * i
            },
            room_warning,
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("IPv6"), "{warnings:?}");
        assert!(wait(&[V4, v6], |_| None, || unreachable!(), room_warning).is_empty());
    }

    /// A lab with no entries of a family, or whose estimate alone passes the limit
    /// (preflight's warning), is not waited for in that family.
    #[test]
    fn only_families_the_lab_fits_are_waited_for() {
        let t = crate::compile_str(
            "name: nr\nnodes: { a: {}, b: {} }\nlinks:\n  - [a, b]\n",
            "t.yaml",
            std::path::Path::new("/"),
        )
        .expect("compiles")
        .topology;
        let v4 = needs(&t, |_| Some(1024));
        assert_eq!(
            v4.iter().find(|n| !n.v6),
            Some(&Need {
                v6: false,
                need: 2,
                limit: 1024
            })
        );
        assert!(
            needs(&t, |_| Some(1)).is_empty(),
            "2 entries over a limit of 1"
        );
        assert!(needs(&t, |_| None).is_empty(), "no limit known");
    }
}
