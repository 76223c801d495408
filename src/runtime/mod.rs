//! Operations on a running lab: links down and up, impairments, stopping and starting a
//! node's processes, adding and retiring one of them, packet capture. They go through the
//! apply engine (the same kernel operations over netlink, the same process start through
//! the node's init), run under the lab's lock, which a [`Session`] takes for them, and
//! record what they did in the lab's event log (adding and retiring leave that to their
//! caller, `apply`, which holds the lock itself).

mod apply;
pub mod capture;
pub mod events;
pub mod filter;
mod link;
mod node;
mod process;
mod session;
pub mod watch;

pub use apply::{apply, apply_with};
pub use link::{impair, parse_target, set_link};
pub use node::node_action;
pub use process::{add_process, retire_process};
pub use session::{Access, NodeProcesses, Session};

use crate::apply::KernelError;
use crate::state::{HostContext, Journal, LabDir, LabSummary, Record, StateError};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no lab named `{0}` is up")]
    NotUp(String),
    /// Its `up` is still running: the summary is written last.
    #[error(
        "lab `{lab}` is still coming up (`nslab up` is pid {pid}); if that process is not nslab, `nslab down {lab}` removes what the lab left"
    )]
    ComingUp { lab: String, pid: u32 },
    /// An `up` was killed halfway: the journal is there, the summary never came.
    #[error(
        "lab `{lab}` has leftovers of an interrupted `up`; run `nslab down {lab}` to remove them"
    )]
    Leftovers { lab: String },
    #[error("lab `{lab}` has no node `{node}`; its nodes are: {known}")]
    NoNode {
        lab: String,
        node: String,
        known: String,
    },
    /// The node runs on another host of the lab: say which.
    #[error("lab `{lab}`: {}; run the command there", .remote.describe())]
    Remote {
        lab: String,
        remote: crate::state::RemoteNode,
    },
    #[error("node `{node}` of lab `{lab}` has no interface `{iface}`; it has: {known}")]
    NoIface {
        lab: String,
        node: String,
        iface: String,
        known: String,
    },
    /// Bad arguments: what is wrong and what would be right.
    #[error("{0}")]
    Invalid(String),
    /// A kernel operation failed: names the lab, node, object and operation.
    #[error(transparent)]
    Kernel(Box<crate::apply::error::StepError>),
    /// A node's namespaces could not be entered (its init died, say).
    #[error("lab `{lab}`: cannot enter node `{node}`: {source}")]
    Enter {
        lab: String,
        node: String,
        #[source]
        source: std::io::Error,
    },
    /// A command given to `exec` could not be started in the node.
    #[error("cannot run `{program}` in node `{node}` of lab `{lab}`: {source}")]
    Run {
        lab: String,
        node: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lab `{lab}`, node `{node}`: {msg}")]
    Node {
        lab: String,
        node: String,
        msg: String,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("lab `{lab}`: {source}")]
    Host {
        lab: String,
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    pub(crate) fn kernel(
        lab: &str,
        node: &str,
        object: String,
        operation: &str,
        source: KernelError,
    ) -> Self {
        RuntimeError::Kernel(Box::new(crate::apply::error::StepError {
            lab: lab.to_string(),
            node: node.to_string(),
            object,
            operation: operation.to_string(),
            source,
        }))
    }

    /// The command line named something that is not there, or gave bad values.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RuntimeError::Invalid(_)
                | RuntimeError::NoNode { .. }
                | RuntimeError::NoIface { .. }
                | RuntimeError::Run { .. }
                | RuntimeError::Remote { .. }
        )
    }
}

/// Every namespace of a running lab as the kernel has it now (the fabric first, then the
/// nodes in order), normalised for comparison: [`Session::dump`] on a runtime of its own.
pub fn dump_lab(
    host: &HostContext,
    lab: &str,
) -> Result<Vec<crate::apply::inspect::NsState>, RuntimeError> {
    let rt = crate::apply::tokio_runtime().map_err(|e| RuntimeError::Host {
        lab: lab.to_string(),
        source: e,
    })?;
    let session = Session::open(host, lab, Access::Read)?;
    rt.block_on(async { session.dump().await })
}

/// A lab that is up, as its summary describes it, on the host it lives on.
pub struct LiveLab {
    pub lab: String,
    pub host: HostContext,
    pub dir: LabDir,
    /// The summary, read on first use and then kept: at 1,000 nodes it is 0.9 MB of
    /// JSON, 7 ms to parse, and `apply`, which reads the stored plan instead, needs none.
    summary: std::sync::OnceLock<LabSummary>,
    /// The stored plan, read on first use and then kept.
    plan: std::sync::OnceLock<Option<crate::plan::Plan>>,
}

impl LiveLab {
    /// Opens a lab that is up; every command reads a running lab through here, so each
    /// says the same thing about one that is not (quite) up.
    pub fn open(host: &HostContext, lab: &str) -> Result<LiveLab, RuntimeError> {
        crate::model::names::check_lab_name(lab).map_err(RuntimeError::Invalid)?;
        let dir = host.lab_dir(lab);
        // The summary is written last by `up`: a lab is up once it is there.
        if !dir.summary_path().exists() {
            return Err(why_not_up(lab, &dir));
        }
        Ok(LiveLab {
            lab: lab.to_string(),
            host: host.clone(),
            dir,
            summary: std::sync::OnceLock::new(),
            plan: std::sync::OnceLock::new(),
        })
    }

