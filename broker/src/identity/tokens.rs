//! API tokens: bearer secrets for the REST API, bound to one identity. Only their SHA-256 is
//! stored; the token is shown once, at creation, and can never be read back.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::identity::identities::{self, Identity, Status};
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use crate::secrets::{self, Secret};
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row;

/// Prefix of generated tokens, so secret scanners can find leaked ones.
pub const PREFIX: &str = "ght_";

/// Shortest token accepted when an operator chooses the value (bootstrap).
pub const MIN_CHOSEN_LEN: usize = 24;

/// A token's metadata (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: String,
    pub identity_id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    /// When it last authenticated a request (kept to the minute); `None`: never.
    pub last_used_at_ms: Option<i64>,
}

/// A use moves `last_used_at` only when the stored one is this much older (fewer writes).
pub const LAST_USED_STEP_MS: i64 = 60_000;

/// Creates a token for `username`; returns its metadata and the secret, to show once.
/// Audited as `api_token.create`.
pub async fn create(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    name: &str,
    expires_at_ms: Option<i64>,
) -> Result<(ApiToken, Secret)> {
    let secret = Secret::new(secrets::generate(PREFIX)?);
    let token = insert(tx, actor, now_ms, username, name, &secret, expires_at_ms).await?;
    Ok((token, secret))
}

/// Stores a token whose value the caller chose (bootstrap). Audited as `api_token.create`.
pub(crate) async fn insert(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    name: &str,
    secret: &Secret,
    expires_at_ms: Option<i64>,
) -> Result<ApiToken> {
    let identity = identities::by_username(tx, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
    let token = ApiToken {
        id: ids::new_id(),
        identity_id: identity.id,
        name: name.into(),
        created_at_ms: now_ms,
        expires_at_ms,
        revoked_at_ms: None,
        last_used_at_ms: None,
    };
    sqlx::query(
        "INSERT INTO api_tokens (id, identity_id, name, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token.id.as_str())
    .bind(token.identity_id.as_str())
    .bind(name)
    .bind(secrets::hash(secret.expose()))
    .bind(now_ms)
    .bind(expires_at_ms)
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from(e).on_conflict(|| "that token value is already in use".into()))?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "api_token.create",
            format!("identity:{username}"),
        )
        .details(
            serde_json::json!({ "token_id": token.id, "name": name, "expires_at": expires_at_ms }),
        ),
    )
    .await?;
    Ok(token)
}

/// The identity a presented token belongs to, if the token is known, not revoked, not expired,
/// and its identity is active. Every failure is the same `Unauthenticated`.
pub async fn authenticate(
    conn: &mut AnyConnection,
    presented: &str,
    now_ms: i64,
) -> Result<Identity> {
    if presented.is_empty() || presented.len() > 512 {
        return Err(Error::Unauthenticated);
    }
    let row = sqlx::query(
        "SELECT identity_id FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(secrets::hash(presented))
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Err(Error::Unauthenticated);
    };
    let identity_id: String = row.try_get(0)?;
    match identities::by_id(conn, &identity_id).await? {
        Some(identity) if identity.status == Status::Active => {
            // Unused tokens are a finding of the access reviews: record the use, best effort
            // (a busy database must not turn a valid token away).
            let touched = sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2 WHERE token_hash = $1 \
                 AND (last_used_at IS NULL OR last_used_at <= $3)",
            )
            .bind(secrets::hash(presented))
            .bind(now_ms)
            .bind(now_ms - LAST_USED_STEP_MS)
            .execute(&mut *conn)
            .await;
            if let Err(e) = touched {
                tracing::warn!(error = %e, "cannot record an API token's use");
            }
            Ok(identity)
        }
        _ => Err(Error::Unauthenticated),
    }
}

/// Revokes a token; audited as `api_token.revoke`.
pub async fn revoke(tx: &mut Tx, actor: &Actor, now_ms: i64, token_id: &str) -> Result<()> {
    let done =
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(token_id)
            .execute(&mut **tx)
            .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("active API token {token_id}")));
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "api_token.revoke",
            format!("api_token:{token_id}"),
        ),
    )
    .await?;
    Ok(())
}

/// Tokens of an identity (metadata only).
pub async fn of_identity(conn: &mut AnyConnection, identity_id: &str) -> Result<Vec<ApiToken>> {
    let rows = sqlx::query(
        "SELECT id, identity_id, name, created_at, expires_at, revoked_at, last_used_at \
         FROM api_tokens WHERE identity_id = $1 ORDER BY created_at, id",
    )
    .bind(identity_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ApiToken {
                id: r.try_get(0)?,
                identity_id: r.try_get(1)?,
                name: r.try_get(2)?,
                created_at_ms: r.try_get(3)?,
                expires_at_ms: r.try_get(4)?,
                revoked_at_ms: r.try_get(5)?,
                last_used_at_ms: r.try_get(6)?,
            })
        })
        .collect()
}
