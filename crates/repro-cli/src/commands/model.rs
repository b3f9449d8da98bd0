//! `repro model …`: register, ls, show, promote, approve, archive, sign, attest, bom, card, verify.

use anyhow::Result;
use repro_exec::registry::{self as reg, PromoteOutcome};

use crate::cli::ModelCmd;
use crate::context::Context;
use crate::exit::Exit;
use crate::files::write_file;
use crate::render;

pub fn model(ctx: &Context, cmd: ModelCmd) -> Result<Exit> {
    let json = ctx.json;
    let mut src = ctx.source()?;
    match cmd {
        ModelCmd::Register { run, name, artifact } => {
            let cwd = ctx.cwd()?;
            let who = reg::actor(&cwd, None)?;
            let v = reg::register(src.local("model register")?, &run, &name, &artifact, &cwd, &who)?;
            render::model_registered(&v, json)?;
            Ok(Exit::Ok)
        }
        ModelCmd::Ls => {
            render::models(&src.models()?, json)?;
            Ok(Exit::Ok)
        }
        ModelCmd::Show { model } => {
            let shown = src.model(&model)?;
            let stages: Vec<String> = if json { Vec::new() } else { src.stages()?.into_keys().collect() };
            render::model_show(&shown, &stages, json)?;
            Ok(Exit::Ok)
        }
        ModelCmd::Promote { model, to } => {
            let who = reg::actor(&ctx.cwd()?, None)?;
            let outcome = src.promote(&model, &to, &who, &ctx.ui())?;
            render::promoted(&outcome, json)?;
            Ok(Exit::check(!matches!(outcome, PromoteOutcome::Refused { .. })))
        }
        ModelCmd::Approve { model, stage, key, as_who, comment } => {
            let who = reg::actor(&ctx.cwd()?, as_who.as_deref())?;
            let key_path = repro_exec::keys::signing_key_path(key.as_deref())?;
            let signer = repro_exec::keys::load_signing_key(&key_path)?;
            let a = src.approve(&model, &stage, &who, comment.as_deref(), &signer)?;
            render::approved(&a, &key_path.with_file_name(repro_exec::keys::PUBLIC_KEY_FILE), json)?;
            Ok(Exit::Ok)
        }
        ModelCmd::Archive { model, reason } => {
            let who = reg::actor(&ctx.cwd()?, None)?;
            let v = src.archive(&model, &reason, &who)?;
            render::archived(&v, &reason, json)?;
            Ok(Exit::Ok)
        }
        ModelCmd::Rename { old, new } => {
            let who = reg::actor(&ctx.cwd()?, None)?;
            let m = repro_exec::registry::rename(src.local("model rename")?, &old, &new, &who)?;
            render::renamed(&m, &old, json)?;
            Ok(Exit::Ok)
        }
        ModelCmd::Adopt { model, from } => {
            let who = reg::actor(&ctx.cwd()?, None)?;
            let a = repro_exec::registry::adopt(src.local("model adopt")?, &model, from.as_deref(), &who, &ctx.ui())?;
            render::adopted(&a, json)?;
            Ok(Exit::Ok)
        }
        ModelCmd::Sign { model, key } => {
            let who = reg::actor(&ctx.cwd()?, None)?;
            let s = repro_exec::provenance::sign(src.local("model sign")?, &model, key.as_deref(), &who)?;
            render::signed(&s, json)?;
            Ok(Exit::Ok)
        }
        ModelCmd::Attest { model, output } => {
            let (v, lines) = repro_exec::provenance::attest(src.local("model attest")?, &model)?;
            let mut text = lines.join("\n");
            text.push('\n');
            match output {
                Some(path) => {
                    write_file(&path, text.as_bytes())?;
                    render::attested(&v, &path, lines.len(), json)?;
                }
                // The envelopes themselves are the output: DSSE JSON lines, under --json too.
                None => render::data(text.as_bytes())?,
            }
            Ok(Exit::Ok)
        }
        ModelCmd::Bom { model, output, sign, key } => {
            let store = src.local("model bom")?;
            let docs = reg::facts::documents(store, &model)?;
            let signed = if sign {
                let who = reg::actor(&ctx.cwd()?, None)?;
                Some(reg::facts::sign_bom(store, &docs, key.as_deref(), &who)?)
            } else {
                None
            };
            match &output {
                Some(path) => {
                    write_file(path, &docs.bom)?;
                    render::document_written(&docs.version, "BOM", path, signed.as_ref(), json)?;
                }
                // The BOM itself is the output, under --json too.
                None => {
                    render::data(&docs.bom)?;
                    if let Some(s) = &signed {
                        render::bom_signed(&docs.version, s);
                    }
                }
            }
            Ok(Exit::Ok)
        }
        ModelCmd::Card { model, output } => {
            let docs = reg::facts::documents(src.local("model card")?, &model)?;
            match &output {
                Some(path) => {
                    write_file(path, docs.card.as_bytes())?;
                    render::document_written(&docs.version, "model card", path, None, json)?;
                }
                None => render::data(docs.card.as_bytes())?,
            }
            Ok(Exit::Ok)
        }
        ModelCmd::Verify { model, key } => {
            let key = key.map(|k| repro_exec::keys::public_key_file(&k)).transpose()?;
            let r = src.verify(&model, key.as_deref(), &ctx.ui())?;
            render::verified(&r, json)?;
            Ok(Exit::check(r.ok))
        }
    }
}
