//! What commands share: preparing the data directory, opening the database, finding keys.

use crate::config::Settings;
use anyhow::{Context, bail};
use gatehouse_broker::keys::{PublicKey, SigningKeyPair};
use gatehouse_broker::ledger::store::sqlite_url;
use gatehouse_broker::{Store, StoreOptions};
use std::path::Path;

/// Whether opening the database may change its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Apply pending migrations (serve, migrate).
    Migrate,
    /// Refuse to run against an older schema, change nothing (read-only commands).
    RequireCurrent,
}

/// Creates the data directory if needed and proves it is writable.
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    let unwritable = |e: std::io::Error| {
        anyhow::anyhow!("data directory {} is not writable: {e}", dir.display())
    };
    std::fs::create_dir_all(dir).map_err(unwritable)?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"ok").map_err(unwritable)?;
    std::fs::remove_file(&probe).map_err(unwritable)?;
    Ok(())
}

/// Opens the configured database (SQLite in the data directory unless a URL is given).
pub async fn open_store(settings: &Settings, schema: Schema) -> anyhow::Result<Store> {
    let url = match &settings.database_url {
        Some(url) => url.expose().to_string(),
        None => {
            let path = settings.sqlite_path();
            if schema == Schema::RequireCurrent && !path.exists() {
                bail!(
                    "no database at {}: run `gatehouse serve` or `gatehouse migrate` first, or give --data-dir / --database-url",
                    path.display()
                );
            }
            prepare_data_dir(&settings.data_dir)?;
            sqlite_url(&path)
        }
    };
    let store = Store::connect(&url, &StoreOptions::default()).await?;
    match schema {
        Schema::Migrate => {
            let applied = store
                .migrate()
                .await
                .with_context(|| format!("migrating {}", store.describe()))?;
            if applied > 0 {
                tracing::info!(applied, database = %store.describe(), "applied migrations");
            }
        }
        Schema::RequireCurrent => {
            let pending = store.pending_migrations().await?;
            if pending > 0 {
                bail!(
                    "{} is missing {pending} migration(s): run `gatehouse migrate` first",
                    store.describe()
                );
            }
        }
    }
    Ok(store)
}

/// The signing key for `serve`: created on first start.
pub fn signing_key(settings: &Settings) -> anyhow::Result<SigningKeyPair> {
    let (key, created) = SigningKeyPair::load_or_create(&settings.signing_key)?;
    if created {
        tracing::info!(path = %settings.signing_key.display(), public_key = %key.public(), "created the Gatehouse signing key");
    }
    Ok(key)
}

/// The signing key for one-off commands: never created here, so a command run from the wrong
/// directory cannot sign with a stray key that later makes the real log look forged.
pub fn existing_signing_key(settings: &Settings) -> anyhow::Result<SigningKeyPair> {
    if !settings.signing_key.exists() {
        bail!(
            "no signing key at {}: `gatehouse serve` creates it on first start; point --data-dir or audit.signing_key at it",
            settings.signing_key.display()
        );
    }
    Ok(SigningKeyPair::load(&settings.signing_key)?)
}

/// The public key to trust: given explicitly (`ed25519:...` or a file holding it), else the
/// local signing key's public half, else its `.pub` file, else none.
pub fn trusted_public_key(
    settings: &Settings,
    given: Option<&str>,
) -> anyhow::Result<Option<PublicKey>> {
    if let Some(given) = given {
        let text = if given.trim_start().starts_with("ed25519:") {
            given.to_string()
        } else {
            std::fs::read_to_string(given)
                .with_context(|| format!("cannot read public key file {given}"))?
        };
        return Ok(Some(
            text.trim()
                .parse()
                .with_context(|| format!("public key {given}"))?,
        ));
    }
    if settings.signing_key.exists() {
        return Ok(Some(SigningKeyPair::load(&settings.signing_key)?.public()));
    }
    let pub_path = settings.signing_key.with_extension("pub");
    if pub_path.exists() {
        let text = std::fs::read_to_string(&pub_path)
            .with_context(|| format!("cannot read {}", pub_path.display()))?;
        return Ok(Some(text.trim().parse()?));
    }
    Ok(None)
}
