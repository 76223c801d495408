//! Command-line interface: clap's raw arguments, one module per subcommand. Each
//! subcommand returns an exit code or a [`CliError`]; `main.rs` only prints and exits.

mod agent;
mod apply;
mod capture;
mod down;
mod events;
mod exec;
mod graph;
mod health;
mod import;
mod k8s;
mod link;
mod logs;
mod ls;
mod node;
mod output;
mod placement;
mod plan;
mod progress;
mod ps;
mod rootless;
mod shell;
mod status;
mod table;
mod test;
mod up;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::compile::CompileError;

/// Exit codes shared by every command.
pub mod exit {
    pub const OK: u8 = 0;
    /// A check failed, or a command on a running lab failed.
    pub const FAILED: u8 = 1;
    /// The lab could not come up.
    pub const LAB_DOWN: u8 = 2;
    /// The topology file (or the arguments) are invalid.
    pub const INVALID: u8 = 3;

    /// A command stopped by a signal once it has cleaned up (rolled back, torn down):
    /// 128 + N, what a shell reports for a command that signal N killed (130 for SIGINT,
    /// 143 for SIGTERM, 129 for SIGHUP), so a CI runner's cancel is told from a failure.
    /// A closed stdout counts as SIGPIPE (141), as `yes | head -1` does. `reason` is
    /// the cancel channel's (see `apply::signals`).
    pub fn interrupted(reason: &str) -> u8 {
        use nix::sys::signal::Signal;
        let signal = match reason.parse::<Signal>() {
            Ok(s) => s,
            Err(_) if reason == crate::apply::CLOSED_STDOUT => Signal::SIGPIPE,
            // Every reason is one of the above; an unknown one is still no success.
            Err(_) => return FAILED,
        };
        128 + signal as u8
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "nslab",
    version,
    about = "Build network labs out of Linux namespaces, from a YAML topology",
    long_about = "nslab compiles a YAML topology (nodes, links, bridges, addresses, routes, \
processes, tests) into a deterministic plan and applies it through netlink. The same file \
always gives the same plan and the same kernel state.\n\n\
Exit codes: 0 success, 1 failure, 2 the lab could not come up, 3 invalid input."
)]
pub struct Cli {
    /// Run the lab in a user namespace of its own, as nslab does by itself for a user who
    /// is not root (state in $XDG_RUNTIME_DIR/nslab); for trying that path as root.
    #[arg(long, global = true)]
    pub rootless: bool,
    #[command(subcommand)]
    pub command: Command,
    /// This machine's name in a lab spread over hosts (`hosts:` in the file): plan, up and
    /// apply make only this host's share; other commands say where a remote node lives.
    #[arg(long, global = true, value_name = "NAME")]
    pub host: Option<String>,
}

