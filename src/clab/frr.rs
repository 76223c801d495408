//! FRR image nodes (an image map profile with `frr: true`): the daemons FRR's own
//! `frrinit.sh` would start, read from the node's bound `/etc/frr/daemons`, each as an
//! nslab process with the readiness an FRR engineer expects: ready once its vty socket
//! accepts (`/var/run/frr/<daemon>.vty`, which FRR opens after reading its config), the
//! others after zebra. Then one `exec:` applies an integrated `frr.conf` with `vtysh -b`,
//! as `frrinit.sh` does, so `up` returns once FRR has its configuration.

use std::path::{Path, PathBuf};

use crate::clab::tree::{map, seq, text};
use crate::diag::{Sink, Span};
use crate::spec::yaml::Yaml;

/// FRR's daemons in the order `frrcommon.sh` starts them (zebra first); zebra and
/// staticd run whatever the daemons file says.
const DAEMONS: &[&str] = &[
    "zebra", "bgpd", "ripd", "ripngd", "ospfd", "ospf6d", "isisd", "babeld", "pimd", "pim6d",
    "ldpd", "nhrpd", "eigrpd", "sharpd", "pbrd", "staticd", "bfdd", "fabricd", "vrrpd", "pathd",
];

/// Where the daemons file is in the node, as FRR's images and `frrinit.sh` have it.
pub const DAEMONS_FILE: &str = "/etc/frr/daemons";

/// The largest daemons file read (FRR's own is about 4 KiB).
const MAX_BYTES: u64 = 256 * 1024;

/// The files a containerlab file's binds name that change what it means (an FRR
/// node's daemons file), read relative to the topology's directory; `None` reads
/// nothing, so compiling text alone stays free of system calls.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub base: Option<PathBuf>,
}

impl Files {
    /// Reads nothing: each FRR node runs the daemons FRR always starts.
    pub fn none() -> Files {
        Files { base: None }
    }

    pub fn at(base: &Path) -> Files {
        Files {
            base: Some(base.to_path_buf()),
        }
    }

    /// A bind source's text, `None` when nothing is read or it cannot be.
    fn read(&self, source: &str) -> Option<String> {
        use std::io::Read;
        let base = self.base.as_ref()?;
        let path = base.join(source);
        let mut text = String::new();
        std::fs::File::open(path)
            .ok()?
            .take(MAX_BYTES)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    }
}

/// What a daemons file asks for: the daemons in start order, `frr_profile`, and each
/// daemon's `<daemon>_options`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Daemons {
    pub names: Vec<String>,
    pub profile: Option<String>,
    pub options: Vec<(String, Vec<String>)>,
    /// Daemons asked for with `<daemon>_instances` (multi-instance), which nslab runs
    /// once, without an instance number.
    pub instances: Vec<String>,
}

/// A shell assignment's value without its quotes.
fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(v)
}

/// Reads a daemons file as `frrcommon.sh` does: `<daemon>=yes` (anything but empty, `no`
/// or `0`) enables it; zebra and staticd run anyway. `None` (no file) gives those two.
pub fn parse(text: Option<&str>) -> Daemons {
    let mut set: Vec<(String, String)> = Vec::new();
    for line in text.unwrap_or("").lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            set.retain(|(x, _)| x != k.trim());
            set.push((k.trim().to_string(), unquote(v).to_string()));
        }
    }
    let get = |k: &str| set.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    let mut d = Daemons::default();
    for name in DAEMONS {
        let on = matches!(*name, "zebra" | "staticd")
            || get(name).is_some_and(|v| !v.is_empty() && v != "no" && v != "0");
        if !on {
            continue;
        }
        d.names.push(name.to_string());
        if let Some(opts) = get(&format!("{name}_options")) {
            // `-d` would leave the process nslab supervises; `-P`, `--log` and `-i`
            // are nslab's (below).
            let words: Vec<String> = opts
                .split_whitespace()
                .filter(|w| !matches!(*w, "-d" | "--daemon"))
                .map(str::to_string)
                .collect();
            if !words.is_empty() {
                d.options.push((name.to_string(), words));
            }
        }
        if get(&format!("{name}_instances")).is_some_and(|v| !v.is_empty()) {
            d.instances.push(name.to_string());
        }
    }
    d.profile = get("frr_profile")
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    d
}

/// The node's bound daemons file, read through `files`: the last bind whose target is
/// [`DAEMONS_FILE`] (binds are already resolved by target, see `map::binds`).
pub fn daemons_of(mounts: &[Yaml], files: &Files) -> Option<String> {
    let field = |m: &Yaml, key: &str| {
        let crate::spec::yaml::Kind::Map(entries) = &m.kind else {
            return None;
        };
        entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .and_then(|(_, v)| v.as_str().map(str::to_string))
    };
    let source = mounts
        .iter()
        .rev()
        .find(|m| field(m, "target").as_deref() == Some(DAEMONS_FILE))
        .and_then(|m| field(m, "source"))?;
    // `{node}` and `{lab}` are filled in later, per node; such a source is not read.
    if source.contains('{') {
        return None;
    }
    files.read(&source)
}

