//! Sessions through the gateways: a row when one opens, its end (reason, bytes each way, the
//! recording) when it closes, and the audit events `session.start`, `session.end` and
//! `session.denied` in the same transactions.

use crate::error::Result;
use crate::ledger::audit::{self, NewEvent, Outcome};
use crate::ledger::store::Tx;
use serde::Serialize;
use sqlx::{AnyConnection, Row};

/// What the gateway knows when a session opens.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub identity_id: String,
    pub identity: String,
    pub target: String,
    pub login: String,
    /// `ssh` or `http`.
    pub protocol: String,
    /// `shell`, `exec`, `sftp`, `subsystem`, `forward` or `connection`.
    pub kind: String,
    /// `standing`, `request` or `break_glass`, and the assignment or grant id.
    pub grant_kind: String,
    pub grant_id: String,
    /// The client's address.
    pub source: String,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: String,
    pub identity: String,
    pub target: String,
    pub login: String,
    pub protocol: String,
    pub kind: String,
    pub grant_kind: String,
    pub grant_id: String,
    pub source: String,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub recording: Option<String>,
}

/// How a session ended.
#[derive(Debug, Clone, Default)]
pub struct End {
    pub reason: String,
    /// Client to target.
    pub bytes_up: u64,
    /// Target to client.
    pub bytes_down: u64,
    pub recording: Option<String>,
    /// What the session turned out to be (`shell`, `exec`, `sftp`), when known.
    pub kind: Option<String>,
    /// Requests made (app sessions); shown on the `session.end` event.
    pub requests: Option<u64>,
}

/// Records a session's start (and its audit event).
pub async fn start(tx: &mut Tx, now_ms: i64, s: &NewSession) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, identity_id, identity, target, login, protocol, kind, \
         grant_kind, grant_id, source, started_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(s.id.as_str())
    .bind(s.identity_id.as_str())
    .bind(s.identity.as_str())
    .bind(s.target.as_str())
    .bind(s.login.as_str())
    .bind(s.protocol.as_str())
    .bind(s.kind.as_str())
    .bind(s.grant_kind.as_str())
    .bind(s.grant_id.as_str())
    .bind(s.source.as_str())
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            format!("identity:{}", s.identity),
            "session.start",
            format!("session:{}", s.id),
        )
        .outcome(Outcome::Allow)
        .details(serde_json::json!({
            "target": s.target, "login": s.login, "protocol": s.protocol, "kind": s.kind,
            "grant": format!("{}:{}", s.grant_kind, s.grant_id), "source": s.source,
        })),
    )
    .await?;
    Ok(())
}

/// Records a session's end. Ending an already ended session changes nothing.
pub async fn end(tx: &mut Tx, now_ms: i64, id: &str, end: &End) -> Result<Option<Session>> {
    let bytes = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let done = sqlx::query(
        "UPDATE sessions SET ended_at = $2, end_reason = $3, bytes_up = $4, bytes_down = $5, \
         recording = $6, kind = COALESCE($7, kind) WHERE id = $1 AND ended_at IS NULL",
    )
    .bind(id)
    .bind(now_ms)
    .bind(end.reason.as_str())
    .bind(bytes(end.bytes_up))
    .bind(bytes(end.bytes_down))
    .bind(end.recording.as_deref())
    .bind(end.kind.as_deref())
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    let Some(s) = by_id(tx, id).await? else {
        return Ok(None);
    };
    // The leaver SLA: from the identity leaving `active` (the HR import, SCIM call or admin that
    // disabled it) to this session's end, shown on the event.
    let leaver_sla_ms = if end.reason == "identity_disabled" {
        let since: Option<i64> = sqlx::query_scalar(
            "SELECT time FROM audit_events WHERE object = $1 AND action = 'identity.status' \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(format!("identity:{}", s.identity))
        .fetch_optional(&mut **tx)
        .await?;
        since.map(|t| now_ms - t)
    } else {
        None
    };
    let mut details = serde_json::json!({
        "target": s.target, "login": s.login, "reason": end.reason,
        "bytes_up": end.bytes_up, "bytes_down": end.bytes_down,
        "seconds": (now_ms - s.started_at_ms) / 1000, "recording": end.recording,
        "leaver_sla_ms": leaver_sla_ms,
    });
    if let (Some(n), Some(map)) = (end.requests, details.as_object_mut()) {
        map.insert("requests".into(), serde_json::json!(n));
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            format!("identity:{}", s.identity),
            "session.end",
            format!("session:{id}"),
        )
        .details(details),
    )
    .await?;
    Ok(Some(s))
}

