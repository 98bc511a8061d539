//! `gatehouse mfa enroll-totp`, `set-password` and `link-sso`: sign-in factors of an identity
//! from the command line (people enroll their own in the web UI's account page).

use crate::cli::MfaCommand;
use crate::config::Settings;
use crate::context;
use gatehouse_broker::sealing::SealingKey;
use gatehouse_broker::{Actor, Clock, SystemClock, identity::mfa};
use std::process::ExitCode;

pub async fn run(settings: &Settings, cmd: MfaCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        MfaCommand::EnrollTotp { identity } => {
            let store = context::open_store(settings, context::Schema::RequireCurrent).await?;
            context::prepare_data_dir(&settings.data_dir)?;
            let key = SealingKey::load_or_create(&settings.sealing_key)?;
            let mut tx = store.begin().await?;
            let e = mfa::enroll_totp(&mut tx, &Actor::Cli, SystemClock.now_ms(), &identity, &key)
                .await?;
            tx.commit().await?;
            store.close().await;
            println!("{}", e.url);
            println!("secret: {}", e.secret_base32);
            Ok(ExitCode::SUCCESS)
        }
        MfaCommand::SetPassword { identity } => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| anyhow::anyhow!("reading the password from standard input: {e}"))?;
            let password = line.trim_end_matches(['\n', '\r']).to_string();
            gatehouse_broker::identity::passwords::validate(&identity, &password)?;
            let store = context::open_store(settings, context::Schema::RequireCurrent).await?;
            let phc = tokio::task::spawn_blocking(move || {
                gatehouse_broker::identity::passwords::hash(&password)
            })
            .await??;
            let mut tx = store.begin().await?;
            gatehouse_broker::identity::passwords::set_hash(
                &mut tx,
                &Actor::Cli,
                SystemClock.now_ms(),
                &identity,
                &phc,
                None,
            )
            .await?;
            tx.commit().await?;
            store.close().await;
            eprintln!("password set for {identity}");
            Ok(ExitCode::SUCCESS)
        }
        MfaCommand::LinkSso { identity, subject } => {
            let Some(oidc) = &settings.oidc else {
                anyhow::bail!(
                    "no [oidc] provider is configured: link-sso links to the issuer of [oidc] \
                     (pass the server's --config)"
                );
            };
            let subject = subject.trim();
            if subject.is_empty() || subject.len() > 255 {
                anyhow::bail!("--subject must be the provider's `sub` claim (1-255 characters)");
            }
            let provider = oidc.issuer.trim_end_matches('/').to_string();
            let store = context::open_store(settings, context::Schema::RequireCurrent).await?;
            let mut tx = store.begin().await?;
            let who = gatehouse_broker::identity::identities::by_username(&mut tx, &identity)
                .await?
                .ok_or_else(|| anyhow::anyhow!("identity {identity} not found"))?;
            gatehouse_broker::identity::directory::link_as(
                &mut tx,
                &Actor::Cli,
                SystemClock.now_ms(),
                &provider,
                subject,
                &who,
                "administrator",
            )
            .await?;
            tx.commit().await?;
            store.close().await;
            eprintln!("{identity} is linked to subject {subject:?} of {provider}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
