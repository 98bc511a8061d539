//! `gatehouse mfa enroll-totp` and `gatehouse mfa set-password`: sign-in factors of an identity
//! from the command line (people enroll their own in the web UI's account page).

use crate::cli::MfaCommand;
use crate::config::Settings;
use crate::context;
use gatehouse_broker::sealing::SealingKey;
use gatehouse_broker::{Actor, Clock, SystemClock, mfa};
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
            gatehouse_broker::passwords::validate(&identity, &password)?;
            let store = context::open_store(settings, context::Schema::RequireCurrent).await?;
            let phc =
                tokio::task::spawn_blocking(move || gatehouse_broker::passwords::hash(&password))
                    .await??;
            let mut tx = store.begin().await?;
            gatehouse_broker::passwords::set_hash(
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
    }
}
