//! `repro key generate|show|ls|add`: your signing key, and the keys a store trusts.

use anyhow::Result;
use repro_exec::keys;
use repro_exec::trust::{Trust, TrustRole};

use crate::cli::KeyCmd;
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn key(ctx: &Context, cmd: KeyCmd) -> Result<Exit> {
    match cmd {
        KeyCmd::Show { file } => {
            let path = keys::shown_key_file(file)?;
            let keyid = repro_core::provenance::sslib_keyid(&keys::any_public_key(&path)?);
            // Outside a store, the key is shown without a word on trust.
            let trusted = match ctx.store().ok() {
                Some(s) => Some(Trust::of(&s)?.get(&keyid).cloned()),
                None => None,
            };
            render::key_shown(&path, &keyid, trusted.as_ref(), ctx.json)?;
        }
        KeyCmd::Ls => {
            let trust = Trust::of(&ctx.store()?)?;
            render::keys(&trust, keys::own_key(), ctx.json)?;
        }
        KeyCmd::Add { file, approver, signer, name } => {
            let store = ctx.store()?;
            let mut roles = Vec::new();
            if approver {
                roles.push(TrustRole::Approver);
            }
            if signer {
                roles.push(TrustRole::Signer);
            }
            let added = repro_exec::trust::add(store.root(), &file, &roles, name.as_deref())?;
            render::key_added(&added, &roles, ctx.json)?;
        }
        KeyCmd::Generate { out } => {
            let k = keys::generate(&keys::key_dir(out)?)?;
            render::key_generated(&k, ctx.json)?;
        }
    }
    Ok(Exit::Ok)
}
