//! Helpers for the privileged integration tests: a root check that fails under CI instead
//! of skipping, a host lock for tests that compare host snapshots, and a lab wrapper that
//! always tears down.
#![allow(dead_code)]

pub mod netns;
pub mod simhost;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// Whether every one of `paths` is installed. When one is missing the test skips (false,
/// with a note naming `what`), except under `CI=true`, where a test that cannot run fails.
pub fn installed(paths: &[&str], what: &str) -> bool {
    if paths.iter().all(|p| Path::new(p).exists()) {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "{what} is missing"
    );
    eprintln!("skipping: {what} is not installed");
    false
}

/// Whether this kernel makes VRF devices, asked of `ip` in a scratch network namespace
/// (apart from nslab's own probe, which the tests check against it).
pub fn kernel_has_vrf() -> bool {
    Command::new("unshare")
        .args([
            "-n", "ip", "link", "add", "v0", "type", "vrf", "table", "10",
        ])
        .output()
        .expect("unshare runs")
        .status
        .success()
}

/// Tests that snapshot the host take it exclusively; all others share it.
static HOST: RwLock<()> = RwLock::new(());

/// The directory the suites' scratch files go in (under the temporary directory).
pub const SCRATCH: &str = "nslab-tests";

/// Removes [`SCRATCH`] once empty, when the test process exits: every test removes its
/// own files, and the directory they share would outlive the suite otherwise. A file a
/// test left keeps it, to look at.
extern "C" fn remove_scratch_if_empty() {
    let _ = std::fs::remove_dir(std::env::temp_dir().join(SCRATCH));
}

/// Whether privileged tests can run. Under `CI=true` a test that cannot run fails.
pub fn privileged() -> bool {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    // SAFETY: atexit with a function that takes and returns nothing, registered once.
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(remove_scratch_if_empty);
    });
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("privileged test cannot run: not root (CI=true forbids skipping)");
        }
        eprintln!("skipping privileged test: not root");
    }
    root
}

pub fn shared() -> RwLockReadGuard<'static, ()> {
    HOST.read().unwrap_or_else(|e| e.into_inner())
}

pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    HOST.write().unwrap_or_else(|e| e.into_inner())
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn nslab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nslab"))
}

