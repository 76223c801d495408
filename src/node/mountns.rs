//! A node's mount namespace, built by its init: private propagation, fresh tmpfs on /run
//! and /tmp, its own /etc/hosts and resolv.conf, the topology's bind mounts and private
//! directories, and /proc and /sys of its own namespaces.
//!
//! The namespace is private but the filesystem under it is the host's, so nothing is
//! written outside the node's tmpfs: generated files are bound onto the real (symlink-
//! resolved) targets, and a missing target gets an overlay on its nearest existing
//! parent, or, directly under `/`, a new root for the node (`node::newroot`, made before
//! anything else is mounted). Overlays go on first and mounts parent-before-child, so no mount hides another.
//! Every target is then opened and created through [`beneath`], which follows no symlink
//! a mount brought in and creates only on the node's own tmpfs and overlays; the mount
//! goes onto that fd, not onto a path the kernel would resolve again.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::beneath::{self, Create, Owned};
use super::config::NodeConfig;
use super::sys::{cstr, err};

fn mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    mount_io(src, target, fstype, flags, data)?.map_err(|e| err(&format!("mount {target}"), e))
}

/// mount(2); the outer error is a string that cannot be a C string.
fn mount_io(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<std::io::Result<()>, String> {
    let src = src.map(cstr).transpose()?;
    let target_c = cstr(target)?;
    let fstype = fstype.map(cstr).transpose()?;
    let data = data.map(cstr).transpose()?;
    let r = nix::mount::mount(
        src.as_deref(),
        target_c.as_c_str(),
        fstype.as_deref(),
        nix::mount::MsFlags::from_bits_retain(flags),
        data.as_deref(),
    );
    Ok(r.map_err(std::io::Error::from))
}

fn utf8(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{}: not UTF-8", path.display()))
}

/// Whether a path lives on one of the node's own tmpfs mounts, where creating it touches
/// nothing of the host.
fn on_private_tmpfs(path: &Path) -> bool {
    ["/run", "/tmp", "/var/run"]
        .iter()
        .any(|p| path.starts_with(p) && path != Path::new(p))
}

/// `path` with every symlink followed as far as the path exists, then taken literally.
/// A generated file must be mounted onto the file a link names, never written through
/// the link (that would write the host's file), and a link into the node's fresh /run
/// dangles until its target is created there.
pub fn resolve(path: &Path) -> PathBuf {
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, path);
    let mut cur = PathBuf::from("/");
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == "." {
            continue;
        }
        if c == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        let link = match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() && hops < 40 => std::fs::read_link(&next).ok(),
            _ => None,
        };
        match link {
            Some(link) => {
                hops += 1;
                if link.is_absolute() {
                    cur = PathBuf::from("/");
                }
                push_components(&mut todo, &link);
            }
            None => cur = next,
        }
    }
    cur
}

/// Pushes `path`'s components so that popping yields them in order.
fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    use std::path::Component;
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::CurDir => Some(".".into()),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

/// A bind source opened before any mount can hide it (the lab's state lives under /run,
/// a topology may live under /tmp); bound later through /proc/self/fd.
struct Source {
    fd: OwnedFd,
    is_dir: bool,
}

fn open_source(path: &Path) -> Result<Source, String> {
    let c = cstr(utf8(path)?)?;
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::open(
        c.as_c_str(),
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| {
        err(
            &format!("mount source {}", path.display()),
            std::io::Error::from(e),
        )
    })?;
    Ok(Source {
        fd,
        is_dir: path.is_dir(),
    })
}

enum Kind<'a> {
    Bind { src: &'a Source, readonly: bool },
    Tmpfs { options: String },
}

struct Entry<'a> {
    /// What the topology calls it, for errors: "mount target `/etc/frr/frr.conf`".
    label: String,
    target: PathBuf,
    kind: Kind<'a>,
}

impl Entry<'_> {
    fn is_dir(&self) -> bool {
        match &self.kind {
            Kind::Bind { src, .. } => src.is_dir,
            Kind::Tmpfs { .. } => true,
        }
    }
}

