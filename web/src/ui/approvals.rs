//! The approver's queue: pending requests this person may decide, with the requester's context
//! (manager, department, current access, SoD warnings, recent requests); approve or deny with a
//! comment, with a fresh TOTP code when the role requires MFA for approval. Below them, a
//! manager's reports' birthright access in its HR grace period, which the manager may keep.

use super::{Chrome, PageResult, Signed, begin, conn, render, span, when};
use crate::AppState;
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use gatehouse_broker::lifecycle::engine::{self, InGrace};
use gatehouse_broker::requests::{self, Filter, Request};
use gatehouse_broker::{grants, identities, mfa, sod};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/approvals", get(queue))
        .route("/approvals/{id}/approve", post(approve))
        .route("/approvals/{id}/deny", post(deny))
        .route("/approvals/keep/{id}", post(keep))
}

/// One request in the queue with what the approver should know.
struct Item {
    r: Request,
    manager: String,
    department: String,
    current: Vec<String>,
    sod_warning: Option<String>,
    recent: Vec<String>,
    mfa: bool,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct QueuePage {
    page: Chrome,
    items: Vec<Item>,
    totp: bool,
    grace: Vec<InGrace>,
}

impl QueuePage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
    fn span(&self, ms: &i64) -> String {
        span(*ms)
    }
    fn targets(&self, r: &Request) -> String {
        r.targets.as_ref().map(|t| t.join(", ")).unwrap_or_default()
    }
}

#[derive(Deserialize, Default)]
struct Msg {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

async fn queue(State(state): State<AppState>, s: Signed, Query(m): Query<Msg>) -> PageResult {
    let now = state.clock.now_ms();
    let mut c = conn(&state).await?;
    let pending = requests::decision::queue(&mut c, &s.0.identity, now).await?;
    let mut items = Vec::new();
    for r in pending {
        let who = identities::by_id(&mut c, &r.requester_id).await?;
        let attr = |k: &str| {
            who.as_ref()
                .and_then(|w| w.attributes.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or("—")
                .to_string()
        };
        let current = grants::active_of(&mut c, &r.requester_id, now)
            .await?
            .into_iter()
            .map(|g| format!("{} (until {})", g.role, when(g.not_after_ms)))
            .collect();
        let sod_warning =
            match sod::check_adding(&mut c, &r.requester_id, &r.requester, &r.role, now).await {
                Ok(()) => None,
                Err(e) => Some(ApiError::from_ref(&e).message),
            };
        let recent = requests::list(
            &mut c,
            &Filter {
                requester_id: Some(r.requester_id.clone()),
                state: None,
                limit: 6,
            },
            now,
        )
        .await?
        .into_iter()
        .filter(|x| x.id != r.id)
        .take(5)
        .map(|x| format!("{} — {} ({})", x.role, x.state, when(x.created_at_ms)))
        .collect();
        let mfa = gatehouse_broker::roles::by_id(&mut c, &r.role_id)
            .await?
            .map(|role| role.spec.approval_requires_mfa)
            .unwrap_or(false);
        items.push(Item {
            manager: attr("manager"),
            department: attr("department"),
            current,
            sod_warning,
            recent,
            mfa,
            r,
        });
    }
    let mut page = s.chrome(&state, "Approvals", "approvals").await?;
    page.flash = m.error.or(m.done);
    render(&QueuePage {
        page,
        items,
        totp: mfa::has_totp(&mut c, &s.0.identity.id).await?,
        grace: engine::in_grace_for(&mut c, s.username(), now).await?,
    })
}

/// The manager keeps a report's access in its grace period (an approval, audited as
/// `lifecycle.keep`); only that person's manager may (the broker checks).
async fn keep(State(state): State<AppState>, s: Signed, Path(id): Path<String>) -> PageResult {
    let mut tx = begin(&state).await?;
    match engine::keep(&mut tx, &s.0.identity, state.clock.now_ms(), &id).await {
        Ok(a) => {
            tx.commit().await?;
            Ok(back(&format!("Kept: {} keeps {}.", a.subject, a.role)))
        }
        Err(e) => {
            tx.rollback().await?;
            Ok(back(&format!(
                "Not kept: {}",
                ApiError::from_ref(&e).message
            )))
        }
    }
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    comment: String,
    #[serde(default)]
    code: String,
}

fn back(msg: &str) -> axum::response::Response {
    Redirect::to(&format!(
        "/approvals?done={}",
        url::form_urlencoded::byte_serialize(msg.as_bytes()).collect::<String>()
    ))
    .into_response()
}

async fn approve(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> PageResult {
    let now = state.clock.now_ms();
    // A code typed here is a fresh second factor for this decision (its check is audited even
    // when the decision then fails).
    let mut mfa_at = s.0.session.mfa_at_ms;
    if !f.code.trim().is_empty() {
        let mut tx = begin(&state).await?;
        let ok = mfa::check_totp(
            &mut tx,
            now,
            &s.0.identity.id,
            s.username(),
            &f.code,
            "web-approval",
            &state.web.sealing,
        )
        .await?;
        tx.commit().await?;
        if !ok {
            return Ok(back("That code is not valid; nothing was decided."));
        }
        mfa_at = Some(now);
    }
    let mut tx = begin(&state).await?;
    match requests::approve(&mut tx, &s.0.identity, now, &id, &f.comment, mfa_at).await {
        Ok(o) => {
            tx.commit().await?;
            let msg = if o.waiting_for.is_empty() {
                format!(
                    "Approved: {}'s {} access has started.",
                    o.request.requester, o.request.role
                )
            } else {
                format!(
                    "Approval recorded; still waiting for {}.",
                    o.waiting_for.join(", ")
                )
            };
            Ok(back(&msg))
        }
        Err(e) => {
            tx.rollback().await?;
            Ok(back(&format!(
                "Not approved: {}",
                ApiError::from_ref(&e).message
            )))
        }
    }
}

async fn deny(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> PageResult {
    let mut tx = begin(&state).await?;
    match requests::deny(
        &mut tx,
        &s.0.identity,
        state.clock.now_ms(),
        &id,
        &f.comment,
    )
    .await
    {
        Ok(r) => {
            tx.commit().await?;
            Ok(back(&format!(
                "Denied {}'s request for {}.",
                r.requester, r.role
            )))
        }
        Err(e) => {
            tx.rollback().await?;
            Ok(back(&format!(
                "Not denied: {}",
                ApiError::from_ref(&e).message
            )))
        }
    }
}
