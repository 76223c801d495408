//! The real kernel: rtnetlink, one handle per namespace. Handles are opened on nslab's
//! namespace threads (a socket stays bound to the namespace it was opened in); the
//! requests themselves run on the tokio runtime.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use ipnet::IpNet;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{BridgeStpState, InfoBridge, InfoKind};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::packet_route::tc::TcMessage;
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder, RouteNextHopBuilder,
};

use super::error::{KernelError, missing_link_kind, missing_qdisc};
use super::kernel::{Begun, Kernel};
use super::netns::{self, NsThreads};
use super::tc;
use crate::model::Route;
use crate::model::hostnet::HOST_NETNS;
use crate::model::kinds::RouteKind;
use crate::plan::{Name, Op, Undo};
use crate::state::HostContext;

/// A namespace nslab holds open: its descriptor and a netlink handle inside it.
#[derive(Clone)]
struct Ns {
    fd: Arc<OwnedFd>,
    handle: Handle,
}

pub struct NetlinkKernel {
    host: HostContext,
    rt: tokio::runtime::Handle,
    threads: NsThreads,
    open: Mutex<HashMap<Name, Ns>>,
    /// The lab whose tag host interfaces get and must carry to be deleted (see
    /// `state::owned::host_tag`); without one, nothing is made or deleted on the host.
    lab: Option<String>,
}

/// The key of the namespace nslab runs in among the open ones: no namespace is named "".
/// That namespace is where a VXLAN's UDP socket lives (see `apply::links::vxlan`).
const HOME: &str = "";

/// A spanning-tree bridge's forward delay, in hundredths of a second: 2 s, the least the
/// kernel takes with STP on (802.1D's default is 15 s), so a port forwards after 4 s of
/// listening and learning instead of 30.
const STP_FORWARD_DELAY: u32 = 200;

impl NetlinkKernel {
    /// `threads` namespace threads; two measured best for creating namespaces here.
    /// Opening one prepares nothing on the host: only `up` makes `/run/netns` ready, under
    /// the host lock (see `apply::up_with`). Namespaces, node directories and inits are
    /// where `host` says.
    pub fn new(
        host: &HostContext,
        rt: tokio::runtime::Handle,
        threads: usize,
    ) -> Result<NetlinkKernel, KernelError> {
        netns::raise_nofile_limit();
        Ok(NetlinkKernel {
            host: host.clone(),
            rt,
            threads: NsThreads::new(threads),
            open: Mutex::new(HashMap::new()),
            lab: None,
        })
    }

    /// This kernel acting for `lab`: what it makes in the host's namespace carries the
    /// lab's tag, and only what carries it is deleted there.
    pub fn for_lab(mut self, lab: &str) -> NetlinkKernel {
        self.lab = Some(lab.to_string());
        self
    }

    /// The lab this kernel acts for, needed for anything in the host's namespace.
    fn host_lab(&self) -> Result<&str, KernelError> {
        self.lab.as_deref().ok_or_else(|| {
            KernelError::Other("no lab given to act for in the host's namespace".into())
        })
    }

    /// Tags what `op` just made in the host's namespace as the lab's (see
    /// `hostnet::tag`); ops elsewhere, or that make no interface, need nothing.
    async fn tag_host(&self, op: &Op) -> Result<(), KernelError> {
        let ifindex = match op {
            Op::CreateBridge { netns, ifindex, .. } if **netns == *HOST_NETNS => *ifindex,
            Op::CreateLink(l) if *l.netns == *HOST_NETNS => l.ifindex,
            _ => return Ok(()),
        };
        let h = self.ns(&Name::from(HOST_NETNS)).await?.handle;
        super::hostnet::tag(&h, self.host_lab()?, ifindex).await
    }

    /// The host this kernel acts on.
    pub fn host(&self) -> &HostContext {
        &self.host
    }

    fn cached(&self, name: &str) -> Option<Ns> {
        self.open.lock().ok()?.get(name).cloned()
    }

    /// The namespace's handle, opening it on a namespace thread the first time.
    async fn ns(&self, name: &Name) -> Result<Ns, KernelError> {
        if let Some(ns) = self.cached(name) {
            return Ok(ns);
        }
        if **name == *HOST_NETNS {
            // The host's own objects (host links, the management bridge): nslab's namespace.
            self.home().await?;
            return self
                .cached(HOME)
                .ok_or_else(|| KernelError::Other("the host's namespace is not open".into()));
        }
        let fd = Arc::new(netns::open(&self.host.netns_dir, name)?);
        self.connect_in(name.clone(), fd).await
    }

