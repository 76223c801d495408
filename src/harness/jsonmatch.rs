//! `expect_json`: the expected value must be a subset of the actual one, as topotest's
//! `json_cmp` and munet read it.
//!
//! - Objects match key by key; keys the expected object does not name are ignored, and a
//!   null (`key: ~`) means the key must be absent.
//! - Lists are an unordered subset by default: each expected element must match a
//!   *distinct* actual element, in any order, and the actual list may hold more.
//!   In [`Lists::Exact`] mode (`json_exact: true`), lists must have the same length
//!   and match element by element, in order.
//! - Scalars must be equal (numbers by value: `1` matches `1.0`).

use serde_json::Value;

/// How lists match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lists {
    /// Each expected element matches a distinct actual one, in any order.
    Subset,
    /// Same length, element by element, in order.
    Exact,
}

/// The most element comparisons one match may cost (expected × actual elements, summed
/// over nested lists): the matching is polynomial, but a check runs every poll and must
/// stay cheap whatever a command prints.
const MAX_PAIRS: usize = 250_000;

/// `Ok` if `expected` is a subset of `actual`, else the first difference with its path.
pub fn subset(expected: &Value, actual: &Value, lists: Lists) -> Result<(), String> {
    Matcher {
        lists,
        left: MAX_PAIRS,
    }
    .walk(expected, actual, "$")
}

