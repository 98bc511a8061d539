//! Access review campaigns over the API: definitions (admin), campaigns (their owner, reviewers
//! and administrators see them whole), a reviewer's queue and decisions, ending, sign-off and the
//! signed report. Who may decide or see what is the broker's rule
//! (`gatehouse_broker::governance::campaigns`).

use super::{ApiResult, Body, actor, begin, conn};
use crate::AppState;
use crate::access::Principal;
use crate::error::ApiError;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use gatehouse_broker::Error;
use gatehouse_broker::access::privileges::{self, Privilege};
use gatehouse_broker::governance::campaigns::decide::{self, Bulk, Choice};
use gatehouse_broker::governance::campaigns::store::{self, Campaign, Definition, Item, Progress};
use gatehouse_broker::governance::campaigns::{ReviewDoc, close, report};
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/review-definitions", get(definitions))
        .route("/review-definitions/{name}", put(define).delete(undefine))
        .route("/campaigns", get(campaigns).post(start))
        .route("/campaigns/{id}", get(campaign))
        .route("/campaigns/{id}/items", get(items))
        .route("/campaigns/{id}/end", post(end))
        .route("/campaigns/{id}/sign-off", post(sign_off))
        .route("/campaigns/{id}/accept-recommendations", post(accept))
        .route("/campaigns/{id}/report", get(report_file))
        .route("/review-queue", get(queue))
        .route("/review-items/{id}", get(item))
        .route("/review-items/{id}/decision", post(decision))
}

async fn definitions(State(state): State<AppState>) -> ApiResult<Vec<Definition>> {
    Ok(Json(store::definitions(&mut *conn(&state).await?).await?))
}

/// `PUT /api/v1/review-definitions/{name}`: the `[[reviews]]` entry as JSON (the name from the
/// path).
async fn define(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Body(mut b): Body<ReviewDoc>,
) -> Result<Json<Definition>, ApiError> {
    b.name = name.clone();
    let spec = b.to_spec()?;
    let mut tx = begin(&state).await?;
    store::define(
        &mut tx,
        &actor(&p),
        state.clock.now_ms(),
        &name,
        &spec,
        "api",
    )
    .await?;
    let d = store::definition(&mut tx, &name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("review {name}")))?;
    tx.commit().await?;
    Ok(Json(d))
}

