//! The lowest layer of the execution side: where the host keeps what nslab names, and
//! the system calls std and nix leave raw. Both `apply` (which creates namespaces) and
//! `node` (whose inits and `exec` enter them) use it, so neither has to reach into the
//! other.
//!
//! Every `unsafe` of nslab is here, each with a `// SAFETY:` comment, behind functions
//! that are safe to call, except the node's init's own (`UNSAFE_ALLOWED`, below);
//! a test keeps it so. Calls nix has safely are made through nix, not here.

pub mod attrs;
pub mod bounded;
pub mod child;
pub mod cmdline;
pub mod fd;
pub mod held;
pub mod mount;
pub mod netns;
pub mod packet;
pub mod pidfd;
pub mod signal;

/// Where `unsafe` may be written, relative to the crate: this module tree, and the node's
/// init, whose system calls stay in its own file because moving them here raised every
/// init's memory (README Architecture, "Where `unsafe` lives").
#[cfg(test)]
const UNSAFE_ALLOWED: [&str; 2] = ["src/sys/", "src/node/init.rs"];

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// `text` with comments and the insides of string and char literals blanked (newlines
    /// kept), so a word found in what is left is code.
    fn code_only(text: &str) -> String {
        let c: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        let ident = |k: usize| k > 0 && (c[k - 1].is_alphanumeric() || c[k - 1] == '_');
        // Copies newlines of c[from..to] and blanks the rest.
        let blank = |out: &mut String, from: usize, to: usize| {
            out.extend(
                c[from..to]
                    .iter()
                    .map(|&ch| if ch == '\n' { '\n' } else { ' ' }),
            );
        };
        while i < c.len() {
            let at = |k: usize| c.get(k).copied().unwrap_or('\0');
            let end = if at(i) == '/' && at(i + 1) == '/' {
                (i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len())
            } else if at(i) == '/' && at(i + 1) == '*' {
                let (mut depth, mut k) = (1, i + 2);
                while k < c.len() && depth > 0 {
                    if at(k) == '/' && at(k + 1) == '*' {
                        depth += 1;
                        k += 1;
                    } else if at(k) == '*' && at(k + 1) == '/' {
                        depth -= 1;
                        k += 1;
                    }
                    k += 1;
                }
                k
            } else if (at(i) == 'r' || (at(i) == 'b' && at(i + 1) == 'r')) && !ident(i) && {
                let s = if at(i) == 'b' { i + 2 } else { i + 1 };
                let h = (s..c.len()).take_while(|&k| c[k] == '#').count();
                at(s + h) == '"'
            } {
                let s = if at(i) == 'b' { i + 2 } else { i + 1 };
                let hashes = (s..c.len()).take_while(|&k| c[k] == '#').count();
                let close: String = std::iter::once('"')
                    .chain("#".repeat(hashes).chars())
                    .collect();
                let body = s + hashes + 1;
                let rest: String = c[body..].iter().collect();
                body + rest
                    .find(&close)
                    .map_or(c.len() - body, |n| rest[..n].chars().count() + close.len())
            } else if at(i) == '"' {
                let mut k = i + 1;
                while k < c.len() && c[k] != '"' {
                    k += if c[k] == '\\' { 2 } else { 1 };
                }
                k + 1
            } else if at(i) == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
                let mut k = i + 1;
                while k < c.len() && c[k] != '\'' {
                    k += if c[k] == '\\' { 2 } else { 1 };
                }
                k + 1
            } else {
                out.push(c[i]);
                i += 1;
                continue;
            };
            let end = end.min(c.len());
            blank(&mut out, i, end);
            i = end;
        }
        out
    }

    /// The lines of `text` whose code holds the word `unsafe`, numbered from 1.
    fn unsafe_lines(text: &str) -> Vec<usize> {
        code_only(text)
            .lines()
            .enumerate()
            .filter(|(_, l)| {
                l.match_indices("unsafe").any(|(at, _)| {
                    let word = |ch: char| ch.is_alphanumeric() || ch == '_';
                    let before = l[..at].chars().next_back().is_some_and(word);
                    let after = l[at + 6..].chars().next().is_some_and(word);
                    !before && !after
                })
            })
            .map(|(n, _)| n + 1)
            .collect()
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn unsafe_code_is_found_and_words_in_comments_and_strings_are_not() {
        let text = "// unsafe here\nlet s = \"unsafe\";\nlet r = r#\"unsafe\"#;\nlet c = '\"';\n\
                    /* unsafe /* nested */ unsafe */\nfn unsafe_name() {}\nunsafe { f() }\n\
                    let l: &'static str = x; unsafe fn g() {}\n";
        assert_eq!(unsafe_lines(text), vec![7, 8]);
    }

    /// Every `unsafe` of the crate is in [`super::UNSAFE_ALLOWED`]: a system call
    /// anywhere else goes through nix or a safe wrapper in this module tree.
    #[test]
    fn unsafe_appears_only_where_allowed() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        rust_files(&root.join("src"), &mut files);
        assert!(files.len() > 100, "src/ was not found: {}", root.display());
        let mut found = Vec::new();
        for f in &files {
            let rel = f
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if super::UNSAFE_ALLOWED.iter().any(|a| rel.starts_with(a)) {
                continue;
            }
            let text = std::fs::read_to_string(f).unwrap();
            found.extend(
                unsafe_lines(&text)
                    .into_iter()
                    .map(|n| format!("{rel}:{n}")),
            );
        }
        assert!(
            found.is_empty(),
            "`unsafe` outside {:?} (put the call behind a safe wrapper in src/sys/): {found:?}",
            super::UNSAFE_ALLOWED
        );
    }
}
