//! The structured blueprint form: one list of field descriptors drives both the rendering (by
//! section, each input named by its document path, e.g. `environment_types[2].ttl.max_hours`)
//! and the parsing, so an error from validation lands beside the input it is about.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::define::blueprint::Blueprint;
use crate::http::extract::FormFields;
use crate::validation::FieldErrors;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Number,
    /// A checkbox.
    Bool,
    /// Comma-separated list of words.
    List,
    Select(&'static [&'static str]),
}

#[derive(Debug, Clone)]
pub struct Field {
    pub path: String,
    pub label: &'static str,
    pub kind: Kind,
    pub value: String,
    pub checked: bool,
    pub error: Option<String>,
}

impl Field {
    pub fn is_text(&self) -> bool {
        matches!(self.kind, Kind::Text | Kind::List)
    }
    pub fn is_number(&self) -> bool {
        self.kind == Kind::Number
    }
    pub fn is_bool(&self) -> bool {
        self.kind == Kind::Bool
    }
    pub fn options(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Select(options) => options,
            _ => &[],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Section {
    pub title: String,
    pub fields: Vec<Field>,
    /// For an environment type: the path prefix of its `remove` checkbox.
    pub removable: Option<String>,
    /// A list edited as rows below the fields (connected services, security requirements).
    pub list: Option<Rows>,
}

impl Section {
    /// Every input, the list's rows included.
    pub fn inputs(&self) -> impl Iterator<Item = &Field> {
        let rows = self.list.iter().flat_map(|list| &list.rows);
        self.fields.iter().chain(rows.flat_map(|row| &row.fields))
    }

    /// Whether one of its inputs has an error: such a section is shown open.
    pub fn has_error(&self) -> bool {
        self.inputs().any(|f| f.error.is_some())
    }
}

/// A list of the document as rows: one per entry, then blank ones to add entries.
#[derive(Debug, Clone)]
pub struct Rows {
    /// How to add and remove, shown above the rows.
    pub hint: &'static str,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub legend: String,
    pub fields: Vec<Field>,
    /// The name of its remove checkbox; a blank row has none.
    pub remove: Option<String>,
}

/// One input: its document path, label and kind.
type Spec = (String, &'static str, Kind);
/// A section: title, the path prefix of its remove checkbox (environment types), its inputs,
/// and a list edited as rows.
type SectionSpec = (String, Option<String>, Vec<Spec>, Option<&'static ListSpec>);

/// A list of the document edited as rows of text inputs, without JavaScript: each entry's row,
/// then [`BLANK_ROWS`] blank ones. A row ticked to remove, or left with every input empty, is
/// dropped; so clearing a row removes its entry too.
struct ListSpec {
    /// The list's document path.
    path: &'static str,
    /// What an entry is called, in a row's legend.
    noun: &'static str,
    /// Each entry's keys and labels; one key `""` for a list of texts.
    columns: &'static [(&'static str, &'static str)],
    hint: &'static str,
}

/// Blank rows offered to add entries: a few at once, so adding several takes one save.
const BLANK_ROWS: usize = 3;

const CONNECTED_SERVICES: ListSpec = ListSpec {
    path: "connected_services",
    noun: "Connected service",
    columns: &[
        ("name", "Name"),
        ("kind", "Kind (REST, Kafka…)"),
        ("endpoint", "Endpoint"),
        ("notes", "Notes"),
    ],
    hint: "Fill in a blank row to add a service. Tick Remove, or clear every box of a row, to remove one.",
};

const REQUIREMENTS: ListSpec = ListSpec {
    path: "security.requirements",
    noun: "Requirement",
    columns: &[("", "Security or compliance requirement")],
    hint: "Security and compliance requirements: write one in a blank row to add it; tick Remove, or clear it, to remove one.",
};

impl ListSpec {
    /// The input of `column` in row `index`: `connected_services[1].endpoint`,
    /// `security.requirements[0]`, `security.requirements[0].remove`.
    fn input(&self, index: usize, column: &str) -> String {
        match column {
            "" => format!("{}[{index}]", self.path),
            key => format!("{}[{index}].{key}", self.path),
        }
    }

    /// The entries as submitted. Rows are read by the index in their names rather than counted
    /// from the edited revision, so entries added on a form shown again after an error stay.
    fn submitted(&self, form: &FormFields) -> Value {
        let prefix = format!("{}[", self.path);
        let mut rows: BTreeMap<usize, SubmittedRow> = BTreeMap::new();
        for (rest, value) in form.starting_with(&prefix) {
            let Some((index, key)) = rest.split_once(']') else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            let key = key.strip_prefix('.').unwrap_or(key);
            let row = rows.entry(index).or_default();
            if key == REMOVE {
                row.removed = !value.is_empty();
            } else if self.columns.iter().any(|(column, _)| *column == key) {
                row.values.push((key, value.trim()));
            }
        }
        Value::Array(
            rows.into_values()
                .filter(|row| !row.removed && row.values.iter().any(|(_, v)| !v.is_empty()))
                .map(|row| match self.columns {
                    [("", _)] => row.value(""),
                    columns => Value::Object(
                        columns
                            .iter()
                            .map(|(key, _)| ((*key).to_owned(), row.value(key)))
                            .collect(),
                    ),
                })
                .collect(),
        )
    }

    /// The rows for `doc`: its entries, then blank rows.
    fn rows(&self, doc: &Value, errors: &FieldErrors) -> Rows {
        let entries = lookup(doc, self.path)
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let rows = (0..entries + BLANK_ROWS)
            .map(|i| {
                let fields: Vec<Field> = self
                    .columns
                    .iter()
                    .map(|(key, label)| field(doc, errors, self.input(i, key), label, Kind::Text))
                    .collect();
                let existing = i < entries;
                // An entry is known by its first input (a service's name, a requirement).
                let first = fields.first().map(|f| f.value.trim()).unwrap_or_default();
                Row {
                    legend: match (existing, first) {
                        (false, _) => format!("New {}", self.noun.to_lowercase()),
                        (true, name) if name.is_empty() || self.columns.len() == 1 => {
                            format!("{} {}", self.noun, i + 1)
                        }
                        (true, name) => format!("{} {}: {name}", self.noun, i + 1),
                    },
                    remove: existing.then(|| self.input(i, REMOVE)),
                    fields,
                }
            })
            .collect();
        Rows {
            hint: self.hint,
            rows,
        }
    }
}

/// The last part of a row's remove checkbox's name.
const REMOVE: &str = "remove";

/// A row as submitted: whether it is ticked to remove, and its inputs by column.
#[derive(Default)]
struct SubmittedRow<'a> {
    removed: bool,
    values: Vec<(&'a str, &'a str)>,
}

impl SubmittedRow<'_> {
    /// The text of `column` (empty when the row did not send it).
    fn value(&self, column: &str) -> Value {
        let text = self.values.iter().find(|(key, _)| *key == column);
        Value::String(text.map_or("", |(_, text)| *text).to_owned())
    }
}

fn node_group(prefix: &str) -> Vec<Spec> {
    vec![
        (
            format!("{prefix}.node_group.instance_types"),
            "Instance types (comma-separated)",
            Kind::List,
        ),
        (
            format!("{prefix}.node_group.min_size"),
            "Minimum nodes",
            Kind::Number,
        ),
        (
            format!("{prefix}.node_group.max_size"),
            "Maximum nodes",
            Kind::Number,
        ),
    ]
}

const LIFECYCLES: &[&str] = &["long_lived", "ephemeral"];

fn environment_type(i: usize) -> Vec<Spec> {
    let p = format!("environment_types[{i}]");
    let mut fields = vec![
        (format!("{p}.name"), "Name", Kind::Text),
        (
            format!("{p}.lifecycle"),
            "Lifecycle",
            Kind::Select(LIFECYCLES),
        ),
        (
            format!("{p}.ttl.default_hours"),
            "Default TTL in hours (ephemeral only)",
            Kind::Number,
        ),
        (
            format!("{p}.ttl.max_hours"),
            "Maximum TTL in hours (ephemeral only)",
            Kind::Number,
        ),
        (
            format!("{p}.kubernetes_version"),
            "Kubernetes version",
            Kind::Text,
        ),
    ];
    fields.extend(node_group(&p));
    fields.extend([
        (
            format!("{p}.data_services"),
            "Data services (comma-separated)",
            Kind::List,
        ),
        (
            format!("{p}.requesters"),
            "Who may request it (roles, comma-separated)",
            Kind::List,
        ),
        (
            format!("{p}.approval.approvals_required"),
            "Approvals required",
            Kind::Number,
        ),
        (
            format!("{p}.approval.approvers"),
            "Who may approve (roles, comma-separated)",
            Kind::List,
        ),
        (
            format!("{p}.approval.auto_approve_below_monthly_usd"),
            "Auto-approve below (USD per month, ephemeral only)",
            Kind::Number,
        ),
        (
            format!("{p}.approval.sla_hours"),
            "Approval SLA in hours",
            Kind::Number,
        ),
        (
            format!("{p}.approval.expire_after_hours"),
            "Requests expire after (hours)",
            Kind::Number,
        ),
        (
            format!("{p}.budget_month_usd"),
            "Monthly budget of each environment (USD, optional)",
            Kind::Number,
        ),
    ]);
    fields
}

/// Sections and their fields for a document with `environments` environment types (plus one
/// empty type to add).
fn layout(environments: usize) -> Vec<SectionSpec> {
    let s = |path: &str, label, kind| (path.to_owned(), label, kind);
    let mut sections = vec![
        (
            "Cloud and accounts".to_owned(),
            None,
            vec![
                s("cloud.region", "Region", Kind::Text),
                s("accounts.parent", "Parent account name", Kind::Text),
                s("accounts.devops", "DevOps account name", Kind::Text),
                s(
                    "accounts.environment_prefix",
                    "Environment account prefix",
                    Kind::Text,
                ),
                s(
                    "accounts.on_teardown",
                    "Account on teardown",
                    Kind::Select(&["close", "retain"]),
                ),
                s(
                    "accounts.ephemeral_pool_size",
                    "Pooled accounts for ephemeral environments (0: an account each)",
                    Kind::Number,
                ),
                s(
                    "accounts.service_control_policies",
                    "Service control policies on the platform's unit (names, comma-separated)",
                    Kind::List,
                ),
            ],
            None,
        ),
        (
            "Network".to_owned(),
            None,
            vec![
                s("network.cidr", "Platform address range (CIDR)", Kind::Text),
                s(
                    "network.environment_prefix_length",
                    "Each environment's VPC size (prefix length, 16–24)",
                    Kind::Number,
                ),
                s(
                    "network.api_public_cidrs",
                    "Ranges that may reach the cluster API publicly (comma-separated; none: private only)",
                    Kind::List,
                ),
            ],
            None,
        ),
        (
            "DevOps environment".to_owned(),
            None,
            [
                vec![
                    s(
                        "devops.tool",
                        "Tool",
                        Kind::Select(&["spinnaker", "jenkins"]),
                    ),
                    s(
                        "devops.kubernetes_version",
                        "Kubernetes version (Spinnaker's cluster)",
                        Kind::Text,
                    ),
                    s(
                        "devops.url",
                        "The tool's address, as you publish it (https://…, optional; shown in the hand-over)",
                        Kind::Text,
                    ),
                ],
                node_group("devops"),
            ]
            .concat(),
            None,
        ),
    ];
    for i in 0..environments {
        sections.push((
            format!("Environment type {}", i + 1),
            Some(format!("environment_types[{i}]")),
            environment_type(i),
            None,
        ));
    }
    sections.push((
        "Add an environment type".to_owned(),
        None,
        environment_type(environments),
        None,
    ));
    sections.extend([
        (
            "Logging and diagnostics".to_owned(),
            None,
            vec![
                s("logging.fluent_bit", "Fluent Bit", Kind::Bool),
                s(
                    "logging.central_store",
                    "Central log store",
                    Kind::Select(&["cloudwatch", "opensearch"]),
                ),
                s(
                    "logging.opensearch.endpoint",
                    "OpenSearch endpoint (https://…, opensearch only)",
                    Kind::Text,
                ),
                s(
                    "logging.opensearch.domain_arn",
                    "OpenSearch domain ARN (opensearch only)",
                    Kind::Text,
                ),
                s(
                    "logging.opentelemetry",
                    "OpenTelemetry collector",
                    Kind::Bool,
                ),
                s("logging.metrics", "Metrics", Kind::Bool),
            ],
            None,
        ),
        (
            "Data services".to_owned(),
            None,
            ["mongodb", "scylladb", "kafka"]
                .iter()
                .flat_map(|name| {
                    [
                        (format!("data_services.{name}.enabled"), "", Kind::Bool),
                        (
                            format!("data_services.{name}.size"),
                            "",
                            Kind::Select(&["small", "medium", "large"]),
                        ),
                    ]
                })
                .collect(),
            None,
        ),
        (
            "Service mesh".to_owned(),
            None,
            vec![
                s("service_mesh.istio", "Istio", Kind::Bool),
                s(
                    "service_mesh.mtls",
                    "Mutual TLS",
                    Kind::Select(&["strict", "permissive"]),
                ),
            ],
            None,
        ),
        (
            "Security".to_owned(),
            None,
            vec![
                s(
                    "security.namespaces_per_team",
                    "Namespaces per team",
                    Kind::Bool,
                ),
                s(
                    "security.default_deny_network_policies",
                    "Default-deny network policies",
                    Kind::Bool,
                ),
                s("security.resource_quotas", "Resource quotas", Kind::Bool),
            ],
            Some(&REQUIREMENTS),
        ),
        (
            "Cluster access".to_owned(),
            None,
            vec![s(
                "access.platform_team_role_arn",
                "Platform team's IAM role ARN (cluster admin everywhere; empty: none)",
                Kind::Text,
            )],
            None,
        ),
        (
            "Connected services".to_owned(),
            None,
            vec![],
            Some(&CONNECTED_SERVICES),
        ),
    ]);
    // Data-service labels name the service.
    for section in &mut sections {
        for field in &mut section.2 {
            if field.1.is_empty() {
                field.1 = if field.0.ends_with(".enabled") {
                    "Enabled"
                } else {
                    "Size"
                };
            }
        }
    }
    sections
}

/// The value at a document path such as `environment_types[1].ttl.max_hours`.
fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = doc;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        node = node.get(key)?;
        if let Some(i) = index {
            node = node.get(i)?;
        }
    }
    Some(node)
}

