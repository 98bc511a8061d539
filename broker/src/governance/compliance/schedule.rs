//! Scheduled evidence packs (`[[reports]]`): when each is due and which period it covers (plain
//! functions), and the claim that makes one instance generate it (a conditional UPDATE of its
//! next due time in `report_schedules`).

use super::gather::Period;
use crate::error::{Error, Result};
use crate::governance::campaigns::spec::{Schedule, parse_schedule};
use crate::ledger::store::Store;
use chrono::{Datelike, Months, TimeZone, Utc};
use sqlx::Row;

fn at(ms: i64) -> Result<chrono::DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| Error::invalid("time out of range"))
}

/// The first due time after `now_ms`: the start of the next month, or of the next quarter
/// (January, April, July, October), UTC; the next occurrence of a cron expression.
pub fn first_due(schedule: &str, now_ms: i64) -> Result<i64> {
    let now = at(now_ms)?;
    match parse_schedule(schedule)? {
        Schedule::Months(n) => {
            let mut t = Utc
                .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
                .single()
                .ok_or_else(|| Error::invalid("time out of range"))?;
            loop {
                t = t
                    .checked_add_months(Months::new(1))
                    .ok_or_else(|| Error::invalid("time out of range"))?;
                if t.month0() % n == 0 {
                    return Ok(t.timestamp_millis());
                }
            }
        }
        Schedule::Cron(c) => c
            .find_next_occurrence(&now, false)
            .map(|t| t.timestamp_millis())
            .map_err(|e| Error::invalid(format!("schedule {schedule:?}: {e}"))),
        Schedule::Once => Err(Error::invalid("a [[reports]] schedule cannot be once")),
    }
}

/// The period a run due at `due_ms` covers and the run after it: the calendar month or quarter
/// that just ended; for a cron expression, since the previous run (or one interval).
pub fn period_of(schedule: &str, due_ms: i64, last_ms: Option<i64>) -> Result<(Period, i64)> {
    let due = at(due_ms)?;
    let range = || Error::invalid("time out of range");
    match parse_schedule(schedule)? {
        Schedule::Months(n) => {
            let from = due.checked_sub_months(Months::new(n)).ok_or_else(range)?;
            let next = due.checked_add_months(Months::new(n)).ok_or_else(range)?;
            Ok((
                Period {
                    from_ms: from.timestamp_millis(),
                    to_ms: due_ms,
                },
                next.timestamp_millis(),
            ))
        }
        Schedule::Cron(c) => {
            let next = c
                .find_next_occurrence(&due, false)
                .map_err(|e| Error::invalid(format!("schedule {schedule:?}: {e}")))?
                .timestamp_millis();
            Ok((
                Period {
                    from_ms: last_ms.unwrap_or(due_ms - (next - due_ms)),
                    to_ms: due_ms,
                },
                next,
            ))
        }
        Schedule::Once => Err(Error::invalid("a [[reports]] schedule cannot be once")),
    }
}

/// How long a claimed run may take before another instance makes it again.
pub const LEASE_MS: i64 = 3_600_000;

/// A run to make now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub period: Period,
    /// When it was due (the period's end).
    pub due_ms: i64,
    /// When the next one is due.
    pub next_ms: i64,
}

/// Registers `name` on first sight (due at its first due time) and claims its run when due:
/// the row's next time becomes a lease of [`LEASE_MS`] and the run is noted, so that if this
/// instance dies another makes the same run when the lease ends. Returns the run this caller
/// must make; `None` when nothing is due or another instance holds it.
pub async fn claim(store: &Store, name: &str, schedule: &str, now_ms: i64) -> Result<Option<Run>> {
    let mut conn = store.pool().acquire().await?;
    let row = sqlx::query(
        "SELECT next_run_at, last_run_at, running_due FROM report_schedules WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        sqlx::query(
            "INSERT INTO report_schedules (name, next_run_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(first_due(schedule, now_ms)?)
        .execute(&mut *conn)
        .await?;
        return Ok(None);
    };
    let next_at: i64 = row.try_get(0)?;
    let last: Option<i64> = row.try_get(1)?;
    let running: Option<i64> = row.try_get(2)?;
    if next_at > now_ms {
        return Ok(None);
    }
    let due = running.unwrap_or(next_at);
    let (period, next) = period_of(schedule, due, last)?;
    let claimed = sqlx::query(
        "UPDATE report_schedules SET next_run_at = $1, running_due = $2 WHERE name = $3 AND next_run_at = $4",
    )
    .bind(now_ms + LEASE_MS)
    .bind(due)
    .bind(name)
    .bind(next_at)
    .execute(&mut *conn)
    .await?;
    Ok((claimed.rows_affected() == 1).then_some(Run {
        period,
        due_ms: due,
        next_ms: next,
    }))
}

/// Marks a run made: the next one is due at its time (or at once when several were missed,
/// one at a time), and where it was written is kept.
pub async fn done(store: &Store, name: &str, run: &Run, output: &str) -> Result<()> {
    sqlx::query(
        "UPDATE report_schedules SET next_run_at = $1, running_due = NULL, last_run_at = $2, \
         last_output = $3 WHERE name = $4 AND running_due = $2",
    )
    .bind(run.next_ms)
    .bind(run.due_ms)
    .bind(output)
    .bind(name)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// A name for a run's directory: dates when the period is whole days, else times (so runs
/// more often than daily never collide).
pub fn label(p: Period) -> String {
    const DAY: i64 = 86_400_000;
    let f = crate::clock::format_ms;
    if p.from_ms % DAY == 0 && p.to_ms % DAY == 0 {
        format!(
            "{}-{}",
            f(p.from_ms).get(..10).unwrap_or_default(),
            f(p.to_ms - 1).get(..10).unwrap_or_default()
        )
    } else {
        let t = |ms: i64| {
            crate::clock::from_ms(ms)
                .format("%Y-%m-%dT%H%MZ")
                .to_string()
        };
        format!("{}-{}", t(p.from_ms), t(p.to_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn months_and_quarters_cover_the_calendar_period_that_just_ended() {
        let now = t("2026-05-17T10:00:00Z");
        assert_eq!(
            first_due("monthly", now).unwrap(),
            t("2026-06-01T00:00:00Z")
        );
        assert_eq!(
            first_due("quarterly", now).unwrap(),
            t("2026-07-01T00:00:00Z")
        );
        assert_eq!(
            first_due("quarterly", t("2026-11-02T00:00:00Z")).unwrap(),
            t("2027-01-01T00:00:00Z")
        );
        let (p, next) = period_of("quarterly", t("2026-07-01T00:00:00Z"), None).unwrap();
        assert_eq!(
            (p.from_ms, p.to_ms),
            (t("2026-04-01T00:00:00Z"), t("2026-07-01T00:00:00Z"))
        );
        assert_eq!(next, t("2026-10-01T00:00:00Z"));
        let (p, next) = period_of("0 6 * * *", t("2026-07-02T06:00:00Z"), None).unwrap();
        assert_eq!(p.from_ms, t("2026-07-01T06:00:00Z"));
        assert_eq!(next, t("2026-07-03T06:00:00Z"));
        assert!(first_due("once", now).is_err());
        let l = label(Period {
            from_ms: t("2026-04-01T00:00:00Z"),
            to_ms: t("2026-07-01T00:00:00Z"),
        });
        assert_eq!(l, "2026-04-01-2026-06-30");
        let l = label(Period {
            from_ms: t("2026-07-01T06:00:00Z"),
            to_ms: t("2026-07-01T12:00:00Z"),
        });
        assert_eq!(l, "2026-07-01T0600Z-2026-07-01T1200Z");
    }
}
