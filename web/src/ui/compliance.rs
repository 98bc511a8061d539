//! The Compliance pages (reviewers and administrators): the dashboard (charts drawn by the
//! vendored Chart.js from JSON data blocks, each linked to its data as CSV and JSON), evidence
//! packs downloaded as a zip (also `GET /api/v1/reports/evidence`), the entitlement report now
//! or as of a past date (also `GET /api/v1/reports/entitlements`), and retention status.

use super::{Chrome, PageResult, Signed, conn, render};
use crate::AppState;
use crate::access::Principal;
use crate::error::ApiError;
use askama::Template;
use axum::Extension;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_broker::Error;
use gatehouse_broker::governance::compliance::{
    self, Framework, Options, Period, dashboard, dataset::Dataset, entitlements, gather, pack,
    retention,
};
use serde::Deserialize;
use std::io::Write as _;

fn invalid(m: impl std::fmt::Display) -> Error {
    Error::Invalid(m.to_string())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/compliance", get(page))
        .route("/compliance/data/{file}", get(data))
        .route("/compliance/evidence", get(evidence))
        .route("/compliance/entitlements", get(entitlements_page))
        .route("/compliance/entitlements/{file}", get(entitlements_file))
        .route("/api/v1/reports/evidence", get(evidence))
        .route("/api/v1/reports/entitlements", get(entitlements_api))
}

#[derive(Deserialize, Default)]
struct DaysQuery {
    days: Option<i64>,
}

fn days(q: &DaysQuery) -> Result<i64, Error> {
    match q.days {
        None => Ok(30),
        Some(d) if (1..=366).contains(&d) => Ok(d),
        Some(_) => Err(invalid("days: between 1 and 366")),
    }
}

/// A chart as the page shows it: its JSON for the script, its data links.
struct ChartView {
    name: &'static str,
    title: &'static str,
    json: String,
    rows: usize,
    total: i64,
}

#[derive(Template)]
#[template(path = "compliance.html")]
struct CompliancePage {
    page: Chrome,
    days: i64,
    charts: Vec<ChartView>,
    frameworks: Vec<(&'static str, &'static str)>,
    from: String,
    to: String,
    retention: Vec<(String, String, String)>,
    sla_minutes: i64,
}

async fn page(State(state): State<AppState>, s: Signed, Query(q): Query<DaysQuery>) -> PageResult {
    let page = s.chrome(&state, "Compliance", "compliance").await?;
    let days = days(&q)?;
    let now = state.clock.now_ms();
    let mut c = conn(&state).await?;
    let charts = dashboard::charts(&mut c, now, days)
        .await?
        .into_iter()
        .map(|ch| ChartView {
            name: ch.name,
            title: ch.title,
            // A JSON data block: `<` is escaped so the text can never close the element.
            json: serde_json::to_string(&ch)
                .unwrap_or_default()
                .replace('<', "\\u003c"),
            rows: ch.labels.len(),
            total: ch.series.iter().flat_map(|s| s.data.iter()).sum(),
        })
        .collect();
    let cfg = state.web.compliance;
    let ret = retention::status(
        &mut c,
        now,
        cfg.recordings_retention_ms,
        cfg.audit_retention_ms,
    )
    .await?;
    let day = |ms: i64| {
        gatehouse_broker::clock::format_ms(ms)
            .get(..10)
            .unwrap_or_default()
            .to_string()
    };
    render(&CompliancePage {
        page,
        days,
        charts,
        frameworks: Framework::ALL
            .iter()
            .map(|f| (f.as_str(), f.title()))
            .collect(),
        from: day(now - 365 * 86_400_000),
        to: day(now),
        retention: ret.rows(),
        sla_minutes: cfg.termination_sla_ms / 60_000,
    })
}

