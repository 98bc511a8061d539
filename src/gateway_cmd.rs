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

pub async fn ssh(settings: &Settings, cmd: SshCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SshCommand::SignUserKey {
            file,
            identity,
            valid,
        } => sign_user_key(settings, &file, &identity, &valid).await,
        SshCommand::VaultKey {
            file,
            target,
            login,
            remove,
        } => vault_key(settings, file.as_deref(), &target, &login, remove).await,
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

async fn sign_user_key(
    settings: &Settings,
    file: &std::path::Path,
    identity: &str,
    valid: &str,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use gatehouse_broker::{Clock, SystemClock, identity::identities};
    let valid = humantime::parse_duration(valid)
        .map_err(|e| anyhow::anyhow!("--valid {valid}: {e} (write e.g. 8h or 7d)"))?;
    if valid.is_zero() || valid > std::time::Duration::from_secs(30 * 86_400) {
        anyhow::bail!("--valid must be more than zero and at most 30d");
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let key = gatehouse_gateway::keys::parse_public(&text)
        .with_context(|| format!("{}", file.display()))?;
    let store = context::open_store(settings, context::Schema::RequireCurrent).await?;
    let who = identities::by_username(&mut *store.pool().acquire().await?, identity).await?;
    match who {
        Some(w) if w.status == identities::Status::Active => {}
        Some(_) => anyhow::bail!("identity {identity} is not active"),
        None => anyhow::bail!("no identity {identity}"),
    }
    context::prepare_data_dir(&settings.data_dir)?;
    let (ca, _) = gatehouse_gateway::keys::load_or_create(
        &settings.ssh_client_ca_key,
        "gatehouse client CA",
    )?;
    let now = SystemClock.now_ms();
    let cert = gatehouse_gateway::keys::sign_client_cert(
        &ca,
        &key,
        identity,
        u64::try_from(now / 1000).unwrap_or(0),
        valid.as_secs(),
    )?;
    let line = cert
        .to_openssh()
        .map_err(|e| anyhow::anyhow!("encoding the certificate: {e}"))?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("key.pub");
    let out = file.with_file_name(format!("{}-cert.pub", name.trim_end_matches(".pub")));
    std::fs::write(&out, format!("{line}\n"))
        .with_context(|| format!("cannot write {}", out.display()))?;
    let mut tx = store.begin().await?;
    gatehouse_broker::ledger::audit::append(
        &mut tx,
        now,
        gatehouse_broker::ledger::audit::NewEvent::new(
            "cli",
            "ssh.client_cert_issued",
            format!("identity:{identity}"),
        )
        .details(serde_json::json!({
            "key": gatehouse_gateway::keys::fingerprint(&key),
            "key_id": cert.key_id(),
            "valid_before": cert.valid_before(),
        })),
    )
    .await?;
    tx.commit().await?;
    store.close().await;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

async fn vault_key(
    settings: &Settings,
    file: Option<&std::path::Path>,
    target: &str,
    login: &str,
    remove: bool,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use gatehouse_broker::{Actor, Clock, SystemClock, access::credentials, sealing::SealingKey};
    let store = context::open_store(settings, context::Schema::RequireCurrent).await?;
    let now = SystemClock.now_ms();
    let mut tx = store.begin().await?;
    if remove {
        let removed = credentials::remove(&mut tx, &Actor::Cli, now, target, login).await?;
        tx.commit().await?;
        println!(
            "{}",
            if removed {
                format!("removed the vaulted key of {login} on {target}")
            } else {
                format!("no key was vaulted for {login} on {target}")
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let Some(file) = file else {
        anyhow::bail!("give the private key file, or --remove");
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let key = gatehouse_gateway::keys::parse_private(&text)
        .with_context(|| format!("{}", file.display()))?;
    let public = gatehouse_gateway::keys::public_line(&key)?;
    context::prepare_data_dir(&settings.data_dir)?;
    let sealing = SealingKey::load_or_create(&settings.sealing_key)?;
    credentials::put(
        &mut tx,
        &Actor::Cli,
        now,
        target,
        login,
        &text,
        &public,
        &sealing,
    )
    .await?;
    tx.commit().await?;
    store.close().await;
    println!("vaulted {public} for {login} on {target}");
    Ok(ExitCode::SUCCESS)
}
