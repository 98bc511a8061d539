//! Start and end dates between HR imports: a staged hire becomes active on its start date and a
//! person past their end date (contractors and vendors have one) is a leaver, without waiting
//! for the next file. `serve` runs this on a timer; `gatehouse hr dates` runs it by hand.

use super::engine;
use crate::actor::Actor;
use crate::error::Result;
use crate::identity::identities::{self, Status};
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::{Store, Tx};
use chrono::NaiveDate;
use serde_json::{Map, Value};
use sqlx::Row;

/// What a date makes of one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub username: String,
    /// `start` (start date reached) or `leaver` (end date passed).
    pub kind: &'static str,
    /// The date that made it due, `YYYY-MM-DD`.
    pub date: String,
}

fn date(attrs: &Map<String, Value>, key: &str) -> Option<NaiveDate> {
    attrs
        .get(key)
        .and_then(Value::as_str)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

/// What is due on `today` for an identity in `status` with `attrs` (the same rule as an import:
/// active from the start date, terminated the day after the end date).
pub fn due(status: Status, attrs: &Map<String, Value>, today: NaiveDate) -> Option<&'static str> {
    let ended = date(attrs, "end_date").is_some_and(|e| today > e);
    match status {
        Status::Active | Status::Suspended | Status::Prehire if ended => Some("leaver"),
        Status::Prehire if date(attrs, "start_date").is_some_and(|s| s <= today) => Some("start"),
        _ => None,
    }
}

/// The HR identities a date changes on `today`.
pub async fn pending(store: &Store, today: NaiveDate) -> Result<Vec<Due>> {
    let mut conn = store.pool().acquire().await?;
    // Only HR-managed people carry start and end dates; the LIKE is a cheap pre-filter.
    let rows = sqlx::query(
        "SELECT username, status, attributes FROM identities WHERE source = 'hr' AND \
         (status = 'prehire' OR (status IN ('active', 'suspended') AND attributes LIKE '%end_date%'))",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let status = Status::parse(&r.try_get::<String, _>(1)?)?;
        let attrs: Map<String, Value> =
            serde_json::from_str(&r.try_get::<String, _>(2)?).unwrap_or_default();
        if let Some(kind) = due(status, &attrs, today) {
            let key = if kind == "start" {
                "start_date"
            } else {
                "end_date"
            };
            let date = attrs
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            out.push(Due {
                username: r.try_get(0)?,
                kind,
                date,
            });
        }
    }
    Ok(out)
}

/// Applies one due change in the caller's transaction, audited as `hr.start` / `hr.leaver`
/// with the date that caused it. Does nothing if the identity changed meanwhile.
pub async fn apply(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    today: NaiveDate,
    d: &Due,
    grace_ms: i64,
) -> Result<bool> {
    let Some(who) = identities::by_username(tx, &d.username).await? else {
        return Ok(false);
    };
    if due(who.status, &who.attributes, today) != Some(d.kind) {
        return Ok(false);
    }
    let reason = if d.kind == "start" {
        "start_date"
    } else {
        "end_date"
    };
    let mut details = serde_json::json!({ "reason": reason, "date": d.date });
    if d.kind == "start" {
        identities::set_status(tx, actor, now_ms, &who.username, Status::Active).await?;
        let (added, _) = engine::reconcile_birthright(
            tx,
            actor,
            now_ms,
            &who.username,
            &who.id,
            &who.attributes,
            Status::Active,
            grace_ms,
        )
        .await?;
        details["roles_added"] = serde_json::json!(added);
    } else {
        let handed = engine::terminate(tx, actor, now_ms, &who.username, &who.attributes).await?;
        details["leaver"] = handed;
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            format!("hr.{}", d.kind),
            format!("identity:{}", who.username),
        )
        .details(details),
    )
    .await?;
    Ok(true)
}

/// Applies everything due on the day of `now_ms`, one transaction per person; returns what
/// changed.
pub async fn run(store: &Store, actor: &Actor, now_ms: i64, grace_ms: i64) -> Result<Vec<Due>> {
    let today = crate::clock::from_ms(now_ms).date_naive();
    let mut done = Vec::new();
    for d in pending(store, today).await? {
        let mut tx = store.begin().await?;
        if apply(&mut tx, actor, now_ms, today, &d, grace_ms).await? {
            tx.commit().await?;
            done.push(d);
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    #[test]
    fn start_on_the_day_and_leave_the_day_after_the_end() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let staged = attrs(&[("start_date", "2026-12-01")]);
        assert_eq!(due(Status::Prehire, &staged, d("2026-11-30")), None);
        assert_eq!(
            due(Status::Prehire, &staged, d("2026-12-01")),
            Some("start")
        );
        assert_eq!(due(Status::Active, &staged, d("2026-12-02")), None);
        let contractor = attrs(&[("start_date", "2026-01-01"), ("end_date", "2026-12-31")]);
        assert_eq!(due(Status::Active, &contractor, d("2026-12-31")), None);
        assert_eq!(
            due(Status::Active, &contractor, d("2027-01-01")),
            Some("leaver")
        );
        assert_eq!(
            due(Status::Suspended, &contractor, d("2027-01-01")),
            Some("leaver")
        );
        assert_eq!(due(Status::Terminated, &contractor, d("2027-01-01")), None);
        assert_eq!(due(Status::Disabled, &contractor, d("2027-01-01")), None);
        // Hired for a window that has already passed: never starts, leaves.
        assert_eq!(
            due(Status::Prehire, &contractor, d("2027-02-01")),
            Some("leaver")
        );
        // A date it cannot read changes nothing.
        let bad = attrs(&[("start_date", "soon")]);
        assert_eq!(due(Status::Prehire, &bad, d("2030-01-01")), None);
    }
}
