//! The requester's pages: ask for access (a role or targets, a duration, a reason and ticket)
//! and follow one's requests.

use super::{
    Chrome, FieldErrors, PageResult, Signed, begin, conn, render, render_status, span, when,
};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::{Form, Router};
use gatehouse_broker::access::policy::reach;
use gatehouse_broker::access::requests::{self, Filter, NewRequest, Request};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/requests", get(mine))
        .route("/requests/new", get(form).post(create))
}

#[derive(Deserialize, Default)]
struct Prefill {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    target: Option<String>,
}

/// What the form holds (to show it again with errors).
#[derive(Deserialize, Default, Clone)]
struct RequestForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    targets: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    ticket: String,
}

#[derive(Template)]
#[template(path = "request_new.html")]
struct NewPage {
    page: Chrome,
    roles: Vec<String>,
    f: RequestForm,
    errors: FieldErrors,
}

async fn form(State(state): State<AppState>, s: Signed, Query(p): Query<Prefill>) -> PageResult {
    let roles = requestable(&state, &s).await?;
    let f = RequestForm {
        role: p.role.unwrap_or_default(),
        targets: p.target.unwrap_or_default(),
        duration: "1h".into(),
        ..Default::default()
    };
    render(&NewPage {
        page: s.chrome(&state, "Request access", "request").await?,
        roles,
        f,
        errors: FieldErrors::default(),
    })
}

async fn requestable(state: &AppState, s: &Signed) -> Result<Vec<String>, super::PageError> {
    let mut c = conn(state).await?;
    let cat = state.cache.current(&mut c, state.clock.now_ms()).await?;
    Ok(reach::requestable(&cat, s.username()))
}

async fn create(
    State(state): State<AppState>,
    s: Signed,
    Form(f): Form<RequestForm>,
) -> PageResult {
    let none_if_empty = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let new = NewRequest {
        role: none_if_empty(&f.role),
        targets: f
            .targets
            .split([',', ' '])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        login: none_if_empty(&f.login),
        duration: f.duration.trim().to_string(),
        reason: f.reason.trim().to_string(),
        ticket: none_if_empty(&f.ticket),
        start_at: None,
        extends_grant: None,
    };
    let mut tx = begin(&state).await?;
    match requests::create(&mut tx, &s.0.identity, state.clock.now_ms(), new).await {
        Ok(r) => {
            tx.commit().await?;
            Ok(Redirect::to(&format!("/requests?created={}", r.id)).into_response())
        }
        Err(e) => {
            tx.rollback().await?;
            let mut errors = FieldErrors::from_error(&e);
            // Messages that name no field go next to the most likely one.
            if errors.get("form").is_some() {
                let msg = errors.get("form").unwrap_or_default().to_string();
                let field = if msg.contains("duration") {
                    "duration"
                } else if msg.contains("reason") {
                    "reason"
                } else if msg.contains("ticket") {
                    "ticket"
                } else if msg.contains("login") {
                    "login"
                } else if msg.contains("target") {
                    "targets"
                } else {
                    "role"
                };
                errors = FieldErrors::default();
                errors.add(field, msg);
            }
            render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &NewPage {
                    page: s.chrome(&state, "Request access", "request").await?,
                    roles: requestable(&state, &s).await?,
                    f,
                    errors,
                },
            )
        }
    }
}

#[derive(Deserialize, Default)]
struct Created {
    #[serde(default)]
    created: Option<String>,
}

#[derive(Template)]
#[template(path = "requests.html")]
struct MinePage {
    page: Chrome,
    requests: Vec<Request>,
    created: Option<String>,
}

impl MinePage {
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

/// What happened when a request was sent, as it happened: who may approve it and whether anyone
/// is told (the notification always waits in the outbox; only a configured webhook delivers it).
async fn sent_text(
    state: &AppState,
    c: &mut sqlx::AnyConnection,
    r: &Request,
) -> Result<String, gatehouse_broker::Error> {
    if r.state != "pending" {
        return Ok(format!("Request sent; it is {} now.", r.state));
    }
    let mut names = Vec::new();
    for set in requests::decision::seats(c, r).await? {
        for id in set.members {
            if let Some(i) = gatehouse_broker::identity::identities::by_id(c, &id).await?
                && !names.contains(&i.username)
            {
                names.push(i.username);
            }
        }
    }
    let who = if names.is_empty() {
        "nobody can approve it yet: ask an administrator".to_string()
    } else {
        format!("who may approve it: {}", names.join(", "))
    };
    Ok(if state.web.notifications {
        format!(
            "Request sent; {who}. A notification is queued for the configured webhook, and it waits in their Approvals queue."
        )
    } else {
        format!(
            "Request sent; {who}. No notification channel is configured, so nobody was notified: it waits in their Approvals queue."
        )
    })
}

async fn mine(State(state): State<AppState>, s: Signed, Query(q): Query<Created>) -> PageResult {
    let mut c = conn(&state).await?;
    let list = requests::list(
        &mut c,
        &Filter {
            requester_id: Some(s.0.identity.id.clone()),
            state: None,
            limit: 200,
        },
        state.clock.now_ms(),
    )
    .await?;
    let mut page = s.chrome(&state, "My requests", "requests").await?;
    if let Some(r) = list
        .iter()
        .find(|r| q.created.as_deref() == Some(r.id.as_str()))
    {
        page.flash = Some(sent_text(&state, &mut c, r).await?);
    }
    render(&MinePage {
        page,
        requests: list,
        created: q.created,
    })
}
