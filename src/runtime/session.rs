//! One owner for a running lab: a [`Session`] opens it once (its summary, its stored plan
//! on first use, the lab's lock when the operation changes the lab, a netlink kernel on
//! first use) and offers the operations the CLI, scenario steps and the Rust API share:
//! links, impairments, nodes, capture, commands in a node, the init's process table,
//! kernel dumps, `apply`, and (from the harness, which owns checks) the `tests:` checks.
//! Before, each caller put these together itself, opening the lab twice and taking the
//! lock through its own door.

use std::os::fd::OwnedFd;
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;

use super::{LiveLab, RuntimeError, events};
use crate::apply::executor::Cancel;
use crate::apply::netlink::NetlinkKernel;
use crate::apply::reconcile::{self, Applied};
use crate::apply::{ApplyError, UpOptions, inspect};
use crate::model::kinds::NodeAction;
use crate::model::{Impair, Topology};
use crate::node::control;
use crate::plan::Plan;
use crate::state::{HostContext, LabLock};

/// What an operation does to the lab, and so whether it takes the lab's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Looks only (capture, status, exec): no lock, so it never waits for a change.
    Read,
    /// Changes the lab: waits for the lab's lock, saying so on stderr while it waits.
    Change,
    /// Changes the lab, waiting for the lock without a word (scenario steps, whose
    /// output is the test report).
    ChangeQuietly,
}

/// The kernel a session talks through: its caller's (a test run's), or its own, opened
/// on first use (commands that only run a program in a node or ask its init need none,
/// nor a tokio runtime).
struct Kernel<'k> {
    borrowed: Option<&'k NetlinkKernel>,
    own: OnceLock<NetlinkKernel>,
    /// Namespace threads of its own kernel.
    threads: usize,
}

/// A running lab, opened once. Dropping it releases the lock.
pub struct Session<'k> {
    pub live: LiveLab,
    kernel: Kernel<'k>,
    // Released last: after the kernel's handles are gone.
    lock: Option<LabLock>,
}

/// One node's answer to `ps`: its init's process table, or why it could not be asked.
pub type NodeProcesses = (String, Result<control::Status, String>);

impl Session<'static> {
    /// Opens the lab; its kernel, when an operation needs one, runs on the tokio runtime
    /// that operation is called in.
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

    /// Opens the lab under a lock its caller took: `apply` holds the lock from deciding
    /// whether the lab is up to the end of the change, so the two never race. Namespaces
    /// are made in two threads, as by `up`.
    pub fn under_lock(
        host: &HostContext,
        lab: &str,
        lock: LabLock,
    ) -> Result<Session<'static>, RuntimeError> {
        Ok(Session {
            live: LiveLab::open(host, lab)?,
            kernel: own(crate::apply::NS_THREADS),
            lock: Some(lock),
        })
    }

    fn with_threads(
        host: &HostContext,
        lab: &str,
        access: Access,
        threads: usize,
    ) -> Result<Session<'static>, RuntimeError> {
        let (live, lock) = open_locked(host, lab, access)?;
        Ok(Session {
            live,
            kernel: own(threads),
            lock,
        })
    }
}

