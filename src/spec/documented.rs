//! The README documents every key the reader accepts. Each mapping the reader checks
//! passes its key set through `read::fields`, which records it (in tests only); reading
//! every example, every YAML block of the README and every bad input of `tests/invalid/`
//! reaches the key sets, so a key added to any of them must appear in the README's
//! reference ("The topology language", the checks reference, "Multi-host labs") in code:
//! a YAML example or a `backticked` span. A key set that none of those inputs reaches is
//! not seen; the test asserts how many are, so losing a whole reader shows.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::diag::Sink;
use crate::spec::read::KNOWN_SEEN;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The README from the heading starting `from` to the next heading of its level.
fn section<'a>(readme: &'a str, from: &str, until: &str) -> &'a str {
    let start = readme
        .find(from)
        .unwrap_or_else(|| panic!("README has no `{from}`"));
    let rest = &readme[start..];
    let end = rest[from.len()..]
        .find(until)
        .map_or(rest.len(), |e| e + from.len());
    &rest[..end]
}

/// The words inside code in Markdown text: fenced blocks and `inline` spans.
fn code_words(md: &str) -> BTreeSet<String> {
    let mut code = String::new();
    let mut fenced = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            code.push_str(line);
            code.push('\n');
            continue;
        }
        // Odd pieces between backticks are inline code (a ``double`` span included).
        for (i, piece) in line.split('`').enumerate() {
            if i % 2 == 1 {
                code.push_str(piece);
                code.push('\n');
            }
        }
    }
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The README's ```yaml blocks, as text.
fn readme_yaml(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in readme.lines() {
        let fence = line.trim_start().starts_with("```");
        match (&mut block, fence) {
            (None, true) if line.trim_start() == "```yaml" => block = Some(String::new()),
            (Some(_), true) => out.extend(block.take()),
            (Some(b), false) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Reads every input the repository has and returns the key sets the reader checked.
fn key_sets_read(readme: &str) -> Vec<(String, Vec<String>)> {
    KNOWN_SEEN.with(|s| s.borrow_mut().clear());
    let mut inputs: Vec<String> = readme_yaml(readme);
    for dir in ["topologies", "tests/invalid", "tests/docs"] {
        for f in yaml_files(&root().join(dir)) {
            inputs.push(std::fs::read_to_string(f).unwrap());
        }
    }
    for text in &inputs {
        // A whole document, or the README's many-document example.
        for doc in text.split("\n---\n") {
            let mut sink = Sink::default();
            let _ = super::read_topology(&mut sink, doc);
        }
    }
    KNOWN_SEEN.with(|s| s.borrow_mut().drain(..).collect())
}

#[test]
fn every_key_the_reader_accepts_is_in_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let reference = [
        section(&readme, "\n## The topology language", "\n## "),
        section(&readme, "\n## Checks reference", "\n## "),
        section(&readme, "\n## Multi-host labs", "\n## "),
    ]
    .concat();
    let documented = code_words(&reference);
    let seen = key_sets_read(&readme);
    let sets: BTreeSet<Vec<String>> = seen.iter().map(|(_, k)| k.clone()).collect();
    // Top level, addressing, logs, node, route, hop, exec, process, ready, mount, private,
    // limits, rlimits, ionice, bridge, link, endpoint, impair, host link and ends, mgmt,
    // node mgmt, interfaces, macvlan, hosts, vxlan, daemonset, checks and steps.
    assert!(
        sets.len() >= 30,
        "only {} key sets read: {sets:?}",
        sets.len()
    );
    // Each missing key once, with the first mapping that accepts it.
    let mut missing = std::collections::BTreeMap::new();
    for (what, keys) in &seen {
        for k in keys.iter().filter(|k| !documented.contains(*k)) {
            missing.entry(k.clone()).or_insert_with(|| what.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "keys the reader accepts that the README's reference never shows in code: {missing:?}"
    );
}

#[test]
fn a_key_only_in_prose_is_not_documented() {
    let words = code_words("takes `txqueuelen` and\n```yaml\nmtu: 1\n```\nbut qlen in prose");
    assert!(words.contains("txqueuelen") && words.contains("mtu"));
    assert!(!words.contains("qlen") && !words.contains("prose"));
}
