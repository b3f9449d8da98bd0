//! The MLflow `search_runs` filter and `order_by` grammar, how a run answers a filter, how
//! runs sort, and MLflow's page tokens. Pure: the store and the server feed it `RunView`s.
//! `search_experiments` shares the grammar over its own keys ([`parse_experiment_filter`]).
//!
//! Grammar (MLflow's SQL-WHERE subset, see docs in `shared/reference/mlflow-rest.md` §4):
//!
//! ```text
//! filter     := ws* [ clause ( ws* AND ws* clause )* ] ws*        -- AND only; keywords any case
//! clause     := identifier ws* comparator ws* value
//!             | identifier ws+ IS [NOT] NULL                      -- params and tags only
//! identifier := [entity '.'] key                                  -- no entity: an attribute
//! entity     := word | `word`                                     -- metric(s), param(s), ...
//! key        := word ('.' word)* | `any text` | "any text"        -- `` and "" escape the quote
//! comparator := = | != | < | <= | > | >= | LIKE | ILIKE | IN | NOT IN
//! value      := 'text' | "text" | number | '(' text (',' text)* ')'
//! number     := [+-] digits [. digits] [e [+-] digits]  |  [+-] . digits [e ...]
//! order_by   := ws* identifier [ws+ (ASC|DESC)] ws*
//! ```
//!
//! Where this differs from MLflow 3.x (`mlflow/utils/search_utils.py`) it is on purpose:
//!
//! - Comparators are checked when the filter is parsed, not when the first run is matched,
//!   so `params.a > 'x'` is a 400 up front even when the experiment is empty.
//! - Inside quotes a doubled quote (`'it''s'`) stands for one quote, as in SQL; MLflow keeps
//!   both characters. A backslash is an ordinary character (MLflow's tokenizer treats `\'` as
//!   not closing the string but then keeps the backslash).
//! - `LIKE` is SQL `LIKE` (`%`, `_`, everything else literal, newlines matched). MLflow's
//!   in-memory matcher turns the pattern into a regex without escaping it, so `.` or `+` in a
//!   pattern mean regex things there; its SQL stores agree with us. No escape character, as
//!   on SQLite.
//! - A dangling `AND` (`a = 'x' AND`) is an error; MLflow ignores it.
//! - `IN` lists take single- or double-quoted strings; MLflow only single. MLflow also drops
//!   list items that are not all lower case (a MySQL workaround meant for run ids that hits
//!   dataset names too); we keep every item.
//! - A page token with offset 0 is accepted (MLflow rejects the token it hands out for
//!   `max_results = 0`); surrounding whitespace in an `order_by` item is ignored.
//! - Metric filters compare IEEE values (a NaN latest value matches only `!=`), as MLflow's
//!   file store does; its SQL store compares the 0 it stores in place of NaN.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use thiserror::Error;

mod matching;
mod page;
mod parse;
#[cfg(test)]
mod tests;

pub use matching::{compare, matches, matches_experiment, matches_registry, sql_like, ExperimentView, RegistryView};
pub use page::{latest_metric, page_token, paginate, parse_page_token};
pub use parse::{
    parse_experiment_filter, parse_experiment_order_by, parse_filter, parse_order_by, parse_order_by_item,
    parse_registry_filter,
};

/// A filter, order-by or page token the caller must fix. Every message is one line that names
/// the offending part and says what is allowed; a server answers it as HTTP 400
/// [`SearchError::ERROR_CODE`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct SearchError {
    message: String,
}

impl SearchError {
    /// The MLflow error code every one of these errors maps to.
    pub const ERROR_CODE: &'static str = "INVALID_PARAMETER_VALUE";

    fn new(message: impl Into<String>) -> Self {
        // User text is quoted through `show`, but make the one-line promise hold whatever a
        // message is built from.
        let message: String = message.into();
        SearchError { message: escape_controls(&message) }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// What a clause names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntityType {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

impl EntityType {
    /// The prefix the canonical form writes.
    pub fn prefix(self) -> &'static str {
        match self {
            EntityType::Metric => "metrics",
            EntityType::Param => "params",
            EntityType::Tag => "tags",
            EntityType::Attribute => "attributes",
            EntityType::Dataset => "datasets",
        }
    }

    /// MLflow's own name for the type; its messages use it.
    fn mlflow_name(self) -> &'static str {
        match self {
            EntityType::Metric => "metric",
            EntityType::Param => "parameter",
            EntityType::Tag => "tag",
            EntityType::Attribute => "attribute",
            EntityType::Dataset => "dataset",
        }
    }

