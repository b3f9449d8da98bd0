//! `repro model …`, `repro key …` and `repro bundle …`: wiring and rendering.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use repro_core::audit::human_bytes;
use repro_core::registry::ModelVersion;
use repro_exec::registry::{self as reg, PromoteOutcome};
use repro_exec::views::{ModelShow, ModelView};
use repro_store::Store;
use serde_json::json;

use crate::cli::{BundleCmd, KeyCmd, ModelCmd, Role, TokenCmd};
use crate::progress::Ui;
use crate::render;
use crate::source::Source;
use crate::{EXIT_FAILED_CHECK, EXIT_OK};

fn cwd() -> Result<std::path::PathBuf> {
    std::env::current_dir().context("cannot read the current folder")
}

fn when(ms: i64) -> String {
    repro_store::rfc3339(ms).replace('T', " ").chars().take(16).collect()
}

pub fn model(src: &mut Source, cmd: ModelCmd, json: bool) -> Result<u8> {
    match cmd {
        ModelCmd::Register { run, name, artifact } => {
            let who = reg::actor(&cwd()?, None)?;
            let v = reg::register(src.local("model register")?, &run, &name, &artifact, &cwd()?, &who)?;
            if json {
                render::json(&v)?;
            } else {
                let bytes: u64 = v.artifact.files.iter().map(|f| f.size).sum();
                render::line(&format!(
                    "registered {}: run {}, artifact {} ({} file(s), {}), lineage {}",
                    v.reference(),
                    v.run.short(),
                    v.artifact.path,
                    v.artifact.files.len(),
                    human_bytes(bytes),
                    v.lineage.as_ref().map_or("not yet fixed".into(), |l| l.short())
                ))?;
            }
            Ok(EXIT_OK)
        }
        ModelCmd::Ls => {
            let models = src.models()?;
            if json {
                render::json(&models)?;
            } else {
                ls(&models)?;
            }
            Ok(EXIT_OK)
        }
        ModelCmd::Show { model } => {
            let shown = src.model(&model)?;
            if json {
                render::json(&shown)?;
                return Ok(EXIT_OK);
            }
            match shown {
                ModelShow::Version(v) => show_version(&v)?,
                ModelShow::Model(m) => show_model(&m, &src.stages()?.into_keys().collect::<Vec<_>>())?,
            }
            Ok(EXIT_OK)
        }
        ModelCmd::Promote { model, to } => {
            let who = reg::actor(&cwd()?, None)?;
            let ui = Ui::new(json);
            let outcome = src.promote(&model, &to, &who, &ui)?;
            let code = if matches!(outcome, PromoteOutcome::Refused { .. }) { EXIT_FAILED_CHECK } else { EXIT_OK };
            if json {
                render::json(&outcome)?;
                return Ok(code);
            }
            let mut o = render::out();
            match outcome {
                PromoteOutcome::Promoted { version, stage, from, replaced } => {
                    let from = from.map(|f| format!(" (from {f})")).unwrap_or_default();
                    let replaced = replaced.map(|r| format!("; {}@{r} left {stage}", version.name)).unwrap_or_default();
                    writeln!(o, "promoted {} to {stage}{from}{replaced}", version.reference())?;
                }
                PromoteOutcome::Already { version, stage } => {
                    writeln!(o, "{} is already in {stage}; nothing changed", version.reference())?;
                }
                PromoteOutcome::Refused { reference, stage, unmet } => {
                    writeln!(o, "refused: {reference} cannot enter {stage}; {} requirement(s) unmet:", unmet.len())?;
                    for u in &unmet {
                        writeln!(o, "  ✗ {:<16} {}", u.requirement, u.reason)?;
                        if !u.fix.is_empty() {
                            writeln!(o, "    {:<16} fix: {}", "", u.fix)?;
                        }
                    }
                }
            }
            Ok(code)
        }
        ModelCmd::Approve { model, stage, key, as_who, comment } => {
            let who = reg::actor(&cwd()?, as_who.as_deref())?;
            let key_path = repro_exec::provenance::signing_key_path(key.as_deref())?;
            let signer = repro_exec::keys::load_signing_key(&key_path)?;
            let a = src.approve(&model, &stage, &who, comment.as_deref(), &signer)?;
            if json {
                render::json(&a)?;
            } else {
                let key = a.keyid.as_deref().map_or(String::new(), |k| {
                    format!(", key {}{}", &k[..k.len().min(12)], if a.trusted { ", trusted" } else { ", not trusted" })
                });
                let counted = if a.repeated {
                    format!("{} had already approved it for {}: counted once", a.by, a.stage)
                } else {
                    format!("signed by {}{key}", a.by)
                };
                let needed =
                    if a.signed_only { "signed approval(s) by trusted approvers" } else { "distinct approval(s)" };
                render::line(&format!(
                    "{} for {}: {counted} ({} of {} {needed} needed)",
                    a.version.reference(),
                    a.stage,
                    a.approvers,
                    a.needed
                ))?;
            }
            if a.signed_only && !a.trusted {
                eprintln!(
                    "repro: warning: key {} is not in [trust] approvers of this store, so this approval does not count for {} until it is (`repro key add {} --approver --name 'You <you@example.com>'` on the store)",
                    a.keyid.as_deref().unwrap_or("?"),
                    a.stage,
                    key_path.with_file_name(repro_exec::keys::PUBLIC_KEY_FILE).display()
                );
            }
            Ok(EXIT_OK)
        }
        ModelCmd::Archive { model, reason } => {
            let who = reg::actor(&cwd()?, None)?;
            let v = src.archive(&model, &reason, &who)?;
            if json {
                render::json(&v)?;
            } else {
                render::line(&format!("archived {}: {reason}", v.reference()))?;
            }
            Ok(EXIT_OK)
        }
        ModelCmd::Sign { model, key } => {
            let who = reg::actor(&cwd()?, None)?;
            let s = repro_exec::provenance::sign(src.local("model sign")?, &model, key.as_deref(), &who)?;
            if json {
                render::json(&json!({"model": s.version.reference(), "keyid": s.keyid, "envelope": s.envelope}))?;
            } else {
                render::line(&format!(
                    "signed {} with key {} (envelope {}); `repro model attest {}` writes it out",
                    s.version.reference(),
                    s.keyid,
                    s.envelope.short(),
                    s.version.reference()
                ))?;
            }
            Ok(EXIT_OK)
        }
        ModelCmd::Attest { model, output } => {
            let (v, lines) = repro_exec::provenance::attest(src.local("model attest")?, &model)?;
            let mut text = lines.join("\n");
            text.push('\n');
            match output {
                Some(path) => {
                    crate::commands::write_file(&path, text.as_bytes())?;
                    if json {
                        render::json(&json!({"model": v.reference(), "file": path, "envelopes": lines.len()}))?;
                    } else {
                        render::message(&format!(
                            "wrote {} envelope(s) of {} to {}",
                            lines.len(),
                            v.reference(),
                            path.display()
                        ));
                    }
                }
                None => {
                    render::data(text.as_bytes())?;
                }
            }
            Ok(EXIT_OK)
        }
        ModelCmd::Verify { model, key } => {
            let ui = Ui::new(json);
            let r = src.verify(&model, key.as_deref(), &ui)?;
            if json {
                render::json(&r)?;
            } else {
                let mut o = render::out();
                for c in &r.checks {
                    writeln!(o, "  {:<4} {:<12} {}", if c.ok { "ok" } else { "FAIL" }, c.name, c.detail)?;
                }
                writeln!(o, "{}: {}", r.reference, if r.ok { "verified" } else { "VERIFICATION FAILED" })?;
            }
            Ok(if r.ok { EXIT_OK } else { EXIT_FAILED_CHECK })
        }
    }
}

