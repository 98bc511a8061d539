//! Reading the audit log with filters, newest first, in pages keyed by `seq`.

use super::{Event, SELECT_EVENTS as SELECT};
use crate::error::Result;
use sqlx::AnyConnection;

/// What to look for. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<String>,
    /// An exact action, or a prefix ending in `.` (`request.` matches every request event).
    pub action: Option<String>,
    pub object: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only events older than this `seq` (the next page after a page ending at it).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// Events matching `f`, newest first, at most `f.limit` (1..=1000, default 100).
pub async fn query(conn: &mut AnyConnection, f: &Filter) -> Result<Vec<Event>> {
    let action = f.action.clone().unwrap_or_default();
    let (exact, prefix) = if action.ends_with('.') {
        (String::new(), format!("{action}%"))
    } else {
        (action, String::new())
    };
    let limit = if (1..=1000).contains(&f.limit) {
        f.limit
    } else {
        100
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE ($1 = '' OR actor = $1) AND ($2 = '' OR action = $2) \
         AND ($3 = '' OR action LIKE $3) AND ($4 = '' OR object = $4) \
         AND time >= $5 AND time < $6 AND seq < $7 ORDER BY seq DESC LIMIT $8"
    )))
    .bind(f.actor.clone().unwrap_or_default())
    .bind(exact)
    .bind(prefix)
    .bind(f.object.clone().unwrap_or_default())
    .bind(f.since_ms.unwrap_or(i64::MIN))
    .bind(f.until_ms.unwrap_or(i64::MAX))
    .bind(f.before_seq.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(super::event_from_row).collect()
}
