//! Tests of the search grammar, matching, ordering and paging.

use super::matching::fold_case;
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
    assert_eq!(parse1("datasets.digest NOT IN ('d1', 'd2')"), clause(Dataset, "digest", NotIn, list(&["d1", "d2"])));
    assert_eq!(parse1("attributes.created > 1670628787527"), clause(Attribute, "start_time", Gt, n(1670628787527.0)));
    assert_eq!(parse1("attributes.Created > 1"), clause(Attribute, "start_time", Gt, n(1.0)));
    for alias in ["run_name", "`run name`", "`Run name`", "`Run Name`", "\"run name\""] {
        assert_eq!(
            parse1(&format!("attributes.{alias} ILIKE \"%alpha%\"")),
            clause(Attribute, "run_name", ILike, s("%alpha%")),
            "{alias}"
        );
    }
    assert_eq!(parse1("tags.`mlflow.user` = ''"), clause(Tag, "mlflow.user", Eq, s("")));
    assert_eq!(parse1("metrics.\"2019-04-02 error rate\" < 1"), clause(Metric, "2019-04-02 error rate", Lt, n(1.0)));
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
    assert!(filter_err("metrics.A > 0.1 OR params.B = 'LR'").starts_with("Invalid clause(s) in filter string: 'OR'"));
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
    assert_filter_err("params.a = 1", "Expected a quoted string value for parameter (e.g. 'my-value'). Got value 1");
    assert_filter_err("params.a = ('x')", "Expected a quoted string value for parameter");
    assert_filter_err("tags.a IN ('x')", "Expected a quoted string value for tag");
    // Numeric attributes.
    assert_filter_err("attributes.start_time = 'now'", "Expected numeric value type for numeric attribute: start_time");
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
        Run::new("hi2").metric("key1", 123.0).param("my_param", "A").tag("tag1", "C").dataset("name1", "digest1", ""),
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
    let runs: Vec<Run> = ["a", "b", "c"].iter().enumerate().map(|(i, id)| Run::new(id).end(Some(i as i64))).collect();
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
    assert_eq!(keys, [("name", true), ("experiment_id", false), ("creation_time", true), ("last_update_time", true)]);
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
        (param_or_tag(), any_key(), text_cmp(), any_text()).prop_map(|(e, k, c, v)| clause(e, &k, c, Value::Str(v))),
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
    let joins =
        prop_oneof![8 => pick(&[" AND ", " and ", " And ", "\tAND\n"]), 1 => pick(&[" OR ", " ", " AND AND ", ";"])];
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
    ("[a-d]", 0i64..3, prop::option::of(0i64..3), metric, text.clone(), text).prop_map(|(id, start, end, m, p, t)| {
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
    })
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