fn ls(models: &[ModelView]) -> Result<()> {
    let mut o = render::out();
    if models.is_empty() {
        writeln!(o, "no models yet; register one with: repro model register RUN --name NAME --artifact PATH")?;
        return Ok(());
    }
    writeln!(o, "{:<20} {:>8}  STAGES", "MODEL", "VERSIONS")?;
    for m in models {
        let stages: Vec<String> =
            m.versions.iter().filter_map(|v| Some(format!("{}: v{}", v.stage.as_deref()?, v.version))).collect();
        let stages = if stages.is_empty() { "-".to_string() } else { stages.join(", ") };
        writeln!(o, "{:<20} {:>8}  {stages}", m.name, m.versions.len())?;
    }
    Ok(())
}

fn status_of(v: &ModelVersion) -> String {
    match (&v.archived, &v.stage) {
        _ if v.deleted.is_some() => "deleted".into(),
        (Some(_), _) => "archived".into(),
        (None, Some(s)) => s.clone(),
        (None, None) => "-".into(),
    }
}

/// Approvals that count: one per person per stage.
fn distinct_approvals(v: &ModelVersion) -> usize {
    let stages: std::collections::BTreeSet<&str> = v.approvals.iter().map(|a| a.stage.as_str()).collect();
    stages.iter().map(|s| v.approvers(s).len()).sum()
}

