//! Field-level validation shared by forms and the JSON API: each error names the field (a path
//! such as `parameters.max_nodes`) and says what to do.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The errors of one submitted form or document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// The first message for `field`, for showing beside it.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was added.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The errors of a part of a document named from the whole: `cloud.region` of `document`
    /// becomes `document.cloud.region` (and an error of the part itself, `document`).
    pub fn within(self, parent: &str) -> FieldErrors {
        FieldErrors(
            self.0
                .into_iter()
                .map(|e| FieldError {
                    field: if e.field.is_empty() {
                        parent.to_owned()
                    } else {
                        format!("{parent}.{}", e.field)
                    },
                    message: e.message,
                })
                .collect(),
        )
    }
}

/// A plausible e-mail address: one `@`, something on both sides, a dot in the domain, no spaces.
pub fn check_email(email: &str) -> Result<(), &'static str> {
    let valid = email.len() <= 320
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
    if valid {
        Ok(())
    } else {
        Err("Enter an e-mail address such as ada@example.com.")
    }
}

/// A display name: 1–200 characters after trimming.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    match name.trim().chars().count() {
        0 => Err("Enter a name."),
        1..=200 => Ok(()),
        _ => Err("Use at most 200 characters."),
    }
}

/// What a text field may hold of the control characters (none reaches PostgreSQL, which
/// refuses NUL in text and JSON, or a header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// Names, slugs, titles, e-mail addresses, URLs, filters, path and query parameters: none.
    SingleLine,
    /// Text areas (descriptions, notes, comments, reasons, YAML, lists one per line): tab,
    /// newline and carriage return only.
    MultiLine,
}

/// The fields entered in text areas, by name. Strings inside a blueprint `document` are
/// multi-line too (YAML block scalars).
const MULTI_LINE_FIELDS: &[&str] = &[
    "description",
    "notes",
    "comment",
    "reason",
    "purpose",
    "goals",
    "security",
    "connected_services",
    "yaml",
    "mapping",
    // A team's members, one e-mail address per line.
    "members",
];

/// The kind of the field at `path` (`description`, `connected_services[0].notes`,
/// `document.environment_types[1].name`): its last name decides, and `document` covers all
/// below it.
pub fn text_kind(path: &str) -> TextKind {
    let names: Vec<&str> = path
        .split(['.', '['])
        .filter(|s| !s.is_empty() && !s.ends_with(']'))
        .collect();
    let multi = names.first() == Some(&"document")
        || names
            .last()
            .is_some_and(|last| MULTI_LINE_FIELDS.contains(last));
    if multi {
        TextKind::MultiLine
    } else {
        TextKind::SingleLine
    }
}

/// Refuses the control characters a field of `kind` may not hold, naming the first one.
pub fn check_text(text: &str, kind: TextKind) -> Result<(), String> {
    let allowed = |c: char| kind == TextKind::MultiLine && matches!(c, '\t' | '\n' | '\r');
    match text.chars().find(|c| c.is_control() && !allowed(*c)) {
        None => Ok(()),
        Some(c) if kind == TextKind::SingleLine && matches!(c, '\t' | '\n' | '\r') => Err(format!(
            "Use one line: remove the control character U+{:04X}.",
            c as u32
        )),
        Some(c) => Err(format!(
            "Remove the control character U+{:04X}; text may not contain it.",
            c as u32
        )),
    }
}

/// Every string of a JSON document, and every key, that [`check_text`] refuses, by field path.
pub fn json_text_errors(value: &serde_json::Value) -> FieldErrors {
    fn walk(value: &serde_json::Value, path: &str, errors: &mut FieldErrors) {
        match value {
            serde_json::Value::String(text) => {
                if let Err(message) = check_text(text, text_kind(path)) {
                    errors.add(path, message);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), errors);
                }
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    let shown: String = key.escape_default().collect();
                    let child = if path.is_empty() {
                        shown
                    } else {
                        format!("{path}.{shown}")
                    };
                    if let Err(message) = check_text(key, TextKind::SingleLine) {
                        errors.add(&child, format!("A key may not contain that. {message}"));
                        continue;
                    }
                    walk(item, &child, errors);
                }
            }
            _ => {}
        }
    }
    let mut errors = FieldErrors::default();
    walk(value, "", &mut errors);
    errors
}

/// `eu-west-1`, `us-east-2`, `ap-southeast-1`.
pub fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// A DNS label of at most 40 characters: lowercase letters, digits, inner dashes.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(check_email("ada@example.com").is_ok());
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@example",
            "ada @example.com",
            "a@b@c.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn control_characters_by_field_kind() {
        assert_eq!(text_kind("name"), TextKind::SingleLine);
        assert_eq!(text_kind("description"), TextKind::MultiLine);
        assert_eq!(
            text_kind("connected_services[0].notes"),
            TextKind::MultiLine
        );
        assert_eq!(
            text_kind("connected_services[0].name"),
            TextKind::SingleLine
        );
        assert_eq!(text_kind("connected_services"), TextKind::MultiLine);
        assert_eq!(text_kind("goals[2]"), TextKind::MultiLine);
        assert_eq!(text_kind("document.cloud.region"), TextKind::MultiLine);
        assert_eq!(text_kind("parameters.instance_type"), TextKind::SingleLine);
        assert!(check_text("a\nb\tc\r\n", TextKind::MultiLine).is_ok());
        assert!(check_text("a\u{0}b", TextKind::MultiLine).is_err());
        assert!(check_text("a\u{1b}[31m", TextKind::MultiLine).is_err());
        assert!(check_text("a\u{85}", TextKind::MultiLine).is_err());
        assert!(check_text("a\nb", TextKind::SingleLine).is_err());
        assert!(check_text("Zürich – ok ✓", TextKind::SingleLine).is_ok());
        let errors = json_text_errors(&serde_json::json!({
            "title": "x\u{0}", "description": "two\nlines",
            "connected_services": [{"name": "a\nb", "notes": "fine\n"}],
            "k\u{0}": 1,
        }));
        let mut fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["connected_services[0].name", "k\\u{0}", "title"]);
    }
}
