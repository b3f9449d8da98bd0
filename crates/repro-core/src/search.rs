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

// ----- the cursor ---------------------------------------------------------------------------

/// Where a syntax error is reported: filters and order-by items word it as MLflow does.
#[derive(Clone, Copy)]
enum Ctx<'s> {
    Filter,
    OrderBy(&'s str),
}

struct Cursor<'s> {
    src: &'s str,
    pos: usize,
    ctx: Ctx<'s>,
}

impl<'s> Cursor<'s> {
    fn new(src: &'s str, ctx: Ctx<'s>) -> Self {
        Cursor { src, pos: 0, ctx }
    }

    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_nth(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn eof(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        self.pos > start
    }

    fn word(&mut self) -> Option<&'s str> {
        let start = self.pos;
        if !self.peek().is_some_and(is_word_start) {
            return None;
        }
        self.bump();
        while self.peek().is_some_and(is_word_char) {
            self.bump();
        }
        Some(&self.src[start..self.pos])
    }

    /// Consumes the keyword (any case) when it is the next whole word.
    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.pos;
        match self.word() {
            Some(w) if w.eq_ignore_ascii_case(kw) => true,
            _ => {
                self.pos = save;
                false
            }
        }
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        let mut probe = Cursor { src: self.src, pos: self.pos, ctx: self.ctx };
        probe.keyword(kw)
    }

    fn syntax_error(&self, at: usize, detail: &str) -> SearchError {
        let part = show(&snippet(self.src, at));
        match self.ctx {
            Ctx::Filter => SearchError::new(format!("Invalid clause(s) in filter string: '{part}' ({detail})")),
            Ctx::OrderBy(item) => SearchError::new(format!(
                "Invalid order_by clause '{}'. Could not be parsed at '{part}' ({detail})",
                show(item)
            )),
        }
    }

    /// Text in `q` quotes, the cursor on the opening quote. A doubled quote stands for one.
    fn quoted(&mut self) -> Result<String, SearchError> {
        let start = self.pos;
        let Some(q) = self.bump() else {
            return Err(self.syntax_error(start, "expected a quoted text"));
        };
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self.syntax_error(
                        start,
                        &format!("the quote is never closed; close it with {q}, and write {q}{q} for a {q} inside"),
                    ))
                }
                Some(c) if c == q => {
                    if self.peek() == Some(q) {
                        self.bump();
                        out.push(q);
                    } else {
                        return Ok(out);
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn at_number(&self) -> bool {
        let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
        match self.peek() {
            Some(c) if c.is_ascii_digit() => true,
            Some('.') => digit(self.peek_nth(1)),
            Some('-' | '+') => digit(self.peek_nth(1)) || (self.peek_nth(1) == Some('.') && digit(self.peek_nth(2))),
            _ => false,
        }
    }

    /// A number, the cursor on its first character (see [`Cursor::at_number`]).
    fn number(&mut self) -> Result<f64, SearchError> {
        let start = self.pos;
        let bytes = self.rest().as_bytes();
        let digits_from = |i: usize| bytes[i.min(bytes.len())..].iter().take_while(|b| b.is_ascii_digit()).count();
        let mut i = usize::from(matches!(bytes.first(), Some(b'-' | b'+')));
        let int_digits = digits_from(i);
        i += int_digits;
        if bytes.get(i) == Some(&b'.') {
            let frac_digits = digits_from(i + 1);
            if int_digits + frac_digits > 0 {
                i += 1 + frac_digits;
            }
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(bytes.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            let exp_digits = digits_from(j);
            if exp_digits > 0 {
                i = j + exp_digits;
            }
        }
        let text = &self.rest()[..i];
        self.pos += i;
        // `1abc`, `1.2.3`, `1e`: one token that is not a number.
        if self.peek().is_some_and(|c| is_word_char(c) || c == '.') {
            return Err(self.syntax_error(start, "not a number; numbers look like 3, -0.5, .5 or 1e-3"));
        }
        text.parse::<f64>().map_err(|_| self.syntax_error(start, "not a number; numbers look like 3, -0.5, .5 or 1e-3"))
    }
}

/// The offending part at `at`: a parenthesised group, a quoted text, or up to the next space.
fn snippet(src: &str, at: usize) -> String {
    let rest = &src[at.min(src.len())..];
    let mut chars = rest.char_indices();
    let end = match chars.next() {
        None => return String::new(),
        Some((_, '(')) => {
            let mut depth = 0usize;
            let mut quote: Option<char> = None;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '\'' | '"' | '`') => quote = Some(c),
                    (None, '(') => depth += 1,
                    (None, ')') => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            end
        }
        Some((_, q @ ('\'' | '"' | '`'))) => chars.find(|&(_, c)| c == q).map_or(rest.len(), |(i, _)| i + 1),
        Some(_) => rest.find(char::is_whitespace).unwrap_or(rest.len()),
    };
    rest[..end].to_string()
}

// ----- identifiers --------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    Bare,
    Backtick,
    Double,
}

struct RawIdent {
    /// The entity part as written (backticks removed) and how it was quoted.
    entity: Option<(String, Quoting)>,
    key: String,
    key_quoting: Quoting,
}

fn ident_part(cur: &mut Cursor<'_>) -> Result<Option<(String, Quoting)>, SearchError> {
    match cur.peek() {
        Some('`') => Ok(Some((cur.quoted()?, Quoting::Backtick))),
        Some('"') => Ok(Some((cur.quoted()?, Quoting::Double))),
        _ => Ok(cur.word().map(|w| (w.to_string(), Quoting::Bare))),
    }
}

/// `[entity '.'] key`, or `None` when no identifier starts here.
fn identifier(cur: &mut Cursor<'_>) -> Result<Option<RawIdent>, SearchError> {
    let start = cur.pos;
    let Some((first, first_quoting)) = ident_part(cur)? else {
        return Ok(None);
    };
    if cur.peek() != Some('.') {
        return Ok(Some(RawIdent { entity: None, key: first, key_quoting: first_quoting }));
    }
    if first_quoting == Quoting::Double {
        // MLflow only unquotes backticks around the entity type.
        return Err(SearchError::new(format!(
            "Invalid entity type '\"{}\"'. Valid values are {ENTITY_TYPES}",
            show(&first)
        )));
    }
    cur.bump();
    let (key, key_quoting) = match cur.peek() {
        Some('`') => (cur.quoted()?, Quoting::Backtick),
        Some('"') => (cur.quoted()?, Quoting::Double),
        Some(c) if is_word_start(c) => {
            let key_start = cur.pos;
            while cur.word().is_some() {
                if cur.peek() == Some('.') && cur.peek_nth(1).is_some_and(is_word_start) {
                    cur.bump();
                } else {
                    break;
                }
            }
            (cur.src[key_start..cur.pos].to_string(), Quoting::Bare)
        }
        _ => {
            return Err(SearchError::new(format!(
                "Invalid identifier '{}'. Columns should be specified as 'attribute.<key>', 'metric.<key>', \
                 'tag.<key>', 'dataset.<key>', or 'param.<key>'; put a key that starts with a digit or holds \
                 spaces or punctuation in backticks, e.g. metrics.`val loss`",
                show(&snippet(cur.src, start))
            )))
        }
    };
    Ok(Some(RawIdent { entity: Some((first, first_quoting)), key, key_quoting }))
}

/// Entity type and canonical key, checked as MLflow's `_get_identifier` does.
fn resolve(ident: &RawIdent, purpose: Purpose) -> Result<(EntityType, String), SearchError> {
    let entity = match &ident.entity {
        None => EntityType::Attribute,
        Some((name, _)) => EntityType::from_alias(name).ok_or_else(|| {
            SearchError::new(format!("Invalid entity type '{}'. Valid values are {ENTITY_TYPES}", show(name)))
        })?,
    };
    if matches!(purpose, Purpose::ExperimentFilter | Purpose::ExperimentOrder | Purpose::RegistryFilter)
        && !matches!(entity, EntityType::Attribute | EntityType::Tag)
    {
        let name = ident.entity.as_ref().map_or("", |(name, _)| name.as_str());
        let what = if purpose == Purpose::RegistryFilter { "models" } else { "experiments" };
        return Err(SearchError::new(format!(
            "Invalid entity type '{}' for {what}. Valid entity types are ('attribute', 'tag', 'tags')",
            show(name)
        )));
    }
    if ident.key.is_empty() {
        return Err(SearchError::new(format!("Invalid identifier '{}.': the key is empty", entity.prefix())));
    }
    let key = match entity {
        EntityType::Attribute => match canonical_attribute(&ident.key, purpose) {
            Some(k) => k.to_string(),
            None => {
                let valid = purpose.valid_attribute_keys();
                // `metrics.A` quoted whole reads as one attribute key: say where the quotes go.
                let hint = match (&ident.entity, ident.key_quoting, ident.key.split_once('.')) {
                    (None, Quoting::Backtick | Quoting::Double, Some((ty, rest)))
                        if EntityType::from_alias(ty).is_some() =>
                    {
                        format!(" (to name a {ty} key, quote only the key: {ty}.{})", render_key(rest))
                    }
                    _ => String::new(),
                };
                return Err(SearchError::new(format!(
                    "Invalid attribute key '{}' specified. Valid keys are {valid}{hint}",
                    show(&ident.key)
                )));
            }
        },
        EntityType::Dataset if purpose.is_order() => {
            return Err(SearchError::new(format!(
                "Invalid order_by entity type 'dataset' in '{}.{}': order by metrics, params, tags or attributes",
                entity.prefix(),
                show(&ident.key)
            )))
        }
        EntityType::Dataset if !DATASET_KEYS.contains(&ident.key.as_str()) => {
            return Err(SearchError::new(format!(
                "Invalid dataset key '{}' specified. Valid keys are 'name', 'digest', 'context'",
                show(&ident.key)
            )))
        }
        _ => ident.key.clone(),
    };
    Ok((entity, key))
}

// ----- filters ------------------------------------------------------------------------------

enum RawComparator {
    Known(Comparator),
    /// Spelled like a comparator but not one MLflow takes: `<>`, `==`, `NOT LIKE`.
    Unknown(String),
}

enum RawValue {
    Str(String),
    Number(f64),
    List(Vec<String>),
    /// A bare word or backticked name where a value belongs: MLflow's "not quoted".
    Ident,
}

/// Parses a `search_runs` filter. Empty or blank text is an empty list, which matches every run.
pub fn parse_filter(filter: &str) -> Result<Vec<Clause>, SearchError> {
    parse_filter_for(filter, Purpose::RunFilter)
}

/// Parses a `search_experiments` filter: the same grammar over `name`, `creation_time`,
/// `last_update_time` and `tags.*` (MLflow's `SearchExperimentsUtils`). See
/// [`matches_experiment`].
pub fn parse_experiment_filter(filter: &str) -> Result<Vec<Clause>, SearchError> {
    parse_filter_for(filter, Purpose::ExperimentFilter)
}

/// Parses a registered-model or model-version filter: `name`, `run_id`, `source_path`,
/// `version_number` and `tags.*` (MLflow's registry search grammar). See [`matches_registry`].
pub fn parse_registry_filter(filter: &str) -> Result<Vec<Clause>, SearchError> {
    parse_filter_for(filter, Purpose::RegistryFilter)
}

fn parse_filter_for(filter: &str, purpose: Purpose) -> Result<Vec<Clause>, SearchError> {
    let mut cur = Cursor::new(filter, Ctx::Filter);
    cur.skip_ws();
    let mut clauses = Vec::new();
    if cur.eof() {
        return Ok(clauses);
    }
    loop {
        clauses.push(clause(&mut cur, purpose)?);
        cur.skip_ws();
        if cur.eof() {
            return Ok(clauses);
        }
        if cur.peek() == Some(';') {
            return Err(SearchError::new(format!(
                "Search filter contained multiple expression '{}'. Provide AND-ed expression list.",
                show(filter)
            )));
        }
        let at = cur.pos;
        if !cur.keyword("and") {
            return Err(
                cur.syntax_error(at, "comparisons must be joined by AND; OR, NOT and parentheses are not supported")
            );
        }
        cur.skip_ws();
        if cur.eof() {
            return Err(cur.syntax_error(at, "expected a comparison after AND"));
        }
    }
}

fn clause(cur: &mut Cursor<'_>, purpose: Purpose) -> Result<Clause, SearchError> {
    let start = cur.pos;
    if cur.at_number() || matches!(cur.peek(), Some('\'')) {
        let found = if cur.at_number() {
            let mut probe = Cursor { src: cur.src, pos: cur.pos, ctx: cur.ctx };
            match probe.number() {
                Ok(_) => cur.src[start..probe.pos].to_string(),
                Err(_) => snippet(cur.src, start),
            }
        } else {
            snippet(cur.src, start)
        };
        return Err(SearchError::new(format!(
            "Invalid comparison clause. Expected 'Identifier' found '{}' (a clause is <identifier> <comparator> \
             <value>, e.g. metrics.acc > 0.9)",
            show(&found)
        )));
    }
    if cur.peek() == Some('(') || ["not", "or", "and"].iter().any(|kw| cur.peek_keyword(kw)) {
        return Err(
            cur.syntax_error(start, "a filter is comparisons joined by AND; OR, NOT and parentheses are not supported")
        );
    }
    let Some(ident) = identifier(cur)? else {
        return Err(cur.syntax_error(
            start,
            "expected an identifier such as metrics.acc, params.lr, tags.`mlflow.runName` or status",
        ));
    };
    let ident_text = cur.src[start..cur.pos].to_string();
    cur.skip_ws();
    let cmp_at = cur.pos;
    let Some(comparator) = comparator(cur)? else {
        let detail = format!(
            "expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL) after '{}'; \
             put a key with spaces or punctuation in backticks",
            show(&ident_text)
        );
        return Err(cur.syntax_error(cmp_at, &detail));
    };
    if let RawComparator::Known(c @ (Comparator::IsNull | Comparator::IsNotNull)) = comparator {
        let (entity, key) = resolve(&ident, purpose)?;
        if !matches!(entity, EntityType::Param | EntityType::Tag) {
            return Err(SearchError::new(format!(
                "IS NULL / IS NOT NULL is only supported for tags and params, not for '{}' '{}'",
                entity.mlflow_name(),
                show(&key)
            )));
        }
        return Ok(Clause { entity, key, comparator: c, value: Value::Null });
    }
    cur.skip_ws();
    let value_at = cur.pos;
    let value = value(cur)?;
    let value_text = cur.src[value_at..cur.pos].to_string();
    build_clause(&ident, comparator, value, &value_text, purpose)
}

