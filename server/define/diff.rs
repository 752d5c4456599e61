//! Structural diff of two documents: the fields that changed, by path, with before and after.
//! Lists of named things (environment types, connected services) are matched by name, so a
//! reordering or an insertion is not reported as every later entry changing.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Change {
    pub path: String,
    /// Any part of a blueprint document: free-form by contract.
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The changes from `before` to `after`.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    walk("", Some(before), Some(after), &mut changes);
    changes
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn name_of(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

fn walk(path: &str, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<Change>) {
    match (before, after) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                walk(&join(path, key), a.get(key), b.get(key), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b)))
            if a.iter().chain(b).all(|v| name_of(v).is_some()) =>
        {
            // Named entries: matched by name, reported as `list[name]`.
            for item in a {
                let name = name_of(item).unwrap_or_default();
                let other = b.iter().find(|v| name_of(v) == Some(name));
                walk(&format!("{path}[{name}]"), Some(item), other, out);
            }
            for item in b {
                let name = name_of(item).unwrap_or_default();
                if !a.iter().any(|v| name_of(v) == Some(name)) {
                    walk(&format!("{path}[{name}]"), None, Some(item), out);
                }
            }
        }
        (Some(a), Some(b)) if a == b => {}
        (None, None) => {}
        (a, b) => out.push(Change {
            path: path.to_owned(),
            before: a.cloned(),
            after: b.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_changed_added_and_removed_fields_by_path() {
        let before = json!({
            "cloud": {"region": "eu-west-1"},
            "environment_types": [{"name": "dev", "max": 4}, {"name": "perf", "max": 20}],
            "tags": ["a", "b"]
        });
        let after = json!({
            "cloud": {"region": "eu-central-1"},
            "environment_types": [{"name": "perf", "max": 30}, {"name": "qa", "max": 2}],
            "tags": ["a", "b"]
        });
        let changes = diff(&before, &after);
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "cloud.region",
                "environment_types[dev]",
                "environment_types[perf].max",
                "environment_types[qa]"
            ]
        );
        assert_eq!(changes[0].before, Some(json!("eu-west-1")));
        assert_eq!(changes[1].after, None, "dev was removed");
        assert!(diff(&before, &before).is_empty());
    }
}
