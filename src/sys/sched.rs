//! Scheduling of nslab's own threads.

/// The calling thread in the real-time class, at its lowest priority, until dropped; then
/// back in the policy it had. For short stretches where nslab wakes work it then competes
/// with: `down` signals each node's init in turn, and on a host with scheduler autogroups
/// each init it wakes is a scheduling group of its own beside `down`'s one, so the inits
/// already signalled took the CPU from the loop that signals the rest (see
/// docs/performance.md, "`down`'s signalling loop and the scheduler"). Where the caller may
/// not (no `CAP_SYS_NICE`: a rootless lab), or already runs real-time, nothing changes.
pub struct Urgent(Option<(libc::c_int, libc::sched_param)>);

impl Urgent {
    pub fn now() -> Urgent {
        // SAFETY: reading the calling thread's own policy and parameters (nix has no
        // wrappers for the scheduling class).
        let policy = unsafe { libc::sched_getscheduler(0) };
        let mut old = libc::sched_param { sched_priority: 0 };
        let class = policy & !libc::SCHED_RESET_ON_FORK;
        if policy < 0
            || class == libc::SCHED_FIFO
            || class == libc::SCHED_RR
            || unsafe { libc::sched_getparam(0, &mut old) } != 0
        {
            return Urgent(None);
        }
        let rt = libc::sched_param { sched_priority: 1 };
        // Reset on fork: nothing this thread might start inherits the class.
        let fifo = libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK;
        // SAFETY: the calling thread's own policy, with a valid parameter.
        if unsafe { libc::sched_setscheduler(0, fifo, &rt) } != 0 {
            return Urgent(None);
        }
        Urgent(Some((policy, old)))
    }
}

impl Drop for Urgent {
    fn drop(&mut self) {
        if let Some((policy, old)) = self.0 {
            // SAFETY: as above, back to what the thread had.
            unsafe { libc::sched_setscheduler(0, policy, &old) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Urgent;

    fn policy() -> libc::c_int {
        // SAFETY: reads the calling thread's policy.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn the_thread_gets_its_policy_back() {
        // On a thread of its own: the policy is per thread.
        std::thread::spawn(|| {
            let before = policy();
            let urgent = Urgent::now();
            let during = policy();
            if urgent.0.is_some() {
                assert_eq!(during, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK);
            } else {
                assert_eq!(during, before);
            }
            drop(urgent);
            assert_eq!(policy(), before);
        })
        .join()
        .unwrap();
    }
}
