//! FRR image nodes (an image map profile with `frr: true`): the daemons FRR's own
//! `frrinit.sh` would start, read from the node's bound `/etc/frr/daemons`, each (and
//! each ospfd instance, `ospfd_instances`) as an nslab process with the readiness an FRR engineer expects: ready once its vty socket
//! accepts (`/var/run/frr/<daemon>.vty`, which FRR opens after reading its config), the
//! others after zebra. Then one `exec:` applies an integrated `frr.conf` with `vtysh -b`,
//! as `frrinit.sh` does, so `up` returns once FRR has its configuration.

use std::path::{Path, PathBuf};

use crate::clab::tree::{map, plain, seq, text};
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

    /// A bind source's text, `None` when nothing is read or it cannot be. Only a regular
    /// file is opened (`open_regular`): compiling runs as root for `validate` and
    /// `import` too, and a shared file's bind may name a FIFO (which hung them) or a
    /// device (whose driver ran its open as root).
    fn read(&self, source: &str) -> Result<Option<String>, String> {
        use std::io::Read;
        let Some(base) = self.base.as_ref() else {
            return Ok(None);
        };
        let path = base.join(source);
        let file = match crate::spec::yaml::open_regular(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                return Err(format!(
                    "the source of {DAEMONS_FILE}, `{}`, is not a regular file, so it is not read",
                    path.display()
                ));
            }
            Err(_) => return Ok(None),
            Ok(f) => f,
        };
        let mut text = String::new();
        Ok(file
            .take(MAX_BYTES)
            .read_to_string(&mut text)
            .ok()
            .map(|_| text))
    }
}

/// What a daemons file asks for: the daemons in start order, and what FRR's init gives
/// them (`frr_profile`, `frr_global_options`, `<daemon>_options`, `all_wrap` and
/// `<daemon>_wrap`, `MAX_FDS`, `ospfd_instances`), with what nslab does not do of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Daemons {
    pub names: Vec<String>,
    pub profile: Option<String>,
    pub options: Vec<(String, Vec<String>)>,
    /// The instances of a daemon run once per instance (`ospfd_instances=1,2`): FRR's
    /// init starts `ospfd -n 1`, `ospfd -n 2`, each with its own vty socket.
    pub instances: Vec<(String, Vec<u16>)>,
    /// `frr_global_options`: given to every daemon.
    pub global: Vec<String>,
    /// `all_wrap`, then a daemon's `<daemon>_wrap`: the commands its start goes through.
    pub wraps: Vec<(String, Vec<String>)>,
    /// `MAX_FDS`: the open-file limit (`ulimit -n`) each daemon starts with.
    pub max_fds: Option<u64>,
    /// What the file asks that nslab does not do, or cannot.
    pub notes: Vec<Note>,
}

/// A line of the daemons file that nslab does not follow: an error when the node could
/// not run as the file means, a warning when the setting is only left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub line: usize,
    pub error: bool,
    pub what: String,
    pub hint: String,
}

/// The settings of FRR's daemons file that are not per daemon.
const GLOBALS: &[&str] = &[
    "frr_profile",
    "frr_global_options",
    "all_wrap",
    "MAX_FDS",
    "vtysh_enable",
    "watchfrr_enable",
    "watchfrr_options",
    "watchfrr_debug",
];

/// The only daemon FRR runs as several instances (`-n N`); FRR's `frrcommon.sh`
/// refuses `<daemon>_instances` for any other.
const MULTI_INSTANCE: &str = "ospfd";

/// A shell assignment's value without its quotes.
fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(v)
}

/// The file's assignments, the last of each name kept, with its line (from 1).
struct Settings(Vec<(String, String, usize)>);

