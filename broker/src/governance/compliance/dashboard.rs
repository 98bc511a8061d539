//! The compliance dashboard's series: sessions per day by target, sessions by how access was
//! held (just in time or standing), leavers' time to cut-off, review completion, break-glass
//! uses and denials per day — each a small query over the last days, kept as a [`Chart`] whose
//! rows are also its CSV.

use super::dataset::Dataset;
use super::gather::{Options, Period};
use crate::error::Result;
use serde::Serialize;
use serde_json::Value;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

const DAY: i64 = 86_400_000;

/// One chart: labels along x, one or more series.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub name: &'static str,
    pub title: &'static str,
    /// `bar` or `line`.
    pub kind: &'static str,
    pub stacked: bool,
    pub labels: Vec<String>,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub label: String,
    pub data: Vec<i64>,
}

impl Chart {
    /// The chart's data as a dataset (CSV: one row per label, one column per series).
    pub fn dataset(&self, query: &str) -> Dataset {
        let mut cols = vec!["label"];
        cols.extend(self.series.iter().map(|s| s.label.as_str()));
        let mut d = Dataset::derived(self.name, self.title, query, &cols);
        for (i, l) in self.labels.iter().enumerate() {
            let mut row = vec![Value::from(l.clone())];
            row.extend(
                self.series
                    .iter()
                    .map(|s| Value::from(s.data.get(i).copied().unwrap_or(0))),
            );
            d.rows.push(row);
        }
        d
    }
}

fn day_label(day: i64) -> String {
    crate::clock::format_ms(day * DAY)
        .get(..10)
        .unwrap_or_default()
        .to_string()
}

/// Day-by-key counts into a chart with every day of the window (zeros included); keys beyond
/// the `top` largest are summed as "other".
fn per_day(
    name: &'static str,
    title: &'static str,
    kind: &'static str,
    first_day: i64,
    days: i64,
    counts: Vec<(i64, String, i64)>,
    top: usize,
) -> Chart {
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for (_, k, n) in &counts {
        *totals.entry(k.clone()).or_default() += n;
    }
    let mut keys: Vec<(String, i64)> = totals.into_iter().collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut names: Vec<String> = keys.iter().take(top).map(|k| k.0.clone()).collect();
    let other = keys.len() > top;
    if other {
        names.push("other".into());
    }
    let mut series: Vec<Series> = names
        .iter()
        .map(|n| Series {
            label: n.clone(),
            data: vec![0; days as usize],
        })
        .collect();
    for (day, k, n) in counts {
        let i = day - first_day;
        if !(0..days).contains(&i) {
            continue;
        }
        let s = names
            .iter()
            .position(|x| *x == k)
            .unwrap_or(names.len().saturating_sub(1));
        if let Some(v) = series.get_mut(s).and_then(|s| s.data.get_mut(i as usize)) {
            *v += n;
        }
    }
    Chart {
        name,
        title,
        kind,
        stacked: true,
        labels: (0..days).map(|i| day_label(first_day + i)).collect(),
        series,
    }
}

async fn grouped(
    conn: &mut AnyConnection,
    sql: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, String, i64)>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(from)
        .bind(to)
        .fetch_all(conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((
            r.try_get::<i64, _>(0)?,
            r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
            r.try_get::<i64, _>(2)?,
        ));
    }
    Ok(out)
}

/// The queries, by chart name, for the page's "data" links and the CSV files.
pub const QUERIES: &[(&str, &str)] = &[
    (
        "sessions_by_target",
        "SELECT started_at / 86400000 AS day, target, COUNT(*) FROM sessions WHERE started_at >= $1 AND started_at < $2 GROUP BY started_at / 86400000, target",
    ),
    (
        "sessions_by_access",
        "SELECT started_at / 86400000 AS day, grant_kind, COUNT(*) FROM sessions WHERE started_at >= $1 AND started_at < $2 GROUP BY started_at / 86400000, grant_kind",
    ),
    (
        "break_glass",
        "SELECT created_at / 86400000 AS day, role_name, COUNT(*) FROM grants WHERE source = 'break_glass' AND created_at >= $1 AND created_at < $2 GROUP BY created_at / 86400000, role_name",
    ),
    (
        "denials",
        "SELECT time / 86400000 AS day, action, COUNT(*) FROM audit_events WHERE outcome = 'deny' AND time >= $1 AND time < $2 GROUP BY time / 86400000, action",
    ),
    (
        "leaver_cut_off",
        "the leavers of the evidence packs (identity.status → terminated events of the window, with their HR event and the end of their live sessions), bucketed by time to cut-off",
    ),
    (
        "review_completion",
        "SELECT c.name, decided, open items FROM review_campaigns c (items from review_items) WHERE the campaign ran during the window",
    ),
];

