//! API tokens (`repro token`): who may use a server, and whom each token speaks for. The
//! database holds only each token's hash.

use crate::conn::Conn;
use crate::db::{params, OptionalExtension, TransactionBehavior};
use crate::Result;
use serde::Serialize;

/// The `tokens` table.
pub struct Tokens<'a> {
    pub(crate) c: Conn<'a>,
}

/// Whom a token speaks for: its person, and the key their approvals must be signed with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenPerson {
    pub id: String,
    pub role: String,
    pub name: String,
    pub email: Option<String>,
    pub approver_keyid: Option<String>,
    /// The approver's public key, SPKI PEM.
    #[serde(skip)]
    pub approver_key: Option<String>,
}

impl TokenPerson {
    /// How the registry names the person (`repro_core::actor::token_person`).
    pub fn actor(&self) -> String {
        repro_core::actor::token_person(&self.name, self.email.as_deref(), &self.id)
    }
}

/// An API token as stored: never the token itself, only its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    pub id: String,
    pub role: String,
    pub name: String,
    pub created_ms: i64,
}

/// The stored form of a token: BLAKE3 with a domain tag. Tokens carry 128 random bits, so a
/// fast hash is enough; what matters is that the database never holds the secret.
pub fn token_hash(token: &str) -> String {
    repro_core::Digest::of_bytes(format!("repro-token-v1\n{token}").as_bytes()).to_string()
}

impl Tokens<'_> {
    pub fn create(&self, id: &str, token: &str, role: &str, name: &str) -> Result<()> {
        self.create_for_person(id, token, role, name, None, None)
    }

    /// A token bound to a person: `email`, and for approvals through the server the
    /// public key (key id and SPKI PEM) their approvals must be signed with.
    pub fn create_for_person(
        &self,
        id: &str,
        token: &str,
        role: &str,
        name: &str,
        email: Option<&str>,
        approver: Option<(&str, &str)>,
    ) -> Result<()> {
        self.c.write("store the token", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "INSERT INTO tokens (id, hash, role, name, created_ms, email, approver_keyid, approver_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    token_hash(token),
                    role,
                    name,
                    crate::now_ms(),
                    email,
                    approver.map(|a| a.0),
                    approver.map(|a| a.1)
                ],
            )
            .map_err(self.c.err("store the token"))?;
            j.touch(tx, "token", "tokens", &[id.into()]).map_err(self.c.err("store the token"))
        })
    }

    pub fn list(&self) -> Result<Vec<TokenRow>> {
        let mut stmt = self
            .c
            .db
            .prepare("SELECT id, role, name, created_ms FROM tokens ORDER BY created_ms, id")
            .map_err(self.c.err("list tokens"))?;
        let rows = stmt
            .query_map(params![], |r| {
                Ok(TokenRow { id: r.get(0)?, role: r.get(1)?, name: r.get(2)?, created_ms: r.get(3)? })
            })
            .map_err(self.c.err("list tokens"))?;
        rows.collect::<crate::db::DbResult<Vec<_>>>().map_err(self.c.err("list tokens"))
    }

    pub fn revoke(&self, id: &str) -> Result<bool> {
        self.c.write("revoke the token", TransactionBehavior::Immediate, |tx, j| {
            let n = tx.execute("DELETE FROM tokens WHERE id = ?1", [id]).map_err(self.c.err("revoke the token"))?;
            if n > 0 {
                j.delete("token", "tokens", &[id.into()]);
            }
            Ok(n > 0)
        })
    }

    /// Whether any token exists (then every request must carry one), and the role of
    /// `token` if it is one of them.
    pub fn role(&self, token: Option<&str>) -> Result<(bool, Option<String>)> {
        let (any, found) = self.identity(token)?;
        Ok((any, found.map(|(role, _)| role)))
    }

    /// The person `token` speaks for, when it is one of the store's tokens.
    pub fn person(&self, token: &str) -> Result<Option<TokenPerson>> {
        let rows = self
            .c
            .db
            .query_rows(
                "SELECT id, role, name, email, approver_keyid, approver_key FROM tokens WHERE hash = ?1",
                [token_hash(token)],
            )
            .map_err(self.c.err("check tokens"))?;
        rows.first()
            .map(|r| -> crate::db::DbResult<TokenPerson> {
                Ok(TokenPerson {
                    id: r.get(0)?,
                    role: r.get(1)?,
                    name: r.get(2)?,
                    email: r.get(3)?,
                    approver_keyid: r.get(4)?,
                    approver_key: r.get(5)?,
                })
            })
            .transpose()
            .map_err(self.c.err("check tokens"))
    }

    /// Whether the store has any token, and the role and name of `token` when it is one.
    pub fn identity(&self, token: Option<&str>) -> Result<(bool, Option<(String, String)>)> {
        let any: bool = self
            .c
            .db
            .prepare_cached("SELECT EXISTS(SELECT 1 FROM tokens)")
            .and_then(|mut s| s.query_row(params![], |r| r.get(0)))
            .map_err(self.c.err("check tokens"))?;
        let found = match token {
            Some(t) if any => self
                .c
                .db
                .prepare_cached("SELECT role, name FROM tokens WHERE hash = ?1")
                .and_then(|mut s| s.query_row([token_hash(t)], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(self.c.err("check tokens"))?,
            _ => None,
        };
        Ok((any, found))
    }
}
