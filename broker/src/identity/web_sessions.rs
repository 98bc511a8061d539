//! Browser sessions: created at sign-in with a fresh random id, held as a SHA-256 in the
//! database, ended by sign-out, idle or absolute timeout, a factor change, or the identity being
//! disabled. A session in the `second_factor` stage proves only the password and opens nothing
//! but the second-factor step; finishing it issues a new session id.

use crate::error::Result;
use crate::identity::identities::{Identity, Status};
use crate::ledger::audit::{self, NewEvent, Outcome};
use crate::ledger::store::Tx;
use crate::secrets::{self, Secret};
use sqlx::{AnyConnection, Row};

/// How far a session may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Signed in.
    Active,
    /// Password checked; waiting for the second factor.
    SecondFactor,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Active => "active",
            Stage::SecondFactor => "second_factor",
        }
    }
}

/// Idle and absolute lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle_ms: i64,
    pub absolute_ms: i64,
    /// A `second_factor` session must finish within this.
    pub second_factor_ms: i64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            idle_ms: 30 * 60_000,
            absolute_ms: 12 * 3_600_000,
            second_factor_ms: 5 * 60_000,
        }
    }
}

/// A stored session (never the cookie value).
#[derive(Debug, Clone)]
pub struct WebSession {
    /// SHA-256 of the cookie value.
    pub id: String,
    pub identity_id: String,
    pub stage: Stage,
    /// The token every state-changing form of this session must carry.
    pub csrf: String,
    /// How the person signed in, e.g. `password+totp`, `passkey`.
    pub methods: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// Last time the person proved who they are (sign-in or re-authentication).
    pub auth_at_ms: i64,
    /// Last second-factor check.
    pub mfa_at_ms: Option<i64>,
    /// Ceremony state between two requests (JSON).
    pub pending: Option<String>,
}

/// What [`create`] needs.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub identity: &'a Identity,
    pub stage: Stage,
    pub methods: &'a str,
    pub mfa_at_ms: Option<i64>,
    pub address: &'a str,
    pub user_agent: &'a str,
}

/// Creates a session and returns the cookie value (shown to the browser only). An `Active`
/// session is audited as `web.sign_in`.
pub async fn create(
    tx: &mut Tx,
    now_ms: i64,
    new: NewSession<'_>,
    timeouts: Timeouts,
) -> Result<(Secret, WebSession)> {
    let cookie = secrets::generate("")?;
    let csrf = secrets::generate("")?;
    let expires = match new.stage {
        Stage::Active => now_ms + timeouts.absolute_ms,
        Stage::SecondFactor => now_ms + timeouts.second_factor_ms,
    };
    let session = WebSession {
        id: secrets::hash(&cookie),
        identity_id: new.identity.id.clone(),
        stage: new.stage,
        csrf,
        methods: new.methods.into(),
        created_at_ms: now_ms,
        expires_at_ms: expires,
        auth_at_ms: now_ms,
        mfa_at_ms: new.mfa_at_ms,
        pending: None,
    };
    let ua: String = new.user_agent.chars().take(200).collect();
    sqlx::query(
        "INSERT INTO web_sessions (id, identity_id, stage, csrf, methods, created_at, last_seen_at, \
         expires_at, auth_at, mfa_at, address, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $6, $8, $9, $10)",
    )
    .bind(session.id.as_str())
    .bind(session.identity_id.as_str())
    .bind(new.stage.as_str())
    .bind(session.csrf.as_str())
    .bind(session.methods.as_str())
    .bind(now_ms)
    .bind(expires)
    .bind(new.mfa_at_ms)
    .bind(new.address)
    .bind(ua.as_str())
    .execute(&mut **tx)
    .await?;
    if new.stage == Stage::Active {
        audit::append(
            tx,
            now_ms,
            NewEvent::new(
                format!("identity:{}", new.identity.username),
                "web.sign_in",
                format!("identity:{}", new.identity.username),
            )
            .details(serde_json::json!({
                "methods": new.methods,
                "address": new.address,
                "session": short(&session.id),
            })),
        )
        .await?;
    }
    Ok((Secret::new(cookie), session))
}

/// A short, non-secret name for a session in the audit log and lists.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A failed sign-in attempt, audited as `web.sign_in` with outcome failure. The username is as
/// typed (it may not exist); the reason is generic. `unrecorded_before` counts the failures the
/// server left unwritten since the last such row (past its rate of failure rows).
pub async fn sign_in_failed(
    tx: &mut Tx,
    now_ms: i64,
    username: &str,
    step: &str,
    address: &str,
    unrecorded_before: u64,
) -> Result<()> {
    let typed: String = username.chars().take(64).collect();
    let mut details = serde_json::json!({ "step": step, "address": address });
    if unrecorded_before > 0 {
        details["unrecorded_before"] = unrecorded_before.into();
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new("anonymous", "web.sign_in", format!("identity:{typed}"))
            .outcome(Outcome::Failure)
            .details(details),
    )
    .await
    .map(|_| ())
}

