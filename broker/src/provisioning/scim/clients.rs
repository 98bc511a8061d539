//! SCIM clients: each provisioning system gets its own bearer token (shown once; only its
//! SHA-256 is stored), so its changes are audited under its name and it can be revoked alone.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use crate::secrets::{self, Secret};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

/// Prefix of SCIM client tokens, so secret scanners can find leaked ones.
pub const PREFIX: &str = "ghscim_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScimClient {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// Registers a SCIM client; returns it and its token, to show once. Audited as
/// `scim_client.create`.
pub async fn create(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    name: &str,
) -> Result<(ScimClient, Secret)> {
    crate::identity::identities::validate_username(name).map_err(|_| {
        Error::invalid(format!(
            "SCIM client name {name:?}: use 1-64 lower-case letters, digits, '.', '_' or '-'"
        ))
    })?;
    let secret = Secret::new(secrets::generate(PREFIX)?);
    let client = ScimClient {
        id: ids::new_id(),
        name: name.into(),
        created_at_ms: now_ms,
        revoked_at_ms: None,
    };
    sqlx::query(
        "INSERT INTO scim_clients (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(client.id.as_str())
    .bind(name)
    .bind(secrets::hash(secret.expose()))
    .bind(now_ms)
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from(e).on_conflict(|| format!("SCIM client {name} already exists")))?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "scim_client.create",
            format!("scim_client:{name}"),
        ),
    )
    .await?;
    Ok((client, secret))
}

/// Revokes a client's token; audited as `scim_client.revoke`.
pub async fn revoke(tx: &mut Tx, actor: &Actor, now_ms: i64, name: &str) -> Result<()> {
    let done = sqlx::query(
        "UPDATE scim_clients SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
    )
    .bind(now_ms)
    .bind(name)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("active SCIM client {name}")));
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "scim_client.revoke",
            format!("scim_client:{name}"),
        ),
    )
    .await?;
    Ok(())
}

/// Every client (never a token).
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<ScimClient>> {
    let rows =
        sqlx::query("SELECT id, name, created_at, revoked_at FROM scim_clients ORDER BY name")
            .fetch_all(&mut *conn)
            .await?;
    rows.into_iter()
        .map(|r| {
            Ok(ScimClient {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                created_at_ms: r.try_get(2)?,
                revoked_at_ms: r.try_get(3)?,
            })
        })
        .collect()
}

/// The live client a bearer token belongs to (lookup by hash: the token is never compared in
/// the clear).
pub async fn authenticate(conn: &mut AnyConnection, token: &str) -> Result<Option<ScimClient>> {
    if !token.starts_with(PREFIX) {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT id, name, created_at, revoked_at FROM scim_clients \
         WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(secrets::hash(token))
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(ScimClient {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            created_at_ms: r.try_get(2)?,
            revoked_at_ms: r.try_get(3)?,
        })
    })
    .transpose()
}
