//! The audit log: an append-only hash chain of every decision and state change, written in the
//! same transaction as the change it records, with signed checkpoints an auditor can keep.

pub mod chain;
pub mod checkpoint;
pub mod scan;
pub mod verify;

use crate::error::{Error, Result};
use crate::store::Backend;
use futures_util::stream::{BoxStream, StreamExt};
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::{AssertSqlSafe, Row};

pub use checkpoint::Checkpoint;
pub use verify::{Problem, VerifyReport};

/// How a recorded action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A change was made.
    Success,
    /// A change was attempted and failed.
    Failure,
    /// An access decision allowed.
    Allow,
    /// An access decision denied.
    Deny,
}

impl Outcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
        }
    }
}

/// An event about to be appended. Details must never hold a secret.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub actor: String,
    pub action: String,
    pub object: String,
    pub outcome: Outcome,
    pub details: serde_json::Value,
}

impl NewEvent {
    /// A successful `action` by `actor` on `object`, with no details.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        object: impl Into<String>,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            object: object.into(),
            outcome: Outcome::Success,
            details: serde_json::Value::Object(Default::default()),
        }
    }

    /// Sets the outcome.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets the details (a JSON object; serialised with sorted keys).
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub seq: i64,
    pub time_ms: i64,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub outcome: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Event {
    /// The fields its hash covers.
    pub fn content(&self) -> chain::Content<'_> {
        chain::Content {
            seq: self.seq,
            time_ms: self.time_ms,
            actor: &self.actor,
            action: &self.action,
            object: &self.object,
            outcome: &self.outcome,
            details: &self.details,
        }
    }

    /// The JSON line written by `gatehouse audit export`.
    pub fn to_export_json(&self) -> serde_json::Value {
        let details = serde_json::from_str::<serde_json::Value>(&self.details)
            .unwrap_or_else(|_| serde_json::Value::String(self.details.clone()));
        serde_json::json!({
            "seq": self.seq,
            "time": crate::clock::format_ms(self.time_ms),
            "actor": self.actor,
            "action": self.action,
            "object": self.object,
            "outcome": self.outcome,
            "details": details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        })
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Sequence number of the last event appended.
    pub seq: i64,
}

/// Appends one event inside the caller's transaction.
pub async fn append(conn: &mut AnyConnection, now_ms: i64, event: NewEvent) -> Result<Appended> {
    append_batch(conn, now_ms, vec![event]).await
}

/// Rows per multi-row INSERT (9 parameters each; SQLite allows 32,766 per statement).
const ROWS_PER_INSERT: usize = 1000;

/// Appends several events inside the caller's transaction, in order, with one lock of the chain
/// head and multi-row inserts: the fast path for callers that produce events in bulk.
pub async fn append_batch(
    conn: &mut AnyConnection,
    now_ms: i64,
    events: Vec<NewEvent>,
) -> Result<Appended> {
    let n = i64::try_from(events.len()).map_err(|_| Error::invalid("too many events"))?;
    if n == 0 {
        return Err(Error::invalid("no events to append"));
    }
    // Locks the head row until the transaction ends: appends are serialised across connections
    // and, on PostgreSQL, across instances.
    let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
        .bind(n)
        .fetch_one(&mut *conn)
        .await?;
    let last_seq: i64 = head.try_get("seq")?;
    let head_hash: String = head.try_get("hash")?;
    let mut prev = chain::parse_hash(&head_hash)
        .ok_or_else(|| Error::Storage("audit_head holds a malformed hash".into()))?;

    let mut rows = Vec::with_capacity(events.len());
    for (seq, ev) in (last_seq - n + 1..).zip(events) {
        let details = serde_json::to_string(&ev.details)
            .map_err(|e| Error::invalid(format!("audit details: {e}")))?;
        let stored = Event {
            seq,
            time_ms: now_ms,
            outcome: ev.outcome.as_str().to_string(),
            actor: ev.actor,
            action: ev.action,
            object: ev.object,
            details,
            prev_hash: hex::encode(prev),
            hash: String::new(),
        };
        prev = chain::event_hash(&stored.content(), &prev);
        rows.push(Event {
            hash: hex::encode(prev),
            ..stored
        });
    }

    // The new head hash is written with the last rows: on PostgreSQL in the same statement (one
    // round trip fewer while the head row is locked), on SQLite (in-process) as its own statement.
    let backend = crate::store::backend_of(conn);
    let head_hash = hex::encode(prev);
    let chunks: Vec<&[Event]> = rows.chunks(ROWS_PER_INSERT).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let with_head = last && backend == Backend::Postgres;
        let mut q = sqlx::query(AssertSqlSafe(insert_sql(chunk.len(), backend, with_head)));
        for r in chunk.iter() {
            q = q
                .bind(r.seq)
                .bind(r.time_ms)
                .bind(r.actor.as_str())
                .bind(r.action.as_str())
                .bind(r.object.as_str())
                .bind(r.outcome.as_str())
                .bind(r.details.as_str())
                .bind(r.prev_hash.as_str())
                .bind(r.hash.as_str());
        }
        if with_head {
            q = q.bind(head_hash.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    if backend == Backend::Sqlite {
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(head_hash.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(Appended { seq: last_seq })
}

/// `INSERT ... VALUES ($1..$9), ($10..$18), ...` for `rows` rows; placeholders only, no data.
/// SQLite gets anonymous `?` placeholders: its driver looks every named one up in a list, which
/// makes a statement with thousands of `$N` quadratic. With `set_head` (PostgreSQL), the
/// statement also sets the head hash from one more parameter.
fn insert_sql(rows: usize, backend: Backend, set_head: bool) -> String {
    let mut sql = String::new();
    if set_head {
        sql.push_str("WITH appended AS (");
    }
    sql.push_str(
        "INSERT INTO audit_events \
         (seq, time, actor, action, object, outcome, details, prev_hash, hash) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..9 {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", r * 9 + c + 1)),
            }
        }
        sql.push(')');
    }
    if set_head {
        sql.push_str(&format!(
            ") UPDATE audit_head SET hash = ${} WHERE id = 1",
            rows * 9 + 1
        ));
    }
    sql
}