    /// Connects a netlink handle inside the namespace `fd` (on a namespace thread that
    /// enters it) and keeps it under `name`.
    async fn connect_in(&self, name: Name, fd: Arc<OwnedFd>) -> Result<Ns, KernelError> {
        let (rt, fd2) = (self.rt.clone(), fd.clone());
        let handle = self
            .threads
            .run(move || {
                netns::enter(&fd2)?;
                connect(&rt)
            })
            .await?;
        let ns = Ns { fd, handle };
        if let Ok(mut open) = self.open.lock() {
            open.insert(name, ns.clone());
        }
        Ok(ns)
    }

    /// A netlink handle in the namespace nslab runs in, made on a namespace thread that
    /// entered it (the thread that asks may be anywhere).
    /// The process's namespace is its main thread's, which never leaves it (only
    /// namespace threads enter others).
    async fn home(&self) -> Result<Handle, KernelError> {
        if let Some(ns) = self.cached(HOME) {
            return Ok(ns.handle);
        }
        let fd = Arc::new(OwnedFd::from(
            std::fs::File::open("/proc/self/ns/net").map_err(KernelError::Io)?,
        ));
        Ok(self.connect_in(Name::from(HOME), fd).await?.handle)
    }

    /// Sends every namespace thread back to nslab's own namespace: a thread left in a
    /// namespace the teardown deleted would keep the kernel from freeing it.
    pub async fn leave_namespaces(&self) -> Result<(), KernelError> {
        let home = Arc::new(OwnedFd::from(
            std::fs::File::open("/proc/self/ns/net").map_err(KernelError::Io)?,
        ));
        self.threads
            .on_each(move || netns::enter(&home))
            .await
            .map_err(KernelError::Io)
    }

    /// Drops every handle this kernel holds (their connection tasks end with them).
    pub fn close_all(&self) {
        if let Ok(mut open) = self.open.lock() {
            open.clear();
        }
    }

