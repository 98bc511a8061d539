//! Review items: things someone must look at after the fact. Every break-glass grant opens one;
//! it stays open until a reviewer closes it with an outcome.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use serde::Serialize;
use sqlx::{AnyConnection, Row};

/// A stored review item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    pub id: String,
    pub kind: String,
    pub identity: String,
    pub grant_id: Option<String>,
    pub summary: String,
    pub state: String,
    pub created_at_ms: i64,
    pub closed_at_ms: Option<i64>,
    pub closed_by: Option<String>,
    pub outcome: Option<String>,
}

/// Opens an item; audited as `review.open`.
pub async fn open(
    tx: &mut Tx,
    now_ms: i64,
    kind: &str,
    identity_id: &str,
    grant_id: Option<&str>,
    summary: &str,
) -> Result<String> {
    let id = ids::new_id();
    sqlx::query(
        "INSERT INTO reviews (id, kind, identity_id, grant_id, summary, state, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'open', $6)",
    )
    .bind(id.as_str())
    .bind(kind)
    .bind(identity_id)
    .bind(grant_id)
    .bind(summary)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new("system", "review.open", format!("review:{id}"))
            .details(serde_json::json!({ "kind": kind, "grant": grant_id, "summary": summary })),
    )
    .await?;
    Ok(id)
}

/// Closes an open item with an outcome; audited as `review.close`.
pub async fn close(tx: &mut Tx, actor: &Actor, now_ms: i64, id: &str, outcome: &str) -> Result<()> {
    if outcome.trim().is_empty() {
        return Err(Error::invalid("closing a review needs an outcome"));
    }
    let n = sqlx::query(
        "UPDATE reviews SET state = 'closed', closed_at = $1, closed_by = $2, outcome = $3 \
         WHERE id = $4 AND state = 'open'",
    )
    .bind(now_ms)
    .bind(actor.to_string())
    .bind(outcome)
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(Error::NotFound(format!("open review {id}")));
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "review.close", format!("review:{id}"))
            .details(serde_json::json!({ "outcome": outcome })),
    )
    .await?;
    Ok(())
}

/// Items, newest first; only open ones when `open_only`.
pub async fn list(conn: &mut AnyConnection, open_only: bool) -> Result<Vec<Review>> {
    let rows = sqlx::query(
        "SELECT r.id, r.kind, i.username, r.grant_id, r.summary, r.state, r.created_at, \
         r.closed_at, r.closed_by, r.outcome FROM reviews r JOIN identities i ON i.id = r.identity_id \
         WHERE r.state = 'open' OR $1 = 0 ORDER BY r.created_at DESC, r.id DESC",
    )
    .bind(i64::from(open_only))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Review {
                id: r.try_get(0)?,
                kind: r.try_get(1)?,
                identity: r.try_get(2)?,
                grant_id: r.try_get(3)?,
                summary: r.try_get(4)?,
                state: r.try_get(5)?,
                created_at_ms: r.try_get(6)?,
                closed_at_ms: r.try_get(7)?,
                closed_by: r.try_get(8)?,
                outcome: r.try_get(9)?,
            })
        })
        .collect()
}
