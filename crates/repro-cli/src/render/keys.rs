//! `repro token …`, `repro key …` and `repro bundle …`.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use repro_core::audit::human_bytes;
use repro_exec::bundle::{ExportReport, ImportReport};
use repro_exec::keys::GeneratedKey;
use repro_exec::tokens::CreatedToken;
use repro_exec::trust::{Added, Trust, TrustRole, Trusted};
use repro_store::tokens::TokenRow;

use super::model::when;
use super::{json, line, message, out};

pub fn token_created(t: &CreatedToken, as_json: bool) -> Result<()> {
    if let Some(keyid) = &t.newly_trusted {
        let person = repro_core::actor::person(&t.name, t.email.as_deref());
        eprintln!("repro: trusting key {keyid} as an approver ({person}) in .repro/repro.toml");
    }
    if as_json {
        return json(t);
    }
    line(&t.token)?;
    message(&format!(
        "token {} ({}) created; it is shown only now. Clients send it as \
         `Authorization: Bearer …` (MLFLOW_TRACKING_TOKEN for MLflow)",
        t.id,
        t.role.as_str()
    ));
    Ok(())
}

pub fn tokens(tokens: &[TokenRow], as_json: bool) -> Result<()> {
    if as_json {
        return json(&tokens);
    }
    if tokens.is_empty() {
        return line("no tokens: `repro serve` accepts every request from where it listens");
    }
    let mut o = out();
    writeln!(o, "{:<10} {:<6} {:<16} NAME", "ID", "ROLE", "CREATED (UTC)")?;
    for t in tokens {
        writeln!(o, "{:<10} {:<6} {:<16} {}", t.id, t.role, when(t.created_ms), t.name)?;
    }
    Ok(())
}

pub fn token_revoked(id: &str, as_json: bool) -> Result<()> {
    if as_json {
        return json(&json!({"revoked": id}));
    }
    line(&format!("revoked token {id}"))
}

fn roles(roles: &[TrustRole]) -> Vec<String> {
    roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect()
}

/// `key show`: `trusted` is `None` outside a store, `Some(None)` when the store does not
/// trust the key.
pub fn key_shown(path: &Path, keyid: &str, trusted: Option<&Option<Trusted>>, as_json: bool) -> Result<()> {
    if as_json {
        return json(&json!({"file": path, "keyid": keyid, "trusted": trusted.and_then(|t| t.as_ref())}));
    }
    line(&format!("{}: key {keyid}", path.display()))?;
    match trusted {
        None => Ok(()),
        Some(None) => line("  not trusted by this store (repro key add FILE --approver|--signer)"),
        Some(Some(t)) => line(&format!(
            "  trusted by this store as {}{}",
            roles(&t.roles).join(" and "),
            t.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
        )),
    }
}

pub fn keys(trust: &Trust, own: Option<(std::path::PathBuf, String)>, as_json: bool) -> Result<()> {
    if as_json {
        return json(&json!({"trusted": trust.keys, "own": own.as_ref().map(|(p, k)| json!({"file": p, "keyid": k}))}));
    }
    let mut o = out();
    if trust.keys.is_empty() {
        writeln!(
            o,
            "no trusted keys ([trust] in .repro/repro.toml is empty): `repro key add FILE --approver` adds one"
        )?;
    }
    for t in &trust.keys {
        writeln!(
            o,
            "{}  {:<17} {}  ({})",
            t.keyid,
            roles(&t.roles).join("+"),
            t.name.as_deref().unwrap_or("-"),
            t.entry
        )?;
    }
    if let Some((p, k)) = own {
        writeln!(o, "your key: {k} ({}){}", p.display(), if trust.contains(&k) { ", trusted here" } else { "" })?;
    }
    Ok(())
}

pub fn key_added(added: &Added, asked: &[TrustRole], as_json: bool) -> Result<()> {
    if as_json {
        return json(added);
    }
    if added.already.len() == added.roles.len() {
        return line(&format!("key {} was already trusted for that; nothing changed", added.keyid));
    }
    line(&format!(
        "trusting key {} ({}) as {}: listed in [trust] of .repro/repro.toml, copied to .repro/{}",
        added.keyid,
        added.name.as_deref().unwrap_or("unnamed"),
        roles(asked).join(" and "),
        added.file
    ))
}

pub fn key_generated(k: &GeneratedKey, as_json: bool) -> Result<()> {
    if as_json {
        return json(&json!({"private": k.private, "public": k.public, "keyid": k.keyid}));
    }
    line(&format!(
        "wrote {} (private, mode 0600) and {} (public); keyid {}",
        k.private.display(),
        k.public.display(),
        k.keyid
    ))
}

pub fn bundle_exported(r: &ExportReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    line(&format!(
        "wrote {} ({}): {}, {} run(s), {} object(s){}{}, {} signature(s)",
        r.file.display(),
        human_bytes(r.bytes),
        r.model,
        r.runs,
        r.objects,
        r.code.as_deref().map(|c| format!(", code at {}", &c[..c.len().min(12)])).unwrap_or_default(),
        if r.include_data { ", with data" } else { ", without data (--include-data adds it)" },
        r.signatures
    ))?;
    match &r.signed_by {
        Some(k) => line(&format!("manifest signed by key {k}"))?,
        None => message("warning: the bundle's manifest is unsigned (pass --key FILE to sign it)"),
    }
    Ok(())
}

pub fn bundle_imported(r: &ImportReport, key_given: bool, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    for w in &r.warnings {
        message(&format!("warning: {w}"));
    }
    if r.imported {
        let signed = if r.signatures_verified.is_empty() {
            "version unsigned".to_string()
        } else {
            format!("valid version signature(s) by key(s) {}", r.signatures_verified.join(", "))
        };
        line(&format!(
            "imported {} (run {}, {} run(s), {} new object(s)); {signed}; `repro audit {}` checks it",
            r.model,
            r.run.short(),
            r.runs,
            r.objects_added,
            r.model
        ))?;
    }
    line(&signer_line(&r.signer, key_given))
}

/// Who signed an imported bundle and whether that counts here, in words a person acts on.
fn signer_line(s: &repro_core::registry::BundleSigner, key_given: bool) -> String {
    use repro_core::registry::SignerStatus;
    let key = s.keyid.as_deref().unwrap_or("?");
    match s.status {
        SignerStatus::Trusted => {
            let how = match (&s.name, key_given) {
                (Some(n), _) => format!("listed in [trust] as {n}"),
                (None, true) => {
                    "the --key you gave; list it under [trust] signers for its runs to replay without --trust-code"
                        .to_string()
                }
                (None, false) => "listed in [trust]".to_string(),
            };
            format!("signer: trusted key {key} ({how})")
        }
        SignerStatus::Unknown => format!(
            "signer: valid signature by an untrusted key {key}: integrity only, not authority; its runs replay only with --trust-code (or list the key under [trust] signers in .repro/repro.toml)"
        ),
        SignerStatus::Unsigned => "signer: unsigned: no one vouches for this bundle; its runs replay only with --trust-code".to_string(),
    }
}
