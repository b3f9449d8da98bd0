//! The registry pages: every model (`/ui/models`), one model (`/ui/models/NAME`: its
//! versions and their history) and one version (`/ui/models/NAME@V`, `NAME@STAGE`): its
//! facts, both digests of each file, readiness per stage from `repro.toml`, the event
//! timeline with refused promotions, and its signatures and approvals verified here, by the
//! server, with the same code as `repro model verify`.

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use repro_core::audit::AuditReport;
use repro_core::registry::approval::ApprovalCheck;
use repro_core::registry::{verify_chain, Model, ModelVersion, Registry};
use repro_exec::registry::provenance::VerifyReport;
use repro_exec::registry::Readiness;
use repro_store::fsck::NoProgress;
use repro_store::meta::ReplayRow;
use repro_store::Store;

use super::layout::{badge, crumb, dash, digest, page, run_link, status_class};
use super::{api_error_page, enc, error_page, Segment, S};
use crate::ApiError;

// ---- all models -------------------------------------------------------------------------

pub(crate) async fn models_page(AxState(s): S) -> Response {
    let loaded = s
        .with_meta(|m, _| {
            let events = m.models().events()?;
            let anchor = m.models().anchor()?;
            let mut problems: Vec<String> = verify_chain(&events, anchor.event())
                .into_iter()
                .map(|p| format!("#{}: {}", p.seq, p.message))
                .collect();
            problems.extend(anchor.problem());
            Ok((m.models().registry()?, problems, events.len()))
        })
        .await;
    let (registry, problems, events) = match loaded {
        Ok(x) => x,
        Err(e) => return api_error_page(e),
    };
    let body = html! {
        h1 { "Model registry" }
        (chain(&problems, events))
        @if registry.models.values().all(|m| m.deleted.is_some()) { p.muted { "No models registered." } }
        div.scroll {
            table #models {
                tr { th { "Model" } th { "Versions" } th { "Stages" } th { "Aliases" } th { "Latest" } th { "Last change" } }
                @for model in registry.models.values().filter(|m| m.deleted.is_none()) {
                    tr id={ "model-" (model.name) } {
                        td { a href={ "/ui/models/" (enc(&model.name)) } { b { (model.name) } } }
                        td.num { (model.live().count()) }
                        td { @for v in model.live().filter(|v| v.stage.is_some()) {
                            a href={ "/ui/models/" (enc(&v.reference())) } { (badge("info", &format!("{} v{}", v.stage.as_deref().unwrap_or(""), v.version), "stage")) } " "
                        } }
                        td { @for (a, v) in &model.aliases { code { "@" (a) } " → v" (v) " " } }
                        td { @if let Some(v) = model.live().next_back() { a href={ "/ui/models/" (enc(&v.reference())) } { "v" (v.version) } } }
                        td.nowrap { (repro_store::rfc3339(model.updated_at_ms)) }
                    }
                }
            }
        }
    };
    page("Models", &[], body).into_response()
}

fn chain(problems: &[String], events: usize) -> Markup {
    html! {
        @if problems.is_empty() {
            p #chain.ok { "Event chain intact: " (events) " events, each hashed and linked to the one before." }
        } @else {
            div #chain.error { b { "Event chain broken:" } ul { @for p in problems { li { (p) } } } }
        }
    }
}

// ---- one model or one version -----------------------------------------------------------

/// Everything a version page (and the audit report) shows about one version.
pub(crate) struct VersionData {
    pub(crate) version: ModelVersion,
    pub(crate) verify: VerifyReport,
    pub(crate) readiness: Vec<Readiness>,
    pub(crate) approvals: Vec<ApprovalCheck>,
    pub(crate) audit: Option<AuditReport>,
    pub(crate) replays: Vec<ReplayRow>,
}

/// `NAME@V` or `NAME@STAGE`, read and checked as `repro model verify` checks it.
pub(crate) fn load_version(st: &mut Store, spec: &str) -> Result<VersionData, ApiError> {
    let registry = st.meta.models().registry()?;
    let version = repro_exec::registry::lookup(&registry, spec).map_err(not_found)?;
    let verify = repro_exec::registry::provenance::verify(st, &version.reference(), None, &NoProgress)?;
    let facts = repro_exec::registry::facts_for_readiness(st, &version, &NoProgress).ok().flatten();
    let readiness = repro_exec::registry::readiness(st, &version, facts.as_ref());
    let trust = repro_exec::trust::Trust::of(st)?;
    let approvals = repro_exec::registry::approval::check_approvals(st, &version, &trust, &[]);
    let replays = match &version.run {
        Some(run) => st.meta.runs().replays_of(run)?,
        None => Vec::new(),
    };
    Ok(VersionData { version, verify, readiness, approvals, audit: facts.map(|f| f.audit), replays })
}