    /// Case-sensitive, as in MLflow: `Metrics.acc` is an error there too.
    fn from_alias(s: &str) -> Option<Self> {
        Some(match s {
            "metric" | "metrics" => EntityType::Metric,
            "param" | "params" | "parameter" | "parameters" => EntityType::Param,
            "tag" | "tags" => EntityType::Tag,
            "attribute" | "attributes" | "attr" | "run" => EntityType::Attribute,
            "dataset" | "datasets" => EntityType::Dataset,
            _ => return None,
        })
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Comparator {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparator::Eq => "=",
            Comparator::Ne => "!=",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
            Comparator::Like => "LIKE",
            Comparator::ILike => "ILIKE",
            Comparator::In => "IN",
            Comparator::NotIn => "NOT IN",
            Comparator::IsNull => "IS NULL",
            Comparator::IsNotNull => "IS NOT NULL",
        }
    }
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The right-hand side of a clause. `Null` goes with `IS NULL` / `IS NOT NULL` only.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Number(f64),
    Str(String),
    List(Vec<String>),
    Null,
}

/// One comparison of a filter. Attribute keys are canonical (`created` → `start_time`,
/// `run name` → `run_name`), so equal filters give equal clauses.
#[derive(Clone, Debug, PartialEq)]
pub struct Clause {
    pub entity: EntityType,
    pub key: String,
    pub comparator: Comparator,
    pub value: Value,
}

/// Renders the canonical form, which [`parse_filter`] reads back to the same clause.
impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} {}", self.entity.prefix(), render_key(&self.key), self.comparator)?;
        match &self.value {
            Value::Null => Ok(()),
            Value::Number(n) => write!(f, " {}", render_number(*n)),
            Value::Str(s) => write!(f, " {}", render_str(s)),
            Value::List(items) => {
                let items: Vec<String> = items.iter().map(|s| render_str(s)).collect();
                write!(f, " ({})", items.join(", "))
            }
        }
    }
}

/// Clauses joined by ` AND `: the canonical text of a whole filter ("" matches all).
pub fn render_filter(clauses: &[Clause]) -> String {
    clauses.iter().map(Clause::to_string).collect::<Vec<_>>().join(" AND ")
}

/// One `order_by` item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderBy {
    pub entity: EntityType,
    pub key: String,
    pub ascending: bool,
}

impl fmt::Display for OrderBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = if self.ascending { "ASC" } else { "DESC" };
        write!(f, "{}.{} {dir}", self.entity.prefix(), render_key(&self.key))
    }
}

/// What a run looks like to a filter and to sorting.
#[derive(Clone, Copy, Debug)]
pub struct RunView<'a> {
    pub run_id: &'a str,
    pub run_name: &'a str,
    /// The MLflow status name: `RUNNING`, `SCHEDULED`, `FINISHED`, `FAILED`, `KILLED`.
    pub status: &'a str,
    pub user_id: &'a str,
    pub artifact_uri: &'a str,
    /// Milliseconds since the Unix epoch.
    pub start_time: i64,
    /// `None` while the run has not ended; such a run matches no `end_time` clause.
    pub end_time: Option<i64>,
    /// The latest value of each metric (see [`latest_metric`]).
    pub metrics: &'a BTreeMap<String, f64>,
    pub params: &'a BTreeMap<String, String>,
    pub tags: &'a BTreeMap<String, String>,
    /// Dataset inputs as (name, digest, context); an empty context means the input has no
    /// `mlflow.data.context` tag, and such an input takes no part in `datasets.context` clauses.
    pub datasets: &'a [(String, String, String)],
}

// ----- keys ---------------------------------------------------------------------------------

const STRING_ATTRIBUTES: [&str; 5] = ["run_id", "run_name", "status", "user_id", "artifact_uri"];
const NUMERIC_ATTRIBUTES: [&str; 2] = ["start_time", "end_time"];
const DATASET_KEYS: [&str; 3] = ["name", "digest", "context"];
const FILTER_ATTRIBUTE_KEYS: &str = "'run_id', 'run_name', 'status', 'user_id', 'artifact_uri', 'start_time', \
     'end_time', 'created', 'Created', 'run name', 'Run name', 'Run Name'";
const ORDER_ATTRIBUTE_KEYS: &str =
    "'run_id', 'run_name', 'status', 'user_id', 'artifact_uri', 'start_time', 'end_time', 'created', 'Created'";
const ENTITY_TYPES: &str = "['metric', 'parameter', 'tag', 'attribute', 'dataset'] (or metrics, param, params, \
     parameters, tags, attributes, attr, run, datasets)";

