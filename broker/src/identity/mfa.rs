//! Second factors: TOTP (RFC 6238, SHA-1, 6 digits, 30 s, one step of skew). Enrolling stores the
//! seed sealed; checking accepts a code once (the step is remembered) and is audited either way.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ledger::audit::{self, NewEvent, Outcome};
use crate::ledger::store::Tx;
use crate::sealing::SealingKey;
use sqlx::{AnyConnection, Row};

fn totp(seed: Vec<u8>, account: &str) -> Result<totp_rs::Totp> {
    totp_rs::Builder::new()
        .with_secret(seed)
        .with_account_name(account)
        .with_issuer(Some("Gatehouse"))
        .build()
        .map_err(|e| Error::Key(format!("TOTP: {e}")))
}

/// What an enrollment hands the person once: the seed (base32) and the `otpauth://` URL an
/// authenticator app reads (usually from a QR code). `Debug` shows neither.
pub struct Enrollment {
    pub secret_base32: String,
    pub url: String,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrollment(..)")
    }
}

/// Enrolls (or replaces) `username`'s TOTP seed. Audited as `mfa.totp_enrolled`, without it.
pub async fn enroll_totp(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    key: &SealingKey,
) -> Result<Enrollment> {
    let who = crate::identity::identities::by_username(tx, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
    let (sealed, enrollment) = new_totp(username, key)?;
    store_seed(tx, actor, now_ms, &who.id, username, &sealed, 0).await?;
    Ok(enrollment)
}

/// Replaces an identity's stored seed (sealed) and its last accepted step; audited as
/// `mfa.totp_enrolled`, without the seed.
async fn store_seed(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    identity_id: &str,
    username: &str,
    sealed: &str,
    last_step: i64,
) -> Result<()> {
    sqlx::query("DELETE FROM identity_totp WHERE identity_id = $1")
        .bind(identity_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO identity_totp (identity_id, secret, last_step, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(identity_id)
    .bind(sealed)
    .bind(last_step)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "mfa.totp_enrolled",
            format!("identity:{username}"),
        ),
    )
    .await?;
    Ok(())
}

/// Whether the identity has a TOTP factor.
pub async fn has_totp(conn: &mut AnyConnection, identity_id: &str) -> Result<bool> {
    let row = sqlx::query("SELECT 1 FROM identity_totp WHERE identity_id = $1")
        .bind(identity_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// Checks a TOTP code at `now_ms`; a code (its time step) is accepted once. A success is
/// audited as `mfa.totp`; a failure is written by the caller with [`totp_failed`], within its
/// budget of failure rows (a brute force must not fill the log). `via` says where (e.g. `ssh`).
pub async fn check_totp(
    tx: &mut Tx,
    now_ms: i64,
    identity_id: &str,
    username: &str,
    code: &str,
    via: &str,
    key: &SealingKey,
) -> Result<bool> {
    let row = sqlx::query("SELECT secret, last_step FROM identity_totp WHERE identity_id = $1")
        .bind(identity_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let sealed: String = row.try_get(0)?;
    let last_step: i64 = row.try_get(1)?;
    let t = totp(key.open(&sealed)?, username)?;
    let now = u64::try_from(now_ms / 1000).unwrap_or(0);
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let step = if code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()) {
        t.check(&code, now)
            .and_then(|s| i64::try_from(s).ok())
            .filter(|s| *s > last_step)
    } else {
        None
    };
    let Some(s) = step else {
        return Ok(false);
    };
    sqlx::query("UPDATE identity_totp SET last_step = $2 WHERE identity_id = $1")
        .bind(identity_id)
        .bind(s)
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            format!("identity:{username}"),
            "mfa.totp",
            format!("identity:{username}"),
        )
        .outcome(Outcome::Success)
        .details(serde_json::json!({ "via": via })),
    )
    .await?;
    Ok(true)
}

/// Audits a TOTP code that [`check_totp`] refused, as `mfa.totp` with outcome failure;
/// `unrecorded_before` counts the failures the caller's budget left unwritten since its last row.
pub async fn totp_failed(
    tx: &mut Tx,
    now_ms: i64,
    username: &str,
    via: &str,
    unrecorded_before: u64,
) -> Result<()> {
    let mut details = serde_json::json!({ "via": via });
    if unrecorded_before > 0 {
        details["unrecorded_before"] = unrecorded_before.into();
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            format!("identity:{username}"),
            "mfa.totp",
            format!("identity:{username}"),
        )
        .outcome(Outcome::Failure)
        .details(details),
    )
    .await?;
    Ok(())
}

/// The current code for a seed (tests and the demo).
pub fn code_at(secret_base32: &str, now_ms: i64) -> Result<String> {
    let seed = totp_rs::Secret::try_from_base32(secret_base32)
        .map_err(|e| Error::invalid(format!("TOTP secret: {e}")))?;
    let t = totp_rs::Builder::new()
        .with_secret(seed)
        .build()
        .map_err(|e| Error::Key(format!("TOTP: {e}")))?;
    Ok(t.generate(u64::try_from(now_ms / 1000).unwrap_or(0))
        .to_string())
}

/// A fresh TOTP seed for `username`, not yet active: the sealed seed (kept by the caller until
/// the person confirms a code) and what to show them.
pub fn new_totp(username: &str, key: &SealingKey) -> Result<(String, Enrollment)> {
    let mut seed = vec![0u8; 20];
    getrandom::fill(&mut seed).map_err(|e| Error::Key(format!("random generator: {e}")))?;
    let t = totp(seed.clone(), username)?;
    Ok((
        key.seal(&seed)?,
        Enrollment {
            secret_base32: t.secret().to_base32(),
            url: t
                .to_url()
                .map_err(|e| Error::Key(format!("TOTP URL: {e}")))?,
        },
    ))
}

/// Activates a seed from [`new_totp`] once the person proves their app has it with a current
/// code: false (nothing stored) if the code is wrong. Replaces an earlier seed; audited as
/// `mfa.totp_enrolled`; a new factor ends the identity's other browser sessions.
#[allow(clippy::too_many_arguments)]
pub async fn activate_totp(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    identity_id: &str,
    username: &str,
    sealed: &str,
    code: &str,
    key: &SealingKey,
    keep_session: Option<&str>,
) -> Result<bool> {
    let t = totp(key.open(sealed)?, username)?;
    let now = u64::try_from(now_ms / 1000).unwrap_or(0);
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(step) = (code.len() == 6)
        .then(|| t.check(&code, now))
        .flatten()
        .and_then(|s| i64::try_from(s).ok())
    else {
        return Ok(false);
    };
    store_seed(tx, actor, now_ms, identity_id, username, sealed, step).await?;
    crate::identity::web_sessions::end_all(
        tx,
        now_ms,
        identity_id,
        username,
        keep_session,
        "factor_changed",
    )
    .await?;
    Ok(true)
}
