//! `nslab agent` (root), with this test as the kubelet: `nslab k8s` makes the ConfigMap
//! and the DaemonSet's volume items, and the test projects them as the kubelet does
//! (`lab.yaml` -> `..data/lab.yaml`, `..data` -> a timestamped directory), updates them
//! by renaming a new `..data` link into place, kills the agent with SIGKILL and starts
//! another as for a crashed container, and stops it with SIGTERM as for a deleted Pod.
//! Each test uses its own lab name; under CI=true a test that cannot run fails.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml::Value;
use support::{nslab, privileged, shared, text, wait_for};

/// The idle process's argument in V1 and V2; each lab gets its own (see
/// [`Volume::idle`]), so tests running at once never count each other's processes.
const IDLE: &str = "3141592";

/// Node `a` mounts a file that travels in the ConfigMap.
const V1: &str = "nodes:
  a:
    mounts: [\"configs/motd:/etc/motd:ro\"]
    processes: [{ name: idle, cmd: \"sleep 3141592\" }]
  b: {}
links:
  - [a:eth0, b:eth0]
";

/// V1 plus a node and a link.
const V2: &str = "nodes:
  a:
    mounts: [\"configs/motd:/etc/motd:ro\"]
    processes: [{ name: idle, cmd: \"sleep 3141592\" }]
  b: {}
  c: {}
links:
  - [a:eth0, b:eth0]
  - [b:eth1, c:eth0]
";

/// V1 plus a link from b to the host, whose host end `nslk8sretry` a test can put an
/// interface in the way of.
const V3: &str = "nodes:
  a:
    mounts: [\"configs/motd:/etc/motd:ro\"]
    processes: [{ name: idle, cmd: \"sleep 3141592\" }]
  b: {}
links:
  - [a:eth0, b:eth0]
  - [b:eth9, \"host:nslk8sretry\"]
";

/// A topology's source directory, the ConfigMap volume projected from its manifests,
/// the agents started on it, and the lab: all removed on drop, whatever happened.
struct Volume {
    lab: String,
    src: PathBuf,
    dir: PathBuf,
    version: u32,
    /// The version `configs/motd` says; only [`Volume::edit_motd`] changes it.
    motd: u32,
    agents: Vec<Child>,
}

impl Volume {
    fn new(lab: &str, body: &str) -> Volume {
        let root = std::env::temp_dir().join(format!("nslab-tests/agent-{lab}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("src/configs")).unwrap();
        std::fs::create_dir_all(root.join("volume")).unwrap();
        let _ = nslab().args(["down", lab]).output();
        let mut v = Volume {
            lab: lab.to_string(),
            src: root.join("src"),
            dir: root.join("volume"),
            version: 0,
            motd: 1,
            agents: Vec::new(),
        };
        v.publish(body);
        v
    }

    fn file(&self) -> PathBuf {
        self.dir.join("lab.yaml")
    }

    /// This lab's argument for the idle process: [`IDLE`] and a number from its name.
    fn idle(&self) -> String {
        format!(
            "{IDLE}{}",
            self.lab.len() * 1000 + self.lab.bytes().map(usize::from).sum::<usize>()
        )
    }

    /// The pids of this lab's idle process (one while the lab is up).
    fn idle_pids(&self) -> Vec<u32> {
        pids_of(&["sleep", &self.idle()])
    }

    /// The next [`Volume::publish`] carries an edited `configs/motd`.
    fn edit_motd(&mut self) {
        self.motd += 1;
    }

    /// Edits the source, runs `nslab k8s` on it, and projects the ConfigMap the way
    /// the kubelet updates a volume: a fresh directory with every item at its path, a
    /// `..data_tmp` link to it renamed onto `..data`, a link through `..data` for each
    /// top-level name, then the old directory removed.
    fn publish(&mut self, body: &str) {
        let body = body.replace(IDLE, &self.idle());
        std::fs::write(
            self.src.join("lab.yaml"),
            format!("name: {}\n{body}", self.lab),
        )
        .unwrap();
        std::fs::write(
            self.src.join("configs/motd"),
            format!("version {}\n", self.motd),
        )
        .unwrap();
        let o = nslab()
            .arg("k8s")
            .arg(self.src.join("lab.yaml"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let docs: Vec<Value> = serde_yaml::Deserializer::from_slice(&o.stdout)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        let (config, pod) = (&docs[1], &docs[2]["spec"]["template"]["spec"]);
        assert!(config.get("binaryData").is_none(), "text only here");
        let command = pod["containers"][0]["command"].as_sequence().unwrap();
        assert_eq!(command[2], "/etc/nslab/lab.yaml");

        self.version += 1;
        let name = format!("..2026_12_06_{:02}", self.version);
        for item in pod["volumes"][0]["configMap"]["items"]
            .as_sequence()
            .unwrap()
        {
            let path = self.dir.join(&name).join(item["path"].as_str().unwrap());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let data = &config["data"][item["key"].as_str().unwrap()];
            std::fs::write(&path, data.as_str().unwrap()).unwrap();
            let mode = item["mode"].as_u64().unwrap_or(0o644) as u32;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        for top in std::fs::read_dir(self.dir.join(&name)).unwrap() {
            let top = top.unwrap().file_name();
            let link = self.dir.join(&top);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(Path::new("..data").join(&top), link).unwrap();
            }
        }
        if self.version > 1 {
            let old = format!("..2026_12_06_{:02}", self.version - 1);
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
    /// Starts an agent; its log goes to `agent-N.log`.
    fn start(&mut self, env: &[(&str, &str)]) -> PathBuf {
        let mut cmd = nslab();
        cmd.envs(env.iter().copied());
        self.spawn(cmd)
    }

    /// Starts an agent as `cmd` (nslab, or what execs it) with the agent's arguments.
    fn spawn(&mut self, mut cmd: Command) -> PathBuf {
        let log = self.dir.join(format!("agent-{}.log", self.agents.len()));
        let child = cmd
            .arg("agent")
            .arg(self.file())
            .args(["--host", "node-1"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        self.agents.push(child);
        log.with_extension("err")
    }

    fn agent(&mut self) -> &mut Child {
        self.agents.last_mut().expect("an agent")
    }

    fn status_ok(&self) -> bool {
        nslab()
            .args(["status", &self.lab])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn motd(&self) -> String {
        let o = nslab()
            .args(["exec", "--lab", &self.lab, "a", "--", "cat", "/etc/motd"])
            .output()
            .unwrap();
        text(&o)
    }

    fn has_link(&self, node: &str, iface: &str) -> bool {
        Command::new("ip")
            .args([
                "-n",
                &format!("nslab.{}.{node}", self.lab),
                "link",
                "show",
                iface,
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        for a in &mut self.agents {
            let _ = a.kill();
            let _ = a.wait();
        }
        let _ = nslab().args(["down", &self.lab]).output();
        let _ = std::fs::remove_dir_all(self.dir.parent().unwrap());
    }
}

/// The host pids of processes whose command line is exactly `argv`.
fn pids_of(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect();
    pids.sort();
    pids
}

/// Waits for a child we started to exit by itself (15 s at most).
fn exit_of(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the agent did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// What of the lab is left on the host: its files in the run directory (`<lab>.*`) and
/// its named network namespaces (`nslab.<lab>`, `nslab.<lab>.*`).
fn leftovers(lab: &str) -> Vec<String> {
    let mut left = Vec::new();
    for (dir, exact, prefix) in [
        ("/run/nslab", lab.to_string(), format!("{lab}.")),
        (
            "/run/netns",
            format!("nslab.{lab}"),
            format!("nslab.{lab}."),
        ),
    ] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == exact || name.starts_with(&prefix) {
                left.push(format!("{dir}/{name}"));
            }
        }
    }
    left
}

#[test]
fn the_agent_comes_up_follows_configmap_updates_is_adopted_after_kill_9_and_goes_down_on_sigterm() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let mut v = Volume::new("k8sagent", V1);
    let log = v.start(&[]);
    wait_for("the agent's lab to be up", || v.status_ok());
    assert!(
        read(&log).contains("lab `k8sagent` is up"),
        "{}",
        read(&log)
    );
    let idle = v.idle_pids();
    assert_eq!(idle.len(), 1, "one idle process: {idle:?}");
    assert_eq!(
        v.motd(),
        "version 1\n",
        "the mounted file, from the ConfigMap"
    );

    // A ConfigMap update: the new link appears, the running process is untouched.
    assert!(!v.has_link("b", "eth1"));
    v.publish(V2);
    wait_for("the added link", || {
        v.has_link("b", "eth1") && v.has_link("c", "eth0")
    });
    wait_for("the change to be logged", || read(&log).contains("changed"));
    assert!(v.status_ok(), "lab degraded after the change");
    assert_eq!(v.idle_pids(), idle, "the process was restarted");

    // The file node `a` mounts, edited in the ConfigMap: `a` restarts and reads the new
    // one (a bound file would keep showing the old), its process with it.
    v.edit_motd();
    v.publish(V2);
    wait_for("node a to read the edited file", || {
        v.motd() == "version 2\n"
    });
    wait_for("the restarted process", || v.idle_pids().len() == 1);
    let restarted = v.idle_pids();
    assert_ne!(
        restarted, idle,
        "the node with the edited file was not restarted"
    );
    let idle = restarted;

    // kill -9, as when the node's kubelet restarts a crashed container: the lab stays,
    // and the next agent adopts it as it is.
    v.agent().kill().unwrap();
    v.agent().wait().unwrap();
    assert!(v.status_ok(), "the lab did not survive its agent");
    let log = v.start(&[]);
    wait_for("the new agent to adopt the lab", || {
        read(&log).contains("adopted")
    });
    assert!(
        read(&log).contains("nothing changed"),
        "an unchanged lab was changed: {}",
        read(&log)
    );
    assert!(v.agent().try_wait().unwrap().is_none(), "{}", read(&log));
    assert!(v.status_ok() && v.has_link("b", "eth1"));
    assert_eq!(v.idle_pids(), idle, "adoption restarted a process");

    // A file that does not compile is logged and changes nothing.
    std::fs::write(
        v.src.join("lab.yaml"),
        "name: k8sagent\nnodes: { a: { lables: {} } }\n",
    )
    .unwrap();
    let bad = nslab()
        .arg("k8s")
        .arg(v.src.join("lab.yaml"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(3), "{}", text(&bad));
    // Nothing checks a ConfigMap's contents (`kubectl edit` can put anything there).
    let tmp = v.dir.join("..data/lab.yaml.new");
    std::fs::copy(v.src.join("lab.yaml"), &tmp).unwrap();
    std::fs::rename(&tmp, v.dir.join("..data/lab.yaml")).unwrap();
    wait_for("the bad file to be logged", || {
        read(&log).contains("not applied")
    });
    assert!(
        read(&log).contains("unknown key `lables`"),
        "{}",
        read(&log)
    );
    assert!(v.status_ok() && v.has_link("b", "eth1"));

    // SIGTERM, as when the Pod is deleted: the lab goes, the agent exits 0.
    let pid = nix::unistd::Pid::from_raw(v.agent().id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = exit_of(v.agent());
    assert!(status.success(), "{status}: {}", read(&log));
    assert!(
        read(&log).contains("lab `k8sagent` is down"),
        "{}",
        read(&log)
    );
    assert_eq!(leftovers("k8sagent"), Vec::<String>::new());
    assert_eq!(v.idle_pids(), Vec::<u32>::new());
}

#[test]
fn an_agent_whose_lab_cannot_come_up_says_why_in_one_line_and_exits_2() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let mut v = Volume::new("k8sfail", V1);
    let log = v.start(&[("NSLAB_TEST_FAIL_AT_STEP", "3")]);
    let status = exit_of(v.agent());
    assert_eq!(status.code(), Some(2), "{}", read(&log));
    let lines: Vec<String> = read(&log)
        .lines()
        .filter(|l| l.starts_with("nslab agent:"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("lab `k8sfail` could not come up"),
        "{}",
        lines[0]
    );
    assert_eq!(leftovers("k8sfail"), Vec::<String>::new());
    let o = nslab().args(["ls"]).output().unwrap();
    assert!(!text(&o).contains("k8sfail"), "{}", text(&o));
}

#[test]
fn an_agent_killed_during_up_leaves_a_lab_its_successor_removes_and_brings_up() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let mut v = Volume::new("k8skill", V1);
    // Slow steps keep the first agent inside `up` while it is killed.
    let first = v.start(&[("NSLAB_TEST_STEP_DELAY_MS", "300")]);
    let journal = Path::new("/run/nslab/k8skill.journal");
    wait_for("the first agent to start its up", || journal.exists());
    v.agent().kill().unwrap();
    v.agent().wait().unwrap();
    assert!(
        !read(&first).contains("is up"),
        "up finished first: {}",
        read(&first)
    );
    assert!(!v.status_ok(), "an interrupted up looks healthy");

    let log = v.start(&[]);
    wait_for("the next agent to bring the lab up", || {
        read(&log).contains("is up")
    });
    assert!(
        read(&log).contains("left incomplete by an interrupted up; removing it first"),
        "{}",
        read(&log)
    );
    assert!(v.status_ok());
    assert_eq!(v.idle_pids().len(), 1);

    let pid = nix::unistd::Pid::from_raw(v.agent().id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(exit_of(v.agent()).success(), "{}", read(&log));
    assert_eq!(leftovers("k8skill"), Vec::<String>::new());
}

/// A container's cgroups as a runtime makes them: a group `nslab-test-<lab>` in the
/// cgroup v2 hierarchy and, on a host that mounts it, in the v1 `devices` one (where
/// runc lists a v1 container's processes to kill them). Removed on drop.
struct Container {
    groups: Vec<PathBuf>,
}

impl Container {
    fn new(lab: &str) -> Container {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let mut groups = Vec::new();
        for l in mounts.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            let devices = f[2] == "cgroup" && f[3].split(',').any(|o| o == "devices");
            if f[2] == "cgroup2" || devices {
                let g = Path::new(f[1]).join(format!("nslab-test-{lab}"));
                let _ = std::fs::remove_dir(&g);
                std::fs::create_dir(&g).unwrap();
                groups.push(g);
            }
        }
        assert!(
            groups.iter().any(|g| g.join("cgroup.kill").exists()),
            "no cgroup v2 hierarchy with cgroup.kill: {groups:?}"
        );
        Container { groups }
    }

    /// A command that joins the container's groups and a cgroup namespace of its own
    /// (rooted there, as a container's is), then runs nslab.
    fn command(&self) -> Command {
        let procs: Vec<String> = self
            .groups
            .iter()
            .map(|g| g.join("cgroup.procs").display().to_string())
            .collect();
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "for p in $CONTAINER_PROCS; do echo $$ > $p || exit 9; done; exec unshare --cgroup \"$@\"",
            "sh",
            env!("CARGO_BIN_EXE_nslab"),
        ])
        .env("CONTAINER_PROCS", procs.join(" "));
        cmd
    }

    /// The pids in any of the container's groups.
    fn pids(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for g in &self.groups {
            let text = std::fs::read_to_string(g.join("cgroup.procs")).unwrap_or_default();
            all.extend(text.lines().map(str::to_string));
        }
        all.sort();
        all.dedup();
        all
    }

    /// What the kubelet's runtime does to a container it restarts: `cgroup.kill` on v2,
    /// SIGKILL to every pid of the v1 group.
    fn kill(&self) {
        for g in &self.groups {
            if g.join("cgroup.kill").exists() {
                std::fs::write(g.join("cgroup.kill"), "1").unwrap();
            }
        }
        for pid in self.pids() {
            let pid = nix::unistd::Pid::from_raw(pid.parse().unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        wait_for("the container's cgroups to be empty", || {
            self.pids().is_empty()
        });
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.kill();
        for g in &self.groups {
            let _ = std::fs::remove_dir(g);
        }
    }
}

/// The lab's cgroup directories left in any hierarchy (`nslab/lab-<lab>`).
fn lab_cgroups(lab: &str) -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            matches!(f[2], "cgroup" | "cgroup2")
                .then(|| Path::new(f[1]).join("nslab").join(format!("lab-{lab}")))
        })
        .filter(|p| p.exists())
        .collect()
}

fn ping(lab: &str, from: &str, to: &str) -> std::process::Output {
    nslab()
        .args(["exec", "--lab", lab, from, "--", "ping", "-c1", "-W2", to])
        .output()
        .unwrap()
}

/// The kubelet restarting a crashed agent kills the container's whole cgroup; the lab's
/// nodes are in groups of their own outside it, so they keep running (packets still
/// cross), and the next agent, in a new container, adopts the lab unchanged.
#[test]
fn an_agent_containers_cgroup_killed_leaves_the_lab_running_and_the_next_agent_adopts_it() {
    if !privileged() {
        return;
    }
    let _g = support::exclusive();
    let before = support::host_snapshot();
    let mut v = Volume::new("k8scgkill", V1);
    let container = Container::new("k8scgkill");
    let log = v.spawn(container.command());
    wait_for("the agent's lab to be up", || v.status_ok());
    let idle = v.idle_pids();
    assert_eq!(idle.len(), 1, "one idle process: {idle:?}");
    let o = ping("k8scgkill", "a", "b");
    assert!(o.status.success(), "{}", text(&o));
    let agent = v.agent().id().to_string();
    assert!(
        container.pids().contains(&agent),
        "the agent is in the container"
    );

    container.kill();
    v.agent().wait().unwrap();
    assert!(!read(&log).contains("is down"), "{}", read(&log));
    assert!(v.status_ok(), "the lab did not survive its container");
    assert_eq!(v.idle_pids(), idle, "the node's process was killed");
    let o = ping("k8scgkill", "a", "b");
    assert!(o.status.success(), "after the kill: {}", text(&o));
    for pid in &idle {
        let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(
            groups
                .lines()
                .all(|l| l.ends_with("/nslab/lab-k8scgkill/node-a")),
            "the node's process is outside its groups: {groups}"
        );
    }

    let log = v.spawn(container.command());
    wait_for("the new agent to adopt the lab", || {
        read(&log).contains("adopted")
    });
    assert!(read(&log).contains("nothing changed"), "{}", read(&log));
    assert_eq!(v.idle_pids(), idle, "adoption restarted a process");
    let o = ping("k8scgkill", "b", "a");
    assert!(o.status.success(), "after adoption: {}", text(&o));

    let pid = nix::unistd::Pid::from_raw(v.agent().id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(exit_of(v.agent()).success(), "{}", read(&log));
    assert!(read(&log).contains("is down"), "{}", read(&log));
    assert_eq!(leftovers("k8scgkill"), Vec::<String>::new());
    assert_eq!(lab_cgroups("k8scgkill"), Vec::<PathBuf>::new());
    assert_eq!(v.idle_pids(), Vec::<u32>::new());
    drop(container);
    drop(v);
    support::assert_same_host(&before, &support::host_snapshot(), "the agent's lab");
}

/// A host interface made by the test, in the way of a host link; deleted on drop.
struct InTheWay(&'static str);

impl InTheWay {
    fn new(name: &'static str) -> InTheWay {
        let _ = Command::new("ip").args(["link", "del", name]).output();
        let o = Command::new("ip")
            .args(["link", "add", name, "type", "bridge"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        InTheWay(name)
    }
}

impl Drop for InTheWay {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).output();
    }
}

fn events(lab: &str) -> String {
    text(&nslab().args(["events", lab]).output().unwrap())
}

/// A change that fails for a cause outside the file (an interface in the way of a host
/// link) is retried with a growing delay, each failure in the log and in `nslab
/// events`; a changed file stops the retries; once the cause is gone, a retry applies
/// the file.
#[test]
fn a_failed_change_is_retried_until_its_cause_is_gone_and_a_new_file_stops_the_retries() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let mut v = Volume::new("k8sretry", V1);
    let log = v.start(&[]);
    wait_for("the agent's lab to be up", || v.status_ok());
    let idle = v.idle_pids();
    let obstacle = InTheWay::new("nslk8sretry");

    v.publish(V3);
    wait_for("a second failed attempt", || {
        read(&log).contains("attempt 2 failed, retrying in 2 s")
    });
    let said = read(&log);
    assert!(
        said.contains("lab `k8sretry`: attempt 1 failed, retrying in 1 s")
            && said.contains("nslk8sretry"),
        "{said}"
    );
    assert!(
        events("k8sretry").contains("agent-apply-failed"),
        "{}",
        events("k8sretry")
    );
    assert!(v.status_ok() && !v.has_link("b", "eth9"), "rolled back");

    // A new file (the old one again) ends the retries; it is what runs.
    v.publish(V1);
    wait_for("the retries to stop", || {
        read(&log).contains("stopped retrying after")
    });
    assert!(events("k8sretry").contains("agent-retry-dropped"));

    v.publish(V3);
    wait_for("the new file's first failure", || {
        read(&log).matches("attempt 1 failed").count() == 2
    });
    drop(obstacle);
    wait_for("a retry to apply the file", || {
        read(&log).contains("lab `k8sretry`: applied at attempt")
    });
    assert!(v.has_link("b", "eth9"), "{}", read(&log));
    assert!(events("k8sretry").contains("agent-apply-retried"));
    assert!(v.status_ok());
    assert_eq!(v.idle_pids(), idle, "the retries restarted a process");

    let pid = nix::unistd::Pid::from_raw(v.agent().id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(exit_of(v.agent()).success(), "{}", read(&log));
    assert_eq!(leftovers("k8sretry"), Vec::<String>::new());
    let o = Command::new("ip")
        .args(["link", "show", "nslk8sretry"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "the host link was left");
}