/// Where the mounts go, decided before any is made: `order` mounts parents before their
/// children (declaration order among equals, so a later mount of the same target wins),
/// and `overlays` are the directories that need one because a target under them is
/// missing, outermost only (an overlay's lower layer does not show submounts, so it must
/// go on before anything is mounted below it).
#[derive(Debug, PartialEq)]
pub struct Layout {
    pub order: Vec<usize>,
    pub overlays: Vec<PathBuf>,
}

/// Plans the mounts of `targets` (path, is a private tmpfs) against what exists.
pub fn layout(targets: &[(PathBuf, bool)], exists: impl Fn(&Path) -> bool) -> Layout {
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by_key(|&i| targets[i].0.components().count());
    let mut bases: Vec<PathBuf> = Vec::new();
    for (target, _) in targets {
        // A base of `/` means the node has a new root of its own (see [`needs_new_root`]),
        // on which the target is created directly.
        match overlay_base(targets, target, &exists) {
            Some(base) if base != Path::new("/") => bases.push(base),
            _ => {}
        }
    }
    bases.sort();
    bases.dedup();
    let outer: Vec<PathBuf> = bases
        .iter()
        .filter(|b| !bases.iter().any(|o| o != *b && b.starts_with(o)))
        .cloned()
        .collect();
    Layout {
        order,
        overlays: outer,
    }
}

/// Whether a target is missing directly under `/` (or below such a missing directory):
/// `/` cannot take an overlay like other directories, so the node gets a new root.
pub fn needs_new_root(targets: &[(PathBuf, bool)], exists: impl Fn(&Path) -> bool) -> bool {
    targets
        .iter()
        .any(|(t, _)| overlay_base(targets, t, &exists).is_some_and(|b| b == Path::new("/")))
}

/// The existing directory a missing target needs an overlay on, so that creating it
/// touches nothing of the host; `/` itself cannot have one (the overlay's lower layer
/// would show none of the mounts below `/`: /proc, /dev, /run, the host's own), so
/// that answer means the node needs a new root (`node::newroot`). None when no overlay
/// is needed.
pub fn overlay_base(
    targets: &[(PathBuf, bool)],
    target: &Path,
    exists: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if exists(target) || on_private_tmpfs(target) {
        return None;
    }
    // Created inside a private directory's own tmpfs.
    if targets
        .iter()
        .any(|(t, tmpfs)| *tmpfs && t != target && target.starts_with(t))
    {
        return None;
    }
    let base = target
        .ancestors()
        .skip(1)
        .find(|a| exists(a))
        .unwrap_or(Path::new("/"));
    Some(base.to_path_buf())
}

/// An overlay on an existing host directory (before anything is mounted below it), so
/// missing targets under it are created in the node's /run instead of on the host.
fn overlay(lower: &Path, n: usize, owned: &mut Owned) -> Result<(), String> {
    let scratch = format!("/run/.nslab-overlay/{n}");
    let (upper, work) = (format!("{scratch}/upper"), format!("{scratch}/work"));
    std::fs::create_dir_all(&upper).map_err(|e| err(&upper, e))?;
    std::fs::create_dir_all(&work).map_err(|e| err(&work, e))?;
    let at = beneath::open(lower, Create::No, owned)?;
    let lower = utf8(lower)?;
    mount_at(
        Some("overlay"),
        &at,
        lower,
        Some("overlay"),
        0,
        Some(&format!("lowerdir={lower},upperdir={upper},workdir={work}")),
    )?;
    let top = beneath::open(Path::new(lower), Create::No, owned)?;
    owned.adopt(at.as_fd(), top.as_fd(), lower)
}

/// `mount` onto the file `at` was opened on; errors name `shown`.
pub(super) fn mount_at(
    src: Option<&str>,
    at: &OwnedFd,
    shown: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    mount_io(src, &beneath::proc_path(at), fstype, flags, data)?
        .map_err(|e| err(&format!("mount {shown}"), e))
}