fn own(threads: usize) -> Kernel<'static> {
    Kernel {
        borrowed: None,
        own: OnceLock::new(),
        threads,
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
            kernel: Kernel {
                borrowed: Some(kernel),
                own: OnceLock::new(),
                threads: 0,
            },
            lock,
        })
    }

    /// The session's kernel, opened on the current tokio runtime the first time.
    pub fn kernel(&self) -> Result<&NetlinkKernel, RuntimeError> {
        let Kernel {
            borrowed,
            own,
            threads,
        } = &self.kernel;
        if let Some(k) = borrowed.or(own.get()) {
            return Ok(k);
        }
        let host_error = |e: String| RuntimeError::Host {
            lab: self.live.lab.clone(),
            source: std::io::Error::other(e),
        };
        let rt = tokio::runtime::Handle::try_current().map_err(|e| host_error(e.to_string()))?;
        let k = NetlinkKernel::new(&self.live.host, rt, *threads)
            .map_err(|e| host_error(e.to_string()))?
            .for_lab(&self.live.lab);
        Ok(own.get_or_init(|| k))
    }

    /// `link down|up NODE:IFACE`.
    pub async fn set_link(
        &self,
        target: &str,
        up: bool,
        one_side: bool,
    ) -> Result<events::Event, RuntimeError> {
        super::set_link(self.kernel()?, &self.live, target, up, one_side).await
    }

    /// `link impair NODE:IFACE` (`None` clears).
    pub async fn impair(
        &self,
        target: &str,
        impair: Option<Impair>,
        one_side: bool,
    ) -> Result<events::Event, RuntimeError> {
        super::impair(self.kernel()?, &self.live, target, impair, one_side).await
    }

    /// `node stop|start|restart NODE`: the events, in order.
    pub async fn node_action(
        &self,
        node: &str,
        action: NodeAction,
    ) -> Result<Vec<events::Event>, RuntimeError> {
        super::node_action(self.kernel()?, &self.live, node, action).await
    }

    /// A packet socket on `NODE:IFACE` for `capture`.
    pub async fn capture(&self, target: &str) -> Result<OwnedFd, RuntimeError> {
        super::capture::open(self.kernel()?, &self.live, target).await
    }

    /// `argv` as `nslab exec` runs it in `node`: inside the node's init's namespaces and
    /// cgroups (or its network namespace when it has no init), starting from the node's
    /// environment (the base, its `env:`, then `extra`), nothing of the caller's. The
    /// caller picks the stdio and how to wait (`exec` waits, the API collects output).
    pub fn command(
        &self,
        node: &str,
        argv: &[String],
        extra: &[(String, String)],
    ) -> Result<Command, RuntimeError> {
        let n = self.live.node(node)?;
        if argv.is_empty() {
            return Err(RuntimeError::Invalid(
                "nothing to run: give a command after `--`".into(),
            ));
        }
        let enter = |source| RuntimeError::Enter {
            lab: self.live.lab.clone(),
            node: node.to_string(),
            source,
        };
        let mut cmd = self
            .live
            .exec_target(n)
            .and_then(|t| t.command(argv))
            .map_err(enter)?;
        cmd.env_clear().envs(node_env(n, extra));
        Ok(cmd)
    }

    /// `nslab exec`: runs `argv` in `node` on the caller's stdio and waits for it.
    pub fn exec(
        &self,
        node: &str,
        argv: &[String],
        extra: &[(String, String)],
    ) -> Result<ExitStatus, RuntimeError> {
        self.command(node, argv, extra)?
            .status()
            .map_err(|e| RuntimeError::Run {
                lab: self.live.lab.clone(),
                node: node.to_string(),
                program: argv[0].clone(),
                source: e,
            })
    }

    /// `nslab ps`: each node's processes as its init tells them (all nodes, or one), in
    /// the lab's order; nodes without an init run nothing and are left out.
    pub fn processes(&self, only: Option<&str>) -> Result<Vec<NodeProcesses>, RuntimeError> {
        if let Some(n) = only {
            self.live.node(n)?;
        }
        let paths = self.live.node_paths();
        let nodes = self.live.summary()?.nodes.iter();
        Ok(nodes
            .filter(|n| only.is_none_or(|x| x == n.name))
            .filter_map(|n| {
                let sock = paths.control(&n.name);
                sock.exists().then(|| {
                    let status = control::request(&sock, "status")
                        .map_err(|e| e.to_string())
                        .and_then(|r| control::parse_status(&r));
                    (n.name.clone(), status)
                })
            })
            .collect())
    }

    /// Every namespace of the lab as the kernel has it now (the fabric first, then the
    /// nodes in order), normalised for comparison.
    pub async fn dump(&self) -> Result<Vec<inspect::NsState>, RuntimeError> {
        let kernel = self.kernel()?;
        let failed = |e: crate::apply::KernelError| RuntimeError::Host {
            lab: self.live.lab.clone(),
            source: std::io::Error::other(e.to_string()),
        };
        let summary = self.live.summary()?;
        let mut out = Vec::new();
        if let Some(f) = &summary.fabric {
            let ns = f.as_str().into();
            out.push(inspect::dump(kernel, &ns, &[]).await.map_err(failed)?);
        }
        for n in &summary.nodes {
            let ns = n.netns.as_str().into();
            out.push(
                inspect::dump(kernel, &ns, &n.sysctls)
                    .await
                    .map_err(failed)?,
            );
        }
        Ok(out)
    }

    /// `nslab apply` of a running lab: changes what differs between the lab and `plan`
    /// (see `apply::reconcile`). Needs a session that holds the lock.
    pub async fn apply(
        &self,
        t: &Topology,
        plan: &Plan,
        opts: &UpOptions,
        cancel: Cancel,
    ) -> Result<Applied, ApplyError> {
        let Some(lock) = &self.lock else {
            return Err(ApplyError::Host {
                lab: self.live.lab.clone(),
                source: std::io::Error::other("apply needs a session that holds the lab's lock"),
            });
        };
        let kernel = || {
            self.kernel().map_err(|e| ApplyError::Host {
                lab: self.live.lab.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        };
        reconcile::change_locked(t, plan, opts, cancel, kernel, lock).await
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
        if let Some(k) = self.kernel.own.get() {
            k.close_all();
        }
    }
}

/// The environment a command in the node starts with, as `docker exec` gives it: the
/// base (PATH, HOME, USER, and the caller's TERM), the node's `env:`, then `extra`.
/// Nothing else of the caller's environment gets in.
fn node_env(n: &crate::state::NodeSummary, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = crate::node::environ::base(std::env::var("TERM").ok());
    env.extend(n.env.iter().cloned());
    env.extend(extra.iter().cloned());
    env
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