fn show_model(m: &ModelView, stages: &[String]) -> Result<()> {
    let mut o = render::out();
    writeln!(o, "model {} ({} version(s); stages: {})", m.name, m.versions.len(), stages.join(", "))?;
    writeln!(
        o,
        "{:>4}  {:<10} {:<10} {:>9} {:>6}  {:<16} BY",
        "V", "RUN", "STAGE", "APPROVALS", "SIGNED", "REGISTERED (UTC)"
    )?;
    for v in &m.versions {
        writeln!(
            o,
            "{:>4}  {:<10} {:<10} {:>9} {:>6}  {:<16} {}",
            v.version,
            v.run.short(),
            status_of(v),
            distinct_approvals(v),
            v.signatures.len(),
            when(v.registered_at_ms),
            v.registered_by
        )?;
    }
    Ok(())
}

fn show_version(v: &ModelVersion) -> Result<()> {
    let mut o = render::out();
    writeln!(o, "{} ({})", v.reference(), status_of(v))?;
    match &v.lineage {
        Some(l) => writeln!(o, "  run       {} (lineage {l})", v.run)?,
        None => writeln!(o, "  run       {} (still running: the lineage is fixed when it finishes)", v.run)?,
    }
    writeln!(
        o,
        "  artifact  {} (output {}, snapshot {})",
        v.artifact.path,
        v.artifact.output,
        v.artifact.snapshot.short()
    )?;
    for f in &v.artifact.files {
        writeln!(o, "    {} {} sha256:{}", f.path, f.blake3, f.sha256)?;
    }
    if let Some(src) = &v.imported_from {
        match &v.import_signer {
            Some(s) => writeln!(o, "  imported  from bundle {src}, signed by {} (as judged at import)", s.describe())?,
            None => writeln!(o, "  imported  from bundle {src}")?,
        }
    }
    if let Some(id) = &v.model_id {
        writeln!(o, "  logged    MLflow logged model {id}")?;
    }
    if !v.aliases.is_empty() {
        writeln!(o, "  aliases   {}", v.aliases.join(", "))?;
    }
    if let Some(d) = &v.description {
        writeln!(o, "  about     {d}")?;
    }
    for (k, val) in &v.tags {
        writeln!(o, "  tag       {k} = {val}")?;
    }
    if let Some(d) = &v.deleted {
        writeln!(o, "  deleted   {} by {}", when(d.at_ms), d.by)?;
    }
    if let Some(a) = &v.archived {
        writeln!(o, "  archived  {} ({} by {})", a.reason, when(a.at_ms), a.by)?;
    }
    for a in &v.approvals {
        let c = a.comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default();
        let how = a
            .signature
            .as_ref()
            .map_or("unsigned".to_string(), |s| format!("signed, key {}", &s.keyid[..s.keyid.len().min(12)]));
        writeln!(o, "  approval  for {} by {} at {} ({how}){c}", a.stage, a.by, when(a.at_ms))?;
    }
    for s in &v.signatures {
        writeln!(o, "  signature key {} by {} at {} (envelope {})", s.keyid, s.by, when(s.at_ms), s.envelope.short())?;
    }
    writeln!(o, "  history")?;
    for h in &v.history {
        writeln!(o, "    #{:<4} {}  {:<9} {}  ({})", h.seq, when(h.at_ms), h.kind, h.detail, h.by)?;
    }
    Ok(())
}