fn file_response(name: &str, mime: &'static str, body: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    (
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

fn split_ext(file: &str) -> Result<(&str, &str), Error> {
    match file.rsplit_once('.') {
        Some((n, e @ ("csv" | "json"))) => Ok((n, e)),
        _ => Err(Error::NotFound(format!(
            "{file}: ask for NAME.csv or NAME.json"
        ))),
    }
}

fn dataset_file(d: &Dataset, ext: &str) -> Result<Response, Error> {
    Ok(if ext == "csv" {
        file_response(
            &format!("{}.csv", d.name),
            "text/csv; charset=utf-8",
            d.to_csv()?.into_bytes(),
        )
    } else {
        file_response(
            &format!("{}.json", d.name),
            "application/json",
            d.to_json().into_bytes(),
        )
    })
}

/// A dashboard chart's data.
async fn data(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Query(q): Query<DaysQuery>,
) -> Result<Response, ApiError> {
    let (name, ext) = split_ext(&file)?;
    let days = days(&q)?;
    let mut c = state.store.pool().acquire().await.map_err(Error::from)?;
    let charts = dashboard::charts(&mut c, state.clock.now_ms(), days).await?;
    let Some(ch) = charts.iter().find(|c| c.name == name) else {
        return Err(Error::NotFound(format!("no chart {name}")).into());
    };
    let query = dashboard::QUERIES
        .iter()
        .find(|(k, _)| *k == name)
        .map_or("", |(_, q)| *q);
    let d = ch.dataset(query).param("days", days);
    Ok(dataset_file(&d, ext)?)
}

#[derive(Deserialize)]
struct EvidenceQuery {
    framework: String,
    from: String,
    #[serde(default)]
    to: String,
}

/// One evidence pack is generated at a time (each verifies the whole chain).
static GENERATING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// An evidence pack as a zip (the same files `gatehouse report evidence` writes). Reading only,
/// but audited (`report.evidence`): who took which evidence out, for which period.
async fn evidence(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<EvidenceQuery>,
) -> Result<Response, ApiError> {
    let Ok(_one) = GENERATING.try_acquire() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            "an evidence pack is being generated: try again when it is done",
        ));
    };
    let f = Framework::parse(&q.framework)
        .map_err(|_| invalid("framework: choose soc2, iso27001, sox or hipaa"))?;
    let now = state.clock.now_ms();
    let from_ms =
        compliance::parse_time(&q.from, false).map_err(|e| invalid(format!("from: {e}")))?;
    let to_ms = if q.to.trim().is_empty() {
        now
    } else {
        compliance::parse_time(&q.to, true).map_err(|e| invalid(format!("to: {e}")))?
    };
    // A period cannot claim what has not happened yet: it ends now at the latest.
    let to_ms = to_ms.min(now);
    if to_ms <= from_ms {
        return Err(
            invalid("to: the period must end after it starts, and start in the past").into(),
        );
    }
    let Some(key) = state.web.signer.clone() else {
        return Err(
            Error::Unavailable("no signing key: evidence packs cannot be signed".into()).into(),
        );
    };
    let cfg = state.web.compliance;
    let web = state.web.timeouts;
    let o = Options {
        period: Period { from_ms, to_ms },
        termination_sla_ms: cfg.termination_sla_ms,
        recordings_retention_ms: cfg.recordings_retention_ms,
        audit_retention_ms: cfg.audit_retention_ms,
        web_idle_ms: web.idle_ms,
        web_absolute_ms: web.absolute_ms,
        now_ms: now,
    };
    let pk = pack::generate(&state.store, &key, f, &o).await?;
    audit_export(
        &state,
        &p,
        "report.evidence",
        serde_json::json!({ "framework": f.as_str(),
            "from": gatehouse_broker::clock::format_ms(from_ms),
            "to": gatehouse_broker::clock::format_ms(to_ms),
            "files": pk.files.len() }),
    )
    .await?;
    let day = |ms: i64| {
        gatehouse_broker::clock::format_ms(ms)
            .get(..10)
            .unwrap_or_default()
            .to_string()
    };
    let stem = format!("{}-{}-{}", f.as_str(), day(from_ms), day(to_ms - 1));
    let zip = tokio::task::spawn_blocking(move || zip_files(&stem, &pk.files).map(|z| (stem, z)))
        .await
        .map_err(|e| Error::Storage(format!("zip: {e}")))??;
    Ok(file_response(
        &format!("{}.zip", zip.0),
        "application/zip",
        zip.1,
    ))
}

