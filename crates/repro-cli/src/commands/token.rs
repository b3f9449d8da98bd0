//! `repro token create|ls|revoke`: API tokens for `repro serve`.

use anyhow::Result;
use repro_exec::tokens::TokenRole;

use crate::cli::{Role, TokenCmd};
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn token(ctx: &Context, cmd: TokenCmd) -> Result<Exit> {
    let store = ctx.store()?;
    match cmd {
        TokenCmd::Create { role, name, email, approver_key } => {
            let role = match role {
                Role::Read => TokenRole::Read,
                Role::Write => TokenRole::Write,
                Role::Admin => TokenRole::Admin,
            };
            let created = repro_exec::tokens::create(&store, role, &name, email.as_deref(), approver_key.as_deref())?;
            render::token_created(&created, ctx.json)?;
        }
        TokenCmd::Ls => render::tokens(&store.meta.tokens().list()?, ctx.json)?,
        TokenCmd::Revoke { id } => {
            repro_exec::tokens::revoke(&store, &id)?;
            render::token_revoked(&id, ctx.json)?;
        }
    }
    Ok(Exit::Ok)
}
