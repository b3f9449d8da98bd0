//! MLflow 3's logged models (`mlflow.<flavor>.log_model`): a model's own row, with its
//! params, tags and status, whose files live under its artifact URI like a run's. A run's
//! `outputs` name the logged models it produced.

use std::collections::BTreeMap;

use crate::db::{params, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::tracking::Tracking;
use crate::{Result, StoreError};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoggedModel {
    pub model_id: String,
    pub experiment_id: i64,
    pub name: String,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub creator_id: Option<String>,
    pub artifact_uri: String,
    pub creation_ms: i64,
    pub updated_ms: i64,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// The points runs logged against this model, oldest first.
    pub metrics: Vec<ModelMetric>,
}

/// One point a run logged against a logged model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelMetric {
    pub run_id: String,
    pub key: String,
    pub value: f64,
    pub step: i64,
    pub timestamp: i64,
    pub dataset_name: String,
    pub dataset_digest: String,
}

impl LoggedModel {
    /// The artifact path (under the `mlflow-artifacts` proxy) the model's files live at.
    pub fn artifact_path(&self) -> &str {
        self.artifact_uri.trim_start_matches("mlflow-artifacts:").trim_start_matches('/')
    }
}

/// What `POST /logged-models` brings.
pub struct NewLoggedModel {
    pub experiment_id: i64,
    pub name: String,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub creator_id: Option<String>,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

fn not_found(id: &str) -> StoreError {
    StoreError::Missing(format!("Logged model with ID '{id}' not found."))
}

const COLUMNS: &str = "model_id, experiment_id, name, model_type, source_run_id, status, status_message, creator_id, \
                       artifact_uri, creation_ms, updated_ms, params, tags";

fn row(r: &crate::db::Row) -> crate::db::DbResult<LoggedModel> {
    let map = |i: usize| -> crate::db::DbResult<BTreeMap<String, String>> {
        let text: String = r.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    };
    Ok(LoggedModel {
        model_id: r.get(0)?,
        experiment_id: r.get(1)?,
        name: r.get(2)?,
        model_type: r.get(3)?,
        source_run_id: r.get(4)?,
        status: r.get(5)?,
        status_message: r.get(6)?,
        creator_id: r.get(7)?,
        artifact_uri: r.get(8)?,
        creation_ms: r.get(9)?,
        updated_ms: r.get(10)?,
        params: map(11)?,
        tags: map(12)?,
        metrics: Vec::new(),
    })
}

fn json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).expect("string maps serialize")
}

