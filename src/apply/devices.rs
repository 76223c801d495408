//! The kernel functions of nodes' own interfaces (dummy, vlan, macvlan; see
//! `plan/links.rs`), and the probe that tells, before `up` makes anything, whether this
//! kernel can make dummies and vlans at all.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, MacVlanMode};
use rtnetlink::{Handle, LinkDummy, LinkMacVlan, LinkMessageBuilder, LinkVeth, LinkVlan};

use super::error::{KernelError, StepError, missing_link_kind, node_of, object_of};
use super::links::{add_up, own_end};
use crate::kinds::MacvlanMode;
use crate::plan::links::{Link, LinkSpec, Macvlan, Vlan};
use crate::plan::{Op, Plan};

/// A dummy, up.
pub async fn dummy(h: &Handle, l: &Link) -> Result<(), KernelError> {
    let b = LinkMessageBuilder::<LinkDummy>::new(&l.name);
    add_up(h, own_end(b, l, true)).await
}

/// A vlan on an interface of the same namespace, up.
pub async fn vlan(h: &Handle, l: &Link, v: &Vlan) -> Result<(), KernelError> {
    let b = LinkVlan::new(&l.name, v.parent_ifindex, v.vlan_id);
    add_up(h, own_end(b, l, true)).await
}

/// A macvlan on the host's interface, asked for from the host's namespace with the
/// node's as its target, so it never appears on the host under the node's name. A
/// missing parent is named, with the interfaces the host has.
pub async fn macvlan(
    home: &Handle,
    node_fd: &OwnedFd,
    l: &Link,
    m: &Macvlan,
) -> Result<(), KernelError> {
    let parent = host_ifindex(home, &m.parent).await?;
    let mode = match m.mode {
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
    };
    let b = LinkMacVlan::new(&l.name, parent, mode).setns_by_fd(node_fd.as_raw_fd());
    // A passthru macvlan takes its parent's MAC; the kernel refuses another.
    let b = own_end(b, l, m.mode != MacvlanMode::Passthru);
    // `node_fd` is borrowed, so it stays open until the request is answered.
    add_up(home, b).await
}

/// The ifindex of the host's interface `name`, or an error that lists the ones it has.
async fn host_ifindex(home: &Handle, name: &str) -> Result<u32, KernelError> {
    let mut names = Vec::new();
    let mut links = home.link().get().execute();
    while let Some(msg) = links.try_next().await.map_err(KernelError::netlink)? {
        for a in &msg.attributes {
            if let LinkAttribute::IfName(n) = a {
                if n == name {
                    return Ok(msg.header.index);
                }
                names.push(n.clone());
            }
        }
    }
    Err(KernelError::Other(format!(
        "the host has no interface `{name}` for the macvlan; its interfaces are: {}",
        names.join(", ")
    )))
}

/// What the probe found: whether this kernel makes dummies and vlans (`None`: the probe
/// could not run, so the create itself will say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    pub dummy: Option<bool>,
    pub vlan: Option<bool>,
}

/// Probes once per process, in a network namespace of its own that goes with the probing
/// thread: a dummy, and a vlan on a veth. Asking the kernel for the kind is the only
/// reliable test: it loads the module on demand when it can (`rtnl-link-<kind>`), so
/// neither /sys/module nor /proc/modules says whether it would work.
pub fn kernel_kinds() -> Kinds {
    static KINDS: OnceLock<Kinds> = OnceLock::new();
    *KINDS.get_or_init(|| {
        in_scratch_netns(|h| async move {
            let dummy = made(
                h.link()
                    .add(LinkDummy::new("probe0").build())
                    .execute()
                    .await,
            );
            let veth = LinkVeth::new("probe1", "probe2").index(4000).build();
            let vlan = match h.link().add(veth).execute().await {
                Ok(()) => made(
                    h.link()
                        .add(LinkVlan::new("probe1.9", 4000, 9).build())
                        .execute()
                        .await,
                ),
                Err(_) => None,
            };
            Kinds { dummy, vlan }
        })
        .unwrap_or(Kinds {
            dummy: None,
            vlan: None,
        })
    })
}

/// Runs `ask` with a netlink handle on a thread of its own, in a network namespace of
/// that thread's own (it goes with the thread), for probes that make a device to learn
/// whether the kernel can. `None`: the probe could not run.
pub(crate) fn in_scratch_netns<T, F>(ask: impl FnOnce(Handle) -> F + Send + 'static) -> Option<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let (conn, h, _) = rtnetlink::new_connection().ok()?;
            tokio::spawn(conn);
            Some(ask(h).await)
        })
    })
    .join()
    .ok()
    .flatten()
}

/// A probe's answer: made (true), a kind this kernel lacks (false, `EOPNOTSUPP`), or
/// another failure that tells nothing (`None`).
pub(crate) fn made(r: Result<(), rtnetlink::Error>) -> Option<bool> {
    match r.map_err(KernelError::netlink) {
        Ok(()) => Some(true),
        Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => Some(false),
        Err(_) => None,
    }
}

/// The first dummy or vlan of the plan that this kernel cannot make, as the error its
/// create would give, so `up` stops before it makes anything.
pub fn missing(lab: &str, plan: &Plan, kinds: Kinds) -> Option<StepError> {
    plan.steps.iter().find_map(|s| {
        let Op::CreateLink(l) = &s.op else {
            return None;
        };
        let has = match l.kind {
            LinkSpec::Dummy(_) => kinds.dummy,
            LinkSpec::Vlan(_) => kinds.vlan,
            _ => None,
        };
        (has == Some(false)).then(|| StepError {
            lab: lab.to_string(),
            node: node_of(lab, &l.netns),
            object: object_of(&s.op),
            operation: "create".into(),
            source: missing_link_kind(
                l.kind.kernel_kind(),
                KernelError::Netlink {
                    errno: libc::EOPNOTSUPP,
                    msg: "Operation not supported".into(),
                },
            ),
        })
    })
}
