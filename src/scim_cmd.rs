//! `gatehouse scim client add|list|revoke`: the SCIM clients allowed to provision through
//! /scim/v2, each with its own bearer token.

use crate::cli::{ScimClientCommand, ScimCommand};
use crate::config::Settings;
use crate::context;
use gatehouse_broker::provisioning::scim::clients;
use gatehouse_broker::{Actor, Clock, SystemClock};
use std::process::ExitCode;

pub async fn run(settings: &Settings, cmd: ScimCommand) -> anyhow::Result<ExitCode> {
    let ScimCommand::Client(cmd) = cmd;
    let store = context::open_store(settings, context::Schema::RequireCurrent).await?;
    match cmd {
        ScimClientCommand::Add { name } => {
            let mut tx = store.begin().await?;
            let (_, token) =
                clients::create(&mut tx, &Actor::Cli, SystemClock.now_ms(), &name).await?;
            tx.commit().await?;
            eprintln!("SCIM client {name} registered; its bearer token (shown once):");
            println!("{}", token.expose());
        }
        ScimClientCommand::List => {
            let mut conn = store.pool().acquire().await?;
            let all = clients::list(&mut conn).await?;
            if all.is_empty() {
                eprintln!("no SCIM clients yet: add one with `gatehouse scim client add NAME`");
            }
            for c in all {
                let state = if c.revoked_at_ms.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{}\t{}", c.name, state);
            }
        }
        ScimClientCommand::Revoke { name } => {
            let mut tx = store.begin().await?;
            clients::revoke(&mut tx, &Actor::Cli, SystemClock.now_ms(), &name).await?;
            tx.commit().await?;
            eprintln!("SCIM client {name} revoked");
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
