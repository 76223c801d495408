//! Signal dispositions. nix's `signal` and `sigaction` are unsafe because a handler
//! runs inside whatever it interrupts; the handlers here are fixed and only touch an
//! atomic or call kill(2), both async-signal-safe, so these calls are safe.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::unistd::Pid;

/// Puts `sig` back to its default disposition (no handler runs).
pub fn set_default(sig: Signal) -> nix::Result<()> {
    set(sig, SigHandler::SigDfl, SaFlags::empty())
}

/// Ignores `sig` (no handler runs).
pub fn ignore(sig: Signal) -> nix::Result<()> {
    set(sig, SigHandler::SigIgn, SaFlags::empty())
}

fn set(sig: Signal, handler: SigHandler, flags: SaFlags) -> nix::Result<()> {
    let action = SigAction::new(handler, flags, SigSet::empty());
    // SAFETY: every handler this module installs is async-signal-safe (see each), and
    // SIG_DFL / SIG_IGN run none.
    unsafe { sigaction(sig, &action) }.map(drop)
}

/// Set once any signal given to [`raise_flag_on`] arrives.
static FLAG: AtomicBool = AtomicBool::new(false);

extern "C" fn set_flag(_: libc::c_int) {
    FLAG.store(true, Ordering::Relaxed);
}

/// Makes each of `sigs` set one process-wide flag instead of acting (a capture loop
/// polls it between packets); the flag is returned.
pub fn raise_flag_on(sigs: &[Signal]) -> nix::Result<&'static AtomicBool> {
    for sig in sigs {
        // The handler only stores to an atomic.
        set(*sig, SigHandler::Handler(set_flag), SaFlags::empty())?;
    }
    Ok(&FLAG)
}

/// The process [`forward_to`] passes signals to.
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and takes integers only.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Passes each of `sigs`, when this process gets it, on to `child` (system calls it
/// interrupts restart).
pub fn forward_to(child: Pid, sigs: &[Signal]) -> nix::Result<()> {
    CHILD.store(child.as_raw(), Ordering::Relaxed);
    for sig in sigs {
        // The handler only calls kill.
        set(*sig, SigHandler::Handler(forward), SaFlags::SA_RESTART)?;
    }
    Ok(())
}

extern "C" fn forward_unless_terminal(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    _: *mut libc::c_void,
) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo.
    if unsafe { (*info).si_code } != libc::SI_KERNEL {
        forward(sig);
    }
}

/// Passes `sig` on to `child` only when a process sent it (`kill -INT PID`, a
/// supervisor's stop), not when the terminal did (Ctrl-C: the kernel is the sender, and
/// the terminal sends it to the child's process group too, which would get it twice).
pub fn forward_unless_from_terminal(child: Pid, sig: Signal) -> nix::Result<()> {
    CHILD.store(child.as_raw(), Ordering::Relaxed);
    // The handler reads its siginfo and calls kill.
    set(
        sig,
        SigHandler::SigAction(forward_unless_terminal),
        SaFlags::SA_RESTART | SaFlags::SA_SIGINFO,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::child::testing::in_child;

    /// In children of their own: dispositions are the whole process's.
    #[test]
    fn a_flagged_signal_sets_the_flag_and_an_ignored_one_does_nothing() {
        let code = in_child(|| {
            let flag = raise_flag_on(&[Signal::SIGUSR1]).unwrap();
            let before = flag.load(Ordering::Relaxed);
            nix::sys::signal::raise(Signal::SIGUSR1).unwrap();
            ignore(Signal::SIGUSR2).unwrap();
            nix::sys::signal::raise(Signal::SIGUSR2).unwrap();
            i32::from(before) * 2 + i32::from(!flag.load(Ordering::Relaxed))
        });
        assert_eq!(code, Some(0));
        // Back to the default, SIGUSR1 ends the process.
        let code = in_child(|| {
            let _ = raise_flag_on(&[Signal::SIGUSR1]);
            set_default(Signal::SIGUSR1).unwrap();
            let _ = nix::sys::signal::raise(Signal::SIGUSR1);
            0
        });
        assert_eq!(code, None, "killed by SIGUSR1");
    }

    #[test]
    fn a_forwarded_signal_reaches_the_child() {
        let code = in_child(|| {
            let Some(inner) = crate::sys::child::SingleThreaded::check() else {
                return 10;
            };
            match inner.fork() {
                Ok(nix::unistd::ForkResult::Child) => {
                    nix::unistd::pause();
                    crate::sys::child::exit_now(0)
                }
                Ok(nix::unistd::ForkResult::Parent { child }) => {
                    forward_to(child, &[Signal::SIGTERM]).unwrap();
                    let _ = nix::sys::signal::raise(Signal::SIGTERM);
                    match nix::sys::wait::waitpid(child, None) {
                        Ok(nix::sys::wait::WaitStatus::Signaled(_, Signal::SIGTERM, _)) => 0,
                        _ => 1,
                    }
                }
                Err(_) => 2,
            }
        });
        assert_eq!(code, Some(0));
    }
}
