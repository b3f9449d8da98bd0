//! Whose keys count: the store's `[trust]` section resolved to key ids.
//!
//! A signature that verifies proves integrity; only a key listed here (or given on the
//! command line for one check) gives it authority. Entries are PEM public key files
//! (relative to the `.repro` folder) or bare key ids; a file that cannot be read as an
//! ed25519 public key is an error naming `repro.toml`, so a typo never silently trusts
//! nobody.

use std::path::Path;

use ed25519_dalek::VerifyingKey;
use repro_core::provenance::sslib_keyid;
use repro_core::registry::{BundleSigner, SignerStatus};
use repro_store::config::{TrustSection, TrustedKey};
use serde::Serialize;

use crate::{ExecError, Result};

/// What a trusted key may vouch for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustRole {
    Approver,
    Signer,
}

/// One trusted key, resolved.
#[derive(Clone, Debug, Serialize)]
pub struct Trusted {
    pub keyid: String,
    /// Whose key it is, as `[trust]` names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The entry as written (a file path or a key id).
    pub entry: String,
    pub roles: Vec<TrustRole>,
    /// The key itself, when the entry is a file (a key id entry needs the key from the
    /// signature's own stored public key).
    #[serde(skip)]
    pub key: Option<VerifyingKey>,
}

/// The store's trusted keys.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Trust {
    pub keys: Vec<Trusted>,
}

impl Trust {
    /// Resolves `[trust]`; files are relative to `root` (the `.repro` folder).
    pub fn resolve(section: &TrustSection, root: &Path) -> Result<Trust> {
        let mut trust = Trust::default();
        for (role, entries) in [(TrustRole::Approver, &section.approvers), (TrustRole::Signer, &section.signers)] {
            for entry in entries {
                let (keyid, key) = resolve_entry(entry, root)?;
                match trust.keys.iter_mut().find(|t| t.keyid == keyid) {
                    Some(t) => {
                        if !t.roles.contains(&role) {
                            t.roles.push(role);
                        }
                        if t.name.is_none() {
                            t.name = entry.name().map(str::to_string);
                        }
                        if t.key.is_none() {
                            t.key = key;
                        }
                    }
                    None => trust.keys.push(Trusted {
                        keyid,
                        name: entry.name().map(str::to_string),
                        entry: entry.key().to_string(),
                        roles: vec![role],
                        key,
                    }),
                }
            }
        }
        Ok(trust)
    }

    /// The store's `[trust]`, as loaded with the store.
    pub fn of(store: &repro_store::Store) -> Result<Trust> {
        Trust::resolve(&store.config.trust, store.root())
    }

    /// The entry for `keyid`, in any role.
    pub fn get(&self, keyid: &str) -> Option<&Trusted> {
        self.keys.iter().find(|t| t.keyid == keyid)
    }

    /// Whether `keyid` is trusted in `role`.
    pub fn has(&self, keyid: &str, role: TrustRole) -> bool {
        self.get(keyid).is_some_and(|t| t.roles.contains(&role))
    }

    /// Whether `keyid` is listed at all (any role): enough to trust a bundle's signer.
    pub fn contains(&self, keyid: &str) -> bool {
        self.get(keyid).is_some()
    }

    /// How a bundle's signer stands: no key is unsigned; the key given on the command line
    /// (`given`, a key id) or one listed here is trusted; any other valid key is unknown.
    pub fn judge(&self, keyid: Option<&str>, given: Option<&str>) -> BundleSigner {
        let Some(keyid) = keyid else { return BundleSigner::unsigned() };
        let listed = self.get(keyid);
        let status =
            if listed.is_some() || given == Some(keyid) { SignerStatus::Trusted } else { SignerStatus::Unknown };
        BundleSigner { status, keyid: Some(keyid.to_string()), name: listed.and_then(|t| t.name.clone()) }
    }
}

/// What `repro key add` did.
#[derive(Clone, Debug, Serialize)]
pub struct Added {
    pub keyid: String,
    /// Where the key was copied, relative to the `.repro` folder.
    pub file: String,
    pub roles: Vec<TrustRole>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// It was trusted in these roles already: nothing changed for them.
    pub already: Vec<TrustRole>,
}

