//! Targets, roles, assignments, SoD rules and exceptions, and `apply` (policy as code over the
//! API: the same document and plan as `gatehouse apply`).

use super::{ApiResult, Body, actor, begin, conn};
use crate::AppState;
use crate::access::Principal;
use crate::error::ApiError;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use gatehouse_broker::access::assignments::{self, Assignment};
use gatehouse_broker::access::roles::{self, Role};
use gatehouse_broker::access::targets::{self, Target};
use gatehouse_broker::provisioning::apply::{
    self, doc::AssignmentDoc, doc::RoleDoc, doc::TargetDoc,
};
use gatehouse_broker::{Error, access::sod};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/targets", get(list_targets).post(create_target))
        .route(
            "/targets/{name}",
            get(get_target).put(update_target).delete(delete_target),
        )
        .route("/roles", get(list_roles).post(create_role))
        .route(
            "/roles/{name}",
            get(get_role).put(update_role).delete(delete_role),
        )
        .route(
            "/assignments",
            get(list_assignments).post(create_assignment),
        )
        .route("/assignments/{id}", delete(delete_assignment))
        .route("/assignments/{id}/keep", post(keep_assignment))
        .route("/sod/rules", get(list_rules))
        .route("/sod/rules/{name}", put(put_rule).delete(delete_rule))
        .route("/sod/exceptions", post(create_exception))
        .route("/sod/violations", get(violations))
        .route("/apply", post(apply_document))
}

async fn list_targets(State(state): State<AppState>) -> ApiResult<Vec<Target>> {
    Ok(Json(targets::list(&mut *conn(&state).await?).await?))
}

async fn get_target(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Target> {
    Ok(Json(
        targets::by_name(&mut *conn(&state).await?, &name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("target {name}")))?,
    ))
}

async fn create_target(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<TargetDoc>,
) -> Result<(StatusCode, Json<Target>), ApiError> {
    let mut tx = begin(&state).await?;
    let t = targets::create(&mut tx, &actor(&p), state.clock.now_ms(), b.to_new("api")?).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(t)))
}

async fn update_target(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Body(mut b): Body<TargetDoc>,
) -> ApiResult<Target> {
    b.name = name;
    let mut tx = begin(&state).await?;
    let t = targets::update(&mut tx, &actor(&p), state.clock.now_ms(), b.to_new("api")?).await?;
    tx.commit().await?;
    Ok(Json(t))
}

async fn delete_target(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = begin(&state).await?;
    targets::delete(&mut tx, &actor(&p), state.clock.now_ms(), &name).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_roles(State(state): State<AppState>) -> ApiResult<Vec<Role>> {
    Ok(Json(roles::list(&mut *conn(&state).await?).await?))
}

async fn get_role(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Role> {
    Ok(Json(
        roles::by_name(&mut *conn(&state).await?, &name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("role {name}")))?,
    ))
}

async fn create_role(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<RoleDoc>,
) -> Result<(StatusCode, Json<Role>), ApiError> {
    let spec = b.to_spec()?;
    let mut tx = begin(&state).await?;
    let r = roles::create_with(
        &mut tx,
        &actor(&p),
        state.clock.now_ms(),
        &b.name,
        &b.description,
        spec,
        "api",
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(r)))
}

async fn update_role(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Body(mut b): Body<RoleDoc>,
) -> ApiResult<Role> {
    b.name = name;
    let spec = b.to_spec()?;
    let mut tx = begin(&state).await?;
    let r = roles::update(
        &mut tx,
        &actor(&p),
        state.clock.now_ms(),
        &b.name,
        &b.description,
        spec,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(r))
}

async fn delete_role(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = begin(&state).await?;
    roles::delete(&mut tx, &actor(&p), state.clock.now_ms(), &name).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_assignments(State(state): State<AppState>) -> ApiResult<Vec<Assignment>> {
    Ok(Json(assignments::list(&mut *conn(&state).await?).await?))
}

async fn create_assignment(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<AssignmentDoc>,
) -> Result<(StatusCode, Json<Assignment>), ApiError> {
    let mut tx = begin(&state).await?;
    let a = assignments::add(&mut tx, &actor(&p), state.clock.now_ms(), b.to_new("api")?).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(a)))
}

async fn delete_assignment(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = begin(&state).await?;
    assignments::remove(&mut tx, &actor(&p), state.clock.now_ms(), &id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The manager keeps a mover's access that is in its grace period (see docs/lifecycle.md).
async fn keep_assignment(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<assignments::Assignment> {
    let mut tx = begin(&state).await?;
    let kept = gatehouse_broker::provisioning::lifecycle::engine::keep(
        &mut tx,
        &p.0,
        state.clock.now_ms(),
        &id,
    )
    .await;
    tx.settle(&kept).await?;
    Ok(Json(kept?))
}

async fn list_rules(State(state): State<AppState>) -> ApiResult<Vec<sod::Rule>> {
    Ok(Json(sod::list(&mut *conn(&state).await?).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    left: Vec<String>,
    right: Vec<String>,
    #[serde(default)]
    description: String,
}

async fn put_rule(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Body(b): Body<RuleBody>,
) -> Result<StatusCode, ApiError> {
    let mut tx = begin(&state).await?;
    let rule = sod::NewRule {
        name,
        left: b.left,
        right: b.right,
        description: b.description,
        source: "api".into(),
    };
    sod::put(&mut tx, &actor(&p), state.clock.now_ms(), &rule).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_rule(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = begin(&state).await?;
    sod::delete(&mut tx, &actor(&p), state.clock.now_ms(), &name).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionBody {
    rule: String,
    identity: String,
    reason: String,
    /// RFC 3339 or a date.
    expires_at: String,
}

async fn create_exception(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<ExceptionBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let expires = apply::doc::parse_instant(&b.expires_at)?;
    let mut tx = begin(&state).await?;
    let id = sod::add_exception(
        &mut tx,
        &actor(&p),
        state.clock.now_ms(),
        &b.rule,
        &b.identity,
        &b.reason,
        expires,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

async fn violations(State(state): State<AppState>) -> ApiResult<Vec<Value>> {
    let found = sod::scan(&mut *conn(&state).await?, state.clock.now_ms()).await?;
    Ok(Json(
        found
            .into_iter()
            .map(|(c, excepted)| json!({ "conflict": c, "reason": c.describe(), "excepted": excepted }))
            .collect(),
    ))
}

#[derive(Deserialize)]
struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
}

/// Body: the TOML document as text (`Content-Type: application/toml` or text).
async fn apply_document(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ApplyQuery>,
    text: String,
) -> ApiResult<Value> {
    let doc = apply::parse("request body", &text)?;
    let plan = apply::apply(
        &state.store,
        &actor(&p),
        state.clock.now_ms(),
        &doc,
        q.dry_run,
    )
    .await?;
    Ok(Json(json!({ "dry_run": q.dry_run, "changes": plan })))
}