/// Audits an export (who took which report out).
async fn audit_export(
    state: &AppState,
    p: &Principal,
    action: &str,
    details: serde_json::Value,
) -> Result<(), Error> {
    let mut tx = state.store.begin().await?;
    gatehouse_broker::ledger::audit::append(
        &mut tx,
        state.clock.now_ms(),
        gatehouse_broker::ledger::audit::NewEvent::new(
            format!("identity:{}", p.0.username),
            action,
            "report:compliance",
        )
        .details(details),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn zip_files(dir: &str, files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, Error> {
    let e = |e: zip::result::ZipError| Error::Storage(format!("zip: {e}"));
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in files {
        w.start_file(format!("{dir}/{name}"), opts).map_err(e)?;
        w.write_all(bytes)
            .map_err(|x| Error::Storage(format!("zip: {x}")))?;
    }
    Ok(w.finish().map_err(e)?.into_inner())
}

#[derive(Deserialize, Default)]
struct EntQuery {
    #[serde(default)]
    identity: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    as_of: String,
    #[serde(default)]
    format: String,
}

/// The entitlement report for the query: now from the tables, or as of a past time from the
/// audit log alone.
async fn ent_dataset(state: &AppState, q: &EntQuery) -> Result<(Dataset, Option<i64>), Error> {
    let now = state.clock.now_ms();
    let mut c = state.store.pool().acquire().await?;
    let (at, st, source) = if q.as_of.trim().is_empty() {
        (
            now,
            entitlements::State::load(&mut c).await?,
            "table state now",
        )
    } else {
        let at = compliance::as_of(&q.as_of, now).map_err(|e| invalid(format!("as_of: {e}")))?;
        (
            at - 1,
            entitlements::State::replay(&mut c, at).await?,
            "audit log replayed up to the time",
        )
    };
    let used = entitlements::last_used(&mut c, at + 1).await?;
    let mut d = gather::entitlement_dataset(&st, &used, at, source);
    let (i, t) = (q.identity.trim(), q.target.trim());
    d.rows.retain(|r| {
        (i.is_empty() || r.first().and_then(|v| v.as_str()) == Some(i))
            && (t.is_empty() || r.get(1).and_then(|v| v.as_str()) == Some(t))
    });
    if !i.is_empty() {
        d = d.param("identity", i);
    }
    if !t.is_empty() {
        d = d.param("target", t);
    }
    Ok((d, (!q.as_of.trim().is_empty()).then_some(at)))
}

async fn entitlements_api(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<EntQuery>,
) -> Result<Response, ApiError> {
    let (d, _) = ent_dataset(&state, &q).await?;
    audit_entitlements(&state, &p, &q, d.rows.len()).await?;
    let ext = if q.format == "csv" { "csv" } else { "json" };
    Ok(dataset_file(&d, ext)?)
}

async fn entitlements_file(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(file): Path<String>,
    Query(q): Query<EntQuery>,
) -> Result<Response, ApiError> {
    let (name, ext) = split_ext(&file)?;
    if name != "entitlements" {
        return Err(Error::NotFound(format!("no report {name}")).into());
    }
    let (d, _) = ent_dataset(&state, &q).await?;
    audit_entitlements(&state, &p, &q, d.rows.len()).await?;
    Ok(dataset_file(&d, ext)?)
}

async fn audit_entitlements(
    state: &AppState,
    p: &Principal,
    q: &EntQuery,
    rows: usize,
) -> Result<(), Error> {
    audit_export(
        state,
        p,
        "report.entitlements",
        serde_json::json!({ "identity": q.identity, "target": q.target, "as_of": q.as_of,
            "rows": rows }),
    )
    .await
}

/// At most this many rows are shown on the page; the downloads hold all.
const SHOWN: usize = 500;

#[derive(Template)]
#[template(path = "entitlements.html")]
struct EntitlementsPage {
    page: Chrome,
    identity: String,
    target: String,
    as_of: String,
    at: Option<String>,
    rows: Vec<Vec<String>>,
    total: usize,
    query: String,
    error: Option<String>,
}

async fn entitlements_page(
    State(state): State<AppState>,
    s: Signed,
    Query(q): Query<EntQuery>,
) -> PageResult {
    let page = s.chrome(&state, "Entitlements", "compliance").await?;
    let (rows, total, at, error) = match ent_dataset(&state, &q).await {
        Ok((d, at)) => (
            d.rows
                .iter()
                .take(SHOWN)
                .map(|r| r.iter().map(compliance::dataset::cell).collect())
                .collect(),
            d.rows.len(),
            at.map(gatehouse_broker::clock::format_ms),
            None,
        ),
        Err(Error::Invalid(m)) => (Vec::new(), 0, None, Some(m)),
        Err(e) => return Err(e.into()),
    };
    let query = serde_urlencoded_pairs(&[
        ("identity", &q.identity),
        ("target", &q.target),
        ("as_of", &q.as_of),
    ]);
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    super::render_status(
        status,
        &EntitlementsPage {
            page,
            identity: q.identity,
            target: q.target,
            as_of: q.as_of,
            at,
            rows,
            total,
            query,
            error,
        },
    )
}

/// `a=b&c=d` of the non-empty pairs, percent-encoded.
fn serde_urlencoded_pairs(pairs: &[(&str, &String)]) -> String {
    let mut u = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.trim().is_empty() {
            u.append_pair(k, v.trim());
        }
    }
    u.finish()
}
