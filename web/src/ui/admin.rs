//! The administrator's pages: what exists (identities, groups, targets, roles, assignments),
//! changes through policy as code (the same `apply` as the CLI and `POST /api/v1/apply`, with a
//! dry run first), and enabling or disabling an identity.

use super::{Chrome, PageResult, Signed, begin, conn, render, render_status, span};
use crate::AppState;
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use gatehouse_broker::access::assignments::{self, Assignment};
use gatehouse_broker::access::roles::{self, Role};
use gatehouse_broker::access::targets::{self, Target};
use gatehouse_broker::identity::groups::{self, Group};
use gatehouse_broker::identity::identities::{self, Identity, Status};
use gatehouse_broker::provisioning::apply::{self, Change};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(page))
        .route("/admin/apply", post(apply_policy))
        .route("/admin/identities/{username}/status", post(set_status))
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    page: Chrome,
    identities: Vec<Identity>,
    groups: Vec<(Group, Vec<String>)>,
    targets: Vec<Target>,
    roles: Vec<Role>,
    assignments: Vec<Assignment>,
    policy: String,
    plan: Option<Vec<Change>>,
    applied: bool,
    error: Option<String>,
}

impl AdminPage {
    fn span(&self, ms: &i64) -> String {
        span(*ms)
    }
    fn approvals(&self, r: &Role) -> String {
        if r.spec.break_glass {
            return "break-glass".into();
        }
        if r.spec.approvals.is_empty() {
            return "self-activation".into();
        }
        r.spec
            .approvals
            .iter()
            .map(|a| format!("{} of {}", a.count, a.from))
            .collect::<Vec<_>>()
            .join(" and ")
    }
    fn labels(&self, t: &Target) -> String {
        t.labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn load(state: &AppState, s: &Signed) -> Result<AdminPage, super::PageError> {
    let mut c = conn(state).await?;
    let mut gs = Vec::new();
    for g in groups::list(&mut c).await? {
        let members = groups::members(&mut c, &g.name).await?;
        gs.push((g, members));
    }
    Ok(AdminPage {
        page: s.chrome(state, "Administration", "admin").await?,
        identities: identities::list(&mut c).await?,
        groups: gs,
        targets: targets::list(&mut c).await?,
        roles: roles::list(&mut c).await?,
        assignments: assignments::list(&mut c).await?,
        policy: String::new(),
        plan: None,
        applied: false,
        error: None,
    })
}

async fn page(State(state): State<AppState>, s: Signed) -> PageResult {
    render(&load(&state, &s).await?)
}

#[derive(Deserialize)]
struct ApplyForm {
    #[serde(default)]
    policy: String,
    /// `dry-run` or `apply`.
    #[serde(default)]
    mode: String,
}

async fn apply_policy(
    State(state): State<AppState>,
    s: Signed,
    Form(f): Form<ApplyForm>,
) -> PageResult {
    let dry_run = f.mode != "apply";
    let result = match apply::parse("policy", &f.policy) {
        Ok(doc) => {
            apply::apply(
                &state.store,
                &s.actor(),
                state.clock.now_ms(),
                &doc,
                dry_run,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let mut p = load(&state, &s).await?;
    p.policy = f.policy;
    match result {
        Ok(plan) => {
            p.applied = !dry_run;
            p.plan = Some(plan);
            render(&p)
        }
        Err(e) => {
            p.error = Some(ApiError::from_ref(&e).message);
            render_status(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
    }
}

#[derive(Deserialize)]
struct StatusForm {
    #[serde(default)]
    status: String,
}

async fn set_status(
    State(state): State<AppState>,
    s: Signed,
    Path(username): Path<String>,
    Form(f): Form<StatusForm>,
) -> PageResult {
    let status = match f.status.as_str() {
        "active" => Status::Active,
        "disabled" => Status::Disabled,
        "suspended" => Status::Suspended,
        other => {
            return Err(gatehouse_broker::Error::Invalid(format!(
                "status {other:?}: use active, disabled or suspended"
            ))
            .into());
        }
    };
    let mut tx = begin(&state).await?;
    identities::set_status(&mut tx, &s.actor(), state.clock.now_ms(), &username, status).await?;
    tx.commit().await?;
    Ok(Redirect::to("/admin#identities").into_response())
}
