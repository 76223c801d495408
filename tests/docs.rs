//! The documentation's YAML, compiled (no root). Every ```yaml block in README.md and
//! docs/*.md carries a marker, an HTML comment (invisible on GitHub) on the line just
//! before its fence, saying what the block is:
//!
//! - `<!-- yaml: topology -->`: whole topologies, one per YAML document (`---` between
//!   them); each must compile.
//! - `<!-- yaml: fragment BASE -->`: part of a topology (a `nodes:` example, a `tests:`
//!   list). It is merged into `tests/docs/BASE.yaml`, which declares what it refers to
//!   (maps merge key by key, the block's values winning; lists are appended), and the
//!   result must compile.
//! - `<!-- yaml: image-map -->`: an image map for containerlab files; it must read
//!   without errors.
//! - `<!-- yaml: not compiled: WHY -->`: a template with `{ ... }`, a CI workflow, a
//!   JSON-matching table that `harness::jsonmatch`'s tests check; WHY says which.
//!
//! A block without a marker fails the test, so no new example goes unchecked. Every file
//! in `topologies/` is compiled by `tests/compile.rs` (its golden plans).
//!
//! The README's `$ nslab validate` and `$ nslab plan` commands in ```console blocks are
//! run, and the lines shown under each must be printed, in order (`...` alone on a line
//! stands for lines left out, within a line for text left out).
//!
//! Every `nslab SUB ...` line of a ```sh or ```console block, and every synopsis of the
//! README's Commands table, names a subcommand and flags that `nslab SUB --help` lists.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

mod support;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One fenced YAML block: where it starts (the fence's line, 1-based), its marker, its text.
struct Block {
    file: String,
    line: usize,
    marker: Option<String>,
    text: String,
}

/// The ```yaml blocks of a Markdown file, each with the marker on the line before it.
fn yaml_blocks(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).expect("readable");
    let file = path.strip_prefix(root()).unwrap().display().to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        if !fence.starts_with("```") {
            i += 1;
            continue;
        }
        let lang = fence.trim_start_matches('`').trim();
        let start = i;
        i += 1;
        let mut body = String::new();
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            body.push_str(lines[i]);
            body.push('\n');
            i += 1;
        }
        i += 1;
        if lang != "yaml" {
            continue;
        }
        let marker = start
            .checked_sub(1)
            .map(|p| lines[p].trim())
            .and_then(|l| l.strip_prefix("<!-- yaml:"))
            .and_then(|l| l.strip_suffix("-->"))
            .map(|m| m.trim().to_string());
        out.push(Block {
            file: file.clone(),
            line: start + 1,
            marker,
            text: body,
        });
    }
    out
}

fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// `over` merged into `base`: maps key by key (recursively), lists appended, else `over`.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Sequence(b), Value::Sequence(o)) => b.extend(o),
        (slot, o) => *slot = o,
    }
}

/// Compiles `yaml` as the topology of block `b`; the error names the block.
fn compile(b: &Block, yaml: &str) -> Result<(), String> {
    let name = format!("{}:{}", b.file, b.line);
    match nslab::compile_str(yaml, &name, &root().join("tests/docs")) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "{name}: does not compile:\n{e}\n--- as compiled:\n{yaml}"
        )),
    }
}

fn check_block(b: &Block) -> Result<(), String> {
    let marker = b.marker.as_deref().ok_or_else(|| {
        format!(
            "{}:{}: a ```yaml block without a `<!-- yaml: ... -->` marker on the line before it (see tests/docs.rs)",
            b.file, b.line
        )
    })?;
    if marker == "topology" {
        for doc in b.text.split("\n---\n") {
            compile(b, doc)?;
        }
        Ok(())
    } else if let Some(base) = marker.strip_prefix("fragment ") {
        let base_path = root()
            .join("tests/docs")
            .join(format!("{}.yaml", base.trim()));
        let base_text = std::fs::read_to_string(&base_path)
            .map_err(|e| format!("{}:{}: {}: {e}", b.file, b.line, base_path.display()))?;
        let mut merged: Value = serde_yaml::from_str(&base_text).unwrap();
        let over: Value = serde_yaml::from_str(&b.text)
            .map_err(|e| format!("{}:{}: not YAML: {e}", b.file, b.line))?;
        merge(&mut merged, over);
        compile(b, &serde_yaml::to_string(&merged).unwrap())
    } else if marker == "image-map" {
        let mut sink = nslab::diag::Sink::default();
        nslab::clab::images::parse(&mut sink, &b.text);
        match sink.has_errors() {
            false => Ok(()),
            true => Err(format!(
                "{}:{}: the image map does not read: {:?}",
                b.file, b.line, sink.diagnostics
            )),
        }
    } else if marker
        .strip_prefix("not compiled:")
        .is_some_and(|why| !why.trim().is_empty())
    {
        Ok(())
    } else {
        Err(format!("{}:{}: unknown marker `{marker}`", b.file, b.line))
    }
}

