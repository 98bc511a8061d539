//! The Findings page: least-privilege findings now, grouped by kind, each with what to do
//! (`gatehouse_broker::governance::findings`). Reading needs the `reviewer` privilege and
//! changes nothing; an administrator may start a review of a finding's role or privilege (a
//! one-off campaign, `campaigns::store::start_for`).

use super::{Chrome, PageResult, Signed, conn, render};
use crate::AppState;
use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use gatehouse_broker::governance::findings::{self, Finding, Kind};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/findings", get(page))
        .route("/findings/review", post(start_review))
}

#[derive(Deserialize)]
struct ReviewForm {
    review: String,
}

/// "Start a review" of a finding (administrators): a one-off campaign over the role's or the
/// privilege's holders, owned by whoever starts it; on to its page.
async fn start_review(
    State(state): State<AppState>,
    s: Signed,
    Form(f): Form<ReviewForm>,
) -> PageResult {
    let mut tx = super::begin(&state).await?;
    let id = gatehouse_broker::governance::campaigns::store::start_for(
        &mut tx,
        s.username(),
        state.clock.now_ms(),
        &f.review,
    )
    .await?;
    tx.commit().await?;
    Ok(Redirect::to(&format!("/reviews/campaigns/{id}")).into_response())
}

#[derive(Deserialize, Default)]
struct FindingsQuery {
    #[serde(default)]
    kind: String,
}

/// A kind with its title in words and how many findings it has.
struct Group {
    kind: &'static str,
    title: &'static str,
    count: usize,
}

#[derive(Template)]
#[template(path = "findings.html")]
struct FindingsPage {
    page: Chrome,
    kind: String,
    groups: Vec<Group>,
    shown: Vec<Finding>,
    total: usize,
}

impl FindingsPage {
    fn title_of(&self, f: &Finding) -> &'static str {
        title(f.kind)
    }
}

/// Every kind, in report order, with its title.
const KINDS: [(Kind, &str); 9] = [
    (
        Kind::StandingPrivilegedAccess,
        "Privileged access held standing",
    ),
    (
        Kind::EligibleNeverActivated,
        "Eligible roles not used in 90 days",
    ),
    (Kind::InactiveIdentity, "Identities inactive for 90 days"),
    (
        Kind::StandingGatehousePrivilege,
        "Gatehouse privileges held standing",
    ),
    (
        Kind::PrivilegedRoleWithoutSessionMfa,
        "Privileged roles without session MFA",
    ),
    (Kind::SodViolation, "Separation-of-duties violations"),
    (
        Kind::BreakGlassWithoutReview,
        "Break-glass uses not yet reviewed",
    ),
    (Kind::UnusedSshKey, "SSH keys unused for 90 days"),
    (Kind::UnusedApiToken, "API tokens unused for 90 days"),
];

fn title(kind: Kind) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("", |(_, t)| *t)
}

async fn page(
    State(state): State<AppState>,
    s: Signed,
    Query(q): Query<FindingsQuery>,
) -> PageResult {
    let page = s.chrome(&state, "Findings", "findings").await?;
    let snapshot = findings::snapshot(&mut *conn(&state).await?, state.clock.now_ms()).await?;
    let all = findings::findings(&snapshot);
    let groups = KINDS
        .iter()
        .map(|(k, t)| Group {
            kind: k.as_str(),
            title: t,
            count: all.iter().filter(|f| f.kind == *k).count(),
        })
        .collect();
    let total = all.len();
    // An unknown kind shows everything (the choices come from the list above).
    let known = KINDS.iter().any(|(k, _)| k.as_str() == q.kind);
    let shown = all
        .into_iter()
        .filter(|f| !known || f.kind.as_str() == q.kind)
        .collect();
    render(&FindingsPage {
        page,
        kind: if known { q.kind } else { String::new() },
        groups,
        shown,
        total,
    })
}
