//! What every table group's repository borrows: the database connection and the name
//! messages give it, with the two things each of them does — name a failure, and write in a
//! transaction that journals what it changed.

use std::path::Path;

use crate::db::{Db, DbError, TransactionBehavior};
use crate::journal::Journal;
use repro_core::Digest;

use crate::{Result, StoreError};

/// A borrowed connection to the metadata database.
#[derive(Clone, Copy)]
pub(crate) struct Conn<'a> {
    pub(crate) db: &'a Db,
    /// What messages call the database: the SQLite file, or the PostgreSQL URL.
    pub(crate) path: &'a Path,
}

impl<'a> Conn<'a> {
    pub(crate) fn err(&self, context: &str) -> impl FnOnce(DbError) -> StoreError + 'a {
        let (path, context) = (self.path, context.to_string());
        move |e| db(path, &context, e)
    }

    /// Runs `f` in a write transaction and appends what it journaled, in the same
    /// transaction: a change and its journal entry land together or not at all.
    pub(crate) fn write<T>(
        &self,
        context: &str,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Db, &mut Journal) -> Result<T>,
    ) -> Result<T> {
        let tx = self.db.transaction_with_behavior(behavior).map_err(self.err(context))?;
        let mut journal = Journal::new();
        let out = f(&tx, &mut journal)?;
        journal.append(&tx, crate::now_ms()).map_err(self.err(context))?;
        tx.commit().map_err(self.err(context))?;
        Ok(out)
    }

    /// Reads the rows `sql` selects: `read` takes each row apart, `build` decodes it.
    pub(crate) fn rows<R, T>(
        &self,
        context: &str,
        sql: &str,
        args: &[&dyn crate::db::Arg],
        read: impl FnMut(&crate::db::Row) -> crate::db::DbResult<R>,
        build: impl Fn(R) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.db.prepare(sql).map_err(self.err(context))?;
        let rows = stmt.query_map(args, read).map_err(self.err(context))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(build(r.map_err(self.err(context))?)?);
        }
        Ok(out)
    }
}

/// A database failure, naming the database and what was being done.
pub(crate) fn db(path: &Path, context: &str, source: DbError) -> StoreError {
    StoreError::Database { path: path.to_path_buf(), context: context.to_string(), source }
}

/// A digest read from a row of `owner` (a run, dataset or environment name).
pub(crate) fn parse_digest(text: &str, owner: &str) -> Result<Digest> {
    Digest::parse(text).map_err(|e| StoreError::BadRecord { run: owner.to_string(), message: e.to_string() })
}
