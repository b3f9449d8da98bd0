//! The database's schema and its whole history: every step from an empty database to
//! [`SCHEMA_VERSION`], in order, in [`MIGRATIONS`]. A change to the tables is a new entry
//! at the end of that list (and a new version), never an edit of an old one: stores in the
//! field are at every version and migrate forward through each step.
//!
//! Each step is written once, for SQLite; PostgreSQL runs it through [`postgres_ddl`].

use std::path::Path;

use crate::db::{params, postgres_ddl, Db, DbResult, TransactionBehavior};
use crate::{Result, StoreError};

/// The version a database migrated by this build is at: the last step's.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The registry's anchor file as a new (or newly migrated) store writes it: an empty log.
pub(crate) const EMPTY_ANCHOR: &str = "0 empty\n";

/// One step of the schema's history.
pub(crate) struct Migration {
    /// The version a database is at once this step (and every one before it) ran.
    pub version: i64,
    /// What the step does, as an error names it.
    what: &'static str,
    sql: &'static str,
    /// Tables whose reads keep insertion order: PostgreSQL has no implicit rowid, so they get one.
    rowids: &'static [&'static str],
    /// What the step does besides its SQL.
    then: Then,
}

/// The work a step does besides its DDL.
#[derive(Clone, Copy)]
enum Then {
    Nothing,
    /// PostgreSQL's stand-ins for the SQL functions SQLite has built in, before any table.
    PgFunctions,
    /// The registry's anchor file, beside the database.
    CreateAnchor,
    /// MLflow's experiment 0.
    DefaultExperiment,
    /// The journal's first entries: what the store already holds.
    Genesis,
}

/// Every step, oldest first. Version 6 has two steps, taken in one go.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, what: "create schema", sql: SCHEMA_V1, rowids: &["metrics"], then: Then::PgFunctions },
    Migration { version: 2, what: "add the replays table", sql: SCHEMA_V2, rowids: &["replays"], then: Then::Nothing },
    Migration { version: 3, what: "add the environments table", sql: SCHEMA_V3, rowids: &[], then: Then::Nothing },
    Migration { version: 4, what: "add the registry tables", sql: SCHEMA_V4, rowids: &[], then: Then::CreateAnchor },
    Migration {
        version: 5,
        what: "add the tracking tables",
        sql: SCHEMA_V5,
        rowids: &["run_inputs"],
        then: Then::DefaultExperiment,
    },
    Migration { version: 6, what: "add the search indexes", sql: SCHEMA_V6, rowids: &[], then: Then::Nothing },
    Migration {
        version: 6,
        what: "add the logged-model tables",
        sql: SCHEMA_V6_LOGGED,
        rowids: &[],
        then: Then::Nothing,
    },
    Migration { version: 7, what: "add the journal", sql: SCHEMA_V7, rowids: &[], then: Then::Genesis },
    Migration {
        version: 8,
        what: "add the logged models' metrics and the runs' model inputs",
        sql: SCHEMA_V8,
        rowids: &[],
        then: Then::Nothing,
    },
    Migration { version: 9, what: "add the stat cache's chunk rows", sql: SCHEMA_V9, rowids: &[], then: Then::Nothing },
];

/// Version 1: runs, their metrics, snapshots, datasets and the stat cache.
const SCHEMA_V1: &str = "
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT,
    status TEXT NOT NULL,
    exit_code INTEGER,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    host TEXT NOT NULL,
    pid INTEGER,
    pid_start TEXT,
    record TEXT NOT NULL,
    lineage TEXT,
    record_object TEXT
);
CREATE INDEX runs_name ON runs(name);
CREATE TABLE metrics (
    run_id TEXT NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    value REAL NOT NULL,
    step INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL
);
CREATE INDEX metrics_run ON metrics(run_id, key, step);
CREATE TABLE snapshots (
    digest TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    stored INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE datasets (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    snapshot TEXT NOT NULL REFERENCES snapshots(digest),
    source TEXT NOT NULL,
    reference INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, snapshot)
);
CREATE TABLE tree_cache (
    root TEXT PRIMARY KEY,
    manifest TEXT,
    files BLOB NOT NULL
) WITHOUT ROWID;
";