/// An unknown model or version is the client's mistake, said in the CLI's words.
fn not_found(e: repro_exec::ExecError) -> ApiError {
    let message = e.to_string();
    match e {
        repro_exec::ExecError::Usage(_) => ApiError::not_found(message),
        other => ApiError::from(other),
    }
}

/// `/ui/models/NAME`, `/ui/models/NAME@V`, `/ui/models/NAME@STAGE`.
pub(crate) async fn model_page(AxState(s): S, Segment(spec): Segment) -> Response {
    if !spec.contains('@') {
        let name = spec.clone();
        let loaded = s.with_meta(move |m, _| Ok(m.models().registry()?)).await;
        let registry: Registry = match loaded {
            Ok(r) => r,
            Err(e) => return api_error_page(e),
        };
        return match registry.models.get(&name).filter(|m| m.deleted.is_none()) {
            Some(model) => page(&name, &[crumb("Models", "/ui/models")], model_body(model)).into_response(),
            None => error_page(
                StatusCode::NOT_FOUND,
                "Not Found",
                &format!("There is no model '{name}'. /ui/models lists the models there are."),
            ),
        };
    }
    let wanted = spec.clone();
    let data = match s.with_store(move |st| load_version(st, &wanted)).await {
        Ok(d) => d,
        Err(e) => return api_error_page(e),
    };
    let v = &data.version;
    let crumbs = [crumb("Models", "/ui/models"), crumb(v.name.clone(), format!("/ui/models/{}", enc(&v.name)))];
    page(&format!("{} v{}", v.name, v.version), &crumbs, version_body(&data, true)).into_response()
}

fn model_body(model: &Model) -> Markup {
    html! {
        h1 { "Model " (model.name) }
        @if let Some(d) = &model.description { p { (d) } }
        @if !model.aliases.is_empty() {
            p { "Aliases: " @for (a, v) in &model.aliases { code { "@" (a) } " → " a href={ "/ui/models/" (enc(&model.name)) "@" (v) } { "v" (v) } " " } }
        }
        div.scroll {
            table #versions {
                tr { th { "Version" } th { "Stage" } th { "Run" } th { "Files" } th { "Approvals" } th { "Signatures" } th { "Registered" } }
                @for v in model.versions.values().rev() {
                    tr {
                        td { a href={ "/ui/models/" (enc(&v.reference())) } { "v" (v.version) } }
                        td { (stage_badge(v)) }
                        td { @match &v.run { Some(r) => (run_link(r)), None => span.muted { "external" } } }
                        td { @for f in v.artifact.iter().flat_map(|a| &a.files) { code { (f.path) } " " } }
                        td.num { (v.approvals.len()) }
                        td.num { (v.signatures.len()) }
                        td.nowrap { (repro_store::rfc3339(v.registered_at_ms)) " by " (v.registered_by) }
                    }
                }
            }
        }
        h2 { "History" }
        (timeline(model.versions.values().flat_map(|v| v.history.iter().map(move |h| (v.version, h)))))
    }
}

fn stage_badge(v: &ModelVersion) -> Markup {
    match (&v.stage, &v.archived) {
        (_, Some(a)) => badge("muted", "archived", &a.reason),
        (Some(s), None) => badge("info", s, "stage"),
        (None, None) => html! { span.muted { "no stage" } },
    }
}

/// Events, newest first; a refused promotion stands out with its reasons.
fn timeline<'a>(entries: impl Iterator<Item = (u32, &'a repro_core::registry::HistoryEntry)>) -> Markup {
    let mut entries: Vec<_> = entries.collect();
    entries.sort_by_key(|(_, h)| std::cmp::Reverse(h.seq));
    html! {
        ol.timeline #timeline {
            @for (version, h) in &entries {
                li class={ "event " (h.kind) } data-kind=(h.kind) {
                    span.nowrap.muted { (repro_store::rfc3339(h.at_ms)) } " "
                    (badge(match h.kind.as_str() { "refuse" => "bad", "promote" | "sign" | "approve" => "ok", _ => "muted" }, &h.kind, &format!("event #{}", h.seq)))
                    " v" (version) " by " b { (h.by) } ": " span.wrap { (h.detail) }
                }
            }
        }
    }
}