/// Sets the value at a path, creating objects (and extending arrays) on the way.
fn assign(doc: &mut Value, path: &str, value: Value) {
    let mut node = doc;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        if !node.is_object() {
            *node = json!({});
        }
        node = node
            .as_object_mut()
            .expect("made an object")
            .entry(key)
            .or_insert(Value::Null);
        if let Some(i) = index {
            if !node.is_array() {
                *node = json!([]);
            }
            let array = node.as_array_mut().expect("made an array");
            while array.len() <= i {
                array.push(json!({}));
            }
            node = &mut array[i];
        }
    }
    *node = value;
}

fn display(value: Option<&Value>, kind: Kind) -> String {
    match (value, kind) {
        (Some(Value::Array(items)), _) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        (Some(Value::String(s)), _) => s.clone(),
        (Some(Value::Number(n)), _) => n.to_string(),
        _ => String::new(),
    }
}

/// The input at `path`, with its value in `doc` and its error in `errors`.
fn field(
    doc: &Value,
    errors: &FieldErrors,
    path: String,
    label: &'static str,
    kind: Kind,
) -> Field {
    let value = lookup(doc, &path);
    Field {
        value: display(value, kind),
        checked: value.and_then(Value::as_bool).unwrap_or(false),
        error: errors
            .0
            .iter()
            .find(|e| {
                e.field == path
                    || e.field.starts_with(&format!("{path}["))
                    || (e.field.starts_with(&format!("{path}.")) && kind != Kind::Bool)
            })
            .map(|e| e.message.clone()),
        path,
        label,
        kind,
    }
}

