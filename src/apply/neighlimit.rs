//! `up --raise-neigh-limit`: the host's neighbour limits raised for a lab's lifetime, and
//! put back after its teardown once the kernel has freed the lab's neighbour entries.
//!
//! The entries leave only as the kernel tears the lab's namespaces down, on its own
//! workqueue after nslab lets go of them. Put back before that, the old limit sits below
//! the table's count: measured here, a 33-host bridge lab left 1,058 entries under a
//! restored limit of 1,024 for up to 150 ms, and the next lab's first ARP exchange
//! overflowed the table (its router answered no ARP and sent no ICMP errors).

use std::path::Path;
use std::time::{Duration, Instant};

use super::{ApplyError, UpOptions};
use crate::model::Topology;
use crate::preflight::neigh;
use crate::state::HostContext;
use crate::state::sysctls::{self, Raised};

/// How often the table's count is read while it drains.
const POLL: Duration = Duration::from_millis(10);
/// The longest `down` waits for the kernel to free the entries; past it the limits go
/// back anyway, and the warning says so.
const DRAIN: Duration = Duration::from_secs(10);

/// Raises the host's neighbour limits the lab's estimate passes, each recorded before it
/// is written for the lab's `down` (or rollback) to put back. The one change to the
/// host's own settings nslab makes, and only when asked.
pub(super) fn raise(t: &Topology, opts: &UpOptions) -> Result<Vec<Raised>, ApplyError> {
    if !opts.raise_neigh_limit {
        return Ok(Vec::new());
    }
    let wants = neigh::raises(t, neigh::host_limit);
    let proc_sys = Path::new(sysctls::PROC_SYS);
    tokio::task::block_in_place(|| sysctls::raise(proc_sys, &opts.host.run_dir, &t.lab, &wants))
        .map_err(|e| ApplyError::Host {
            lab: t.lab.clone(),
            source: std::io::Error::other(format!("cannot raise the neighbour limit: {e}")),
        })
}

/// Puts back what [`raise`] changed for `lab`, after its namespaces were let go, once the
/// table fits under the old limits again; returns the problems. Without a record it
/// returns at once. It may wait: an async caller runs it with `block_in_place`.
pub(super) fn restore(host: &HostContext, lab: &str) -> Vec<String> {
    let proc_sys = Path::new(sysctls::PROC_SYS);
    let settle = |writes: &[Raised]| {
        let start = Instant::now();
        drain(&limits(writes), neigh::in_table, || {
            std::thread::sleep(POLL);
            start.elapsed() < DRAIN
        })
    };
    sysctls::restore_after(proc_sys, &host.run_dir, lab, settle)
}

/// Whether `lab` has host sysctls on record, and so needs [`restore`] after its
/// namespaces are let go.
pub(super) fn recorded(host: &HostContext, lab: &str) -> bool {
    sysctls::recorded(&host.run_dir, lab).is_ok_and(|r| !r.is_empty())
}

/// The hard limits about to go back, by family (`true` for IPv6).
fn limits(writes: &[Raised]) -> Vec<(bool, u64)> {
    writes
        .iter()
        .filter(|r| r.key.ends_with(".gc_thresh3"))
        .filter_map(|r| Some((r.key.starts_with("net.ipv6."), r.before.parse().ok()?)))
        .collect()
}

/// Waits until each family's table holds fewer entries than its limit and has stopped
/// falling (a namespace's entries go while the kernel tears it down: one that is still
/// falling has more to free). `tick` waits one poll and says whether time is left.
/// Returns a warning for each family still over its limit when time ran out; a count
/// the kernel does not show counts as settled.
fn drain(
    limits: &[(bool, u64)],
    mut count: impl FnMut(bool) -> Option<u64>,
    mut tick: impl FnMut() -> bool,
) -> Vec<String> {
    let mut last: Vec<Option<u64>> = vec![None; limits.len()];
    loop {
        let now: Vec<Option<u64>> = limits.iter().map(|(v6, _)| count(*v6)).collect();
        let settled = |((_, limit), n): (&(bool, u64), &Option<u64>), l: &Option<u64>| {
            n.is_none_or(|n| n < *limit && *l == Some(n))
        };
        if limits
            .iter()
            .zip(&now)
            .zip(&last)
            .all(|(a, l)| settled(a, l))
        {
            return Vec::new();
        }
        if !tick() {
            return over(limits, &now);
        }
        last = now;
    }
}

/// The warnings for families whose table is still over the limit going back.
fn over(limits: &[(bool, u64)], now: &[Option<u64>]) -> Vec<String> {
    limits
        .iter()
        .zip(now)
        .filter_map(|((v6, limit), n)| {
            let n = (*n)?;
            (n >= *limit).then(|| {
                format!(
                    "the kernel still held {n} IPv{} neighbour entries after {} s, over the limit of {limit} put back: until it frees them, new neighbours are refused (neighbour table overflow)",
                    if *v6 { 6 } else { 4 },
                    DRAIN.as_secs()
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raised(key: &str, before: &str) -> Raised {
        Raised {
            key: key.into(),
            before: before.into(),
            set: "4096".into(),
        }
    }

    /// Only the hard limits matter, by family; gc_thresh2 is a soft one.
    #[test]
    fn the_limits_waited_for_are_the_hard_ones_going_back() {
        let writes = [
            raised("net.ipv4.neigh.default.gc_thresh3", "1024"),
            raised("net.ipv4.neigh.default.gc_thresh2", "512"),
            raised("net.ipv6.neigh.default.gc_thresh3", "2048"),
        ];
        assert_eq!(limits(&writes), [(false, 1024), (true, 2048)]);
    }

    /// Replays counts, one a poll; returns the polls taken and the warnings.
    fn replay(limits: &[(bool, u64)], counts: &[u64], budget: usize) -> (usize, Vec<String>) {
        let mut i = 0;
        let mut ticks = 0;
        let warnings = drain(
            limits,
            |_| {
                let n = counts[i.min(counts.len() - 1)];
                i += 1;
                Some(n)
            },
            || {
                ticks += 1;
                ticks <= budget
            },
        );
        (ticks, warnings)
    }

    /// A count under the limit but still falling is waited for; one that holds still
    /// under it ends the wait.
    #[test]
    fn waits_until_the_count_is_under_the_limit_and_stops_falling() {
        let (ticks, warnings) = replay(&[(false, 1024)], &[1058, 1058, 700, 3, 3], 100);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            ticks, 4,
            "1058, 1058 (over), 700 (falling), 3 (falling), 3: settled"
        );
    }

    /// Out of time over the limit: a warning naming the family, the count and the limit.
    /// Out of time under it (still falling): nothing to warn about.
    #[test]
    fn out_of_time_over_the_limit_is_said() {
        let (_, warnings) = replay(&[(true, 1024)], &[2000], 3);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("2000 IPv6 neighbour entries"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("limit of 1024"), "{warnings:?}");
        let falling: Vec<u64> = (0..10).map(|k| 900 - k).collect();
        let (_, warnings) = replay(&[(false, 1024)], &falling, 3);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    /// No limit going back, or no count to read: no wait at all.
    #[test]
    fn nothing_to_wait_for_returns_at_once() {
        let mut ticks = 0;
        assert!(
            drain(
                &[],
                |_| Some(5000),
                || {
                    ticks += 1;
                    true
                }
            )
            .is_empty()
        );
        assert!(
            drain(
                &[(false, 1024)],
                |_| None,
                || {
                    ticks += 1;
                    true
                }
            )
            .is_empty()
        );
        assert_eq!(ticks, 0);
    }
}
