//! The tracking side of runs: creating them through MLflow, reading and searching them,
//! logging params, tags, metrics and inputs, and changing their name, stage and status.

use super::*;

impl Tracking<'_> {
    /// `POST /runs/create`: a tracking-only run in `experiment_id`.
    #[allow(clippy::too_many_arguments)]
    pub fn create_tracked_run(
        &mut self,
        id: &RunId,
        experiment_id: i64,
        user_id: &str,
        run_name: &str,
        start_time: i64,
        tags: &[(String, String)],
        host: &str,
    ) -> Result<()> {
        let path = self.c.path.to_path_buf();
        let tx = self
            .c
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db(&path, "create run", e))?;
        let stage: Option<String> = tx
            .query_row("SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?1", [experiment_id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| db(&path, "create run", e))?;
        match stage.as_deref() {
            None => return Err(not_found(format!("No Experiment with id={experiment_id} exists"))),
            Some("active") => {}
            Some(_) => {
                return Err(invalid(format!(
                    "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
                )))
            }
        }
        let record = RunRecord::tracking_only(
            id.clone(),
            Some(run_name.to_string()),
            user_id.to_string(),
            host.to_string(),
            crate::rfc3339(start_time),
        );
        let json = serde_json::to_string(&record).expect("records serialize");
        tx.execute(
            "INSERT INTO runs (id, name, status, exit_code, started_ms, host, pid, pid_start, record)
             VALUES (?1, ?2, 'running', NULL, ?3, ?4, NULL, NULL, ?5)",
            params![id.as_str(), run_name, start_time, host, json],
        )
        .map_err(|e| db(&path, "create run", e))?;
        let artifact_uri = format!("mlflow-artifacts:/{experiment_id}/{id}/artifacts");
        tx.execute(
            "INSERT INTO tracking (run_id, experiment_id, user_id, lifecycle_stage, artifact_uri, origin)
             VALUES (?1, ?2, ?3, 'active', ?4, 'api')",
            params![id.as_str(), experiment_id, user_id, artifact_uri],
        )
        .map_err(|e| db(&path, "create run", e))?;
        let mut all_tags = tags.to_vec();
        all_tags.push((RUN_NAME_TAG.to_string(), run_name.to_string()));
        for (k, v) in &all_tags {
            tx.execute("INSERT INTO run_tags VALUES (?1, ?2, ?3) ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value", params![id.as_str(), k, v])
                .map_err(|e| db(&path, "tag run", e))?;
        }
        let mut j = Journal::new();
        for table in ["runs", "tracking", "run_tags"] {
            j.touch_run_rows(&tx, "create", table, id.as_str()).map_err(|e| db(&path, "create run", e))?;
        }
        j.append(&tx, start_time).map_err(|e| db(&path, "create run", e))?;
        tx.commit().map_err(|e| db(&path, "create run", e))
    }

    /// Gives a run `repro run` owns its tracking row, so a script's MLflow calls land in it.
    pub fn adopt_run(&self, id: &RunId, experiment_id: i64, user_id: &str) -> Result<()> {
        let artifact_uri = format!("mlflow-artifacts:/{experiment_id}/{id}/artifacts");
        self.c.write("adopt run", TransactionBehavior::Immediate, |tx, j| {
            tx.lock_key(id.as_str()).map_err(self.c.err("adopt run"))?;
            tx.execute(
                "INSERT INTO tracking (run_id, experiment_id, user_id, lifecycle_stage, artifact_uri)
                 VALUES (?1, ?2, ?3, 'active', ?4) ON CONFLICT DO NOTHING",
                params![id.as_str(), experiment_id, user_id, artifact_uri],
            )
            .map_err(self.c.err("adopt run"))?;
            j.touch(tx, "create", "tracking", &[id.as_str().into()]).map_err(self.c.err("adopt run"))
        })
    }

    /// Reads runs (`search::RUN_COLUMNS` per row, in the statement's order) with their data.
    pub(crate) fn read_runs(
        &self,
        sql: &str,
        args: &[&dyn crate::db::Arg],
        params: ParamSource,
    ) -> Result<Vec<TrackedRun>> {
        let mut stmt = self.c.db.prepare_cached(sql).map_err(self.c.err("read runs"))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, bool>(9)?,
                ))
            })
            .map_err(self.c.err("read runs"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, experiment_id, user_id, status, start, end, artifact_uri, stage, captured) =
                row.map_err(self.c.err("read runs"))?;
            let run_id =
                RunId::parse(&id).map_err(|e| StoreError::BadRecord { run: id.clone(), message: e.to_string() })?;
            out.push(TrackedRun {
                run_id,
                run_name: name.unwrap_or_default(),
                experiment_id,
                user_id,
                status: mlflow_status(&status),
                start_time: start,
                end_time: end,
                artifact_uri,
                lifecycle_stage: stage,
                captured,
                metrics: Vec::new(),
                params: BTreeMap::new(),
                tags: BTreeMap::new(),
                inputs: Vec::new(),
            });
        }
        self.fill_run_data(&mut out, params)?;
        Ok(out)
    }

    /// Loads params, tags, latest metrics and inputs for `runs`: one query per table, each an
    /// index lookup per run (the ids travel as one JSON array).
    fn fill_run_data(&self, runs: &mut [TrackedRun], params: ParamSource) -> Result<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let index: HashMap<String, usize> = runs.iter().enumerate().map(|(i, r)| (r.run_id.to_string(), i)).collect();
        let ids = serde_json::Value::from(index.keys().map(String::as_str).collect::<Vec<_>>()).to_string();
        let mut each =
            |context: &str,
             sql: &str,
             f: &mut dyn FnMut(&mut TrackedRun, &crate::db::Row) -> crate::db::DbResult<()>| {
                let mut run = || -> crate::db::DbResult<()> {
                    for row in self.c.db.query_rows(sql, [&ids])? {
                        let id: String = row.get(0)?;
                        if let Some(&i) = index.get(&id) {
                            f(&mut runs[i], &row)?;
                        }
                    }
                    Ok(())
                };
                run().map_err(self.c.err(context))
            };
        each(
            "read params",
            "SELECT run_id, key, value FROM run_params WHERE run_id IN (SELECT value FROM json_each(?1))",
            &mut |r, row| {
                r.params.insert(row.get(1)?, row.get(2)?);
                Ok(())
            },
        )?;
        if params == ParamSource::WithRecord {
            // What a captured run's record holds until its finish copies it into run_params;
            // a logged value wins.
            each(
                "read params",
                &format!(
                    "SELECT r.id, j.key, CASE WHEN j.type = 'text' THEN j.value ELSE r.record -> j.fullkey END
                     FROM {}, json_each(r.record, '$.params.values') j
                     WHERE r.id IN (SELECT value FROM json_each(?1)) AND r.lineage IS NULL
                       AND COALESCE(t.origin, 'run') = 'run'",
                    search::RUN_SOURCE
                ),
                &mut |r, row| {
                    let key: String = row.get(1)?;
                    if let std::collections::btree_map::Entry::Vacant(e) = r.params.entry(key) {
                        e.insert(row.get(2)?);
                    }
                    Ok(())
                },
            )?;
        }
        each(
            "read tags",
            "SELECT run_id, key, value FROM run_tags WHERE run_id IN (SELECT value FROM json_each(?1))",
            &mut |r, row| {
                r.tags.insert(row.get(1)?, row.get(2)?);
                Ok(())
            },
        )?;
        each(
            "read metrics",
            "SELECT run_id, key, CASE WHEN is_nan THEN NULL ELSE value END, step, timestamp_ms FROM latest_metrics
             WHERE run_id IN (SELECT value FROM json_each(?1)) ORDER BY run_id, key",
            &mut |r, row| {
                r.metrics.push(LatestMetric {
                    key: row.get(1)?,
                    value: row.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
                    step: row.get(3)?,
                    timestamp: row.get(4)?,
                });
                Ok(())
            },
        )?;
        each(
            "read inputs",
            "SELECT run_id, name, digest, source_type, source, schema, profile, tags FROM run_inputs
             WHERE run_id IN (SELECT value FROM json_each(?1)) ORDER BY rowid",
            &mut |r, row| {
                let tags: String = row.get(7)?;
                r.inputs.push(DatasetInput {
                    name: row.get(1)?,
                    digest: row.get(2)?,
                    source_type: row.get(3)?,
                    source: row.get(4)?,
                    schema: row.get(5)?,
                    profile: row.get(6)?,
                    tags: serde_json::from_str(&tags).unwrap_or_default(),
                });
                Ok(())
            },
        )?;
        Ok(())
    }

    pub fn get_tracked_run(&self, id: &str) -> Result<TrackedRun> {
        let sql = format!("SELECT {} FROM {} WHERE r.id = ?1", search::RUN_COLUMNS, search::RUN_SOURCE);
        self.read_runs(&sql, &[&id], ParamSource::Logged)?
            .into_iter()
            .next()
            .ok_or_else(|| not_found(format!("Run with id={id} not found")))
    }

    /// `search_runs`: one page of the runs `q` asks for, in its order, with their data. The
    /// filter, order and page are answered in SQL (`search.rs`), so only the page is read.
    pub fn search_runs(&self, q: &RunQuery<'_>) -> Result<Vec<TrackedRun>> {
        let driver = self.pick_driver(q)?;
        if driver.is_none() && search::sorted_by_metric(q) {
            return self.search_metric_first(q);
        }
        self.read_statement(search::select(q, driver), q.params)
    }

    /// A search sorted first by a metric, without a clause worth narrowing by: the runs with a
    /// real value come from the metric's index in order (the first page reads about a page,
    /// not every run), and only a page that reaches past them reads the others.
    pub(crate) fn search_metric_first(&self, q: &RunQuery<'_>) -> Result<Vec<TrackedRun>> {
        let limit = q.limit.unwrap_or(usize::MAX);
        let mut page = self.read_statement(search::select_part(q, None, search::Part::Valued), q.params)?;
        if page.len() >= limit {
            return Ok(page);
        }
        // The valued runs ended on this page, or before it (then count them to know where).
        let valued = match page.is_empty() {
            true => self.count(search::count_valued(q))?,
            false => q.offset + page.len(),
        };
        let rest = RunQuery { offset: q.offset.saturating_sub(valued), limit: Some(limit - page.len()), ..*q };
        page.extend(self.read_statement(search::select_part(&rest, None, search::Part::Unvalued), q.params)?);
        Ok(page)
    }

    fn read_statement(&self, st: search::Statement, params: ParamSource) -> Result<Vec<TrackedRun>> {
        let args: Vec<&dyn crate::db::Arg> = st.args.iter().map(|a| a as &dyn crate::db::Arg).collect();
        self.read_runs(&st.sql, &args, params)
    }

    /// How many runs `q` matches, whatever its page.
    pub fn count_runs(&self, q: &RunQuery<'_>) -> Result<usize> {
        self.count(search::count(q, None))
    }

    /// How many runs `q` matches, counting no further than `cap` (the answer is then `cap`):
    /// a table that says "10,000+" need not walk 100,000 runs to say so.
    pub fn count_runs_upto(&self, q: &RunQuery<'_>, cap: usize) -> Result<usize> {
        // Without clauses the count is exact and cheap whatever the cap.
        Ok(self.count(search::count(q, Some(cap)))?.min(cap))
    }

    fn count(&self, st: search::Statement) -> Result<usize> {
        let args: Vec<&dyn crate::db::Arg> = st.args.iter().map(|a| a as &dyn crate::db::Arg).collect();
        let n: i64 = self
            .c
            .db
            .prepare_cached(&st.sql)
            .and_then(|mut s| s.query_row(args.as_slice(), |r| r.get(0)))
            .map_err(self.c.err("count runs"))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Whether to narrow `q` through the index of one of its clauses first (`search::drivers`).
    ///
    /// Without one, the search walks the runs in the default order (`runs_started`) and stops
    /// once the page is full: cheap when matches are common, a walk of every run when they are
    /// rare. Narrowing reads only the clause's runs but must sort them all. So: count the
    /// clause's runs (up to where the answer is clear) and narrow when that costs less than the
    /// expected walk.
    fn pick_driver<'a>(&self, q: &RunQuery<'a>) -> Result<Option<search::Driver<'a>>> {
        let candidates = search::drivers(q);
        if candidates.is_empty() {
            return Ok(None);
        }
        // An upper bound on the number of runs: rowids are never reused (AUTOINCREMENT).
        let total: i64 = self
            .c
            .db
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM runs")
            .and_then(|mut s| s.query_row(params![], |r| r.get(0)))
            .map_err(self.c.err("count runs"))?;
        let total = total.max(1) as f64;
        // A narrowed run costs about a lookup and its share of a sort; a walked run, a lookup.
        const NARROW_COST: f64 = 3.0;
        let wanted = match q.limit {
            Some(limit) if q.order.is_empty() => Some((q.offset.saturating_add(limit).saturating_add(1)) as f64),
            _ => None,
        };
        // Narrowing pays when count × NARROW_COST < the walk: the whole table when the walk
        // cannot stop early, else about wanted × total / count runs.
        let cap = match wanted {
            None => total / NARROW_COST,
            Some(w) => (w * total / NARROW_COST).sqrt().min(total / NARROW_COST),
        };
        let mut cap = cap.ceil() as usize + 1;
        let mut best = None;
        for d in candidates {
            let st = search::driver_count(d, cap);
            let args: Vec<&dyn crate::db::Arg> = st.args.iter().map(|a| a as &dyn crate::db::Arg).collect();
            let n: i64 = self
                .c
                .db
                .prepare_cached(&st.sql)
                .and_then(|mut s| s.query_row(args.as_slice(), |r| r.get(0)))
                .map_err(self.c.err("plan the search"))?;
            let n = usize::try_from(n).unwrap_or(cap);
            if n < cap {
                // Only a clause with fewer runs can beat this one: count the rest up to here.
                best = Some(d);
                cap = n;
            }
        }
        Ok(best)
    }

    fn active_run(tx: &Db, path: &std::path::Path, id: &str) -> Result<()> {
        let stage: Option<String> = tx
            .query_row(
                "SELECT COALESCE(t.lifecycle_stage, 'active') FROM runs r LEFT JOIN tracking t ON t.run_id = r.id WHERE r.id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db(path, "find run", e))?;
        match stage.as_deref() {
            None => Err(not_found(format!("Run with id={id} not found"))),
            Some("active") => Ok(()),
            Some(s) => Err(invalid(format!("The run {id} must be in the 'active' state. Current state is {s}."))),
        }
    }

    /// `log-batch` (and the single-item calls): params immutable, tags last-write-wins,
    /// metrics appended, all in one transaction.
    pub fn log_batch(
        &mut self,
        id: &str,
        metrics: &[MetricIn],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()> {
        let path = self.c.path.to_path_buf();
        // Points of different runs never meet: on PostgreSQL they commit side by side, and
        // only writers to the same run wait for each other (latest_metrics is read, then written).
        let tx =
            self.c.db.transaction_with_behavior(TransactionBehavior::Concurrent).map_err(|e| db(&path, "log", e))?;
        tx.lock_key(id).map_err(|e| db(&path, "log", e))?;
        Self::active_run(&tx, &path, id)?;
        let mut j = Journal::new();
        {
            let mut get = tx
                .prepare_cached("SELECT value FROM run_params WHERE run_id = ?1 AND key = ?2")
                .map_err(|e| db(&path, "log params", e))?;
            let mut put = tx
                .prepare_cached("INSERT INTO run_params VALUES (?1, ?2, ?3)")
                .map_err(|e| db(&path, "log params", e))?;
            for (k, v) in params {
                let old: Option<String> =
                    get.query_row(params![id, k], |r| r.get(0)).optional().map_err(|e| db(&path, "log params", e))?;
                match old {
                    Some(old) if &old == v => {}
                    Some(old) => {
                        return Err(invalid(format!(
                            "Changing param values is not allowed. Param with key='{k}' was already logged with value='{old}' for run ID='{id}'. Attempted logging new value '{v}'."
                        )))
                    }
                    None => {
                        put.execute(params![id, k, v]).map_err(|e| db(&path, "log params", e))?;
                        j.set("log", "run_params", &[id.into(), k.as_str().into()], &[v.as_str().into()]);
                    }
                }
            }
            let mut tag = tx
                .prepare_cached("INSERT INTO run_tags VALUES (?1, ?2, ?3) ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value")
                .map_err(|e| db(&path, "set tags", e))?;
            for (k, v) in tags {
                tag.execute(params![id, k, v]).map_err(|e| db(&path, "set tags", e))?;
                j.set("log", "run_tags", &[id.into(), k.as_str().into()], &[v.as_str().into()]);
                if k == RUN_NAME_TAG {
                    tx.execute("UPDATE runs SET name = ?2 WHERE id = ?1", params![id, v])
                        .map_err(|e| db(&path, "rename run", e))?;
                    j.touch(&tx, "log", "runs", &[id.into()]).map_err(|e| db(&path, "rename run", e))?;
                }
            }
            let mut point = tx
                .prepare_cached(
                    "INSERT INTO metrics (run_id, key, value, step, timestamp_ms, is_nan) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(|e| db(&path, "log metrics", e))?;
            let mut model_point = tx
                .prepare_cached(
                    "INSERT INTO logged_model_metrics (run_id, model_id, key, value, is_nan, step, timestamp_ms, dataset_name, dataset_digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(|e| db(&path, "log metrics", e))?;
            // A point naming a model that does not exist would be lineage to nothing.
            let mut named: Vec<&str> =
                metrics.iter().filter_map(|m| m.model.as_ref().map(|p| p.model_id.as_str())).collect();
            named.sort_unstable();
            named.dedup();
            for model in named {
                let there: Option<i64> = tx
                    .query_row("SELECT 1 FROM logged_models WHERE model_id = ?1 AND deleted = 0", [model], |r| r.get(0))
                    .optional()
                    .map_err(|e| db(&path, "log metrics", e))?;
                if there.is_none() {
                    return Err(not_found(format!("Logged model with ID '{model}' not found.")));
                }
            }
            // Only the latest point of each key in the batch can become the key's latest, so
            // `latest_metrics` is read and written once a key, not once a point.
            let mut latest: HashMap<&str, &MetricIn> = HashMap::new();
            for m in metrics {
                let (stored, nan) = storable(m.value);
                point
                    .execute(params![id, m.key, stored, m.step, m.timestamp, nan])
                    .map_err(|e| db(&path, "log metrics", e))?;
                j.add(
                    "log",
                    "metrics",
                    &[id.into(), m.key.as_str().into()],
                    &[Val::Real(stored), Val::Int(m.step), Val::Int(m.timestamp), Val::Int(i64::from(nan))],
                );
                if let Some(mp) = &m.model {
                    model_point
                        .execute(params![
                            id,
                            mp.model_id,
                            m.key,
                            stored,
                            nan,
                            m.step,
                            m.timestamp,
                            mp.dataset_name,
                            mp.dataset_digest
                        ])
                        .map_err(|e| db(&path, "log the logged model's metrics", e))?;
                    j.add(
                        "log",
                        "logged_model_metrics",
                        &[id.into(), mp.model_id.as_str().into(), m.key.as_str().into()],
                        &[
                            Val::Real(stored),
                            Val::Int(i64::from(nan)),
                            Val::Int(m.step),
                            Val::Int(m.timestamp),
                            mp.dataset_name.as_str().into(),
                            mp.dataset_digest.as_str().into(),
                        ],
                    );
                }
                latest
                    .entry(&m.key)
                    .and_modify(|best| {
                        if later(point_order(m), point_order(best)) {
                            *best = m;
                        }
                    })
                    .or_insert(m);
            }
            let mut latest_get = tx
                .prepare_cached(
                    "SELECT CASE WHEN is_nan THEN NULL ELSE value END, step, timestamp_ms FROM latest_metrics WHERE run_id = ?1 AND key = ?2",
                )
                .map_err(|e| db(&path, "log metrics", e))?;
            let mut latest_put = tx
                .prepare_cached("INSERT INTO latest_metrics VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, step = excluded.step,     timestamp_ms = excluded.timestamp_ms, is_nan = excluded.is_nan")
                .map_err(|e| db(&path, "log metrics", e))?;
            for m in latest.into_values() {
                let cur: Option<(f64, i64, i64)> = latest_get
                    .query_row(params![id, m.key], |r| {
                        Ok((r.get::<_, Option<f64>>(0)?.unwrap_or(f64::NAN), r.get(1)?, r.get(2)?))
                    })
                    .optional()
                    .map_err(|e| db(&path, "log metrics", e))?;
                let newer = match cur {
                    None => true,
                    Some((v, s, t)) => later(point_order(m), (s, t, v)),
                };
                if newer {
                    let (stored, nan) = storable(m.value);
                    latest_put
                        .execute(params![id, m.key, stored, m.step, m.timestamp, nan])
                        .map_err(|e| db(&path, "log metrics", e))?;
                }
            }
        }
        j.append(&tx, crate::now_ms()).map_err(|e| db(&path, "log", e))?;
        tx.commit().map_err(|e| db(&path, "log", e))
    }

    pub fn delete_run_tag(&mut self, id: &str, key: &str) -> Result<()> {
        let path = self.c.path.to_path_buf();
        let tx = self
            .c
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db(&path, "delete tag", e))?;
        Self::active_run(&tx, &path, id)?;
        let n = tx
            .execute("DELETE FROM run_tags WHERE run_id = ?1 AND key = ?2", params![id, key])
            .map_err(|e| db(&path, "delete tag", e))?;
        if n == 0 {
            return Err(not_found(format!("No tag with name: {key} in run with id {id}")));
        }
        let mut j = Journal::new();
        j.delete("untag", "run_tags", &[id.into(), key.into()]);
        j.append(&tx, crate::now_ms()).map_err(|e| db(&path, "delete tag", e))?;
        tx.commit().map_err(|e| db(&path, "delete tag", e))
    }

    pub fn log_inputs(&mut self, id: &str, inputs: &[DatasetInput]) -> Result<()> {
        let path = self.c.path.to_path_buf();
        let tx = self
            .c
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db(&path, "log inputs", e))?;
        Self::active_run(&tx, &path, id)?;
        let mut j = Journal::new();
        for d in inputs {
            let tags = serde_json::to_string(&d.tags).expect("tags serialize");
            tx.execute(
                "INSERT INTO run_inputs (run_id, name, digest, source_type, source, schema, profile, tags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(run_id, name, digest) DO UPDATE SET tags = excluded.tags",
                params![id, d.name, d.digest, d.source_type, d.source, d.schema, d.profile, tags],
            )
            .map_err(|e| db(&path, "log inputs", e))?;
            j.touch(&tx, "inputs", "run_inputs", &[id.into(), d.name.as_str().into(), d.digest.as_str().into()])
                .map_err(|e| db(&path, "log inputs", e))?;
        }
        j.append(&tx, crate::now_ms()).map_err(|e| db(&path, "log inputs", e))?;
        tx.commit().map_err(|e| db(&path, "log inputs", e))
    }

    pub fn set_run_stage(&self, id: &str, stage: &str) -> Result<()> {
        self.get_tracked_run(id)?;
        let now = crate::now_ms();
        self.c.write("update run", TransactionBehavior::Immediate, |tx, j| {
            tx.lock_key(id).map_err(self.c.err("update run"))?;
            tx.execute(
                "INSERT INTO tracking (run_id, experiment_id, user_id, lifecycle_stage, artifact_uri, deleted_time)
                 VALUES (?1, 0, '', ?2, 'mlflow-artifacts:/0/' || ?1 || '/artifacts', ?3)
                 ON CONFLICT(run_id) DO UPDATE SET lifecycle_stage = excluded.lifecycle_stage, deleted_time = excluded.deleted_time",
                params![id, stage, (stage == "deleted").then_some(now)],
            )
            .map_err(self.c.err("update run"))?;
            j.touch(tx, "lifecycle", "tracking", &[id.into()]).map_err(self.c.err("update run"))
        })
    }

    /// A page of a metric's history, in (step, timestamp) order.
    pub fn metric_history(&self, id: &str, key: &str, offset: usize, limit: usize) -> Result<Vec<LatestMetric>> {
        self.get_tracked_run(id)?;
        let mut stmt = self
            .c
            .db
            .prepare_cached(
                "SELECT key, CASE WHEN is_nan THEN NULL ELSE value END, step, timestamp_ms FROM metrics WHERE run_id = ?1 AND key = ?2
                 ORDER BY step, timestamp_ms, rowid LIMIT ?3 OFFSET ?4",
            )
            .map_err(self.c.err("read metric history"))?;
        let rows = stmt
            .query_map(
                params![id, key, i64::try_from(limit).unwrap_or(i64::MAX), i64::try_from(offset).unwrap_or(i64::MAX)],
                |r| {
                    Ok(LatestMetric {
                        key: r.get(0)?,
                        value: r.get::<_, Option<f64>>(1)?.unwrap_or(f64::NAN),
                        step: r.get(2)?,
                        timestamp: r.get(3)?,
                    })
                },
            )
            .map_err(self.c.err("read metric history"))?;
        rows.collect::<crate::db::DbResult<Vec<_>>>().map_err(self.c.err("read metric history"))
    }

    /// The datasets logged as inputs of the runs of these experiments, once each per
    /// (experiment, name, digest, context), at most `limit` — MLflow's `search-datasets`,
    /// which its web UI uses to list an experiment's datasets.
    pub fn dataset_summaries(&self, experiment_ids: &[i64], limit: usize) -> Result<Vec<DatasetSummary>> {
        let mut stmt = self
            .c
            .db
            .prepare_cached(
                "SELECT t.experiment_id, i.name, i.digest, i.tags FROM run_inputs i
                 JOIN tracking t ON t.run_id = i.run_id WHERE t.experiment_id = ?1
                 ORDER BY i.name, i.digest",
            )
            .map_err(self.c.err("read dataset inputs"))?;
        let mut out = std::collections::BTreeSet::new();
        for &experiment_id in experiment_ids {
            let rows = stmt
                .query_map(params![experiment_id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
                })
                .map_err(self.c.err("read dataset inputs"))?;
            for row in rows {
                let (experiment_id, name, digest, tags) = row.map_err(self.c.err("read dataset inputs"))?;
                let tags: BTreeMap<String, String> = serde_json::from_str(&tags).unwrap_or_default();
                let context = tags.get("mlflow.data.context").cloned();
                out.insert(DatasetSummary { experiment_id, name, digest, context });
                if out.len() >= limit {
                    return Ok(out.into_iter().collect());
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Ends a tracking-only run: its status, end time, and the params it logged go into the
    /// final record, whose lineage digest is then computed by the caller.
    pub fn tracked_params(&self, id: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.get_tracked_run(id)?.params)
    }

    /// Renames a run (MLflow `runs/update` with `run_name`).
    pub fn rename_run(&self, id: &str, name: &str) -> Result<()> {
        self.c.write("rename run", TransactionBehavior::Immediate, |tx, j| {
            tx.lock_key(id).map_err(self.c.err("rename run"))?;
            tx.execute("UPDATE runs SET name = ?2 WHERE id = ?1", params![id, name]).map_err(self.c.err("rename run"))?;
            tx.execute("INSERT INTO run_tags VALUES (?1, ?2, ?3) ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value", params![id, RUN_NAME_TAG, name])
                .map_err(self.c.err("rename run"))?;
            j.touch(tx, "update", "runs", &[id.into()]).map_err(self.c.err("rename run"))?;
            j.touch(tx, "update", "run_tags", &[id.into(), RUN_NAME_TAG.into()]).map_err(self.c.err("rename run"))
        })
    }

    /// The status of a tracking-only run that has not ended (no lineage yet) moves; a
    /// captured run's status belongs to its `repro run` process and is left alone.
    pub fn set_tracked_status(&self, id: &str, status: &str) -> Result<()> {
        self.c.write("update run", TransactionBehavior::Immediate, |tx, j| {
            tx.lock_key(id).map_err(self.c.err("update run"))?;
            let n = tx
                .execute(
                    "UPDATE runs SET status = ?2 WHERE id = ?1 AND pid IS NULL AND lineage IS NULL",
                    params![id, status],
                )
                .map_err(self.c.err("update run"))?;
            if n > 0 {
                j.touch(tx, "update", "runs", &[id.into()]).map_err(self.c.err("update run"))?;
            }
            Ok(())
        })
    }
}