/// One process per daemon, ready on its vty socket, every one but zebra after zebra;
/// restarted if it dies, as FRR's watchfrr would.
pub fn processes(sink: &mut Sink, node: &str, d: &Daemons, at: Span) -> Vec<Yaml> {
    if !d.instances.is_empty() {
        sink.warning(
            Some(at),
            format!(
                "node `{node}`: FRR multi-instance daemons ({}) run once, without an instance number",
                d.instances.join(", ")
            ),
        )
        .hint("give the node its own `cmd:` to run several instances");
    }
    d.names
        .iter()
        .map(|name| {
            let mut argv = vec![
                format!("/usr/lib/frr/{name}"),
                "-P".into(),
                "0".into(),
                "--log".into(),
                "stdout".into(),
                "-i".into(),
                format!("/var/run/frr/{name}.pid"),
            ];
            if let Some(p) = &d.profile {
                argv.extend(["-F".to_string(), p.clone()]);
            }
            if let Some((_, opts)) = d.options.iter().find(|(n, _)| n == name) {
                argv.extend(opts.iter().cloned());
            }
            let mut fields = vec![
                ("name", text(name.clone(), at)),
                (
                    "cmd",
                    seq(argv.into_iter().map(|w| text(w, at)).collect(), at),
                ),
                (
                    "ready",
                    map(
                        vec![("unix", text(format!("/var/run/frr/{name}.vty"), at))],
                        at,
                    ),
                ),
                ("restart", text("always", at)),
            ];
            if name != "zebra" {
                fields.push(("depends_on", seq(vec![text("zebra", at)], at)));
            }
            map(fields, at)
        })
        .collect()
}

/// The node's first `exec:`: a `vtysh.conf` when the node has none (FRR's images ship
/// one; without it every vtysh complains), then the integrated `frr.conf`, if there is
/// one, applied to the running daemons, as `frrinit.sh` does with `vtysh -b`. It runs
/// once every daemon is ready, and `up` waits for it; an error in the file fails `up`
/// with vtysh's words.
pub fn config_exec(at: Span) -> Yaml {
    let script = "test -e /etc/frr/vtysh.conf || echo 'service integrated-vtysh-config' > /etc/frr/vtysh.conf; test ! -r /etc/frr/frr.conf || exec vtysh -b";
    let argv = ["/bin/sh", "-c", script];
    seq(argv.iter().map(|w| text(*w, at)).collect(), at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemons_file_is_read_as_frrcommon_reads_it() {
        let text = "# comment\nbgpd=yes\nospfd=no\nospf6d=0\nisisd=\nbfdd=\"yes\"\nzebra=no\nvtysh_enable=yes\nzebra_options=\"  -A 127.0.0.1 -s 90000000 -d\"\nbgpd_options='-A 127.0.0.1'\nfrr_profile=\"datacenter\"\npimd=yes\npimd_instances=1,2\n";
        let d = parse(Some(text));
        assert_eq!(d.names, ["zebra", "bgpd", "pimd", "staticd", "bfdd"]);
        assert_eq!(d.profile.as_deref(), Some("datacenter"));
        assert_eq!(
            d.options,
            [
                (
                    "zebra".to_string(),
                    vec![
                        "-A".to_string(),
                        "127.0.0.1".into(),
                        "-s".into(),
                        "90000000".into()
                    ]
                ),
                (
                    "bgpd".to_string(),
                    vec!["-A".to_string(), "127.0.0.1".into()]
                ),
            ]
        );
        assert_eq!(d.instances, ["pimd"]);
        // No file: what FRR starts without one.
        assert_eq!(parse(None).names, ["zebra", "staticd"]);
        assert_eq!(parse(None).profile, None);
    }

    #[test]
    fn each_daemon_is_ready_on_its_vty_socket_and_waits_for_zebra() {
        let mut sink = Sink::default();
        let d = parse(Some("ospfd=yes\n"));
        let at = Span::new(3, 5, 1);
        let procs = processes(&mut sink, "r1", &d, at);
        let field = |p: &Yaml, key: &str| -> String {
            let crate::spec::yaml::Kind::Map(e) = &p.kind else {
                panic!("{p:?}")
            };
            let (_, v) = e.iter().find(|(k, _)| k.as_str() == Some(key)).unwrap();
            match &v.kind {
                crate::spec::yaml::Kind::Map(m) => m[0].1.as_str().unwrap().to_string(),
                crate::spec::yaml::Kind::Seq(s) => s
                    .iter()
                    .map(|w| w.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => v.as_str().unwrap().to_string(),
            }
        };
        let names: Vec<String> = procs.iter().map(|p| field(p, "name")).collect();
        assert_eq!(names, ["zebra", "ospfd", "staticd"]);
        for (p, name) in procs.iter().zip(&names) {
            assert_eq!(field(p, "ready"), format!("/var/run/frr/{name}.vty"));
            assert!(field(p, "cmd").starts_with(&format!("/usr/lib/frr/{name} -P 0 --log stdout")));
            assert_eq!(field(p, "restart"), "always");
        }
        assert_eq!(field(&procs[1], "depends_on"), "zebra");
        assert_eq!(field(&procs[2], "depends_on"), "zebra");
        let crate::spec::yaml::Kind::Map(z) = &procs[0].kind else {
            panic!()
        };
        assert!(!z.iter().any(|(k, _)| k.as_str() == Some("depends_on")));
        assert!(!sink.has_errors() && sink.diagnostics.is_empty());
    }
}
