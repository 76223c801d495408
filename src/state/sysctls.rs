//! Host sysctls a lab raised on request (`up --raise-neigh-limit`), put back at its `down`.
//! The host is otherwise untouched, so each change is recorded in `<lab>.host-sysctls`
//! before it is made, and undone only while the value is still the one nslab wrote: a
//! value someone changed meanwhile is theirs. Labs raising the same key share it: the last
//! one down restores the value the first one found.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StateError, files};

/// Where the host's sysctls are.
pub const PROC_SYS: &str = "/proc/sys";

/// One sysctl raised for a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Raised {
    /// Dotted name, `net.ipv4.neigh.default.gc_thresh3`.
    pub key: String,
    /// The value before any lab raised it.
    pub before: String,
    /// The value nslab wrote.
    pub set: String,
}

/// The only keys nslab raises (`preflight::neigh`): a record naming any other is not
/// nslab's, and is never written back.
const RAISED_KEYS: [&str; 4] = [
    "net.ipv4.neigh.default.gc_thresh2",
    "net.ipv4.neigh.default.gc_thresh3",
    "net.ipv6.neigh.default.gc_thresh2",
    "net.ipv6.neigh.default.gc_thresh3",
];

/// Whether a record is one nslab could have written: one of [`RAISED_KEYS`], and values
/// that are numbers. `restore` writes `before` as root into the file `key` names, so a
/// record edited by hand (`"key": "/etc/passwd"`, or `kernel.core_pattern` with a pipe
/// as `before`) would otherwise make `down` write anything anywhere.
fn screen(r: &Raised) -> Result<(), String> {
    let number = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    if !RAISED_KEYS.contains(&r.key.as_str()) {
        return Err(format!(
            "`{}` is not a sysctl nslab raises",
            r.key.escape_debug()
        ));
    }
    if !number(&r.before) || !number(&r.set) {
        return Err(format!(
            "the values of {} (`{}`, `{}`) are not numbers",
            r.key,
            r.before.escape_debug(),
            r.set.escape_debug()
        ));
    }
    Ok(())
}

fn record_path(run_dir: &Path, lab: &str) -> PathBuf {
    run_dir.join(format!("{lab}.host-sysctls"))
}

fn value_path(proc_sys: &Path, key: &str) -> PathBuf {
    proc_sys.join(key.replace('.', "/"))
}

fn read_value(proc_sys: &Path, key: &str) -> Result<String, StateError> {
    let path = value_path(proc_sys, key);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| StateError::io(&path, e))
}

fn write_value(proc_sys: &Path, key: &str, value: &str) -> Result<(), StateError> {
    let path = value_path(proc_sys, key);
    std::fs::write(&path, value).map_err(|e| StateError::io(&path, e))
}

/// What a lab's record holds (nothing when it has none).
pub fn recorded(run_dir: &Path, lab: &str) -> Result<Vec<Raised>, StateError> {
    let path = record_path(run_dir, lab);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        _ => {}
    }
    let text = files::read(&path)?;
    serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
        path: path.clone(),
        line: e.line(),
        msg: e.to_string(),
    })
}

/// Every other lab's record of `key`.
fn others(run_dir: &Path, lab: &str, key: &str) -> Vec<Raised> {
    let Ok(dir) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".host-sysctls").map(str::to_string))
        .filter(|other| other != lab)
        .flat_map(|other| recorded(run_dir, &other).unwrap_or_default())
        .filter(|r| r.key == key && screen(r).is_ok())
        .collect()
}

/// Raises each `(key, value)` whose current value is lower, recording it first; returns
/// what it changed. Values are integers, as the neighbour limits are.
pub fn raise(
    proc_sys: &Path,
    run_dir: &Path,
    lab: &str,
    wants: &[(String, u64)],
) -> Result<Vec<Raised>, StateError> {
    let mut record = recorded(run_dir, lab)?;
    let mut changed = Vec::new();
    for (key, want) in wants {
        let now = read_value(proc_sys, key)?;
        if now.parse::<u64>().is_ok_and(|n| n >= *want) {
            // High enough only through another lab's raise: held by this lab too, so that
            // lab's `down` leaves it in force while this one runs (it put back the old
            // limit under a running lab that had asked for the raise).
            let theirs = others(run_dir, lab, key).into_iter().find(|r| r.set == now);
            if let Some(theirs) = theirs
                && !record.iter().any(|x| x.key == *key)
            {
                record.push(Raised {
                    key: key.clone(),
                    before: theirs.before,
                    set: now,
                });
                files::ensure_root(run_dir)?;
                let json = serde_json::to_vec(&record).expect("a list of strings serializes");
                files::replace(&record_path(run_dir, lab), &json)?;
            }
            continue;
        }
        // Another lab's raise is still in force: what it found is what the host had.
        let before = others(run_dir, lab, key)
            .into_iter()
            .next()
            .map(|r| r.before)
            .unwrap_or(now);
        let r = Raised {
            key: key.clone(),
            before,
            set: want.to_string(),
        };
        record.retain(|x| x.key != *key);
        record.push(r.clone());
        files::ensure_root(run_dir)?;
        let json = serde_json::to_vec(&record).expect("a list of strings serializes");
        files::replace(&record_path(run_dir, lab), &json)?;
        write_value(proc_sys, key, &r.set)?;
        changed.push(r);
    }
    Ok(changed)
}

