//! Stored WebAuthn passkeys. The ceremony itself (challenges, signatures) is the web crate's,
//! with webauthn-rs; this module keeps the resulting credential as the JSON webauthn-rs
//! serialises (public key and signature counter), per identity.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use sqlx::{AnyConnection, Row};

/// One registered passkey.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredPasskey {
    /// The credential id (base64url).
    pub id: String,
    pub name: String,
    /// webauthn-rs's `Passkey` as JSON.
    #[serde(skip)]
    pub credential: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
}

/// Registers a passkey; audited as `passkey.add`. A new factor ends the identity's other
/// browser sessions (all but `keep_session`).
#[allow(clippy::too_many_arguments)]
pub async fn add(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    identity_id: &str,
    username: &str,
    credential_id: &str,
    name: &str,
    credential: &str,
    keep_session: Option<&str>,
) -> Result<()> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(Error::Invalid("name: 1 to 64 characters".into()));
    }
    let clash = sqlx::query("SELECT 1 FROM identity_passkeys WHERE id = $1")
        .bind(credential_id)
        .fetch_optional(&mut **tx)
        .await?;
    if clash.is_some() {
        return Err(Error::Conflict("this passkey is already registered".into()));
    }
    sqlx::query(
        "INSERT INTO identity_passkeys (id, identity_id, name, credential, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(credential_id)
    .bind(identity_id)
    .bind(name)
    .bind(credential)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "passkey.add",
            format!("identity:{username}"),
        )
        .details(serde_json::json!({ "name": name, "credential": credential_id })),
    )
    .await?;
    crate::identity::web_sessions::end_all(
        tx,
        now_ms,
        identity_id,
        username,
        keep_session,
        "factor_changed",
    )
    .await?;
    Ok(())
}

/// An identity's passkeys, oldest first.
pub async fn of_identity(
    conn: &mut AnyConnection,
    identity_id: &str,
) -> Result<Vec<StoredPasskey>> {
    let rows = sqlx::query(
        "SELECT id, name, credential, created_at, last_used_at FROM identity_passkeys \
         WHERE identity_id = $1 ORDER BY created_at, id",
    )
    .bind(identity_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredPasskey {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                credential: r.try_get(2)?,
                created_at_ms: r.try_get(3)?,
                last_used_at_ms: r.try_get(4)?,
            })
        })
        .collect()
}

/// Records a use (and the updated signature counter).
pub async fn used(conn: &mut AnyConnection, id: &str, credential: &str, now_ms: i64) -> Result<()> {
    sqlx::query("UPDATE identity_passkeys SET credential = $2, last_used_at = $3 WHERE id = $1")
        .bind(id)
        .bind(credential)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Removes one of the identity's passkeys; audited as `passkey.remove`. Ends the identity's other
/// browser sessions.
pub async fn remove(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    identity_id: &str,
    username: &str,
    id: &str,
    keep_session: Option<&str>,
) -> Result<()> {
    let done = sqlx::query("DELETE FROM identity_passkeys WHERE id = $1 AND identity_id = $2")
        .bind(id)
        .bind(identity_id)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("passkey".into()));
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "passkey.remove",
            format!("identity:{username}"),
        )
        .details(serde_json::json!({ "credential": id })),
    )
    .await?;
    crate::identity::web_sessions::end_all(
        tx,
        now_ms,
        identity_id,
        username,
        keep_session,
        "factor_changed",
    )
    .await?;
    Ok(())
}