/// Makes the bind mounted at `top` read-only, with every mount below it: the bind is
/// recursive, and a remount changes one mount only, so a mount under the source (a
/// tmpfs, a disk, a network share) stayed writable through a `:ro` bind. A kernel
/// before 5.12 has no mount_setattr: there only the top is remounted.
fn read_only_tree(top: &OwnedFd, shown: &str) -> Result<(), String> {
    let Err(e) = crate::sys::mount::read_only_tree(top.as_fd()) else {
        return Ok(());
    };
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(err(&format!("make {shown} read-only"), e));
    }
    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
    mount_at(None, top, shown, None, flags, None)
}

/// Opens (creating it if missing, on the node's own filesystems only) and mounts one
/// entry; a new tmpfs becomes one of the node's own.
fn mount_entry(e: &Entry, owned: &mut Owned) -> Result<(), String> {
    let create = if e.is_dir() {
        Create::Dir
    } else {
        Create::File
    };
    let at = beneath::open(&e.target, create, owned)?;
    let shown = utf8(&e.target)?;
    match &e.kind {
        Kind::Bind { src, readonly } => {
            let from = format!("/proc/self/fd/{}", src.fd.as_raw_fd());
            let flags = libc::MS_BIND | libc::MS_REC;
            mount_at(Some(&from), &at, shown, None, flags, None)?;
            if *readonly {
                // The fd still names the covered file: open the new mount's root.
                let top = beneath::open(&e.target, Create::No, owned)?;
                read_only_tree(&top, shown)?;
            }
            Ok(())
        }
        Kind::Tmpfs { options } => {
            let flags = libc::MS_NOSUID | libc::MS_NODEV;
            mount_at(
                Some("tmpfs"),
                &at,
                shown,
                Some("tmpfs"),
                flags,
                Some(options),
            )?;
            let top = beneath::open(&e.target, Create::No, owned)?;
            owned.adopt(at.as_fd(), top.as_fd(), shown)
        }
    }
}

/// One of the node's fresh tmpfs mounts (/run, /tmp), which becomes one of its own. The
/// host's own links on the way are followed, as for every target.
fn tmpfs(target: &str, mode: &str, owned: &mut Owned) -> Result<(), String> {
    let path = resolve(Path::new(target));
    let at = beneath::open(&path, Create::No, owned)?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV;
    mount_at(Some("tmpfs"), &at, target, Some("tmpfs"), flags, Some(mode))?;
    let top = beneath::open(&path, Create::No, owned)?;
    owned.adopt(at.as_fd(), top.as_fd(), target)
}

/// Everything the topology and nslab mount in the node, in declaration order: the
/// generated files first, so the topology's own mount of the same file wins.
fn entries<'a>(
    cfg: &NodeConfig,
    sources: &'a [Source],
    hosts: &'a Source,
    resolv: &'a Source,
) -> Vec<Entry<'a>> {
    let mut entries = vec![
        Entry {
            label: "the generated `/etc/hosts`".into(),
            target: resolve(Path::new("/etc/hosts")),
            kind: Kind::Bind {
                src: hosts,
                readonly: true,
            },
        },
        Entry {
            label: "the generated `/etc/resolv.conf`".into(),
            target: resolve(Path::new("/etc/resolv.conf")),
            kind: Kind::Bind {
                src: resolv,
                readonly: true,
            },
        },
    ];
    for (m, src) in cfg.start.mounts.iter().zip(sources) {
        entries.push(Entry {
            label: format!("mount target `{}`", m.target),
            target: resolve(Path::new(&m.target)),
            kind: Kind::Bind {
                src,
                readonly: m.readonly,
            },
        });
    }
    for (p, owner) in cfg.start.private.iter().zip(&cfg.owners) {
        let mut options = format!("mode={:o}", p.mode.unwrap_or(0o755));
        if let Some((uid, gid)) = owner {
            options.push_str(&format!(",uid={uid},gid={gid}"));
        }
        entries.push(Entry {
            label: format!("private directory `{}`", p.path),
            target: resolve(Path::new(&p.path)),
            kind: Kind::Tmpfs { options },
        });
    }
    entries
}

