//! Retention: how long recordings and the audit log are kept. Recordings past
//! `[retention] recordings` are deleted — the cast goes, its signed manifest stays, and each
//! deletion is an audited `recording.delete` — while the audit log is never rewritten: its
//! status says how far back it reaches against `[retention] audit`.

use crate::error::Result;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Store;
use sqlx::{AnyConnection, Row};
use std::path::Path;

/// What is kept, against the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub now_ms: i64,
    pub audit_events: i64,
    pub audit_oldest_ms: Option<i64>,
    pub audit_policy_ms: Option<i64>,
    pub recordings: i64,
    pub recordings_oldest_ms: Option<i64>,
    pub recordings_past: i64,
    pub recordings_deleted: i64,
    pub recordings_policy_ms: Option<i64>,
    /// Ended sessions past retention with no recording on record (a cast that failed to
    /// finish may still lie at its default path; deleting those is left to the operator).
    pub unrecorded_past: i64,
}

fn days(ms: i64) -> i64 {
    ms / 86_400_000
}

impl Status {
    /// (item, policy, status) lines, for the report and the CLI.
    pub fn rows(&self) -> Vec<(String, String, String)> {
        let fmt = crate::clock::format_ms;
        let policy =
            |p: Option<i64>| p.map_or("not set".to_string(), |p| format!("{} days", days(p)));
        let audit = match self.audit_oldest_ms {
            None => "empty".to_string(),
            Some(o) => {
                let span = days(self.now_ms - o);
                let meets = match self.audit_policy_ms {
                    Some(p) if self.now_ms - o >= p => {
                        "the whole retention period is held".to_string()
                    }
                    Some(_) => format!(
                        "all {span} days since the first event are held (younger than the policy; nothing is ever deleted)"
                    ),
                    None => "kept for ever".to_string(),
                };
                format!(
                    "{} events since {} ({span} days), never rewritten: {meets}",
                    self.audit_events,
                    fmt(o)
                )
            }
        };
        let rec = format!(
            "{} recordings kept{}; {} past retention awaiting deletion; {} deleted (manifests kept)",
            self.recordings,
            self.recordings_oldest_ms
                .map_or(String::new(), |o| format!(", oldest ended {}", fmt(o))),
            self.recordings_past,
            self.recordings_deleted
        );
        let rec = if self.unrecorded_past > 0 {
            format!(
                "{rec}; {} ended sessions past retention have no recording on record (check the recordings directory for casts that never finished)",
                self.unrecorded_past
            )
        } else {
            rec
        };
        vec![
            ("audit log".into(), policy(self.audit_policy_ms), audit),
            (
                "session recordings".into(),
                policy(self.recordings_policy_ms),
                rec,
            ),
        ]
    }
}

/// Reads the retention status at `now_ms`.
pub async fn status(
    conn: &mut AnyConnection,
    now_ms: i64,
    recordings_ms: Option<i64>,
    audit_ms: Option<i64>,
) -> Result<Status> {
    let a = sqlx::query("SELECT COUNT(*), MIN(time) FROM audit_events")
        .fetch_one(&mut *conn)
        .await?;
    let cutoff = recordings_ms.map_or(i64::MIN, |r| now_ms - r);
    let r = sqlx::query(
        "SELECT SUM(CASE WHEN recording_deleted_at IS NULL THEN 1 ELSE 0 END), \
         MIN(CASE WHEN recording_deleted_at IS NULL THEN ended_at END), \
         SUM(CASE WHEN recording_deleted_at IS NULL AND ended_at < $1 THEN 1 ELSE 0 END), \
         SUM(CASE WHEN recording_deleted_at IS NULL THEN 0 ELSE 1 END) \
         FROM sessions WHERE recording IS NOT NULL",
    )
    .bind(cutoff)
    .fetch_one(&mut *conn)
    .await?;
    let unrecorded: i64 = if recordings_ms.is_some() {
        sqlx::query(
            "SELECT COUNT(*) FROM sessions WHERE recording IS NULL AND ended_at IS NOT NULL \
             AND ended_at < $1 AND bytes_down > 0",
        )
        .bind(cutoff)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?
    } else {
        0
    };
    Ok(Status {
        now_ms,
        unrecorded_past: unrecorded,
        audit_events: a.try_get(0)?,
        audit_oldest_ms: a.try_get(1)?,
        audit_policy_ms: audit_ms,
        recordings: r.try_get::<Option<i64>, _>(0)?.unwrap_or(0),
        recordings_oldest_ms: r.try_get(1)?,
        recordings_past: if recordings_ms.is_some() {
            r.try_get::<Option<i64>, _>(2)?.unwrap_or(0)
        } else {
            0
        },
        recordings_deleted: r.try_get::<Option<i64>, _>(3)?.unwrap_or(0),
        recordings_policy_ms: recordings_ms,
    })
}

/// Deletes up to `limit` recordings that ended more than `retention_ms` before `now_ms`: the
/// cast (or request log) is removed first, then the session is marked and the deletion audited
/// in one transaction, so a crash between the two is finished by the next run. The signed
/// manifest stays. Returns how many were deleted.
pub async fn purge_recordings(
    store: &Store,
    dir: &Path,
    now_ms: i64,
    retention_ms: i64,
    limit: i64,
) -> Result<usize> {
    let mut conn = store.pool().acquire().await?;
    let rows = sqlx::query(
        "SELECT id, recording, ended_at FROM sessions WHERE recording IS NOT NULL \
         AND recording_deleted_at IS NULL AND ended_at IS NOT NULL AND ended_at < $1 \
         ORDER BY ended_at LIMIT $2",
    )
    .bind(now_ms - retention_ms)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    drop(conn);
    let mut done = Vec::new();
    for r in rows {
        let id: String = r.try_get(0)?;
        let rel: String = r.try_get(1)?;
        let ended: i64 = r.try_get(2)?;
        if rel.contains("..") || Path::new(&rel).is_absolute() {
            tracing::warn!(session = %id, "recording path not under the recordings directory; left alone");
            continue;
        }
        let path = dir.join(&rel);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "could not delete a recording past retention");
                continue;
            }
        }
        done.push((id, rel, ended));
    }
    if done.is_empty() {
        return Ok(0);
    }
    let mut tx = store.begin().await?;
    let mut marked = 0;
    for (id, rel, ended) in &done {
        // Only the instance whose UPDATE marks the row records the deletion.
        let n = sqlx::query(
            "UPDATE sessions SET recording_deleted_at = $1 WHERE id = $2 AND recording_deleted_at IS NULL",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() != 1 {
            continue;
        }
        marked += 1;
        audit::append(
            &mut tx,
            now_ms,
            NewEvent::new("system", "recording.delete", format!("session:{id}")).details(
                serde_json::json!({
                    "recording": rel,
                    "ended": crate::clock::format_ms(*ended),
                    "retention_days": days(retention_ms),
                    "manifest": "kept",
                }),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(marked)
}