/// Puts back what `raise` changed for `lab`, unless another lab still holds the key or
/// someone changed the value since; removes the record. Returns the problems.
pub fn restore(proc_sys: &Path, run_dir: &Path, lab: &str) -> Vec<String> {
    restore_after(proc_sys, run_dir, lab, |_| Vec::new())
}

/// [`restore`], calling `settle` first with what is about to be written back (nothing
/// when another lab holds every key): the caller's chance to wait until the old values
/// fit the host again. Its problems are returned with the rest.
pub fn restore_after(
    proc_sys: &Path,
    run_dir: &Path,
    lab: &str,
    settle: impl FnOnce(&[Raised]) -> Vec<String>,
) -> Vec<String> {
    let record = match recorded(run_dir, lab) {
        Ok(r) => r,
        Err(e) => return vec![e.to_string()],
    };
    let mut errors = Vec::new();
    let mut writes = Vec::new();
    for r in record {
        if let Err(why) = screen(&r) {
            errors.push(format!(
                "{}: refused, never written back: {why}",
                record_path(run_dir, lab).display()
            ));
            continue;
        }
        if !others(run_dir, lab, &r.key).is_empty() {
            continue;
        }
        match read_value(proc_sys, &r.key) {
            Ok(now) if now == r.set => writes.push(r),
            Ok(_) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !writes.is_empty() {
        errors.extend(settle(&writes));
    }
    for r in &writes {
        if let Err(e) = write_value(proc_sys, &r.key, &r.before) {
            errors.push(format!("cannot restore {} to {}: {e}", r.key, r.before));
        }
    }
    let path = record_path(run_dir, lab);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(StateError::io(&path, e).to_string()),
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test's scratch directory, removed when the test ends, passed or failed.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn setup(name: &str) -> (Scratch, PathBuf, PathBuf, String) {
        let root =
            std::env::temp_dir().join(format!("nslab-sysctls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let proc_sys = root.join("proc");
        std::fs::create_dir_all(proc_sys.join("net/ipv4/neigh/default")).unwrap();
        std::fs::write(proc_sys.join("net/ipv4/neigh/default/gc_thresh3"), "1024\n").unwrap();
        let run = root.join("run");
        (
            Scratch(root),
            proc_sys,
            run,
            "net.ipv4.neigh.default.gc_thresh3".to_string(),
        )
    }

    fn value(proc_sys: &Path, key: &str) -> String {
        read_value(proc_sys, key).unwrap()
    }

    #[test]
    fn raises_for_the_lab_and_restores_at_its_down() {
        let (_scratch, p, run, key) = setup("one");
        let changed = raise(&p, &run, "a", &[(key.clone(), 4096)]).unwrap();
        assert_eq!(changed.len(), 1);
        assert_eq!(
            (changed[0].before.as_str(), changed[0].set.as_str()),
            ("1024", "4096")
        );
        assert_eq!(value(&p, &key), "4096");
        let mode = std::fs::metadata(record_path(&run, "a")).unwrap();
        let mode = std::os::unix::fs::MetadataExt::mode(&mode) & 0o7777;
        assert_eq!(
            mode, 0o600,
            "the record is root's alone, as other lab files"
        );
        // A value already high enough is left alone and not recorded again.
        assert!(
            raise(&p, &run, "a", &[(key.clone(), 2048)])
                .unwrap()
                .is_empty()
        );
        assert_eq!(restore(&p, &run, "a"), Vec::<String>::new());
        assert_eq!(value(&p, &key), "1024");
        assert!(!record_path(&run, "a").exists());
        // Nothing recorded: nothing to do.
        assert_eq!(restore(&p, &run, "a"), Vec::<String>::new());
        assert_eq!(value(&p, &key), "1024");
    }

    #[test]
    fn the_last_lab_down_restores_what_the_first_found() {
        let (_scratch, p, run, key) = setup("two");
        raise(&p, &run, "a", &[(key.clone(), 2048)]).unwrap();
        let b = raise(&p, &run, "b", &[(key.clone(), 4096)]).unwrap();
        assert_eq!(b[0].before, "1024", "b takes a's `before`, not a's raise");
        assert!(restore(&p, &run, "a").is_empty());
        assert_eq!(value(&p, &key), "4096", "b is still up");
        assert!(restore(&p, &run, "b").is_empty());
        assert_eq!(value(&p, &key), "1024");
    }

    /// A lab that asked for a raise another lab's had already made keeps it in force
    /// past that lab's `down`: the first lab down put back 1024 under the second.
    #[test]
    fn a_raise_another_lab_made_first_stays_until_the_last_lab_that_asked_is_down() {
        let (_scratch, p, run, key) = setup("covered");
        raise(&p, &run, "a", &[(key.clone(), 4096)]).unwrap();
        let b = raise(&p, &run, "b", &[(key.clone(), 2048)]).unwrap();
        assert!(b.is_empty(), "b changes nothing: {b:?}");
        assert!(restore(&p, &run, "a").is_empty());
        assert_eq!(value(&p, &key), "4096", "b is still up and asked for 2048");
        assert!(restore(&p, &run, "b").is_empty());
        assert_eq!(value(&p, &key), "1024");
        // A lab that did not ask holds nothing: the limit goes back with the last that did.
        raise(&p, &run, "a", &[(key.clone(), 4096)]).unwrap();
        raise(&p, &run, "c", &[]).unwrap();
        assert!(restore(&p, &run, "a").is_empty());
        assert_eq!(value(&p, &key), "1024");
    }

    /// `down` writes a record's `before` into the file its `key` names, as root: a record
    /// edited by hand must not reach past the neighbour limits (an absolute key replaced
    /// `/proc/sys` in the path, `kernel.core_pattern` runs a program on every crash).
    #[test]
    fn a_record_naming_anything_but_the_neighbour_limits_is_refused() {
        let (_scratch, p, run, key) = setup("planted");
        let victim = run.parent().unwrap().join("victim");
        std::fs::write(&victim, "secret\n").unwrap();
        std::fs::create_dir_all(p.join("kernel")).unwrap();
        std::fs::write(p.join("kernel/core_pattern"), "core\n").unwrap();
        files::ensure_root(&run).unwrap();
        let planted = serde_json::json!([
            { "key": victim.to_str().unwrap(), "before": "owned", "set": "secret" },
            { "key": "kernel.core_pattern", "before": "|/tmp/x", "set": "core" },
            { "key": key, "before": "1024; reboot", "set": "1024" },
        ]);
        files::replace(&record_path(&run, "a"), planted.to_string().as_bytes()).unwrap();
        let errors = restore(&p, &run, "a");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret\n");
        assert_eq!(value(&p, "kernel.core_pattern"), "core");
        assert_eq!(value(&p, &key), "1024");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains("not a sysctl nslab raises"),
            "{errors:?}"
        );
        assert!(errors[1].contains("kernel.core_pattern"), "{errors:?}");
        assert!(errors[2].contains("not numbers"), "{errors:?}");
        assert!(
            !record_path(&run, "a").exists(),
            "the record goes with the lab"
        );
    }

    #[test]
    fn a_value_changed_by_someone_else_is_theirs() {
        let (_scratch, p, run, key) = setup("other");
        raise(&p, &run, "a", &[(key.clone(), 4096)]).unwrap();
        write_value(&p, &key, "8192").unwrap();
        assert!(restore(&p, &run, "a").is_empty());
        assert_eq!(value(&p, &key), "8192");
    }

    /// `settle` sees exactly what is about to be written back, before it is: not a key
    /// another lab still holds, nor one someone changed; and it is not called at all when
    /// nothing is to be written. Its problems join the others.
    #[test]
    fn settle_runs_before_the_writes_and_only_for_them() {
        let (_scratch, p, run, key) = setup("settle");
        let key2 = key.replace("gc_thresh3", "gc_thresh2");
        std::fs::write(value_path(&p, &key2), "512\n").unwrap();
        raise(&p, &run, "a", &[(key.clone(), 4096), (key2.clone(), 2048)]).unwrap();
        raise(&p, &run, "b", &[(key2.clone(), 3000)]).unwrap();
        let mut seen = Vec::new();
        let errors = restore_after(&p, &run, "a", |w| {
            seen = w
                .iter()
                .map(|r| (r.key.clone(), value(&p, &r.key)))
                .collect();
            vec!["still full".to_string()]
        });
        assert_eq!(errors, ["still full"]);
        assert_eq!(
            seen,
            [(key.clone(), "4096".to_string())],
            "b holds gc_thresh2"
        );
        assert_eq!(value(&p, &key), "1024");
        assert_eq!(value(&p, &key2), "3000");
        let errors = restore_after(&p, &run, "b", |w| {
            assert_eq!(w.len(), 1);
            Vec::new()
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(value(&p, &key2), "512");
        let mut called = false;
        assert!(
            restore_after(&p, &run, "b", |_| {
                called = true;
                Vec::new()
            })
            .is_empty()
        );
        assert!(!called, "nothing recorded, nothing to settle");
    }
}