fn comparator(cur: &mut Cursor<'_>) -> Result<Option<RawComparator>, SearchError> {
    const OPS: [(&str, Option<Comparator>); 8] = [
        ("!=", Some(Comparator::Ne)),
        ("<>", None),
        ("<=", Some(Comparator::Le)),
        (">=", Some(Comparator::Ge)),
        ("==", None),
        ("=", Some(Comparator::Eq)),
        ("<", Some(Comparator::Lt)),
        (">", Some(Comparator::Gt)),
    ];
    for (op, known) in OPS {
        if cur.rest().starts_with(op) {
            cur.pos += op.len();
            return Ok(Some(known.map_or_else(|| RawComparator::Unknown(op.to_string()), RawComparator::Known)));
        }
    }
    let start = cur.pos;
    let Some(word) = cur.word() else {
        return Ok(None);
    };
    let known = |c| Ok(Some(RawComparator::Known(c)));
    if word.eq_ignore_ascii_case("like") {
        known(Comparator::Like)
    } else if word.eq_ignore_ascii_case("ilike") {
        known(Comparator::ILike)
    } else if word.eq_ignore_ascii_case("in") {
        known(Comparator::In)
    } else if word.eq_ignore_ascii_case("not") {
        cur.skip_ws();
        if cur.keyword("in") {
            return known(Comparator::NotIn);
        }
        match cur.word() {
            Some(next) => Ok(Some(RawComparator::Unknown(format!("NOT {}", next.to_uppercase())))),
            None => Err(cur.syntax_error(start, "NOT only comes in NOT IN and IS NOT NULL")),
        }
    } else if word.eq_ignore_ascii_case("is") {
        cur.skip_ws();
        if cur.keyword("null") {
            return known(Comparator::IsNull);
        }
        if cur.keyword("not") {
            cur.skip_ws();
            if cur.keyword("null") {
                return known(Comparator::IsNotNull);
            }
        }
        Err(cur.syntax_error(start, "IS must be followed by NULL or NOT NULL"))
    } else {
        cur.pos = start;
        Ok(None)
    }
}

fn value(cur: &mut Cursor<'_>) -> Result<RawValue, SearchError> {
    let start = cur.pos;
    match cur.peek() {
        Some('\'' | '"') => Ok(RawValue::Str(cur.quoted()?)),
        Some('(') => list(cur).map(RawValue::List),
        _ if cur.at_number() => cur.number().map(RawValue::Number),
        _ => {
            match identifier(cur)? {
                Some(_) => Ok(RawValue::Ident),
                None => Err(cur
                    .syntax_error(start, "expected a value: 'text', a number, or a list ('a', 'b') after IN / NOT IN")),
            }
        }
    }
}

fn list(cur: &mut Cursor<'_>) -> Result<Vec<String>, SearchError> {
    let start = cur.pos;
    let ill_formed = |cur: &Cursor<'_>| {
        SearchError::new(format!(
            "While parsing a list in the query, expected a non-empty list of string values, but got ill-formed \
             list: '{}'. Write ('a', 'b')",
            show(&snippet(cur.src, start))
        ))
    };
    cur.bump();
    cur.skip_ws();
    if cur.peek() == Some(')') {
        return Err(SearchError::new(
            "While parsing a list in the query, expected a non-empty list of string values, but got empty list",
        ));
    }
    let mut items = Vec::new();
    loop {
        match cur.peek() {
            Some('\'' | '"') => items.push(cur.quoted()?),
            None | Some(')' | ',') => return Err(ill_formed(cur)),
            Some(_) => {
                return Err(SearchError::new(format!(
                    "While parsing a list in the query, expected string value, punctuation, or whitespace, but got \
                     different type in list: '{}'. List items are quoted strings",
                    show(&snippet(cur.src, start))
                )))
            }
        }
        cur.skip_ws();
        match cur.bump() {
            Some(',') => cur.skip_ws(),
            Some(')') => return Ok(items),
            _ => return Err(ill_formed(cur)),
        };
    }
}

/// The type rules of MLflow's `_get_value`, then the comparator sets of `is_metric` and
/// friends (which MLflow only applies when matching), then list/`IN` agreement.
fn build_clause(
    ident: &RawIdent,
    comparator: RawComparator,
    value: RawValue,
    text: &str,
    purpose: Purpose,
) -> Result<Clause, SearchError> {
    let (entity, key) = resolve(ident, purpose)?;
    let shown = show(text);
    let not_quoted = || {
        SearchError::new(format!(
            "Parameter value is either not quoted or unidentified quote types used for string value {shown}. Use \
             either single or double quotes."
        ))
    };
    let numeric =
        matches!(entity, EntityType::Metric) || (entity == EntityType::Attribute && is_numeric_attribute(&key));
    let value = match (entity, value) {
        (_, RawValue::Number(n)) if numeric => Value::Number(n),
        (EntityType::Metric, _) => {
            return Err(SearchError::new(format!(
                "Expected numeric value type for metric. Found {shown} (metric values are unquoted numbers)"
            )))
        }
        (EntityType::Attribute, _) if numeric => {
            return Err(SearchError::new(format!(
                "Expected numeric value type for numeric attribute: {key}. Found {shown} (milliseconds since the \
                 epoch, unquoted)"
            )))
        }
        (_, RawValue::Str(s)) => Value::Str(s),
        (_, RawValue::Ident) => return Err(not_quoted()),
        (EntityType::Param | EntityType::Tag, _) => {
            return Err(SearchError::new(format!(
                "Expected a quoted string value for {} (e.g. 'my-value'). Got value {shown}",
                entity.mlflow_name()
            )))
        }
        (EntityType::Attribute, RawValue::List(items)) => {
            if key != "run_id" {
                return Err(SearchError::new(format!(
                    "Only the 'run_id' attribute supports comparison with a list of quoted string values, not \
                     '{key}'."
                )));
            }
            Value::List(items)
        }
        (EntityType::Dataset, RawValue::List(items)) => Value::List(items),
        (EntityType::Attribute, _) => {
            return Err(SearchError::new(format!("Expected a quoted string value for attributes. Got value {shown}")))
        }
        (EntityType::Dataset, _) => {
            return Err(SearchError::new(format!(
                "Expected a quoted string value for dataset attributes. Got value {shown}"
            )))
        }
    };
    let allowed: &[Comparator] = {
        use Comparator::*;
        if numeric {
            &[Eq, Ne, Lt, Le, Gt, Ge]
        } else if matches!(entity, EntityType::Param | EntityType::Tag) {
            &[Eq, Ne, Like, ILike, IsNull, IsNotNull]
        } else {
            &[Eq, Ne, Like, ILike, In, NotIn]
        }
    };
    let comparator = match comparator {
        RawComparator::Known(c) if allowed.contains(&c) => c,
        other => {
            let spelled = match other {
                RawComparator::Known(c) => c.as_str().to_string(),
                RawComparator::Unknown(s) => s,
            };
            let allowed: Vec<&str> = allowed.iter().map(|c| c.as_str()).collect();
            return Err(SearchError::new(format!(
                "Invalid comparator '{spelled}' for {} '{}': not one of '{}'",
                entity.mlflow_name(),
                show(&key),
                allowed.join(", ")
            )));
        }
    };
    match (comparator, &value) {
        (Comparator::In | Comparator::NotIn, Value::List(_)) => {}
        (Comparator::In | Comparator::NotIn, _) => {
            return Err(SearchError::new(format!(
                "{comparator} expects a parenthesised list of quoted strings, e.g. run_id {comparator} ('a', 'b'); got \
                 {shown}"
            )))
        }
        (_, Value::List(_)) => {
            return Err(SearchError::new(format!(
                "A list of values goes with IN or NOT IN, not '{comparator}': got {shown}"
            )))
        }
        _ => {}
    }
    Ok(Clause { entity, key, comparator, value })
}

// ----- order_by -----------------------------------------------------------------------------

/// Parses `order_by` items such as `metrics.acc DESC`, `attributes.start_time`, `params.lr`.
pub fn parse_order_by(items: &[String]) -> Result<Vec<OrderBy>, SearchError> {
    items.iter().map(|item| parse_order_by_item(item)).collect()
}

/// One `order_by` item: `<identifier> [ASC|DESC]`, ascending when no direction is given.
pub fn parse_order_by_item(item: &str) -> Result<OrderBy, SearchError> {
    parse_order_by_for(item, Purpose::RunOrder)
}

/// `search_experiments` order-by items: `name`, `experiment_id`, `creation_time`,
/// `last_update_time` (MLflow orders experiments by attributes only; tags are refused there
/// when sorting, and here too).
pub fn parse_experiment_order_by(items: &[String]) -> Result<Vec<OrderBy>, SearchError> {
    items
        .iter()
        .map(|item| {
            let order = parse_order_by_for(item, Purpose::ExperimentOrder)?;
            if order.entity != EntityType::Attribute {
                return Err(SearchError::new(format!(
                    "Invalid order_by entity '{}' in '{}': experiments are ordered by {}",
                    order.entity.mlflow_name(),
                    show(item),
                    Purpose::ExperimentOrder.valid_attribute_keys()
                )));
            }
            Ok(order)
        })
        .collect()
}

fn parse_order_by_for(item: &str, purpose: Purpose) -> Result<OrderBy, SearchError> {
    let mut cur = Cursor::new(item, Ctx::OrderBy(item));
    cur.skip_ws();
    let could_not_parse = || {
        SearchError::new(format!(
            "Invalid order_by clause '{}'. Could not be parsed; expected '<identifier> [ASC|DESC]', e.g. \
             'metrics.acc DESC'",
            show(item)
        ))
    };
    let Some(ident) = identifier(&mut cur)? else {
        return Err(could_not_parse());
    };
    let spaced = cur.skip_ws();
    let mut ascending = true;
    if !cur.eof() {
        if !spaced {
            return Err(could_not_parse());
        }
        match cur.word() {
            Some(w) if w.eq_ignore_ascii_case("asc") => {}
            Some(w) if w.eq_ignore_ascii_case("desc") => ascending = false,
            Some(_) => {
                return Err(SearchError::new(format!(
                    "Invalid ordering key in order_by clause '{}'. Use ASC or DESC",
                    show(item)
                )))
            }
            None => return Err(could_not_parse()),
        }
        cur.skip_ws();
        if !cur.eof() {
            return Err(could_not_parse());
        }
    }
    let (entity, key) = resolve(&ident, purpose)?;
    Ok(OrderBy { entity, key, ascending })
}

// ----- matching -----------------------------------------------------------------------------

/// Whether the run passes every clause (an empty filter passes all runs). A run lacking the
/// metric, param or tag a clause names fails it, `!=` included, as in MLflow; `IS NULL` is
/// the way to ask for absence. Dataset clauses pass when any dataset input passes.
pub fn matches(clauses: &[Clause], run: &RunView<'_>) -> bool {
    clauses.iter().all(|c| clause_matches(c, run))
}

fn clause_matches(c: &Clause, run: &RunView<'_>) -> bool {
    match c.entity {
        EntityType::Metric => run.metrics.get(&c.key).is_some_and(|v| number_matches(c, v.partial_cmp(&c_number(c)))),
        EntityType::Param => presence_or_text(c, run.params.get(&c.key)),
        EntityType::Tag => presence_or_text(c, run.tags.get(&c.key)),
        // Clauses are public, so a hand-made one may name any key: unknown keys match nothing.
        EntityType::Attribute => match canonical_attribute(&c.key, Purpose::RunFilter) {
            Some("start_time") => number_matches(c, cmp_int_float(run.start_time, c_number(c))),
            Some("end_time") => run.end_time.is_some_and(|t| number_matches(c, cmp_int_float(t, c_number(c)))),
            Some("run_id") => text_matches(c, run.run_id),
            Some("run_name") => text_matches(c, run.run_name),
            Some("status") => text_matches(c, run.status),
            Some("user_id") => text_matches(c, run.user_id),
            Some("artifact_uri") => text_matches(c, run.artifact_uri),
            _ => false,
        },
        EntityType::Dataset => run.datasets.iter().any(|(name, digest, context)| match c.key.as_str() {
            "name" => text_matches(c, name),
            "digest" => text_matches(c, digest),
            "context" => !context.is_empty() && text_matches(c, context),
            _ => false,
        }),
    }
}

/// What an experiment looks like to a `search_experiments` filter.
#[derive(Clone, Copy, Debug)]
pub struct ExperimentView<'a> {
    pub name: &'a str,
    /// Milliseconds since the Unix epoch.
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: &'a BTreeMap<String, String>,
}

/// Whether the experiment passes every clause of a [`parse_experiment_filter`] filter; clauses
/// naming anything else match nothing.
pub fn matches_experiment(clauses: &[Clause], experiment: &ExperimentView<'_>) -> bool {
    clauses.iter().all(|c| match (c.entity, c.key.as_str()) {
        (EntityType::Attribute, "name") => text_matches(c, experiment.name),
        (EntityType::Attribute, "creation_time") => {
            number_matches(c, cmp_int_float(experiment.creation_time, c_number(c)))
        }
        (EntityType::Attribute, "last_update_time") => {
            number_matches(c, cmp_int_float(experiment.last_update_time, c_number(c)))
        }
        (EntityType::Tag, key) => presence_or_text(c, experiment.tags.get(key)),
        _ => false,
    })
}

