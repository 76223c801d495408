//! The Rust API for tests of networked software: bring a lab up from `cargo test`, run
//! commands and probes in its nodes, and have it torn down when the value is dropped,
//! including when the test panics.
//!
//! ```no_run
//! let lab = nslab::Lab::from_yaml_str(r#"
//! name: api-demo
//! nodes: { client: {}, server: {} }
//! links: [[client:eth0, server:eth0]]
//! "#)?.up()?;
//! assert!(lab.reach("client", "server")?);
//! let out = lab.exec("server", &["hostname"])?;
//! assert!(out.status.success());
//! # Ok::<(), nslab::Error>(())
//! ```

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::apply::{self, ApplyError, UpOptions};
use crate::guard::{self, Guard};
use crate::harness::{self, CheckResult};
use crate::model::Topology;
use crate::probe::icmp::{self, PingResult};
use crate::rootless::api::CliLab;
use crate::runtime::{self, Access, Session};
use crate::state::HostContext;
use crate::{CompileError, Compiled, plan};

/// Errors of the public API.
#[derive(thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("lab `{lab}` has no node `{node}`")]
    NoSuchNode { lab: String, node: String },
    #[error("lab `{lab}` has no check named `{name}`")]
    NoSuchCheck { lab: String, name: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Kernel(#[from] apply::KernelError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
}

/// The message, as `Display` gives it: a test's `.unwrap()` or `?` prints an error's
/// `Debug`, and a derived one would show a bad topology as nested structs instead of
/// its `file:line:col`, what is wrong and the hint.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A compiled lab, not yet up.
pub struct Lab {
    compiled: Compiled,
    jobs: usize,
    host: HostContext,
}

impl Lab {
    pub fn from_file(path: impl AsRef<Path>) -> Result<Lab, Error> {
        Ok(Lab {
            compiled: crate::compile_file(path.as_ref())?,
            jobs: 8,
            host: HostContext::from_env(),
        })
    }

    /// Mount sources resolve against the current directory.
    pub fn from_yaml_str(yaml: &str) -> Result<Lab, Error> {
        let base = std::env::current_dir()?;
        Ok(Lab {
            compiled: crate::compile_str(yaml, "<yaml>", &base)?,
            jobs: 8,
            host: HostContext::from_env(),
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.compiled.topology
    }

    /// Brings the lab up. Dropping the returned value tears it down. Without root, the
    /// lab is rootless and every operation goes through the `nslab` binary (see
    /// `crate::rootless::api`).
    pub fn up(mut self) -> Result<RunningLab, Error> {
        let rootless = !self.host.privileged;
        self.compiled = crate::preflight_for(self.compiled, rootless)?;
        if rootless {
            let c = &self.compiled;
            let cli = CliLab::up(&c.topology, &c.warnings.source, self.jobs)?;
            let mut lab = RunningLab {
                host: self.host,
                compiled: self.compiled,
                session: None,
                rt: None,
                cli: Some(cli),
                guard: None,
                down: false,
            };
            lab.guard()?;
            return Ok(lab);
        }
        let rt = apply::tokio_runtime()?;
        let t = &self.compiled.topology;
        let opts = UpOptions {
            jobs: self.jobs,
            file: "<api>".into(),
            source: Some(self.compiled.warnings.source.clone()),
            held_by: Some("a Rust test (nslab::Lab)".into()),
            ..UpOptions::new(self.host.clone())
        };
        rt.block_on(apply::up_with(t, &plan::plan(t), &opts, apply::never()))?;
        let session = match open_session(&rt, &self.host, &t.lab) {
            Ok(s) => s,
            Err(e) => {
                let _ = apply::down(&self.host, &t.lab);
                return Err(e);
            }
        };
        let mut lab = RunningLab {
            host: self.host,
            compiled: self.compiled,
            session: Some(session),
            rt: Some(rt),
            cli: None,
            guard: None,
            down: false,
        };
        lab.guard()?;
        Ok(lab)
    }
}

/// The running lab's one owner, with its kernel opened now (on `rt`), so the checks
/// that run on it later find it open.
fn open_session(
    rt: &tokio::runtime::Runtime,
    host: &HostContext,
    lab: &str,
) -> Result<Session<'static>, Error> {
    let session = Session::for_checks(host, lab)?;
    rt.block_on(async { session.kernel().map(drop) })?;
    Ok(session)
}

/// A lab that is up. Torn down on [`RunningLab::down`] or on drop.
pub struct RunningLab {
    compiled: Compiled,
    host: HostContext,
    // The lab, opened once (read-only; changes lock it through its kernel). Dropped
    // before the runtime its kernel runs on.
    session: Option<Session<'static>>,
    rt: Option<tokio::runtime::Runtime>,
    /// A rootless lab, driven through the `nslab` binary (no kernel, no runtime).
    cli: Option<CliLab>,
    /// Takes the lab down should this process die first (see `crate::guard`).
    guard: Option<Guard>,
    down: bool,
}

impl RunningLab {
    pub fn name(&self) -> &str {
        &self.compiled.topology.lab
    }

    pub fn topology(&self) -> &Topology {
        &self.compiled.topology
    }

    fn node(&self, node: &str) -> Result<usize, Error> {
        self.topology()
            .nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| Error::NoSuchNode {
                lab: self.name().to_string(),
                node: node.to_string(),
            })
    }

    /// The runtime and the session; none once the lab is down, or when opening it again
    /// after an `apply` failed.
    fn parts(&self) -> Result<(&tokio::runtime::Runtime, &Session<'static>), Error> {
        match (&self.rt, &self.session) {
            (Some(rt), Some(s)) => Ok((rt, s)),
            _ => Err(crate::runtime::RuntimeError::NotUp(self.name().to_string()).into()),
        }
    }

    /// Runs `argv` in the node (all its namespaces), waits, and returns its output. The
    /// command starts from the node's environment, as `nslab exec` runs it.
    pub fn exec(&self, node: &str, argv: &[&str]) -> Result<Output, Error> {
        self.node(node)?;
        if let Some(cli) = &self.cli {
            return Ok(cli.exec(node, argv)?);
        }
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let mut cmd = self.parts()?.1.command(node, &argv, &[])?;
        Ok(cmd.output()?)
    }

    /// Whether `from` gets an ICMP echo reply from `to` (its loopback or first address,
    /// IPv4 if it has one) within two seconds.
    pub fn reach(&self, from: &str, to: &str) -> Result<bool, Error> {
        let (a, b) = (self.node(from)?, self.node(to)?);
        let t = self.topology();
        let Some(addr) = t
            .primary_address(b, false)
            .or_else(|| t.primary_address(b, true))
        else {
            return Ok(false);
        };
        if self.cli.is_some() {
            // A ping from the node: the native probe needs the lab's namespaces.
            let addr = addr.to_string();
            let out = self.exec(from, &["ping", "-c1", "-W2", &addr])?;
            return Ok(out.status.success());
        }
        let (rt, session) = self.parts()?;
        let ns = plan::Name::from(t.nodes[a].netns.as_str());
        let r = rt.block_on(async {
            Ok::<_, Error>(
                icmp::ping_many(
                    session.kernel()?,
                    &ns,
                    &[addr],
                    &crate::kinds::Echo::default(),
                    Duration::from_secs(2),
                    Duration::from_millis(200),
                )
                .await?,
            )
        })?;
        Ok(matches!(r.first(), Some(PingResult::Reply(_))))
    }

    /// Runs the check of the topology's `tests:` section with this name.
    pub fn check(&self, name: &str) -> Result<CheckResult, Error> {
        let check = self
            .topology()
            .checks
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::NoSuchCheck {
                lab: self.name().to_string(),
                name: name.to_string(),
            })?;
        if let Some(cli) = &self.cli {
            // A many-node check reports per node: a failure of any is the answer.
            let mut mine: Vec<CheckResult> = cli
                .checks(self.topology())?
                .into_iter()
                .filter(|r| r.name == name)
                .collect();
            mine.sort_by_key(|r| r.passed());
            return mine.into_iter().next().ok_or_else(|| {
                Error::Io(std::io::Error::other(format!(
                    "check `{}` was not run",
                    check.name
                )))
            });
        }
        let (rt, session) = self.parts()?;
        Ok(rt.block_on(session.check_one(self.topology(), check))?)
    }

    /// Runs every check of the `tests:` section, in order.
    pub fn checks(&self) -> Vec<CheckResult> {
        if let Some(cli) = &self.cli {
            return cli.checks(self.topology()).unwrap_or_else(|e| {
                let t = self.topology();
                (t.checks.iter())
                    .map(|c| CheckResult {
                        name: c.name.clone(),
                        kind: harness::kind_of(c),
                        status: harness::Status::Fail,
                        duration: Duration::ZERO,
                        reason: Some(e.to_string()),
                        attempts: 0,
                        node: None,
                        stdout: None,
                        stderr: None,
                    })
                    .collect()
            });
        }
        let t = self.topology();
        let ran = self.parts().and_then(|(rt, session)| {
            Ok(rt.block_on(session.check(t, apply::never(), &mut |_| {}))?)
        });
        match ran {
            Ok(results) => results,
            // The kernel was opened at `up`; should it not be, no check ran.
            Err(e) => t
                .checks
                .iter()
                .map(|c| harness::not_run(c, &e.to_string()))
                .collect(),
        }
    }

    /// Opens the running lab for a change, through the one owner the CLI and scenario
    /// steps use (its lock, its stored plan, this lab's kernel).
    fn session(&self) -> Result<Session<'_>, Error> {
        let (rt, session) = self.parts()?;
        let _ctx = rt.enter();
        let kernel = session.kernel()?;
        Ok(tokio::task::block_in_place(|| {
            Session::with_kernel(kernel, self.name(), Access::ChangeQuietly)
        })?)
    }

    /// Sets a link down or up (`NODE:IFACE`, both ends unless `one_side`), as `nslab link`.
    pub fn set_link(&self, target: &str, up: bool, one_side: bool) -> Result<(), Error> {
        if let Some(cli) = &self.cli {
            return Ok(cli.set_link(target, up, one_side)?);
        }
        let s = self.session()?;
        self.parts()?.0.block_on(s.set_link(target, up, one_side))?;
        Ok(())
    }

    /// Replaces the egress impairment of a link (`None` clears it), as `nslab link impair`.
    pub fn impair(
        &self,
        target: &str,
        impair: Option<crate::model::Impair>,
        one_side: bool,
    ) -> Result<(), Error> {
        if let Some(cli) = &self.cli {
            return Ok(cli.impair(target, impair.as_ref(), one_side)?);
        }
        let s = self.session()?;
        self.parts()?
            .0
            .block_on(s.impair(target, impair, one_side))?;
        Ok(())
    }

    /// Stops, starts or restarts a node's processes, as `nslab node`.
    pub fn node_action(
        &self,
        node: &str,
        action: crate::model::kinds::NodeAction,
    ) -> Result<(), Error> {
        if let Some(cli) = &self.cli {
            return Ok(cli.node_action(node, action)?);
        }
        let s = self.session()?;
        self.parts()?.0.block_on(s.node_action(node, action))?;
        Ok(())
    }

    /// Makes the running lab what `lab` says (the same lab name), changing only what
    /// differs, as `nslab apply`: untouched processes keep running. On a failure the
    /// change is rolled back and the lab stays as it was.
    pub fn apply(&mut self, lab: Lab) -> Result<(), Error> {
        let compiled = crate::preflight_for(lab.compiled, self.cli.is_some())?;
        let t = &compiled.topology;
        if t.lab != self.name() {
            return Err(Error::Io(std::io::Error::other(format!(
                "apply changes lab `{}`, not `{}`",
                self.name(),
                t.lab
            ))));
        }
        let opts = UpOptions {
            jobs: lab.jobs,
            file: "<api>".into(),
            source: Some(compiled.warnings.source.clone()),
            ..UpOptions::new(self.host.clone())
        };
        if let Some(cli) = &self.cli {
            cli.apply(t, &compiled.warnings.source, lab.jobs)?;
            self.compiled = compiled;
            return Ok(());
        }
        // Namespaces may be made again, and the lab's summary changes: the lab is opened
        // anew after the change, and no handle to an old namespace stays.
        self.session = None;
        let Some(rt) = self.rt.as_ref() else {
            return Err(crate::runtime::RuntimeError::NotUp(t.lab.clone()).into());
        };
        let applied = rt.block_on(runtime::apply_with(
            t,
            &plan::plan(t),
            &opts,
            apply::never(),
        ));
        self.session = Some(open_session(rt, &self.host, &t.lab)?);
        applied?;
        self.compiled = compiled;
        Ok(())
    }

    /// Tears the lab down now and reports how it went (drop does the same, silently).
    pub fn down(mut self) -> Result<(), Error> {
        self.teardown()
    }

    /// Starts the lab's guard; a lab that cannot have one is taken down again, so no
    /// lab is left unguarded by a test that goes on.
    fn guard(&mut self) -> Result<(), Error> {
        let started = apply::nodes::nslab_binary()
            .map_err(Error::from)
            .and_then(|bin| Ok(guard::start(&bin, self.name())?));
        match started {
            Ok(g) => {
                self.guard = Some(g);
                Ok(())
            }
            Err(e) => {
                let _ = self.teardown();
                Err(e)
            }
        }
    }

    fn teardown(&mut self) -> Result<(), Error> {
        if self.down {
            return Ok(());
        }
        self.down = true;
        let done = self.take_down();
        // Down, or failed and reported: either way the guard has nothing left to do.
        if let Some(g) = self.guard.take() {
            g.release();
        }
        done
    }

    fn take_down(&mut self) -> Result<(), Error> {
        if let Some(cli) = &self.cli {
            return Ok(cli.down()?);
        }
        // The session's kernel handles go before the runtime they run on.
        self.session.take();
        self.rt.take();
        apply::down(&self.host, &self.compiled.topology.lab)?;
        Ok(())
    }
}

impl Drop for RunningLab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            crate::errln!(
                "nslab: tearing down lab `{}` failed: {e}",
                self.compiled.topology.lab
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unwrapped_bad_topology_shows_its_located_message_not_structs() {
        let e = match super::Lab::from_yaml_str("name: dbg\nnodes:\n  a: { colour: red }\n") {
            Err(e) => e,
            Ok(_) => panic!("an unknown key compiles"),
        };
        // What `.unwrap()` prints.
        let shown = format!("{e:?}");
        assert_eq!(shown, e.to_string());
        assert!(shown.contains("<yaml>:3:"), "{shown}");
        assert!(shown.contains("colour"), "{shown}");
        assert!(!shown.contains("Report {"), "{shown}");
    }
}
