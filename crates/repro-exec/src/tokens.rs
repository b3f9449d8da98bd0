//! API tokens for `repro serve`: who a token is, what it may do, and the approver key it is
//! bound to. The secret is shown once and stored only as a hash.

use std::path::Path;

use repro_store::Store;
use serde::Serialize;

use crate::{ExecError, Result};

/// What a token may do on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    Read,
    Write,
    Admin,
}

impl TokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Read => "read",
            TokenRole::Write => "write",
            TokenRole::Admin => "admin",
        }
    }
}

/// A token just made: `token` is the secret, never stored and never shown again.
#[derive(Clone, Debug, Serialize)]
pub struct CreatedToken {
    pub id: String,
    pub role: TokenRole,
    pub name: String,
    pub email: Option<String>,
    pub approver_keyid: Option<String>,
    pub token: String,
    /// The approver key was trusted by this command (it was not before).
    #[serde(skip)]
    pub newly_trusted: Option<String>,
}

/// Makes a token for a person: `name` (one line), an optional e-mail, and optionally the
/// public key their approvals are signed with (trusted as an approver here if it is not yet).
pub fn create(
    store: &Store,
    role: TokenRole,
    name: &str,
    email: Option<&str>,
    approver_key: Option<&Path>,
) -> Result<CreatedToken> {
    if name.chars().any(char::is_control) || name.len() > 200 {
        return Err(ExecError::Usage("--name must be one line of at most 200 characters".into()));
    }
    if let Some(e) = email {
        let valid = e.len() <= 200
            && !e.chars().any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
            && e.split_once('@').is_some_and(|(u, d)| !u.is_empty() && d.contains('.'));
        if !valid {
            return Err(ExecError::Usage(format!("--email '{e}' is not an e-mail address (name@domain.tld)")));
        }
    }
    let person = repro_core::actor::person(name, email);
    let mut newly_trusted = None;
    let approver = match approver_key {
        Some(file) => {
            let key = crate::keys::load_public_key(file)?;
            if role == TokenRole::Read {
                return Err(ExecError::Usage(
                    "--approver-key needs a write or admin token: approving is a write".into(),
                ));
            }
            let added = crate::trust::add(store.root(), file, &[crate::trust::TrustRole::Approver], Some(&person))?;
            if added.already.is_empty() {
                newly_trusted = Some(added.keyid);
            }
            Some((repro_core::provenance::sslib_keyid(&key), crate::keys::public_pem(&key)))
        }
        None => None,
    };
    let secret = format!("repro_{}", uuid::Uuid::new_v4().simple());
    let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    store.meta.tokens().create_for_person(
        &id,
        &secret,
        role.as_str(),
        name,
        email,
        approver.as_ref().map(|(k, p)| (k.as_str(), p.as_str())),
    )?;
    Ok(CreatedToken {
        id,
        role,
        name: name.to_string(),
        email: email.map(str::to_string),
        approver_keyid: approver.map(|a| a.0),
        token: secret,
        newly_trusted,
    })
}

/// Revokes a token by id; an unknown id is the caller's mistake.
pub fn revoke(store: &Store, id: &str) -> Result<()> {
    if !store.meta.tokens().revoke(id)? {
        return Err(ExecError::Usage(format!("no token with id '{id}'; `repro token ls` lists them")));
    }
    Ok(())
}