impl Settings {
    fn read(text: &str) -> Settings {
        let mut set: Vec<(String, String, usize)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            // An assignment, `NAME=value`; other shell (a test, a call) is not read.
            if let Some((k, v)) = line.split_once('=')
                && is_name(k)
            {
                set.retain(|(x, _, _)| x != k.trim());
                set.push((k.trim().to_string(), unquote(v).to_string(), i + 1));
            }
        }
        Settings(set)
    }

    fn get(&self, k: &str) -> Option<(&str, usize)> {
        self.0
            .iter()
            .find(|(x, _, _)| x == k)
            .map(|(_, v, l)| (v.as_str(), *l))
    }

    /// A non-empty value, as words.
    fn words(&self, k: &str) -> Option<(Vec<String>, usize)> {
        let (v, line) = self.get(k)?;
        let words: Vec<String> = v.split_whitespace().map(str::to_string).collect();
        (!words.is_empty()).then_some((words, line))
    }
}

/// A shell variable's name.
fn is_name(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Reads a daemons file as `frrcommon.sh` does: `<daemon>=yes` (anything but empty, `no`
/// or `0`) enables it; zebra and staticd run anyway. `None` (no file) gives those two.
pub fn parse(text: Option<&str>) -> Daemons {
    let set = Settings::read(text.unwrap_or(""));
    let mut d = Daemons::default();
    for name in DAEMONS {
        let on = matches!(*name, "zebra" | "staticd")
            || set
                .get(name)
                .is_some_and(|(v, _)| !v.is_empty() && v != "no" && v != "0");
        if !on {
            if let Some((_, line)) = set.words(&format!("{name}_instances")) {
                d.notes.push(warn(
                    line,
                    format!("`{name}_instances` is not used: {name} is not enabled"),
                    format!("enable it with `{name}=yes`, or remove the line"),
                ));
            }
            continue;
        }
        d.names.push(name.to_string());
        if let Some((words, line)) = set.words(&format!("{name}_options")) {
            let words = own_options(&mut d.notes, &format!("{name}_options"), words, line);
            if !words.is_empty() {
                d.options.push((name.to_string(), words));
            }
        }
        if let Some((words, _)) = set.words(&format!("{name}_wrap")) {
            d.wraps.push((name.to_string(), words));
        }
        if let Some((words, line)) = set.words(&format!("{name}_instances"))
            && let Some(n) = instances(&mut d.notes, name, &words.join(" "), line)
        {
            d.instances.push((name.to_string(), n));
        }
    }
    d.profile = set
        .get("frr_profile")
        .filter(|(p, _)| !p.is_empty())
        .map(|(p, _)| p.to_string());
    if let Some((words, line)) = set.words("frr_global_options") {
        d.global = own_options(&mut d.notes, "frr_global_options", words, line);
    }
    if let Some((words, _)) = set.words("all_wrap") {
        d.wraps.insert(0, (String::new(), words));
    }
    d.max_fds = max_fds(&mut d.notes, &set);
    left_out(&mut d.notes, &set);
    d
}

fn warn(line: usize, what: String, hint: impl Into<String>) -> Note {
    Note {
        line,
        error: false,
        what,
        hint: hint.into(),
    }
}

/// Options words as nslab runs them: `-d` (it would leave the process nslab
/// supervises) dropped; an instance (`-n`) or a pathspace (`-N`), which move the vty
/// socket nslab waits on, refused.
fn own_options(notes: &mut Vec<Note>, key: &str, words: Vec<String>, line: usize) -> Vec<String> {
    for w in &words {
        let instance = w == "--instance"
            || w.starts_with("--instance=")
            || (w.starts_with("-n") && !w.starts_with("--"));
        let pathspace = w == "--pathspace" || w.starts_with("--pathspace=") || w.starts_with("-N");
        if instance || pathspace {
            notes.push(Note {
                line,
                error: true,
                what: format!("`{key}` has `{}`, which nslab does not run: its daemons answer on their own vty sockets in `/var/run/frr`", w.escape_debug()),
                hint: if instance {
                    format!("list instances with `{MULTI_INSTANCE}_instances=1,2` (FRR runs instances of {MULTI_INSTANCE} only)")
                } else {
                    "remove it: each node is its own namespace already".to_string()
                },
            });
        }
    }
    words
        .into_iter()
        .filter(|w| !matches!(w.as_str(), "-d" | "--daemon"))
        .collect()
}

/// `<daemon>_instances`: instance numbers (1 to 65535, by commas or blanks), for ospfd
/// alone, as FRR's init allows; anything else is refused.
fn instances(notes: &mut Vec<Note>, name: &str, value: &str, line: usize) -> Option<Vec<u16>> {
    let key = format!("{name}_instances");
    let mut refuse = |what: String, hint: String| {
        notes.push(Note {
            line,
            error: true,
            what,
            hint,
        });
        None
    };
    if name != MULTI_INSTANCE {
        return refuse(
            format!("`{key}`: FRR runs only {MULTI_INSTANCE} as several instances, not {name}"),
            format!("remove `{key}`: {name} runs once"),
        );
    }
    let mut out: Vec<u16> = Vec::new();
    for w in value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
    {
        match w.parse::<u16>() {
            Ok(n) if n > 0 && !out.contains(&n) => out.push(n),
            Ok(n) if n > 0 => {
                return refuse(
                    format!("`{key}` names instance {n} twice"),
                    "name each instance once".into(),
                );
            }
            _ => {
                return refuse(
                    format!(
                        "`{key}`: `{}` is not an instance number (1 to 65535)",
                        w.escape_debug()
                    ),
                    format!("write the numbers by commas, as `{key}=1,2`"),
                );
            }
        }
    }
    Some(out).filter(|o| !o.is_empty())
}

/// `MAX_FDS`, which FRR's init gives each daemon with `ulimit -n`; one that is not a
/// number is left out, as that `ulimit` fails quietly.
fn max_fds(notes: &mut Vec<Note>, set: &Settings) -> Option<u64> {
    let (v, line) = set.get("MAX_FDS").filter(|(v, _)| !v.is_empty())?;
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            notes.push(warn(
                line,
                format!(
                    "`MAX_FDS={}` is not a number of files, left out",
                    v.escape_debug()
                ),
                "write a number, as `MAX_FDS=1024`",
            ));
            None
        }
    }
}

