//! Requests, approvals, grants, what-if authorization and review items. What a caller may see is
//! decided by which route it calls (its own requests and grants, its approval queue, or the admin
//! views), and what it may decide by the broker's approval rules.

use super::{ApiResult, Body, actor, begin, conn};
use crate::AppState;
use crate::access::Principal;
use crate::error::ApiError;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_broker::access::grants::{self, Grant};
use gatehouse_broker::access::policy::{self, AccessRequest, Decision};
use gatehouse_broker::access::requests::{self, NewRequest, Request, decision};
use gatehouse_broker::{Error, governance::reviews};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/requests", get(my_requests).post(create_request))
        .route("/requests/all", get(all_requests))
        .route("/requests/{id}/approve", post(approve))
        .route("/requests/{id}/deny", post(deny))
        .route("/requests/{id}/cancel", post(cancel))
        .route("/approvals", get(queue))
        .route("/grants", get(my_grants))
        .route("/grants/all", get(all_grants))
        .route("/grants/{id}/revoke", post(revoke))
        .route("/authorize", post(authorize))
        .route("/reviews", get(list_reviews))
        .route("/reviews/{id}/close", post(close_review))
        .route("/findings", get(list_findings))
}

/// RFC 3339 or a date.
pub(crate) fn parse_time(s: &str) -> Result<i64, ApiError> {
    Ok(gatehouse_broker::provisioning::apply::doc::parse_instant(
        s,
    )?)
}

async fn create_request(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<NewRequest>,
) -> Result<(StatusCode, Json<Request>), ApiError> {
    let mut tx = begin(&state).await?;
    let r = requests::create(&mut tx, &p.0, state.clock.now_ms(), b).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
    identity: Option<String>,
}

