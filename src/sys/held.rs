//! Signals held while a teardown runs. `nslab down` killed by SIGINT halfway (a second
//! Ctrl-C, a CI runner's cancel) would leave a lab half removed; so from the moment it
//! holds the lab's lock until its teardown is over, SIGINT, SIGTERM and SIGHUP are
//! blocked, and then taken (not acted on) and reported, so the command exits 128 + N.
//! Before the lock, while it waits for another command, a signal still ends it at once:
//! nothing was done yet.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

/// The signals a teardown holds, in the order they are reported when several came.
const HELD: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// Blocks [`HELD`] in this thread, and so in every thread and runtime it starts from now
/// on (they inherit the mask; the standard library clears it for commands it spawns),
/// until [`Held::release`].
pub struct Held {
    before: SigSet,
}

impl Held {
    pub fn begin() -> nix::Result<Held> {
        let set: SigSet = HELD.into_iter().collect();
        let before = set.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
        Ok(Held { before })
    }

    /// Takes the held signals that came meanwhile and unblocks them; the first of
    /// [`HELD`] that came, if any. Threads started while held keep the mask, and are gone
    /// by now (the teardown's runtime and namespace threads end with it).
    pub fn release(self) -> Option<Signal> {
        let came = pending();
        for sig in &came {
            // Pending, so the wait returns at once; it takes the signal, which a plain
            // unblock would act on (by default: end the process).
            let _ = SigSet::from(*sig).wait();
        }
        let _ = self.before.thread_set_mask();
        came.first().copied()
    }
}

/// The held signals pending for this process or thread.
fn pending() -> Vec<Signal> {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the set it is given; it is read only if that succeeded.
    // (nix has no sigpending.)
    let set = unsafe {
        if libc::sigpending(set.as_mut_ptr()) != 0 {
            return Vec::new();
        }
        set.assume_init()
    };
    HELD.into_iter()
        // SAFETY: a filled set, and a valid signal number.
        .filter(|s| unsafe { libc::sigismember(&set, *s as i32) } == 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_that_comes_while_held_is_taken_and_named_not_acted_on() {
        // A thread of its own: the mask is per thread, and SIGHUP is sent to this thread
        // only, so the test runner's other threads never see it.
        std::thread::spawn(|| {
            let held = Held::begin().unwrap();
            // raise() signals the calling thread.
            nix::sys::signal::raise(Signal::SIGHUP).unwrap();
            assert_eq!(pending(), vec![Signal::SIGHUP]);
            assert_eq!(held.release(), Some(Signal::SIGHUP));
            assert!(pending().is_empty());
            let mask = SigSet::thread_get_mask().unwrap();
            assert!(!mask.contains(Signal::SIGHUP), "unblocked again");
            let held = Held::begin().unwrap();
            assert_eq!(held.release(), None, "nothing came");
        })
        .join()
        .unwrap();
    }
}
