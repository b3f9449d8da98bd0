//! fsck's verdicts (`fsck_results`): the newest one decides whether registry writes,
//! exports and signatures may go ahead, so damage found once is not forgotten until a
//! clean fsck.

use crate::conn::Conn;
use crate::db::{params, Db, TransactionBehavior};
use crate::Result;

/// The `fsck_results` table.
pub struct Verdicts<'a> {
    pub(crate) c: Conn<'a>,
}

impl Verdicts<'_> {
    /// Keeps fsck's verdict, so registry writes, exports and signatures wait while the last
    /// fsck found damage (see `damage`).
    pub(crate) fn record_fsck(&self, clean: bool, problems: &[String]) -> Result<()> {
        self.record_verdict(clean, problems)
    }

    /// Keeps damage a check outside fsck found (a registry write refused), so that every
    /// later registry write waits until a clean fsck.
    pub fn record_damage(&self, problems: &[String]) -> Result<()> {
        self.record_verdict(false, problems)
    }

    fn record_verdict(&self, clean: bool, problems: &[String]) -> Result<()> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let json = serde_json::to_string(&problems).expect("strings serialize");
        self.c.write("record the fsck verdict", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "INSERT INTO fsck_results (id, at_ms, host, clean, problems) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, crate::now_ms(), crate::process::hostname(), clean, json],
            )
            .map_err(self.c.err("record the fsck verdict"))?;
            j.touch(tx, "fsck", "fsck_results", &[id.as_str().into()]).map_err(self.c.err("record the fsck verdict"))
        })
    }

    /// What the newest fsck verdict says is damaged (empty: it found the store clean, or no
    /// fsck has run), with when it ran.
    pub fn last_damage(&self) -> Result<Option<(i64, Vec<String>)>> {
        self.last_damage_in(self.c.db)
    }

    /// [`Verdicts::last_damage`], read inside the caller's transaction.
    pub(crate) fn last_damage_in(&self, conn: &Db) -> Result<Option<(i64, Vec<String>)>> {
        let rows = conn
            .query_rows(
                "SELECT at_ms, clean, problems FROM fsck_results ORDER BY at_ms DESC, id DESC LIMIT 1",
                params![],
            )
            .map_err(self.c.err("read the fsck verdict"))?;
        let Some(r) = rows.first() else { return Ok(None) };
        let clean: bool = r.get(1).map_err(self.c.err("read the fsck verdict"))?;
        if clean {
            return Ok(None);
        }
        let at: i64 = r.get(0).map_err(self.c.err("read the fsck verdict"))?;
        let problems: String = r.get(2).map_err(self.c.err("read the fsck verdict"))?;
        Ok(Some((at, serde_json::from_str(&problems).unwrap_or_else(|_| vec![problems]))))
    }
}
