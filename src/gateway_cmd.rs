//! `gatehouse recordings verify` (offline, with only the public key) and `gatehouse ssh ca`.

use crate::cli::{RecordingsCommand, SshCommand};
use crate::config::Settings;
use crate::context;
use std::process::ExitCode;

pub fn recordings(settings: &Settings, cmd: RecordingsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RecordingsCommand::Verify { path, public_key } => {
            let Some(key) = context::trusted_public_key(settings, public_key.as_deref())? else {
                anyhow::bail!(
                    "no public key: pass --public-key ed25519:... (printed by `gatehouse audit checkpoint`, or in DATA_DIR/keys/signing-key.pub)"
                );
            };
            match gatehouse_recordings::manifest::verify(&path, |m, s| key.verify(m, s)) {
                Ok(v) => {
                    let m = &v.manifest;
                    println!(
                        "OK: {} — session {} of {} on {} as {}, {} to {}, ended: {}; {} bytes, SHA-256 {}, signed by {}",
                        v.cast.display(),
                        m.session.id,
                        m.session.identity,
                        m.session.target,
                        m.session.login,
                        m.session.started_at,
                        m.session.ended_at,
                        m.end_reason,
                        m.cast.size,
                        m.cast.sha256,
                        m.signed_by
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(
                    e @ (gatehouse_recordings::VerifyError::Missing(_)
                    | gatehouse_recordings::VerifyError::Unreadable(_)),
                ) => Err(anyhow::anyhow!("cannot check: {e}")),
                Err(e) => {
                    println!("FAILED: {}: {e}", path.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

pub fn ssh(settings: &Settings, cmd: SshCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SshCommand::Ca => {
            context::prepare_data_dir(&settings.data_dir)?;
            let (ca, _) = gatehouse_gateway::keys::load_or_create(
                &settings.ssh_user_ca_key,
                "gatehouse user CA",
            )?;
            println!("{}", gatehouse_gateway::keys::public_line(&ca)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