    async fn create_netns(&self, name: &Name) -> Result<(), KernelError> {
        let (rt, path) = (self.rt.clone(), self.host.netns_path(name));
        let made = self
            .threads
            .run(move || {
                let fd = netns::create_here(&path)?;
                let handle = connect(&rt)?;
                Ok((fd, handle))
            })
            .await;
        let (fd, handle) = match made {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(KernelError::NetnsExists(name.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        if let Ok(mut open) = self.open.lock() {
            open.insert(
                name.clone(),
                Ns {
                    fd: Arc::new(fd),
                    handle,
                },
            );
        }
        Ok(())
    }

    async fn sysctl(&self, name: &Name, key: &str, value: &str) -> Result<(), KernelError> {
        let ns = self.ns(name).await?;
        let (key, value) = (key.to_string(), value.to_string());
        self.threads
            .run(move || {
                netns::enter(&ns.fd)?;
                netns::write_sysctl(&key, &value)
            })
            .await
            .map_err(KernelError::Io)
    }

    async fn apply_op(&self, op: &Op) -> Result<(), KernelError> {
        if op.netns() == HOST_NETNS {
            // Refused before anything is made there: an interface made untagged would be
            // left for the user to remove.
            self.host_lab()?;
        }
        self.make(op).await?;
        self.tag_host(op).await
    }

    /// One step's kernel change: netlink for links, addresses, routes and qdiscs; the
    /// node side (run dirs, mount template, hosts file, cgroups, inits, processes) in
    /// [`Self::make_node_side`].
    async fn make(&self, op: &Op) -> Result<(), KernelError> {
        match op {
            Op::CreateNetns { netns } => self.create_netns(netns).await,
            Op::SetSysctl { netns, key, value } => self.sysctl(netns, key, value).await,
            Op::CreateBridge {
                netns,
                name,
                ifindex,
                mac,
                mtu,
                stp,
            } => {
                let h = self.ns(netns).await?.handle;
                create_bridge(&h, name, *ifindex, mac, *mtu, *stp).await
            }
            Op::CreateLink(l) => self.create_link(l).await,
            Op::SetLinkUp { netns, ifindex, .. } => {
                let msg = LinkUnspec::new_with_index(*ifindex).up().build();
                self.change_link(netns, msg).await
            }
            Op::SetLinkDown { netns, ifindex, .. } => {
                let msg = LinkUnspec::new_with_index(*ifindex).down().build();
                self.change_link(netns, msg).await
            }
            Op::SetMtu {
                netns,
                ifindex,
                mtu,
                ..
            } => {
                let msg = LinkUnspec::new_with_index(*ifindex).mtu(*mtu).build();
                self.change_link(netns, msg).await
            }
            Op::SetMulticastSnooping {
                netns, ifindex, on, ..
            } => {
                let h = self.ns(netns).await?.handle;
                set_snooping(&h, *ifindex, *on).await
            }
            Op::AddAddress {
                netns,
                ifindex,
                address,
                ..
            } => {
                let h = self.ns(netns).await?.handle;
                add_address(&h, *ifindex, *address).await
            }
            Op::JoinMgmt {
                netns,
                network,
                bridge,
                ifindex,
                mac,
                addresses,
            } => {
                let h = self.ns(netns).await?.handle;
                let op = (network.as_str(), &**bridge, *ifindex, *mac, &addresses[..]);
                super::mgmtnet::join(&h, &self.host, op).await
            }
            Op::AddRoute { netns, route } => {
                let h = self.ns(netns).await?.handle;
                add_route(&h, route).await
            }
            Op::SetImpair {
                netns,
                ifindex,
                impair,
                ..
            } => {
                let h = self.ns(netns).await?.handle;
                set_impair(&h, *ifindex, impair).await
            }
            Op::Barrier { .. } => Ok(()),
            Op::AddProcess { .. }
            | Op::MountRunDirs { .. }
            | Op::CreateMountTemplate { .. }
            | Op::WriteHosts { .. }
            | Op::CreateCgroup { .. }
            | Op::StartNode { .. }
            | Op::StartProcess { .. }
            | Op::RunExec { .. } => self.make_node_side(op).await,
        }
    }

    /// The steps that make no netlink object: a node's files, mounts, cgroup, init and
    /// processes, which the executor orders and journals like the rest.
    async fn make_node_side(&self, op: &Op) -> Result<(), KernelError> {
        let other = |e: String| KernelError::Other(e);
        match op {
            Op::AddProcess { netns, node, spec } => {
                let lab = crate::model::names::lab_of_netns(netns);
                super::process::add_process(&self.host, &lab, node, spec)
                    .await
                    .map_err(other)
            }
            Op::MountRunDirs { lab } => {
                let paths = crate::node::NodePaths::of_lab(&self.host, lab);
                tokio::task::spawn_blocking(move || crate::node::rundirs::mount(&paths))
                    .await
                    .map_err(|e| other(e.to_string()))?
                    .map_err(other)
            }
            Op::CreateMountTemplate { lab } => {
                let at = crate::node::NodePaths::of_lab(&self.host, lab).mount_template();
                let netns_dir = self.host.netns_dir.clone();
                tokio::task::spawn_blocking(move || crate::node::template::create(&at, &netns_dir))
                    .await
                    .map_err(|e| other(e.to_string()))?
                    .map_err(other)
            }
            Op::WriteHosts { lab, content } => {
                let paths = crate::node::NodePaths::of_lab(&self.host, lab);
                crate::state::files::ensure_dir(&paths.dir).map_err(|e| other(e.to_string()))?;
                crate::state::files::replace_readable(&paths.hosts(), content.as_bytes())
                    .map_err(|e| other(e.to_string()))
            }
            Op::CreateCgroup {
                node,
                limits,
                outside,
                ..
            } => {
                let lab = crate::model::names::lab_of_netns(op.netns());
                super::nodes::create_cgroup(&lab, node, limits, *outside).await
            }
            Op::StartNode { start, .. } => super::nodes::start_node(&self.host, start).await,
            Op::StartProcess {
                netns,
                node,
                process,
            } => {
                let lab = crate::model::names::lab_of_netns(netns);
                super::nodes::start_process(&self.host, &lab, node, process).await
            }
            Op::RunExec {
                netns,
                node,
                argv,
                ignore_errors,
                timeout_ms,
            } => {
                let lab = crate::model::names::lab_of_netns(netns);
                let timeout = timeout_ms.map(std::time::Duration::from_millis);
                super::nodes::run_exec(&self.host, &lab, node, netns, argv, *ignore_errors, timeout)
                    .await
            }
            other_op => Err(other(format!("{} is not a node step", other_op.name()))),
        }
    }

    /// A link of any kind (`apply::links`), given the descriptors of every namespace it
    /// touches and, for kinds made from nslab's own namespace, a handle there.
    async fn create_link(&self, l: &crate::plan::Link) -> Result<(), KernelError> {
        let spaces = l.namespaces();
        let own = self.ns(spaces[0]).await?;
        let mut others = Vec::new();
        for n in &spaces[1..] {
            others.push(self.ns(n).await?.fd);
        }
        let home = match l.kind.from_home() {
            true => Some(self.home().await?),
            false => None,
        };
        let at = super::links::At {
            own: &own.handle,
            own_fd: &own.fd,
            others: &others,
            home: home.as_ref(),
        };
        super::links::create(&at, l).await
    }

    /// An RTM_NEWLINK change (`link().set()` silently ignores some attributes).
    async fn change_link(
        &self,
        netns: &Name,
        msg: rtnetlink::packet_route::link::LinkMessage,
    ) -> Result<(), KernelError> {
        let h = self.ns(netns).await?.handle;
        h.link()
            .change(msg)
            .execute()
            .await
            .map_err(KernelError::netlink)
    }

    async fn undo_op(&self, undo: &Undo) -> Result<(), KernelError> {
        let r = match undo {
            // Namespaces, nodes, cgroups and mounts go in the teardown's own phases
            // (apply/teardown.rs), never one by one through netlink.
            Undo::DeleteNetns { .. }
            | Undo::StopNode { .. }
            | Undo::UnmountRunDirs { .. }
            | Undo::RetireProcess { .. }
            | Undo::RemoveMountTemplate { .. }
            | Undo::RemoveCgroup { .. } => {
                return Err(KernelError::Other(format!(
                    "{} is a phase of the teardown, not a netlink undo",
                    undo.name()
                )));
            }
            Undo::DeleteLink {
                netns,
                ifindex,
                name,
            } if **netns == *HOST_NETNS => {
                let h = self.ns(netns).await?.handle;
                // Gone already (its node's namespace took a veth with it), or the number
                // is someone else's now: nothing of ours to delete. Untagged: refused.
                if !super::hostnet::still_ours(&h, self.host_lab()?, *ifindex, name).await? {
                    return Ok(());
                }
                h.link()
                    .del(*ifindex)
                    .execute()
                    .await
                    .map_err(KernelError::netlink)
            }
            Undo::LeaveMgmt {
                netns,
                network,
                bridge,
                ifindex,
            } => {
                let h = self.ns(netns).await?.handle;
                let op = (network.as_str(), &**bridge, *ifindex);
                super::mgmtnet::leave(&h, &self.host, self.host_lab()?, op).await
            }
            Undo::DeleteLink { netns, ifindex, .. } | Undo::DeleteTunnel { netns, ifindex, .. } => {
                match self.ns(netns).await {
                    Ok(ns) => ns
                        .handle
                        .link()
                        .del(*ifindex)
                        .execute()
                        .await
                        .map_err(KernelError::netlink),
                    Err(e) => Err(e),
                }
            }
            Undo::DeleteAddress {
                netns,
                ifindex,
                address,
                link,
            } if **netns == *HOST_NETNS => {
                let h = self.ns(netns).await?.handle;
                // Only on the link the lab made, under its name and with its tag: never
                // by number alone on whatever host interface holds that number now.
                let Some(name) = link else { return Ok(()) };
                match super::hostnet::still_ours(&h, self.host_lab()?, *ifindex, name).await? {
                    true => delete_address(&h, *ifindex, *address).await,
                    false => Ok(()),
                }
            }
            Undo::DeleteAddress {
                netns,
                ifindex,
                address,
                ..
            } => match self.ns(netns).await {
                Ok(ns) => delete_address(&ns.handle, *ifindex, *address).await,
                Err(e) => Err(e),
            },
            Undo::DeleteRoute { netns, dst, .. } => match self.ns(netns).await {
                Ok(ns) => delete_route(&ns.handle, *dst).await,
                Err(e) => Err(e),
            },
            Undo::ClearImpair { netns, ifindex } => match self.ns(netns).await {
                Ok(ns) => clear_root_qdisc(&ns.handle, *ifindex).await,
                Err(e) => Err(e),
            },
        };
        match r {
            Err(e) if e.is_gone() => Ok(()),
            Err(KernelError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Runs `f` on a namespace thread inside `netns` (for sockets and probes).
    pub async fn in_netns<T: Send + 'static>(
        &self,
        netns: &Name,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, KernelError> {
        let ns = self.ns(netns).await?;
        self.threads
            .run(move || {
                netns::enter(&ns.fd)?;
                f()
            })
            .await
            .map_err(KernelError::Io)
    }

    /// The netlink handle of a namespace, for inspection.
    pub async fn handle(&self, netns: &Name) -> Result<Handle, KernelError> {
        Ok(self.ns(netns).await?.handle)
    }
}

impl Kernel for NetlinkKernel {
    async fn apply(&self, op: &Op) -> Result<(), KernelError> {
        self.apply_op(op).await
    }

    async fn start(&self, op: &Op) -> Result<Begun, KernelError> {
        let Op::StartProcess {
            netns,
            node,
            process,
        } = op
        else {
            return self.apply_op(op).await.map(|()| Begun::Done);
        };
        let lab = crate::model::names::lab_of_netns(netns);
        let ready = super::nodes::request_start(&self.host, &lab, node, process).await?;
        Ok(if ready { Begun::Done } else { Begun::Pending })
    }

    async fn ready(&self, op: &Op) -> Result<(), KernelError> {
        match op {
            Op::StartProcess {
                netns,
                node,
                process,
            } => {
                let lab = crate::model::names::lab_of_netns(netns);
                super::nodes::wait_ready(&self.host, &lab, node, process).await
            }
            _ => Ok(()),
        }
    }

    async fn undo(&self, undo: &Undo) -> Result<(), KernelError> {
        self.undo_op(undo).await
    }
}

/// Opens an rtnetlink connection in the calling thread's namespace and starts its task.
/// A bridge, down and without snooping until the rest of the wiring is in place (see
/// `Gate::Bridges`); `LinkBridge::new` would set IFF_UP.
async fn create_bridge(
    h: &Handle,
    name: &str,
    ifindex: u32,
    mac: &[u8; 6],
    mtu: Option<u32>,
    stp: bool,
) -> Result<(), KernelError> {
    let mut b = LinkMessageBuilder::<LinkBridge>::new(name)
        .index(ifindex)
        .address(mac.to_vec())
        .append_info_data(InfoBridge::MulticastSnooping(false));
    if let Some(m) = mtu {
        b = b.mtu(m);
    }
    if stp {
        b = b.append_info_data(InfoBridge::ForwardDelay(STP_FORWARD_DELAY));
        b = b.append_info_data(InfoBridge::StpState(BridgeStpState::KernelStp));
    }
    h.link()
        .add(b.build())
        .execute()
        .await
        .map_err(|e| missing_link_kind("bridge", KernelError::netlink(e)))
}

/// A bridge's multicast snooping: RTM_NEWLINK without NLM_F_CREATE, the kernel's
/// changelink for a bridge.
async fn set_snooping(h: &Handle, ifindex: u32, on: bool) -> Result<(), KernelError> {
    let msg = LinkMessageBuilder::<LinkBridge>::new_with_info_kind(InfoKind::Bridge)
        .index(ifindex)
        .append_info_data(InfoBridge::MulticastSnooping(on))
        .build();
    h.link()
        .add(msg)
        .set_flags(NLM_F_REQUEST | NLM_F_ACK)
        .execute()
        .await
        .map_err(KernelError::netlink)
}

/// A link's impairment as its root qdisc: netem when it delays or drops, tbf for a rate
/// alone.
async fn set_impair(
    h: &Handle,
    ifindex: u32,
    impair: &crate::model::Impair,
) -> Result<(), KernelError> {
    let (kind, msg) = if impair.needs_netem() {
        ("netem", tc::netem(ifindex, impair))
    } else {
        ("tbf", tc::tbf(ifindex, impair.rate.unwrap_or(u64::MAX)))
    };
    add_qdisc(h, msg).await.map_err(|e| missing_qdisc(kind, e))
}

fn connect(rt: &tokio::runtime::Handle) -> std::io::Result<Handle> {
    let _guard = rt.enter();
    let (conn, handle, _) = rtnetlink::new_connection()?;
    rt.spawn(conn);
    Ok(handle)
}

async fn add_route(h: &Handle, r: &Route) -> Result<(), KernelError> {
    fn bad(e: impl std::fmt::Display) -> KernelError {
        KernelError::Other(e.to_string())
    }
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(r.dst.addr(), r.dst.prefix_len())
        .map_err(bad)?;
    b = match r.kind {
        RouteKind::Unicast => b,
        RouteKind::Blackhole => b.kind(RouteType::BlackHole),
        RouteKind::Unreachable => b.kind(RouteType::Unreachable),
        RouteKind::Prohibit => b.kind(RouteType::Prohibit),
    };
    if let Some(m) = r.metric {
        b = b.priority(m);
    }
    if let Some(i) = r.dev_ifindex {
        b = b.output_interface(i);
    }
    match r.nexthops.as_slice() {
        [] => {}
        [h1] if h1.weight == 0 => {
            b = b
                .gateway(h1.gateway)
                .map_err(bad)?
                .output_interface(h1.ifindex);
        }
        hops => {
            let mut nhs = Vec::new();
            for n in hops {
                let hop = if n.gateway.is_ipv6() {
                    RouteNextHopBuilder::new_ipv6()
                } else {
                    RouteNextHopBuilder::new_ipv4()
                };
                nhs.push(
                    hop.interface(n.ifindex)
                        .via(n.gateway)
                        .map_err(bad)?
                        .weight(n.weight)
                        .build(),
                );
            }
            b = b.multipath(nhs);
        }
    }
    h.route()
        .add(b.build())
        .execute()
        .await
        .map_err(KernelError::netlink)
}

/// Adds an address; an IPv6 one without duplicate address detection, so it is usable at
/// once.
pub(super) async fn add_address(
    h: &Handle,
    ifindex: u32,
    address: IpNet,
) -> Result<(), KernelError> {
    let mut req = h
        .address()
        .add(ifindex, address.addr(), address.prefix_len());
    if address.addr().is_ipv6() {
        req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    req.execute().await.map_err(KernelError::netlink)
}

/// Deletes the route to `dst` of any type: a blackhole or unreachable route is deleted
/// too (the builder's default, unicast, would match only unicast routes).
async fn delete_route(h: &Handle, dst: IpNet) -> Result<(), KernelError> {
    let msg = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst.addr(), dst.prefix_len())
        .map_err(|e| KernelError::Other(e.to_string()))?
        .kind(RouteType::Unspec)
        .build();
    h.route()
        .del(msg)
        .execute()
        .await
        .map_err(KernelError::netlink)
}

/// Deletes the root qdisc of `ifindex`: without a parent the kernel finds nothing to
/// delete.
async fn clear_root_qdisc(h: &Handle, ifindex: u32) -> Result<(), KernelError> {
    let mut req = h.qdisc().del(ifindex as i32);
    req.message_mut().header.parent = rtnetlink::packet_route::tc::TcHandle::ROOT;
    req.execute().await.map_err(KernelError::netlink)
}

async fn delete_address(h: &Handle, ifindex: u32, address: IpNet) -> Result<(), KernelError> {
    let mut addrs = h
        .address()
        .get()
        .set_link_index_filter(ifindex)
        .set_address_filter(address.addr())
        .execute();
    while let Some(msg) = addrs.next().await {
        let msg = msg.map_err(KernelError::netlink)?;
        h.address()
            .del(msg)
            .execute()
            .await
            .map_err(KernelError::netlink)?;
    }
    Ok(())
}

/// Sends a qdisc message built by hand (rtnetlink has no tbf/netem builders).
async fn add_qdisc(h: &Handle, msg: TcMessage) -> Result<(), KernelError> {
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewQueueDiscipline(msg));
    // Replace: a running lab's impairment can be changed in place (`nslab link impair`).
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let mut resp = h.clone().request(req).map_err(KernelError::netlink)?;
    while let Some(m) = resp.next().await {
        if let NetlinkPayload::Error(e) = m.payload
            && e.code.is_some()
        {
            return Err(KernelError::netlink(rtnetlink::Error::NetlinkError(e)));
        }
    }
    Ok(())
}