/// The targets of `entries`, as [`layout`] takes them.
fn targets_of(entries: &[Entry]) -> Vec<(PathBuf, bool)> {
    entries
        .iter()
        .map(|e| (e.target.clone(), matches!(e.kind, Kind::Tmpfs { .. })))
        .collect()
}

/// Builds the node's mount namespace (the init has unshared it already).
pub fn build(cfg: &NodeConfig) -> Result<(), String> {
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    // Read and opened before /run (where the lab's state lives) and /tmp are covered.
    let mut hosts_text = std::fs::read_to_string(&cfg.hosts)
        .map_err(|e| err(&cfg.hosts.display().to_string(), e))?;
    hosts_text.push_str(&cfg.start.own_hosts);
    let mut owned = Owned::default();
    if root_needed(cfg) {
        // First, so every later mount goes onto the new root; sources are opened after
        // it (a bind from a mount of the detached old root fails).
        // Beside the node's control socket: its own runtime directory entry (appended,
        // not `with_extension`, which would make `r1.a` and `r1.b` share one).
        let mut staging = cfg.control.clone().into_os_string();
        staging.push(".root");
        let staging = PathBuf::from(staging);
        super::newroot::enter(&cfg.start.node, &staging)?;
        let top = beneath::open(Path::new("/"), Create::No, &owned)?;
        owned.adopt_root(top.as_fd())?;
    }
    let sources: Vec<Source> = cfg
        .start
        .mounts
        .iter()
        .map(|m| open_source(&m.source))
        .collect::<Result<_, _>>()?;
    tmpfs("/run", "mode=0755", &mut owned)?;
    tmpfs("/tmp", "mode=1777", &mut owned)?;
    if !std::fs::symlink_metadata("/var/run")
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(true)
    {
        tmpfs("/var/run", "mode=0755", &mut owned)?;
    }
    std::fs::create_dir_all("/run/.nslab").map_err(|e| err("/run/.nslab", e))?;
    std::fs::write("/run/.nslab/hosts", &hosts_text).map_err(|e| err("hosts", e))?;
    std::fs::write("/run/.nslab/resolv.conf", super::config::RESOLV_CONF)
        .map_err(|e| err("resolv.conf", e))?;
    let hosts = open_source(Path::new("/run/.nslab/hosts"))?;
    let resolv = open_source(Path::new("/run/.nslab/resolv.conf"))?;

    let entries = entries(cfg, &sources, &hosts, &resolv);
    let plan = layout(&targets_of(&entries), |p| p.exists());
    for (n, lower) in plan.overlays.iter().enumerate() {
        overlay(lower, n, &mut owned)?;
    }
    for i in plan.order {
        let e = &entries[i];
        mount_entry(e, &mut owned)
            .map_err(|why| format!("node `{}`: {}: {why}", cfg.start.node, e.label))?;
    }
    kernel_filesystems(cfg.start.pid, &owned)?;
    super::cgroupfs::mount(&cfg.cgroup_views, &mut owned)
        .map_err(|why| format!("node `{}`: its cgroups: {why}", cfg.start.node))
}

/// Whether the node's targets need a new root, decided on the host's view before any
/// mount; the same targets as [`entries`] (only the generated files always exist).
/// [`entries`] resolves them again on purpose: after a new root, a target's links are
/// followed in the node's `/`, which is what the mounts then go onto.
fn root_needed(cfg: &NodeConfig) -> bool {
    let mounts = cfg
        .start
        .mounts
        .iter()
        .map(|m| (resolve(Path::new(&m.target)), false));
    let private = cfg
        .start
        .private
        .iter()
        .map(|p| (resolve(Path::new(&p.path)), true));
    let targets: Vec<(PathBuf, bool)> = mounts.chain(private).collect();
    !targets.is_empty() && needs_new_root(&targets, |p| p.exists())
}

