//! `up --raise-neigh-limit`: the host's neighbour limits raised for a lab's lifetime, and
//! put back after its teardown once the kernel has freed the lab's neighbour entries.
//!
//! The entries leave only as the kernel tears the lab's namespaces down, on its own
//! workqueue after nslab lets go of them. Put back before that, the old limit sits below
//! the table's count: measured here, a 33-host bridge lab left 1,058 entries under a
//! restored limit of 1,024 for up to 150 ms, and the next lab's first ARP exchange
//! overflowed the table (its router answered no ARP and sent no ICMP errors). The wait
//! is `up`'s wait for room (`neighroom`), with room for one entry.

use std::path::Path;

use super::neighroom::{self, Need};
use super::{ApplyError, UpOptions};
use crate::model::Topology;
use crate::preflight::neigh;
use crate::state::HostContext;
use crate::state::sysctls::{self, Raised};

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
        neighroom::wait(
            &needs(writes),
            neigh::in_table,
            neighroom::sleeping(),
            still_over,
        )
    };
    sysctls::restore_after(proc_sys, &host.run_dir, lab, settle)
}

/// Whether `lab` has host sysctls on record, and so needs [`restore`] after its
/// namespaces are let go.
pub(super) fn recorded(host: &HostContext, lab: &str) -> bool {
    sysctls::recorded(&host.run_dir, lab).is_ok_and(|r| !r.is_empty())
}

/// The hard limits about to go back, by family: room for one entry more than the
/// table holds is a table under the limit.
fn needs(writes: &[Raised]) -> Vec<Need> {
    writes
        .iter()
        .filter(|r| r.key.ends_with(".gc_thresh3"))
        .filter_map(|r| {
            Some(Need {
                v6: r.key.starts_with("net.ipv6."),
                need: 1,
                limit: r.before.parse().ok()?,
            })
        })
        .collect()
}

/// `down`'s warning for a family whose table did not get under the limit going back.
fn still_over(n: &Need, count: u64) -> String {
    format!(
        "the kernel still held {count} IPv{} neighbour entries, over the limit of {} put back: until it frees them, new neighbours are refused (neighbour table overflow)",
        if n.v6 { 6 } else { 4 },
        n.limit
    )
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

    /// Only the hard limits matter, by family; gc_thresh2 is a soft one. The wait itself
    /// is `neighroom::wait`'s, tested there.
    #[test]
    fn the_limits_waited_for_are_the_hard_ones_going_back() {
        let writes = [
            raised("net.ipv4.neigh.default.gc_thresh3", "1024"),
            raised("net.ipv4.neigh.default.gc_thresh2", "512"),
            raised("net.ipv6.neigh.default.gc_thresh3", "2048"),
        ];
        let needs = needs(&writes);
        let got: Vec<_> = needs.iter().map(|n| (n.v6, n.need, n.limit)).collect();
        assert_eq!(got, [(false, 1, 1024), (true, 1, 2048)]);
    }

    /// A table of 1,024 entries under a limit of 1,024 going back is over it: one of
    /// 1,023 is not.
    #[test]
    fn a_table_at_the_limit_is_waited_for_and_one_under_it_is_not() {
        let n = needs(&[raised("net.ipv4.neigh.default.gc_thresh3", "1024")]);
        let said = neighroom::wait(&n, |_| Some(1023), || unreachable!(), still_over);
        assert!(said.is_empty(), "{said:?}");
        let mut polls = 0;
        let said = neighroom::wait(
            &n,
            |_| Some(1024),
            || {
                polls += 1;
                std::time::Duration::from_secs(polls)
            },
            still_over,
        );
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("held 1024 IPv4 neighbour entries"),
            "{said:?}"
        );
        assert!(said[0].contains("limit of 1024"), "{said:?}");
    }
}
