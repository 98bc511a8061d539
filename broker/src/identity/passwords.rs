//! Local passwords: argon2id hashes (PHC strings) set by an administrator or the person, and a
//! check that costs the same whether or not the account exists or has a password.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sqlx::{AnyConnection, Row};
use std::sync::OnceLock;

/// Shortest accepted password (NIST SP 800-63B: at least 8; longer is better).
pub const MIN_LEN: usize = 12;
/// Longest accepted password, so hashing work per attempt is bounded.
pub const MAX_LEN: usize = 256;

fn hasher() -> argon2::Argon2<'static> {
    // OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
    match argon2::Params::new(19 * 1024, 2, 1, None) {
        Ok(p) => argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p),
        Err(_) => argon2::Argon2::default(),
    }
}

/// Checks a candidate password against the policy: length only, as NIST advises (no
/// composition rules), and not the username.
pub fn validate(username: &str, password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(Error::Invalid(format!(
            "password: use at least {MIN_LEN} characters"
        )));
    }
    if password.len() > MAX_LEN {
        return Err(Error::Invalid(format!(
            "password: use at most {MAX_LEN} bytes"
        )));
    }
    if password.eq_ignore_ascii_case(username) {
        return Err(Error::Invalid("password: must not be the username".into()));
    }
    Ok(())
}

/// The argon2id PHC string of `password` (CPU-heavy: call from a blocking thread).
pub fn hash(password: &str) -> Result<String> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Key(format!("password hashing: {e}")))
}

/// Whether `password` matches the PHC string (CPU-heavy: call from a blocking thread). A
/// malformed stored hash never matches.
pub fn verify(phc: &str, password: &str) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, checked against when the account is unknown or has no
/// password, so both cases cost one argon2 verification like a real one.
pub fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut bytes = [0u8; 16];
        let _ = getrandom::fill(&mut bytes);
        hash(&hex::encode(bytes)).unwrap_or_default()
    })
}

/// Verifies on a blocking thread; `None` (no account or no password) checks the decoy and fails.
pub async fn check(stored: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || match stored {
        Some(phc) => verify(&phc, &password),
        None => {
            let _ = verify(decoy(), &password);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// The stored hash of an identity's password, if it has one.
pub async fn stored(conn: &mut AnyConnection, identity_id: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT hash FROM identity_passwords WHERE identity_id = $1")
        .bind(identity_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

/// Sets (or replaces) `username`'s password from an already computed hash (see [`hash`]);
/// audited as `password.set`. A password change is a factor change: the identity's browser
/// sessions end (see [`crate::identity::web_sessions::end_all`]), except `keep_session`.
pub async fn set_hash(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    phc: &str,
    keep_session: Option<&str>,
) -> Result<()> {
    let who = crate::identity::identities::by_username(tx, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
    sqlx::query("DELETE FROM identity_passwords WHERE identity_id = $1")
        .bind(who.id.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO identity_passwords (identity_id, hash, updated_at) VALUES ($1, $2, $3)",
    )
    .bind(who.id.as_str())
    .bind(phc)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "password.set",
            format!("identity:{username}"),
        ),
    )
    .await?;
    crate::identity::web_sessions::end_all(
        tx,
        now_ms,
        &who.id,
        username,
        keep_session,
        "factor_changed",
    )
    .await?;
    Ok(())
}