#[test]
fn every_yaml_block_in_the_docs_is_marked_and_compiles() {
    let blocks: Vec<Block> = doc_files().iter().flat_map(|f| yaml_blocks(f)).collect();
    let compiled = blocks
        .iter()
        .filter(|b| {
            b.marker
                .as_deref()
                .is_some_and(|m| !m.starts_with("not compiled"))
        })
        .count();
    // The README's topology language and checks reference alone have a dozen.
    assert!(compiled >= 12, "only {compiled} blocks compiled");
    let failures: Vec<String> = blocks.iter().filter_map(|b| check_block(b).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_block_that_does_not_compile_is_reported_with_its_line() {
    let b = Block {
        file: "README.md".into(),
        line: 7,
        marker: Some("fragment base".into()),
        text: "nodes: { r1: { lables: {} } }\n".into(),
    };
    let err = check_block(&b).unwrap_err();
    assert!(err.contains("README.md:7"), "{err}");
    assert!(err.contains("unknown key `lables`"), "{err}");
    let unmarked = Block { marker: None, ..b };
    assert!(check_block(&unmarked).unwrap_err().contains("without a"));
}

#[test]
fn every_example_starts_with_a_comment_and_is_in_the_readme_table() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("\n## Examples").expect("an Examples section");
    let end = readme[start + 1..]
        .find("\n## ")
        .map_or(readme.len(), |e| e + start + 1);
    let table = &readme[start..end];
    let mut examples = 0;
    for e in std::fs::read_dir(root().join("topologies")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        examples += 1;
        let name = p.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("# "),
            "{name}: no comment saying what it shows"
        );
        assert!(
            table.contains(&format!("| `{name}` |")),
            "{name}: not in the README's Examples table"
        );
    }
    assert!(examples >= 10, "only {examples} examples");
}