const SELECT_EVENTS: &str =
    "SELECT seq, time, actor, action, object, outcome, details, prev_hash, hash FROM audit_events";

fn event_from_row(row: &sqlx::any::AnyRow) -> Result<Event> {
    Ok(Event {
        seq: row.try_get(0)?,
        time_ms: row.try_get(1)?,
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        object: row.try_get(4)?,
        outcome: row.try_get(5)?,
        details: row.try_get(6)?,
        prev_hash: row.try_get(7)?,
        hash: row.try_get(8)?,
    })
}

/// Every event in sequence order, streamed (constant memory however long the log).
pub fn stream_all<'e, E>(executor: E) -> BoxStream<'e, Result<Event>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any> + 'e,
{
    sqlx::query(const_sql(SELECT_EVENTS, " ORDER BY seq"))
        .fetch(executor)
        .map(|r| r.map_err(Error::from).and_then(|row| event_from_row(&row)))
        .boxed()
}

/// Events at or after `since_ms`, in sequence order, streamed.
pub fn stream_since<'e, E>(executor: E, since_ms: i64) -> BoxStream<'e, Result<Event>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any> + 'e,
{
    sqlx::query(const_sql(SELECT_EVENTS, " WHERE time >= $1 ORDER BY seq"))
        .bind(since_ms)
        .fetch(executor)
        .map(|r| r.map_err(Error::from).and_then(|row| event_from_row(&row)))
        .boxed()
}

/// The most recent `limit` events, newest first.
pub async fn recent(conn: &mut AnyConnection, limit: i64) -> Result<Vec<Event>> {
    let rows = sqlx::query(const_sql(SELECT_EVENTS, " ORDER BY seq DESC LIMIT $1"))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// The chain head as recorded in `audit_head`: (number of events, hash of the last one).
pub async fn head(conn: &mut AnyConnection) -> Result<(i64, String)> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// The last stored event's (seq, hash), if any.
pub async fn last_event(conn: &mut AnyConnection) -> Result<Option<(i64, String)>> {
    let row = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(r) => Ok(Some((r.try_get(0)?, r.try_get(1)?))),
        None => Ok(None),
    }
}

/// Joins two static SQL fragments. Only ever called with literals, never with data.
fn const_sql(a: &'static str, b: &'static str) -> AssertSqlSafe<String> {
    AssertSqlSafe(format!("{a}{b}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_placeholders_across_rows() {
        let sql = insert_sql(2, Backend::Postgres, false);
        assert!(sql.ends_with("($1, $2, $3, $4, $5, $6, $7, $8, $9), ($10, $11, $12, $13, $14, $15, $16, $17, $18)"), "{sql}");
        let sql = insert_sql(1, Backend::Postgres, true);
        assert!(sql.starts_with("WITH appended AS (INSERT"), "{sql}");
        assert!(
            sql.ends_with("$9)) UPDATE audit_head SET hash = $10 WHERE id = 1"),
            "{sql}"
        );
        let sql = insert_sql(2, Backend::Sqlite, false);
        assert!(
            sql.ends_with("(?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            "{sql}"
        );
    }
}
