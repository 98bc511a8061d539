//! `gatehouse apps vault-credential`: the credential the app gateway injects upstream for an
//! app (and role), read from standard input and vaulted sealed.

use crate::cli::AppsCommand;
use crate::config::Settings;
use crate::context;
use gatehouse_broker::access::apps::{self, Injected};
use gatehouse_broker::sealing::SealingKey;
use gatehouse_broker::{Actor, Clock, SystemClock};
use std::process::ExitCode;

pub async fn run(settings: &Settings, cmd: AppsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AppsCommand::VaultCredential {
            target,
            role,
            basic,
            bearer,
            remove,
        } => {
            let store = context::open_store(settings, context::Schema::RequireCurrent).await?;
            let mut tx = store.begin().await?;
            let app = gatehouse_broker::access::targets::by_name(&mut tx, &target)
                .await?
                .ok_or_else(|| anyhow::anyhow!("target {target} not found"))?;
            if remove {
                let done = gatehouse_broker::access::credentials::remove(
                    &mut tx,
                    &Actor::Cli,
                    SystemClock.now_ms(),
                    &target,
                    &role,
                )
                .await?;
                tx.commit().await?;
                store.close().await;
                if !done {
                    anyhow::bail!("no credential is vaulted for {target} and role {role}");
                }
                eprintln!("removed the credential of {target} for role {role}");
                return Ok(ExitCode::SUCCESS);
            }
            let secret = read_secret()?;
            let credential = match (basic, bearer) {
                (Some(user), false) => Injected::Basic {
                    user,
                    password: secret,
                },
                (None, true) => Injected::Bearer(secret),
                _ => anyhow::bail!("give --basic USER or --bearer (the secret on standard input)"),
            };
            context::prepare_data_dir(&settings.data_dir)?;
            let key = SealingKey::load_or_create(&settings.sealing_key)?;
            apps::vault_credential(
                &mut tx,
                &Actor::Cli,
                SystemClock.now_ms(),
                &app,
                &role,
                &credential,
                &key,
            )
            .await?;
            tx.commit().await?;
            store.close().await;
            eprintln!(
                "vaulted a {} credential for {target} and role {role}",
                credential.describe()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_secret() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| anyhow::anyhow!("reading the secret from standard input: {e}"))?;
    let secret = line.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        anyhow::bail!("no secret on standard input");
    }
    Ok(secret)
}