/// Deferred: only the subcommand being run has its arguments built (clap builds all of
/// them otherwise, about a quarter of a millisecond on every call, a tenth of `down`).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Check a topology file and report every problem in it, with file:line:col.
    ///
    /// Exits 0 when the file is valid (warnings are printed but do not fail it) and 3
    /// when it is not.
    Validate {
        /// The topology file.
        file: PathBuf,
        /// Print nothing on success.
        #[arg(short, long)]
        quiet: bool,
        /// For a containerlab file: an image map (YAML), consulted before the built-in
        /// one (see docs/containerlab.md). Not used for nslab files.
        #[arg(long, value_name = "FILE")]
        image_map: Option<PathBuf>,
    },
    /// Print a containerlab topology (`.clab.yml`) as nslab YAML, with a comment on
    /// everything that did not map.
    ///
    /// Every command also reads containerlab files directly; import is for moving over
    /// for good. --image-map says what container images mean (see docs/containerlab.md).
    Import {
        /// The containerlab topology file.
        file: PathBuf,
        /// An image map (YAML), consulted before the built-in one.
        #[arg(long, value_name = "FILE")]
        image_map: Option<PathBuf>,
    },
    /// Print the ordered steps that would bring the lab up, without touching the kernel.
    ///
    /// Each line is one step: its id, the operation, what it acts on, and the steps it
    /// waits for. The same file always prints the same plan.
    Plan {
        /// The topology file.
        file: PathBuf,
        /// Print the plan as JSON (steps with typed fields and dependencies).
        #[arg(long)]
        json: bool,
        /// Print the teardown derived from the plan instead.
        #[arg(long)]
        teardown: bool,
        /// For a containerlab file: an image map (YAML), consulted before the built-in
        /// one (see docs/containerlab.md). Not used for nslab files.
        #[arg(long, value_name = "FILE")]
        image_map: Option<PathBuf>,
    },
    /// Draw the topology: nodes and bridges, with interface names and addresses on the
    /// links; with --lab, a running lab and its live state (links up or down,
    /// impairments, processes).
    ///
    /// svg and html are laid out by nslab itself (no graphviz needed); html is one
    /// self-contained page with pan/zoom and a panel per node. --serve serves that page
    /// on a loopback address and keeps its live state fresh.
    Graph {
        /// The topology file (omit with --lab).
        #[arg(required_unless_present = "lab")]
        file: Option<PathBuf>,
        /// Draw this running lab, with its live state.
        #[arg(long, conflicts_with = "file")]
        lab: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "dot")]
        format: crate::draw::Format,
        /// Serve the live page on ADDR (loopback only) until stopped.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = graph::DEFAULT_ADDR, requires = "lab")]
        serve: Option<String>,
        /// For a containerlab file: an image map (YAML), consulted before the built-in
        /// one (see docs/containerlab.md). Not used for nslab files.
        #[arg(long, value_name = "FILE", conflicts_with = "lab")]
        image_map: Option<PathBuf>,
    },
    /// Bring a lab up: namespaces, links, bridges, addresses, routes and sysctls.
    ///
    /// Every object is journaled in /run/nslab/<lab>.journal before it is created (without
    /// root: in $XDG_RUNTIME_DIR/nslab, the lab in a user namespace of its own); if
    /// anything fails, or SIGINT/SIGTERM/SIGHUP arrives, everything created so far is
    /// removed again and the first error is shown. Exits 2 when the lab could not come up.
    Up {
        /// The topology file.
        file: PathBuf,
        /// Steps in flight at once. The kernel state is the same for any value.
        #[arg(short, long, default_value_t = 8)]
        jobs: usize,
        /// Print nothing on success: no progress bar (there is none anyway when stderr is
        /// not a terminal or CI=true) and no summary line.
        #[arg(short, long)]
        quiet: bool,
        /// Raise the host's neighbour-table limits (net.ipv4/ipv6.neigh.default.gc_thresh3
        /// and gc_thresh2) when the lab's estimate passes them, until the lab's `down`.
        #[arg(long)]
        raise_neigh_limit: bool,
        /// For a containerlab file: an image map (YAML), consulted before the built-in
        /// one (see docs/containerlab.md). Not used for nslab files.
        #[arg(long, value_name = "FILE")]
        image_map: Option<PathBuf>,
    },
    /// Make a running lab what the file says, changing only what differs.
    ///
    /// Links, addresses, routes, MTU, sysctls, impairments, bridge members and
    /// single processes change in place (a node's env restarts each of its processes); a
    /// node whose mounts, limits or logs changed is restarted (its links stay); a node
    /// whose isolation changed is replaced, and its peers' links follow. Untouched processes keep running. A lab that is not up is
    /// brought up. Journaled like `up`: a failure or a signal rolls back this change
    /// only, and after a kill -9, `apply` again (or `down`) converges.
    Apply {
        /// The topology file.
        file: PathBuf,
        /// Print the change plan, grouped by node, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: the change plan as JSON.
        #[arg(long, requires = "dry_run")]
        json: bool,
        /// Steps in flight at once. The kernel state is the same for any value.
        #[arg(short, long, default_value_t = 8)]
        jobs: usize,
        /// Print nothing on success.
        #[arg(short, long)]
        quiet: bool,
        /// For a containerlab file: an image map (YAML), consulted before the built-in
        /// one (see docs/containerlab.md). Not used for nslab files.
        #[arg(long, value_name = "FILE")]
        image_map: Option<PathBuf>,
    },
    /// Tear a lab down, from its journal alone (the topology file may be gone or edited).
    ///
    /// Removes every namespace, link and address the lab created, and nothing else. It
    /// goes on after a failure and reports every one. Takes a lab name or a topology file;
    /// with neither, the only running lab.
    Down {
        /// A lab name or a topology file.
        target: Option<String>,
        #[arg(long)]
        lab: Option<String>,
        /// Every lab on this host (`nslab ls`): up, partial, or an orphaned entry of a shared
        /// network's registry, one after another;
        /// a failure is reported and the others still go down.
        #[arg(long, conflicts_with_all = ["target", "lab"])]
        all: bool,
        /// Print nothing on success: no progress bar and no summary line.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show a running lab: each node, its interfaces, their state and addresses.
    ///
    /// Reads the kernel, not only the journal: a link that went down shows as such, and
    /// so does a dead init or a crash-looping process. Exits 1 if a node is missing or
    /// degraded (with --json, the states are in the output and it exits 0).
    Status {
        /// A lab name or a topology file.
        target: Option<String>,
        #[arg(long)]
        lab: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bring a lab up, run the checks of its `tests:` section, report, and tear it down.
    ///
    /// The lab always goes down: on success, on failure, on SIGINT, SIGTERM or SIGHUP, and
    /// when stdout is closed (`| head -1`), unless --keep.
    /// Exit codes: 0 every check passed, 1 a check failed, 2 the lab could not come up,
    /// 3 the input is invalid. With --lab, runs the checks of a lab that is already up.
    Test {
        /// The topology file (omit with --lab).
        file: Option<PathBuf>,
        /// Run the checks of this running lab instead of bringing one up.
        #[arg(long, conflicts_with = "file")]
        lab: Option<String>,
        /// Keep the lab up afterwards, for debugging.
        #[arg(long)]
        keep: bool,
        /// Write a JUnit XML report (one testcase per check).
        #[arg(long, value_name = "PATH")]
        junit: Option<PathBuf>,
        /// Print a JSON report on stdout (progress goes to stderr).
        #[arg(long)]
        json: bool,
        /// Run only the checks (and scenario steps) of this name; repeatable, `*` matches
        /// any characters (`--check 'reach-*'`). The others are reported as skipped.
        #[arg(long = "check", value_name = "NAME")]
        checks: Vec<String>,
        /// Steps in flight at once while the lab comes up, as `up --jobs`.
        #[arg(short, long, default_value_t = 8)]
        jobs: usize,
        /// No progress bar for up and down.
        #[arg(short, long)]
        quiet: bool,
        /// As `up --raise-neigh-limit`, for the lab this run brings up (put back when it
        /// goes down).
        #[arg(long, conflicts_with = "lab")]
        raise_neigh_limit: bool,
        /// For a containerlab file: an image map (YAML), consulted before the built-in
        /// one (see docs/containerlab.md). Not used for nslab files.
        #[arg(long, value_name = "FILE", conflicts_with = "lab")]
        image_map: Option<PathBuf>,
    },
    /// Open an interactive shell inside a node; the prompt shows the lab and the node.
    Shell {
        #[arg(long)]
        lab: Option<String>,
        node: String,
    },
    /// Show the processes of each node (or one): state, restarts and readiness.
    Ps {
        #[arg(long)]
        lab: Option<String>,
        node: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the logs of a node's processes (stdout and stderr), all or one.
    Logs {
        #[arg(long)]
        lab: Option<String>,
        node: String,
        process: Option<String>,
        /// Keep printing as the logs grow.
        #[arg(short, long)]
        follow: bool,
    },
    /// List the labs on this host, with their state (up, partial, orphaned) and the
    /// records they were found in.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bring a link of a running lab down or up, or impair it (delay, loss, rate ...).
    ///
    /// Acts on both ends of the veth (the far end may be a bridge port) unless
    /// --one-side. Every change is recorded in the lab's event log (`nslab events`).
    Link {
        #[command(subcommand)]
        action: LinkCommand,
    },
    /// Stop, start or restart a node's processes, as when a router's daemons crash.
    ///
    /// The node's namespaces and links stay: its peers see an interface that stays up
    /// while the daemons are gone. `start` waits until every process is ready again.
    Node {
        #[command(subcommand)]
        action: NodeCommand,
    },
    /// Capture the packets on a node's interface, both directions, as pcap.
    ///
    /// An AF_PACKET socket inside the node's network namespace: nothing needs installing
    /// in the node. `-w -` streams to stdout, for example into `tcpdump -r -` or
    /// `wireshark -k -i -`. Stops after -c packets, after --duration, or on Ctrl-C.
    /// A filter after the target keeps only the frames it matches, for example
    /// `nslab capture r1:eth0 -w bgp.pcap tcp port 179`; the kernel runs it (classic BPF),
    /// so the frames it drops never reach nslab.
    Capture {
        #[arg(long)]
        lab: Option<String>,
        /// NODE:IFACE, for example r1:eth0.
        target: String,
        /// A pcap-filter(7) subset: ip, ip6, arp, icmp, icmp6, tcp, udp, [src|dst]
        /// host/net/port/portrange (numbers or /etc/services names), ether host, vlan [ID],
        /// [ip|ip6] proto N|NAME, and/or/not, parentheses.
        #[arg(value_name = "FILTER")]
        filter: Vec<String>,
        /// The pcap file to write, or `-` for stdout.
        #[arg(short, long, value_name = "FILE")]
        write: String,
        /// Stop after this many packets.
        #[arg(short, long, value_name = "COUNT")]
        count: Option<u64>,
        /// Stop after this long (for example 10s, 500ms).
        #[arg(long, value_name = "D", value_parser = duration_arg)]
        duration: Option<Duration>,
        /// Where the filter runs: `kernel` (a BPF program on the socket) or `user` (every
        /// frame is copied to nslab and matched there, the reference; to compare).
        #[arg(long, value_name = "WHERE", default_value = "kernel", value_parser = ["kernel", "user"])]
        filter_in: String,
    },
    /// Show the lab's event log: every link, node and capture command, with its time.
    Events {
        /// A lab name or a topology file.
        target: Option<String>,
        #[arg(long)]
        lab: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the Kubernetes manifests that run the lab: a Namespace, a ConfigMap with the
    /// topology and the files its nodes mount, and a privileged DaemonSet of agents.
    ///
    /// `nslab k8s lab.yaml | kubectl apply -f -` deploys it; `kubectl delete -f` of the
    /// same output takes it down. The agent image is built from deploy/Dockerfile.
    K8s {
        /// The topology file.
        file: PathBuf,
        /// The namespace to create and deploy into (default: nslab-<lab>). It is part of
        /// the manifests, so `kubectl delete -f` deletes it: give it one of its own.
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
        /// The agent's image.
        #[arg(long, default_value = crate::k8s::DEFAULT_IMAGE)]
        image: String,
    },
    /// Keep this machine's share of a lab what FILE says: the DaemonSet's container.
    ///
    /// Brings the lab up, or adopts it when it is up already (a restarted agent: the
    /// nodes' processes keep running); applies FILE again whenever it changes (a
    /// ConfigMap update); on SIGTERM, SIGINT or SIGHUP takes the lab down and exits 0. Exits 2
    /// when the lab cannot come up, 3 when FILE is invalid.
    Agent {
        /// The topology file (in the ConfigMap's volume). Its share is the one of
        /// `--host` (the Kubernetes node name), the whole lab without it.
        file: PathBuf,
    },
    /// Run a command inside a node: all its namespaces and its cgroup.
    ///
    /// stdin, stdout, stderr (and the terminal) pass through, and so does the exit code;
    /// no other descriptor does. The command gets the node's environment (its `env:`,
    /// PATH, HOME, the caller's TERM), not the caller's. For example:
    /// `nslab exec r1 ping -c1 r2`. Everything after the node is the command, its own
    /// options too, as with `docker exec` and `ip netns exec`; `--` before it is optional.
    Exec {
        #[arg(long)]
        lab: Option<String>,
        /// Set a variable for the command (KEY=VALUE; KEY alone passes the caller's value).
        #[arg(short, long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// The node, then the command and its arguments: everything after the node is
        /// the command's, options included (`--` between them is optional).
        // One list, so that nothing after the node is read as nslab's own option:
        // `nslab exec r1 --lab other cat /x` must not run in lab `other`.
        #[arg(
            required = true,
            num_args = 2..,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_names = ["NODE", "COMMAND"]
        )]
        node_and_command: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum LinkCommand {
    /// Set the link down: both ends, or this end only with --one-side.
    Down(LinkEnd),
    /// Set the link up again.
    Up(LinkEnd),
    /// Impair the link's egress on both ends (netem for delay/jitter/loss/duplicate/
    /// corrupt/reorder, tbf for a plain rate), replacing any impairment; --clear removes it.
    Impair {
        /// NODE:IFACE, for example r1:eth1.
        target: String,
        #[command(flatten)]
        values: link::ImpairArgs,
        #[arg(long)]
        one_side: bool,
        #[arg(long)]
        lab: Option<String>,
    },
}

/// The link `nslab link down|up` acts on.
#[derive(Debug, clap::Args)]
pub struct LinkEnd {
    /// NODE:IFACE, for example r1:eth1; or BRIDGE:NODE, the bridge's port to the node
    /// alone (s1:r1).
    target: String,
    /// Only this end; the peer stays up but loses carrier.
    #[arg(long)]
    one_side: bool,
    #[arg(long)]
    lab: Option<String>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum NodeCommand {
    /// Stop every process of the node (SIGTERM, grace, SIGKILL); namespaces and links stay.
    Stop {
        node: String,
        #[arg(long)]
        lab: Option<String>,
    },
    /// Start the node's processes again, in dependency order, and wait until they are ready.
    Start {
        node: String,
        #[arg(long)]
        lab: Option<String>,
    },
    /// Stop, then start.
    Restart {
        node: String,
        #[arg(long)]
        lab: Option<String>,
    },
}

pub(crate) fn duration_arg(text: &str) -> Result<Duration, String> {
    crate::spec::values::parse_duration(text)
}

pub(crate) fn percent_arg(text: &str) -> Result<f64, String> {
    crate::spec::values::parse_percent(text)
}

pub(crate) fn rate_arg(text: &str) -> Result<u64, String> {
    crate::spec::values::parse_rate(text)
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The lab could not come up (everything was rolled back).
    #[error(transparent)]
    Up(crate::apply::ApplyError),
    /// A command on a running lab failed.
    #[error(transparent)]
    Lab(crate::apply::ApplyError),
    /// An operation on a running lab (link, node, capture, events) failed.
    #[error(transparent)]
    Runtime(Box<crate::runtime::RuntimeError>),
    /// A rootless lab's holder could not be found, started or joined.
    #[error(transparent)]
    Rootless(#[from] crate::rootless::RootlessError),
    #[error("{0}")]
    Usage(String),
    /// This host's plan of the lab could not be made: a `--host` that does not fit it,
    /// VNIs held here, or the host's VXLAN devices unreadable.
    #[error(transparent)]
    Share(crate::state::StateError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// `nslab k8s` cannot make manifests of this lab.
    #[error(transparent)]
    K8s(#[from] crate::k8s::K8sError),
}

impl From<crate::runtime::RuntimeError> for CliError {
    fn from(e: crate::runtime::RuntimeError) -> Self {
        CliError::Runtime(Box::new(e))
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Compile(_) | CliError::Usage(_) | CliError::K8s(_) => exit::INVALID,
            // Rolled back after a signal: 128 + N, whether the lab was coming up or changing.
            CliError::Up(e) | CliError::Lab(e) if e.interrupted_by().is_some() => {
                exit::interrupted(e.interrupted_by().unwrap_or_default())
            }
            CliError::Up(_) => exit::LAB_DOWN,
            CliError::Rootless(crate::rootless::RootlessError::Start { .. }) => exit::LAB_DOWN,
            CliError::Runtime(e) if e.is_usage() => exit::INVALID,
            CliError::Share(e) if e.is_usage() => exit::INVALID,
            CliError::Lab(_)
            | CliError::Runtime(_)
            | CliError::Share(_)
            | CliError::Io(_)
            | CliError::Rootless(_) => exit::FAILED,
        }
    }
}

/// The lab a command means: `--lab`, a lab name or topology file given positionally, or
/// the only lab that is up.
fn lab_arg(
    host: &crate::state::HostContext,
    target: Option<&str>,
    lab: Option<&str>,
) -> Result<String, CliError> {
    let named = match (target, lab) {
        (Some(_), Some(_)) => {
            return Err(CliError::Usage(
                "give the lab either positionally or with --lab, not both".into(),
            ));
        }
        (Some(t), None) => Some(lab_name_of(t)?),
        (None, l) => l.map(str::to_string),
    };
    if let Some(n) = &named {
        crate::model::names::check_lab_name(n).map_err(|e| {
            CliError::Usage(format!(
                "{e}; give a lab name or a topology file (see `nslab ls`)"
            ))
        })?;
    }
    crate::apply::resolve_lab(host, named.as_deref()).map_err(CliError::Lab)
}

/// The plan this host makes of `t`: the whole lab, or with `--host` its share, once no
/// other lab or VXLAN device on this host is found holding one of its VNIs (they come
/// from the file alone, so a clash is an error, never a move).
fn plan_for(
    host: &crate::state::HostContext,
    t: &crate::model::Topology,
) -> Result<crate::plan::Plan, CliError> {
    crate::state::vnis::host_plan(host, t).map_err(CliError::Share)
}

/// A lab name, or the `name:` of a topology file. Only the name is read, so a file that no
/// longer compiles still names its lab.
fn lab_name_of(target: &str) -> Result<String, CliError> {
    let path = std::path::Path::new(target);
    if !(path.is_file()
        && (target.ends_with(".yaml") || target.ends_with(".yml") || target.contains('/')))
    {
        return Ok(target.to_string());
    }
    let text = read_bounded(path).map_err(|e| {
        CliError::Usage(format!(
            "{target}: {e}; give the lab name instead (`nslab validate {target}` locates the problem)"
        ))
    })?;
    let root = crate::spec::yaml::parse(&text, Default::default()).map_err(|_| {
        CliError::Usage(format!(
            "{target}: not valid YAML; give the lab name instead"
        ))
    })?;
    if let crate::spec::yaml::Kind::Map(entries) = &root.kind
        && let Some((_, v)) = entries.iter().find(|(k, _)| k.as_str() == Some("name"))
        && let Some(name) = v.as_str()
    {
        return Ok(name.to_string());
    }
    Err(CliError::Usage(format!(
        "{target} has no `name:`; give the lab name instead"
    )))
}

/// A file's text, refused past the topology size limit without reading the rest: a lab
/// argument may name any file (`/dev/zero`-sized ones too).
fn read_bounded(path: &std::path::Path) -> std::io::Result<String> {
    let max = crate::spec::yaml::Limits::default().max_bytes;
    let Some(bytes) = crate::spec::yaml::read_at_most(std::fs::File::open(path)?, max)? else {
        return Err(std::io::Error::other(format!(
            "larger than a topology may be ({} MiB)",
            max >> 20
        )));
    };
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The image map given with `--image-map`, for the one command this process runs.
static IMAGE_MAP: std::sync::OnceLock<crate::clab::ImageMap> = std::sync::OnceLock::new();

/// The image map containerlab files compile with: `--image-map`'s, else the built-in one.
fn image_map() -> &'static crate::clab::ImageMap {
    static BUILTIN: std::sync::OnceLock<crate::clab::ImageMap> = std::sync::OnceLock::new();
    IMAGE_MAP
        .get()
        .unwrap_or_else(|| BUILTIN.get_or_init(crate::clab::ImageMap::builtin))
}

impl Command {
    /// The `--image-map` of the commands that compile a file.
    fn image_map(&self) -> Option<&std::path::Path> {
        match self {
            Command::Validate { image_map, .. }
            | Command::Plan { image_map, .. }
            | Command::Graph { image_map, .. }
            | Command::Up { image_map, .. }
            | Command::Apply { image_map, .. }
            | Command::Test { image_map, .. } => image_map.as_deref(),
            _ => None,
        }
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> Result<u8, CliError> {
    if let Some(path) = cli.command.image_map() {
        let map = crate::clab::load_image_map(path).map_err(import::cli_error)?;
        let _ = IMAGE_MAP.set(map);
    }
    if crate::rootless::wanted(cli.rootless) {
        return rootless::run(cli.command, cli.host);
    }
    // Built once: every command below works on this host.
    let host = crate::state::HostContext {
        host: cli.host.clone(),
        ..crate::state::HostContext::from_env()
    };
    dispatch(&host, cli.command)
}

/// Runs one command on `host`: sorted into its group here, each group's arguments
/// handed on in the function for that group.
fn dispatch(host: &crate::state::HostContext, command: Command) -> Result<u8, CliError> {
    match command {
        c @ (Command::Validate { .. }
        | Command::Import { .. }
        | Command::Plan { .. }
        | Command::Graph { .. }
        | Command::K8s { .. }) => run_file_command(host, c),
        c @ (Command::Up { .. }
        | Command::Apply { .. }
        | Command::Down { .. }
        | Command::Test { .. }
        | Command::Agent { .. }) => run_lifecycle(host, c),
        c @ (Command::Status { .. }
        | Command::Ls { .. }
        | Command::Ps { .. }
        | Command::Logs { .. }
        | Command::Events { .. }) => run_inspect(host, c),
        c @ (Command::Shell { .. }
        | Command::Exec { .. }
        | Command::Link { .. }
        | Command::Node { .. }
        | Command::Capture { .. }) => run_runtime(host, c),
    }
}

/// The commands that read a topology file and change nothing: validate, import, plan,
/// graph (which also draws a running lab) and k8s.
fn run_file_command(host: &crate::state::HostContext, command: Command) -> Result<u8, CliError> {
    match command {
        Command::Validate { file, quiet, .. } => validate::run(host, &file, quiet),
        Command::Import { file, image_map } => import::run(&file, image_map.as_deref()),
        Command::Plan {
            file,
            json,
            teardown,
            ..
        } => plan::run(host, &file, json, teardown),
        Command::Graph {
            file,
            lab,
            format,
            serve,
            ..
        } => graph::run(
            graph::Args {
                file: file.as_deref(),
                lab: lab.as_deref(),
                format,
                serve: serve.as_deref(),
            },
            host,
        ),
        Command::K8s {
            file,
            namespace,
            image,
        } => k8s::run(&file, namespace.as_deref(), &image),
        _ => unreachable!("dispatch sends only the file commands here"),
    }
}

/// The commands that bring a lab up, change it or take it down: up, apply, down, test,
/// and the agent that keeps one host's share of a lab what its file says.
fn run_lifecycle(host: &crate::state::HostContext, command: Command) -> Result<u8, CliError> {
    match command {
        Command::Up {
            file,
            jobs,
            quiet,
            raise_neigh_limit,
            ..
        } => up::run(host, &file, jobs, quiet, raise_neigh_limit),
        Command::Apply {
            file,
            dry_run,
            json,
            jobs,
            quiet,
            ..
        } => apply::run(
            host,
            &file,
            apply::Args {
                dry_run,
                json,
                jobs,
                quiet,
            },
        ),
        Command::Down {
            all: true, quiet, ..
        } => down::all(host, quiet),
        Command::Down {
            target, lab, quiet, ..
        } => down::run(host, target.as_deref(), lab.as_deref(), quiet),
        Command::Test {
            file,
            lab,
            keep,
            junit,
            json,
            checks,
            jobs,
            quiet,
            raise_neigh_limit,
            ..
        } => test::run(
            host,
            test::Args {
                file: file.as_deref(),
                lab: lab.as_deref(),
                keep,
                junit: junit.as_deref(),
                json,
                checks: &checks,
                jobs,
                quiet,
                raise_neigh_limit,
            },
        ),
        Command::Agent { file } => agent::run(host, &file),
        _ => unreachable!("dispatch sends only up, apply, down, test and agent here"),
    }
}

/// The commands that read a running lab: status, ls, ps, logs, events.
fn run_inspect(host: &crate::state::HostContext, command: Command) -> Result<u8, CliError> {
    match command {
        Command::Status { target, lab, json } => {
            status::run(host, target.as_deref(), lab.as_deref(), json)
        }
        Command::Ls { json } => ls::run(host, json),
        Command::Ps { lab, node, json } => ps::run(host, lab.as_deref(), node.as_deref(), json),
        Command::Logs {
            lab,
            node,
            process,
            follow,
        } => logs::run(host, lab.as_deref(), &node, process.as_deref(), follow),
        Command::Events { target, lab, json } => {
            events::run(host, target.as_deref(), lab.as_deref(), json)
        }
        _ => unreachable!("dispatch sends only the reading commands here"),
    }
}

/// The commands that act inside a running lab: shell, exec, link, node, capture.
fn run_runtime(host: &crate::state::HostContext, command: Command) -> Result<u8, CliError> {
    match command {
        Command::Shell { lab, node } => shell::run(host, lab.as_deref(), &node),
        Command::Exec {
            lab,
            env,
            node_and_command,
        } => {
            let (node, command) = exec::split(&node_and_command)?;
            exec::run(host, lab.as_deref(), node, command, &env)
        }
        Command::Link { action } => run_link(host, action),
        Command::Node { action } => run_node(host, action),
        Command::Capture {
            lab,
            target,
            write,
            count,
            duration,
            filter,
            filter_in,
        } => capture::run(
            host,
            capture::Args {
                lab: lab.as_deref(),
                target: &target,
                write: &write,
                count,
                duration,
                filter: &filter,
                in_kernel: filter_in == "kernel",
            },
        ),
        _ => unreachable!("dispatch sends only the in-lab commands here"),
    }
}

/// `nslab node stop|start|restart NODE`.
fn run_node(host: &crate::state::HostContext, action: NodeCommand) -> Result<u8, CliError> {
    use crate::model::kinds::NodeAction;
    let (node, lab, what) = match action {
        NodeCommand::Stop { node, lab } => (node, lab, NodeAction::Stop),
        NodeCommand::Start { node, lab } => (node, lab, NodeAction::Start),
        NodeCommand::Restart { node, lab } => (node, lab, NodeAction::Restart),
    };
    node::run(host, lab.as_deref(), &node, what)
}

fn run_link(host: &crate::state::HostContext, action: LinkCommand) -> Result<u8, CliError> {
    match action {
        LinkCommand::Down(e) => link::run(
            host,
            e.lab.as_deref(),
            &e.target,
            link::Action::Down,
            e.one_side,
        ),
        LinkCommand::Up(e) => link::run(
            host,
            e.lab.as_deref(),
            &e.target,
            link::Action::Up,
            e.one_side,
        ),
        LinkCommand::Impair {
            target,
            values,
            one_side,
            lab,
        } => {
            let imp = values.into_impair()?;
            link::run(
                host,
                lab.as_deref(),
                &target,
                link::Action::Impair(imp),
                one_side,
            )
        }
    }
}

/// One event as `nslab events` prints it.
fn event_line(e: &crate::runtime::events::Event) -> String {
    let time = crate::runtime::events::format_time(e.at_ms);
    if e.detail.is_empty() {
        format!("{time}  {:<13} {}", e.action, e.target)
    } else {
        format!("{time}  {:<13} {:<12} {}", e.action, e.target, e.detail)
    }
}

fn print_event(e: &crate::runtime::events::Event) {
    crate::outln!("{}", event_line(e));
}

/// Compiles a file and prints its warnings to stderr.
fn compile(file: &std::path::Path) -> Result<crate::Compiled, CliError> {
    compile_with(file, None, true)
}

/// The same, with the checks that need the host (for commands that run the lab).
/// A rootless host (see `crate::rootless`) adds what only root can do.
fn compile_checked(
    host: &crate::state::HostContext,
    file: &std::path::Path,
) -> Result<crate::Compiled, CliError> {
    compile_with(file, Some(host), true)
}

/// `warn`: print the warnings (a file compiled twice warns once).
fn compile_with(
    file: &std::path::Path,
    host: Option<&crate::state::HostContext>,
    warn: bool,
) -> Result<crate::Compiled, CliError> {
    let c = crate::compile::compile_file_with(file, image_map()).and_then(|c| match host {
        Some(h) => crate::preflight_for(c, !h.privileged),
        None => Ok(c),
    });
    let report = match &c {
        Ok(c) => &c.warnings,
        Err(crate::CompileError::Invalid(r)) => r,
        Err(_) => return c.map_err(Into::into),
    };
    // A file with errors still shows its warnings: `validate` (which also checks the
    // host) would otherwise hide, behind an error, a warning that `plan` prints.
    let warnings = report.render(crate::Severity::Warning);
    if warn && !warnings.is_empty() {
        crate::err!("{warnings}");
    }
    c.map_err(Into::into)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_signal_exits_128_plus_its_number_and_a_closed_stdout_as_sigpipe() {
        use super::exit::interrupted;
        assert_eq!(
            ["SIGINT", "SIGTERM", "SIGHUP", crate::apply::CLOSED_STDOUT].map(interrupted),
            [130, 143, 129, 141]
        );
        assert_eq!(interrupted("a signal"), super::exit::FAILED);
        let up = crate::apply::ApplyError::Interrupted {
            lab: "l".into(),
            signal: "SIGTERM".into(),
        };
        assert_eq!(super::CliError::Up(up).exit_code(), 143);
        let rolled_back = crate::apply::ApplyError::RolledBack {
            lab: "l".into(),
            source: Box::new(crate::apply::ApplyError::Interrupted {
                lab: "l".into(),
                signal: "SIGINT".into(),
            }),
        };
        assert_eq!(super::CliError::Lab(rolled_back).exit_code(), 130);
        let failed = crate::apply::ApplyError::NotUp("l".into());
        assert_eq!(
            super::CliError::Up(failed).exit_code(),
            super::exit::LAB_DOWN
        );
    }

    /// With `defer`, clap checks a subcommand's arguments only when it runs; this checks
    /// every one of them.
    #[test]
    fn a_lab_argument_naming_a_huge_file_is_refused_unread() {
        let dir = std::env::temp_dir().join(format!("nslab-bigarg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.yaml");
        let f = std::fs::File::create(&big).unwrap();
        // Sparse: no disk used, and a whole read would take 65 MiB of memory.
        let max = crate::spec::yaml::Limits::default().max_bytes as u64;
        f.set_len(max + 1).unwrap();
        let msg = match super::lab_name_of(big.to_str().unwrap()) {
            Err(super::CliError::Usage(msg)) => msg,
            other => panic!("not a usage error: {other:?}"),
        };
        assert!(msg.contains("larger than a topology may be"), "{msg}");
        f.set_len(0).unwrap();
        std::fs::write(&big, "name: small\n").unwrap();
        assert_eq!(super::lab_name_of(big.to_str().unwrap()).unwrap(), "small");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What follows the node is the command's, whatever it looks like: a wrapper that
    /// runs `nslab exec --lab mine r1 $CMD` must not let `$CMD` pick another lab
    /// (`--lab other`), set variables (`-e LD_PRELOAD=...`) or print nslab's help.
    #[test]
    fn nothing_after_the_node_is_read_as_an_option_of_nslab() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            let cli = super::Cli::try_parse_from(["nslab", "exec"].iter().chain(args))
                .map_err(|e| e.kind())?;
            let super::Command::Exec {
                lab,
                env,
                node_and_command,
            } = cli.command
            else {
                panic!("not exec");
            };
            let (node, cmd) = super::exec::split(&node_and_command).unwrap();
            Ok::<_, clap::error::ErrorKind>((lab, env, node.to_string(), cmd.join(" ")))
        };
        let s = |v: &str| v.to_string();
        assert_eq!(
            parse(&["r1", "--lab", "other", "cat", "/x"]),
            Ok((None, vec![], s("r1"), s("--lab other cat /x")))
        );
        assert_eq!(
            parse(&[
                "--lab",
                "mine",
                "-e",
                "A=1",
                "r1",
                "-e",
                "LD_PRELOAD=/x.so",
                "true"
            ]),
            Ok((
                Some(s("mine")),
                vec![s("A=1")],
                s("r1"),
                s("-e LD_PRELOAD=/x.so true")
            ))
        );
        assert_eq!(
            parse(&["--lab", "mine", "r1", "--help"]),
            Ok((Some(s("mine")), vec![], s("r1"), s("--help")))
        );
        // `--` stays optional, before the node or after it.
        for args in [&["r1", "--", "ls", "-l"][..], &["--", "r1", "ls", "-l"]] {
            assert_eq!(
                parse(args),
                Ok((None, vec![], s("r1"), s("ls -l"))),
                "{args:?}"
            );
        }
        assert_eq!(
            parse(&["r1", "--", "--", "x"]),
            Ok((None, vec![], s("r1"), s("-- x")))
        );
        assert!(parse(&["r1"]).is_err(), "a command is required");
        assert_eq!(parse(&["--help"]), Err(clap::error::ErrorKind::DisplayHelp));
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