/// The settings nslab leaves out, each named: watchfrr's (nslab restarts a daemon that
/// dies itself), `vtysh_enable` other than `yes` (FRR's init applies `frr.conf` with
/// `vtysh -b` whatever it says, as nslab does), and names FRR's init does not read.
fn left_out(notes: &mut Vec<Note>, set: &Settings) {
    for (k, v, line) in &set.0 {
        let per_daemon = DAEMONS.iter().any(|d| {
            k == d
                || k.strip_prefix(d)
                    .is_some_and(|s| matches!(s, "_options" | "_instances" | "_wrap"))
        });
        let note = match k.as_str() {
            _ if per_daemon => None,
            "watchfrr_enable" | "watchfrr_options" | "watchfrr_debug" if !v.is_empty() => {
                Some(warn(
                    *line,
                    format!(
                        "`{k}` is not used: nslab runs no watchfrr, it restarts each daemon that dies itself"
                    ),
                    "remove the line; `nslab ps` shows the daemons and their restarts",
                ))
            }
            "vtysh_enable" if v != "yes" => Some(warn(
                *line,
                format!(
                    "`vtysh_enable={}` is not used: frr.conf, when there is one, is applied with `vtysh -b`, as FRR's own init does whatever it says",
                    v.escape_debug()
                ),
                "remove the line, or write `vtysh_enable=yes`",
            )),
            _ if GLOBALS.contains(&k.as_str()) => None,
            _ => Some(warn(
                *line,
                format!(
                    "`{}` is not a setting of FRR's daemons file, left out",
                    k.escape_debug()
                ),
                "check its spelling against FRR's own `/etc/frr/daemons`",
            )),
        };
        notes.extend(note);
    }
}

/// The node's bound daemons file, read through `files`: the last bind whose target is
/// [`DAEMONS_FILE`] (binds are already resolved by target, see `map::binds`); an
/// error when that source is not a regular file.
pub fn daemons_of(mounts: &[Yaml], files: &Files) -> Result<Option<String>, String> {
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
        .and_then(|m| field(m, "source"));
    let Some(source) = source else {
        return Ok(None);
    };
    // `{node}` and `{lab}` are filled in later, per node; such a source is not read.
    if source.contains('{') {
        return Ok(None);
    }
    files.read(&source)
}

