//! Symlink escapes through mount sources (root). A bind-mounted source directory holding a
//! symlink must never lead a node's init to create anything on the host: `up` refuses it
//! at validate, and the init's own guard refuses it if the link appears after that.

mod support;

use std::path::{Path, PathBuf};

use nslab::node::config::{MountSpec, NodeConfig, NodeStart, PrivateSpec};
use support::*;

/// A directory of the test's own outside /tmp and /run: the node gets fresh tmpfs mounts
/// there, so a link into them could not show an escape to the host.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `cfg/` (a mount source) with `cfg/link` -> `victim/`, and a file to mount.
fn source_with_link(dir: &Path) -> (PathBuf, PathBuf) {
    let (cfg, victim) = (dir.join("cfg"), dir.join("victim"));
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::create_dir_all(&victim).unwrap();
    std::os::unix::fs::symlink(&victim, cfg.join("link")).unwrap();
    std::fs::write(dir.join("file.conf"), "x\n").unwrap();
    (cfg, victim)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn up_refuses_targets_below_a_symlink_in_a_mount_source() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let dir = scratch("mx-esc");
    let (cfg, victim) = source_with_link(&dir);
    let before = host_snapshot();
    let lab = Lab::new(
        "mx-esc",
        &format!(
            r#"
nodes:
  a:
    mounts:
      - {{ source: "{cfg}", target: /etc/mx-esc, readonly: true }}
      - {{ source: "{file}", target: /etc/mx-esc/link/deep/file.conf }}
    private: [/etc/mx-esc/link/priv]
"#,
            cfg = cfg.display(),
            file = dir.join("file.conf").display()
        ),
    );
    let o = lab.up_with(&[]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(3), "{all}");
    let link = format!(
        "symlink on the way: `{}` -> `{}`",
        cfg.join("link").display(),
        victim.display()
    );
    // Both targets below the link, each located at its own entry.
    for (what, at) in [
        ("mount target `/etc/mx-esc/link/deep/file.conf`", ":7:"),
        ("private directory `/etc/mx-esc/link/priv`", ":8:15"),
    ] {
        let line = format!("node `a`: {what} lies below mount target `/etc/mx-esc`");
        assert!(all.contains(&line), "`{line}` missing from: {all}");
        assert!(all.contains(&format!("mx-esc.yaml{at}")), "{at}: {all}");
    }
    assert_eq!(all.matches(&link).count(), 2, "{all}");
    assert!(all.contains("hint: nslab follows no symlink"), "{all}");
    assert!(!lab.is_up());
    assert_eq!(
        entries(&victim),
        Vec::<String>::new(),
        "created through the link"
    );
    assert_same_host(&before, &host_snapshot(), "a refused up");
    let _ = std::fs::remove_dir_all(&dir);
}

fn config(dir: &Path, mounts: Vec<MountSpec>, private: Vec<&str>) -> NodeConfig {
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1\tlocalhost\n").unwrap();
    let n = private.len();
    NodeConfig {
        start: NodeStart {
            lab: "mx-rt".into(),
            node: "a".into(),
            netns: "unused".into(),
            uts: false,
            mnt: true,
            pid: false,
            ipc: false,
            own_hosts: String::new(),
            mounts,
            private: private
                .into_iter()
                .map(|p| PrivateSpec {
                    path: p.into(),
                    owner: None,
                    mode: None,
                })
                .collect(),
            processes: Vec::new(),
            cgroup: false,
            logs: Default::default(),
        },
        control: dir.join("control"),
        hosts,
        logs: dir.join("logs"),
        owners: vec![None; n],
        cgroups: Vec::new(),
        cgroup_views: Vec::new(),
        pid_file: dir.join("pid"),
        netns: dir.join("unused-netns"),
        mount_template: Some(dir.join("unused-template")),
    }
}

/// Builds a node's mount namespace as its init does, on a thread of its own that has
/// unshared its mount and network namespaces, as a node's init has (only that thread's
/// view changes, and both go with the thread), then runs `inside` there. Validate is
/// skipped: this is the init's own guard.
fn build_in_thread(cfg: NodeConfig, inside: fn() -> String) -> Result<String, String> {
    std::thread::spawn(move || {
        // SAFETY: unshare on this thread only; it shares nothing it must keep.
        if unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWNET) } != 0 {
            panic!("unshare: {}", std::io::Error::last_os_error());
        }
        nslab::node::mountns::build(&cfg).map(|()| inside())
    })
    .join()
    .unwrap()
}

fn bind(source: PathBuf, target: &str, readonly: bool) -> MountSpec {
    MountSpec {
        source,
        target: target.into(),
        readonly,
        digest: None,
    }
}

