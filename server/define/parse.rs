//! Reading a document (a blueprint in YAML or JSON) with errors a person can act on: the field
//! path as the rest of Slipway names it (`cloud.region`, `environment_types[2].node_group`),
//! and for text that is not YAML at all, the line, the column and what to change there.

use serde::de::DeserializeOwned;

use crate::validation::FieldError;

/// Parses YAML into `T`. The text is first read as plain YAML, so a syntax error is told apart
/// from a document with the wrong fields: yaml_serde reports both the same way, and the path of
/// a syntax error is only where its parser had got to.
pub fn yaml<T: DeserializeOwned>(text: &str) -> Result<T, FieldError> {
    let syntax = serde_path_to_error::deserialize::<_, yaml_serde::Value>(
        yaml_serde::Deserializer::from_str(text),
    );
    if let Err(e) = syntax {
        let path = e.path().to_string();
        return Err(syntax_error(text, &path, e.inner()));
    }
    serde_path_to_error::deserialize(yaml_serde::Deserializer::from_str(text)).map_err(|e| {
        let path = known_path(&e.path().to_string());
        let inner = e.into_inner();
        let mut message = inner.to_string();
        // yaml_serde starts its messages with the path of the enclosing mapping and ends them
        // with the position; both are given separately.
        if let Some((prefix, rest)) = message.split_once(": ")
            && path.starts_with(prefix)
        {
            message = rest.to_owned();
        }
        let message = plain(&message);
        FieldError {
            field: path,
            message: match inner.location() {
                Some(at) => format!("Line {}, column {}: {message}", at.line(), at.column()),
                None => message,
            },
        }
    })
}

/// Parses a JSON value into `T` (the API's `document`).
pub fn json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| FieldError {
        field: known_path(&e.path().to_string()),
        message: plain(&e.into_inner().to_string()),
    })
}

/// A path without the parts serde could not name (`?`, a key that is not a string) and with
/// the document itself as the empty path.
fn known_path(path: &str) -> String {
    path.split('.')
        .filter(|part| !part.is_empty() && *part != "?")
        .collect::<Vec<_>>()
        .join(".")
}

/// serde's message in words: Rust type names become what to write, the position is dropped
/// (it is reported separately).
fn plain(message: &str) -> String {
    let message = message.find(" at line ").map_or(message, |i| &message[..i]);
    let message = match message.rsplit_once(", expected ") {
        Some((found, expected)) => {
            let expected = match expected {
                "u32" => "a whole number (0 or more)",
                "a sequence" => "a list",
                "field identifier" => "a field name",
                "variant identifier" => "one of the listed words",
                e if e.starts_with("struct ") => "a mapping of fields (`key: value` lines)",
                e => e,
            };
            format!("{found}, expected {expected}")
        }
        None => message.to_owned(),
    };
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => message,
    }
}

/// A line and column as people count them (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    line: usize,
    column: usize,
}

impl Position {
    /// The character written there.
    fn char_in(self, text: &str) -> Option<char> {
        text.lines()
            .nth(self.line.checked_sub(1)?)?
            .chars()
            .nth(self.column.checked_sub(1)?)
    }

    /// The key written at the start of its line (`  region: x` → `region`), if any.
    fn key_in(self, text: &str) -> Option<&str> {
        let line = text.lines().nth(self.line.checked_sub(1)?)?.trim_start();
        let (key, _) = line.split_once(':')?;
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        plain.then_some(key)
    }
}

/// Reads `… at line 3 column 10` at the end of libyaml's text.
fn split_position(text: &str) -> (&str, Option<Position>) {
    let Some((before, at)) = text.rsplit_once(" at line ") else {
        return (text, None);
    };
    let position = at.split_once(" column ").and_then(|(line, column)| {
        Some(Position {
            line: line.parse().ok()?,
            column: column.parse().ok()?,
        })
    });
    match position {
        Some(p) => (before, Some(p)),
        None => (text, None),
    }
}