/// `repro key add FILE --approver|--signer [--name WHO]`: copies the public key into
/// `.repro/keys/<keyid>.pub` and lists it under `[trust]`, editing `repro.toml` in place
/// (comments kept), written to a temp file, checked by loading it, then renamed.
pub fn add(root: &Path, file: &Path, roles: &[TrustRole], name: Option<&str>) -> Result<Added> {
    if roles.is_empty() {
        return Err(ExecError::Usage("say what the key is trusted for: --approver, --signer, or both".into()));
    }
    if let Some(n) = name {
        if n.trim().is_empty() || n.chars().any(char::is_control) || n.len() > 200 {
            return Err(ExecError::Usage(
                "--name must be one line of at most 200 characters, e.g. 'Ada <ada@corp.example>'".into(),
            ));
        }
    }
    let key = crate::keys::load_public_key(file)?;
    let keyid = sslib_keyid(&key);
    let rel = format!("keys/{keyid}.pub");
    let dest = root.join(&rel);
    let pem = crate::keys::public_pem(&key);
    if dest.parent().is_some_and(|d| !d.exists()) {
        std::fs::create_dir_all(root.join("keys")).map_err(ExecError::io("create", &root.join("keys")))?;
    }
    if std::fs::read_to_string(&dest).ok().as_deref() != Some(pem.as_str()) {
        write_atomically(&dest, pem.as_bytes())?;
    }
    let config_path = root.join(repro_store::config::CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(ExecError::io("read", &config_path))?;
    let current = Trust::resolve(&repro_store::Config::load(&config_path)?.trust, root)?;
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e| ExecError::Usage(format!("{}: {e}", config_path.display())))?;
    let trust = doc.entry("trust").or_insert(toml_edit::table());
    let trust = trust
        .as_table_mut()
        .ok_or_else(|| ExecError::Usage(format!("{}: `trust` is not a table", config_path.display())))?;
    let mut already = Vec::new();
    for role in roles {
        if current.has(&keyid, *role) {
            already.push(*role);
            continue;
        }
        let list = match role {
            TrustRole::Approver => "approvers",
            TrustRole::Signer => "signers",
        };
        let array = trust.entry(list).or_insert(toml_edit::value(toml_edit::Array::new()));
        let array = array
            .as_array_mut()
            .ok_or_else(|| ExecError::Usage(format!("{}: [trust] {list} is not a list", config_path.display())))?;
        match name {
            Some(n) => {
                let mut entry = toml_edit::InlineTable::new();
                entry.insert("key", rel.as_str().into());
                entry.insert("name", n.into());
                array.push(entry);
            }
            None => array.push(rel.as_str()),
        }
    }
    if already.len() < roles.len() {
        let tmp = root.join(format!(".repro.toml.tmp-{}", std::process::id()));
        std::fs::write(&tmp, doc.to_string()).map_err(ExecError::io("write", &tmp))?;
        let checked = repro_store::Config::load(&tmp).map(|c| c.trust);
        match checked.map_err(ExecError::from).and_then(|t| Trust::resolve(&t, root)) {
            Ok(_) => std::fs::rename(&tmp, &config_path).map_err(ExecError::io("replace", &config_path))?,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
    }
    Ok(Added { keyid, file: rel, roles: roles.to_vec(), name: name.map(str::to_string), already })
}

fn write_atomically(dest: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = dest.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(ExecError::io("write", &tmp))?;
    std::fs::rename(&tmp, dest).map_err(ExecError::io("write", dest))
}

fn resolve_entry(entry: &TrustedKey, root: &Path) -> Result<(String, Option<VerifyingKey>)> {
    if entry.is_keyid() {
        return Ok((entry.key().to_string(), None));
    }
    let given = Path::new(entry.key());
    let path = if given.is_absolute() { given.to_path_buf() } else { root.join(given) };
    let key = crate::keys::load_public_key(&path).map_err(|e| {
        ExecError::Usage(format!(
            "[trust] in {}: {e}; list a public key file (relative to .repro/) or a 64-hex key id",
            root.join(repro_store::config::CONFIG_FILE).display()
        ))
    })?;
    Ok((sslib_keyid(&key), Some(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_key_ids_resolve_and_merge_roles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let generated = crate::keys::generate(&dir.path().join("k")).expect("generate");
        let id = "b".repeat(64);
        let section = TrustSection {
            approvers: vec![
                TrustedKey::Named { key: "k/repro.pub".into(), name: Some("Ada <ada@corp.example>".into()) },
                TrustedKey::Plain(id.clone()),
            ],
            signers: vec![TrustedKey::Plain(generated.public.display().to_string())],
        };
        let trust = Trust::resolve(&section, dir.path()).expect("resolves");
        assert_eq!(trust.keys.len(), 2);
        let ada = trust.get(&generated.keyid).expect("ada");
        assert_eq!(ada.roles, [TrustRole::Approver, TrustRole::Signer]);
        assert_eq!(ada.name.as_deref(), Some("Ada <ada@corp.example>"));
        assert!(ada.key.is_some());
        assert!(trust.has(&id, TrustRole::Approver) && !trust.has(&id, TrustRole::Signer));
        assert!(!trust.contains(&"c".repeat(64)));
        let judged = trust.judge(Some(&generated.keyid), None);
        assert_eq!(judged.status, SignerStatus::Trusted);
        assert_eq!(judged.name.as_deref(), Some("Ada <ada@corp.example>"));
        let stranger = "c".repeat(64);
        assert_eq!(trust.judge(Some(&stranger), None).status, SignerStatus::Unknown);
        assert_eq!(trust.judge(Some(&stranger), Some(&stranger)).status, SignerStatus::Trusted);
        assert_eq!(trust.judge(None, Some(&stranger)), BundleSigner::unsigned());
        let missing = TrustSection { approvers: vec![TrustedKey::Plain("nope.pub".into())], ..Default::default() };
        let e = Trust::resolve(&missing, dir.path()).expect_err("missing file").to_string();
        assert!(e.contains("[trust]") && e.contains("nope.pub") && !e.contains('\n'), "{e}");
    }
}