impl Tracking<'_> {
    pub fn create_logged_model(&self, new: &NewLoggedModel) -> Result<LoggedModel> {
        let exists: Option<String> = self
            .c
            .db
            .query_row("SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?1", [new.experiment_id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.c.err("find the experiment"))?;
        match exists.as_deref() {
            None => {
                return Err(StoreError::Missing(format!("No Experiment with id={} exists", new.experiment_id)));
            }
            Some("active") => {}
            Some(_) => {
                return Err(StoreError::Invalid(format!(
                    "The experiment {} must be in the 'active' state.",
                    new.experiment_id
                )))
            }
        }
        if let Some(run) = &new.source_run_id {
            self.get_tracked_run(run)?;
        }
        let id = format!("m-{}", uuid::Uuid::new_v4().simple());
        let now = crate::now_ms();
        let uri = format!("mlflow-artifacts:/{}/models/{id}/artifacts", new.experiment_id);
        self.c.write("create the logged model", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                &format!("INSERT INTO logged_models ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8, ?9, ?9, ?10, ?11)"),
                params![
                    id,
                    new.experiment_id,
                    new.name,
                    new.model_type,
                    new.source_run_id,
                    "LOGGED_MODEL_PENDING",
                    new.creator_id,
                    uri,
                    now,
                    json(&new.params),
                    json(&new.tags)
                ],
            )
            .map_err(self.c.err("create the logged model"))?;
            j.touch(tx, "model", "logged_models", &[id.as_str().into()]).map_err(self.c.err("create the logged model"))
        })?;
        self.get_logged_model(&id)
    }

    pub fn get_logged_model(&self, id: &str) -> Result<LoggedModel> {
        let mut m = self
            .c
            .db
            .query_row(&format!("SELECT {COLUMNS} FROM logged_models WHERE model_id = ?1 AND deleted = 0"), [id], row)
            .optional()
            .map_err(self.c.err("read the logged model"))?
            .ok_or_else(|| not_found(id))?;
        m.metrics = self.model_metrics(id)?;
        Ok(m)
    }

    fn model_metrics(&self, id: &str) -> Result<Vec<ModelMetric>> {
        let mut stmt = self
            .c
            .db
            .prepare_cached(
                "SELECT run_id, key, CASE WHEN is_nan THEN NULL ELSE value END, step, timestamp_ms, dataset_name, dataset_digest
                 FROM logged_model_metrics WHERE model_id = ?1 ORDER BY timestamp_ms, step, key, run_id",
            )
            .map_err(self.c.err("read the logged model's metrics"))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(ModelMetric {
                    run_id: r.get(0)?,
                    key: r.get(1)?,
                    value: r.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
                    step: r.get(3)?,
                    timestamp: r.get(4)?,
                    dataset_name: r.get(5)?,
                    dataset_digest: r.get(6)?,
                })
            })
            .map_err(self.c.err("read the logged model's metrics"))?;
        rows.collect::<crate::db::DbResult<Vec<_>>>().map_err(self.c.err("read the logged model's metrics"))
    }

    /// Applies `change` to the model's row in one statement's time; unknown ids are an error.
    fn update_logged_model(&self, id: &str, change: impl FnOnce(&mut LoggedModel)) -> Result<LoggedModel> {
        let mut m = self.get_logged_model(id)?;
        change(&mut m);
        m.updated_ms = crate::now_ms();
        self.c.write("update the logged model", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "UPDATE logged_models SET status = ?2, status_message = ?3, params = ?4, tags = ?5, updated_ms = ?6
                 WHERE model_id = ?1",
                params![id, m.status, m.status_message, json(&m.params), json(&m.tags), m.updated_ms],
            )
            .map_err(self.c.err("update the logged model"))?;
            j.touch(tx, "model", "logged_models", &[id.into()]).map_err(self.c.err("update the logged model"))
        })?;
        Ok(m)
    }

    pub fn finalize_logged_model(&self, id: &str, status: &str) -> Result<LoggedModel> {
        self.update_logged_model(id, |m| m.status = status.to_string())
    }

    pub fn set_logged_model_tags(&self, id: &str, tags: &[(String, String)]) -> Result<LoggedModel> {
        self.update_logged_model(id, |m| m.tags.extend(tags.iter().cloned()))
    }

    pub fn delete_logged_model_tag(&self, id: &str, key: &str) -> Result<LoggedModel> {
        if !self.get_logged_model(id)?.tags.contains_key(key) {
            return Err(StoreError::Missing(format!("No tag with key '{key}' found for logged model with ID '{id}'.")));
        }
        self.update_logged_model(id, |m| {
            m.tags.remove(key);
        })
    }

    pub fn log_logged_model_params(&self, id: &str, params: &[(String, String)]) -> Result<LoggedModel> {
        self.update_logged_model(id, |m| m.params.extend(params.iter().cloned()))
    }

    /// Marks the model deleted; its files and the versions registered from it stay.
    pub fn delete_logged_model(&self, id: &str) -> Result<()> {
        self.get_logged_model(id)?;
        self.c.write("delete the logged model", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "UPDATE logged_models SET deleted = 1, updated_ms = ?2 WHERE model_id = ?1",
                params![id, crate::now_ms()],
            )
            .map_err(self.c.err("delete the logged model"))?;
            j.touch(tx, "model", "logged_models", &[id.into()]).map_err(self.c.err("delete the logged model"))
        })
    }

    /// The models of `experiments` (all when empty), newest first.
    pub fn logged_models(&self, experiments: &[i64]) -> Result<Vec<LoggedModel>> {
        let mut stmt = self
            .c
            .db
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM logged_models WHERE deleted = 0 ORDER BY creation_ms DESC, model_id"
            ))
            .map_err(self.c.err("search logged models"))?;
        let rows = stmt.query_map(params![], row).map_err(self.c.err("search logged models"))?;
        let mut out = Vec::new();
        for r in rows {
            let m = r.map_err(self.c.err("search logged models"))?;
            if experiments.is_empty() || experiments.contains(&m.experiment_id) {
                out.push(m);
            }
        }
        drop(stmt);
        for m in &mut out {
            m.metrics = self.model_metrics(&m.model_id)?;
        }
        Ok(out)
    }

    /// `POST /runs/outputs`: the logged models a run produced, at a step.
    pub fn log_run_outputs(&self, run: &str, models: &[(String, i64)]) -> Result<()> {
        self.get_tracked_run(run)?;
        for (id, _) in models {
            self.get_logged_model(id)?;
        }
        self.c.write("record the run's outputs", TransactionBehavior::Immediate, |tx, j| {
            tx.lock_key(run).map_err(self.c.err("record the run's outputs"))?;
            for (id, step) in models {
                tx.execute(
                    "INSERT INTO run_model_outputs VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![run, id, step],
                )
                .map_err(self.c.err("record the run's outputs"))?;
                j.touch(
                    tx,
                    "outputs",
                    "run_model_outputs",
                    &[run.into(), id.as_str().into(), crate::db::Val::Int(*step)],
                )
                .map_err(self.c.err("record the run's outputs"))?;
            }
            Ok(())
        })
    }

    /// `POST /runs/log-inputs`' `models`: the logged models a run took as inputs.
    pub fn log_run_model_inputs(&self, run: &str, models: &[String]) -> Result<()> {
        self.get_tracked_run(run)?;
        for id in models {
            self.get_logged_model(id)?;
        }
        self.c.write("record the run's model inputs", TransactionBehavior::Immediate, |tx, j| {
            tx.lock_key(run).map_err(self.c.err("record the run's model inputs"))?;
            for id in models {
                let n = tx
                    .execute("INSERT INTO run_model_inputs VALUES (?1, ?2) ON CONFLICT DO NOTHING", params![run, id])
                    .map_err(self.c.err("record the run's model inputs"))?;
                if n > 0 {
                    j.touch(tx, "inputs", "run_model_inputs", &[run.into(), id.as_str().into()])
                        .map_err(self.c.err("record the run's model inputs"))?;
                }
            }
            Ok(())
        })
    }

    pub fn run_model_inputs(&self, run: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .c
            .db
            .prepare_cached("SELECT model_id FROM run_model_inputs WHERE run_id = ?1 ORDER BY model_id")
            .map_err(self.c.err("read the run's model inputs"))?;
        let rows = stmt.query_map([run], |r| r.get(0)).map_err(self.c.err("read the run's model inputs"))?;
        rows.collect::<crate::db::DbResult<Vec<_>>>().map_err(self.c.err("read the run's model inputs"))
    }

    pub fn run_outputs(&self, run: &str) -> Result<Vec<(String, i64)>> {
        let mut stmt = self
            .c
            .db
            .prepare_cached("SELECT model_id, step FROM run_model_outputs WHERE run_id = ?1 ORDER BY step, model_id")
            .map_err(self.c.err("read the run's outputs"))?;
        let rows =
            stmt.query_map([run], |r| Ok((r.get(0)?, r.get(1)?))).map_err(self.c.err("read the run's outputs"))?;
        rows.collect::<crate::db::DbResult<Vec<_>>>().map_err(self.c.err("read the run's outputs"))
    }

    /// Every artifact file under folder `dir` (recursively): path, object, size.
    pub fn artifacts_under(&self, dir: &str) -> Result<Vec<(String, repro_core::Digest, u64)>> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let end = format!("{prefix}\u{10FFFF}");
        let mut stmt = self
            .c
            .db
            .prepare_cached("SELECT path, object, size FROM artifacts WHERE path >= ?1 AND path < ?2 ORDER BY path")
            .map_err(self.c.err("list artifacts"))?;
        let rows = stmt
            .query_map(params![prefix, end], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(self.c.err("list artifacts"))?;
        let mut out = Vec::new();
        for r in rows {
            let (path, object, size): (String, String, i64) = r.map_err(self.c.err("list artifacts"))?;
            let digest = crate::conn::parse_digest(&object, &path)?;
            out.push((path, digest, size as u64));
        }
        Ok(out)
    }
}