/// The last `[` or `{` left open in `text`, and which. A rough reading that skips quotes and
/// comments is enough: it runs only on text libyaml found broken at its end.
fn unclosed_bracket(text: &str) -> Option<(Position, char)> {
    let mut open = Vec::new();
    let (mut line, mut column) = (1, 0);
    let (mut quote, mut comment, mut previous) = (None, false, None);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        column += 1;
        if c == '\n' {
            (line, column, comment, previous) = (line + 1, 0, false, None);
            continue;
        }
        // Quotes, comments and brackets count only where a token can start.
        let starts = previous.is_none_or(|p: char| p.is_whitespace() || "[{,".contains(p));
        match (quote, c) {
            _ if comment => {}
            (Some('\''), '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
                column += 1;
            }
            (Some('"'), '\\') if chars.peek().is_some_and(|n| *n != '\n') => {
                chars.next();
                column += 1;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '#') if starts => comment = true,
            (None, '\'' | '"') if starts => quote = Some(c),
            (None, '[' | '{') if starts || !open.is_empty() => {
                open.push((Position { line, column }, c));
            }
            (None, ']' | '}') => {
                open.pop();
            }
            _ => {}
        }
        previous = Some(c);
    }
    open.pop()
}

/// What libyaml says of a syntax error: `<problem> at line L column C, while <context> at line
/// L column C`. yaml_serde gives no structured access to the second position, which is the one
/// that matters for an unclosed bracket or quote, so its text is read.
struct Report<'a> {
    problem: &'a str,
    problem_at: Option<Position>,
    context: &'a str,
    context_at: Option<Position>,
}