async fn undefine(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = begin(&state).await?;
    store::undefine(&mut tx, &actor(&p), state.clock.now_ms(), &name).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A campaign with its progress.
#[derive(Serialize)]
struct CampaignView {
    #[serde(flatten)]
    campaign: Campaign,
    progress: Progress,
}

async fn campaigns(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Vec<CampaignView>> {
    let mut c = conn(&state).await?;
    let mut out = Vec::new();
    for campaign in store::campaigns_for(&mut c, &p.0).await? {
        let progress = store::progress(&mut c, &campaign.id).await?;
        out.push(CampaignView { campaign, progress });
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    /// A definition to start now.
    definition: Option<String>,
    /// Or a finding's `review` (`role:NAME`, `privilege:NAME`): a one-off campaign the caller
    /// owns.
    review: Option<String>,
}

/// `POST /api/v1/campaigns {"definition": NAME}` or `{"review": "role:NAME"}`: starts a
/// campaign now (admin).
async fn start(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<StartBody>,
) -> Result<(StatusCode, Json<CampaignView>), ApiError> {
    let now = state.clock.now_ms();
    let mut tx = begin(&state).await?;
    let id = match (&b.definition, &b.review) {
        (Some(d), None) => store::start(&mut tx, &actor(&p), now, d).await?,
        (None, Some(r)) => store::start_for(&mut tx, &p.0.username, now, r).await?,
        _ => {
            return Err(Error::Invalid(
                "give either \"definition\" (a review definition) or \"review\" (role:NAME or privilege:NAME)".into(),
            )
            .into());
        }
    };
    tx.commit().await?;
    let mut c = conn(&state).await?;
    Ok((
        StatusCode::CREATED,
        Json(CampaignView {
            campaign: store::campaign(&mut c, &id).await?,
            progress: store::progress(&mut c, &id).await?,
        }),
    ))
}

async fn campaign(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<CampaignView> {
    let mut c = conn(&state).await?;
    let campaign = store::campaign_for(&mut c, &id, &p.0).await?;
    let progress = store::progress(&mut c, &id).await?;
    Ok(Json(CampaignView { campaign, progress }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemsQuery {
    state: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

fn page(q: &ItemsQuery) -> Result<(i64, i64), ApiError> {
    let limit = q.limit.unwrap_or(100);
    let offset = q.offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(Error::Invalid("limit is 1 to 1000 and offset is not negative".into()).into());
    }
    Ok((limit, offset))
}

async fn items(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<ItemsQuery>,
) -> ApiResult<Vec<Item>> {
    let (limit, offset) = page(&q)?;
    if let Some(s) = &q.state
        && !["open", "decided", "applied"].contains(&s.as_str())
    {
        return Err(Error::Invalid(format!("state {s:?}: use open, decided or applied")).into());
    }
    let mut c = conn(&state).await?;
    store::campaign_for(&mut c, &id, &p.0).await?;
    Ok(Json(
        store::items(&mut c, &id, q.state.as_deref(), limit, offset).await?,
    ))
}

/// What ending or signing off did.
#[derive(Serialize)]
struct Ended {
    applied: Option<close::Applied>,
    verified: usize,
    still_there: usize,
}

async fn end(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Ended> {
    let now = state.clock.now_ms();
    let admin = privileges::has(&mut *conn(&state).await?, &p.0.id, Privilege::Admin).await?;
    let mut tx = begin(&state).await?;
    let r = close::end_by(&mut tx, &p.0.username, admin, now, &id).await;
    tx.settle(&r).await?;
    let applied = r?;
    let (verified, still_there) = if applied.is_some() {
        close::verify(&state.store, state.clock.now_ms(), &id).await?
    } else {
        (0, 0)
    };
    Ok(Json(Ended {
        applied,
        verified,
        still_there,
    }))
}

async fn sign_off(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Ended> {
    let mut tx = begin(&state).await?;
    let r = close::sign_off(&mut tx, &p.0.username, state.clock.now_ms(), &id).await;
    tx.settle(&r).await?;
    let applied = r?;
    let (verified, still_there) = close::verify(&state.store, state.clock.now_ms(), &id).await?;
    Ok(Json(Ended {
        applied: Some(applied),
        verified,
        still_there,
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    #[serde(default)]
    reason: String,
}

async fn accept(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Body(b): Body<AcceptBody>,
) -> ApiResult<Bulk> {
    let mut tx = begin(&state).await?;
    let r = decide::accept_recommendations(
        &mut tx,
        &p.0.username,
        state.clock.now_ms(),
        &id,
        &b.reason,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    /// `json` (default), `csv`, `manifest` or `signature`.
    format: Option<String>,
}

/// The report's four files, from one reading: report.json, report.csv, and the manifest of
/// both with its signature (base64 Ed25519, the Gatehouse key). The same campaign state gives
/// the same bytes, so the four may be fetched one by one and still match.
pub(crate) async fn report_files(
    state: &AppState,
    id: &str,
    who: &gatehouse_broker::identity::identities::Identity,
) -> Result<[String; 4], ApiError> {
    let mut c = conn(state).await?;
    let campaign = store::campaign_for(&mut c, id, who).await?;
    let p = store::progress(&mut c, id).await?;
    let items = store::items(&mut c, id, None, i64::MAX, 0).await?;
    let decisions = store::decisions(&mut c, id, None).await?;
    let r = report::build(&campaign, p, &items, &decisions);
    let json = report::to_json(&r);
    let csv = report::to_csv(&r)?;
    let Some(key) = &state.web.signer else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no signing key on this server: reports cannot be signed",
        ));
    };
    let (manifest, sig) = report::sign(
        &r,
        &[
            ("report.json", json.as_bytes()),
            ("report.csv", csv.as_bytes()),
        ],
        key,
    );
    Ok([json, csv, manifest, sig])
}

async fn report_file(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let [json, csv, manifest, sig] = report_files(&state, &id, &p.0).await?;
    let (body, ctype) = match q.format.as_deref().unwrap_or("json") {
        "json" => (json, "application/json"),
        "csv" => (csv, "text/csv; charset=utf-8"),
        "manifest" => (manifest, "text/plain; charset=utf-8"),
        "signature" => (sig, "text/plain; charset=utf-8"),
        other => {
            return Err(Error::Invalid(format!(
                "format {other:?}: use json, csv, manifest or signature"
            ))
            .into());
        }
    };
    Ok(([(header::CONTENT_TYPE, ctype)], body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueQuery {
    campaign: Option<String>,
    /// `keep` or `revoke`.
    recommendation: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// My open items, with the total.
#[derive(Serialize)]
struct Queue {
    total: i64,
    items: Vec<Item>,
}

async fn queue(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<QueueQuery>,
) -> ApiResult<Queue> {
    let (limit, offset) = page(&ItemsQuery {
        state: None,
        limit: q.limit,
        offset: q.offset,
    })?;
    if let Some(r) = &q.recommendation
        && r != "keep"
        && r != "revoke"
    {
        return Err(Error::Invalid(format!("recommendation {r:?}: use keep or revoke")).into());
    }
    let (items, total) = store::queue_filtered(
        &mut *conn(&state).await?,
        &p.0.username,
        q.campaign.as_deref(),
        q.recommendation.as_deref(),
        limit,
        offset,
    )
    .await?;
    Ok(Json(Queue { total, items }))
}

/// An item: to its reviewer, or to whoever may see the whole campaign.
async fn item(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Item> {
    let mut c = conn(&state).await?;
    let item = store::item(&mut c, &id).await?;
    let mut tx = begin(&state).await?;
    let reviewer = decide::opened(&mut tx, &p.0.username, state.clock.now_ms(), &item).await?;
    tx.commit().await?;
    if !reviewer {
        store::campaign_for(&mut c, &item.campaign_id, &p.0).await?;
    }
    Ok(Json(store::item(&mut c, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    /// `keep`, `revoke`, `keep_until` or `delegate`.
    decision: String,
    #[serde(default)]
    reason: String,
    /// For `keep_until`: RFC 3339 or a date.
    until: Option<String>,
    /// For `delegate`: a username.
    to: Option<String>,
}

async fn decision(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Body(b): Body<DecisionBody>,
) -> ApiResult<Item> {
    let choice = Choice::parse(&b.decision, b.until.as_deref(), b.to.as_deref())?;
    let mut tx = begin(&state).await?;
    let r = decide::decide(
        &mut tx,
        &p.0.username,
        state.clock.now_ms(),
        &id,
        &choice,
        &b.reason,
    )
    .await;
    tx.settle(&r).await?;
    Ok(Json(r?))
}
