//! `gatehouse mfa enroll-totp`: a TOTP factor for an identity, from the command line (the web UI
//! will enroll with a QR code).

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
    }
}
