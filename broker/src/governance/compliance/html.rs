//! The one-file HTML summary of a pack: each control's status with its evidence and
//! exceptions, the headline figures and charts drawn as inline SVG — no script, no external
//! resource, so it opens anywhere, offline, and shows the same thing every time.

use super::controls::{Figures, Framework, Result_};
use super::dataset::Dataset;
use super::gather::{Datasets, Options};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A bar chart as inline SVG with a text alternative.
pub fn bars(title: &str, data: &[(String, i64)]) -> String {
    let w = 640.0_f64;
    let h = 180.0_f64;
    let max = data.iter().map(|d| d.1).max().unwrap_or(0).max(1) as f64;
    let n = data.len().max(1) as f64;
    let bw = (w - 40.0) / n;
    let mut s = format!(
        "<figure><svg class=\"chart\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>",
        h + 40.0,
        esc(title),
        esc(title)
    );
    let _ = write!(
        s,
        "<line x1=\"36\" y1=\"{h}\" x2=\"{w}\" y2=\"{h}\" stroke=\"#888\"/><text x=\"0\" y=\"12\" font-size=\"11\">{}</text><text x=\"0\" y=\"{h}\" font-size=\"11\">0</text>",
        max as i64
    );
    for (i, (label, v)) in data.iter().enumerate() {
        let bh = (*v as f64 / max) * (h - 20.0);
        let x = 40.0 + i as f64 * bw;
        let _ = write!(
            s,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#2f6fb3\"><title>{}: {v}</title></rect>",
            h - bh,
            (bw - 1.0).max(1.0),
            esc(label)
        );
        let every = (data.len() / 8).max(1);
        if i % every == 0 {
            let _ = write!(
                s,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\">{}</text>",
                h + 14.0,
                esc(label)
            );
        }
    }
    s.push_str("</svg><figcaption>");
    s.push_str(&esc(title));
    s.push_str("</figcaption></figure>");
    s
}

fn column<'a>(d: &'a Dataset, name: &str) -> Vec<&'a Value> {
    d.column(name)
}

/// Sessions per day (or per week over long periods), from `started_at`.
pub fn sessions_per_period(ds: &Datasets) -> Vec<(String, i64)> {
    let Some(d) = ds.get("sessions") else {
        return Vec::new();
    };
    let mut by: BTreeMap<String, i64> = BTreeMap::new();
    for v in column(d, "started_at") {
        if let Some(t) = v.as_str() {
            *by.entry(t.get(..10).unwrap_or(t).to_string()).or_default() += 1;
        }
    }
    if by.len() > 62 {
        let mut weeks: BTreeMap<String, i64> = BTreeMap::new();
        for (day, n) in by {
            let week = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .map(|d| d.format("%G-W%V").to_string())
                .unwrap_or(day);
            *weeks.entry(week).or_default() += n;
        }
        return weeks.into_iter().collect();
    }
    by.into_iter().collect()
}

/// Leavers by time to cut-off.
pub fn cut_off_buckets(ds: &Datasets) -> Vec<(String, i64)> {
    let buckets = [
        ("< 1 s", 1_000),
        ("< 10 s", 10_000),
        ("< 1 min", 60_000),
        ("< 10 min", 600_000),
        ("< 1 h", 3_600_000),
        ("< 1 day", 86_400_000),
        ("≥ 1 day", i64::MAX),
    ];
    let mut out: Vec<(String, i64)> = buckets.iter().map(|b| (b.0.to_string(), 0)).collect();
    out.push(("not cut off".into(), 0));
    if let Some(d) = ds.get("leavers") {
        for v in column(d, "cut_off_ms") {
            let i = match v.as_i64() {
                Some(ms) => buckets.iter().position(|b| ms < b.1).unwrap_or(6),
                None => 7,
            };
            if let Some(x) = out.get_mut(i) {
                x.1 += 1;
            }
        }
    }
    out
}

/// Grants by how they were approved.
pub fn grants_by_approval(ds: &Datasets) -> Vec<(String, i64)> {
    let mut by: BTreeMap<String, i64> = BTreeMap::new();
    if let Some(d) = ds.get("grants") {
        for v in column(d, "approval") {
            let s = v.as_str().unwrap_or_default();
            let k = if s.starts_with("MISSING") {
                "missing approval"
            } else if s.starts_with("break-glass") {
                "break-glass"
            } else if s.starts_with("self-activation") {
                "self-activation"
            } else {
                "approved before start"
            };
            *by.entry(k.into()).or_default() += 1;
        }
    }
    by.into_iter().collect()
}