pub fn token(store: &Store, cmd: TokenCmd, json: bool) -> Result<u8> {
    match cmd {
        TokenCmd::Create { role, name, email, approver_key } => {
            let role = match role {
                Role::Read => "read",
                Role::Write => "write",
                Role::Admin => "admin",
            };
            if name.chars().any(char::is_control) || name.len() > 200 {
                anyhow::bail!("--name must be one line of at most 200 characters");
            }
            if let Some(e) = &email {
                let valid = e.len() <= 200
                    && !e.chars().any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
                    && e.split_once('@').is_some_and(|(u, d)| !u.is_empty() && d.contains('.'));
                if !valid {
                    anyhow::bail!("--email '{e}' is not an e-mail address (name@domain.tld)");
                }
            }
            let person = match &email {
                Some(e) if name.is_empty() => format!("<{e}>"),
                Some(e) => format!("{name} <{e}>"),
                None => name.clone(),
            };
            let approver = match &approver_key {
                Some(file) => {
                    let key = repro_exec::keys::load_public_key(file)?;
                    if role == "read" {
                        anyhow::bail!("--approver-key needs a write or admin token: approving is a write");
                    }
                    let added = repro_exec::trust::add(
                        store.root(),
                        file,
                        &[repro_exec::trust::TrustRole::Approver],
                        Some(&person),
                    )?;
                    if added.already.is_empty() {
                        eprintln!("repro: trusting key {} as an approver ({person}) in .repro/repro.toml", added.keyid);
                    }
                    Some((repro_core::provenance::sslib_keyid(&key), repro_exec::keys::public_pem(&key)))
                }
                None => None,
            };
            let secret = format!("repro_{}", uuid::Uuid::new_v4().simple());
            let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
            store.meta.create_person_token(
                &id,
                &secret,
                role,
                &name,
                email.as_deref(),
                approver.as_ref().map(|(k, p)| (k.as_str(), p.as_str())),
            )?;
            if json {
                render::json(&json!({
                    "id": id, "role": role, "name": name, "email": email,
                    "approver_keyid": approver.as_ref().map(|a| &a.0), "token": secret
                }))?;
            } else {
                render::line(&secret)?;
                render::message(&format!(
                    "token {id} ({role}) created; it is shown only now. Clients send it as \
                     `Authorization: Bearer …` (MLFLOW_TRACKING_TOKEN for MLflow)"
                ));
            }
            Ok(EXIT_OK)
        }
        TokenCmd::Ls => {
            let tokens = store.meta.list_tokens()?;
            if json {
                render::json(&tokens)?;
            } else if tokens.is_empty() {
                render::line("no tokens: `repro serve` accepts every request from where it listens")?;
            } else {
                let mut o = render::out();
                writeln!(o, "{:<10} {:<6} {:<16} NAME", "ID", "ROLE", "CREATED (UTC)")?;
                for t in tokens {
                    writeln!(o, "{:<10} {:<6} {:<16} {}", t.id, t.role, when(t.created_ms), t.name)?;
                }
            }
            Ok(EXIT_OK)
        }
        TokenCmd::Revoke { id } => {
            if !store.meta.revoke_token(&id)? {
                anyhow::bail!("no token with id '{id}'; `repro token ls` lists them");
            }
            if json {
                render::json(&json!({"revoked": id}))?;
            } else {
                render::line(&format!("revoked token {id}"))?;
            }
            Ok(EXIT_OK)
        }
    }
}

