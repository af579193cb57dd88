//! JSON specs laid over their defaults, as `--spec` files, API submissions and exploration
//! workloads are: objects merge key by key, and a key the typed value does not have is a typo
//! to name rather than ignore.

use serde_json::Value;

/// Overlays `user` on `base`: objects merge key by key, anything else replaces.
pub fn overlay(base: &mut Value, user: &Value) {
    match (base, user) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => overlay(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, u) => *b = u.clone(),
    }
}

/// The dotted path (under `path`) of the first non-null key of `user` that `known` lacks.
pub fn unknown_key(user: &Value, known: &Value, path: &str) -> Option<String> {
    let (Value::Object(u), Value::Object(k)) = (user, known) else { return None };
    for (key, v) in u {
        let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        match k.get(key) {
            None if !v.is_null() => return Some(here),
            Some(kv) => {
                if let Some(d) = unknown_key(v, kv, &here) {
                    return Some(d);
                }
            }
            None => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overlays_merge_objects_and_typos_are_named() {
        let mut base = json!({"a": 1, "d": {"x": 1, "y": 2}});
        overlay(&mut base, &json!({"d": {"y": 3}, "e": [1]}));
        assert_eq!(base, json!({"a": 1, "d": {"x": 1, "y": 3}, "e": [1]}));
        assert_eq!(unknown_key(&json!({"d": {"z": 1}}), &base, "spec"), Some("spec.d.z".into()));
        assert_eq!(unknown_key(&json!({"q": 1}), &base, ""), Some("q".into()));
        assert_eq!(unknown_key(&json!({"q": null, "a": 2}), &base, ""), None);
    }
}