/// What a registered model or a model version looks like to a registry filter; a model has
/// no run, source or version.
#[derive(Clone, Copy, Debug)]
pub struct RegistryView<'a> {
    pub name: &'a str,
    pub run_id: Option<&'a str>,
    pub source_path: Option<&'a str>,
    pub version: Option<i64>,
    pub tags: &'a BTreeMap<String, String>,
}

/// Whether a model or version passes every clause of a [`parse_registry_filter`] filter.
pub fn matches_registry(clauses: &[Clause], item: &RegistryView<'_>) -> bool {
    clauses.iter().all(|c| match (c.entity, c.key.as_str()) {
        (EntityType::Attribute, "name") => text_matches(c, item.name),
        (EntityType::Attribute, "run_id") => item.run_id.is_some_and(|r| text_matches(c, r)),
        (EntityType::Attribute, "source_path") => item.source_path.is_some_and(|s| text_matches(c, s)),
        (EntityType::Attribute, "version_number") => {
            item.version.is_some_and(|v| number_matches(c, cmp_int_float(v, c_number(c))))
        }
        // A model without the tag is not 'true': the client's own prompt filter
        // (`tags.`mlflow.prompt.is_prompt` != 'true'`) must keep every plain model.
        (EntityType::Tag, key) => match (c.comparator, item.tags.get(key)) {
            (Comparator::Ne | Comparator::NotIn, None) => true,
            (_, value) => presence_or_text(c, value),
        },
        _ => false,
    })
}

/// The clause's number; NaN for a non-number, which no numeric comparator except `!=` passes
/// (and a parsed clause never pairs a numeric comparator with anything else).
fn c_number(c: &Clause) -> f64 {
    match c.value {
        Value::Number(n) => n,
        _ => f64::NAN,
    }
}

fn number_matches(c: &Clause, ord: Option<Ordering>) -> bool {
    if !matches!(c.value, Value::Number(_)) {
        return false;
    }
    match c.comparator {
        Comparator::Eq => ord == Some(Ordering::Equal),
        Comparator::Ne => ord != Some(Ordering::Equal),
        Comparator::Lt => ord == Some(Ordering::Less),
        Comparator::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        Comparator::Gt => ord == Some(Ordering::Greater),
        Comparator::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
        _ => false,
    }
}

/// Compares a millisecond timestamp with a filter number exactly: through f64 alone two
/// timestamps past 2^53 could compare equal.
fn cmp_int_float(l: i64, r: f64) -> Option<Ordering> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if r.is_nan() {
        return None;
    }
    let t = r.trunc();
    if t >= TWO_63 {
        return Some(Ordering::Less);
    }
    if t < -TWO_63 {
        return Some(Ordering::Greater);
    }
    // In range and integral, so the cast is exact.
    match l.cmp(&(t as i64)) {
        Ordering::Equal => (0.0).partial_cmp(&(r - t)),
        other => Some(other),
    }
}

fn presence_or_text(c: &Clause, lhs: Option<&String>) -> bool {
    match c.comparator {
        Comparator::IsNull => lhs.is_none(),
        Comparator::IsNotNull => lhs.is_some(),
        _ => lhs.is_some_and(|s| text_matches(c, s)),
    }
}

fn text_matches(c: &Clause, lhs: &str) -> bool {
    match (c.comparator, &c.value) {
        (Comparator::Eq, Value::Str(s)) => lhs == s,
        (Comparator::Ne, Value::Str(s)) => lhs != s,
        (Comparator::Like, Value::Str(p)) => sql_like(p, lhs, false),
        (Comparator::ILike, Value::Str(p)) => sql_like(p, lhs, true),
        (Comparator::In, Value::List(items)) => items.iter().any(|s| s == lhs),
        (Comparator::NotIn, Value::List(items)) => !items.iter().any(|s| s == lhs),
        _ => false,
    }
}