impl<'a> Report<'a> {
    fn read(shown: &'a str, location: Option<yaml_serde::Location>) -> Report<'a> {
        let (problem, context) = shown.split_once(", while ").unwrap_or((shown, ""));
        let (problem, problem_at) = split_position(problem);
        let (context, context_at) = split_position(context);
        Report {
            problem,
            problem_at: problem_at.or(location.map(|l| Position {
                line: l.line(),
                column: l.column(),
            })),
            context,
            context_at,
        }
    }

    fn while_(&self, context: &str) -> bool {
        self.context.starts_with(context)
    }

    /// Where the fix goes, and what it is.
    fn advice(&self, text: &str) -> (Option<Position>, String) {
        let problem = self.problem;
        let at = self.problem_at;
        // An unclosed bracket or quote is told where it opens, not where the parser gave up; at
        // the end of the text libyaml does not say where the bracket was, so it is looked for.
        let bracket = match problem {
            p if p.starts_with("did not find expected ',' or ']'")
                && self.while_("parsing a flow sequence") =>
            {
                self.context_at.map(|at| (at, '['))
            }
            p if p.starts_with("did not find expected ',' or '}'")
                && self.while_("parsing a flow mapping") =>
            {
                self.context_at.map(|at| (at, '{'))
            }
            "did not find expected node content" if self.while_("parsing a flow node") => {
                unclosed_bracket(text)
            }
            _ => None,
        };
        match bracket {
            Some((at, '[')) => return (Some(at), BRACKET.into()),
            Some((at, _)) => return (Some(at), BRACE.into()),
            None => {}
        }
        let words = match problem {
            "found unexpected end of stream" if self.while_("scanning a quoted scalar") => {
                let quote = self.context_at.and_then(|p| p.char_in(text)).unwrap_or('"');
                return (
                    self.context_at.or(at),
                    format!("this {quote} is never closed; end the text with another {quote}."),
                );
            }
            _ if self.tab(text) => TAB.to_owned(),
            "mapping values are not allowed in this context" => MAPPING_VALUE.to_owned(),
            "did not find expected key" => KEY.to_owned(),
            "did not find expected '-' indicator" => LIST_ITEM.to_owned(),
            "did not find expected node content" => NODE.to_owned(),
            "found character that cannot start any token" => {
                let c = at.and_then(|p| p.char_in(text)).unwrap_or('?');
                format!("a value cannot start with `{c}`; put the value in quotes.")
            }
            "found unknown escape character" => ESCAPE.to_owned(),
            "unknown anchor" => ANCHOR.to_owned(),
            "recursion limit exceeded" | "repetition limit exceeded" => ALIASES.to_owned(),
            p if p.starts_with("deserializing from YAML containing more than one document") => {
                return (None, ONE_DOCUMENT.into());
            }
            p => match self.duplicate() {
                Some(key) => format!("`{key}` is given twice in this mapping; keep one."),
                None if self.context.is_empty() => format!("{p}."),
                None => format!("{p}, while {}.", self.context),
            },
        };
        (at, words)
    }

    /// Whether the parser stopped at a tab.
    fn tab(&self, text: &str) -> bool {
        self.problem_at.and_then(|p| p.char_in(text)) == Some('\t')
    }

    /// The key given twice in a mapping.
    fn duplicate(&self) -> Option<&str> {
        let (_, key) = self.problem.split_once("duplicate entry with key \"")?;
        Some(key.trim_end_matches('"'))
    }
}

const BRACKET: &str =
    "this `[` is never closed; end the list with `]` and separate its items with commas.";
const BRACE: &str =
    "this `{` is never closed; end the mapping with `}` and separate its entries with commas.";
const TAB: &str =
    "a tab indents this line; YAML indents with spaces only, so replace the tab with spaces.";
const MAPPING_VALUE: &str = "a `key: value` cannot start here; indent this line exactly like the keys above it, or quote a value that contains `: `.";
const KEY: &str = "a key was expected here; line this up with the keys above it, and look for a stray `]`, `}` or quote.";
const LIST_ITEM: &str = "a list item (`- …`) was expected here; line it up with the list's other items, or indent the list less.";
const NODE: &str = "a value is missing or starts with a character YAML reserves (`]`, `}`, `,`, `|`); put the value in quotes.";
const ESCAPE: &str =
    "this is not an escape YAML knows; write `\\\\` for a backslash, or use single quotes.";
const ANCHOR: &str = "this alias (`*…`) names no anchor defined above it; define it with `&name` first, or write the value out.";
const ALIASES: &str = "the document nests or repeats aliases too deeply; write the values out.";
const ONE_DOCUMENT: &str =
    "Give one YAML document: remove the `---` line and the document after it.";

/// A syntax error as a field error: the path of what is at fault, the line, column and words.
fn syntax_error(text: &str, parser_path: &str, error: &yaml_serde::Error) -> FieldError {
    let shown = error.to_string();
    let report = Report::read(&shown, error.location());
    let (at, words) = report.advice(text);
    // The parser's path is where it had got to: a `?` (it wanted a key) or, for a tab, the
    // value on the line before, is replaced by the key written on the line at fault; unless
    // the fault is an opening bracket or quote, whose line starts with a parent's key.
    let mut parts: Vec<&str> = parser_path.split('.').collect();
    let tab = report.tab(text);
    let sibling = parts.last() == Some(&"?") || (tab && report.while_("scanning a plain scalar"));
    if sibling {
        parts.pop();
    }
    if let Some(key) = at.and_then(|p| p.key_in(text))
        && (sibling || tab)
        && at == report.problem_at
        && parts.last() != Some(&key)
    {
        parts.push(key);
    }
    parts.extend(report.duplicate());
    FieldError {
        field: known_path(&parts.join(".")),
        message: match at {
            Some(p) => format!("Line {}, column {}: {words}", p.line, p.column),
            None => words,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::define::blueprint::Blueprint;

    const TEMPLATE: &str = include_str!("blueprint_template.yaml");

    /// The error of the template with `from` replaced by `to`.
    fn error(from: &str, to: &str) -> (String, String) {
        assert!(TEMPLATE.contains(from), "the template has {from:?}");
        let e = yaml::<Blueprint>(&TEMPLATE.replacen(from, to, 1)).expect_err(to);
        (e.field, e.message)
    }

    /// The line (from 1) of the template on which `text` starts.
    fn line_of(text: &str) -> usize {
        TEMPLATE[..TEMPLATE.find(text).expect(text)].lines().count() + 1
    }

    #[test]
    fn syntax_errors_say_where_and_what_to_change() {
        let node_group = "    node_group:\n      instance_types: [m6i.large, m6i.xlarge]\n      min_size: 2\n      max_size: 6\n";
        let line = line_of(node_group) + 1;
        let cases = [
            // An unclosed `[`, told at the bracket rather than where the parser gave up.
            (
                "      instance_types: [m6i.large, m6i.xlarge]\n      min_size: 2\n      max_size: 6\n    data_services: [mongodb, kafka]",
                "      instance_types: [m6i.large, m6i.xlarge\n      min_size: 2\n      max_size: 6\n    data_services: [mongodb, kafka]",
                "environment_types[0].node_group.instance_types",
                format!("Line {line}, column 23: this `[` is never closed"),
            ),
            // … and at the end of the text, where libyaml does not say where it was.
            (
                "connected_services: []",
                "connected_services: [{name: ledger, kind: '[rest]'}, {name: vault",
                "connected_services[1]",
                format!(
                    "Line {}, column 54: this `{{` is never closed",
                    line_of("connected_services")
                ),
            ),
            // A tab instead of spaces.
            (
                "  vendor: aws\n  region: eu-west-1",
                "  vendor: aws\n\tregion: eu-west-1",
                "cloud.region",
                "Line 6, column 1: a tab indents this line".to_owned(),
            ),
            (
                "cloud:\n  vendor: aws",
                "cloud:\n\tvendor: aws",
                "cloud.vendor",
                "Line 5, column 1: a tab indents this line".to_owned(),
            ),
            // A key indented more than its neighbours.
            (
                "  region: eu-west-1",
                "   region: eu-west-1",
                "cloud.region",
                "Line 6, column 10: a `key: value` cannot start here".to_owned(),
            ),
            // … and one indented less than the mapping it ends.
            (
                "  on_teardown: close",
                " on_teardown: close",
                "on_teardown",
                "Line 13, column 2: a key was expected here".to_owned(),
            ),
            // (A quote closes at the next one of its kind, so only the last is never closed.)
            (
                "connected_services: []",
                "connected_services: '[]",
                "connected_services",
                format!(
                    "Line {}, column 21: this ' is never closed",
                    line_of("connected_services")
                ),
            ),
            (
                "  region: eu-west-1",
                "  region: eu-west-1\n  region: us-east-1",
                "cloud.region",
                "`region` is given twice in this mapping".to_owned(),
            ),
            (
                "  region: eu-west-1",
                "  region: @eu-west-1",
                "cloud.region",
                "Line 6, column 11: a value cannot start with `@`".to_owned(),
            ),
            (
                "connected_services: []",
                "connected_services: []\n---\ncloud: {}",
                "",
                "Give one YAML document".to_owned(),
            ),
        ];
        for (from, to, field, message) in cases {
            let (f, m) = error(from, to);
            assert_eq!(f, field, "{to:?}: {m}");
            assert!(m.contains(&message), "{to:?}: {m}");
        }
    }

    #[test]
    fn data_errors_name_the_field_and_the_position() {
        let line = line_of("      min_size: 2\n      max_size: 6\n    data_services");
        let cases = [
            // An unknown field inside a nested map.
            (
                "      min_size: 2\n      max_size: 6\n",
                "      min_size: 2\n      colour: blue\n      max_size: 6\n",
                "environment_types[0].node_group.colour",
                format!(
                    "Line {}, column 7: Unknown field `colour`, expected one of `instance_types`, `min_size`, `max_size`.",
                    line + 1
                ),
            ),
            // The wrong type in a list item.
            (
                "[m6i.large, m6i.xlarge]",
                "[m6i.large, {size: 2}]",
                "environment_types[0].node_group.instance_types[1]",
                format!(
                    "Line {}, column 35: Invalid type: map, expected a string.",
                    line - 1
                ),
            ),
            (
                "      min_size: 2\n      max_size: 6\n",
                "      min_size: two\n      max_size: 6\n",
                "environment_types[0].node_group.min_size",
                format!(
                    "Line {line}, column 17: Invalid type: string \"two\", expected a whole number (0 or more)."
                ),
            ),
            (
                "environment_types:\n",
                "environment_types:\n  - dev\n",
                "environment_types[0]",
                format!(
                    "Line {}, column 5: Invalid type: string \"dev\", expected a mapping of fields (`key: value` lines).",
                    line_of("environment_types:") + 1
                ),
            ),
        ];
        for (from, to, field, message) in cases {
            assert_eq!(error(from, to), (field.to_owned(), message), "{to}");
        }
    }
}
