//! Grants: time-bound access (not_before, not_after) from an approved request or break-glass,
//! revocable. Standing assignments do not store grants: the decision names the assignment as the
//! grant of the session. Every change is audited and sent on the access event stream.

use crate::actor::Actor;
use crate::clock::format_ms;
use crate::error::{Error, Result};
use crate::events::AccessEvent;
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

/// Where a grant came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Request,
    BreakGlass,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Request => "request",
            Source::BreakGlass => "break_glass",
        }
    }
}

/// A stored grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub id: String,
    pub identity_id: String,
    pub identity: String,
    pub role_id: String,
    pub role: String,
    pub source: Source,
    pub request_id: Option<String>,
    /// Target names the grant is narrowed to (none: everything the role selects).
    pub targets: Option<Vec<String>>,
    /// The one login it is narrowed to (none: the role's logins).
    pub login: Option<String>,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
}

impl Grant {
    /// Active at `now_ms`: started, not ended, not revoked.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.not_before_ms <= now_ms && now_ms < self.not_after_ms
    }

    /// `active`, `scheduled`, `ended` or `revoked` at `now_ms`.
    pub fn state(&self, now_ms: i64) -> &'static str {
        if self.revoked_at_ms.is_some() {
            "revoked"
        } else if now_ms < self.not_before_ms {
            "scheduled"
        } else if now_ms < self.not_after_ms {
            "active"
        } else {
            "ended"
        }
    }
}

/// What it takes to create a grant.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub identity_id: String,
    pub role_id: String,
    pub role: String,
    pub source: Source,
    pub request_id: Option<String>,
    pub targets: Option<Vec<String>>,
    pub login: Option<String>,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
}

const SELECT: &str = "SELECT g.id, g.identity_id, i.username, g.role_id, g.role_name, g.source, \
     g.request_id, g.targets, g.login, g.not_before, g.not_after, g.revoked_at, g.revoked_by, \
     g.revoke_reason FROM grants g JOIN identities i ON i.id = g.identity_id";

fn from_row(r: &AnyRow) -> Result<Grant> {
    let targets: Option<String> = r.try_get(7)?;
    Ok(Grant {
        id: r.try_get(0)?,
        identity_id: r.try_get(1)?,
        identity: r.try_get(2)?,
        role_id: r.try_get(3)?,
        role: r.try_get(4)?,
        source: match r.try_get::<String, _>(5)?.as_str() {
            "break_glass" => Source::BreakGlass,
            _ => Source::Request,
        },
        request_id: r.try_get(6)?,
        targets: targets
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| Error::Storage(format!("grant targets: {e}")))?,
        login: r.try_get(8)?,
        not_before_ms: r.try_get(9)?,
        not_after_ms: r.try_get(10)?,
        revoked_at_ms: r.try_get(11)?,
        revoked_by: r.try_get(12)?,
        revoke_reason: r.try_get(13)?,
    })
}

/// Creates a grant; audited as `grant.start`, announced as [`AccessEvent::GrantStarted`].
pub async fn create(tx: &mut Tx, actor: &Actor, now_ms: i64, new: NewGrant) -> Result<Grant> {
    let id = ids::new_id();
    let targets = new
        .targets
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::Storage(format!("grant targets: {e}")))?;
    sqlx::query(
        "INSERT INTO grants (id, identity_id, role_id, role_name, source, request_id, targets, \
         login, not_before, not_after, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id.as_str())
    .bind(new.identity_id.as_str())
    .bind(new.role_id.as_str())
    .bind(new.role.as_str())
    .bind(new.source.as_str())
    .bind(new.request_id.as_deref())
    .bind(targets)
    .bind(new.login.as_deref())
    .bind(new.not_before_ms)
    .bind(new.not_after_ms)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    let grant = by_id(tx, &id)
        .await?
        .ok_or_else(|| Error::Storage("grant vanished".into()))?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "grant.start", format!("grant:{id}")).details(
            serde_json::json!({
                "identity": grant.identity, "role": grant.role, "source": grant.source,
                "request": grant.request_id, "targets": grant.targets, "login": grant.login,
                "not_before": format_ms(grant.not_before_ms),
                "not_after": format_ms(grant.not_after_ms),
            }),
        ),
    )
    .await?;
    tx.publish(AccessEvent::GrantStarted {
        grant_id: id,
        identity: grant.identity.clone(),
        role: grant.role.clone(),
        not_before_ms: grant.not_before_ms,
        not_after_ms: grant.not_after_ms,
    });
    Ok(grant)
}