/// /proc of the node's pid namespace and /sys of its network namespace (so
/// /sys/class/net lists its own interfaces), over whatever the host has there.
fn kernel_filesystems(pid: bool, owned: &Owned) -> Result<(), String> {
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    if pid {
        let at = beneath::open(Path::new("/proc"), Create::No, owned)?;
        mount_at(Some("proc"), &at, "/proc", Some("proc"), flags, None)?;
    }
    let at = beneath::open(Path::new("/sys"), Create::No, owned)?;
    let flags = flags | libc::MS_RDONLY;
    mount_at(Some("sysfs"), &at, "/sys", Some("sysfs"), flags, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn symlinks_resolve_to_the_real_file_even_when_it_is_missing() {
        let dir = std::env::temp_dir().join(format!("nslab-resolve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc/resolvconf")).unwrap();
        std::fs::create_dir_all(dir.join("real")).unwrap();
        // Debian resolvconf: a link through a linked directory into a missing one.
        std::os::unix::fs::symlink(dir.join("run/resolvconf"), dir.join("etc/resolvconf/run"))
            .unwrap();
        std::os::unix::fs::symlink("resolvconf/run/resolv.conf", dir.join("etc/resolv.conf"))
            .unwrap();
        // A relative link with `..` to a file that exists.
        std::fs::write(dir.join("real/hosts"), "").unwrap();
        std::os::unix::fs::symlink("../real/hosts", dir.join("etc/hosts")).unwrap();
        // A loop ends instead of spinning.
        std::os::unix::fs::symlink("loop", dir.join("loop")).unwrap();

        assert_eq!(
            resolve(&dir.join("etc/resolv.conf")),
            dir.join("run/resolvconf/resolv.conf")
        );
        assert_eq!(resolve(&dir.join("etc/hosts")), dir.join("real/hosts"));
        assert_eq!(
            resolve(&dir.join("etc/./x/../hosts")),
            dir.join("real/hosts")
        );
        assert_eq!(resolve(&dir.join("loop")), dir.join("loop"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parents_mount_before_children_and_overlays_are_outermost() {
        let existing = [p("/etc"), p("/etc/hosts"), p("/var/lib"), p("/opt")];
        let exists = |q: &Path| q == Path::new("/") || existing.iter().any(|e| e == q);
        let targets = vec![
            (p("/etc/hosts"), false),
            (p("/etc/frr/frr.conf"), false),
            (p("/etc/frr"), true),
            (p("/etc/nslab/deep/x"), false),
            (p("/var/lib/app"), true),
            (p("/var/lib/app/data/file"), false),
            (p("/run/frr/sock"), false),
            (p("/opt/a/b"), false),
        ];
        let l = layout(&targets, exists);
        // /etc/frr (a tmpfs) before the file bound inside it; /etc/hosts before deeper.
        let pos = |i| l.order.iter().position(|&x| x == i).unwrap();
        assert!(pos(2) < pos(1));
        assert!(pos(0) < pos(1) && pos(0) < pos(3));
        assert!(pos(4) < pos(5));
        // One overlay on /etc covers every missing target under it; files under a
        // private tmpfs or the node's /run need none.
        assert_eq!(l.overlays, vec![p("/etc"), p("/opt"), p("/var/lib")]);
    }

    #[test]
    fn a_target_missing_directly_under_root_needs_a_new_root_not_an_overlay() {
        let existing = [p("/etc"), p("/etc/hosts")];
        let exists = |q: &Path| q == Path::new("/") || existing.iter().any(|e| e == q);
        let targets = vec![
            (p("/etc/hosts"), false),
            (p("/01-test.txt"), false),
            (p("/data/x"), false),
            (p("/etc/frr/frr.conf"), false),
        ];
        assert!(needs_new_root(&targets, exists));
        // `/` gets no overlay: the new root is the node's own; /etc still gets its own.
        assert_eq!(layout(&targets, exists).overlays, vec![p("/etc")]);
        // Targets that exist, or that an overlay on a directory covers, need none.
        let plain = vec![(p("/etc/hosts"), false), (p("/etc/frr/frr.conf"), false)];
        assert!(!needs_new_root(&plain, exists));
        // A private directory missing under `/` needs it, not what lies inside it.
        let private = vec![(p("/srv2"), true), (p("/srv2/x"), false)];
        assert!(needs_new_root(&private, exists));
        let inside = |q: &Path| q != Path::new("/srv2/x");
        assert!(!needs_new_root(&private, inside));
    }
}