pub fn key(cmd: KeyCmd, store_dir: Option<&Path>, json: bool) -> Result<u8> {
    match cmd {
        KeyCmd::Show { file } => {
            let path = match file {
                Some(f) => f,
                None => repro_exec::keys::default_key_dir()
                    .context("no home folder to look in; pass the key file")?
                    .join(repro_exec::keys::PUBLIC_KEY_FILE),
            };
            let key = match repro_exec::keys::load_public_key(&path) {
                Ok(k) => k,
                // A private key file names its public half too.
                Err(_) => repro_exec::keys::load_signing_key(&path)?.verifying_key(),
            };
            let keyid = repro_core::provenance::sslib_keyid(&key);
            let store = crate::commands::open_store(store_dir).ok();
            let trusted = match &store {
                Some(s) => repro_exec::trust::Trust::of(s)?.get(&keyid).cloned(),
                None => None,
            };
            if json {
                render::json(&json!({"file": path, "keyid": keyid, "trusted": trusted}))?;
            } else {
                render::line(&format!("{}: key {keyid}", path.display()))?;
                match (&store, trusted) {
                    (None, _) => {}
                    (Some(_), None) => {
                        render::line("  not trusted by this store (repro key add FILE --approver|--signer)")?
                    }
                    (Some(_), Some(t)) => render::line(&format!(
                        "  trusted by this store as {}{}",
                        t.roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect::<Vec<_>>().join(" and "),
                        t.name.map(|n| format!(" ({n})")).unwrap_or_default()
                    ))?,
                }
            }
            Ok(EXIT_OK)
        }
        KeyCmd::Ls => {
            let store = crate::commands::open_store(store_dir)?;
            let trust = repro_exec::trust::Trust::of(&store)?;
            let own =
                repro_exec::keys::default_key_dir().map(|d| d.join(repro_exec::keys::PUBLIC_KEY_FILE)).and_then(|p| {
                    repro_exec::keys::load_public_key(&p).ok().map(|k| (p, repro_core::provenance::sslib_keyid(&k)))
                });
            if json {
                render::json(
                    &json!({"trusted": trust.keys, "own": own.as_ref().map(|(p, k)| json!({"file": p, "keyid": k}))}),
                )?;
            } else {
                let mut o = std::io::stdout().lock();
                if trust.keys.is_empty() {
                    writeln!(o, "no trusted keys ([trust] in .repro/repro.toml is empty): `repro key add FILE --approver` adds one")?;
                }
                for t in &trust.keys {
                    let roles: Vec<String> = t.roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect();
                    writeln!(
                        o,
                        "{}  {:<17} {}  ({})",
                        t.keyid,
                        roles.join("+"),
                        t.name.as_deref().unwrap_or("-"),
                        t.entry
                    )?;
                }
                if let Some((p, k)) = own {
                    writeln!(
                        o,
                        "your key: {k} ({}){}",
                        p.display(),
                        if trust.contains(&k) { ", trusted here" } else { "" }
                    )?;
                }
            }
            Ok(EXIT_OK)
        }
        KeyCmd::Add { file, approver, signer, name } => {
            let store = crate::commands::open_store(store_dir)?;
            let mut roles = Vec::new();
            if approver {
                roles.push(repro_exec::trust::TrustRole::Approver);
            }
            if signer {
                roles.push(repro_exec::trust::TrustRole::Signer);
            }
            let added = repro_exec::trust::add(store.root(), &file, &roles, name.as_deref())?;
            if json {
                render::json(&added)?;
            } else if added.already.len() == added.roles.len() {
                render::line(&format!("key {} was already trusted for that; nothing changed", added.keyid))?;
            } else {
                render::line(&format!(
                    "trusting key {} ({}) as {}: listed in [trust] of .repro/repro.toml, copied to .repro/{}",
                    added.keyid,
                    added.name.as_deref().unwrap_or("unnamed"),
                    roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect::<Vec<_>>().join(" and "),
                    added.file
                ))?;
            }
            Ok(EXIT_OK)
        }
        KeyCmd::Generate { out } => {
            let dir = match out {
                Some(d) => d,
                None => {
                    repro_exec::keys::default_key_dir().context("no home folder to put the key in; pass --out DIR")?
                }
            };
            let k = repro_exec::keys::generate(&dir)?;
            if json {
                render::json(&json!({"private": k.private, "public": k.public, "keyid": k.keyid}))?;
            } else {
                render::line(&format!(
                    "wrote {} (private, mode 0600) and {} (public); keyid {}",
                    k.private.display(),
                    k.public.display(),
                    k.keyid
                ))?;
            }
            Ok(EXIT_OK)
        }
    }
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

pub fn bundle(store_dir: Option<&Path>, cmd: BundleCmd, json: bool) -> Result<u8> {
    match cmd {
        BundleCmd::Export { model, output, include_data, key, unsigned } => {
            let store = crate::commands::open_store(store_dir)?;
            let ui = Ui::new(json);
            let signer = match (&key, unsigned) {
                (_, true) => None,
                (Some(k), false) => Some(repro_exec::keys::load_signing_key(k)?),
                (None, false) => repro_exec::keys::default_key_dir()
                    .map(|d| d.join(repro_exec::keys::PRIVATE_KEY_FILE))
                    .filter(|p| p.exists())
                    .map(|p| repro_exec::keys::load_signing_key(&p))
                    .transpose()?,
            };
            let r = repro_exec::bundle::export(&store, &model, &output, include_data, signer.as_ref(), &cwd()?, &ui)?;
            if json {
                render::json(&r)?;
            } else {
                render::line(&format!(
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
                    Some(k) => render::line(&format!("manifest signed by key {k}"))?,
                    None => render::message("warning: the bundle's manifest is unsigned (pass --key FILE to sign it)"),
                }
            }
            Ok(EXIT_OK)
        }
        BundleCmd::Import { file, key } => {
            let mut store = crate::commands::open_store(store_dir)?;
            let ui = Ui::new(json);
            let who = reg::actor(&cwd()?, None)?;
            let r = repro_exec::bundle::import(&mut store, &file, key.as_deref(), &who, &ui)?;
            if json {
                render::json(&r)?;
            } else {
                for w in &r.warnings {
                    render::message(&format!("warning: {w}"));
                }
                if r.imported {
                    let signed = if r.signatures_verified.is_empty() {
                        "version unsigned".to_string()
                    } else {
                        format!("valid version signature(s) by key(s) {}", r.signatures_verified.join(", "))
                    };
                    render::line(&format!(
                        "imported {} (run {}, {} run(s), {} new object(s)); {signed}; `repro audit {}` checks it",
                        r.model,
                        r.run.short(),
                        r.runs,
                        r.objects_added,
                        r.model
                    ))?;
                }
                render::line(&signer_line(&r.signer, key.is_some()))?;
            }
            Ok(EXIT_OK)
        }
    }
}