/// SQL `LIKE`: `%` matches any run of characters (none included), `_` exactly one character,
/// everything else itself; the whole text must match. `case_insensitive` is `ILIKE`, folding
/// each character to its lower case. No escape character.
///
/// Greedy with backtracking to the last `%` only, which is enough because a later `%` can
/// absorb anything an earlier one could: O(pattern × text) at worst, never exponential.
pub fn sql_like(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let fold = |c: char| if case_insensitive { fold_case(c) } else { c };
    let p: Vec<char> = pattern.chars().map(fold).collect();
    let t: Vec<char> = text.chars().map(fold).collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // After the last `%` seen: where the pattern resumes, and where in the text that `%` ends.
    let mut resume: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('%') => {
                pi += 1;
                resume = Some((pi, ti));
            }
            Some(&c) if c == '_' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match resume {
                // Let the last `%` swallow one more character and retry from there.
                Some((rp, rt)) => {
                    pi = rp;
                    ti = rt + 1;
                    resume = Some((rp, rt + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '%')
}

/// One character's lower case when that is one character (Python's `re.IGNORECASE` also folds
/// character by character); otherwise the character itself.
fn fold_case(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

// ----- sorting ------------------------------------------------------------------------------

enum SortKey<'r> {
    Number(f64),
    Int(i64),
    Text(&'r str),
    Missing,
}

impl SortKey<'_> {
    /// Real values first, then NaN, then absent, whichever the direction, as MLflow sorts.
    fn rank(&self) -> u8 {
        match self {
            SortKey::Number(n) if n.is_nan() => 1,
            SortKey::Missing => 2,
            _ => 0,
        }
    }
}

fn sort_key<'r>(o: &OrderBy, run: &'r RunView<'_>) -> SortKey<'r> {
    let present = |v: Option<&'r String>| v.map_or(SortKey::Missing, |s| SortKey::Text(s));
    match o.entity {
        EntityType::Metric => run.metrics.get(&o.key).map_or(SortKey::Missing, |v| SortKey::Number(*v)),
        EntityType::Param => present(run.params.get(&o.key)),
        EntityType::Tag => present(run.tags.get(&o.key)),
        EntityType::Attribute => match canonical_attribute(&o.key, Purpose::RunOrder) {
            Some("start_time") => SortKey::Int(run.start_time),
            Some("end_time") => run.end_time.map_or(SortKey::Missing, SortKey::Int),
            Some("run_id") => SortKey::Text(run.run_id),
            Some("run_name") => SortKey::Text(run.run_name),
            Some("status") => SortKey::Text(run.status),
            Some("user_id") => SortKey::Text(run.user_id),
            Some("artifact_uri") => SortKey::Text(run.artifact_uri),
            _ => SortKey::Missing,
        },
        EntityType::Dataset => SortKey::Missing,
    }
}

/// The order of two runs for `search_runs`: each `order_by` item in turn, then MLflow's
/// default, `start_time` descending and `run_id` ascending, which also breaks every tie. Runs
/// lacking the key (and NaN metrics, before them) sort last in either direction.
pub fn compare(order: &[OrderBy], a: &RunView<'_>, b: &RunView<'_>) -> Ordering {
    for o in order {
        let (ka, kb) = (sort_key(o, a), sort_key(o, b));
        let by_rank = ka.rank().cmp(&kb.rank());
        if by_rank != Ordering::Equal {
            return by_rank;
        }
        let by_value = match (&ka, &kb) {
            // -0.0 and 0.0 tie, as in Python.
            (SortKey::Number(x), SortKey::Number(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
            (SortKey::Int(x), SortKey::Int(y)) => x.cmp(y),
            // Code point order, as Python compares strings.
            (SortKey::Text(x), SortKey::Text(y)) => x.cmp(y),
            _ => Ordering::Equal,
        };
        let by_value = if o.ascending { by_value } else { by_value.reverse() };
        if by_value != Ordering::Equal {
            return by_value;
        }
    }
    b.start_time.cmp(&a.start_time).then_with(|| a.run_id.cmp(b.run_id))
}

// ----- paging -------------------------------------------------------------------------------

/// MLflow's page token: base64 of `{"offset": N}`, byte for byte what MLflow hands out, so a
/// client may carry tokens across servers.
pub fn page_token(offset: usize) -> String {
    STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

/// The offset a page token names; an empty token is the first page.
pub fn parse_page_token(token: &str) -> Result<usize, SearchError> {
    // Padding optional: a token that lost its `=` in a query string still reads.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let token = token.trim();
    if token.is_empty() {
        return Ok(0);
    }
    let bytes = LENIENT.decode(token).map_err(|_| {
        SearchError::new(format!(
            "Invalid page token '{}', could not base64-decode; pass back the next_page_token of the previous page",
            show(token)
        ))
    })?;
    let decoded = String::from_utf8_lossy(&bytes);
    let parsed: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
        SearchError::new(format!("Invalid page token, decoded value={}; expected {{\"offset\": N}}", show(&decoded)))
    })?;
    let invalid = || {
        SearchError::new(format!(
            "Invalid page token, parsed value={}; expected {{\"offset\": N}} with N a whole number >= 0",
            show(&parsed.to_string())
        ))
    };
    match parsed.get("offset") {
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(invalid),
        // MLflow runs `int()` over the value, so a string of digits passes there too.
        Some(serde_json::Value::String(s)) => s.trim().parse::<usize>().map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// The slice of `total` sorted results one page shows, and the token for the next page when
/// more follow (MLflow's `paginate`).
pub fn paginate(
    total: usize,
    page_token: &str,
    max_results: usize,
) -> Result<(Range<usize>, Option<String>), SearchError> {
    let start = parse_page_token(page_token)?;
    let end = start.saturating_add(max_results);
    let next = (end < total).then(|| self::page_token(end));
    Ok((start.min(total)..end.min(total), next))
}

// ----- latest metric ------------------------------------------------------------------------

/// The value MLflow reports as a metric's latest: the point with the greatest (step,
/// timestamp, value). In that comparison NaN counts as 0 and ±infinity as ±f64::MAX, as the
/// SQL store compares what it stores; the value returned is the point's own. On a tie the
/// first point wins, as the store keeps the row it has.
pub fn latest_metric(points: impl IntoIterator<Item = (i64, i64, f64)>) -> Option<f64> {
    fn stored(v: f64) -> f64 {
        if v.is_nan() {
            0.0
        } else {
            v.clamp(-f64::MAX, f64::MAX)
        }
    }
    let newer = |a: &(i64, i64, f64), b: &(i64, i64, f64)| {
        (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| stored(a.2).partial_cmp(&stored(b.2)).unwrap_or(Ordering::Equal))
            == Ordering::Greater
    };
    let mut best: Option<(i64, i64, f64)> = None;
    for p in points {
        if best.as_ref().is_none_or(|b| newer(&p, b)) {
            best = Some(p);
        }
    }
    best.map(|b| b.2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};
    use Comparator::*;
    use EntityType::*;

    /// An owned run to borrow `RunView`s from.
    #[derive(Clone, Debug)]
    struct Run {
        run_id: String,
        run_name: String,
        status: String,
        user_id: String,
        artifact_uri: String,
        start_time: i64,
        end_time: Option<i64>,
        metrics: BTreeMap<String, f64>,
        params: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
        datasets: Vec<(String, String, String)>,
    }

    impl Run {
        fn new(run_id: &str) -> Self {
            Run {
                run_id: run_id.into(),
                run_name: format!("name-{run_id}"),
                status: "FINISHED".into(),
                user_id: "user-id".into(),
                artifact_uri: format!("mlflow-artifacts:/0/{run_id}/artifacts"),
                start_time: 0,
                end_time: Some(1),
                metrics: BTreeMap::new(),
                params: BTreeMap::new(),
                tags: BTreeMap::new(),
                datasets: Vec::new(),
            }
        }
        fn status(mut self, s: &str) -> Self {
            self.status = s.into();
            self
        }
        fn start(mut self, t: i64) -> Self {
            self.start_time = t;
            self
        }
        fn end(mut self, t: Option<i64>) -> Self {
            self.end_time = t;
            self
        }
        fn user(mut self, u: &str) -> Self {
            self.user_id = u.into();
            self
        }
        fn metric(mut self, k: &str, v: f64) -> Self {
            self.metrics.insert(k.into(), v);
            self
        }
        fn param(mut self, k: &str, v: &str) -> Self {
            self.params.insert(k.into(), v.into());
            self
        }
        fn tag(mut self, k: &str, v: &str) -> Self {
            self.tags.insert(k.into(), v.into());
            self
        }
        fn dataset(mut self, name: &str, digest: &str, context: &str) -> Self {
            self.datasets.push((name.into(), digest.into(), context.into()));
            self
        }
        fn view(&self) -> RunView<'_> {
            RunView {
                run_id: &self.run_id,
                run_name: &self.run_name,
                status: &self.status,
                user_id: &self.user_id,
                artifact_uri: &self.artifact_uri,
                start_time: self.start_time,
                end_time: self.end_time,
                metrics: &self.metrics,
                params: &self.params,
                tags: &self.tags,
                datasets: &self.datasets,
            }
        }
    }

    fn clause(entity: EntityType, key: &str, comparator: Comparator, value: Value) -> Clause {
        Clause { entity, key: key.into(), comparator, value }
    }

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    fn n(v: f64) -> Value {
        Value::Number(v)
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| s.to_string()).collect())
    }

    fn parse1(filter: &str) -> Clause {
        let mut clauses = parse_filter(filter).unwrap_or_else(|e| panic!("{filter:?} should parse: {e}"));
        assert_eq!(clauses.len(), 1, "{filter:?}");
        clauses.remove(0)
    }

    /// The message of the error `filter` must give, checked to be one line.
    fn filter_err(filter: &str) -> String {
        match parse_filter(filter) {
            Ok(c) => panic!("{filter:?} should fail, parsed to {c:?}"),
            Err(e) => {
                let m = e.to_string();
                assert!(!m.is_empty() && !m.contains('\n') && !m.contains('\r'), "{m:?}");
                m
            }
        }
    }

    fn assert_filter_err(filter: &str, needle: &str) {
        let m = filter_err(filter);
        assert!(m.contains(needle), "{filter:?}: {m:?} should contain {needle:?}");
    }

    fn order_err(item: &str) -> String {
        match parse_order_by_item(item) {
            Ok(o) => panic!("{item:?} should fail, parsed to {o:?}"),
            Err(e) => {
                let m = e.to_string();
                assert!(!m.contains('\n'), "{m:?}");
                m
            }
        }
    }

    fn ids(runs: &[Run], filter: &str) -> Vec<String> {
        let clauses = parse_filter(filter).expect("filter parses");
        runs.iter().filter(|r| matches(&clauses, &r.view())).map(|r| r.run_id.clone()).collect()
    }

    fn sorted(runs: &[Run], order_by: &[&str]) -> Vec<String> {
        let items: Vec<String> = order_by.iter().map(|s| s.to_string()).collect();
        let order = parse_order_by(&items).expect("order_by parses");
        let mut views: Vec<RunView<'_>> = runs.iter().map(Run::view).collect();
        views.sort_by(|a, b| compare(&order, a, b));
        views.iter().map(|v| v.run_id.to_string()).collect()
    }

    // ----- parsing: accepted forms ---------------------------------------------------------

    #[test]
    fn empty_and_blank_filters_match_everything() {
        for f in ["", " ", "\t\n  "] {
            assert_eq!(parse_filter(f), Ok(vec![]));
        }
        assert!(matches(&[], &Run::new("a").view()));
    }

    /// MLflow's `test_filter` table, with keys and comparators as we canonicalise them.
    #[test]
    fn mlflow_filter_examples_parse() {
        let cases: Vec<(&str, Vec<Clause>)> = vec![
            ("metric.acc >= 0.94", vec![clause(Metric, "acc", Ge, n(0.94))]),
            ("metric.acc>=100", vec![clause(Metric, "acc", Ge, n(100.0))]),
            ("params.m!='tf'", vec![clause(Param, "m", Ne, s("tf"))]),
            ("params.\"m\"!=\"tf\"", vec![clause(Param, "m", Ne, s("tf"))]),
            ("metric.\"legit name\" >= 0.243", vec![clause(Metric, "legit name", Ge, n(0.243))]),
            ("metrics.XYZ = 3", vec![clause(Metric, "XYZ", Eq, n(3.0))]),
            ("params.\"cat dog\" = \"pets\"", vec![clause(Param, "cat dog", Eq, s("pets"))]),
            ("metrics.\"X-Y-Z\" = 3", vec![clause(Metric, "X-Y-Z", Eq, n(3.0))]),
            ("metrics.\"X//Y#$$@&Z\" = 3", vec![clause(Metric, "X//Y#$$@&Z", Eq, n(3.0))]),
            ("params.model = 'LinearRegression'", vec![clause(Param, "model", Eq, s("LinearRegression"))]),
            (
                "metrics.rmse < 1 and params.model_class = 'LR'",
                vec![clause(Metric, "rmse", Lt, n(1.0)), clause(Param, "model_class", Eq, s("LR"))],
            ),
            ("`metric`.a >= 0.1", vec![clause(Metric, "a", Ge, n(0.1))]),
            ("tags.version = 'commit-hash'", vec![clause(Tag, "version", Eq, s("commit-hash"))]),
            ("`tags`.source_name = 'a notebook'", vec![clause(Tag, "source_name", Eq, s("a notebook"))]),
            ("metrics.\"accuracy.2.0\" > 5", vec![clause(Metric, "accuracy.2.0", Gt, n(5.0))]),
            ("metrics.`spacey name` > 5", vec![clause(Metric, "spacey name", Gt, n(5.0))]),
            ("params.\"p.a.r.a.m\" != \"a\"", vec![clause(Param, "p.a.r.a.m", Ne, s("a"))]),
            ("tags.\"t.a.g\" = \"a\"", vec![clause(Tag, "t.a.g", Eq, s("a"))]),
            ("attribute.artifact_uri = '1/23/4'", vec![clause(Attribute, "artifact_uri", Eq, s("1/23/4"))]),
            ("attribute.start_time >= 1234", vec![clause(Attribute, "start_time", Ge, n(1234.0))]),
            ("run.status = 'RUNNING'", vec![clause(Attribute, "status", Eq, s("RUNNING"))]),
            ("dataset.name = 'my_dataset'", vec![clause(Dataset, "name", Eq, s("my_dataset"))]),
            ("tags.version IS NULL", vec![clause(Tag, "version", IsNull, Value::Null)]),
            ("tags.version IS NOT NULL", vec![clause(Tag, "version", IsNotNull, Value::Null)]),
            ("params.lr IS NULL", vec![clause(Param, "lr", IsNull, Value::Null)]),
            ("params.lr IS NOT NULL", vec![clause(Param, "lr", IsNotNull, Value::Null)]),
            (
                "tags.a IS NULL AND params.b = 'val'",
                vec![clause(Tag, "a", IsNull, Value::Null), clause(Param, "b", Eq, s("val"))],
            ),
            // test_correct_quote_trimming
            ("params.m = 'LR'", vec![clause(Param, "m", Eq, s("LR"))]),
            ("params.m = \"LR\"", vec![clause(Param, "m", Eq, s("LR"))]),
            ("params.m = \"L'Hosp\"", vec![clause(Param, "m", Eq, s("L'Hosp"))]),
        ];
        for (filter, want) in cases {
            assert_eq!(parse_filter(filter).as_ref(), Ok(&want), "{filter:?}");
        }
    }

    /// Every filter and order-by example of the reference document (§4, and §7's prompt check).
    #[test]
    fn reference_document_examples() {
        assert_eq!(parse1("metrics.`val loss` < 0.3"), clause(Metric, "val loss", Lt, n(0.3)));
        assert_eq!(parse1("tags.\"mlflow.runName\" = 'x'"), clause(Tag, "mlflow.runName", Eq, s("x")));
        assert_eq!(parse1("tags.`mlflow.runName` = 'x'"), clause(Tag, "mlflow.runName", Eq, s("x")));
        assert_eq!(
            parse1("tag.`mlflow.prompt.is_prompt` != 'true'"),
            clause(Tag, "mlflow.prompt.is_prompt", Ne, s("true"))
        );
        assert_eq!(parse1("run_id IN ('a','b')"), clause(Attribute, "run_id", In, list(&["a", "b"])));
        assert_eq!(parse1("status = 'FINISHED'"), clause(Attribute, "status", Eq, s("FINISHED")));
        assert_eq!(parse1("params.lr LIKE '0.0%'"), clause(Param, "lr", Like, s("0.0%")));
        assert_eq!(parse1("tags.model ILIKE '%Logistic%'"), clause(Tag, "model", ILike, s("%Logistic%")));
        assert_eq!(parse1("datasets.context IN ('train')"), clause(Dataset, "context", In, list(&["train"])));
        assert_eq!(
            parse1("datasets.digest NOT IN ('d1', 'd2')"),
            clause(Dataset, "digest", NotIn, list(&["d1", "d2"]))
        );
        assert_eq!(
            parse1("attributes.created > 1670628787527"),
            clause(Attribute, "start_time", Gt, n(1670628787527.0))
        );
        assert_eq!(parse1("attributes.Created > 1"), clause(Attribute, "start_time", Gt, n(1.0)));
        for alias in ["run_name", "`run name`", "`Run name`", "`Run Name`", "\"run name\""] {
            assert_eq!(
                parse1(&format!("attributes.{alias} ILIKE \"%alpha%\"")),
                clause(Attribute, "run_name", ILike, s("%alpha%")),
                "{alias}"
            );
        }
        assert_eq!(parse1("tags.`mlflow.user` = ''"), clause(Tag, "mlflow.user", Eq, s("")));
        assert_eq!(
            parse1("metrics.\"2019-04-02 error rate\" < 1"),
            clause(Metric, "2019-04-02 error rate", Lt, n(1.0))
        );
        let order: Vec<String> =
            ["metrics.acc DESC", "attributes.start_time", "params.lr", "tags.x"].map(String::from).to_vec();
        assert_eq!(
            parse_order_by(&order),
            Ok(vec![
                OrderBy { entity: Metric, key: "acc".into(), ascending: false },
                OrderBy { entity: Attribute, key: "start_time".into(), ascending: true },
                OrderBy { entity: Param, key: "lr".into(), ascending: true },
                OrderBy { entity: Tag, key: "x".into(), ascending: true },
            ])
        );
    }

    #[test]
    fn every_entity_alias_is_accepted() {
        let cases = [
            ("metric", Metric),
            ("metrics", Metric),
            ("param", Param),
            ("params", Param),
            ("parameter", Param),
            ("parameters", Param),
            ("tag", Tag),
            ("tags", Tag),
            ("attribute", Attribute),
            ("attributes", Attribute),
            ("attr", Attribute),
            ("run", Attribute),
            ("dataset", Dataset),
            ("datasets", Dataset),
        ];
        for (alias, entity) in cases {
            let (key, value) = match entity {
                Metric => ("k", "1"),
                Attribute => ("status", "'x'"),
                Dataset => ("name", "'x'"),
                _ => ("k", "'x'"),
            };
            assert_eq!(parse1(&format!("{alias}.{key} = {value}")).entity, entity, "{alias}");
            assert_eq!(parse1(&format!("`{alias}`.{key} = {value}")).entity, entity, "`{alias}`");
            let order = parse_order_by_item(&format!("{alias}.{key}"));
            if entity == Dataset {
                assert!(order.is_err());
            } else {
                assert_eq!(order.map(|o| o.entity), Ok(entity), "{alias}");
            }
        }
    }

    #[test]
    fn bare_keys_are_attributes() {
        for key in ["run_id", "run_name", "status", "user_id", "artifact_uri"] {
            assert_eq!(parse1(&format!("{key} = 'x'")), clause(Attribute, key, Eq, s("x")));
        }
        for key in ["start_time", "end_time"] {
            assert_eq!(parse1(&format!("{key} >= 5")), clause(Attribute, key, Ge, n(5.0)));
        }
        assert_eq!(parse1("created < 5"), clause(Attribute, "start_time", Lt, n(5.0)));
        assert_eq!(parse1("`run name` = 'x'"), clause(Attribute, "run_name", Eq, s("x")));
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let f = "params.a like 'x%' And tags.b iLiKe '%Y' aNd run_id in ('r') AND run_id Not In ('s') and tags.c is \
                 null AND tags.d Is Not Null";
        assert_eq!(
            parse_filter(f),
            Ok(vec![
                clause(Param, "a", Like, s("x%")),
                clause(Tag, "b", ILike, s("%Y")),
                clause(Attribute, "run_id", In, list(&["r"])),
                clause(Attribute, "run_id", NotIn, list(&["s"])),
                clause(Tag, "c", IsNull, Value::Null),
                clause(Tag, "d", IsNotNull, Value::Null),
            ])
        );
        assert_eq!(parse_order_by_item("metrics.a desc").map(|o| o.ascending), Ok(false));
        assert_eq!(parse_order_by_item("metrics.a DeSc").map(|o| o.ascending), Ok(false));
        assert_eq!(parse_order_by_item("metrics.a aSc").map(|o| o.ascending), Ok(true));
    }

    #[test]
    fn whitespace_is_free_between_tokens_and_any_kind_counts() {
        assert_eq!(parse1("metrics.a>1"), clause(Metric, "a", Gt, n(1.0)));
        assert_eq!(parse1("\n\tmetrics.a \u{3000}<=\r\n-1 "), clause(Metric, "a", Le, n(-1.0)));
        assert_eq!(parse1("params.a LIKE'x'"), clause(Param, "a", Like, s("x")));
        assert_eq!(parse1("run_id IN('a' ,  'b')"), clause(Attribute, "run_id", In, list(&["a", "b"])));
        assert_eq!(parse_filter("params.a='x'AND params.b='y'").map(|c| c.len()), Ok(2));
        assert_filter_err("metrics.a>1AND metrics.b<2", "'1AND' (not a number");
    }

    #[test]
    fn numbers_in_every_written_form() {
        let cases = [
            ("1", 1.0),
            ("-0.5", -0.5),
            (".5", 0.5),
            ("-.5", -0.5),
            ("5.", 5.0),
            ("+2", 2.0),
            ("1e-3", 1e-3),
            ("1E+3", 1e3),
            ("2.5e2", 250.0),
            ("0", 0.0),
            ("1670628787527", 1670628787527.0),
        ];
        for (text, want) in cases {
            assert_eq!(parse1(&format!("metrics.m = {text}")).value, n(want), "{text}");
        }
        assert_eq!(parse1("metrics.m < 1e999").value, n(f64::INFINITY));
        assert_eq!(parse1("metrics.m > -1e999").value, n(f64::NEG_INFINITY));
        for bad in ["1abc", "1.2.3", "1e", "1e+", "0x10", "--1", "-", "+", ".", "1_000", "inf", "NaN"] {
            let m = filter_err(&format!("metrics.m = {bad}"));
            assert!(m.contains(bad.trim_start_matches(['-', '+']).get(..1).unwrap_or("")), "{bad}: {m}");
        }
    }

    #[test]
    fn unicode_keys_and_values() {
        assert_eq!(parse1("params.学习率 = '０.１'"), clause(Param, "学习率", Eq, s("０.１")));
        assert_eq!(parse1("metrics.précision > 0.5"), clause(Metric, "précision", Gt, n(0.5)));
        assert_eq!(parse1("tags.`🚀 launch` = '✓'"), clause(Tag, "🚀 launch", Eq, s("✓")));
        assert_eq!(parse1("tags.Ωmega.δ = \"ünïcödé\""), clause(Tag, "Ωmega.δ", Eq, s("ünïcödé")));
        let run = Run::new("r").param("学习率", "０.１").tag("ωmega", "ÄBC");
        assert!(matches(&parse_filter("params.学习率 = '０.１'").expect("parses"), &run.view()));
        assert!(matches(&parse_filter("tags.ωmega ILIKE 'äbc'").expect("parses"), &run.view()));
        assert!(!matches(&parse_filter("tags.ωmega LIKE 'äbc'").expect("parses"), &run.view()));
        assert!(matches(&parse_filter("tags.ωmega LIKE '_B_'").expect("parses"), &run.view()));
    }

    #[test]
    fn quotes_inside_quotes() {
        assert_eq!(parse1("params.m = 'it''s'").value, s("it's"));
        assert_eq!(parse1("params.m = \"say \"\"hi\"\"\"").value, s("say \"hi\""));
        assert_eq!(parse1("params.m = 'a \"b\"'").value, s("a \"b\""));
        assert_eq!(parse1("params.m = 'C:\\dir\\'").value, s("C:\\dir\\"));
        assert_eq!(parse1("params.m = ''").value, s(""));
        assert_eq!(parse1("params.`a``b` = 'x'").key, "a`b");
        assert_eq!(parse1("params.\"a\"\"b\" = 'x'").key, "a\"b");
        assert_eq!(parse1("params.m = 'line\nbreak'").value, s("line\nbreak"));
    }

    #[test]
    fn dotted_bare_keys_split_at_the_first_dot_only() {
        assert_eq!(parse1("tags.mlflow.runName = 'x'"), clause(Tag, "mlflow.runName", Eq, s("x")));
        assert_eq!(parse1("metrics.a.b.c > 1"), clause(Metric, "a.b.c", Gt, n(1.0)));
    }

    // ----- parsing: errors -----------------------------------------------------------------

    #[test]
    fn or_not_and_parentheses_are_rejected_as_mlflow_does() {
        assert!(
            filter_err("metrics.A > 0.1 OR params.B = 'LR'").starts_with("Invalid clause(s) in filter string: 'OR'")
        );
        assert_filter_err("metrics.A > 0.1 NAND params.B = 'LR'", "Invalid clause(s) in filter string: 'NAND'");
        assert_filter_err(
            "metrics.A > 0.1 AND (params.B = 'LR')",
            "Invalid clause(s) in filter string: '(params.B = 'LR')'",
        );
        assert_filter_err("(metrics.A > 0.1)", "Invalid clause(s) in filter string: '(metrics.A > 0.1)'");
        assert_filter_err("NOT metrics.A > 0.1", "Invalid clause(s) in filter string: 'NOT'");
        assert_filter_err("metrics.A > 0.1 AND NOT params.b = 'x'", "'NOT'");
        assert_filter_err("OR metrics.A > 0.1", "'OR'");
        assert_filter_err("metrics.A > 0.1 AND", "expected a comparison after AND");
        assert_filter_err("metrics.A > 0.1 AND AND metrics.b < 1", "'AND'");
        assert_filter_err("metrics.A > 0.1 metrics.b < 1", "joined by AND");
        for m in [filter_err("metrics.A > 0.1 OR params.B = 'LR'"), filter_err("(metrics.A > 0.1)")] {
            assert!(m.contains("OR, NOT and parentheses are not supported"), "{m}");
        }
    }

    /// MLflow's `test_error_filter`, `test_error_comparison_clauses`, `test_bad_quotes` and
    /// `test_invalid_clauses`, with its expected message fragments where ours share them.
    #[test]
    fn mlflow_error_examples() {
        let cases = [
            ("metric.acc >= 0.94; metrics.rmse < 1", "Search filter contained multiple expression"),
            ("m.acc >= 0.94", "Invalid entity type 'm'"),
            ("acc >= 0.94", "Invalid attribute key 'acc'"),
            ("p.model >= 'LR'", "Invalid entity type"),
            ("attri.x != 1", "Invalid entity type"),
            ("a.x != 1", "Invalid entity type"),
            ("model >= 'LR'", "Invalid attribute key"),
            ("`metrics.A > 0.1", "Invalid clause(s) in filter string"),
            ("param`.A > 0.1", "Invalid clause(s) in filter string"),
            ("`dummy.A > 0.1", "Invalid clause(s) in filter string"),
            ("dummy`.A > 0.1", "Invalid clause(s) in filter string"),
            ("attribute.start != 1", "Invalid attribute key"),
            ("attribute.experiment_id != 1", "Invalid attribute key"),
            ("attribute.lifecycle_stage = 'ACTIVE'", "Invalid attribute key"),
            ("attribute.name != 1", "Invalid attribute key"),
            ("attribute.time != 1", "Invalid attribute key"),
            ("attribute._status != 'RUNNING'", "Invalid attribute key"),
            ("dataset.status = 'true'", "Invalid dataset key"),
            ("dataset.profile = 'num_rows: 10'", "Invalid dataset key"),
            ("metrics.acc IS NULL", "IS NULL / IS NOT NULL is only supported for tags and params"),
            ("attribute.status IS NULL", "IS NULL / IS NOT NULL is only supported for tags and params"),
            ("datasets.name IS NOT NULL", "IS NULL / IS NOT NULL is only supported for tags and params"),
            ("metric.model = 'LR'", "Expected numeric value type for metric"),
            ("metric.model = '5'", "Expected numeric value type for metric"),
            ("params.acc = 5", "Expected a quoted string value for param"),
            ("tags.acc = 5", "Expected a quoted string value for tag"),
            ("metrics.acc != metrics.acc", "Expected numeric value type for metric. Found metrics.acc"),
            ("1.0 > metrics.acc", "Expected 'Identifier' found '1.0'"),
            ("attribute.status = 1", "Expected a quoted string value for attributes"),
            ("params.acc = LR", "value is either not quoted or unidentified quote types"),
            ("tags.acc = LR", "value is either not quoted or unidentified quote types"),
            ("params.acc = `LR`", "value is either not quoted or unidentified quote types"),
            ("attribute.status = true", "value is either not quoted or unidentified quote types"),
            ("params.'acc = LR", "Invalid identifier"),
            ("params.acc = 'LR", "Invalid clause(s) in filter string"),
            ("params.acc = LR'", "value is either not quoted"),
            ("params.acc = \"LR'", "Invalid clause(s) in filter string"),
            ("tags.acc = \"LR'", "Invalid clause(s) in filter string"),
            ("tags.acc = = 'LR'", "Invalid clause(s) in filter string"),
            ("attribute.status IS 'RUNNING'", "Invalid clause(s) in filter string"),
            ("params.acc LR !=", "Invalid clause(s) in filter string"),
            ("params.acc LR", "Invalid clause(s) in filter string"),
            ("metric.acc !=", "Invalid clause(s) in filter string"),
            ("acc != 1.0", "Invalid attribute key"),
            ("foo is null", "Invalid attribute key"),
            ("1=1", "Expected 'Identifier' found '1'"),
            ("1==2", "Expected 'Identifier' found"),
            ("'x' = params.a", "Expected 'Identifier' found"),
        ];
        for (filter, needle) in cases {
            assert_filter_err(filter, needle);
        }
    }

    /// MLflow's `test_bad_comparators`, which it only finds while matching; we find them parsing.
    #[test]
    fn comparators_outside_an_entitys_set_are_rejected() {
        let cases: [(&str, &[&str], &str, &str); 6] = [
            ("metrics", &["LIKE", "ILIKE", "IN", "NOT IN", "<>", "==", "NOT LIKE"], "abc", "1.0"),
            ("params", &[">", "<", ">=", "<=", "IN", "<>"], "abc", "'my-param-value'"),
            ("tags", &[">", "<", ">=", "<=", "NOT ILIKE"], "abc", "'my-tag-value'"),
            ("attributes", &[">", "<", ">=", "<="], "status", "'my-tag-value'"),
            ("attributes", &["LIKE", "ILIKE", "IN"], "start_time", "1234"),
            ("datasets", &[">", "<", ">=", "<="], "name", "'my-dataset-name'"),
        ];
        for (entity, bad, key, value) in cases {
            for op in bad {
                let m = filter_err(&format!("{entity}.{key} {op} {value}"));
                assert!(m.starts_with(&format!("Invalid comparator '{op}'")), "{entity} {op}: {m}");
                assert!(m.contains("not one of '"), "{m}");
            }
        }
        for op in ["~", "~=", "CONTAINS", "BETWEEN"] {
            assert_filter_err(&format!("params.a {op} 'x'"), "expected a comparator");
        }
    }

    #[test]
    fn value_type_rules() {
        // Metrics: unquoted numbers only.
        assert_filter_err("metrics.a = '0.5'", "Expected numeric value type for metric. Found '0.5'");
        assert_filter_err("metrics.a = ('1')", "Expected numeric value type for metric");
        // Params and tags: quoted strings only.
        assert_filter_err(
            "params.a = 1",
            "Expected a quoted string value for parameter (e.g. 'my-value'). Got value 1",
        );
        assert_filter_err("params.a = ('x')", "Expected a quoted string value for parameter");
        assert_filter_err("tags.a IN ('x')", "Expected a quoted string value for tag");
        // Numeric attributes.
        assert_filter_err(
            "attributes.start_time = 'now'",
            "Expected numeric value type for numeric attribute: start_time",
        );
        assert_filter_err("end_time < yesterday", "Expected numeric value type for numeric attribute: end_time");
        assert_filter_err("created > '5'", "numeric attribute: start_time");
        // Lists: run_id and dataset fields only, and only with IN / NOT IN.
        assert_filter_err(
            "attributes.run_name IN ('foo','bar')",
            "Only the 'run_id' attribute supports comparison with a list",
        );
        assert_filter_err("status NOT IN ('a')", "Only the 'run_id' attribute");
        assert_filter_err("run_id = ('a', 'b')", "A list of values goes with IN or NOT IN, not '='");
        assert_filter_err("run_id IN 'a'", "IN expects a parenthesised list of quoted strings");
        assert_filter_err("datasets.name NOT IN 'a'", "NOT IN expects a parenthesised list");
        assert_filter_err("datasets.name = 40", "Expected a quoted string value for dataset attributes. Got value 40");
        assert_filter_err("datasets.digest = d1", "not quoted");
        // Malformed lists.
        assert_filter_err("run_id IN ()", "expected a non-empty list of string values, but got empty list");
        assert_filter_err("run_id IN ('a',)", "ill-formed list");
        assert_filter_err("run_id IN ('a' 'b')", "ill-formed list");
        assert_filter_err("run_id IN ('a'", "ill-formed list");
        assert_filter_err("run_id IN (1, 2)", "but got different type in list: '(1, 2)'");
        assert_filter_err("run_id IN (a)", "different type in list");
    }

    #[test]
    fn identifier_errors_name_the_identifier_and_how_to_quote() {
        assert_filter_err("metrics.2x > 1", "Invalid identifier 'metrics.2x'");
        assert_filter_err("metrics. acc > 1", "Invalid identifier 'metrics.'");
        assert!(filter_err("metrics.val-loss > 1").contains("backticks"));
        assert_filter_err("metrics.`` > 1", "the key is empty");
        assert_filter_err("\"metrics\".a > 1", "Invalid entity type '\"metrics\"'");
        assert_filter_err("Metrics.a > 1", "Invalid entity type 'Metrics'");
        assert_filter_err("`metrics.A` > 1", "quote only the key: metrics.A");
        let m = filter_err("m.acc >= 0.94");
        assert!(m.contains("'metric', 'parameter', 'tag', 'attribute', 'dataset'"), "{m}");
        let m = filter_err("acc >= 0.94");
        assert!(m.contains("'run_id'") && m.contains("'start_time'") && m.contains("'run name'"), "{m}");
    }

    #[test]
    fn error_messages_stay_on_one_line_and_short() {
        let long = format!("params.a = 'x' OR {}", "y\n".repeat(500));
        let m = filter_err(&long);
        assert!(m.len() < 400, "{m}");
        let m = filter_err("metrics.a > 1 OR\u{0}\u{1b}");
        assert!(m.contains("'OR\\u{0}\\u{1b}'"), "{m}");
        let m = filter_err("metrics.a = 1;\nmetrics.b = 2");
        assert!(m.contains("Provide AND-ed expression list"), "{m}");
    }

    // ----- order_by ------------------------------------------------------------------------

    #[test]
    fn mlflow_order_by_examples() {
        for (item, ascending) in [
            ("metrics.`Mean Square Error`", true),
            ("metrics.`Mean Square Error` ASC", true),
            ("metrics.`Mean Square Error` DESC", false),
        ] {
            assert_eq!(
                parse_order_by_item(item),
                Ok(OrderBy { entity: Metric, key: "Mean Square Error".into(), ascending })
            );
        }
        assert_eq!(
            parse_order_by_item("metrics.\"key1\"  desc"),
            Ok(OrderBy { entity: Metric, key: "key1".into(), ascending: false })
        );
        assert_eq!(
            parse_order_by_item("created"),
            Ok(OrderBy { entity: Attribute, key: "start_time".into(), ascending: true })
        );
        assert_eq!(
            parse_order_by_item("  tags.mlflow.runName\tDESC "),
            Ok(OrderBy { entity: Tag, key: "mlflow.runName".into(), ascending: false })
        );
        for key in ["run_id", "run_name", "status", "user_id", "artifact_uri", "start_time", "end_time", "Created"] {
            assert!(parse_order_by_item(&format!("attributes.{key}")).is_ok(), "{key}");
        }
    }

    #[test]
    fn mlflow_order_by_errors() {
        let cases = [
            ("m.acc", "Invalid entity type"),
            ("acc", "Invalid attribute key"),
            ("attri.x", "Invalid entity type"),
            ("`metrics.A", "Invalid order_by clause"),
            ("`metrics.A`", "Invalid attribute key"),
            ("attribute.start", "Invalid attribute key"),
            ("attribute.experiment_id", "Invalid attribute key"),
            ("attribute.`run name`", "Invalid attribute key"),
            ("metrics.A != 1", "Invalid order_by clause"),
            ("attribute.run_id ACS", "Invalid ordering key"),
            ("attribute.run_id decs", "Invalid ordering key"),
            ("metrics.a DESC ASC", "Invalid order_by clause"),
            ("metrics.a DESC, metrics.b", "Invalid order_by clause"),
            ("", "Invalid order_by clause"),
            ("   ", "Invalid order_by clause"),
            ("datasets.name", "Invalid order_by entity type 'dataset'"),
            ("metrics.a`x`", "Invalid order_by clause"),
        ];
        for (item, needle) in cases {
            let m = order_err(item);
            assert!(m.contains(needle), "{item:?}: {m:?} should contain {needle:?}");
        }
        let items = vec!["metrics.a".to_string(), "bogus".to_string()];
        assert!(parse_order_by(&items).is_err());
        assert_eq!(parse_order_by(&[]), Ok(vec![]));
    }

    // ----- matching ------------------------------------------------------------------------

    /// MLflow's `test_correct_filtering`.
    fn mlflow_filter_runs() -> Vec<Run> {
        vec![
            Run::new("hi")
                .status("FAILED")
                .metric("key1", 121.0)
                .param("my_param", "A")
                .dataset("name1", "digest1", "train"),
            Run::new("hi2")
                .metric("key1", 123.0)
                .param("my_param", "A")
                .tag("tag1", "C")
                .dataset("name1", "digest1", ""),
            Run::new("hi3")
                .status("FAILED")
                .metric("key1", 125.0)
                .param("my_param", "B")
                .tag("tag1", "D")
                .dataset("name2", "digest2", ""),
        ]
    }

    #[test]
    fn mlflow_correct_filtering() {
        let runs = mlflow_filter_runs();
        let cases: [(&str, &[&str]); 16] = [
            ("", &["hi", "hi2", "hi3"]),
            ("attributes.status = 'FAILED'", &["hi", "hi3"]),
            ("metrics.key1 = 123", &["hi2"]),
            ("metrics.key1 != 123", &["hi", "hi3"]),
            ("metrics.key1 >= 123", &["hi2", "hi3"]),
            ("params.my_param = 'A'", &["hi", "hi2"]),
            ("tags.tag1 = 'D'", &["hi3"]),
            ("tags.tag1 != 'D'", &["hi2"]),
            ("params.my_param = 'A' AND attributes.status = 'FAILED'", &["hi"]),
            ("datasets.name = 'name1'", &["hi", "hi2"]),
            ("datasets.name IN ('name1', 'name2')", &["hi", "hi2", "hi3"]),
            ("datasets.digest IN ('digest1', 'digest2')", &["hi", "hi2", "hi3"]),
            ("datasets.name = 'name1' AND datasets.digest = 'digest2'", &[]),
            ("datasets.context = 'train'", &["hi"]),
            ("datasets.name = 'name1' AND datasets.context = 'train'", &["hi"]),
            ("datasets.context != 'train'", &[]),
        ];
        for (filter, want) in cases {
            assert_eq!(ids(&runs, filter), want, "{filter:?}");
        }
    }

    #[test]
    fn mlflow_time_and_user_filters() {
        let runs: Vec<Run> = ["a", "b", "c"].iter().enumerate().map(|(i, id)| Run::new(id).start(i as i64)).collect();
        assert_eq!(ids(&runs, "attribute.start_time >= 0"), ["a", "b", "c"]);
        assert_eq!(ids(&runs, "attribute.start_time > 1"), ["c"]);
        assert_eq!(ids(&runs, "attribute.start_time = 2"), ["c"]);
        assert_eq!(ids(&runs, "created = 2"), ["c"]);
        assert_eq!(ids(&runs, "start_time < 1.5"), ["a", "b"]);
        assert_eq!(ids(&runs, "start_time != 1"), ["a", "c"]);
        let runs: Vec<Run> =
            ["a", "b", "c"].iter().enumerate().map(|(i, id)| Run::new(id).end(Some(i as i64))).collect();
        assert_eq!(ids(&runs, "attribute.end_time >= 0"), ["a", "b", "c"]);
        assert_eq!(ids(&runs, "attribute.end_time > 1"), ["c"]);
        assert_eq!(ids(&runs, "attribute.end_time = 2"), ["c"]);
        let runs = [Run::new("a"), Run::new("b").user("user-id2"), Run::new("c").end(None)];
        assert_eq!(ids(&runs, "attribute.user_id = 'user-id2'"), ["b"]);
        // A run still going has no end time: no end_time clause matches it, != included.
        assert_eq!(ids(&runs, "end_time != 5"), ["a", "b"]);
    }

    #[test]
    fn timestamps_compare_exactly_beyond_f64_precision() {
        let big = (1i64 << 53) + 1;
        let runs = [Run::new("a").start(big), Run::new("b").start(big - 1)];
        // 2^53 + 1 is not a double: the filter number rounds to 2^53, which is b's start.
        assert_eq!(ids(&runs, &format!("start_time = {big}")), ["b"]);
        assert_eq!(ids(&runs, &format!("start_time > {}", big - 1)), ["a"]);
        assert_eq!(ids(&[Run::new("max").start(i64::MAX)], "start_time < 1e19"), ["max"]);
        assert_eq!(ids(&[Run::new("min").start(i64::MIN)], "start_time > -1e19"), ["min"]);
        assert_eq!(ids(&[Run::new("neg").start(-3)], "start_time < -2.5"), ["neg"]);
        assert_eq!(ids(&[Run::new("neg").start(-2)], "start_time < -2.5"), Vec::<String>::new());
    }

    #[test]
    fn absent_keys_fail_every_comparison_but_is_null() {
        let runs = [Run::new("run1").tag("env", "prod"), Run::new("run2").param("lr", "0.01")];
        assert_eq!(ids(&runs, "tags.env IS NOT NULL"), ["run1"]);
        assert_eq!(ids(&runs, "tags.env IS NULL"), ["run2"]);
        assert_eq!(ids(&runs, "params.lr IS NOT NULL"), ["run2"]);
        assert_eq!(ids(&runs, "params.lr IS NULL"), ["run1"]);
        assert_eq!(ids(&runs, "params.lr != 'x'"), ["run2"]);
        assert!(parse_filter("params.lr NOT IN ('x')").is_err(), "params take no lists");
        assert_eq!(ids(&runs, "metrics.m != 1"), Vec::<String>::new());
        assert_eq!(ids(&runs, "tags.env IS NOT NULL AND params.lr IS NULL"), ["run1"]);
    }

    #[test]
    fn metric_comparisons_follow_ieee() {
        let runs = [
            Run::new("nan").metric("m", f64::NAN),
            Run::new("inf").metric("m", f64::INFINITY),
            Run::new("zero").metric("m", -0.0),
        ];
        assert_eq!(ids(&runs, "metrics.m != 1"), ["nan", "inf", "zero"]);
        assert_eq!(ids(&runs, "metrics.m = 0"), ["zero"]);
        assert_eq!(ids(&runs, "metrics.m >= -1e999"), ["inf", "zero"]);
        assert_eq!(ids(&runs, "metrics.m = 1e999"), ["inf"]);
        assert_eq!(ids(&runs, "metrics.m < 0"), Vec::<String>::new());
    }

    #[test]
    fn run_id_lists_and_string_attributes() {
        let runs = [Run::new("aaa"), Run::new("bbb").status("FAILED"), Run::new("Ccc")];
        assert_eq!(ids(&runs, "run_id IN ('aaa', 'Ccc')"), ["aaa", "Ccc"]);
        assert_eq!(ids(&runs, "run_id NOT IN ('aaa')"), ["bbb", "Ccc"]);
        assert_eq!(ids(&runs, "attributes.run_id LIKE '%b%'"), ["bbb"]);
        assert_eq!(ids(&runs, "run_id ILIKE 'c%'"), ["Ccc"]);
        assert_eq!(ids(&runs, "status != 'FAILED'"), ["aaa", "Ccc"]);
        assert_eq!(ids(&runs, "status = 'failed'"), Vec::<String>::new());
        assert_eq!(ids(&runs, "`Run Name` = 'name-bbb'"), ["bbb"]);
        assert_eq!(ids(&runs, "artifact_uri LIKE 'mlflow-artifacts:/0/%'").len(), 3);
    }

    #[test]
    fn dataset_clauses_hold_when_any_input_does() {
        let runs = [
            Run::new("two").dataset("train-set", "d1", "training").dataset("eval-set", "d2", "eval"),
            Run::new("none"),
            Run::new("nocontext").dataset("train-set", "d1", ""),
        ];
        assert_eq!(ids(&runs, "datasets.name = 'eval-set'"), ["two"]);
        assert_eq!(ids(&runs, "datasets.name != 'eval-set'"), ["two", "nocontext"]);
        assert_eq!(ids(&runs, "datasets.name NOT IN ('train-set')"), ["two"]);
        assert_eq!(ids(&runs, "datasets.context LIKE '%ing'"), ["two"]);
        assert_eq!(ids(&runs, "datasets.context NOT IN ('x')"), ["two"]);
        assert_eq!(ids(&runs, "datasets.digest ILIKE 'D_'"), ["two", "nocontext"]);
    }

    #[test]
    fn hand_built_clauses_that_parse_would_refuse_match_nothing() {
        let run = Run::new("r").metric("m", 1.0).param("p", "x").tag("t", "x").dataset("n", "d", "c");
        let bogus = [
            clause(Metric, "m", Like, s("1")),
            clause(Metric, "m", Eq, s("1")),
            clause(Param, "p", Lt, s("y")),
            clause(Param, "p", In, s("x")),
            clause(Tag, "t", Eq, n(1.0)),
            clause(Attribute, "nope", Eq, s("r")),
            clause(Attribute, "start_time", Like, s("0")),
            clause(Attribute, "run_id", Eq, list(&["r"])),
            clause(Dataset, "profile", Eq, s("x")),
            clause(Dataset, "name", Gt, s("a")),
        ];
        for c in bogus {
            assert!(!matches(std::slice::from_ref(&c), &run.view()), "{c:?}");
        }
        // Hand-built aliases still mean what they mean in a filter.
        assert!(matches(&[clause(Attribute, "created", Eq, n(0.0))], &run.view()));
        assert!(matches(&[clause(Attribute, "run name", Eq, s("name-r"))], &run.view()));
    }

    // ----- experiments ---------------------------------------------------------------------

    /// The examples of MLflow's search-experiments page, and its key rules.
    #[test]
    fn registry_filters() {
        let tags = BTreeMap::from([("team".to_string(), "risk".to_string())]);
        let view = RegistryView {
            name: "churn",
            run_id: Some("abc"),
            source_path: Some("models:/m-1"),
            version: Some(3),
            tags: &tags,
        };
        let model = RegistryView { name: "churn", run_id: None, source_path: None, version: None, tags: &tags };
        let yes = [
            "name = 'churn'",
            "name LIKE 'ch%' AND tags.team = 'risk'",
            "tags.`mlflow.prompt.is_prompt` != 'true'",
            "version_number >= 2 AND run_id IN ('abc', 'def')",
            "source_path = 'models:/m-1'",
            "tags.missing IS NULL",
        ];
        for f in yes {
            let c = parse_registry_filter(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(matches_registry(&c, &view), "{f}");
        }
        for f in ["name = 'other'", "version_number > 3", "run_id = 'zzz'", "tags.team != 'risk'"] {
            let c = parse_registry_filter(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(!matches_registry(&c, &view), "{f}");
        }
        // A registered model has no run or version: clauses on them match nothing.
        let c = parse_registry_filter("run_id = 'abc'").expect("parses");
        assert!(!matches_registry(&c, &model));
        for bad in ["metrics.acc > 1", "params.lr = '1'", "start_time > 0", "name = ", "name == 'x'"] {
            let e = parse_registry_filter(bad).expect_err(bad);
            assert!(!e.message().contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn experiment_filters() {
        let cases = [
            ("attributes.name = 'x'", vec![clause(Attribute, "name", Eq, s("x"))]),
            ("name = 'x'", vec![clause(Attribute, "name", Eq, s("x"))]),
            ("attribute.name LIKE 'x%'", vec![clause(Attribute, "name", Like, s("x%"))]),
            ("tags.group != 'x'", vec![clause(Tag, "group", Ne, s("x"))]),
            ("tags.group ILIKE '%x%'", vec![clause(Tag, "group", ILike, s("%x%"))]),
            (
                "attributes.name LIKE 'x%' AND tags.group = 'y'",
                vec![clause(Attribute, "name", Like, s("x%")), clause(Tag, "group", Eq, s("y"))],
            ),
            ("tags.`mlflow.note` IS NULL", vec![clause(Tag, "mlflow.note", IsNull, Value::Null)]),
            ("creation_time > 1000", vec![clause(Attribute, "creation_time", Gt, n(1000.0))]),
            ("last_update_time <= 1e3", vec![clause(Attribute, "last_update_time", Le, n(1000.0))]),
        ];
        for (filter, want) in cases {
            assert_eq!(parse_experiment_filter(filter).as_ref(), Ok(&want), "{filter:?}");
            assert_eq!(parse_experiment_filter(&render_filter(&want)), Ok(want), "{filter:?} round trip");
        }
        let errors = [
            ("metrics.a > 1", "Invalid entity type 'metrics' for experiments"),
            ("params.a = 'x'", "Valid entity types are ('attribute', 'tag', 'tags')"),
            ("run_id = 'x'", "Invalid attribute key 'run_id' specified. Valid keys are 'name', 'creation_time'"),
            ("experiment_id = '1'", "Invalid attribute key 'experiment_id'"),
            ("name > 'x'", "Invalid comparator '>'"),
            ("name = 1", "Expected a quoted string value for attributes"),
            ("creation_time = 'x'", "Expected numeric value type for numeric attribute: creation_time"),
            ("name IN ('a')", "Only the 'run_id' attribute supports comparison with a list"),
            ("name IS NULL", "IS NULL / IS NOT NULL is only supported for tags and params"),
        ];
        for (filter, needle) in errors {
            let m = parse_experiment_filter(filter).expect_err(filter).to_string();
            assert!(m.contains(needle), "{filter:?}: {m:?}");
        }
        // The run grammar knows no experiment names, and the other way round.
        assert!(parse_filter("name = 'x'").is_err());
        assert!(parse_experiment_filter("status = 'x'").is_err());
    }

    #[test]
    fn experiment_matching() {
        let tags: BTreeMap<String, String> = [("group".to_string(), "Vision".to_string())].into();
        let none = BTreeMap::new();
        let vision = ExperimentView { name: "resnet-sweep", creation_time: 10, last_update_time: 20, tags: &tags };
        let other = ExperimentView { name: "Default", creation_time: 5, last_update_time: 5, tags: &none };
        let pick = |filter: &str| -> Vec<&str> {
            let clauses = parse_experiment_filter(filter).expect("filter parses");
            [vision, other].into_iter().filter(|e| matches_experiment(&clauses, e)).map(|e| e.name).collect()
        };
        assert_eq!(pick(""), ["resnet-sweep", "Default"]);
        assert_eq!(pick("name = 'Default'"), ["Default"]);
        assert_eq!(pick("name ILIKE 'RESNET%'"), ["resnet-sweep"]);
        assert_eq!(pick("tags.group = 'Vision'"), ["resnet-sweep"]);
        assert_eq!(pick("tags.group != 'Vision'"), Vec::<&str>::new());
        assert_eq!(pick("tags.group IS NULL"), ["Default"]);
        assert_eq!(pick("creation_time >= 6"), ["resnet-sweep"]);
        assert_eq!(pick("last_update_time = 5 AND name LIKE 'D%'"), ["Default"]);
        // Run clauses name nothing an experiment has.
        assert!(!matches_experiment(&parse_filter("status = 'x'").expect("parses"), &vision));
    }

    #[test]
    fn experiment_order_by() {
        let items: Vec<String> =
            ["name", "experiment_id DESC", "creation_time", "attributes.last_update_time asc"].map(String::from).into();
        let order = parse_experiment_order_by(&items).expect("parses");
        let keys: Vec<(&str, bool)> = order.iter().map(|o| (o.key.as_str(), o.ascending)).collect();
        assert_eq!(
            keys,
            [("name", true), ("experiment_id", false), ("creation_time", true), ("last_update_time", true)]
        );
        for (item, needle) in [
            ("tags.x", "experiments are ordered by 'name', 'experiment_id'"),
            ("metrics.a", "Invalid entity type 'metrics' for experiments"),
            ("start_time", "Invalid attribute key 'start_time'"),
            ("name sideways", "Invalid ordering key"),
        ] {
            let m = parse_experiment_order_by(&[item.to_string()]).expect_err(item).to_string();
            assert!(m.contains(needle), "{item:?}: {m:?}");
        }
    }

    // ----- LIKE ----------------------------------------------------------------------------

    #[test]
    fn like_edge_cases() {
        let yes = [
            ("%", ""),
            ("%", "anything at all"),
            ("%%", ""),
            ("", ""),
            ("_", "é"),
            ("_", "🚀"),
            ("__", "ab"),
            ("a%", "a"),
            ("%a", "bca"),
            ("%b%", "abc"),
            ("a_c", "abc"),
            ("sklearn%", "sklearn.linear_model"),
            ("a.c", "a.c"),
            ("a+c", "a+c"),
            ("(x)*", "(x)*"),
            ("[ab]", "[ab]"),
            ("^$", "^$"),
            ("%", "line\nbreak"),
            ("a_b", "a\nb"),
            ("\\%", "\\anything"),
            ("%_%", "x"),
        ];
        for (p, t) in yes {
            assert!(sql_like(p, t, false), "{p:?} LIKE {t:?}");
        }
        let no = [
            ("", "a"),
            ("_", ""),
            ("_", "ab"),
            ("a", "A"),
            ("a%", "ba"),
            ("%a", "ab"),
            ("a.c", "abc"),
            ("a+c", "aac"),
            ("[ab]", "a"),
            ("\\%", "%"),
            ("%_%", ""),
            ("abc", "abcd"),
            ("abcd", "abc"),
        ];
        for (p, t) in no {
            assert!(!sql_like(p, t, false), "{p:?} NOT LIKE {t:?}");
        }
        assert!(sql_like("%LOGISTIC%", "LogisticRegression", true));
        assert!(!sql_like("%LOGISTIC%", "LogisticRegression", false));
        assert!(sql_like("ÄÖÜ_", "äöüß", true));
        assert!(sql_like("σ", "Σ", true));
        assert!(sql_like("k", "\u{212A}", true), "the Kelvin sign folds to k");
    }

    #[test]
    fn like_is_fast_on_adversarial_patterns() {
        let a10k = "a".repeat(10_000);
        let started = Instant::now();
        assert!(!sql_like("%a%a%a%a%a%b", &a10k, false));
        assert!(sql_like("%a%a%a%a%a%", &a10k, false));
        assert!(!sql_like("%aaaaaaaaaaaaaaaaaaab", &a10k, true));
        assert!(!sql_like(&format!("{}b", "%a".repeat(1_000)), &a10k, false));
        assert!(!sql_like(&format!("{}b", "_%".repeat(2_000)), &a10k, false));
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    // ----- sorting -------------------------------------------------------------------------

    fn mlflow_sort_runs() -> Vec<Run> {
        vec![
            Run::new("9").status("FAILED").start(0).metric("key1", 121.0).param("my_param", "A"),
            Run::new("8").start(1).metric("key1", 123.0).param("my_param", "A").tag("tag1", "C"),
            Run::new("7").status("FAILED").start(1).metric("key1", 125.0).param("my_param", "B").tag("tag1", "D"),
        ]
    }

    /// MLflow's `test_correct_sorting`; run ids 9, 8, 7 are its runs 0, 1, 2.
    #[test]
    fn mlflow_correct_sorting() {
        let runs = mlflow_sort_runs();
        let cases: [(&[&str], [&str; 3]); 13] = [
            (&[], ["7", "8", "9"]),
            (&["tags.noSuchTag"], ["7", "8", "9"]),
            (&["attributes.status"], ["7", "9", "8"]),
            (&["attributes.start_time"], ["9", "7", "8"]),
            (&["metrics.key1 asc"], ["9", "8", "7"]),
            (&["metrics.\"key1\"  desc"], ["7", "8", "9"]),
            (&["params.my_param"], ["8", "9", "7"]),
            (&["params.my_param aSc", "attributes.status  ASC"], ["9", "8", "7"]),
            (&["params.my_param", "attributes.status DESC"], ["8", "9", "7"]),
            (&["params.my_param DESC", "attributes.status   DESC"], ["7", "8", "9"]),
            (&["params.`my_param` DESC", "attributes.status DESC"], ["7", "8", "9"]),
            (&["tags.tag1"], ["8", "7", "9"]),
            (&["tags.tag1    DESC"], ["7", "8", "9"]),
        ];
        for (order_by, want) in cases {
            assert_eq!(sorted(&runs, order_by), want, "{order_by:?}");
        }
    }

    /// MLflow's `test_order_by_metric_with_nans_infs_nones`: NaN then absent go last both ways.
    #[test]
    fn nan_and_absent_metrics_sort_last_in_both_directions() {
        let values = ["nan", "inf", "-inf", "-1000", "0", "1000", "None"];
        let runs: Vec<Run> = values
            .iter()
            .map(|v| match v.parse::<f64>() {
                Ok(x) => Run::new(v).metric("x", x),
                Err(_) => Run::new(v),
            })
            .collect();
        assert_eq!(sorted(&runs, &["metrics.x asc"]), ["-inf", "-1000", "0", "1000", "inf", "nan", "None"]);
        assert_eq!(sorted(&runs, &["metrics.x desc"]), ["inf", "1000", "0", "-1000", "-inf", "nan", "None"]);
    }

    #[test]
    fn default_order_and_absent_attributes() {
        let runs = [Run::new("b").start(5), Run::new("a").start(5), Run::new("c").start(9), Run::new("d").start(1)];
        assert_eq!(sorted(&runs, &[]), ["c", "a", "b", "d"]);
        // start_time ASC overrides the default direction; run_id still breaks the tie.
        assert_eq!(sorted(&runs, &["start_time ASC"]), ["d", "a", "b", "c"]);
        let runs = [Run::new("x").end(None), Run::new("y").end(Some(3)), Run::new("z").end(Some(2))];
        assert_eq!(sorted(&runs, &["end_time"]), ["z", "y", "x"]);
        assert_eq!(sorted(&runs, &["end_time DESC"]), ["y", "z", "x"]);
        // Strings compare by code point, params as text ("10" < "9").
        let runs = [Run::new("p").param("n", "9"), Run::new("q").param("n", "10"), Run::new("r").param("n", "é")];
        assert_eq!(sorted(&runs, &["params.n"]), ["q", "p", "r"]);
    }

    // ----- paging --------------------------------------------------------------------------

    #[test]
    fn page_tokens_are_mlflows() {
        // Made by Python: base64.b64encode(json.dumps({"offset": N}).encode()).
        assert_eq!(page_token(1), "eyJvZmZzZXQiOiAxfQ==");
        assert_eq!(page_token(1000), "eyJvZmZzZXQiOiAxMDAwfQ==");
        assert_eq!(parse_page_token("eyJvZmZzZXQiOiAxfQ=="), Ok(1));
        assert_eq!(parse_page_token("eyJvZmZzZXQiOiAxfQ"), Ok(1), "padding may be lost");
        assert_eq!(parse_page_token(""), Ok(0));
        assert_eq!(parse_page_token(&STANDARD.encode("{\"offset\": \"25\"}")), Ok(25));
        assert_eq!(parse_page_token(&page_token(0)), Ok(0));
    }

    #[test]
    fn bad_page_tokens() {
        let cases = [
            (STANDARD.encode("{}"), "Invalid page token, parsed value={}"),
            (STANDARD.encode("{\"offset\": \"a\"}"), "Invalid page token, parsed value="),
            (STANDARD.encode("{\"offsoot\": 7}"), "Invalid page token, parsed value="),
            (STANDARD.encode("{\"offset\": -1}"), "Invalid page token"),
            (STANDARD.encode("{\"offset\": 1.5}"), "Invalid page token"),
            (STANDARD.encode("[1]"), "Invalid page token"),
            (STANDARD.encode("not json"), "Invalid page token, decoded value=not json"),
            (STANDARD.encode("\u{0}\n\u{1b}"), "Invalid page token, decoded value="),
            ("not base64".to_string(), "could not base64-decode"),
            ("é".to_string(), "could not base64-decode"),
        ];
        for (token, needle) in cases {
            let e = parse_page_token(&token).expect_err(&token);
            let m = e.to_string();
            assert!(m.contains(needle) && !m.contains('\n'), "{token:?}: {m:?}");
            assert_eq!(SearchError::ERROR_CODE, "INVALID_PARAMETER_VALUE");
        }
    }

    /// MLflow's `test_pagination` over three runs.
    #[test]
    fn mlflow_pagination() {
        // (offset in the token, max_results, the page, offset in the next token)
        type Case = (Option<usize>, usize, Range<usize>, Option<usize>);
        let cases: [Case; 11] = [
            (None, 1, 0..1, Some(1)),
            (None, 2, 0..2, Some(2)),
            (None, 3, 0..3, None),
            (None, 5, 0..3, None),
            (Some(1), 1, 1..2, Some(2)),
            (Some(1), 2, 1..3, None),
            (Some(1), 3, 1..3, None),
            (Some(2), 1, 2..3, None),
            (Some(2), 2, 2..3, None),
            (Some(2), 0, 2..2, Some(2)),
            (Some(3), 1, 3..3, None),
        ];
        for (token, max, range, next) in cases {
            let token = token.map(page_token).unwrap_or_default();
            assert_eq!(paginate(3, &token, max), Ok((range, next.map(page_token))), "{token} {max}");
        }
        assert_eq!(paginate(3, &page_token(99), 10), Ok((3..3, None)));
        assert_eq!(paginate(3, "", usize::MAX), Ok((0..3, None)));
        assert!(paginate(3, "garbage!", 1).is_err());
    }

    // ----- latest metric -------------------------------------------------------------------

    #[test]
    fn latest_metric_is_the_greatest_step_then_timestamp_then_value() {
        assert_eq!(latest_metric([]), None);
        assert_eq!(latest_metric([(0, 5, 1.0)]), Some(1.0));
        assert_eq!(latest_metric([(2, 1, 0.2), (1, 9, 0.9), (0, 10, 1.0)]), Some(0.2), "step first");
        assert_eq!(latest_metric([(1, 1, 0.5), (1, 3, 0.1), (1, 2, 0.9)]), Some(0.1), "then timestamp");
        assert_eq!(latest_metric([(1, 1, 0.5), (1, 1, 0.7), (1, 1, 0.6)]), Some(0.7), "then value");
        assert_eq!(latest_metric([(-1, 0, 1.0), (-2, 0, 2.0)]), Some(1.0), "negative steps");
    }

    #[test]
    fn latest_metric_treats_nan_as_zero_and_infinity_as_max_when_comparing() {
        let latest = latest_metric([(1, 1, 0.5), (1, 1, f64::NAN)]);
        assert_eq!(latest, Some(0.5), "NaN counts as 0 < 0.5");
        let latest = latest_metric([(1, 1, -0.5), (1, 1, f64::NAN)]);
        assert!(latest.is_some_and(f64::is_nan), "NaN counts as 0 > -0.5: {latest:?}");
        let latest = latest_metric([(1, 1, f64::NAN), (1, 1, 0.0)]);
        assert!(latest.is_some_and(f64::is_nan), "a tie keeps the first: {latest:?}");
        assert_eq!(latest_metric([(1, 1, f64::INFINITY), (1, 1, f64::MAX)]), Some(f64::INFINITY));
        assert_eq!(latest_metric([(1, 1, 1.0), (1, 1, f64::INFINITY)]), Some(f64::INFINITY));
        assert_eq!(latest_metric([(1, 1, f64::NEG_INFINITY), (1, 1, -1.0)]), Some(-1.0));
        let latest = latest_metric([(0, 0, 3.0), (2, 0, f64::NAN)]);
        assert!(latest.is_some_and(f64::is_nan), "a later step wins even when NaN");
    }

    // ----- canonical text ------------------------------------------------------------------

    #[test]
    fn display_writes_the_canonical_form() {
        let cases = [
            ("metric.acc >= 0.94", "metrics.acc >= 0.94"),
            ("params.\"m\"!=\"tf\"", "params.m != 'tf'"),
            ("tags.`mlflow.runName` = 'x'", "tags.mlflow.runName = 'x'"),
            ("metrics.`val loss` < .5", "metrics.`val loss` < 0.5"),
            ("metrics.\"2019-04-02 error rate\" < 1", "metrics.`2019-04-02 error rate` < 1.0"),
            ("params.`a``b` = 'x'", "params.\"a`b\" = 'x'"),
            ("params.\"a`\"\"b\" = 'x'", "params.`a``\"b` = 'x'"),
            ("params.m = 'it''s'", "params.m = \"it's\""),
            ("params.m = 'it''s \"x\"'", "params.m = 'it''s \"x\"'"),
            ("created > 1e3", "attributes.start_time > 1000.0"),
            ("attr.`Run Name` like 'a%'", "attributes.run_name LIKE 'a%'"),
            ("run_id not in ('a',\"b\")", "attributes.run_id NOT IN ('a', 'b')"),
            ("dataset.context in ('train')", "datasets.context IN ('train')"),
            ("tag.x is not null", "tags.x IS NOT NULL"),
            ("metrics.m < 1e999", "metrics.m < 1e999"),
            ("metrics.m > -1e999", "metrics.m > -1e999"),
            ("metrics.m > 1e-7", "metrics.m > 1e-7"),
            ("metrics.损失 <= -0.0", "metrics.损失 <= -0.0"),
        ];
        for (input, want) in cases {
            let clause = parse1(input);
            assert_eq!(clause.to_string(), want, "{input:?}");
            assert_eq!(parse1(want), clause, "{want:?} reads back");
        }
        let both = parse_filter("metrics.a > 1 and tags.b = 'c'").expect("parses");
        assert_eq!(render_filter(&both), "metrics.a > 1.0 AND tags.b = 'c'");
        assert_eq!(render_filter(&[]), "");
        let order = OrderBy { entity: Metric, key: "val loss".into(), ascending: false };
        assert_eq!(order.to_string(), "metrics.`val loss` DESC");
        assert_eq!(parse_order_by_item(&order.to_string()), Ok(order));
    }

    // ----- properties ----------------------------------------------------------------------

    fn any_key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
            "[a-z]{1,4}(\\.[a-z_]{1,4}){1,3}",
            "[ -~]{1,10}",
            "\\PC{1,6}",
            "[`\"'\n\t%_ .a]{1,6}",
        ]
    }

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof!["[ -~]{0,10}", "\\PC{0,6}", "[`\"'\n%_\\\\]{0,5}", any::<String>()]
    }

    fn any_number() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("no NaN in filters", |f| !f.is_nan()),
            -1e6..1e6f64,
            (-100i64..100).prop_map(|i| i as f64),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(f64::MIN_POSITIVE / 4.0),
        ]
    }

    fn any_clause() -> impl Strategy<Value = Clause> {
        let num_cmp = || prop::sample::select(vec![Eq, Ne, Lt, Le, Gt, Ge]);
        let text_cmp = || prop::sample::select(vec![Eq, Ne, Like, ILike]);
        let in_cmp = || prop::sample::select(vec![In, NotIn]);
        let param_or_tag = || prop::sample::select(vec![Param, Tag]);
        let items = || prop::collection::vec(any_text(), 1..4);
        prop_oneof![
            (any_key(), num_cmp(), any_number()).prop_map(|(k, c, v)| clause(Metric, &k, c, Value::Number(v))),
            (param_or_tag(), any_key(), text_cmp(), any_text()).prop_map(|(e, k, c, v)| clause(
                e,
                &k,
                c,
                Value::Str(v)
            )),
            (param_or_tag(), any_key(), prop::sample::select(vec![IsNull, IsNotNull])).prop_map(|(e, k, c)| clause(
                e,
                &k,
                c,
                Value::Null
            )),
            (prop::sample::select(STRING_ATTRIBUTES.to_vec()), text_cmp(), any_text()).prop_map(|(k, c, v)| clause(
                Attribute,
                k,
                c,
                Value::Str(v)
            )),
            (in_cmp(), items()).prop_map(|(c, v)| clause(Attribute, "run_id", c, Value::List(v))),
            (prop::sample::select(NUMERIC_ATTRIBUTES.to_vec()), num_cmp(), any_number()).prop_map(|(k, c, v)| clause(
                Attribute,
                k,
                c,
                Value::Number(v)
            )),
            (prop::sample::select(DATASET_KEYS.to_vec()), text_cmp(), any_text()).prop_map(|(k, c, v)| clause(
                Dataset,
                k,
                c,
                Value::Str(v)
            )),
            (prop::sample::select(DATASET_KEYS.to_vec()), in_cmp(), items()).prop_map(|(k, c, v)| clause(
                Dataset,
                k,
                c,
                Value::List(v)
            )),
        ]
    }

    /// Filter-shaped text: grammar pieces glued in any order, so parsing goes deep.
    fn token_soup() -> impl Strategy<Value = String> {
        let tokens = vec![
            "metrics",
            "params",
            "tags",
            "attributes",
            "datasets",
            "run",
            "attr",
            "Metric",
            ".",
            "`a b`",
            "\"k\"",
            "acc",
            "run_id",
            "start_time",
            "created",
            "status",
            "name",
            "context",
            "=",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "<>",
            "==",
            "LIKE",
            "ilike",
            "IN",
            "NOT",
            "IS",
            "NULL",
            "AND",
            "OR",
            "(",
            ")",
            ",",
            "'x'",
            "'it''s'",
            "\"v\"",
            "1",
            "-0.5",
            ".5",
            "1e-3",
            "1e999",
            "'%a_'",
            ";",
            "`",
            "'",
            "\"",
            "é",
            "損",
            "\n",
            "-",
            "+",
            "e",
            "ASC",
            "desc",
        ];
        prop::collection::vec((prop::sample::select(tokens), prop::sample::select(vec!["", " ", "\t"])), 0..14)
            .prop_map(|v| v.into_iter().map(|(t, sep)| format!("{t}{sep}")).collect())
    }

    /// Clause-shaped text: identifiers, comparators and values from lists of valid and invalid
    /// spellings, mostly well typed and joined by AND, so many filters parse and many nearly do.
    fn clause_soup() -> impl Strategy<Value = String> {
        let pick = |v: &[&'static str]| prop::sample::select(v.to_vec());
        let numeric_lhs = ["metrics.acc", "metric.`val loss`", "start_time", "created", "attributes.end_time"];
        let numeric_ops = ["=", "!=", "<", "<=", ">", ">=", "<>"];
        let numbers = ["1", "-0.5", ".5", "+2", "1e-3", "1E+3", "1e999", "5.", "'1'", "1x"];
        let text_lhs = [
            "params.lr",
            "tags.\"mlflow.runName\"",
            "`tags`.x",
            "tags.mlflow.runName",
            "params.学习率",
            "status",
            "`Run Name`",
            "datasets.context",
            "dataset.name",
            "run_id",
            "Metrics.x",
            "metrics.2x",
        ];
        let text_ops = ["=", "!=", "LIKE", "ilike", "IS NULL", "is not null", "NOT LIKE", ">"];
        let texts = ["'x'", "\"y\"", "'it''s'", "'%a_'", "''", "\"say \"\"hi\"\"\"", "LR", "'open", "1"];
        let list_lhs = ["run_id", "attr.run_id", "datasets.digest", "run_name", "params.p"];
        let list_ops = ["IN", "not in", "NOT  IN", "="];
        let lists = ["('a', 'b')", "('a')", "(\"a\",'b' )", "()", "('a',)", "(1)", "'a'"];
        let spaces = || prop::sample::select(vec!["", " ", "  ", "\n"]);
        let shaped = |l, o, v| {
            (pick(l), spaces(), pick(o), spaces(), pick(v)).prop_map(|(l, s1, o, s2, v)| format!("{l}{s1}{o}{s2}{v}"))
        };
        let one = prop_oneof![
            shaped(&numeric_lhs, &numeric_ops, &numbers),
            shaped(&text_lhs, &text_ops, &texts),
            shaped(&list_lhs, &list_ops, &lists),
        ];
        let joins = prop_oneof![8 => pick(&[" AND ", " and ", " And ", "\tAND\n"]), 1 => pick(&[" OR ", " ", " AND AND ", ";"])];
        (prop::collection::vec((one, joins), 1..4), spaces()).prop_map(|(parts, lead)| {
            let mut text = lead.to_string();
            for (i, (clause, join)) in parts.iter().enumerate() {
                if i > 0 {
                    text.push_str(join);
                }
                text.push_str(clause);
            }
            text
        })
    }

    /// A direct transcription of LIKE's meaning, exponential but fine on short strings.
    fn like_reference(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| like_reference(rest, &t[i..])),
            Some(('_', rest)) => !t.is_empty() && like_reference(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && like_reference(rest, &t[1..]),
        }
    }

    fn any_run() -> impl Strategy<Value = Run> {
        let metric = prop_oneof![Just(None), Just(Some(f64::NAN)), (-3i32..3).prop_map(|i| Some(f64::from(i)))];
        let text = prop_oneof![Just(None), "[ab]{0,2}".prop_map(Some)];
        ("[a-d]", 0i64..3, prop::option::of(0i64..3), metric, text.clone(), text).prop_map(
            |(id, start, end, m, p, t)| {
                let mut run = Run::new(&id).start(start).end(end);
                if let Some(m) = m {
                    run = run.metric("m", m);
                }
                if let Some(p) = p {
                    run = run.param("p", &p);
                }
                if let Some(t) = t {
                    run = run.tag("t", &t);
                }
                run
            },
        )
    }

    fn any_order() -> impl Strategy<Value = Vec<OrderBy>> {
        let one = (prop::sample::select(vec!["metrics.m", "params.p", "tags.t", "end_time", "run_id"]), any::<bool>())
            .prop_map(|(ident, asc)| {
                parse_order_by_item(&format!("{ident} {}", if asc { "ASC" } else { "DESC" })).expect("valid item")
            });
        prop::collection::vec(one, 0..3)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn parsing_arbitrary_text_never_panics_and_errors_are_one_line(text in any::<String>()) {
            for result in [parse_filter(&text).map(|_| ()), parse_order_by_item(&text).map(|_| ())] {
                if let Err(e) = result {
                    prop_assert!(!e.message().is_empty() && !e.message().chars().any(char::is_control), "{:?}", e);
                }
            }
        }

        #[test]
        fn what_parses_renders_to_text_that_parses_the_same(text in prop_oneof![token_soup(), clause_soup()]) {
            match parse_filter(&text) {
                Ok(clauses) => {
                    let again = parse_filter(&render_filter(&clauses));
                    prop_assert_eq!(again, Ok(clauses));
                }
                Err(e) => prop_assert!(!e.message().chars().any(char::is_control), "{:?}", e),
            }
            if let Ok(order) = parse_order_by_item(&text) {
                prop_assert_eq!(parse_order_by_item(&order.to_string()), Ok(order));
            }
        }

        #[test]
        fn clauses_round_trip_through_their_text(clauses in prop::collection::vec(any_clause(), 1..4)) {
            let text = render_filter(&clauses);
            prop_assert_eq!(parse_filter(&text), Ok(clauses), "{}", text);
        }

        #[test]
        fn order_by_round_trips(entity in prop::sample::select(vec![Metric, Param, Tag]), key in any_key(), ascending in any::<bool>()) {
            let order = OrderBy { entity, key, ascending };
            prop_assert_eq!(parse_order_by_item(&order.to_string()), Ok(order.clone()), "{}", order);
        }

        #[test]
        fn like_agrees_with_the_reference(pattern in "[ab%_]{0,8}", text in "[ab]{0,10}") {
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            prop_assert_eq!(sql_like(&pattern, &text, false), like_reference(&p, &t), "{:?} LIKE {:?}", pattern, text);
        }

        #[test]
        fn ilike_agrees_with_the_reference_on_folded_text(pattern in "[aAbBéÉ%_]{0,7}", text in "[aAbBéÉ]{0,8}") {
            let p: Vec<char> = pattern.chars().map(fold_case).collect();
            let t: Vec<char> = text.chars().map(fold_case).collect();
            prop_assert_eq!(sql_like(&pattern, &text, true), like_reference(&p, &t), "{:?} ILIKE {:?}", pattern, text);
        }

        #[test]
        fn compare_is_a_total_order(runs in prop::collection::vec(any_run(), 1..6), order in any_order()) {
            let views: Vec<RunView<'_>> = runs.iter().map(Run::view).collect();
            for a in &views {
                prop_assert_eq!(compare(&order, a, a), Ordering::Equal);
                for b in &views {
                    prop_assert_eq!(compare(&order, a, b), compare(&order, b, a).reverse());
                    for c in &views {
                        if compare(&order, a, b) != Ordering::Greater && compare(&order, b, c) != Ordering::Greater {
                            prop_assert_ne!(compare(&order, a, c), Ordering::Greater);
                        }
                    }
                }
            }
        }

        #[test]
        fn page_tokens_round_trip(offset in any::<usize>()) {
            prop_assert_eq!(parse_page_token(&page_token(offset)), Ok(offset));
        }

        #[test]
        fn is_null_and_is_not_null_split_runs(run in any_run()) {
            let null = parse_filter("params.p IS NULL").expect("parses");
            let not_null = parse_filter("params.p IS NOT NULL").expect("parses");
            prop_assert_ne!(matches(&null, &run.view()), matches(&not_null, &run.view()));
        }
    }
}
