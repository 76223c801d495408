//! What `up` checks before the lab has anything on the host: the lab's directory, the
//! kernel's device kinds, namespaces someone else holds, a shared network's registry and
//! clashes on the host. A refusal here leaves the host as it was.

use super::already_up;
use super::netlink::NetlinkKernel;
use super::{ApplyError, NS_THREADS, UpOptions, devices, hostnet, mgmtnet, netns, progress};
use crate::model::Topology;
use crate::plan::{LinkSpec, Op, Plan};
use crate::state::{HostContext, Journal, LabDir, LabLock, LabSummary, Record};

/// What `up` holds once nothing stands in the lab's way: its locks, the kernel's
/// handles, its share of a shared management network, and the plan with that network's
/// addresses filled in (when it joins one).
/// (Fields drop in order: the host lock goes before the lab's lock, as it always has.)
pub(super) struct Admitted {
    pub(super) joined: Joined,
    pub(super) patched: Option<Plan>,
    pub(super) kernel: NetlinkKernel,
    pub(super) held: Held,
}

/// The locks `up` takes before it looks at the host, in the order they are let go.
pub(super) struct Held {
    pub(super) host_lock: crate::state::HostLock,
    pub(super) vnis: Option<crate::state::vnis::VniLock>,
    pub(super) lock: LabLock,
}

/// A shared management network's registry and this lab's addresses on it.
pub(super) type Joined = Option<(
    crate::state::mgmtnet::Registry,
    Vec<crate::state::mgmtnet::Held>,
)>;

/// The checks `up` makes under the host lock before anything of the lab exists: a
/// refusal here leaves the host as it was (not even the lab's lock file stays).
pub(super) async fn admit(
    t: &Topology,
    plan: &Plan,
    opts: &UpOptions,
    held: Held,
) -> Result<Admitted, ApplyError> {
    // Bound in the order they were taken, so an early return lets them go in reverse.
    let lock = held.lock;
    let vnis = held.vnis;
    let host_lock = held.host_lock;
    let lab = t.lab.clone();
    let host = &opts.host;
    // Only here, under the host lock, is /run/netns made ready (and what nslab made there
    // recorded): a `status` or `link` that did it unlocked could race the last `down`
    // releasing it, and leave a mount without its record.
    if let Err(e) = netns::ensure_netns_dir(host) {
        drop(host_lock);
        drop(lock);
        return Err(ApplyError::Host { lab, source: e });
    }
    let kernel = match NetlinkKernel::new(host, tokio::runtime::Handle::current(), NS_THREADS) {
        Ok(k) => k.for_lab(&lab),
        Err(e) => {
            drop(host_lock);
            drop(lock);
            return Err(ApplyError::Host {
                lab,
                source: std::io::Error::other(e.to_string()),
            });
        }
    };
    progress::trace("checks");
    let taken = foreign_netns(host, plan);
    if !taken.is_empty() {
        // Nothing of this lab exists: not even its lock file stays.
        refused_before_anything(host, host_lock, lock);
        return Err(ApplyError::ForeignNetns { lab, names: taken });
    }
    // A shared management network: the lab's addresses on it come from its registry,
    // read here under the host lock, so no two labs' `up`s hand out one address.
    let joined = match mgmtnet::reserve(host, t, plan, &opts.file) {
        Ok(j) => j,
        Err(e) => {
            refused_before_anything(host, host_lock, lock);
            return Err(e);
        }
    };
    let patched = joined
        .as_ref()
        .map(|(_, held)| mgmtnet::with_addresses(plan, t, held));
    // What the lab makes on the host itself must not be there yet: checked before
    // anything exists, so a clash leaves the host as it was; after the registry's word
    // on a shared network, which names the labs a mismatch is with.
    let checked = patched.as_ref().unwrap_or(plan);
    let clashes = hostnet::clashes(checked)
        .await
        .map_err(|e| ApplyError::Host {
            lab: lab.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    if !clashes.is_empty() {
        refused_before_anything(host, host_lock, lock);
        return Err(ApplyError::HostClash { lab, clashes });
    }
    Ok(Admitted {
        joined,
        patched,
        kernel,
        held: Held {
            host_lock,
            vnis,
            lock,
        },
    })
}

/// Refuses a lab whose directory exists: up already, or left by an `up` or `down` that
/// did not finish (its `down` removes that first).
pub(super) fn not_there_yet(lab: &str, dir: &LabDir) -> Result<(), ApplyError> {
    if !dir.exists() {
        return Ok(());
    }
    let records = Journal::read(&dir.journal_path())?;
    if records.iter().any(|r| matches!(r, Record::Up { .. })) {
        return Err(already_up(
            lab.to_string(),
            LabSummary::read(&dir.summary_path()).ok(),
        ));
    }
    Err(ApplyError::Leftovers {
        lab: lab.to_string(),
    })
}

/// A dummy or vlan this kernel cannot make stops `up` before it makes anything (the
/// kernel's kinds are read only when the plan has one).
pub(super) fn devices_known(lab: &str, plan: &Plan) -> Result<(), ApplyError> {
    if plan.steps.iter().any(|s| {
        matches!(&s.op, Op::CreateLink(l) if matches!(l.kind, LinkSpec::Dummy(_) | LinkSpec::Vlan(_)))
    }) && let Some(e) = devices::missing(lab, plan, tokio::task::block_in_place(devices::kernel_kinds))
    {
        return Err(ApplyError::Step(Box::new(e)));
    }
    Ok(())
}

/// Namespaces of this lab that exist already belong to someone else: `up` refuses them
/// before creating anything, rather than fail halfway.
fn foreign_netns(host: &HostContext, plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::CreateNetns { netns } if host.netns_path(netns).exists() => Some(netns.to_string()),
            _ => None,
        })
        .collect()
}

/// An `up` refused before it made anything leaves the host as it found it: the netns
/// directory it prepared goes again when no lab is left to use it (still under the host
/// lock, as the last `down` releases it).
fn refused_before_anything(host: &HostContext, host_lock: crate::state::HostLock, lock: LabLock) {
    if host.netns_dir_marker().exists()
        && host.labs().is_empty()
        && let Err(e) = netns::release_netns_dir(host)
    {
        crate::errln!("nslab: could not release {}: {e}", host.netns_dir.display());
    }
    drop(host_lock);
    drop(lock);
}