/// One process per daemon, and per instance of a multi-instance one (`ospfd-1`, ...),
/// ready on its vty socket, every one but zebra after zebra; restarted if it dies, as
/// FRR's watchfrr would. What the daemons file asks that nslab does not do is reported
/// at the node's `image:`, by the file's line.
pub fn processes(sink: &mut Sink, node: &str, d: &Daemons, at: Span) -> Vec<Yaml> {
    for n in &d.notes {
        let what = format!("node `{node}`: {DAEMONS_FILE} line {}: {}", n.line, n.what);
        match n.error {
            true => sink.error(Some(at), what),
            false => sink.warning(Some(at), what),
        }
        .hint(n.hint.clone());
    }
    let mut out = Vec::new();
    for name in &d.names {
        match d.instances.iter().find(|(n, _)| n == name) {
            Some((_, list)) => out.extend(list.iter().map(|i| process(d, name, Some(*i), at))),
            None => out.push(process(d, name, None, at)),
        }
    }
    out
}

/// One daemon's process, or one instance's: its command as `frrcommon.sh` builds it
/// (wraps, the daemon, its global options and profile, `-n N`, its own options), with
/// nslab's vty port (none), log (stdout) and pid file in place of `-d`.
fn process(d: &Daemons, name: &str, instance: Option<u16>, at: Span) -> Yaml {
    let id = match instance {
        Some(i) => format!("{name}-{i}"),
        None => name.to_string(),
    };
    let mut argv: Vec<String> = d
        .wraps
        .iter()
        .filter(|(n, _)| n.is_empty() || n == name)
        .flat_map(|(_, w)| w.iter().cloned())
        .collect();
    argv.extend([
        format!("/usr/lib/frr/{name}"),
        "-P".into(),
        "0".into(),
        "--log".into(),
        "stdout".into(),
        "-i".into(),
        format!("/var/run/frr/{id}.pid"),
    ]);
    argv.extend(d.global.iter().cloned());
    if let Some(p) = &d.profile {
        argv.extend(["-F".to_string(), p.clone()]);
    }
    if let Some(i) = instance {
        argv.extend(["-n".to_string(), i.to_string()]);
    }
    if let Some((_, opts)) = d.options.iter().find(|(n, _)| n == name) {
        argv.extend(opts.iter().cloned());
    }
    let mut fields = vec![
        ("name", text(id.clone(), at)),
        (
            "cmd",
            seq(argv.into_iter().map(|w| text(w, at)).collect(), at),
        ),
        (
            "ready",
            map(
                vec![("unix", text(format!("/var/run/frr/{id}.vty"), at))],
                at,
            ),
        ),
        ("restart", text("always", at)),
    ];
    if name != "zebra" {
        fields.push(("depends_on", seq(vec![text("zebra", at)], at)));
    }
    if let Some(n) = d.max_fds {
        fields.push(("rlimits", map(vec![("nofile", plain(n, at))], at)));
    }
    map(fields, at)
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
        // pimd runs once: FRR runs instances of ospfd only.
        assert!(d.instances.is_empty());
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        assert!(d.notes[0].error && d.notes[0].line == 13, "{:?}", d.notes);
        assert!(
            d.notes[0].what.contains("`pimd_instances`"),
            "{:?}",
            d.notes
        );
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
            let (_, v) = fields(p).into_iter().find(|(k, _)| k == key).unwrap();
            v
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

    fn fields(p: &Yaml) -> Vec<(String, String)> {
        let crate::spec::yaml::Kind::Map(e) = &p.kind else {
            panic!("{p:?}")
        };
        e.iter()
            .map(|(k, v)| {
                let v = match &v.kind {
                    crate::spec::yaml::Kind::Map(m) => m[0].1.as_str().unwrap().to_string(),
                    crate::spec::yaml::Kind::Seq(s) => s
                        .iter()
                        .map(|w| w.as_str().unwrap())
                        .collect::<Vec<_>>()
                        .join(" "),
                    _ => v.as_str().unwrap().to_string(),
                };
                (k.as_str().unwrap().to_string(), v)
            })
            .collect()
    }

    fn get(p: &[(String, String)], k: &str) -> String {
        p.iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    #[test]
    fn each_ospfd_instance_is_a_process_of_its_own_as_frrcommon_starts_it() {
        let text = "ospfd=yes\nospfd_instances=1,2 5\nospfd_options=\"-A 127.0.0.1\"\nfrr_global_options=\"--limit-fds 2048\"\nfrr_profile=traditional\nall_wrap=\"/usr/bin/env\"\nMAX_FDS=2048\n";
        let d = parse(Some(text));
        assert_eq!(d.instances, [("ospfd".to_string(), vec![1, 2, 5])]);
        assert!(d.notes.is_empty(), "{:?}", d.notes);
        let mut sink = Sink::default();
        let procs: Vec<_> = processes(&mut sink, "r1", &d, Span::new(3, 5, 1))
            .iter()
            .map(fields)
            .collect();
        let names: Vec<String> = procs.iter().map(|p| get(p, "name")).collect();
        assert_eq!(names, ["zebra", "ospfd-1", "ospfd-2", "ospfd-5", "staticd"]);
        let two = &procs[2];
        assert_eq!(
            get(two, "cmd"),
            "/usr/bin/env /usr/lib/frr/ospfd -P 0 --log stdout -i /var/run/frr/ospfd-2.pid --limit-fds 2048 -F traditional -n 2 -A 127.0.0.1"
        );
        assert_eq!(get(two, "ready"), "/var/run/frr/ospfd-2.vty");
        assert_eq!(get(two, "depends_on"), "zebra");
        assert_eq!(get(two, "rlimits"), "2048");
        assert!(
            !get(&procs[0], "cmd").contains("-n"),
            "zebra has no instance"
        );
        assert!(sink.diagnostics.is_empty());
    }

    #[test]
    fn what_nslab_does_not_run_of_a_daemons_file_is_refused_or_named() {
        let text = "ospf6d=yes\nospf6d_instances=1,2\nospfd=yes\nospfd_instances=1,x\nbgpd=yes\nbgpd_options=\"-n 3\"\nzebra_options=\"-N blue\"\nwatchfrr_options=\"-r x\"\nvtysh_enable=no\nMAX_FDS=lots\nospfd_instance=1\nripd_instances=1\nif [ -x /bin/true ]; then x=1; fi\n";
        let d = parse(Some(text));
        let mut sink = Sink::default();
        processes(&mut sink, "r1", &d, Span::new(3, 5, 1));
        let said: Vec<String> = sink
            .diagnostics
            .iter()
            .map(|g| format!("{}|{}", g.message, g.hint.clone().unwrap_or_default()))
            .collect();
        let errors: Vec<_> = sink
            .diagnostics
            .iter()
            .filter(|g| g.is_error())
            .map(|g| g.message.clone())
            .collect();
        for (line, part) in [
            (
                2,
                "`ospf6d_instances`: FRR runs only ospfd as several instances",
            ),
            (4, "`x` is not an instance number"),
            (6, "`bgpd_options` has `-n`"),
            (7, "`zebra_options` has `-N`"),
        ] {
            let want = format!("node `r1`: /etc/frr/daemons line {line}: ");
            assert!(
                errors
                    .iter()
                    .any(|e| e.starts_with(&want) && e.contains(part)),
                "{line} {part}: {errors:#?}"
            );
        }
        assert_eq!(errors.len(), 4, "{errors:#?}");
        for part in [
            "line 8: `watchfrr_options` is not used",
            "line 9: `vtysh_enable=no` is not used",
            "line 10: `MAX_FDS=lots` is not a number",
            "line 11: `ospfd_instance` is not a setting",
            "line 12: `ripd_instances` is not used: ripd is not enabled",
        ] {
            assert!(said.iter().any(|s| s.contains(part)), "{part}: {said:#?}");
        }
        assert_eq!(said.len(), 9, "{said:#?}");
        assert_eq!(d.max_fds, None);
    }
}
