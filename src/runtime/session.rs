//! One owner for a running lab: a [`Session`] opens it once (its summary, its stored plan
//! on first use, the lab's lock when the operation changes the lab, a netlink kernel) and
//! offers the operations the CLI, scenario steps and the Rust API share. Before, each
//! caller put these together itself, opening the lab twice and taking the lock through
//! its own door.

use std::os::fd::OwnedFd;

use super::{LiveLab, RuntimeError, events};
use crate::apply::netlink::NetlinkKernel;
use crate::model::Impair;
use crate::model::kinds::NodeAction;
use crate::state::{HostContext, LabLock};

/// What an operation does to the lab, and so whether it takes the lab's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Looks only (capture, status): no lock, so it never waits for a change.
    Read,
    /// Changes the lab: waits for the lab's lock, saying so on stderr while it waits.
    Change,
    /// Changes the lab, waiting for the lock without a word (scenario steps, whose
    /// output is the test report).
    ChangeQuietly,
}

/// The kernel a session talks through: its own, or its caller's (a test run's).
enum Kernel<'k> {
    Own(NetlinkKernel),
    Borrowed(&'k NetlinkKernel),
}

/// A running lab, opened once. Dropping it releases the lock.
pub struct Session<'k> {
    pub live: LiveLab,
    kernel: Kernel<'k>,
    // Released last: after the kernel's handles are gone.
    _lock: Option<LabLock>,
}

impl Session<'static> {
    /// Opens the lab with a kernel of its own; inside a tokio runtime (the kernel's
    /// requests run on it).
    pub fn open(
        host: &HostContext,
        lab: &str,
        access: Access,
    ) -> Result<Session<'static>, RuntimeError> {
        Self::with_threads(host, lab, access, 1)
    }

    /// Opens the lab to run its checks (`nslab test`), read-only: checks work in several
    /// namespaces at once, so the kernel gets a second namespace thread.
    pub fn for_checks(host: &HostContext, lab: &str) -> Result<Session<'static>, RuntimeError> {
        Self::with_threads(host, lab, Access::Read, 2)
    }

    fn with_threads(
        host: &HostContext,
        lab: &str,
        access: Access,
        threads: usize,
    ) -> Result<Session<'static>, RuntimeError> {
        let (live, lock) = open_locked(host, lab, access)?;
        let kernel =
            NetlinkKernel::new(host, tokio::runtime::Handle::current(), threads).map_err(|e| {
                RuntimeError::Host {
                    lab: lab.to_string(),
                    source: std::io::Error::other(e.to_string()),
                }
            })?;
        Ok(Session {
            live,
            kernel: Kernel::Own(kernel),
            _lock: lock,
        })
    }
}

impl<'k> Session<'k> {
    /// Opens the lab on a kernel the caller holds (and keeps using).
    pub fn with_kernel(
        kernel: &'k NetlinkKernel,
        lab: &str,
        access: Access,
    ) -> Result<Session<'k>, RuntimeError> {
        let (live, lock) = open_locked(kernel.host(), lab, access)?;
        Ok(Session {
            live,
            kernel: Kernel::Borrowed(kernel),
            _lock: lock,
        })
    }

    pub fn kernel(&self) -> &NetlinkKernel {
        match &self.kernel {
            Kernel::Own(k) => k,
            Kernel::Borrowed(k) => k,
        }
    }

    /// `link down|up NODE:IFACE`.
    pub async fn set_link(
        &self,
        target: &str,
        up: bool,
        one_side: bool,
    ) -> Result<events::Event, RuntimeError> {
        super::set_link(self.kernel(), &self.live, target, up, one_side).await
    }

    /// `link impair NODE:IFACE` (`None` clears).
    pub async fn impair(
        &self,
        target: &str,
        impair: Option<Impair>,
        one_side: bool,
    ) -> Result<events::Event, RuntimeError> {
        super::impair(self.kernel(), &self.live, target, impair, one_side).await
    }

    /// `node stop|start|restart NODE`: the events, in order.
    pub async fn node_action(
        &self,
        node: &str,
        action: NodeAction,
    ) -> Result<Vec<events::Event>, RuntimeError> {
        super::node_action(self.kernel(), &self.live, node, action).await
    }

    /// A packet socket on `NODE:IFACE` for `capture`.
    pub async fn capture(&self, target: &str) -> Result<OwnedFd, RuntimeError> {
        super::capture::open(self.kernel(), &self.live, target).await
    }

    /// Records an event of the lab's (a capture's end, say).
    pub fn record(
        &self,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<events::Event, RuntimeError> {
        Ok(events::record(&self.live.dir, action, target, detail)?)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Kernel::Own(k) = &self.kernel {
            k.close_all();
        }
    }
}

/// Opens the lab, and for a change takes its lock and reads the summary again under it
/// (a change that held the lock may have changed it). A lab that is not up gets no lock
/// file: it is checked before the lock is taken.
fn open_locked(
    host: &HostContext,
    lab: &str,
    access: Access,
) -> Result<(LiveLab, Option<LabLock>), RuntimeError> {
    let live = LiveLab::open(host, lab)?;
    let lock = tokio::task::block_in_place(|| match access {
        Access::Read => Ok(None),
        // The same announced wait as `up`, `down` and `apply`.
        Access::Change => crate::apply::lock(host, lab)
            .map(Some)
            .map_err(|e| match e {
                crate::apply::ApplyError::State(s) => RuntimeError::State(s),
                other => RuntimeError::Host {
                    lab: lab.to_string(),
                    source: std::io::Error::other(other.to_string()),
                },
            }),
        Access::ChangeQuietly => Ok(Some(LabLock::acquire(host, lab, |_| {})?)),
    })?;
    if lock.is_none() {
        return Ok((live, None));
    }
    Ok((LiveLab::open(host, lab)?, lock))
}