/// The live session behind a cookie value, with its identity: `None` when unknown, expired
/// (idle or absolute), or the identity is not active. Refreshes the idle timer.
pub async fn lookup(
    conn: &mut AnyConnection,
    cookie: &str,
    now_ms: i64,
    timeouts: Timeouts,
) -> Result<Option<(WebSession, Identity)>> {
    if cookie.is_empty() || cookie.len() > 128 {
        return Ok(None);
    }
    let id = secrets::hash(cookie);
    let row = sqlx::query(
        "SELECT identity_id, stage, csrf, methods, created_at, last_seen_at, expires_at, auth_at, \
         mfa_at, pending FROM web_sessions WHERE id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let last_seen: i64 = row.try_get(5)?;
    let stage: String = row.try_get(1)?;
    let session = WebSession {
        id,
        identity_id: row.try_get(0)?,
        stage: if stage == "active" {
            Stage::Active
        } else {
            Stage::SecondFactor
        },
        csrf: row.try_get(2)?,
        methods: row.try_get(3)?,
        created_at_ms: row.try_get(4)?,
        expires_at_ms: row.try_get(6)?,
        auth_at_ms: row.try_get(7)?,
        mfa_at_ms: row.try_get(8)?,
        pending: row.try_get(9)?,
    };
    if now_ms >= session.expires_at_ms || now_ms - last_seen >= timeouts.idle_ms {
        sqlx::query("DELETE FROM web_sessions WHERE id = $1")
            .bind(session.id.as_str())
            .execute(&mut *conn)
            .await?;
        return Ok(None);
    }
    let Some(identity) = crate::identity::identities::by_id(conn, &session.identity_id).await?
    else {
        return Ok(None);
    };
    if identity.status != Status::Active {
        return Ok(None);
    }
    // The idle timer moves at most once every 10 s per session (fewer writes).
    if now_ms - last_seen >= 10_000 {
        sqlx::query("UPDATE web_sessions SET last_seen_at = $2 WHERE id = $1")
            .bind(session.id.as_str())
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Some((session, identity)))
}

/// Stores (or clears) the ceremony state of a session.
pub async fn set_pending(conn: &mut AnyConnection, id: &str, pending: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE web_sessions SET pending = $2 WHERE id = $1")
        .bind(id)
        .bind(pending)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records a re-authentication (and a second factor, if `mfa`); audited as `web.reauth`.
pub async fn reauthenticated(
    tx: &mut Tx,
    now_ms: i64,
    session: &WebSession,
    username: &str,
    method: &str,
    mfa: bool,
) -> Result<()> {
    sqlx::query(
        "UPDATE web_sessions SET auth_at = $2, mfa_at = CASE WHEN $3 THEN $2 ELSE mfa_at END \
         WHERE id = $1",
    )
    .bind(session.id.as_str())
    .bind(now_ms)
    .bind(mfa)
    .execute(&mut **tx)
    .await?;
    tx.mark_sessions_changed();
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            format!("identity:{username}"),
            "web.reauth",
            format!("identity:{username}"),
        )
        .details(serde_json::json!({ "method": method, "session": short(&session.id) })),
    )
    .await
    .map(|_| ())
}

/// Ends one session (sign-out); audited as `web.sign_out`.
pub async fn end(tx: &mut Tx, now_ms: i64, session: &WebSession, username: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM web_sessions WHERE id = $1")
        .bind(session.id.as_str())
        .execute(&mut **tx)
        .await?;
    tx.mark_sessions_changed();
    if done.rows_affected() > 0 && session.stage == Stage::Active {
        audit::append(
            tx,
            now_ms,
            NewEvent::new(
                format!("identity:{username}"),
                "web.sign_out",
                format!("identity:{username}"),
            )
            .details(serde_json::json!({ "session": short(&session.id) })),
        )
        .await?;
    }
    Ok(())
}

/// Drops a session without an audit event (a finished second-factor step being replaced).
pub async fn discard(conn: &mut AnyConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM web_sessions WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Ends every session of an identity except `keep`; audited as `web.sessions_ended` with the
/// reason when there were any. Returns how many ended.
pub async fn end_all(
    tx: &mut Tx,
    now_ms: i64,
    identity_id: &str,
    username: &str,
    keep: Option<&str>,
    reason: &str,
) -> Result<u64> {
    let done = sqlx::query("DELETE FROM web_sessions WHERE identity_id = $1 AND id <> $2")
        .bind(identity_id)
        .bind(keep.unwrap_or(""))
        .execute(&mut **tx)
        .await?;
    tx.mark_sessions_changed();
    let n = done.rows_affected();
    if n > 0 {
        audit::append(
            tx,
            now_ms,
            NewEvent::new(
                "system",
                "web.sessions_ended",
                format!("identity:{username}"),
            )
            .details(serde_json::json!({ "count": n, "reason": reason })),
        )
        .await?;
    }
    Ok(n)
}