/// Asks every gateway instance to end a live session now (a reviewer's decision); audited as
/// `session.terminate`. The gateway then records the end with reason `terminated`.
pub async fn terminate(
    tx: &mut Tx,
    actor: &crate::Actor,
    now_ms: i64,
    id: &str,
) -> Result<Session> {
    let s = by_id(tx, id)
        .await?
        .ok_or_else(|| crate::Error::NotFound(format!("session {id}")))?;
    if s.ended_at_ms.is_some() {
        return Err(crate::Error::Conflict(format!(
            "session {id} has already ended"
        )));
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "session.terminate",
            format!("session:{id}"),
        )
        .details(
            serde_json::json!({ "identity": s.identity, "target": s.target, "login": s.login }),
        ),
    )
    .await?;
    tx.publish(crate::events::AccessEvent::SessionTerminated {
        session_id: id.to_string(),
        by: actor.to_string(),
    });
    Ok(s)
}

/// Records a refused session attempt: the reason is for the audit log, never for the client.
pub async fn denied(
    tx: &mut Tx,
    now_ms: i64,
    identity: &str,
    target: &str,
    login: &str,
    source: &str,
    reasons: &[String],
) -> Result<()> {
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            if identity.is_empty() {
                "anonymous".to_string()
            } else {
                format!("identity:{identity}")
            },
            "session.denied",
            format!("target:{target}"),
        )
        .outcome(Outcome::Deny)
        .details(serde_json::json!({
            "login": login, "source": source, "reasons": reasons,
        })),
    )
    .await?;
    Ok(())
}

/// Ends every session still open (a gateway that stopped without closing them), with `reason`.
pub async fn end_orphans(tx: &mut Tx, now_ms: i64, reason: &str) -> Result<usize> {
    let ids: Vec<String> = sqlx::query("SELECT id FROM sessions WHERE ended_at IS NULL")
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    for id in &ids {
        end(
            tx,
            now_ms,
            id,
            &End {
                reason: reason.into(),
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(ids.len())
}

const SELECT: &str = "SELECT id, identity, target, login, protocol, kind, grant_kind, grant_id, \
     source, started_at, ended_at, end_reason, bytes_up, bytes_down, recording FROM sessions";

fn row(r: &sqlx::any::AnyRow) -> Result<Session> {
    Ok(Session {
        id: r.try_get(0)?,
        identity: r.try_get(1)?,
        target: r.try_get(2)?,
        login: r.try_get(3)?,
        protocol: r.try_get(4)?,
        kind: r.try_get(5)?,
        grant_kind: r.try_get(6)?,
        grant_id: r.try_get(7)?,
        source: r.try_get(8)?,
        started_at_ms: r.try_get(9)?,
        ended_at_ms: r.try_get(10)?,
        end_reason: r.try_get(11)?,
        bytes_up: r.try_get(12)?,
        bytes_down: r.try_get(13)?,
        recording: r.try_get(14)?,
    })
}

pub async fn by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<Session>> {
    let q = format!("{SELECT} WHERE id = $1");
    match sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    {
        Some(r) => Ok(Some(row(&r)?)),
        None => Ok(None),
    }
}

/// Filters for [`list`].
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub identity: Option<String>,
    pub target: Option<String>,
    pub live: Option<bool>,
    /// Started at or after (epoch ms).
    pub since_ms: Option<i64>,
    /// Started before (epoch ms).
    pub until_ms: Option<i64>,
    pub limit: i64,
}

/// Sessions, newest first.
pub async fn list(conn: &mut AnyConnection, f: &Filter) -> Result<Vec<Session>> {
    let q = format!(
        "{SELECT} WHERE ($1 = '' OR identity = $1) AND ($2 = '' OR target = $2) \
         AND ($3 = 0 OR ($3 = 1 AND ended_at IS NULL) OR ($3 = 2 AND ended_at IS NOT NULL)) \
         AND started_at >= $5 AND started_at < $6 \
         ORDER BY started_at DESC, id DESC LIMIT $4"
    );
    let live: i64 = match f.live {
        None => 0,
        Some(true) => 1,
        Some(false) => 2,
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(f.identity.as_deref().unwrap_or(""))
        .bind(f.target.as_deref().unwrap_or(""))
        .bind(live)
        .bind(if f.limit <= 0 { 100 } else { f.limit.min(1000) })
        .bind(f.since_ms.unwrap_or(i64::MIN))
        .bind(f.until_ms.unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(row).collect()
}
