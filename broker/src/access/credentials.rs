//! Private keys vaulted per target and login: the alternative to the user CA for targets that
//! cannot trust it. Stored sealed ([`crate::sealing`]); only the gateway opens them, in memory,
//! to log in upstream. Setting and removing one is audited with the public key, never the private.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use crate::sealing::SealingKey;
use sqlx::{AnyConnection, Row};

async fn target_id(conn: &mut AnyConnection, target: &str) -> Result<String> {
    crate::access::targets::by_name(conn, target)
        .await?
        .map(|t| t.id)
        .ok_or_else(|| Error::NotFound(format!("target {target}")))
}

/// Vaults (or replaces) the key `login` uses on `target`. `private_key` is the OpenSSH text,
/// `public_key` its public line (the caller has parsed both).
#[allow(clippy::too_many_arguments)]
pub async fn put(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    target: &str,
    login: &str,
    private_key: &str,
    public_key: &str,
    key: &SealingKey,
) -> Result<()> {
    let id = target_id(tx, target).await?;
    let sealed = key.seal(private_key.as_bytes())?;
    sqlx::query("DELETE FROM target_credentials WHERE target_id = $1 AND login = $2")
        .bind(id.as_str())
        .bind(login)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO target_credentials (target_id, login, private_key, public_key, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.as_str())
    .bind(login)
    .bind(sealed.as_str())
    .bind(public_key)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "target.credential_set",
            format!("target:{target}"),
        )
        .details(serde_json::json!({ "login": login, "public_key": public_key })),
    )
    .await?;
    Ok(())
}

/// Removes a vaulted key; false when there was none.
pub async fn remove(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    target: &str,
    login: &str,
) -> Result<bool> {
    let id = target_id(tx, target).await?;
    let done = sqlx::query("DELETE FROM target_credentials WHERE target_id = $1 AND login = $2")
        .bind(id.as_str())
        .bind(login)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "target.credential_remove",
            format!("target:{target}"),
        )
        .details(serde_json::json!({ "login": login })),
    )
    .await?;
    Ok(true)
}

/// The opened private key `login` uses on `target`, if one is vaulted.
pub async fn open(
    conn: &mut AnyConnection,
    target: &str,
    login: &str,
    key: &SealingKey,
) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT c.private_key FROM target_credentials c JOIN targets t ON t.id = c.target_id \
         WHERE t.name = $1 AND c.login = $2",
    )
    .bind(target)
    .bind(login)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let sealed: String = row.try_get(0)?;
    let plain = key.open(&sealed)?;
    String::from_utf8(plain)
        .map(Some)
        .map_err(|_| Error::Key("a vaulted key is not text".into()))
}