/// Every chart of the last `days` days up to `now_ms`.
pub async fn charts(conn: &mut AnyConnection, now_ms: i64, days: i64) -> Result<Vec<Chart>> {
    let last_day = now_ms / DAY;
    let first_day = last_day - days + 1;
    let (from, to) = (first_day * DAY, now_ms + 1);
    let q = |n: &str| {
        QUERIES
            .iter()
            .find(|(k, _)| *k == n)
            .map_or("", |(_, q)| *q)
    };
    let mut out = Vec::new();
    let c = grouped(conn, q("sessions_by_target"), from, to).await?;
    out.push(per_day(
        "sessions_by_target",
        "Sessions per day by target",
        "bar",
        first_day,
        days,
        c,
        6,
    ));
    let c = grouped(conn, q("sessions_by_access"), from, to).await?;
    let c = c
        .into_iter()
        .map(|(d, k, n)| {
            let k = match k.as_str() {
                "standing" => "standing".to_string(),
                "request" => "just in time (grant)".to_string(),
                "break_glass" => "break-glass".to_string(),
                other => other.to_string(),
            };
            (d, k, n)
        })
        .collect();
    out.push(per_day(
        "sessions_by_access",
        "Sessions per day: just-in-time vs standing access",
        "bar",
        first_day,
        days,
        c,
        4,
    ));
    let o = Options {
        period: Period {
            from_ms: from,
            to_ms: to,
        },
        termination_sla_ms: 3_600_000,
        recordings_retention_ms: None,
        audit_retention_ms: None,
        web_idle_ms: 0,
        web_absolute_ms: 0,
        now_ms,
    };
    let leavers = super::gather::leavers(conn, &o).await?;
    let mut ds = super::gather::Datasets::new();
    ds.insert("leavers".into(), leavers);
    let buckets = super::html::cut_off_buckets(&ds);
    out.push(Chart {
        name: "leaver_cut_off",
        title: "Leavers by time to cut-off",
        kind: "bar",
        stacked: false,
        labels: buckets.iter().map(|b| b.0.clone()).collect(),
        series: vec![Series {
            label: "leavers".into(),
            data: buckets.iter().map(|b| b.1).collect(),
        }],
    });
    let rows = sqlx::query(
        "SELECT c.name, \
         (SELECT COUNT(*) FROM review_items x WHERE x.campaign_id = c.id AND x.decision IS NOT NULL), \
         (SELECT COUNT(*) FROM review_items x WHERE x.campaign_id = c.id AND x.decision IS NULL) \
         FROM review_campaigns c WHERE c.kind = 'campaign' AND c.started_at < $2 \
         AND (c.ended_at IS NULL OR c.ended_at >= $1) ORDER BY c.started_at LIMIT 20",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let mut labels = Vec::new();
    let (mut decided, mut open) = (Vec::new(), Vec::new());
    for r in rows {
        labels.push(r.try_get::<String, _>(0)?);
        decided.push(r.try_get::<i64, _>(1)?);
        open.push(r.try_get::<i64, _>(2)?);
    }
    out.push(Chart {
        name: "review_completion",
        title: "Access review completion",
        kind: "bar",
        stacked: true,
        labels,
        series: vec![
            Series {
                label: "decided".into(),
                data: decided,
            },
            Series {
                label: "open".into(),
                data: open,
            },
        ],
    });
    let c = grouped(conn, q("break_glass"), from, to).await?;
    out.push(per_day(
        "break_glass",
        "Break-glass uses per day",
        "bar",
        first_day,
        days,
        c,
        4,
    ));
    let c = grouped(conn, q("denials"), from, to).await?;
    out.push(per_day(
        "denials",
        "Denials per day",
        "line",
        first_day,
        days,
        c,
        4,
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_without_data_are_zero_and_small_keys_become_other() {
        let c = per_day(
            "x",
            "x",
            "bar",
            100,
            3,
            vec![
                (100, "a".into(), 5),
                (102, "b".into(), 1),
                (102, "c".into(), 1),
                (99, "a".into(), 9),
            ],
            1,
        );
        assert_eq!(c.labels.len(), 3);
        assert_eq!(c.series[0].label, "a");
        assert_eq!(c.series[0].data, [5, 0, 0]);
        assert_eq!(c.series[1].label, "other");
        assert_eq!(c.series[1].data, [0, 0, 2]);
        let d = c.dataset("q");
        assert_eq!(d.columns, ["label", "a", "other"]);
        assert_eq!(d.rows.len(), 3);
    }
}