struct Matcher {
    lists: Lists,
    /// Element comparisons still allowed.
    left: usize,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Matcher {
    fn walk(&mut self, expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
        match (expected, actual) {
            (Value::Object(e), Value::Object(a)) => {
                for (k, ev) in e {
                    let p = format!("{path}.{k}");
                    match (ev, a.get(k)) {
                        (Value::Null, None) => {}
                        (Value::Null, Some(av)) => {
                            return Err(format!("{p}: expected no such key, found {av}"));
                        }
                        (_, None) => return Err(format!("{p}: missing")),
                        (ev, Some(av)) => self.walk(ev, av, &p)?,
                    }
                }
                Ok(())
            }
            (Value::Array(e), Value::Array(a)) => match self.lists {
                Lists::Exact => self.in_order(e, a, path),
                Lists::Subset => self.unordered(e, a, path),
            },
            (Value::Number(e), Value::Number(a)) => {
                if e.as_f64() == a.as_f64() {
                    Ok(())
                } else {
                    Err(format!("{path}: expected {e}, found {a}"))
                }
            }
            (e, a) if e == a => Ok(()),
            (e, a) if std::mem::discriminant(e) != std::mem::discriminant(a) => Err(format!(
                "{path}: expected {} ({e}), found {} ({a})",
                kind(e),
                kind(a)
            )),
            (e, a) => Err(format!("{path}: expected {e}, found {a}")),
        }
    }

    fn in_order(&mut self, e: &[Value], a: &[Value], path: &str) -> Result<(), String> {
        if e.len() != a.len() {
            return Err(format!(
                "{path}: expected {} elements, found {} (json_exact)",
                e.len(),
                a.len()
            ));
        }
        for (i, (ev, av)) in e.iter().zip(a).enumerate() {
            self.walk(ev, av, &format!("{path}[{i}]"))?;
        }
        Ok(())
    }

    /// Each expected element gets a distinct actual one: a bipartite matching (augmenting
    /// paths), so `[{a: 1}, {a: 1, b: 2}]` finds the right pairing whatever the order.
    fn unordered(&mut self, e: &[Value], a: &[Value], path: &str) -> Result<(), String> {
        if e.len() > a.len() {
            return Err(format!(
                "{path}: expected at least {} elements (in any order), found {}",
                e.len(),
                a.len()
            ));
        }
        let pairs = e.len().saturating_mul(a.len());
        if pairs > self.left {
            return Err(format!(
                "{path}: {} expected by {} actual elements is too many to match in any order (at most {MAX_PAIRS} comparisons in all); use `json_exact: true`",
                e.len(),
                a.len()
            ));
        }
        self.left -= pairs;
        // fits[i]: the actual elements expected element i matches.
        let mut fits: Vec<Vec<usize>> = Vec::with_capacity(e.len());
        for (i, ev) in e.iter().enumerate() {
            let mut ok = Vec::new();
            let mut nearest: Option<((usize, usize), usize, String)> = None;
            for (j, av) in a.iter().enumerate() {
                match self.walk(ev, av, &format!("{path}[{j}]")) {
                    Ok(()) => ok.push(j),
                    Err(d) => {
                        // The likeliest intended element: most keys alike, then the deepest
                        // difference.
                        let score = (self.alike(ev, av), depth(&d));
                        if nearest.as_ref().is_none_or(|(s, _, _)| score > *s) {
                            nearest = Some((score, j, d));
                        }
                    }
                }
            }
            if ok.is_empty() {
                return Err(match nearest {
                    // A scalar has no "nearest": any other value differs as much.
                    Some(_) if !ev.is_object() && !ev.is_array() => format!(
                        "{path}: expected element [{i}] ({ev}) matches none of the {} elements",
                        a.len()
                    ),
                    Some((_, j, d)) => format!(
                        "{path}: expected element [{i}] matches none of the {} elements; the nearest, [{j}], differs: {d}",
                        a.len()
                    ),
                    None => format!(
                        "{path}: expected element [{i}] matches nothing (the list is empty)"
                    ),
                });
            }
            fits.push(ok);
        }
        let mut owner: Vec<Option<usize>> = vec![None; a.len()];
        for i in 0..e.len() {
            let mut seen = vec![false; a.len()];
            if !augment(i, &fits, &mut owner, &mut seen) {
                let mut rivals: Vec<usize> = fits[i].iter().filter_map(|j| owner[*j]).collect();
                rivals.sort_unstable();
                let rivals: Vec<String> = rivals.iter().map(|o| format!("[{o}]")).collect();
                return Err(format!(
                    "{path}: expected element [{i}] matches only actual elements also needed by {}; each expected element needs its own",
                    rivals.join(", ")
                ));
            }
        }
        Ok(())
    }
}

impl Matcher {
    /// How many of an expected object's keys an actual object matches (0 otherwise).
    fn alike(&mut self, e: &Value, a: &Value) -> usize {
        let (Value::Object(e), Value::Object(a)) = (e, a) else {
            return 0;
        };
        e.iter()
            .filter(|(k, ev)| match a.get(*k) {
                Some(av) => self.walk(ev, av, "$").is_ok(),
                None => ev.is_null(),
            })
            .count()
    }
}

/// Kuhn's augmenting path from expected element `i`.
fn augment(i: usize, fits: &[Vec<usize>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &j in &fits[i] {
        if seen[j] {
            continue;
        }
        seen[j] = true;
        if owner[j].is_none_or(|o| augment(o, fits, owner, seen)) {
            owner[j] = Some(i);
            return true;
        }
    }
    false
}

/// How deep a difference's path goes (`$.a.b[2].c` is 4).
fn depth(diff: &str) -> usize {
    let path = diff.split(": ").next().unwrap_or("");
    path.matches(['.', '[']).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sub(e: Value, a: &Value) -> Result<(), String> {
        subset(&e, a, Lists::Subset)
    }

    #[test]
    fn objects_and_scalars() {
        let actual = json!({"a": 1, "b": {"c": [1, {"d": "x", "e": 2}]}, "f": true});
        assert!(sub(json!({"a": 1}), &actual).is_ok());
        assert!(sub(json!({"b": {"c": [1, {"d": "x"}]}}), &actual).is_ok());
        assert!(sub(json!({"zzz": null}), &actual).is_ok());
        assert_eq!(
            sub(json!({"a": null}), &actual).unwrap_err(),
            "$.a: expected no such key, found 1"
        );
        assert!(
            sub(json!({"q": 1}), &actual)
                .unwrap_err()
                .contains("missing")
        );
        assert!(sub(json!({"a": 1.0}), &actual).is_ok());
        assert!(
            sub(json!({"f": "true"}), &actual)
                .unwrap_err()
                .contains("expected a string")
        );
    }

    #[test]
    fn lists_are_an_unordered_subset_by_default() {
        let actual =
            json!({"n": [{"id": "r1", "state": "Down"}, {"id": "r2", "state": "Init"}, 7]});
        assert!(sub(json!({"n": [{"id": "r2"}, {"id": "r1"}]}), &actual).is_ok());
        assert!(sub(json!({"n": [7]}), &actual).is_ok());
        assert!(sub(json!({"n": []}), &actual).is_ok());
        let e = sub(json!({"n": [{"id": "r2", "state": "Full"}]}), &actual).unwrap_err();
        assert_eq!(
            e,
            "$.n: expected element [0] matches none of the 3 elements; the nearest, [1], differs: $.n[1].state: expected \"Full\", found \"Init\""
        );
        assert_eq!(
            sub(json!([1, 2, 3, 4]), &json!([1, 2, 3])).unwrap_err(),
            "$: expected at least 4 elements (in any order), found 3"
        );
    }

    #[test]
    fn each_expected_element_needs_a_distinct_actual_one() {
        // Greedy would give [0] the first element and leave [1] nothing.
        let actual = json!([{"a": 1, "b": 2}, {"a": 1}]);
        assert!(sub(json!([{"a": 1}, {"b": 2}]), &actual).is_ok());
        assert_eq!(
            sub(
                json!([{"a": 1}, {"a": 1}, {"a": 1}]),
                &json!([{"a": 1}, {"a": 1}, 3])
            )
            .unwrap_err(),
            "$: expected element [2] matches only actual elements also needed by [0], [1]; each expected element needs its own"
        );
        assert!(sub(json!(["x", "x"]), &json!(["x", "y", "x"])).is_ok());
        assert!(sub(json!(["x", "x"]), &json!(["x", "y"])).is_err());
    }

    #[test]
    fn exact_lists_keep_length_and_order() {
        let actual = json!({"c": [1, {"d": "x", "e": 2}]});
        let exact = |e: Value| subset(&e, &actual, Lists::Exact);
        assert!(exact(json!({"c": [1, {"d": "x"}]})).is_ok());
        assert_eq!(
            exact(json!({"c": [1]})).unwrap_err(),
            "$.c: expected 1 elements, found 2 (json_exact)"
        );
        assert_eq!(
            exact(json!({"c": [{"d": "x"}, 1]})).unwrap_err(),
            "$.c[0]: expected an object ({\"d\":\"x\"}), found a number (1)"
        );
        // The same in any order holds by default.
        assert!(sub(json!({"c": [{"d": "x"}, 1]}), &actual).is_ok());
    }

    #[test]
    fn huge_lists_are_refused_not_matched_slowly() {
        let a = Value::Array((0..1000).map(Value::from).collect());
        let e = Value::Array((0..600).map(Value::from).collect());
        assert!(sub(e.clone(), &a).unwrap_err().contains("too many"));
        assert!(subset(&e, &a, Lists::Exact).is_err());
    }

    /// The examples of the README's "Matching JSON", as written there.
    #[test]
    fn the_readme_examples_hold_and_fail_as_documented() {
        let actual = json!({"neighbors": [{"id": "10.0.0.2", "state": "Full"}, {"id": "10.0.0.3", "state": "Init"}]});
        let ids = |a: &str, b: &str| json!({"neighbors": [{"id": a}, {"id": b}]});
        assert!(
            sub(
                json!({"neighbors": [{"id": "10.0.0.3"}, {"id": "10.0.0.2", "state": "Full"}]}),
                &actual
            )
            .is_ok()
        );
        assert!(sub(json!({"neighbors": [{"state": "Full"}]}), &actual).is_ok());
        assert!(
            sub(
                json!({"neighbors": [{"state": "Full"}, {"state": "Full"}]}),
                &actual
            )
            .is_err()
        );
        assert!(sub(json!({"neighbors": [{"id": "10.0.0.4"}]}), &actual).is_err());
        let mut absent = ids("10.0.0.2", "10.0.0.3");
        absent["dead"] = Value::Null;
        assert!(sub(absent, &actual).is_ok());
        assert!(subset(&ids("10.0.0.3", "10.0.0.2"), &actual, Lists::Exact).is_err());
        assert!(subset(&ids("10.0.0.2", "10.0.0.3"), &actual, Lists::Exact).is_ok());
    }

    #[test]
    fn a_missing_scalar_is_named_without_a_nearest_element() {
        assert_eq!(
            sub(json!({"l": [2, 3]}), &json!({"l": [1, 2]})).unwrap_err(),
            "$.l: expected element [1] (3) matches none of the 2 elements"
        );
    }
}
