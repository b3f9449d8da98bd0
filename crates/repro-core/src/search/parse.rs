//! The filter and `order_by` parsers: a cursor over the text, clauses checked as they are read.

use super::*;

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