/// Version 2: replays of runs and their verdicts (`repro replay`).
const SCHEMA_V2: &str = "
CREATE TABLE replays (
    replay_id TEXT PRIMARY KEY REFERENCES runs(id),
    original_id TEXT NOT NULL REFERENCES runs(id),
    verdict TEXT NOT NULL,
    report TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX replays_original ON replays(original_id, created_ms);
";

/// Version 3: registered environments (`repro env register`).
const SCHEMA_V3: &str = "
CREATE TABLE environments (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    identity TEXT NOT NULL,
    spec TEXT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, identity)
);
";

/// Version 4: the model registry's hash-chained event log, and git bundles of imported code.
const SCHEMA_V4: &str = "
CREATE TABLE registry_events (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev TEXT,
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX registry_events_model ON registry_events(model, version);
CREATE TABLE code_bundles (
    git_commit TEXT PRIMARY KEY,
    object TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
";

/// Version 5: the MLflow tracking tables.
pub(crate) const SCHEMA_V5: &str = "
CREATE TABLE experiments (
    experiment_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    last_update_time INTEGER NOT NULL
);
CREATE TABLE experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES experiments(experiment_id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
);
CREATE TABLE tracking (
    run_id TEXT PRIMARY KEY REFERENCES runs(id),
    experiment_id INTEGER NOT NULL REFERENCES experiments(experiment_id),
    user_id TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    artifact_uri TEXT NOT NULL,
    deleted_time INTEGER,
    -- 'api': created by a tracking client; 'run': a run `repro run` owns.
    origin TEXT NOT NULL DEFAULT 'run'
);
CREATE INDEX tracking_experiment ON tracking(experiment_id);
CREATE TABLE run_params (
    run_id TEXT NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE run_tags (
    run_id TEXT NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE latest_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    value REAL NOT NULL,
    step INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    is_nan BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE artifacts (
    path TEXT PRIMARY KEY,
    object TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO run_params (run_id, key, value)
SELECT r.id, j.key, CASE WHEN j.type = 'text' THEN j.value ELSE json(j.value) END
FROM runs r, json_each(r.record, '$.params.values') j WHERE TRUE ON CONFLICT DO NOTHING;
INSERT INTO run_params (run_id, key, value)
SELECT r.id, j.key, CASE WHEN j.type = 'text' THEN j.value ELSE json(j.value) END
FROM runs r, json_each(r.record, '$.params.logged') j WHERE TRUE ON CONFLICT DO NOTHING;
-- SQLite stores NaN as NULL; a NaN point is kept as value 0 with is_nan set, as MLflow does.
ALTER TABLE metrics ADD COLUMN is_nan BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE run_inputs (
    run_id TEXT NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source TEXT NOT NULL,
    schema TEXT,
    profile TEXT,
    tags TEXT NOT NULL,
    UNIQUE (run_id, name, digest)
);
INSERT INTO latest_metrics (run_id, key, value, step, timestamp_ms, is_nan)
SELECT run_id, key, value, step, timestamp_ms, is_nan FROM metrics m
WHERE rowid = (SELECT rowid FROM metrics m2 WHERE m2.run_id = m.run_id AND m2.key = m.key
               ORDER BY step DESC, timestamp_ms DESC, value DESC LIMIT 1);
";

/// Version 6: indexes for answering `search_runs` in SQL (`search.rs`). `runs_started` is
/// MLflow's default order (start time descending, then run id), so a search walks it and stops
/// once its page is full; `(key, value)` on params, tags and latest metrics lets a selective
/// clause narrow a search to its runs first.
pub(crate) const SCHEMA_V6: &str = "
CREATE INDEX runs_started ON runs(started_ms DESC, id);
CREATE INDEX run_params_value ON run_params(key, value);
CREATE INDEX run_tags_value ON run_tags(key, value);
CREATE INDEX latest_metrics_value ON latest_metrics(key, is_nan, value);
";

/// Version 6: logged models and the runs' model outputs.
pub(crate) const SCHEMA_V6_LOGGED: &str = "
CREATE TABLE logged_models (
    model_id TEXT PRIMARY KEY,
    experiment_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    model_type TEXT,
    source_run_id TEXT,
    status TEXT NOT NULL,
    status_message TEXT,
    creator_id TEXT,
    artifact_uri TEXT NOT NULL,
    creation_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '{}',
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX logged_models_experiment ON logged_models(experiment_id, name);
CREATE TABLE run_model_outputs (
    run_id TEXT NOT NULL REFERENCES runs(id),
    model_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    PRIMARY KEY (run_id, model_id, step)
) WITHOUT ROWID;
";

/// Version 9: the stat cache kept per manifest chunk (keyed by the chunk's first path), so
/// a re-snapshot rewrites the rows of the chunks that changed. Roots cached before keep
/// their one blob in `tree_cache.files` until their next snapshot moves it here.
pub(crate) const SCHEMA_V9: &str = "
CREATE TABLE tree_cache_chunks (
    root TEXT NOT NULL,
    first TEXT NOT NULL,
    chunk TEXT,
    stored BOOLEAN NOT NULL,
    files BLOB NOT NULL,
    PRIMARY KEY (root, first)
) WITHOUT ROWID;
";

/// Version 7: the journal, what tokens bind a person to, and fsck's verdicts.
pub(crate) const SCHEMA_V7: &str = "
CREATE TABLE journal (
    scope TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev TEXT,
    hash TEXT NOT NULL,
    PRIMARY KEY (scope, seq)
) WITHOUT ROWID;
ALTER TABLE tokens ADD COLUMN email TEXT;
ALTER TABLE tokens ADD COLUMN approver_keyid TEXT;
ALTER TABLE tokens ADD COLUMN approver_key TEXT;
CREATE TABLE fsck_results (
    id TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    host TEXT NOT NULL,
    clean BOOLEAN NOT NULL,
    problems TEXT NOT NULL
);
";

/// Version 8: the points a run logged against a logged model (MLflow's `log_metric(model_id=…)`,
/// with the dataset it was measured on), and the logged models a run took as inputs. Both
/// belong to the run that logged them, so they are in its journal chain.
pub(crate) const SCHEMA_V8: &str = "
CREATE TABLE logged_model_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id),
    model_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    is_nan BOOLEAN NOT NULL DEFAULT FALSE,
    step INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    dataset_name TEXT NOT NULL DEFAULT '',
    dataset_digest TEXT NOT NULL DEFAULT ''
);
CREATE INDEX logged_model_metrics_model ON logged_model_metrics(model_id, key);
CREATE TABLE run_model_inputs (
    run_id TEXT NOT NULL REFERENCES runs(id),
    model_id TEXT NOT NULL,
    PRIMARY KEY (run_id, model_id)
) WITHOUT ROWID;
";

fn db_error(path: &Path, context: &str, source: crate::db::DbError) -> StoreError {
    StoreError::Database { path: path.to_path_buf(), context: context.to_string(), source }
}

/// The schema version the database is at: SQLite's `user_version`, PostgreSQL's
/// `repro_schema` row (0 before there is one).
/// `locked`: inside the migration's write transaction, where the version table may be
/// created (two machines creating it at once would collide in PostgreSQL's catalog).
pub(crate) fn version(conn: &Db, locked: bool) -> DbResult<i64> {
    if conn.is_postgres() {
        if locked {
            conn.execute_batch("CREATE TABLE IF NOT EXISTS repro_schema (version BIGINT NOT NULL)")?;
        } else {
            let exists: bool =
                conn.query_row("SELECT to_regclass('repro_schema') IS NOT NULL", params![], |r| r.get(0))?;
            if !exists {
                return Ok(0);
            }
        }
        let v: Option<i64> = conn.query_row("SELECT MAX(version) FROM repro_schema", params![], |r| r.get(0))?;
        Ok(v.unwrap_or(0))
    } else {
        conn.query_row("PRAGMA user_version", params![], |r| r.get(0))
    }
}

/// Brings the schema of the database at `path` to `SCHEMA_VERSION`, taking each step of
/// [`MIGRATIONS`] it has not taken yet, all in one transaction. `anchor` is the registry's
/// anchor file beside it.
pub(crate) fn migrate(conn: &Db, path: &Path, anchor: &Path) -> Result<()> {
    let pg = conn.is_postgres();
    let e = |c: &'static str| move |err| db_error(path, c, err);
    // Most opens find the schema current: check without taking the write lock.
    if version(conn, false).map_err(e("migrate"))? == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(e("migrate"))?;
    let at = version(&tx, true).map_err(e("migrate"))?;
    if at > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found: at, known: SCHEMA_VERSION });
    }
    // PostgreSQL keeps the version in a table anyone with access can edit: a version
    // below the tables that exist would re-run steps already taken.
    if pg && at < SCHEMA_VERSION {
        let newest: bool =
            tx.query_row("SELECT to_regclass('journal') IS NOT NULL", params![], |r| r.get(0)).map_err(e("migrate"))?;
        let any: bool =
            tx.query_row("SELECT to_regclass('runs') IS NOT NULL", params![], |r| r.get(0)).map_err(e("migrate"))?;
        let holds = if newest {
            Some(SCHEMA_VERSION)
        } else if any && at == 0 {
            Some(1)
        } else {
            None
        };
        if let Some(holds) = holds {
            return Err(StoreError::Damaged(format!(
                "repro_schema in {} says schema {at}, but the database already holds the tables of schema {holds}: it was edited behind repro's back; restore the database from a backup",
                path.display()
            )));
        }
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > at) {
        if let (Then::PgFunctions, true) = (m.then, pg) {
            tx.execute_batch(crate::db::PG_FUNCTIONS).map_err(e("create the SQL functions"))?;
        }
        let sql = if pg { postgres_ddl(m.sql) } else { m.sql.to_string() };
        tx.execute_batch(&sql).map_err(e(m.what))?;
        if pg {
            for table in m.rowids {
                tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN rowid BIGSERIAL"))
                    .map_err(e("add row ids"))?;
            }
        }
        match m.then {
            Then::Nothing | Then::PgFunctions => {}
            Then::CreateAnchor => create_anchor(anchor)?,
            Then::DefaultExperiment => {
                create_default_experiment(&tx).map_err(e("add the Default experiment"))?;
            }
            Then::Genesis => {
                crate::journal::genesis(&tx, crate::now_ms()).map_err(e("journal what the store holds"))?
            }
        }
    }
    if pg {
        tx.execute("DELETE FROM repro_schema", params![]).map_err(e("migrate"))?;
        tx.execute("INSERT INTO repro_schema (version) VALUES (?1)", [SCHEMA_VERSION]).map_err(e("migrate"))?;
    } else {
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}")).map_err(e("migrate"))?;
    }
    tx.commit().map_err(e("migrate"))
}

/// Writes the anchor of an empty log, unless there is one (store creation and migration).
pub(crate) fn create_anchor(anchor: &Path) -> Result<()> {
    if anchor.exists() {
        return Ok(());
    }
    crate::objects::write_durably(anchor, EMPTY_ANCHOR.as_bytes()).map_err(StoreError::io("write", anchor))
}

/// MLflow's experiment 0, which every tracking server has.
fn create_default_experiment(tx: &Db) -> DbResult<usize> {
    let now = crate::now_ms();
    tx.execute(
        "INSERT INTO experiments VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', ?1, ?1) ON CONFLICT DO NOTHING",
        [now],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_only_go_up_one_at_a_time() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version == last || m.version == last + 1, "{} after {last}", m.version);
            last = m.version;
        }
        assert_eq!(MIGRATIONS[0].version, 1);
    }
}
