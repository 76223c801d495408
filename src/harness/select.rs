//! `nslab test --check PATTERN`: run a subset of the lab's checks. The others are
//! reported as skipped (JUnit `<skipped/>`), so a CI report still lists every check.

use super::{CheckResult, skipped};
use crate::model::Check;

/// The name a pattern is matched against besides the check's own: a many-node check's
/// entry (`ospf-up` for `ospf-up [r1]`), so one pattern picks all its nodes.
fn entry_name(c: &Check) -> Option<&str> {
    c.group.as_ref()?;
    c.name.rsplit_once(" [").map(|(entry, _)| entry)
}

fn matches(pattern: &str, c: &Check) -> bool {
    crate::words::glob(pattern, &c.name)
        || entry_name(c).is_some_and(|e| crate::words::glob(pattern, e))
}

/// The first pattern that matches no check, as an error listing the names there are: a
/// typo must not turn into a run that checks nothing and passes.
pub fn unknown(checks: &[Check], patterns: &[String]) -> Option<String> {
    let p = patterns
        .iter()
        .find(|p| !checks.iter().any(|c| matches(p, c)))?;
    let mut names: Vec<&str> = Vec::new();
    for c in checks {
        let n = entry_name(c).unwrap_or(&c.name);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let list = match names.is_empty() {
        true => "it has none".to_string(),
        false => format!("its checks: {}", names.join(", ")),
    };
    Some(format!(
        "no check matches `{p}` (`*` matches any characters); {list}"
    ))
}

/// The checks some pattern matches (in file order), and the others as skipped results.
pub fn split(checks: &[Check], patterns: &[String]) -> (Vec<Check>, Vec<CheckResult>) {
    let (chosen, left): (Vec<&Check>, Vec<&Check>) = checks
        .iter()
        .partition(|c| patterns.iter().any(|p| matches(p, c)));
    let left = left
        .into_iter()
        .map(|c| skipped(c, "not selected by --check"))
        .collect();
    (chosen.into_iter().cloned().collect(), left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::Status;

    const LAB: &str = "
name: sel
nodes: { a: {}, b: {}, c: {} }
links: [ { endpoints: [a, b] }, { endpoints: [b, c] } ]
tests:
  - reach: { from: a, to: b, name: reach-ab }
  - reach: { from: a, to: c, name: reach-ac }
  - route: { node: [a, c], to: 10.9.0.0/16, expect: absent, name: no-r9 }
  - path: { from: a, to: c, hops: [b, c] }
";

    fn checks() -> Vec<Check> {
        crate::compile_str(LAB, "lab.yaml", std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{e}"))
            .topology
            .checks
    }

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    fn names(cs: &[Check]) -> Vec<&str> {
        cs.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn names_globs_and_entries_select_in_file_order() {
        let cs = checks();
        let (run, left) = split(&cs, &pats(&["reach-ac", "no-r9"]));
        assert_eq!(names(&run), ["reach-ac", "no-r9 [a]", "no-r9 [c]"]);
        let left: Vec<(&str, Status, &str)> = left
            .iter()
            .map(|r| (r.name.as_str(), r.status, r.reason.as_deref().unwrap()))
            .collect();
        let why = "not run: not selected by --check";
        assert_eq!(
            left,
            [
                ("reach-ab", Status::Skipped, why),
                ("4: path a -> c", Status::Skipped, why)
            ]
        );
        let (run, _) = split(&cs, &pats(&["reach-*"]));
        assert_eq!(names(&run), ["reach-ab", "reach-ac"]);
        // One node of a many-node check, by its full name.
        let (run, left) = split(&cs, &pats(&["no-r9 [c]"]));
        assert_eq!(names(&run), ["no-r9 [c]"]);
        assert_eq!(left.len(), 4);
    }

    #[test]
    fn a_pattern_that_matches_nothing_lists_the_names() {
        let cs = checks();
        assert_eq!(unknown(&cs, &pats(&["reach-*", "no-r9"])), None);
        assert_eq!(
            unknown(&cs, &pats(&["reach-*", "rech-ab"])).as_deref(),
            Some(
                "no check matches `rech-ab` (`*` matches any characters); \
                 its checks: reach-ab, reach-ac, no-r9, 4: path a -> c"
            )
        );
    }
}