fn dur(ms: Option<i64>) -> String {
    match ms {
        None => "—".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) if ms < 120_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{:.1} min", ms as f64 / 60_000.0),
    }
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:980px;padding:16px;color:#1b1b1b}\
table{border-collapse:collapse;width:100%;margin:8px 0 20px}th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}\
th{background:#f0f2f5}.effective{color:#136f2d;font-weight:600}.exceptions{color:#a4000f;font-weight:600}.no{color:#8a5a00;font-weight:600}\
svg.chart{width:100%;height:auto;max-width:640px}figure{margin:12px 0}dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px}dt{font-weight:600}\
@media (max-width:600px){td,th{font-size:12px}}";

/// The summary page.
pub fn summary(
    f: Framework,
    o: &Options,
    results: &[Result_],
    fig: &Figures,
    ds: &Datasets,
) -> String {
    let fmt = crate::clock::format_ms;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Gatehouse evidence: {}</title><style>{STYLE}</style></head><body>",
        esc(f.title())
    );
    let _ = write!(
        h,
        "<h1>Evidence pack: {}</h1><p>Period {} to {} (UTC). Generated {}. Every file is listed with its SHA-256, query and parameters in <code>manifest.json</code>, signed in <code>manifest.sig</code>; check it offline with <code>gatehouse report verify DIR --public-key ed25519:…</code>.</p>",
        esc(f.title()),
        fmt(o.period.from_ms),
        fmt(o.period.to_ms),
        fmt(o.now_ms)
    );
    h.push_str("<h2>Controls</h2><table><thead><tr><th>Control</th><th>What it asks</th><th>Status</th><th>Evidence (rows)</th><th>Exceptions found</th></tr></thead><tbody>");
    for r in results {
        let class = match r.status {
            "effective" => "effective",
            "exceptions" => "exceptions",
            _ => "no",
        };
        let ev: Vec<String> = r
            .evidence
            .iter()
            .map(|(n, rows)| format!("<a href=\"{0}.csv\">{0}.csv</a> ({rows})", esc(n)))
            .collect();
        let ex = if r.exceptions.is_empty() {
            "none".to_string()
        } else {
            r.exceptions
                .iter()
                .map(|e| esc(e))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{ex}</td></tr>",
            esc(r.id),
            esc(r.title),
            esc(r.status),
            ev.join("<br>")
        );
    }
    h.push_str("</tbody></table><h2>Figures</h2><dl>");
    let rows = [
        ("Identities", fig.identities.to_string()),
        (
            "Leavers",
            format!(
                "{} ({} within the SLA of {})",
                fig.leavers,
                fig.leavers_within_sla,
                dur(Some(o.termination_sla_ms))
            ),
        ),
        (
            "Time to cut-off",
            format!(
                "p50 {}, p99 {}, worst {}",
                dur(fig.cut_off_p50_ms),
                dur(fig.cut_off_p99_ms),
                dur(fig.cut_off_max_ms)
            ),
        ),
        (
            "Grants",
            format!(
                "{} ({} without the approval their role requires)",
                fig.grants, fig.grants_without_approval
            ),
        ),
        (
            "Break-glass uses",
            format!(
                "{} ({} post-reviewed)",
                fig.break_glass, fig.break_glass_reviewed
            ),
        ),
        (
            "Sessions",
            format!("{} ({} recorded)", fig.sessions, fig.sessions_recorded),
        ),
        ("Access review campaigns", fig.campaigns.to_string()),
        ("SoD exceptions", fig.sod_exceptions.to_string()),
    ];
    for (k, v) in rows {
        let _ = write!(h, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
    }
    h.push_str("</dl><h2>Charts</h2>");
    h.push_str(&bars(
        "Sessions through the gateways",
        &sessions_per_period(ds),
    ));
    h.push_str(&bars("Leavers by time to cut-off", &cut_off_buckets(ds)));
    h.push_str(&bars("Grants by approval", &grants_by_approval(ds)));
    let held: Vec<(String, i64)> = ds
        .get("privileged_sessions")
        .map(|d| {
            d.rows
                .iter()
                .map(|r| {
                    (
                        super::dataset::cell(r.first().unwrap_or(&Value::Null)),
                        r.get(1).and_then(Value::as_i64).unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    h.push_str(&bars("Sessions by how access was held", &held));
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_their_labels_and_draw_a_bar_per_value() {
        let svg = bars("a<b", &[("x&y".into(), 3), ("z".into(), 0)]);
        assert!(svg.contains("a&lt;b") && svg.contains("x&amp;y"));
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 2);
        assert!(!svg.contains("<script"));
    }
}
