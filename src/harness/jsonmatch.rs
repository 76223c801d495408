//! `expect_json`: the expected value must be a subset of the actual one. In objects, every
//! expected key must match (a null means the key must be absent); lists match element by
//! element, in order, with the same length; scalars must be equal.

use serde_json::Value;

/// `Ok` if `expected` is a subset of `actual`, else the first difference with its path.
pub fn subset(expected: &Value, actual: &Value) -> Result<(), String> {
    walk(expected, actual, "$")
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

fn walk(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
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
                    (ev, Some(av)) => walk(ev, av, &p)?,
                }
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!(
                    "{path}: expected {} elements, found {}",
                    e.len(),
                    a.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                walk(ev, av, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subsets() {
        let actual = json!({"a": 1, "b": {"c": [1, {"d": "x", "e": 2}]}, "f": true});
        assert!(subset(&json!({"a": 1}), &actual).is_ok());
        assert!(subset(&json!({"b": {"c": [1, {"d": "x"}]}}), &actual).is_ok());
        assert!(subset(&json!({"zzz": null}), &actual).is_ok());
        assert_eq!(
            subset(&json!({"a": null}), &actual).unwrap_err(),
            "$.a: expected no such key, found 1"
        );
        assert_eq!(
            subset(&json!({"b": {"c": [1]}}), &actual).unwrap_err(),
            "$.b.c: expected 1 elements, found 2"
        );
        assert_eq!(
            subset(&json!({"b": {"c": [1, {"d": "y"}]}}), &actual).unwrap_err(),
            "$.b.c[1].d: expected \"y\", found \"x\""
        );
        assert!(
            subset(&json!({"q": 1}), &actual)
                .unwrap_err()
                .contains("missing")
        );
        assert!(subset(&json!({"a": 1.0}), &actual).is_ok());
        assert!(
            subset(&json!({"f": "true"}), &actual)
                .unwrap_err()
                .contains("expected a string")
        );
    }
}