/// Revokes a grant now; audited as `grant.revoke`, announced as [`AccessEvent::GrantRevoked`].
/// Revoking a grant that already ended or was revoked is a conflict.
pub async fn revoke(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    id: &str,
    reason: &str,
) -> Result<Grant> {
    let grant = by_id(tx, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("grant {id}")))?;
    if grant.revoked_at_ms.is_some() || grant.not_after_ms <= now_ms {
        return Err(Error::Conflict(format!(
            "grant {id} is already {}",
            grant.state(now_ms)
        )));
    }
    sqlx::query(
        "UPDATE grants SET revoked_at = $1, revoked_by = $2, revoke_reason = $3 WHERE id = $4",
    )
    .bind(now_ms)
    .bind(actor.to_string())
    .bind(reason)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "grant.revoke", format!("grant:{id}")).details(
            serde_json::json!({ "identity": grant.identity, "role": grant.role, "reason": reason }),
        ),
    )
    .await?;
    tx.publish(AccessEvent::GrantRevoked {
        grant_id: id.into(),
        identity: grant.identity.clone(),
        reason: reason.into(),
    });
    Ok(Grant {
        revoked_at_ms: Some(now_ms),
        revoked_by: Some(actor.to_string()),
        revoke_reason: Some(reason.into()),
        ..grant
    })
}

/// Moves a live grant's end; audited as `grant.extend`, announced as
/// [`AccessEvent::GrantChanged`].
pub async fn extend(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    id: &str,
    not_after_ms: i64,
) -> Result<Grant> {
    let grant = by_id(tx, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("grant {id}")))?;
    if grant.revoked_at_ms.is_some() || grant.not_after_ms <= now_ms {
        return Err(Error::Conflict(format!(
            "grant {id} is {} and cannot be extended",
            grant.state(now_ms)
        )));
    }
    sqlx::query("UPDATE grants SET not_after = $1 WHERE id = $2")
        .bind(not_after_ms)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "grant.extend", format!("grant:{id}")).details(
            serde_json::json!({
                "from": format_ms(grant.not_after_ms), "to": format_ms(not_after_ms),
            }),
        ),
    )
    .await?;
    tx.publish(AccessEvent::GrantChanged {
        grant_id: id.into(),
        identity: grant.identity.clone(),
        not_after_ms,
    });
    Ok(Grant {
        not_after_ms,
        ..grant
    })
}

/// One grant.
pub async fn by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<Grant>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE g.id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The grants of an identity that are active or scheduled at `now_ms` (not ended, not revoked).
pub async fn active_of(
    conn: &mut AnyConnection,
    identity_id: &str,
    now_ms: i64,
) -> Result<Vec<Grant>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE g.identity_id = $1 AND g.revoked_at IS NULL AND g.not_after > $2 \
         ORDER BY g.not_before"
    )))
    .bind(identity_id)
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The live or scheduled grants of a role.
pub async fn active_of_role(
    conn: &mut AnyConnection,
    role_id: &str,
    now_ms: i64,
) -> Result<Vec<Grant>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE g.role_id = $1 AND g.revoked_at IS NULL AND g.not_after > $2"
    )))
    .bind(role_id)
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Every live or scheduled grant (for the decision cache).
pub async fn all_active(conn: &mut AnyConnection, now_ms: i64) -> Result<Vec<Grant>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE g.revoked_at IS NULL AND g.not_after > $1"
    )))
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Grants, newest first, optionally of one identity, at most `limit`.
pub async fn list(
    conn: &mut AnyConnection,
    identity_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Grant>> {
    let rows =
        match identity_id {
            Some(id) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE g.identity_id = $1 ORDER BY g.created_at DESC, g.id DESC LIMIT $2"
            )))
            .bind(id)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?,
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{SELECT} ORDER BY g.created_at DESC, g.id DESC LIMIT $1"
                )))
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?
            }
        };
    rows.iter().map(from_row).collect()
}
