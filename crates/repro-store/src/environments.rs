//! Registered environments (`repro env register`): each name's versions, one per distinct
//! environment identity.

use repro_core::Digest;

use crate::conn::{db, parse_digest, Conn};
use crate::db::{params, OptionalExtension, TransactionBehavior, Val};
use crate::journal::Journal;
use crate::{Result, StoreError};

/// A registered environment version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnvironmentRow {
    pub name: String,
    pub version: u32,
    /// The `EnvironmentSpec` object.
    pub spec: Digest,
    /// `declared` or `installed`.
    pub kind: String,
    /// Where it was registered from (a path, for people).
    pub source: String,
    pub created_ms: i64,
}

/// The `environments` table.
pub struct Environments<'a> {
    pub(crate) c: Conn<'a>,
}

impl Environments<'_> {
    /// Registers `spec` (an object already stored) under `name`: the existing version when
    /// content of the same `identity` was registered before, else the next one. Returns it
    /// and whether it is new.
    pub fn register(
        &self,
        name: &str,
        identity: &Digest,
        spec: &Digest,
        kind: &str,
        source: &str,
    ) -> Result<(EnvironmentRow, bool)> {
        let path = self.c.path.to_path_buf();
        let e = |c: &'static str| {
            let path = path.clone();
            move |err| db(&path, c, err)
        };
        let tx = self.c.db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(e("register"))?;
        let existing: Option<(u32, String, String, String, i64)> = tx
            .query_row(
                "SELECT version, spec, kind, source, created_ms FROM environments WHERE name = ?1 AND identity = ?2",
                params![name, identity.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(e("find environment"))?;
        if let Some((version, spec, kind, source, created_ms)) = existing {
            let spec = Digest::parse(&spec)
                .map_err(|err| StoreError::BadRecord { run: format!("{name}:{version}"), message: err.to_string() })?;
            return Ok((EnvironmentRow { name: name.into(), version, spec, kind, source, created_ms }, false));
        }
        let version: u32 = tx
            .query_row("SELECT COALESCE(MAX(version), 0) + 1 FROM environments WHERE name = ?1", [name], |r| r.get(0))
            .map_err(e("number environment version"))?;
        let created_ms = crate::now_ms();
        tx.execute(
            "INSERT INTO environments (name, version, identity, spec, kind, source, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![name, version, identity.as_str(), spec.as_str(), kind, source, created_ms],
        )
        .map_err(e("register environment"))?;
        let mut j = Journal::new();
        j.touch(&tx, "environment", "environments", &[name.into(), Val::Int(version.into())])
            .map_err(e("register environment"))?;
        j.append(&tx, created_ms).map_err(e("register environment"))?;
        tx.commit().map_err(e("register environment"))?;
        let row = EnvironmentRow {
            name: name.into(),
            version,
            spec: spec.clone(),
            kind: kind.into(),
            source: source.into(),
            created_ms,
        };
        Ok((row, true))
    }

    fn read(&self, sql: &str, args: &[&dyn crate::db::Arg]) -> Result<Vec<EnvironmentRow>> {
        self.c.rows(
            "read environments",
            sql,
            args,
            |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            |(name, version, spec, kind, source, created_ms): (String, u32, String, String, String, i64)| {
                let spec = parse_digest(&spec, &name)?;
                Ok(EnvironmentRow { name, version, spec, kind, source, created_ms })
            },
        )
    }

    /// `NAME` (the newest version) or `NAME` at `version`.
    pub fn get(&self, name: &str, version: Option<u32>) -> Result<Option<EnvironmentRow>> {
        const COLS: &str = "name, version, spec, kind, source, created_ms";
        let rows = match version {
            Some(v) => {
                self.read(&format!("SELECT {COLS} FROM environments WHERE name = ?1 AND version = ?2"), &[&name, &v])?
            }
            None => self.read(
                &format!("SELECT {COLS} FROM environments WHERE name = ?1 ORDER BY version DESC LIMIT 1"),
                &[&name],
            )?,
        };
        Ok(rows.into_iter().next())
    }

    /// Every registered environment version, by name then version.
    pub fn list(&self) -> Result<Vec<EnvironmentRow>> {
        self.read("SELECT name, version, spec, kind, source, created_ms FROM environments ORDER BY name, version", &[])
    }
}
