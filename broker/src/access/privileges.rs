//! Control-plane privileges of identities (administrator, ...), separate from access roles.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row;

/// What an identity may do to Gatehouse itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Privilege {
    /// Everything: identities, targets, roles, policies, audit.
    Admin,
    /// Security review: sessions, recordings (replay, download, live view, terminate), audit.
    Reviewer,
}

impl Privilege {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::Admin => "admin",
            Privilege::Reviewer => "reviewer",
        }
    }
}

/// Grants a privilege (no-op if held); audited as `privilege.grant`.
pub async fn grant(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    privilege: Privilege,
) -> Result<()> {
    let identity = crate::identity::identities::by_username(tx, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
    let done = sqlx::query(
        "INSERT INTO identity_privileges (identity_id, privilege, granted_at, granted_by) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (identity_id, privilege) DO NOTHING",
    )
    .bind(identity.id.as_str())
    .bind(privilege.as_str())
    .bind(now_ms)
    .bind(actor.to_string())
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() > 0 {
        audit::append(
            tx,
            now_ms,
            NewEvent::new(
                actor.to_string(),
                "privilege.grant",
                format!("identity:{username}"),
            )
            .details(serde_json::json!({ "privilege": privilege })),
        )
        .await?;
    }
    Ok(())
}

/// Parses a stored or typed spelling.
pub fn parse(s: &str) -> Option<Privilege> {
    match s {
        "admin" => Some(Privilege::Admin),
        "reviewer" => Some(Privilege::Reviewer),
        _ => None,
    }
}

/// Whether the identity (by id) holds the privilege; an administrator holds every privilege.
pub async fn has(
    conn: &mut AnyConnection,
    identity_id: &str,
    privilege: Privilege,
) -> Result<bool> {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM identity_privileges WHERE identity_id = $1 \
         AND (privilege = $2 OR privilege = 'admin')",
    )
    .bind(identity_id)
    .bind(privilege.as_str())
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

/// Whether any active identity is an administrator.
pub async fn active_admin_exists(conn: &mut AnyConnection) -> Result<bool> {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM identity_privileges p JOIN identities i ON i.id = p.identity_id \
         WHERE p.privilege = 'admin' AND i.status = 'active'",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

/// The privileges an identity (by id) holds, by name.
pub async fn of(conn: &mut AnyConnection, identity_id: &str) -> Result<Vec<String>> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT privilege FROM identity_privileges WHERE identity_id = $1 ORDER BY privilege",
    )
    .bind(identity_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows)
}

/// Takes a privilege away (no-op if not held); audited as `privilege.revoke`. Refused when it
/// would leave no active administrator. Browser sessions see it at their next request.
pub async fn revoke(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    privilege: Privilege,
) -> Result<bool> {
    let identity = crate::identity::identities::by_username(tx, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
    // Checked before anything is deleted: a caller that goes on after this refusal (a review
    // applying many revokes) must not have removed the last administrator.
    if privilege == Privilege::Admin {
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM identity_privileges p JOIN identities i ON i.id = p.identity_id \
             WHERE p.privilege = 'admin' AND i.status = 'active' AND i.id <> $1",
        )
        .bind(identity.id.as_str())
        .fetch_one(&mut **tx)
        .await?;
        if others == 0 && has(tx, &identity.id, Privilege::Admin).await? {
            return Err(Error::Conflict(format!(
                "{username} is the last active administrator: make another one first"
            )));
        }
    }
    let done =
        sqlx::query("DELETE FROM identity_privileges WHERE identity_id = $1 AND privilege = $2")
            .bind(identity.id.as_str())
            .bind(privilege.as_str())
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
            "privilege.revoke",
            format!("identity:{username}"),
        )
        .details(serde_json::json!({ "privilege": privilege })),
    )
    .await?;
    tx.mark_sessions_changed();
    Ok(true)
}