/// `nslab up` of the lab's file, started and left running: one job, 200 ms per step and
/// its output discarded, slow enough for a test to act while it is halfway.
pub fn slow_up(lab: &Lab) -> std::process::Child {
    nslab()
        .arg("up")
        .arg(&lab.file)
        .args(["--jobs", "1"])
        .env("NSLAB_TEST_STEP_DELAY_MS", "200")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The host's network, mount, cgroup and process state as stable text.
pub fn host_snapshot() -> String {
    let out = Command::new(root().join("scripts/host-snapshot"))
        .output()
        .expect("host-snapshot runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn assert_same_host(before: &str, after: &str, what: &str) {
    if before != after {
        let b: Vec<&str> = before.lines().collect();
        let a: Vec<&str> = after.lines().collect();
        let gone: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).collect();
        let new: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).collect();
        panic!("{what}: the host changed\n only before: {gone:#?}\n only after: {new:#?}");
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A lab written to a temporary file; dropped, it is torn down whatever happened.
pub struct Lab {
    pub name: String,
    pub file: PathBuf,
    /// A directory of the lab's own (its file and mount sources), removed with it.
    pub dir: Option<Scratch>,
}

impl Lab {
    /// `yaml` without its `name:` line; the lab gets `name`.
    pub fn new(name: &str, yaml: &str) -> Lab {
        let dir = std::env::temp_dir().join(SCRATCH);
        std::fs::create_dir_all(&dir).unwrap();
        Lab::written(name, yaml, &dir, None)
    }

    /// The lab's file written into `dir`.
    fn written(name: &str, yaml: &str, dir: &Path, own: Option<Scratch>) -> Lab {
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, format!("name: {name}\n{yaml}")).unwrap();
        // A previous crashed run of this test may have left the lab behind.
        let _ = nslab().args(["down", name]).output();
        Lab {
            name: name.to_string(),
            file,
            dir: own,
        }
    }

    /// A copy of an example topology under another lab name, with the examples' `configs`
    /// beside it, as mount sources are relative to the file. The copy is the lab's own
    /// directory: a shared one would be rewritten (truncated, then filled) by the next
    /// test's copy while a running lab of another test has its files mounted.
    pub fn from_example(name: &str, example: &str) -> Lab {
        let dir = std::env::temp_dir().join(SCRATCH).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let own = Scratch(dir.clone());
        copy_dir(&root().join("topologies/configs"), &dir.join("configs")).unwrap();
        // A lab's own directory (`topologies/<lab>/configs/<node>/...`) goes beside it too.
        let stem = example.trim_end_matches(".yaml");
        let theirs = root().join("topologies").join(stem);
        if theirs.is_dir() {
            copy_dir(&theirs, &dir.join(stem)).unwrap();
        }
        let text = std::fs::read_to_string(root().join("topologies").join(example)).unwrap();
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("name:"))
            .map(|l| format!("{l}\n"))
            .collect();
        Lab::written(name, &body, &dir, Some(own))
    }

    /// The lab as compiled from its file.
    pub fn topology(&self) -> nslab::model::Topology {
        let text = std::fs::read_to_string(&self.file).unwrap();
        match nslab::compile_str(&text, "lab.yaml", self.file.parent().unwrap()) {
            Ok(c) => c.topology,
            Err(e) => panic!("{e}"),
        }
    }

    /// The ifindex of `node:iface`, fixed by the compiler.
    pub fn ifindex(&self, node: &str, iface: &str) -> u32 {
        let t = self.topology();
        let n = t.node(node).expect("a node of the lab");
        n.interfaces
            .iter()
            .find(|i| i.name == iface)
            .expect("an interface")
            .ifindex
    }

    /// The IPv4 (or IPv6) address of `node:iface`, or of its loopback for `lo`, read from
    /// the compiled file: a pool address is stable, but not guessable.
    pub fn addr(&self, node: &str, iface: &str, v6: bool) -> String {
        let t = self.topology();
        let n = t.node(node).expect("a node of the lab");
        let list = match iface {
            "lo" => &n.loopback,
            _ => {
                &n.interfaces
                    .iter()
                    .find(|i| i.name == iface)
                    .expect("an interface")
                    .addresses
            }
        };
        let a = list.iter().find(|a| a.addr().is_ipv6() == v6);
        a.expect("an address of that family").addr().to_string()
    }

    pub fn up_with(&self, args: &[&str]) -> Output {
        nslab()
            .arg("up")
            .arg(&self.file)
            .args(args)
            .output()
            .unwrap()
    }

    /// `up` that must fail (exit 2) with every one of `needles` in its output, and leave
    /// the lab down.
    pub fn up_fails(&self, needles: &[&str]) -> Output {
        let o = self.up_with(&[]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        for n in needles {
            assert!(text(&o).contains(n), "`{n}` missing from: {}", text(&o));
        }
        assert!(!self.is_up(), "{} is still up", self.name);
        o
    }

    pub fn up(&self) {
        let o = self.up_with(&[]);
        assert!(o.status.success(), "up {} failed: {}", self.name, text(&o));
    }

    pub fn down(&self) {
        let o = nslab().args(["down", &self.name]).output().unwrap();
        assert!(
            o.status.success(),
            "down {} failed: {}",
            self.name,
            text(&o)
        );
    }

    pub fn exec(&self, node: &str, argv: &[&str]) -> Output {
        nslab()
            .args(["exec", "--lab", &self.name, node, "--"])
            .args(argv)
            .output()
            .unwrap()
    }

    pub fn ping(&self, from: &str, to: &str) -> bool {
        self.exec(from, &["ping", "-c1", "-W2", to])
            .status
            .success()
    }

    pub fn is_up(&self) -> bool {
        Path::new("/run/nslab")
            .join(format!("{}.journal", self.name))
            .exists()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.is_up() {
            let _ = nslab().args(["down", &self.name]).output();
        }
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Waits for a child we started, killing it (by pid) if it is still running after 2 s.
pub fn wait_or_kill(mut child: std::process::Child) -> std::io::Result<std::process::ExitStatus> {
    for _ in 0..20 {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill()?;
    child.wait()
}

/// Copies a directory tree (files and directories only).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

/// A test's scratch file or directory, removed when dropped (a failing test's too), so a
/// run leaves nothing of its own in the temporary directory the suites share.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = match std::fs::symlink_metadata(&self.0) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&self.0),
            _ => std::fs::remove_file(&self.0),
        };
    }
}

/// Polls `cond` every 50 ms; fails the test after 15 s.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The lab's kernel state once the kernel's own IPv6 link-local addresses are in place.
/// They come from the kernel, not from nslab, and may lag `up`: when both ends of a veth
/// have the same ifindex, the kernel batches the carrier event (linkwatch) for up to a
/// second, and the address waits for it.
pub fn settled_dump(lab: &str) -> Vec<nslab::apply::inspect::NsState> {
    let fabric = format!("nslab.{lab}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dump = nslab::runtime::dump_lab(&nslab::state::HostContext::from_env(), lab).unwrap();
        let settled = dump.iter().filter(|ns| ns.netns != fabric).all(|ns| {
            ns.links
                .iter()
                .filter(|l| l.kind == "veth" && l.up && l.lower_up)
                .all(|l| {
                    l.addresses
                        .iter()
                        .any(|a| a.to_string().starts_with("fe80:"))
                })
        });
        if settled || Instant::now() > deadline {
            return dump;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A topology that must compile (named `t.yaml`, mounts resolving under /labs).
pub fn ok(yaml: &str) -> nslab::model::Topology {
    match nslab::compile_str(yaml, "t.yaml", Path::new("/labs")) {
        Ok(c) => c.topology,
        Err(e) => panic!("expected a valid topology:\n{e}"),
    }
}

/// The report of a topology that must not compile.
pub fn err(yaml: &str) -> String {
    match nslab::compile_str(yaml, "t.yaml", Path::new("/labs")) {
        Ok(_) => panic!("expected errors"),
        Err(nslab::CompileError::Invalid(r)) => r.to_string(),
        Err(e) => panic!("{e}"),
    }
}