/// A version's page body; `links` false for the standalone report.
pub(crate) fn version_body(d: &VersionData, links: bool) -> Markup {
    let v = &d.version;
    html! {
        h1 { (v.name) " v" (v.version) " " (stage_badge(v)) }
        (verification(d))
        table.facts {
            tr { th { "Run" } td { @match &v.run {
                Some(r) => { @if links { (run_link(r)) } @else { code { (r.as_str()) } } }
                None => span.muted { "external: no run (" (v.external.as_ref().map_or("", |e| e.source.as_str())) ")" }
            } } }
            @if let Some(a) = &d.audit {
                @let ok = a.items.iter().filter(|i| i.status == repro_core::audit::ItemStatus::Ok).count();
                tr { th { "Run audit" } td { (badge(if a.complete { "ok" } else { "bad" }, &format!("{ok}/{}", a.items.len()), "audit items that pass"))
                    @if a.complete { " complete" } @else { " incomplete" } } }
            }
            tr { th { "Lineage" } td { (digest(v.lineage.as_ref())) } }
            tr { th { "Registered" } td { (repro_store::rfc3339(v.registered_at_ms)) " by " (v.registered_by) } }
            @if !v.aliases.is_empty() { tr { th { "Aliases" } td { @for a in &v.aliases { code { "@" (a) } " " } } } }
            @if let Some(desc) = &v.description { tr { th { "Description" } td { (desc) } } }
            @if links { tr { th { "Audit report" } td { a #report-link href={ "/ui/models/" (enc(&v.reference())) "/report" } { "open the report an auditor can read" } } } }
        }
        h2 #files { "Files" }
        div.scroll {
            table #version-files {
                tr { th { "Path" } th { "Size" } th { "BLAKE3" } th { "SHA-256" } }
                @for f in v.artifact.iter().flat_map(|a| &a.files) {
                    tr {
                        td { code { (f.path) } }
                        td.num { (repro_core::audit::human_bytes(f.size)) }
                        td { (digest(Some(&f.blake3))) }
                        td { code.digest title=(f.sha256) { (f.sha256) } }
                    }
                }
            }
        }
        h2 #readiness { "Readiness per stage" }
        p.muted { "Each stage's policy from repro.toml, judged now as " code { "repro model promote" } " would judge it." }
        div.scroll {
            table #readiness-table {
                tr { th { "Stage" } th { "Verdict" } th { "Requirements" } }
                @for r in &d.readiness {
                    tr data-stage=(r.stage) {
                        td { b { (r.stage) } }
                        td { @if r.held { (badge("info", "holds it", "")) } @else if r.ready { (badge("ok", "ready", "")) } @else { (badge("bad", "not ready", "")) } }
                        td {
                            @if r.requirements.is_empty() { span.muted { "nothing required" } }
                            @for (i, q) in r.requirements.iter().enumerate() {
                                @if i > 0 { " · " }
                                span title=(q.detail) class={ "req " (if q.met { "ok" } else { "bad" }) } {
                                    (q.name) @if q.name == "approvals" { " " (q.detail) } " " (if q.met { "✓" } else { "✗" })
                                }
                                @if !q.met && q.name != "approvals" { span.muted.wrap { " (" (q.detail) ")" } }
                            }
                        }
                    }
                }
            }
        }
        h2 #approvals { "Approvals" }
        @if d.approvals.is_empty() { p.muted { "none" } } @else {
            table #approvals-table {
                tr { th { "Stage" } th { "By (as the event says)" } th { "Counted as" } th { "Signature" } th { "Comment" } }
                @for (a, check) in v.approvals.iter().zip(&d.approvals) {
                    tr {
                        td { (a.stage) }
                        td { (a.by) }
                        td { (check.person) @if !check.trusted { " " (badge("warn", "untrusted key", "the key is not in [trust] approvers")) } }
                        td { @if check.valid { span.ok { "✓ verifies" } } @else { span.bad { "✗ " (check.problem.as_deref().unwrap_or("does not verify")) } }
                            @if let Some(k) = &check.keyid { " " code.digest title=(k) { (k) } } }
                        td { (a.comment.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        h2 #replays { "Replays of the run" }
        @if d.replays.is_empty() { p.muted { "none" } } @else {
            table #version-replays {
                tr { th { "Replay" } th { "Verdict" } th { "When" } }
                @for r in &d.replays {
                    tr {
                        td { @if links { (run_link(&r.replay)) } @else { code { (r.replay.as_str()) } } }
                        td { (badge(status_class(r.verdict.as_str()), r.verdict.as_str(), "")) }
                        td { (repro_store::rfc3339(r.created_ms)) }
                    }
                }
            }
        }
        h2 #history { "History" }
        (timeline(v.history.iter().map(|h| (v.version, h))))
    }
}

/// The server's own verification (`repro model verify`): chain, lineage, artifact,
/// signatures, approvals, replays, each with its finding.
fn verification(d: &VersionData) -> Markup {
    html! {
        section.card.(if d.verify.ok { "ok" } else { "bad" }) #verify {
            b { @if d.verify.ok { "Verified by this server" } @else { "Verification FAILED" } }
            " " span.muted { "(the checks of " code { "repro model verify " (d.version.reference()) } ")" }
            table.facts #verify-checks {
                @for c in &d.verify.checks {
                    tr data-check=(c.name) {
                        th { (c.name) }
                        td { @if c.ok { span.ok { "✓" } } @else { span.bad { "✗" } } " " span.wrap { (c.detail) } }
                    }
                }
                @if d.verify.checks.is_empty() { tr { td { (dash()) } } }
            }
        }
    }
}
