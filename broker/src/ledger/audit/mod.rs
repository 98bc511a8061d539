//! The audit log: an append-only hash chain of every decision and state change, written in the
//! same transaction as the change it records, with signed checkpoints an auditor can keep.

mod append;
pub mod chain;
pub mod checkpoint;
pub mod query;
pub mod scan;
pub mod verify;

use crate::error::{Error, Result};
use futures_util::stream::{BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::{AssertSqlSafe, Row};

pub use append::{Appended, append, append_batch};
pub(crate) use append::{bind_rows, insert_sql, known_head};
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

/// An event as stored. The field order is also the column order of `SELECT_EVENTS` and of the
/// JSON arrays `scan` reads: keep them in step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