async fn my_requests(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Vec<Request>> {
    let f = requests::Filter {
        requester_id: Some(p.0.id.clone()),
        state: q.state,
        limit: q.limit.unwrap_or(100),
    };
    Ok(Json(
        requests::list(&mut *conn(&state).await?, &f, state.clock.now_ms()).await?,
    ))
}

async fn all_requests(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Vec<Request>> {
    let mut c = conn(&state).await?;
    let requester_id = match &q.identity {
        Some(u) => Some(
            gatehouse_broker::identity::identities::by_username(&mut c, u)
                .await?
                .ok_or_else(|| Error::NotFound(format!("identity {u}")))?
                .id,
        ),
        None => None,
    };
    let f = requests::Filter {
        requester_id,
        state: q.state,
        limit: q.limit.unwrap_or(100),
    };
    Ok(Json(
        requests::list(&mut c, &f, state.clock.now_ms()).await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    #[serde(default)]
    comment: String,
}

/// The optional `{"comment": "..."}` of a decision.
fn decision_body(bytes: &[u8]) -> Result<DecisionBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    serde_json::from_slice(bytes).map_err(|e| Error::Invalid(format!("invalid body: {e}")).into())
}

async fn approve(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<decision::Outcome> {
    let comment = decision_body(&body)?.comment;
    let mut tx = begin(&state).await?;
    // Bearer tokens carry no multi-factor proof: roles that require MFA for approval are
    // approved from the web UI, which verifies one.
    let out = requests::approve(&mut tx, &p.0, state.clock.now_ms(), &id, &comment, None).await;
    // A refusal's audit record is kept (every refusal is audited).
    tx.settle(&out).await?;
    Ok(Json(out?))
}

async fn deny(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Request> {
    let comment = decision_body(&body)?.comment;
    let mut tx = begin(&state).await?;
    let out = requests::deny(&mut tx, &p.0, state.clock.now_ms(), &id, &comment).await;
    tx.settle(&out).await?;
    Ok(Json(out?))
}

async fn cancel(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Request> {
    let mut tx = begin(&state).await?;
    let out = requests::cancel(&mut tx, &p.0, state.clock.now_ms(), &id).await?;
    tx.commit().await?;
    Ok(Json(out))
}

async fn queue(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Vec<Request>> {
    Ok(Json(
        decision::queue(&mut *conn(&state).await?, &p.0, state.clock.now_ms()).await?,
    ))
}

fn grant_json(g: &Grant, now_ms: i64) -> Value {
    json!({
        "grant": g,
        "state": g.state(now_ms),
        "not_before": gatehouse_broker::clock::format_ms(g.not_before_ms),
        "not_after": gatehouse_broker::clock::format_ms(g.not_after_ms),
        "seconds_left": ((g.not_after_ms - now_ms).max(0) / 1000),
    })
}

async fn my_grants(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Vec<Value>> {
    let now = state.clock.now_ms();
    let gs = grants::active_of(&mut *conn(&state).await?, &p.0.id, now).await?;
    Ok(Json(gs.iter().map(|g| grant_json(g, now)).collect()))
}

async fn all_grants(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Vec<Value>> {
    let now = state.clock.now_ms();
    let mut c = conn(&state).await?;
    let id = match &q.identity {
        Some(u) => Some(
            gatehouse_broker::identity::identities::by_username(&mut c, u)
                .await?
                .ok_or_else(|| Error::NotFound(format!("identity {u}")))?
                .id,
        ),
        None => None,
    };
    let gs = grants::list(&mut c, id.as_deref(), q.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(Json(gs.iter().map(|g| grant_json(g, now)).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    reason: String,
}

async fn revoke(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Body(b): Body<RevokeBody>,
) -> ApiResult<Grant> {
    if b.reason.trim().is_empty() {
        return Err(Error::Invalid("revoking a grant needs a reason".into()).into());
    }
    let mut tx = begin(&state).await?;
    let g = grants::revoke(&mut tx, &actor(&p), state.clock.now_ms(), &id, &b.reason).await?;
    tx.commit().await?;
    Ok(Json(g))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeBody {
    identity: String,
    target: String,
    #[serde(default)]
    login: Option<String>,
    #[serde(default = "ssh")]
    protocol: String,
    #[serde(default)]
    source_ip: Option<std::net::IpAddr>,
    /// Seconds since the identity's last multi-factor check (none: no MFA).
    #[serde(default)]
    mfa_age_seconds: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
}

fn ssh() -> String {
    "ssh".into()
}

/// What-if: explains the decision, changes nothing (not even the audit log).
async fn authorize(
    State(state): State<AppState>,
    Body(b): Body<AuthorizeBody>,
) -> ApiResult<Decision> {
    let now = state.clock.now_ms();
    let req = AccessRequest {
        identity: b.identity,
        protocol: b.protocol,
        target: b.target,
        login: b.login,
        source_ip: b.source_ip,
        mfa_at_ms: b.mfa_age_seconds.map(|s| now - s * 1000),
        reason: b.reason,
        ticket: None,
        http: None,
    };
    Ok(Json(
        policy::explain(&state.store, &state.cache, now, &req).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewQuery {
    #[serde(default)]
    all: bool,
}

async fn list_reviews(
    State(state): State<AppState>,
    Query(q): Query<ReviewQuery>,
) -> ApiResult<Vec<reviews::Review>> {
    Ok(Json(
        reviews::list(&mut *conn(&state).await?, !q.all).await?,
    ))
}

/// `GET /api/v1/findings`: the least-privilege findings now, each with its remediation.
async fn list_findings(
    State(state): State<AppState>,
) -> ApiResult<Vec<gatehouse_broker::governance::findings::Finding>> {
    use gatehouse_broker::governance::findings;
    let snapshot = findings::snapshot(&mut *conn(&state).await?, state.clock.now_ms()).await?;
    Ok(Json(findings::findings(&snapshot)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    outcome: String,
}

async fn close_review(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Body(b): Body<CloseBody>,
) -> Result<StatusCode, ApiError> {
    let mut tx = begin(&state).await?;
    reviews::close(&mut tx, &actor(&p), state.clock.now_ms(), &id, &b.outcome).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
