//! How a run, an experiment or a registry item answers parsed clauses, and how runs sort.

use super::*;

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
pub(super) fn fold_case(c: char) -> char {
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