    /// What the lab is, as its summary says (its nodes, their namespaces, interfaces and
    /// addresses). Read on first use, so under the lock for a change.
    pub fn summary(&self) -> Result<&LabSummary, RuntimeError> {
        if let Some(s) = self.summary.get() {
            return Ok(s);
        }
        let path = self.dir.summary_path();
        let s = LabSummary::read(&path).map_err(|_| why_not_up(&self.lab, &self.dir))?;
        s.screen(&self.lab).map_err(|why| {
            StateError::NotTheLabs {
                path: path.clone(),
                why: format!(
                    "{why}, not lab `{}`'s own; nothing was done (`nslab down {}` goes by the journal, not this file)",
                    self.lab, self.lab
                ),
            }
        })?;
        Ok(self.summary.get_or_init(|| s))
    }

    /// The plan the lab was brought up with (or last changed to by `apply`), as recorded:
    /// never recompiled, so a newer nslab or an edited file cannot change what a running
    /// lab is. Read once. `None` for a lab brought up by an nslab that did not record it.
    pub fn stored_plan(&self) -> Option<&crate::plan::Plan> {
        self.plan
            .get_or_init(|| {
                let text = crate::state::files::read(&self.dir.plan_path()).ok()?;
                serde_json::from_str(&text).ok()
            })
            .as_ref()
    }

    /// Where the lab's nodes keep their pid files, control sockets and logs.
    pub fn node_paths(&self) -> crate::node::NodePaths {
        crate::node::NodePaths::of_lab(&self.host, &self.lab)
    }

    /// Where `exec` and `shell` run a command in `node`: inside its init's namespaces
    /// when it has one, else in its network namespace.
    pub fn exec_target(
        &self,
        node: &crate::state::NodeSummary,
    ) -> std::io::Result<crate::node::enter::Target> {
        crate::apply::nodes::target(&self.host, &self.lab, &node.name, &node.netns)
    }

    /// The topology the lab was brought up from, compiled again for what only the model
    /// has (the checks of `nslab test --lab`), with paths relative to where the file was.
    /// `None` when no source was kept (a lab brought up through the Rust API).
    pub fn topology(&self) -> Option<Result<crate::Compiled, crate::CompileError>> {
        let source = crate::state::files::read(&self.dir.source_path()).ok()?;
        let file = std::path::Path::new(&self.summary().ok()?.file);
        let base = file.parent().unwrap_or(std::path::Path::new("/"));
        let name = format!("{} (as brought up)", self.lab);
        // As `up` compiled it: an FRR node's daemons file read beside the file.
        Some(crate::compile::compile_str_reading(
            &source,
            &name,
            base,
            &crate::clab::ImageMap::builtin(),
            &crate::clab::frr::Files::at(base),
        ))
    }

    /// An interface of a node, or the error that lists the ones it has.
    fn iface(
        &self,
        node: &str,
        iface: &str,
    ) -> Result<(&crate::state::NodeSummary, &crate::state::IfaceSummary), RuntimeError> {
        let n = self.node(node)?;
        match n.interfaces.iter().find(|i| i.name == iface) {
            Some(i) => Ok((n, i)),
            None => Err(RuntimeError::NoIface {
                lab: self.lab.clone(),
                node: node.to_string(),
                iface: iface.to_string(),
                known: {
                    let mut names: Vec<&str> =
                        n.interfaces.iter().map(|i| i.name.as_str()).collect();
                    names.sort_by_key(|n| crate::words::iface_order(n));
                    names.join(", ")
                },
            }),
        }
    }

    /// A node of the lab, or the error that lists the ones it has.
    pub fn node(&self, node: &str) -> Result<&crate::state::NodeSummary, RuntimeError> {
        let summary = self.summary()?;
        if let Some(r) = summary.remote(node) {
            return Err(RuntimeError::Remote {
                lab: self.lab.clone(),
                remote: r.clone(),
            });
        }
        summary.node(node).ok_or_else(|| RuntimeError::NoNode {
            lab: self.lab.clone(),
            node: node.to_string(),
            known: summary
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// Why a lab has no summary: it is not up, it is still coming up (the summary is written
/// last), or an interrupted `up` left it incomplete (which `down` removes).
fn why_not_up(lab: &str, dir: &LabDir) -> RuntimeError {
    if !dir.exists() {
        return RuntimeError::NotUp(lab.to_string());
    }
    let records = Journal::read(&dir.journal_path()).unwrap_or_default();
    let finished = records.iter().any(|r| matches!(r, Record::Up { .. }));
    let coming_up = records.iter().find_map(|r| match r {
        Record::Begin { pid, .. } => Some(*pid),
        _ => None,
    });
    match coming_up {
        Some(pid) if !finished && std::path::Path::new(&format!("/proc/{pid}")).exists() => {
            RuntimeError::ComingUp {
                lab: lab.to_string(),
                pid,
            }
        }
        _ => RuntimeError::Leftovers {
            lab: lab.to_string(),
        },
    }
}
