//! The webhook outbox: notifications (`notify`: requests to decide, decisions) and alerts
//! (`alert`: break-glass) are written in the transaction of the change and delivered later by a
//! worker with retries and backoff, so a slow or dead receiver never blocks a request.

use crate::error::{Error, Result};
use crate::ids;
use crate::ledger::store::Tx;
use sqlx::{AnyConnection, Row};

/// Gives up on a message after this many attempts.
pub const MAX_ATTEMPTS: i64 = 12;

/// Which webhook a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Notify,
    Alert,
}

impl Channel {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Notify => "notify",
            Channel::Alert => "alert",
        }
    }
}

/// Queues a message. `text` is the Slack-compatible one-line summary; `event` and `data` are the
/// machine-readable part.
pub async fn enqueue(
    tx: &mut Tx,
    now_ms: i64,
    channel: Channel,
    event: &str,
    text: &str,
    data: serde_json::Value,
) -> Result<()> {
    let payload = serde_json::json!({
        "text": text,
        "event": event,
        "time": crate::clock::format_ms(now_ms),
        "data": data,
    });
    sqlx::query(
        "INSERT INTO webhook_outbox (id, channel, payload, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, 0, $4, $4)",
    )
    .bind(ids::new_id())
    .bind(channel.as_str())
    .bind(payload.to_string())
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A message due for delivery.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub channel: String,
    pub payload: String,
    pub attempts: i64,
}

/// Messages due at `now_ms`, oldest first.
pub async fn due(conn: &mut AnyConnection, now_ms: i64, limit: i64) -> Result<Vec<Message>> {
    let rows = sqlx::query(
        "SELECT id, channel, payload, attempts FROM webhook_outbox WHERE delivered_at IS NULL \
         AND attempts < $1 AND next_attempt_at <= $2 ORDER BY created_at, id LIMIT $3",
    )
    .bind(MAX_ATTEMPTS)
    .bind(now_ms)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Message {
                id: r.try_get(0)?,
                channel: r.try_get(1)?,
                payload: r.try_get(2)?,
                attempts: r.try_get(3)?,
            })
        })
        .collect()
}

/// Backoff before attempt `attempts + 1`: 2 s doubling, at most 10 minutes.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    (2_000i64.saturating_mul(1i64 << exp)).min(600_000)
}

/// Records a delivery or a failed attempt.
pub async fn record(
    conn: &mut AnyConnection,
    id: &str,
    now_ms: i64,
    result: std::result::Result<(), String>,
) -> Result<()> {
    match result {
        Ok(()) => sqlx::query(
            "UPDATE webhook_outbox SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(Error::from),
        Err(e) => {
            let attempts: i64 =
                sqlx::query_scalar("SELECT attempts FROM webhook_outbox WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?;
            sqlx::query(
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $1, \
                 next_attempt_at = $2 WHERE id = $3",
            )
            .bind(e)
            .bind(now_ms + backoff_ms(attempts))
            .bind(id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
    }
}