const EXPERIMENT_FILTER_KEYS: [&str; 3] = ["name", "creation_time", "last_update_time"];
const REGISTRY_FILTER_KEYS: [&str; 4] = ["name", "run_id", "source_path", "version_number"];
const EXPERIMENT_ORDER_KEYS: [&str; 4] = ["name", "experiment_id", "creation_time", "last_update_time"];

/// What is being parsed: the key sets differ (MLflow's `SearchUtils` for runs,
/// `SearchExperimentsUtils` for experiments); the grammar is the same.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    RunFilter,
    RunOrder,
    ExperimentFilter,
    ExperimentOrder,
    /// Registered models and model versions (MLflow's `SearchModelsUtils` / `SearchModelVersionUtils`).
    RegistryFilter,
}

impl Purpose {
    fn is_order(self) -> bool {
        matches!(self, Purpose::RunOrder | Purpose::ExperimentOrder)
    }

    fn valid_attribute_keys(self) -> &'static str {
        match self {
            Purpose::RunFilter => FILTER_ATTRIBUTE_KEYS,
            Purpose::RunOrder => ORDER_ATTRIBUTE_KEYS,
            Purpose::ExperimentFilter => "'name', 'creation_time', 'last_update_time'",
            Purpose::ExperimentOrder => "'name', 'experiment_id', 'creation_time', 'last_update_time'",
            Purpose::RegistryFilter => "'name', 'run_id', 'source_path', 'version_number'",
        }
    }
}

/// The canonical attribute a key names. MLflow's run aliases: `created`/`Created` for
/// `start_time` (filters and order-by), `run name` spellings for `run_name` (filters only).
fn canonical_attribute(key: &str, purpose: Purpose) -> Option<&'static str> {
    let known: &[&'static str] = match purpose {
        Purpose::ExperimentFilter => &EXPERIMENT_FILTER_KEYS,
        Purpose::ExperimentOrder => &EXPERIMENT_ORDER_KEYS,
        Purpose::RegistryFilter => &REGISTRY_FILTER_KEYS,
        Purpose::RunFilter | Purpose::RunOrder => &[],
    };
    if let Some(k) = known.iter().find(|k| **k == key) {
        return Some(k);
    }
    if matches!(purpose, Purpose::ExperimentFilter | Purpose::ExperimentOrder | Purpose::RegistryFilter) {
        return None;
    }
    if let Some(k) = STRING_ATTRIBUTES.iter().chain(NUMERIC_ATTRIBUTES.iter()).find(|k| **k == key) {
        return Some(k);
    }
    match key {
        "created" | "Created" => Some("start_time"),
        "run name" | "Run name" | "Run Name" if purpose == Purpose::RunFilter => Some("run_name"),
        _ => None,
    }
}

/// The canonical run attribute `key` names in a filter (`for_order` false) or an `order_by`
/// item (`for_order` true), as [`matches`] and [`compare`] read it; `None` for a key they treat
/// as naming nothing. For code that answers a search elsewhere (in SQL) and must agree.
pub fn run_attribute(key: &str, for_order: bool) -> Option<&'static str> {
    canonical_attribute(key, if for_order { Purpose::RunOrder } else { Purpose::RunFilter })
}

/// Run and experiment attribute names do not overlap, so one list serves both.
fn is_numeric_attribute(key: &str) -> bool {
    NUMERIC_ATTRIBUTES.contains(&key) || matches!(key, "creation_time" | "last_update_time" | "version_number")
}

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A key that reads back without quotes: words joined by dots (`mlflow.runName`), as MLflow
/// splits an identifier at its first dot only.
fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|seg| {
            let mut chars = seg.chars();
            chars.next().is_some_and(is_word_start) && chars.all(is_word_char)
        })
}

fn render_key(key: &str) -> String {
    if is_bare_key(key) {
        key.to_string()
    } else if !key.contains('`') {
        format!("`{key}`")
    } else if !key.contains('"') {
        format!("\"{key}\"")
    } else {
        format!("`{}`", key.replace('`', "``"))
    }
}

/// Single quotes unless the text holds one and no double quote: then the text also reads the
/// same in MLflow, which has no escapes.
fn render_str(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Shortest text that parses back to the same number; the grammar has no `inf`, and 1e999
/// overflows to it.
fn render_number(n: f64) -> String {
    if n == f64::INFINITY {
        "1e999".to_string()
    } else if n == f64::NEG_INFINITY {
        "-1e999".to_string()
    } else {
        format!("{n:?}")
    }
}

/// User text inside a message: control characters escaped so the message stays one line,
/// and long text cut short.
fn show(s: &str) -> String {
    const MAX: usize = 80;
    let mut out = escape_controls(s);
    if let Some((cut, _)) = out.char_indices().nth(MAX) {
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}
