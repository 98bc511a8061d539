//! Compliance evidence: the facts Gatehouse holds turned into what auditors ask for — evidence
//! packs per framework (SOC 2, ISO 27001, SOX ITGC, HIPAA) whose every file states its query
//! and parameters and is listed in a signed manifest, entitlements now and as of a past date
//! rebuilt from the audit log, and the retention of recordings and the audit log.
//!
//! - [`dataset`]: a population with its query, written as CSV and JSON.
//! - [`gather`]: every dataset read in one snapshot, with the reconciliation against the chain.
//! - [`entitlements`]: who can reach what and why; now, or replayed from the audit log.
//! - [`controls`]: frameworks, controls, the checks that find exceptions, headline figures.
//! - [`pack`]: building, writing and verifying a signed pack.
//! - [`html`]: the one-file HTML summary with its SVG charts.
//! - [`retention`]: retention status and deleting recordings past it.

pub mod controls;
pub mod dashboard;
pub mod dataset;
pub mod entitlements;
pub mod gather;
pub mod html;
pub mod pack;
pub mod retention;
pub mod schedule;

pub use controls::Framework;
pub use gather::{Options, Period};

use crate::error::{Error, Result};

/// A moment typed by a person: an RFC 3339 time, or a date `YYYY-MM-DD` (UTC) meaning its
/// start, or with `end_of_day` its end (the start of the next day, exclusive).
pub fn parse_time(s: &str, end_of_day: bool) -> Result<i64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        Error::invalid(format!(
            "{s:?} is not a date (2026-03-31) nor an RFC 3339 time (2026-03-31T12:00:00Z)"
        ))
    })?;
    let d = if end_of_day {
        d.succ_opt().unwrap_or(d)
    } else {
        d
    };
    Ok(d.and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_millis())
}

/// The moment an as-of question is about: a date means its end (UTC), today's end being now;
/// a time in the future is refused.
pub fn as_of(s: &str, now_ms: i64) -> Result<i64> {
    let end = parse_time(s, true)?;
    if end <= now_ms {
        return Ok(end);
    }
    if parse_time(s, false)? <= now_ms {
        return Ok(now_ms);
    }
    Err(Error::invalid(format!(
        "{s:?} is in the future: give a past date or time"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_parse_and_nonsense_says_what_to_write() {
        assert_eq!(parse_time("2026-01-01", false).unwrap(), 1_767_225_600_000);
        assert_eq!(
            parse_time("2026-01-01", true).unwrap(),
            1_767_225_600_000 + 86_400_000
        );
        assert_eq!(
            parse_time("2026-01-01T00:00:01Z", true).unwrap(),
            1_767_225_601_000
        );
        let now = 1_767_225_600_000 + 3_600_000;
        assert_eq!(as_of("2026-01-01", now).unwrap(), now);
        assert_eq!(as_of("2025-12-31", now).unwrap(), 1_767_225_600_000);
        assert!(
            as_of("2026-01-02", now)
                .unwrap_err()
                .to_string()
                .contains("future")
        );
        assert!(
            parse_time("yesterday", false)
                .unwrap_err()
                .to_string()
                .contains("2026-03-31")
        );
    }
}
