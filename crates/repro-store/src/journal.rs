//! The facts journal: every row repro writes about a run (its `runs` row, metric points,
//! params, tags, dataset inputs, model outputs, tracking state, replay verdict) and about the
//! store (experiments, snapshots, datasets, environments, tokens, artifacts, logged models,
//! code bundles, fsck verdicts) is also appended — as the row it left behind, or its removal —
//! to a hash-chained journal: one chain per run (`run/<id>`), one for the store (`store`).
//!
//! `repro fsck` re-derives every chain's hashes, replays the chains, and compares what they
//! say the tables hold with what the tables hold: a row edited, deleted or inserted behind
//! repro's back is named by run, table and key. Two tables are caches and are rebuilt rather
//! than journaled (`latest_metrics` from `metrics`; `tree_cache`, checked against the
//! manifests it points at); the registry has its own chain and anchor.
//!
//! Why row images and not a digest per run: a digest can say *that* a run changed, the
//! images say *what* changed; and a running run's rows are covered as they land, which a
//! digest computed at the end cannot do. A finished run's record holds the head of its
//! chain (`RunRecord::facts`), so its lineage digest — and every signature over it — covers
//! every fact recorded up to its end.
//!
//! What the journal cannot do: someone who rewrites a chain *and* its rows consistently (with
//! write access to the database and the knowledge of this format) is not detected by fsck
//! alone; a finished run's lineage and the signatures over it still expose such a rewrite.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use crate::db::{Db, DbResult, Row, Val};

/// The scope of the store's own facts.
pub const STORE_SCOPE: &str = "store";

/// The journal scope of a run.
pub fn run_scope(run: &str) -> String {
    format!("run/{run}")
}

/// One journaled table: its key, its other columns, and whose chain its rows belong to.
pub struct Table {
    pub name: &'static str,
    /// For run tables the first key column is the run id.
    pub key: &'static [&'static str],
    pub values: &'static [&'static str],
    /// Columns kept in the journal as a digest: large text covered elsewhere (a run's
    /// record is also an object named by its lineage).
    pub digested: &'static [&'static str],
    /// Rows belong to the chain of the run in `key[0]`; else to the store's chain.
    pub run: bool,
    /// Many rows per key (metric points), compared as a multiset.
    pub points: bool,
}