#[test]
fn the_init_follows_no_symlink_a_mount_brought_in_and_creates_nothing_in_a_source() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let dir = scratch("mx-rt");
    let (cfg, victim) = source_with_link(&dir);
    let before = host_snapshot();
    // The link appeared after validate: the init refuses it, read-only bind or not.
    for readonly in [true, false] {
        let c = config(
            &dir,
            vec![bind(cfg.clone(), "/etc/mx-rt", readonly)],
            vec!["/etc/mx-rt/link/sub"],
        );
        let e = build_in_thread(c, String::new).unwrap_err();
        let want = format!(
            "node `a`: private directory `/etc/mx-rt/link/sub`: `/etc/mx-rt/link` is a symlink (to `{}`)",
            victim.display()
        );
        assert!(e.contains(&want), "`{want}` missing from: {e}");
        let file = dir.join("file.conf");
        let c = config(
            &dir,
            vec![
                bind(cfg.clone(), "/etc/mx-rt", readonly),
                bind(file, "/etc/mx-rt/link/f.conf", true),
            ],
            vec![],
        );
        let e = build_in_thread(c, String::new).unwrap_err();
        assert!(
            e.contains("mount target `/etc/mx-rt/link/f.conf`: `/etc/mx-rt/link` is a symlink"),
            "{e}"
        );
        assert_eq!(
            entries(&victim),
            Vec::<String>::new(),
            "created through the link"
        );
    }
    // No link, but a missing target inside a writable bind: not created in the source.
    let c = config(
        &dir,
        vec![bind(cfg.clone(), "/srv/mx-rt", false)],
        vec!["/srv/mx-rt/new/sub"],
    );
    let e = build_in_thread(c, String::new).unwrap_err();
    assert!(
        e.contains("`/srv/mx-rt/new` is missing, and `/srv/mx-rt` is not on the node's own tmpfs or overlay"),
        "{e}"
    );
    assert_eq!(entries(&cfg), ["link"], "created in the mount source");
    // What the guard must keep working: a file bound into a private directory, a target
    // under an overlay on a missing host directory, a source with a link no target uses.
    let c = config(
        &dir,
        vec![
            bind(dir.join("file.conf"), "/etc/mx-rt-priv/f.conf", true),
            bind(cfg.clone(), "/etc/mx-rt-new/deep", true),
        ],
        vec!["/etc/mx-rt-priv"],
    );
    let seen = build_in_thread(c, || {
        let f = std::fs::read_to_string("/etc/mx-rt-priv/f.conf").unwrap_or_default();
        let l = std::fs::read_link("/etc/mx-rt-new/deep/link").unwrap_or_default();
        format!("{f}{}", l.display())
    })
    .unwrap();
    assert_eq!(seen, format!("x\n{}", victim.display()));
    for p in [
        "/etc/mx-rt",
        "/etc/mx-rt-priv",
        "/etc/mx-rt-new",
        "/srv/mx-rt",
    ] {
        assert!(!Path::new(p).exists(), "{p} created on the host");
    }
    assert_same_host(&before, &host_snapshot(), "the init's refusals");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A read-only bind of a directory with a mount below it (a tmpfs here; a disk, an NFS
/// share) was read-only at its top only: the remount that makes a bind read-only changes
/// one mount, and the node wrote into the submount, on the host.
#[test]
fn a_read_only_bind_is_read_only_in_every_mount_below_it() {
    if !privileged() {
        return;
    }
    let _host = shared();
    let dir = scratch("ro-submount");
    let (src, sub) = (dir.join("src"), dir.join("src/sub"));
    std::fs::create_dir_all(&sub).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("mode=0755"),
    )
    .expect("a tmpfs below the source");
    let lab = Lab::new(
        "es-rosub",
        &format!(
            "nodes:\n  a:\n    mounts: [\"{}:/mnt/ro:ro\"]\n    processes: [{{ name: s, cmd: \"sleep 1000\" }}]\n",
            src.display()
        ),
    );
    let up = lab.up_with(&[]);
    let top = lab.exec("a", &["touch", "/mnt/ro/top"]);
    let below = lab.exec("a", &["touch", "/mnt/ro/sub/below"]);
    let written = sub.join("below").exists();
    if up.status.success() {
        lab.down();
    }
    let _ = nix::mount::umount2(&sub, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(up.status.success(), "{}", text(&up));
    // The control: the top of the bind is read-only.
    assert!(!top.status.success(), "wrote the top: {}", text(&top));
    assert!(
        !below.status.success() && !written,
        "the node wrote into a mount below its read-only bind, on the host: {}",
        text(&below)
    );
}
