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
use gatehouse_broker::access::requests::{self, Filter, Request};
use gatehouse_broker::provisioning::lifecycle::engine::{self, InGrace};
use gatehouse_broker::{
    access::{grants, sod},
    identity::{identities, mfa},
};
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
    notifications: bool,
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

/// What the last decision did, as fixed codes: the banner's words come from these and from the
/// database, never from the URL (a link cannot put its own text in the trusted banner).
#[derive(Deserialize, Default)]
struct Msg {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    error: Option<String>,
    /// The request or assignment the code is about.
    #[serde(default)]
    id: Option<String>,
}

/// The words of an error code (unknown codes get the generic line).
fn error_text(code: &str) -> &'static str {
    match code {
        "bad_code" => "That code is not valid; nothing was decided.",
        "self_approval" => "Nobody decides their own request; nothing was decided.",
        "not_approver" => "You are not an approver of that request; nothing was decided.",
        "mfa_required" => {
            "This role needs a fresh second factor to approve: type your authenticator code; nothing was decided."
        }
        "sod_conflict" => {
            "Not approved: it would break a segregation-of-duties rule (the requester holds a conflicting role)."
        }
        "not_found" => "That request does not exist or is no longer open; nothing was decided.",
        "conflict" => "That request was already decided or is no longer pending.",
        "throttled" => {
            "Too many codes tried; wait a minute before trying again. Nothing was decided."
        }
        "self_keep" => {
            "Nobody keeps their own access; it takes another manager or an administrator."
        }
        "not_manager" => "Only that person's manager may keep this access.",
        _ => "That was not done.",
    }
}

/// The banner for a success code, from the database: shown only to someone who decided that
/// request (or kept that assignment).
async fn done_text(
    c: &mut sqlx::AnyConnection,
    me: &gatehouse_broker::identity::identities::Identity,
    code: &str,
    id: &str,
    now: i64,
) -> Result<Option<String>, gatehouse_broker::Error> {
    if code == "kept" {
        let Some(a) = gatehouse_broker::access::assignments::by_id(c, id).await? else {
            return Ok(None);
        };
        // Only the manager who kept it (the person's manager) sees the line.
        let manager = match &a.subject {
            gatehouse_broker::access::assignments::Subject::Identity(u) => {
                identities::by_username(c, u).await?.and_then(|i| {
                    i.attributes
                        .get("manager")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
            }
            _ => None,
        };
        return Ok(
            (a.source == "kept" && manager.as_deref() == Some(me.username.as_str()))
                .then(|| format!("Kept: {} keeps {}.", a.subject, a.role)),
        );
    }
    let Some(r) = requests::by_id(c, id, now).await? else {
        return Ok(None);
    };
    let mine = requests::decision::decisions(c, id).await?;
    let Some(decision) = mine
        .iter()
        .find(|(approver, _)| approver == &me.id)
        .map(|(_, d)| d.as_str())
    else {
        return Ok(None);
    };
    Ok(match (code, decision, r.state.as_str()) {
        ("approved", "approve", "approved") => Some(format!(
            "Approved: {}'s {} access has started.",
            r.requester, r.role
        )),
        ("approved", "approve", _) => Some(format!(
            "Your approval of {}'s request for {} is recorded; it still needs other approvers.",
            r.requester, r.role
        )),
        ("denied", "deny", _) => Some(format!("Denied {}'s request for {}.", r.requester, r.role)),
        _ => None,
    })
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
        let mfa = gatehouse_broker::access::roles::by_id(&mut c, &r.role_id)
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
    if let Some(code) = &m.error {
        page.alert = Some(error_text(code).to_string());
    } else if let (Some(code), Some(id)) = (&m.done, &m.id) {
        page.flash = done_text(&mut c, &s.0.identity, code, id, now).await?;
    }
    render(&QueuePage {
        page,
        items,
        totp: mfa::has_totp(&mut c, &s.0.identity.id).await?,
        grace: engine::in_grace_for(&mut c, s.username(), now).await?,
        notifications: state.web.notifications,
    })
}

/// The manager keeps a report's access in its grace period (an approval, audited as
/// `lifecycle.keep`); only that person's manager may (the broker checks).
async fn keep(State(state): State<AppState>, s: Signed, Path(id): Path<String>) -> PageResult {
    let mut tx = begin(&state).await?;
    let r = engine::keep(&mut tx, &s.0.identity, state.clock.now_ms(), &id).await;
    tx.settle(&r).await?;
    Ok(match r {
        Ok(_) => back("done", "kept", &id),
        Err(e) => back("error", ApiError::from_ref(&e).code, &id),
    })
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    comment: String,
    #[serde(default)]
    code: String,
}

/// Back to the queue with a banner code (`done=…` or `error=…`) about request or assignment `id`.
fn back(kind: &str, code: &str, id: &str) -> axum::response::Response {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(kind, code)
        .append_pair("id", id)
        .finish();
    Redirect::to(&format!("/approvals?{q}")).into_response()
}

async fn approve(
    State(state): State<AppState>,
    s: Signed,
    ci: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> PageResult {
    let now = state.clock.now_ms();
    let me = &s.0.identity;
    // The request and the approver first: a code is only ever checked for a request this person
    // may decide now, so the answer to a code never depends on whether it was right (no oracle
    // for any request id), and self-approval or a non-approver is refused (audited) unread.
    let mut tx = begin(&state).await?;
    let may = requests::decision::may_decide(&mut tx, me, now, &id, "approve").await;
    tx.settle(&may).await?;
    if let Err(e) = may {
        return Ok(back("error", ApiError::from_ref(&e).code, &id));
    }
    // A code typed here is a fresh second factor for this decision: throttled per address and
    // per identity like sign-in, failures audited within the server-wide budget of rows.
    let mut mfa_at = s.0.session.mfa_at_ms;
    if !f.code.trim().is_empty() {
        if state
            .web
            .throttle
            .attempt(super::auth::ip_of(ci), s.username(), false)
            .is_err()
        {
            return Ok(back("error", "throttled", &id));
        }
        let mut tx = begin(&state).await?;
        let ok = mfa::check_totp(
            &mut tx,
            now,
            &me.id,
            s.username(),
            &f.code,
            "web-approval",
            &state.web.sealing,
        )
        .await?;
        if !ok && let Some(unrecorded) = state.web.throttle.failure_row() {
            mfa::totp_failed(&mut tx, now, s.username(), "web-approval", unrecorded).await?;
        }
        tx.commit().await?;
        if !ok {
            return Ok(back("error", "bad_code", &id));
        }
        mfa_at = Some(now);
    }
    let mut tx = begin(&state).await?;
    let r = requests::approve(&mut tx, me, now, &id, &f.comment, mfa_at).await;
    tx.settle(&r).await?;
    Ok(match r {
        Ok(_) => back("done", "approved", &id),
        Err(e) => back("error", ApiError::from_ref(&e).code, &id),
    })
}

async fn deny(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> PageResult {
    let mut tx = begin(&state).await?;
    let r = requests::deny(
        &mut tx,
        &s.0.identity,
        state.clock.now_ms(),
        &id,
        &f.comment,
    )
    .await;
    tx.settle(&r).await?;
    Ok(match r {
        Ok(_) => back("done", "denied", &id),
        Err(e) => back("error", ApiError::from_ref(&e).code, &id),
    })
}
