//! Simulated hosts for multi-host tests (root): each a holder process in new network and
//! mount namespaces with its own tmpfs on /run (so its /run/nslab and /run/netns are its
//! own), joined to the others by an underlay. Commands run inside through nsenter, as they
//! would on separate machines.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use super::text;

/// A simulated host: a holder process in new network and mount namespaces, with a tmpfs
/// on /run. Dropped, the holder is killed and with it everything left inside.
pub struct SimHost {
    holder: Child,
}

impl SimHost {
    pub fn new() -> SimHost {
        Self::start(None)
    }

    /// A host whose namespaces are made on `cpu`: mount-namespace ids come from per-CPU
    /// batches, so which CPU made a namespace decides how its id compares to later ones.
    pub fn on_cpu(cpu: usize) -> SimHost {
        Self::start(Some(cpu))
    }

    fn start(cpu: Option<usize>) -> SimHost {
        let mut holder = pinned(cpu, "unshare")
            .args(["--net", "--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs nslab-sim /run && ip link set lo up && echo ready && exec sleep 3600")
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare runs");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the simulated host did not start");
        SimHost { holder }
    }

    pub fn pid(&self) -> String {
        self.holder.id().to_string()
    }

    /// Runs `argv` inside the host's network and mount namespaces.
    pub fn run(&self, argv: &[&str]) -> Output {
        self.run_on(None, argv)
    }

    /// [`SimHost::run`] on `cpu` when given.
    pub fn run_on(&self, cpu: Option<usize>, argv: &[&str]) -> Output {
        pinned(cpu, "nsenter")
            .args(["-t", &self.pid(), "-n", "-m", "--"])
            .args(argv)
            .output()
            .expect("nsenter runs")
    }

    /// `nslab args` inside the host, to be started by the caller (with its own
    /// environment, say) and waited for later.
    pub fn nslab_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid(), "-n", "-m", "--"])
            .arg(env!("CARGO_BIN_EXE_nslab"))
            .args(args);
        c
    }

    pub fn ok(&self, argv: &[&str]) -> String {
        let o = self.run(argv);
        assert!(o.status.success(), "{argv:?}: {}", text(&o));
        text(&o)
    }

    /// Waits until the underlay `ul0` has its carrier and no address is still tentative
    /// (IPv6 duplicate address detection): both change on their own a moment after the
    /// link is set up, and a test comparing the host's state before and after would see
    /// them as its own doing.
    pub fn settle(&self) {
        let start = std::time::Instant::now();
        loop {
            let link = self.ok(&["ip", "-o", "link", "show", "ul0"]);
            let tentative = self.ok(&["ip", "-o", "addr", "show", "dev", "ul0", "tentative"]);
            if link.contains("state UP") && tentative.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "the underlay did not settle: {link}{tentative}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn nslab(&self, args: &[&str]) -> Output {
        let mut argv = vec![env!("CARGO_BIN_EXE_nslab")];
        argv.extend(args);
        self.run(&argv)
    }
}

impl SimHost {
    /// Nothing of any lab is left on this host: no state under its /run/nslab (the VNI
    /// lock's empty file stays, as the directory does), no named
    /// namespace, no VXLAN device and no UDP socket (tunnels go before their namespaces,
    /// so at once).
    pub fn assert_clean(&self) {
        let left = self.ok(&[
            "sh",
            "-c",
            "ls -A /run/nslab | grep -vx .vnis.lock; ls -A /run/netns 2>/dev/null; ip -o link show type vxlan; ss -Huan",
        ]);
        assert_eq!(left, "", "left on the simulated host");
    }
}

/// `program`, run on `cpu` through taskset when one is given.
fn pinned(cpu: Option<usize>, program: &str) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string(), program]);
            c
        }
        None => Command::new(program),
    }
}

impl Drop for SimHost {
    /// Takes down every lab still up on the host first: the nodes' inits live outside
    /// the holder (it has no pid namespace), so a test that failed halfway would leave
    /// them running after the holder is gone.
    fn drop(&mut self) {
        let labs = self.run(&["ls", "-A", "/run/nslab"]);
        for name in String::from_utf8_lossy(&labs.stdout).lines() {
            if let Some(lab) = name.strip_suffix(".journal") {
                let _ = self.nslab(&["down", lab]);
            }
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Two simulated hosts with addresses `a` and `b` on an underlay veth of MTU 1500 (IPv6
/// ones without duplicate address detection, so they are usable at once).
pub fn two_hosts(a: &str, b: &str) -> (SimHost, SimHost) {
    let (ha, hb) = (SimHost::new(), SimHost::new());
    let out = Command::new("ip")
        .args(["link", "add", "ul0", "netns", &ha.pid(), "type", "veth"])
        .args(["peer", "name", "ul0", "netns", &hb.pid()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for (h, addr) in [(&ha, a), (&hb, b)] {
        let mut add = vec!["ip", "addr", "add", addr, "dev", "ul0"];
        if addr.contains(':') {
            add.push("nodad");
        }
        h.ok(&add);
        h.ok(&["ip", "link", "set", "ul0", "up"]);
    }
    ha.settle();
    hb.settle();
    (ha, hb)
}

/// Three simulated hosts on one underlay segment: a bridge in a fourth namespace.
pub fn three_hosts() -> (SimHost, [SimHost; 3]) {
    let switch = SimHost::new();
    switch.ok(&["ip", "link", "add", "br0", "type", "bridge"]);
    switch.ok(&["ip", "link", "set", "br0", "up"]);
    let hosts = [SimHost::new(), SimHost::new(), SimHost::new()];
    for (i, h) in hosts.iter().enumerate() {
        let port = format!("p{i}");
        let out = Command::new("ip")
            .args(["link", "add", "ul0", "netns", &h.pid(), "type", "veth"])
            .args(["peer", "name", &port, "netns", &switch.pid()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        switch.ok(&["ip", "link", "set", &port, "master", "br0", "up"]);
        h.ok(&[
            "ip",
            "addr",
            "add",
            &format!("198.51.100.{}/24", i + 1),
            "dev",
            "ul0",
        ]);
        h.ok(&["ip", "link", "set", "ul0", "up"]);
    }
    for h in &hosts {
        h.settle();
    }
    (switch, hosts)
}

/// A ping from `netns` on `h` with DF set and `size` bytes of payload.
pub fn ping(h: &SimHost, netns: &str, size: &str, to: &str) -> Output {
    h.run(&[
        "ip", "netns", "exec", netns, "ping", "-n", "-c1", "-W1", "-M", "do", "-s", size, to,
    ])
}

/// `down` on every host, then nothing of the lab is left on any (see [`SimHost::assert_clean`]).
pub fn down_and_clean(hosts: &[&SimHost], lab: &str) {
    for h in hosts {
        let o = h.nslab(&["down", lab]);
        assert!(o.status.success(), "{}", text(&o));
        h.assert_clean();
    }
}
