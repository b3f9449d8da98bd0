//! The model registry pages.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use maud::PreEscaped;
use repro_store::Metadata;

use super::layout::{page, run_link_s};
use super::{api_error_page, enc, esc, S};
use crate::{ApiError, State};
use repro_core::registry::{verify_chain, Registry};
use repro_store::objects::Verified;

pub(crate) async fn models_page(AxState(s): S) -> Response {
    let data = match s.with_meta(load_models).await {
        Ok(d) => d,
        Err(e) => return api_error_page(e),
    };
    let mut b = String::from("<h1>Model registry</h1>");
    if data.chain_problems.is_empty() {
        b.push_str("<p id=\"chain\" class=\"ok\">Event chain intact (hashes link, anchor present).</p>");
    } else {
        b.push_str("<div id=\"chain\" class=\"error\"><b>Event chain broken:</b><ul>");
        for p in &data.chain_problems {
            let _ = write!(b, "<li>{}</li>", esc(p));
        }
        b.push_str("</ul></div>");
    }
    b.push_str(
        "<p class=\"muted\">Signatures are listed by key id; their cryptographic check is \
         <code>repro model verify</code>.</p>",
    );
    if data.registry.models.is_empty() {
        b.push_str("<p class=\"muted\">No models registered.</p>");
    }
    let chain_ok = data.chain_problems.is_empty();
    for model in data.registry.models.values().filter(|m| m.deleted.is_none()) {
        let _ = write!(b, "<h2 class=\"model\" id=\"model-{0}\">{0}</h2>", esc(&model.name));
        if !model.aliases.is_empty() {
            let aliases: Vec<String> =
                model.aliases.iter().map(|(a, v)| format!("<code>@{}</code> → v{v}", esc(a))).collect();
            let _ = write!(b, "<p class=\"muted\">Aliases: {}</p>", aliases.join(", "));
        }
        b.push_str(
            "<table><tr><th>Version</th><th>Stage</th><th>Run</th><th>Artifact</th><th>Registered</th>\
             <th>Approvals</th><th>Signatures</th><th>Verify</th></tr>",
        );
        for v in model.live() {
            let stage = match (&v.stage, &v.archived) {
                (_, Some(a)) => format!("<span class=\"muted\">archived: {}</span>", esc(&a.reason)),
                (Some(st), None) => format!("<span class=\"stage\">{}</span>", esc(st)),
                (None, None) => "<span class=\"muted\">—</span>".into(),
            };
            let approvals = if v.approvals.is_empty() {
                "<span class=\"muted\">none</span>".to_string()
            } else {
                v.approvals
                    .iter()
                    .map(|a| {
                        format!(
                            "{} for {} at {}{}",
                            esc(&a.by),
                            esc(&a.stage),
                            esc(&repro_store::rfc3339(a.at_ms)),
                            a.comment.as_deref().map(|c| format!(" — “{}”", esc(c))).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let signatures = if v.signatures.is_empty() {
                "<span class=\"muted\">unsigned</span>".to_string()
            } else {
                v.signatures
                    .iter()
                    .map(|sg| format!("<code>{}</code> by {}", esc(&sg.keyid), esc(&sg.by)))
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let mut verify = Vec::new();
            verify.push(if chain_ok {
                "<span class=\"ok\">chain ok</span>".to_string()
            } else {
                "<span class=\"bad\">chain broken</span>".to_string()
            });
            if let Some(c) = data.checks.get(&(v.name.clone(), v.version)) {
                verify.push(match &c.lineage {
                    Ok(()) => "<span class=\"ok\">lineage matches</span>".to_string(),
                    Err(e) => format!("<span class=\"bad\">lineage: {}</span>", esc(e)),
                });
                verify.push(match &c.artifact {
                    Ok(n) => format!("<span class=\"ok\">artifact ok ({n} files)</span>"),
                    Err(e) => format!("<span class=\"bad\">artifact: {}</span>", esc(e)),
                });
            }
            let files: BTreeSet<String> = v
                .artifact
                .iter()
                .flat_map(|a| &a.files)
                .map(|f| format!("{} <code>{}</code>", esc(&f.path), esc(f.blake3.as_str())))
                .collect();
            let _ = write!(
                b,
                "<tr id=\"{}\"><td>{}</td><td>{stage}</td><td>{}</td><td>{}<br>{}</td><td>{} at {}</td>\
                 <td>{approvals}</td><td>{signatures}</td><td>{}</td></tr>",
                esc(&enc(&v.reference())),
                esc(&v.reference()),
                match &v.run {
                    Some(run) => run_link_s(run.as_str()),
                    None => format!("external: {}", esc(v.source_uri().unwrap_or(""))),
                },
                esc(v.artifact.as_ref().map_or("(files not held)", |a| a.path.as_str())),
                files.into_iter().collect::<Vec<_>>().join("<br>"),
                esc(&v.registered_by),
                esc(&repro_store::rfc3339(v.registered_at_ms)),
                verify.join("<br>")
            );
        }
        b.push_str("</table>");
    }
    page("Models", &[], PreEscaped(b)).into_response()
}

// ---- models -----------------------------------------------------------------------------

/// One version's checks.
pub(crate) struct VersionCheck {
    pub(crate) lineage: Result<(), String>,
    pub(crate) artifact: Result<usize, String>,
}

pub(crate) struct ModelsData {
    pub(crate) registry: Registry,
    pub(crate) chain_problems: Vec<String>,
    pub(crate) checks: BTreeMap<(String, u32), VersionCheck>,
}

pub(crate) fn load_models(m: &mut Metadata, state: &State) -> Result<ModelsData, ApiError> {
    let events = m.models().events()?;
    let anchor = m.models().anchor()?;
    let mut chain_problems: Vec<String> =
        verify_chain(&events, anchor.event()).into_iter().map(|p| format!("#{}: {}", p.seq, p.message)).collect();
    chain_problems.extend(anchor.problem());
    let registry = m.models().registry()?;
    let mut checks = BTreeMap::new();
    for model in registry.models.values() {
        for v in model.versions.values() {
            let Some(run_id) = &v.run else {
                // An external version: nothing to verify but what adoption pinned.
                let lineage = Err(v.run_id().err().unwrap_or_default());
                let artifact = match v.files() {
                    Ok(a) => Ok(a.files.len()),
                    Err(e) => Err(e),
                };
                checks.insert((v.name.clone(), v.version), VersionCheck { lineage, artifact });
                continue;
            };
            let lineage = match m.runs().get(run_id) {
                Ok(run) if v.lineage_holds(run.lineage.as_ref(), &run.record.lineage()) => Ok(()),
                Ok(run) if run.lineage.is_none() => {
                    Err("the run is still running: its lineage is pinned when it finishes".to_string())
                }
                Ok(_) => Err("the run's record no longer hashes to the registered lineage".to_string()),
                Err(e) => Err(format!("the run is not in this store: {e}")),
            };
            let mut bad = Vec::new();
            let files = v.artifact.as_ref().map_or(&[][..], |a| &a.files[..]);
            for f in files {
                match state.objects.verify(&f.blake3).unwrap_or(Verified::Missing) {
                    Verified::Ok { .. } => {}
                    Verified::Missing => bad.push(format!("{} missing", f.path)),
                    Verified::Corrupt => bad.push(format!("{} corrupt", f.path)),
                }
            }
            let artifact = if bad.is_empty() { Ok(files.len()) } else { Err(bad.join(", ")) };
            checks.insert((v.name.clone(), v.version), VersionCheck { lineage, artifact });
        }
    }
    Ok(ModelsData { registry, chain_problems, checks })
}