/// Whether `got` is `want` with each `...` in `want` standing for any text.
fn elided_match(want: &str, got: &str) -> bool {
    let parts: Vec<&str> = want.split("...").collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return want == got;
    }
    if !got.starts_with(first) || !got[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &got[first.len()..got.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(k) => rest = &rest[k + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The commands of the README's console blocks that need no root (`validate`, `plan`),
/// each with the output shown under it. `lab.yaml` is `tests/invalid/unknown-key.yaml`.
fn readme_compile_commands() -> Vec<(usize, Vec<String>, Vec<String>)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut in_console = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.starts_with("```") {
            in_console = !in_console && line == "```console";
            continue;
        }
        let Some(cmd) = line.strip_prefix("$ nslab ") else {
            continue;
        };
        if !in_console || !(cmd.starts_with("validate ") || cmd.starts_with("plan ")) {
            continue;
        }
        let command_line = i;
        let mut shown = Vec::new();
        while i < lines.len() && !lines[i].starts_with("$ ") && !lines[i].starts_with("```") {
            shown.push(lines[i].trim_end().to_string());
            i += 1;
        }
        while shown.last().is_some_and(|l| l.is_empty()) {
            shown.pop();
        }
        let args = cmd.split_whitespace().map(str::to_string).collect();
        out.push((command_line, args, shown));
    }
    out
}

#[test]
fn readme_validate_and_plan_outputs_are_what_nslab_prints() {
    let own = support::Scratch(
        std::env::temp_dir()
            .join("nslab-tests")
            .join(format!("docs-{}", std::process::id())),
    );
    let scratch = own.path().to_path_buf();
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::copy(
        root().join("tests/invalid/unknown-key.yaml"),
        scratch.join("lab.yaml"),
    )
    .unwrap();
    let commands = readme_compile_commands();
    assert!(commands.len() >= 3, "{} commands found", commands.len());
    for (line, args, shown) in commands {
        let cwd = if args.iter().any(|a| a == "lab.yaml") {
            scratch.clone()
        } else {
            root()
        };
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_nslab"))
            .args(&args)
            .current_dir(cwd)
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let printed: Vec<&str> = printed.lines().map(str::trim_end).collect();
        // The shown lines, in order, `...` standing for lines left out.
        let mut at = 0;
        for want in shown.iter().filter(|l| l.trim() != "...") {
            // A line that is only `...` stands for lines left out; within a line, for text.
            match printed[at..].iter().position(|p| elided_match(want, p)) {
                Some(k) => at += k + 1,
                None => panic!(
                    "README.md:{line}: `nslab {}` prints no line `{want}` (in order); it prints:\n{}",
                    args.join(" "),
                    printed.join("\n")
                ),
            }
        }
    }
}

/// `nslab SUB ...` command lines of the README's and docs' ```sh and ```console blocks,
/// as words up to a pipe, redirection, comment or `&`.
fn shown_command_lines() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for f in doc_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.strip_prefix(root()).unwrap().display().to_string();
        let mut shell = false;
        for (n, line) in text.lines().enumerate() {
            if line.starts_with("```") {
                shell = !shell && (line == "```sh" || line == "```console");
                continue;
            }
            let cmd = line.trim_start_matches("$ ").trim_start_matches("sudo ");
            let Some(rest) = cmd.strip_prefix("nslab ") else {
                continue;
            };
            if !shell {
                continue;
            }
            let words: Vec<String> = rest
                .split_whitespace()
                .take_while(|w| !["|", ">", "#", "&", ";", "||"].contains(w))
                .map(str::to_string)
                .collect();
            out.push((format!("{name}:{}", n + 1), words));
        }
    }
    out
}

/// The synopses of the README's Commands table (`nslab up FILE [--jobs N] ...`), as
/// words: brackets dropped, `a\\|b` alternatives reduced to their first.
fn command_table_synopses() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut out = Vec::new();
    for (n, line) in readme.lines().enumerate() {
        let Some(row) = line.strip_prefix("| `nslab ") else {
            continue;
        };
        for synopsis in row.split("| ").next().unwrap().split(", `nslab ") {
            let code = synopsis.trim_start_matches('`').split('`').next().unwrap();
            let words: Vec<String> = code
                .replace(['[', ']'], " ")
                .split_whitespace()
                .map(|w| {
                    w.split("\\|")
                        .next()
                        .unwrap()
                        .trim_end_matches("...")
                        .to_string()
                })
                .collect();
            out.push((format!("README.md:{}", n + 1), words));
        }
    }
    out
}

#[test]
fn every_nslab_command_shown_in_the_docs_has_its_subcommand_and_flags() {
    let help = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_nslab"))
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    let table = command_table_synopses();
    assert!(
        table.len() >= 20,
        "only {} Commands table synopses",
        table.len()
    );
    let commands: Vec<_> = shown_command_lines().into_iter().chain(table).collect();
    assert!(
        commands.len() >= 60,
        "only {} commands found",
        commands.len()
    );
    for (at, words) in commands {
        let sub = &words[0];
        let (ok, mut text) = help(&[sub]);
        assert!(ok, "{at}: `nslab {sub}` is no subcommand");
        // `link down`, `node restart`: the second word may be a subcommand of its own.
        if let Some(second) = words.get(1).filter(|w| !w.starts_with('-')) {
            let (ok, more) = help(&[sub, second]);
            if ok {
                text.push_str(&more);
            }
        }
        // Flags up to `--`: what follows is the command `exec` runs, or a filter.
        for w in words[1..].iter().take_while(|w| *w != "--") {
            let flag = w.split('=').next().unwrap();
            let known = match flag.strip_prefix("--") {
                Some(_) => {
                    text.contains(&format!("{flag} ")) || text.contains(&format!("{flag}\n"))
                }
                None if flag.len() == 2 && flag.starts_with('-') => {
                    text.contains(&format!("{flag}, "))
                }
                None => true,
            };
            assert!(
                known,
                "{at}: `nslab {}`: `nslab {sub} --help` has no `{flag}`",
                words.join(" ")
            );
        }
    }
}