const fn run_table(name: &'static str, key: &'static [&'static str], values: &'static [&'static str]) -> Table {
    Table { name, key, values, digested: &[], run: true, points: false }
}

const fn store_table(name: &'static str, key: &'static [&'static str], values: &'static [&'static str]) -> Table {
    Table { name, key, values, digested: &[], run: false, points: false }
}

/// Journaled tables added after the journal itself (schema version 8 on).
const AFTER_THE_JOURNAL: &[&str] = &["run_model_inputs", "logged_model_metrics"];

/// Every journaled table.
pub const TABLES: &[Table] = &[
    Table {
        name: "runs",
        key: &["id"],
        values: &[
            "name",
            "status",
            "exit_code",
            "started_ms",
            "ended_ms",
            "host",
            "pid",
            "pid_start",
            "record",
            "lineage",
            "record_object",
        ],
        digested: &["record"],
        run: true,
        points: false,
    },
    Table {
        name: "metrics",
        key: &["run_id", "key"],
        values: &["value", "step", "timestamp_ms", "is_nan"],
        digested: &[],
        run: true,
        points: true,
    },
    run_table(
        "tracking",
        &["run_id"],
        &["experiment_id", "user_id", "lifecycle_stage", "artifact_uri", "deleted_time", "origin"],
    ),
    run_table("run_params", &["run_id", "key"], &["value"]),
    run_table("run_tags", &["run_id", "key"], &["value"]),
    run_table("run_inputs", &["run_id", "name", "digest"], &["source_type", "source", "schema", "profile", "tags"]),
    run_table("run_model_outputs", &["run_id", "model_id", "step"], &[]),
    run_table("run_model_inputs", &["run_id", "model_id"], &[]),
    Table {
        name: "logged_model_metrics",
        key: &["run_id", "model_id", "key"],
        values: &["value", "is_nan", "step", "timestamp_ms", "dataset_name", "dataset_digest"],
        digested: &[],
        run: true,
        points: true,
    },
    run_table("replays", &["replay_id"], &["original_id", "verdict", "report", "created_ms"]),
    store_table(
        "experiments",
        &["experiment_id"],
        &["name", "artifact_location", "lifecycle_stage", "creation_time", "last_update_time"],
    ),
    store_table("experiment_tags", &["experiment_id", "key"], &["value"]),
    store_table("snapshots", &["digest"], &["kind", "files", "bytes", "stored", "created_ms"]),
    store_table("datasets", &["name", "version"], &["snapshot", "source", "reference", "created_ms"]),
    store_table("environments", &["name", "version"], &["identity", "spec", "kind", "source", "created_ms"]),
    store_table("code_bundles", &["git_commit"], &["object", "created_ms"]),
    store_table("tokens", &["id"], &["hash", "role", "name", "created_ms", "email", "approver_keyid", "approver_key"]),
    store_table("artifacts", &["path"], &["object", "size", "created_ms"]),
    store_table(
        "logged_models",
        &["model_id"],
        &[
            "experiment_id",
            "name",
            "model_type",
            "source_run_id",
            "status",
            "status_message",
            "creator_id",
            "artifact_uri",
            "creation_ms",
            "updated_ms",
            "params",
            "tags",
            "deleted",
        ],
    ),
    store_table("fsck_results", &["id"], &["at_ms", "host", "clean", "problems"]),
];

/// Tables that are not journaled, and why: what fsck does instead.
pub const NOT_JOURNALED: &[(&str, &str)] = &[
    ("latest_metrics", "a cache of each metric's latest point: fsck rebuilds it from metrics"),
    ("tree_cache", "a stat cache: fsck drops rows that disagree with the manifest they name"),
    ("tree_cache_chunks", "the stat cache's chunks: fsck drops a root's rows when they disagree with its manifest"),
    ("registry_events", "the registry's own hash chain, anchored in registry.head"),
    ("journal", "the journal itself: each entry's hash and its chain are re-derived"),
    ("repro_schema", "PostgreSQL's schema version: fsck checks it is the version this repro knows"),
];

pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// A value as the journal keeps it: integers and text as themselves, everything else tagged
/// so that no text can pass for a number or a blob.
fn encode(v: &Val, digested: bool) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Int(i) => json!(i),
        // SQLite stores an integral REAL as an integer and reads it back as +0.0 for -0.0.
        Val::Real(f) => json!(["f", format!("{:016x}", if *f == 0.0 { 0f64 } else { *f }.to_bits())]),
        Val::Text(s) if digested => json!(["h", blake3::hash(s.as_bytes()).to_hex().to_string()]),
        Val::Text(s) => json!(s),
        Val::Blob(b) => json!(["b", b.iter().map(|x| format!("{x:02x}")).collect::<String>()]),
    }
}

impl Table {
    fn encode_values(&self, vals: &[Val]) -> Vec<Value> {
        self.values.iter().zip(vals).map(|(c, v)| encode(v, self.digested.contains(c))).collect()
    }

    /// The key as journaled: a run table's run id is the scope, not repeated.
    fn encode_key(&self, key: &[Val]) -> Vec<Value> {
        let skip = usize::from(self.run);
        key.iter().skip(skip).map(|v| encode(v, false)).collect()
    }

    fn scope_of(&self, key: &[Val]) -> String {
        match (self.run, key.first()) {
            (true, Some(Val::Text(id))) => run_scope(id),
            (true, Some(other)) => run_scope(&text_of(other)),
            _ => STORE_SCOPE.to_string(),
        }
    }

    fn select(&self) -> String {
        let cols: Vec<&str> = self.key.iter().chain(self.values.iter()).copied().collect();
        format!("SELECT {} FROM {}", cols.join(", "), self.name)
    }

    fn key_where(&self) -> String {
        self.key.iter().enumerate().map(|(i, k)| format!("{k} = ?{}", i + 1)).collect::<Vec<_>>().join(" AND ")
    }
}

fn text_of(v: &Val) -> String {
    match v {
        Val::Null => "NULL".into(),
        Val::Int(i) => i.to_string(),
        Val::Real(f) => f.to_string(),
        Val::Text(s) => s.clone(),
        Val::Blob(b) => format!("{} bytes", b.len()),
    }
}

/// One operation of an entry, as JSON: `["s", table, key, values]` (the row now holds
/// these values), `["d", table, key]` (the row is gone), `["a", table, key, values]` (one
/// more point).
fn op(kind: &str, table: &Table, key: &[Val], values: Option<Vec<Value>>) -> Value {
    let mut v = vec![json!(kind), json!(table.name), Value::Array(table.encode_key(key))];
    if let Some(values) = values {
        v.push(Value::Array(values));
    }
    Value::Array(v)
}

/// Entries being written in one transaction, by scope.
#[derive(Default)]
pub struct Journal {
    entries: Vec<(String, String, Vec<Value>)>,
}

fn known(name: &str) -> &'static Table {
    table(name).unwrap_or_else(|| panic!("table {name} is not journaled; add it to journal::TABLES"))
}

impl Journal {
    pub fn new() -> Journal {
        Journal::default()
    }

    fn ops(&mut self, scope: String, kind: &str) -> &mut Vec<Value> {
        let at = match self.entries.iter().position(|(s, _, _)| *s == scope) {
            Some(i) => i,
            None => {
                self.entries.push((scope, kind.to_string(), Vec::new()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[at].2
    }

    /// Records the row of `table` with `key` as it now is (or its absence), read back.
    pub fn touch(&mut self, db: &Db, kind: &str, table_name: &str, key: &[Val]) -> DbResult<()> {
        let t = known(table_name);
        debug_assert!(!t.points, "points are added, not touched");
        let sql = format!("SELECT {} FROM {} WHERE {}", value_list(t), t.name, t.key_where());
        let rows = db.query_rows(&sql, key.to_vec())?;
        let o = match rows.first() {
            Some(r) => op("s", t, key, Some(t.encode_values(&row_vals(r, t.values.len())?))),
            None => op("d", t, key, None),
        };
        self.ops(t.scope_of(key), kind).push(o);
        Ok(())
    }

    /// Records every row of `table` that belongs to `run`, as it now is.
    pub fn touch_run_rows(&mut self, db: &Db, kind: &str, table_name: &str, run: &str) -> DbResult<()> {
        let t = known(table_name);
        let sql = format!("{} WHERE {} = ?1", t.select(), t.key[0]);
        for r in db.query_rows(&sql, [run])? {
            let all = row_vals(&r, t.key.len() + t.values.len())?;
            let (key, values) = all.split_at(t.key.len());
            let o = op(if t.points { "a" } else { "s" }, t, key, Some(t.encode_values(values)));
            self.ops(run_scope(run), kind).push(o);
        }
        Ok(())
    }

    /// Records a row written with exactly these values (when reading it back would only
    /// cost a query: params and tags of a batch).
    pub fn set(&mut self, kind: &str, table_name: &str, key: &[Val], values: &[Val]) {
        let t = known(table_name);
        let o = op("s", t, key, Some(t.encode_values(values)));
        self.ops(t.scope_of(key), kind).push(o);
    }

    /// Records one more point of a points table.
    pub fn add(&mut self, kind: &str, table_name: &str, key: &[Val], values: &[Val]) {
        let t = known(table_name);
        let o = op("a", t, key, Some(t.encode_values(values)));
        self.ops(t.scope_of(key), kind).push(o);
    }

    /// Records that a row is gone.
    pub fn delete(&mut self, kind: &str, table_name: &str, key: &[Val]) {
        let t = known(table_name);
        let o = op("d", t, key, None);
        self.ops(t.scope_of(key), kind).push(o);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(|(_, _, ops)| ops.is_empty())
    }

    /// Appends one entry per scope, chained to that scope's head. Must run inside the
    /// write transaction that made the changes; takes each scope's lock first, so two
    /// writers never append to one chain at once.
    pub fn append(self, db: &Db, at_ms: i64) -> DbResult<()> {
        for (scope, kind, ops) in self.entries {
            if ops.is_empty() {
                continue;
            }
            db.lock_key(&scope)?;
            let head = head(db, &scope)?;
            let (seq, prev) = match head {
                Some((seq, hash)) => (seq + 1, Some(hash)),
                None => (1, None),
            };
            let body = serde_json::to_string(&ops).expect("journal operations serialize");
            let hash = entry_hash(&scope, seq, at_ms, &kind, &body, prev.as_deref());
            db.execute(
                "INSERT INTO journal (scope, seq, at_ms, kind, body, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                crate::db::params![scope, seq, at_ms, kind, body, prev, hash],
            )?;
        }
        Ok(())
    }
}

fn value_list(t: &Table) -> String {
    if t.values.is_empty() {
        // A table that is all key: select a constant so an existing row reads as one.
        "1".into()
    } else {
        t.values.join(", ")
    }
}

fn row_vals(r: &Row, n: usize) -> DbResult<Vec<Val>> {
    (0..n).map(|i| r.get::<_, Val>(i)).collect()
}

/// The newest entry of `scope`: (seq, hash).
pub fn head(db: &Db, scope: &str) -> DbResult<Option<(i64, String)>> {
    let rows = db.query_rows("SELECT seq, hash FROM journal WHERE scope = ?1 ORDER BY seq DESC LIMIT 1", [scope])?;
    rows.first().map(|r| Ok((r.get(0)?, r.get(1)?))).transpose()
}

/// An entry's hash: BLAKE3 over a domain tag and every field, so any edit of an entry, or
/// of the order of entries, changes it.
pub fn entry_hash(scope: &str, seq: i64, at_ms: i64, kind: &str, body: &str, prev: Option<&str>) -> String {
    let mut h = blake3::Hasher::new();
    let header = json!(["repro-journal/1", scope, seq, at_ms, kind, prev]).to_string();
    h.update(header.as_bytes());
    h.update(b"\n");
    h.update(body.as_bytes());
    h.finalize().to_hex().to_string()
}

// ---- checking ---------------------------------------------------------------------------

/// A difference between the journal and the tables (or inside the journal).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Tampered {
    /// The run the row or entry belongs to; `None` for the store's own facts.
    pub run: Option<String>,
    pub table: String,
    /// The row's key (without the run id), as text.
    pub key: String,
    pub problem: String,
}

impl std::fmt::Display for Tampered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.run {
            Some(run) => write!(f, "run {}: ", &run[..run.len().min(8)])?,
            None => write!(f, "store: ")?,
        }
        if self.key.is_empty() {
            write!(f, "{}: {}", self.table, self.problem)
        } else {
            write!(f, "{} {}: {}", self.table, self.key, self.problem)
        }
    }
}

/// What a chain says its scope's tables hold.
#[derive(Default)]
struct Expected {
    /// (table, key JSON) → values (None: deleted).
    rows: HashMap<(&'static str, String), Option<Vec<Value>>>,
    /// (table, key JSON) → the points' values JSON, sorted.
    points: HashMap<(&'static str, String), Vec<String>>,
}

/// One journal entry as stored.
pub struct Entry {
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub body: String,
    pub prev: Option<String>,
    pub hash: String,
}

/// Checks a chain read from anywhere (the database, or a fuzzer): its problems. Never
/// panics, whatever the entries hold.
pub fn check_chain(scope: &str, entries: &[Entry]) -> Vec<Tampered> {
    let mut out = Vec::new();
    replay(scope, entries, &mut out);
    out
}

fn read_entries(db: &Db, sql: &str, args: Vec<Val>) -> DbResult<BTreeMap<String, Vec<Entry>>> {
    let mut out: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for r in db.query_rows(sql, args)? {
        let scope: String = r.get(0)?;
        out.entry(scope).or_default().push(Entry {
            seq: r.get(1)?,
            at_ms: r.get(2)?,
            kind: r.get(3)?,
            body: r.get(4)?,
            prev: r.get(5)?,
            hash: r.get(6)?,
        });
    }
    Ok(out)
}

fn scope_run(scope: &str) -> Option<String> {
    scope.strip_prefix("run/").map(str::to_string)
}

/// Checks one chain and replays it. Problems go to `out`.
fn replay(scope: &str, entries: &[Entry], out: &mut Vec<Tampered>) -> Expected {
    let run = scope_run(scope);
    let mut problem =
        |p: String| out.push(Tampered { run: run.clone(), table: "journal".into(), key: String::new(), problem: p });
    let mut expected = Expected::default();
    let mut prev: Option<&str> = None;
    for (i, e) in entries.iter().enumerate() {
        let want_seq = i as i64 + 1;
        if e.seq != want_seq {
            problem(format!(
                "entry {want_seq} is missing (the next is {}): entries were deleted behind repro's back",
                e.seq
            ));
        }
        if e.prev.as_deref() != prev {
            problem(format!("entry {} does not follow the entry before it (the chain was cut or reordered)", e.seq));
        }
        if entry_hash(scope, e.seq, e.at_ms, &e.kind, &e.body, e.prev.as_deref()) != e.hash {
            problem(format!("entry {} was edited behind repro's back (its hash no longer matches)", e.seq));
        }
        prev = Some(&e.hash);
        let ops: Vec<Value> = match serde_json::from_str(&e.body) {
            Ok(Value::Array(ops)) => ops,
            _ => {
                problem(format!("entry {} is not a list of operations", e.seq));
                continue;
            }
        };
        for o in ops {
            let Some(parts) = o.as_array() else { continue };
            let (Some(kind), Some(name)) =
                (parts.first().and_then(Value::as_str), parts.get(1).and_then(Value::as_str))
            else {
                continue;
            };
            let Some(t) = table(name) else {
                problem(format!("entry {} names a table repro does not journal ({name})", e.seq));
                continue;
            };
            let key = parts.get(2).map(Value::to_string).unwrap_or_default();
            match (kind, parts.get(3)) {
                ("s", Some(Value::Array(values))) => {
                    expected.rows.insert((t.name, key), Some(values.clone()));
                }
                ("d", _) => {
                    expected.rows.insert((t.name, key), None);
                }
                ("a", Some(values)) => expected.points.entry((t.name, key)).or_default().push(values.to_string()),
                _ => problem(format!("entry {} holds an operation repro does not write", e.seq)),
            }
        }
    }
    for v in expected.points.values_mut() {
        v.sort();
    }
    expected
}

/// The key of a row for people: its values joined, without the run id.
fn key_text(key_json: &str) -> String {
    match serde_json::from_str::<Value>(key_json) {
        Ok(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" / "),
        _ => key_json.to_string(),
    }
}

/// The rows of `t` whose scope column lies in [lo, hi) (hi None: unbounded), by scope.
type Rows = HashMap<(&'static str, String), Vec<Value>>;
type Points = HashMap<(&'static str, String), Vec<String>>;
type Actual = BTreeMap<String, (Rows, Points)>;

fn read_actual(
    db: &Db,
    tables: &[&'static Table],
    range: Option<(&str, Option<&str>)>,
    into: &mut Actual,
) -> DbResult<()> {
    for t in tables {
        let (sql, args): (String, Vec<Val>) = match range {
            Some((lo, Some(hi))) => (
                format!("{} WHERE {k} >= ?1 AND {k} < ?2", t.select(), k = t.key[0]),
                vec![Val::from(lo), Val::from(hi)],
            ),
            Some((lo, None)) => (format!("{} WHERE {} >= ?1", t.select(), t.key[0]), vec![Val::from(lo)]),
            None => (t.select(), vec![]),
        };
        for r in db.query_rows(&sql, args)? {
            let all = row_vals(&r, t.key.len() + t.values.len())?;
            let (key, values) = all.split_at(t.key.len());
            let scope = t.scope_of(key);
            let k = Value::Array(t.encode_key(key)).to_string();
            let v = t.encode_values(values);
            let slot = into.entry(scope).or_default();
            if t.points {
                slot.1.entry((t.name, k)).or_default().push(Value::Array(v).to_string());
            } else {
                slot.0.insert((t.name, k), v);
            }
        }
    }
    Ok(())
}

fn compare(
    scope: &str,
    expected: &Expected,
    actual: Option<&(Rows, Points)>,
    journaled: bool,
    out: &mut Vec<Tampered>,
) {
    let run = scope_run(scope);
    let empty = (HashMap::new(), HashMap::new());
    let (rows, points) = actual.unwrap_or(&empty);
    let push = |out: &mut Vec<Tampered>, table: &str, key: &str, problem: String| {
        out.push(Tampered { run: run.clone(), table: table.to_string(), key: key_text(key), problem })
    };
    if !journaled && (!rows.is_empty() || !points.is_empty()) {
        let mut tables: BTreeSet<&str> = rows.keys().map(|(t, _)| *t).collect();
        tables.extend(points.keys().map(|(t, _)| *t));
        for t in tables {
            push(out, t, "[]", "rows for which no journal exists: inserted behind repro's back".into());
        }
        return;
    }
    let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
    for ((t, key), want) in &expected.rows {
        seen.insert((t, key.as_str()));
        match (want, rows.get(&(*t, key.clone()))) {
            (Some(_), None) => push(out, t, key, "deleted behind repro's back".into()),
            (None, Some(_)) => push(out, t, key, "present, though the journal says it was removed".into()),
            (Some(w), Some(have)) if w != have => {
                let table = table(t).expect("journaled tables are known");
                let cols: Vec<&str> = table
                    .values
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| w.get(*i) != have.get(*i))
                    .map(|(_, c)| *c)
                    .collect();
                push(out, t, key, format!("edited behind repro's back ({})", cols.join(", ")));
            }
            _ => {}
        }
    }
    for (t, key) in rows.keys() {
        if !seen.contains(&(*t, key.as_str())) {
            push(out, t, key, "inserted behind repro's back (not in the journal)".into());
        }
    }
    let mut keys: BTreeSet<(&str, &str)> = expected.points.keys().map(|(t, k)| (*t, k.as_str())).collect();
    keys.extend(points.keys().map(|(t, k)| (*t, k.as_str())));
    for (t, key) in keys {
        let want = expected.points.get(&(t, key.to_string())).cloned().unwrap_or_default();
        let mut have = points.get(&(t, key.to_string())).cloned().unwrap_or_default();
        have.sort();
        if want != have {
            let (missing, extra) = multiset_difference(&want, &have);
            let mut parts = Vec::new();
            if extra > 0 {
                parts.push(format!("{extra} point(s) not in the journal"));
            }
            if missing > 0 {
                parts.push(format!("{missing} journaled point(s) missing"));
            }
            push(out, t, key, format!("{}: edited, inserted or deleted behind repro's back", parts.join(", ")));
        }
    }
}

/// (in `want` but not `have`, in `have` but not `want`), both sorted.
fn multiset_difference(want: &[String], have: &[String]) -> (usize, usize) {
    let (mut i, mut j, mut missing, mut extra) = (0, 0, 0, 0);
    while i < want.len() || j < have.len() {
        match (want.get(i), have.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                missing += 1;
                i += 1;
            }
            (Some(_), Some(_)) | (None, Some(_)) => {
                extra += 1;
                j += 1;
            }
            (Some(_), None) => {
                missing += 1;
                i += 1;
            }
            (None, None) => break,
        }
    }
    (missing, extra)
}

/// Runs checked per round trip: bounds the memory a check holds to this many runs' rows.
const CHUNK: usize = 64;

/// Checks every chain against its tables. `runs` are the run ids the `runs` table holds.
pub fn check_all(db: &Db) -> DbResult<Vec<Tampered>> {
    let mut out = Vec::new();
    let run_tables: Vec<&'static Table> = TABLES.iter().filter(|t| t.run).collect();
    let store_tables: Vec<&'static Table> = TABLES.iter().filter(|t| !t.run).collect();

    // The store's own chain and tables.
    let chains = read_entries(
        db,
        "SELECT scope, seq, at_ms, kind, body, prev, hash FROM journal WHERE scope = ?1 ORDER BY seq",
        vec![Val::from(STORE_SCOPE)],
    )?;
    let mut actual = Actual::new();
    read_actual(db, &store_tables, None, &mut actual)?;
    let expected = replay(STORE_SCOPE, chains.get(STORE_SCOPE).map_or(&[][..], Vec::as_slice), &mut out);
    compare(STORE_SCOPE, &expected, actual.get(STORE_SCOPE), chains.contains_key(STORE_SCOPE), &mut out);

    // Scopes that are neither a run's nor the store's were inserted by someone else.
    for r in db.query_rows(
        "SELECT DISTINCT scope FROM journal WHERE scope != ?1 AND (scope < 'run/' OR scope >= 'run0')",
        [STORE_SCOPE],
    )? {
        let scope: String = r.get(0)?;
        out.push(Tampered {
            run: None,
            table: "journal".into(),
            key: scope,
            problem: "a chain repro never writes (inserted behind repro's back)".into(),
        });
    }

    // Runs, a chunk at a time, over the whole key space so that rows of unknown runs fall
    // in some chunk too.
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for r in db.query_rows("SELECT id FROM runs", [0i64; 0])? {
        ids.insert(r.get(0)?);
    }
    for r in db.query_rows("SELECT DISTINCT scope FROM journal WHERE scope >= 'run/' AND scope < 'run0'", [0i64; 0])? {
        let scope: String = r.get(0)?;
        if let Some(id) = scope_run(&scope) {
            ids.insert(id);
        }
    }
    let ids: Vec<String> = ids.into_iter().collect();
    let starts: Vec<&str> = std::iter::once("").chain(ids.chunks(CHUNK).skip(1).map(|c| c[0].as_str())).collect();
    for (i, lo) in starts.iter().enumerate() {
        let hi = starts.get(i + 1).copied();
        let (jlo, jhi) = (format!("run/{lo}"), hi.map_or_else(|| "run0".to_string(), |h| format!("run/{h}")));
        let chains = read_entries(
            db,
            "SELECT scope, seq, at_ms, kind, body, prev, hash FROM journal WHERE scope >= ?1 AND scope < ?2 ORDER BY scope, seq",
            vec![Val::from(jlo), Val::from(jhi)],
        )?;
        let mut actual = Actual::new();
        read_actual(db, &run_tables, Some((lo, hi)), &mut actual)?;
        let mut scopes: BTreeSet<&String> = chains.keys().collect();
        scopes.extend(actual.keys());
        for scope in scopes {
            let entries = chains.get(scope).map_or(&[][..], Vec::as_slice);
            let expected = replay(scope, entries, &mut out);
            compare(scope, &expected, actual.get(scope), !entries.is_empty(), &mut out);
        }
    }
    Ok(out)
}

/// Checks one run's chain against its rows (what a registry write vouches for).
pub fn check_run(db: &Db, run: &str) -> DbResult<Vec<Tampered>> {
    let mut out = Vec::new();
    let scope = run_scope(run);
    let chains = read_entries(
        db,
        "SELECT scope, seq, at_ms, kind, body, prev, hash FROM journal WHERE scope = ?1 ORDER BY seq",
        vec![Val::from(scope.as_str())],
    )?;
    let run_tables: Vec<&'static Table> = TABLES.iter().filter(|t| t.run).collect();
    let mut actual = Actual::new();
    // The run id and nothing after it: [run, run + "\0").
    let hi = format!("{run}\u{1}");
    read_actual(db, &run_tables, Some((run, Some(&hi))), &mut actual)?;
    let entries = chains.get(&scope).map_or(&[][..], Vec::as_slice);
    let expected = replay(&scope, entries, &mut out);
    compare(&scope, &expected, actual.get(&scope), !entries.is_empty(), &mut out);
    Ok(out)
}

/// The kind of a chain's first entry ("genesis", "create", "import", …).
pub fn first_kind(db: &Db, scope: &str) -> DbResult<Option<String>> {
    let rows = db.query_rows("SELECT kind FROM journal WHERE scope = ?1 AND seq = 1", [scope])?;
    rows.first().map(|r| r.get(0)).transpose()
}

/// The entry at `seq` of `scope`: its hash, if there is one.
pub fn entry_at(db: &Db, scope: &str, seq: i64) -> DbResult<Option<String>> {
    let rows =
        db.query_rows("SELECT hash FROM journal WHERE scope = ?1 AND seq = ?2", crate::db::params![scope, seq])?;
    rows.first().map(|r| r.get(0)).transpose()
}

/// The first journal for a store that had none (an upgrade to schema 7): every run's rows
/// and the store's, as they are now, one `genesis` entry per chain. What was edited before
/// the upgrade cannot be told apart; from here on, every change can.
pub(crate) fn genesis(db: &Db, at_ms: i64) -> DbResult<()> {
    let mut store = Journal::new();
    // Genesis runs at version 7: tables a later version adds do not exist yet, and every row
    // they will hold is journaled as it lands.
    let tables = || TABLES.iter().filter(|t| !AFTER_THE_JOURNAL.contains(&t.name));
    for t in tables().filter(|t| !t.run) {
        for r in db.query_rows(&t.select(), [0i64; 0])? {
            let all = row_vals(&r, t.key.len() + t.values.len())?;
            let (key, values) = all.split_at(t.key.len());
            store.set("genesis", t.name, key, values);
        }
    }
    store.append(db, at_ms)?;
    let ids: Vec<String> = db
        .query_rows("SELECT id FROM runs ORDER BY id", [0i64; 0])?
        .iter()
        .map(|r| r.get(0))
        .collect::<DbResult<_>>()?;
    for id in ids {
        let mut j = Journal::new();
        for t in tables().filter(|t| t.run) {
            j.touch_run_rows(db, "genesis", t.name, &id)?;
        }
        j.append(db, at_ms)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_encode_without_ambiguity() {
        assert_eq!(encode(&Val::Text("f:1".into()), false), json!("f:1"));
        assert_eq!(encode(&Val::Real(-0.0), false), encode(&Val::Real(0.0), false));
        assert_ne!(encode(&Val::Real(1.0), false), encode(&Val::Int(1), false));
        assert_eq!(encode(&Val::Text("x".into()), true)[0], "h");
        assert_eq!(encode(&Val::Blob(vec![0, 255]), false), json!(["b", "00ff"]));
    }

    #[test]
    fn multisets_count_both_ways() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(multiset_difference(&s(&["a", "b", "b"]), &s(&["b", "c"])), (2, 1));
        assert_eq!(multiset_difference(&s(&[]), &s(&["a"])), (0, 1));
        assert_eq!(multiset_difference(&s(&["a"]), &s(&["a"])), (0, 0));
    }

    /// A store with a row in every journaled table, written through the store's own API.
    fn populated() -> (tempfile::TempDir, crate::Store, Option<repro_test::ScratchDb>) {
        use crate::tracking::{DatasetInput, MetricIn};
        use repro_core::record::{RunRecord, Verdict};
        use repro_core::{Digest, RunId};
        let dir = tempfile::tempdir().expect("tempdir");
        let scratch = repro_test::ScratchDb::create();
        let backends = crate::Backends { db: scratch.as_ref().map(|s| s.url.clone()), objects: None };
        let mut store = crate::Store::init_with(dir.path(), &backends).expect("init");
        let m = &mut store.meta;
        let id = RunId::from_bytes([7; 16]);
        m.tracking()
            .create_tracked_run(&id, 0, "ada", "first", 1_000, &[("team".into(), "risk".into())], "h")
            .expect("create");
        let pts = [MetricIn { key: "rmse".into(), value: 0.5, timestamp: 2_000, step: 1, model: None }];
        m.tracking()
            .log_batch(id.as_str(), &pts, &[("lr".into(), "0.1".into())], &[("stage".into(), "fit".into())])
            .expect("log");
        m.tracking()
            .log_inputs(
                id.as_str(),
                &[DatasetInput {
                    name: "train".into(),
                    digest: "abc".into(),
                    source_type: "local".into(),
                    source: "{}".into(),
                    schema: None,
                    profile: None,
                    tags: Default::default(),
                }],
            )
            .expect("inputs");
        let exp = m.tracking().create_experiment("churn", None, &[("owner".into(), "ada".into())]).expect("experiment");
        let model = m
            .tracking()
            .create_logged_model(&crate::logged::NewLoggedModel {
                experiment_id: exp,
                name: "forest".into(),
                model_type: None,
                source_run_id: Some(id.to_string()),
                creator_id: None,
                params: Default::default(),
                tags: Default::default(),
            })
            .expect("model");
        m.tracking().log_run_outputs(id.as_str(), &[(model.model_id.clone(), 0)]).expect("outputs");
        m.tracking().log_run_model_inputs(id.as_str(), std::slice::from_ref(&model.model_id)).expect("model inputs");
        let point = MetricIn {
            key: "auc".into(),
            value: 0.9,
            timestamp: 2_500,
            step: 0,
            model: Some(crate::tracking::ModelPoint {
                model_id: model.model_id.clone(),
                dataset_name: "holdout".into(),
                dataset_digest: "d1".into(),
            }),
        };
        m.tracking().log_batch(id.as_str(), &[point], &[], &[]).expect("model metric");
        let d = Digest::of_bytes(b"x");
        m.tracking().put_artifact(&format!("0/{id}/artifacts/model.pkl"), &d, 1).expect("artifact");
        m.tokens().create("t1", "secret-token", "read", "ci").expect("token");
        m.models().record_code_bundle("0123456789abcdef", &d).expect("code");
        m.environments().register("serving", &d, &d, "declared", "requirements.txt").expect("environment");
        let snapshot = crate::datasets::SnapshotRow {
            digest: d.clone(),
            kind: "file".into(),
            files: 1,
            bytes: 1,
            stored: true,
            created_ms: 3_000,
        };
        m.datasets()
            .record_snapshot(&snapshot, Some(("data/train.csv", "data/train.csv", false)), None)
            .expect("snapshot");
        let replay = RunId::from_bytes([8; 16]);
        let record = RunRecord::tracking_only(replay.clone(), None, "ada".into(), "h".into(), "t".into());
        m.runs().insert(&record, 4_000).expect("replay run");
        m.runs()
            .record_replay(&crate::meta::ReplayRow {
                replay,
                original: id.clone(),
                verdict: Verdict::Identical,
                report: d,
                created_ms: 5_000,
            })
            .expect("replay");
        let report = crate::fsck::FsckReport { clean: true, ..Default::default() };
        m.verdicts().record_fsck(report.clean, &report.problems()).expect("fsck verdict");
        let mut record = m.runs().get(&id).expect("run").record;
        record.status = repro_core::record::RunStatus::Finished;
        m.seal_and_finish(&store.objects, &mut record, 6_000).expect("finish");
        (dir, store, scratch)
    }

    /// A value different from `v` of the same type.
    fn other(v: &Val) -> Val {
        match v {
            Val::Int(i) => Val::Int(i + 1000),
            Val::Real(f) => Val::Real(f + 1.0),
            Val::Text(s) => Val::Text(format!("{s}-tampered")),
            Val::Blob(b) => Val::Blob([b.as_slice(), b"!"].concat()),
            Val::Null => Val::Text("tampered".into()),
        }
    }

    #[test]
    fn an_edit_a_deletion_and_an_insertion_in_every_journaled_table_are_named() {
        let (_dir, store, _scratch) = populated();
        let db = &store.meta.conn;
        assert_eq!(check_all(db).expect("check"), [], "a store written by repro is clean");
        for t in TABLES {
            let cols: Vec<&str> = t.key.iter().chain(t.values.iter()).copied().collect();
            let rows = db.query_rows(&t.select(), [0i64; 0]).expect("read");
            let row =
                row_vals(rows.first().unwrap_or_else(|| panic!("no row in {}", t.name)), cols.len()).expect("row");
            let (key, _) = row.split_at(t.key.len());
            let key_sql = t.key_where();
            // Each change inside a transaction that is rolled back: the check sees it (same
            // connection), the next change starts from the clean store.
            let edit_col = t.values.iter().position(|c| !t.digested.contains(c)).map(|i| t.key.len() + i);
            let edit = match edit_col {
                Some(i) => {
                    let mut args = key.to_vec();
                    args.push(other(&row[i]));
                    (format!("UPDATE {} SET {} = ?{} WHERE {key_sql}", t.name, cols[i], key.len() + 1), args)
                }
                // All key (run_model_outputs): move the row to another key.
                None => {
                    let mut args = key.to_vec();
                    args.push(other(&row[t.key.len() - 1]));
                    let last = t.key[t.key.len() - 1];
                    (format!("UPDATE {} SET {last} = ?{} WHERE {key_sql}", t.name, key.len() + 1), args)
                }
            };
            let delete = (format!("DELETE FROM {} WHERE {key_sql}", t.name), key.to_vec());
            // Every column changed, so that no unique constraint stands in the way.
            let inserted: Vec<Val> = row.iter().map(|v| if *v == Val::Null { Val::Null } else { other(v) }).collect();
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
            let insert =
                (format!("INSERT INTO {} ({}) VALUES ({})", t.name, cols.join(", "), marks.join(", ")), inserted);
            for (what, (sql, args)) in [("edit", edit), ("delete", delete), ("insert", insert)] {
                let tx = db.transaction_with_behavior(crate::db::TransactionBehavior::Immediate).expect("begin");
                // Someone editing behind repro's back is not held up by foreign keys.
                tx.execute_batch(if tx.is_postgres() {
                    "SET LOCAL session_replication_role = replica"
                } else {
                    "PRAGMA defer_foreign_keys = ON"
                })
                .expect("foreign keys off");
                let n = tx.execute(&sql, args).unwrap_or_else(|e| panic!("{what} {}: {e}", t.name));
                assert!(n > 0, "{what} {} changed nothing", t.name);
                let found = check_all(&tx).expect("check");
                drop(tx);
                assert!(
                    found.iter().any(|p| p.table == t.name),
                    "{what} of a row of {} went unnoticed: {found:?}",
                    t.name
                );
                if t.run {
                    assert!(found.iter().all(|p| p.run.is_some()), "{what} {}: {found:?}", t.name);
                }
            }
        }
        assert_eq!(check_all(db).expect("check"), [], "every change was rolled back");
    }

    #[test]
    fn a_chain_cut_or_edited_is_named() {
        let (_dir, store, _scratch) = populated();
        let db = &store.meta.conn;
        let scope = run_scope(&"07".repeat(16));
        for (sql, needle) in [
            ("UPDATE journal SET body = replace(body, 'fit', 'FIT') WHERE scope = ?1", "edited"),
            ("DELETE FROM journal WHERE scope = ?1 AND seq = 2", "missing"),
        ] {
            let tx = db.transaction_with_behavior(crate::db::TransactionBehavior::Immediate).expect("begin");
            assert!(tx.execute(sql, [scope.as_str()]).expect("tamper") > 0, "{sql}");
            let found = check_all(&tx).expect("check");
            drop(tx);
            assert!(found.iter().any(|p| p.table == "journal" && p.problem.contains(needle)), "{sql}: {found:?}");
        }
    }

    #[test]
    fn every_table_of_the_schema_is_journaled_or_says_why_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (m, _db) = crate::meta::scratch(dir.path());
        let tables: Vec<String> = if m.conn.is_postgres() {
            m.conn
                .query_rows(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
                    [0i64; 0],
                )
                .expect("tables")
        } else {
            m.conn
                .query_rows(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                    [0i64; 0],
                )
                .expect("tables")
        }
        .iter()
        .map(|r| r.get(0).expect("name"))
        .collect();
        for t in &tables {
            assert!(
                table(t).is_some() || NOT_JOURNALED.iter().any(|(n, _)| n == t),
                "table {t} is neither journaled nor listed in NOT_JOURNALED"
            );
        }
        for t in TABLES {
            let cols = m.conn.columns(t.name).expect("columns");
            let mut declared: Vec<&str> = t.key.iter().chain(t.values.iter()).copied().collect();
            declared.sort_unstable();
            let mut have: Vec<&str> = cols.iter().map(String::as_str).filter(|c| *c != "seq").collect();
            have.sort_unstable();
            assert_eq!(declared, have, "journal::TABLES lists other columns than table {} has", t.name);
        }
    }
}