/// The form for `doc` (a blueprint's JSON, or what was submitted), with `errors` beside fields.
pub fn sections(doc: &Value, errors: &FieldErrors) -> Vec<Section> {
    let environments = doc
        .get("environment_types")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    layout(environments)
        .into_iter()
        .map(|(title, removable, fields, list)| Section {
            // An environment type is titled by its name, as the team knows it.
            title: removable
                .as_deref()
                .and_then(|prefix| lookup(doc, &format!("{prefix}.name")))
                .and_then(Value::as_str)
                .filter(|name| !name.trim().is_empty())
                .map_or(title, |name| format!("Environment type {name}")),
            removable,
            fields: fields
                .into_iter()
                .map(|(path, label, kind)| field(doc, errors, path, label, kind))
                .collect(),
            list: list.map(|list| list.rows(doc, errors)),
        })
        .collect()
}

/// Applies a submitted form to `base`: every field of the layout is read, the new-type section
/// is added when it has a name, removed types are dropped. Returns the document as submitted
/// (to show again) and the validated blueprint or the errors.
pub fn apply(base: &Blueprint, form: &FormFields) -> (Value, Result<Blueprint, FieldErrors>) {
    let mut doc = base.to_json();
    let environments = base.environment_types.len();
    let mut errors = FieldErrors::default();
    for (_, _, fields, list) in layout(environments) {
        if let Some(list) = list {
            assign(&mut doc, list.path, list.submitted(form));
        }
        for (path, _, kind) in fields {
            let raw = form.get(&path).trim();
            let value = match kind {
                Kind::Bool => Value::Bool(!raw.is_empty()),
                Kind::List => Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                ),
                Kind::Number if raw.is_empty() => Value::Null,
                Kind::Number => match raw.parse::<u64>() {
                    Ok(n) => json!(n),
                    Err(_) => {
                        errors.add(&path, "Use a whole number.");
                        Value::Null
                    }
                },
                Kind::Text | Kind::Select(_) => Value::String(raw.to_owned()),
            };
            assign(&mut doc, &path, value);
        }
    }
    // Optional parts left empty are absent, not null.
    if let Some(access) = doc.get_mut("access").and_then(Value::as_object_mut)
        && access.get("platform_team_role_arn").and_then(Value::as_str) == Some("")
    {
        access.remove("platform_team_role_arn");
    }
    if let Some(devops) = doc.get_mut("devops").and_then(Value::as_object_mut)
        && devops.get("url").and_then(Value::as_str) == Some("")
    {
        devops.remove("url");
    }
    if let Some(logging) = doc.get_mut("logging").and_then(Value::as_object_mut)
        && logging.get("opensearch").is_some_and(|domain| {
            ["endpoint", "domain_arn"]
                .iter()
                .all(|key| domain.get(key).and_then(Value::as_str) == Some(""))
        })
    {
        logging.remove("opensearch");
    }
    if let Some(types) = doc
        .get_mut("environment_types")
        .and_then(Value::as_array_mut)
    {
        for env in types.iter_mut() {
            if let Some(ttl) = env.get("ttl")
                && ttl.get("default_hours").is_none_or(Value::is_null)
                && ttl.get("max_hours").is_none_or(Value::is_null)
            {
                env.as_object_mut().map(|o| o.remove("ttl"));
            }
            if let Some(approval) = env.get_mut("approval").and_then(Value::as_object_mut)
                && approval
                    .get("auto_approve_below_monthly_usd")
                    .is_some_and(Value::is_null)
            {
                approval.remove("auto_approve_below_monthly_usd");
            }
            if env.get("budget_month_usd").is_some_and(Value::is_null) {
                env.as_object_mut().map(|o| o.remove("budget_month_usd"));
            }
        }
        // The add section counts only when named; removed types go.
        let added_named = types
            .get(environments)
            .and_then(|e| e.get("name"))
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !added_named && types.len() > environments {
            types.truncate(environments);
        }
        let mut index = 0;
        types.retain(|_| {
            let keep = form
                .get(&format!("environment_types[{index}].remove"))
                .is_empty();
            index += 1;
            keep
        });
    }
    if !errors.is_empty() {
        return (doc, Err(errors));
    }
    let result = Blueprint::from_json(doc.clone());
    (doc, result)
}
