//! The init's unit tests: readiness bookkeeping, requests, memory ranges.

use super::memory::droppable;
use super::proc::{Proc, Readiness};
use super::{namespace_pids, read_request};
use crate::model::kinds::{ProbeLimits, RestartPolicy};
use crate::node::config::{ProcessSpec, ReadySpec};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

#[test]
fn the_hosts_proc_is_not_a_nodes_own() {
    // This process is not 1 in the /proc it sees, so stopping a node from here would
    // fall back to kill(-1), which in the host's pid namespace is never sent.
    if std::process::id() != 1 {
        assert_eq!(namespace_pids(), None);
    }
}

fn probed(limits: ProbeLimits) -> Proc {
    let mut p = Proc::new(ProcessSpec {
        name: "p".into(),
        argv: vec!["true".into()],
        env: vec![],
        cwd: None,
        restart: RestartPolicy::Never,
        ready: Some(ReadySpec::Tcp {
            port: 9,
            timeout_ms: 30_000,
            interval_ms: 100,
        }),
        ready_limits: limits,
        stop_timeout_ms: 0,
        user: None,
        attrs: Default::default(),
    });
    p.ready = Readiness::Pending;
    p
}

#[test]
fn only_probes_at_the_interval_and_after_the_start_period_count_toward_attempts() {
    let interval = Duration::from_millis(100);
    let start = Instant::now();
    let mut p = probed(ProbeLimits {
        attempts: Some(2),
        start_period_ms: 1_000,
        ..Default::default()
    });
    p.ready_since = Some(start);
    let later = start + Duration::from_secs(2);
    // Waits of 5, 10, 20, 40, 80 ms come before polls 1 to 5: free. Poll 6 follows
    // a wait of the whole interval.
    let counted: Vec<bool> = (0..8)
        .map(|n| {
            p.polls = n;
            p.counts(interval, later)
        })
        .collect();
    assert_eq!(
        counted,
        [false, false, false, false, false, false, true, true]
    );
    // Within the start period nothing counts.
    assert!(!p.counts(interval, start + Duration::from_millis(999)));
    p.failed_probe();
    assert_eq!(p.ready, Readiness::Pending);
    p.failed_probe();
    assert_eq!(p.ready, Readiness::TimedOut);
    // Without `attempts`, failures never end the wait.
    let mut q = probed(ProbeLimits::default());
    (0..100).for_each(|_| q.failed_probe());
    assert_eq!(q.ready, Readiness::Pending);
}

#[test]
fn a_cmd_probe_ends_after_its_probe_timeout_only_when_one_is_set() {
    let at = Instant::now();
    let mut p = probed(ProbeLimits {
        probe_timeout_ms: Some(250),
        ..Default::default()
    });
    assert_eq!(p.probe_end(), None, "no probe runs");
    p.probe_started = Some(at);
    assert_eq!(p.probe_end(), Some(at + Duration::from_millis(250)));
    let mut q = probed(ProbeLimits::default());
    q.probe_started = Some(at);
    assert_eq!(q.probe_end(), None);
}

/// What `read_request` makes of `data`, written (then closed) by another thread.
fn read_what(data: Vec<u8>) -> Result<Option<String>, String> {
    let (mut client, server) = UnixStream::pair().unwrap();
    let writer = std::thread::spawn(move || {
        // A refused request closes the socket before all of it is written.
        let _ = client.write_all(&data);
    });
    let got = read_request(&server);
    drop(server);
    writer.join().unwrap();
    got
}

#[test]
fn requests_are_read_whole_one_line_and_bounded() {
    assert_eq!(
        read_what(b"status\nextra".to_vec()),
        Ok(Some("status".into()))
    );
    assert_eq!(read_what(b"halt".to_vec()), Ok(Some("halt".into())));
    assert_eq!(read_what(Vec::new()), Ok(None));
    let spec = format!("add {{\"name\":\"{}\"}}\n", "x".repeat(100_000));
    assert_eq!(
        read_what(spec.clone().into_bytes()),
        Ok(Some(spec.trim_end().into()))
    );
    let mut full = vec![b'a'; super::control::MAX_REQUEST];
    full.push(b'\n');
    let got = read_what(full).unwrap().unwrap();
    assert_eq!(got.len(), super::control::MAX_REQUEST);
    let huge = vec![b'a'; super::control::MAX_REQUEST + 10];
    let e = read_what(huge).unwrap_err();
    assert!(e.contains("longer than 1048576 bytes"), "{e}");
    assert!(
        read_what(vec![0xff, b'\n'])
            .unwrap_err()
            .contains("not UTF-8")
    );
}

#[test]
fn only_clean_file_mappings_without_private_pages_are_dropped() {
    let smaps = "\
00400000-00500000 r-xp 00000000 08:01 12 /usr/bin/nslab
Rss:                 100 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
00500000-00510000 r--p 00100000 08:01 12 /usr/bin/nslab
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  8 kB
00510000-00520000 r--p 00110000 08:01 12 /usr/bin/nslab
Private_Dirty:         4 kB
Anonymous:             4 kB
Swap:                  0 kB
00520000-00530000 rw-p 00120000 08:01 12 /usr/bin/nslab
Anonymous:             0 kB
Swap:                  0 kB
00530000-00540000 r--p 00000000 00:00 0
Anonymous:             0 kB
7f0000000000-7f0000010000 r--p 00000000 08:01 13 /usr/lib/libc.so.6
Anonymous:             0 kB
Swap:                  0 kB
";
    assert_eq!(
        droppable(smaps),
        vec![(0x400000, 0x500000), (0x7f0000000000, 0x7f0000010000)]
    );
}
