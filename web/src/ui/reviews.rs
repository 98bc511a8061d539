//! The Reviews pages: a reviewer's queue (evidence at a glance, filters, "accept the
//! recommendations" per campaign), an item with its evidence and the decision form (keep,
//! revoke, keep until, delegate; the broker checks who may and when a reason is needed), and a
//! campaign's progress for its owner, reviewers and administrators, with a completion chart,
//! ending, sign-off and the signed report.

use super::{Chrome, PageError, PageResult, Signed, begin, conn, render, when};
use crate::AppState;
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use gatehouse_broker::access::privileges::{self, Privilege};
use gatehouse_broker::governance::campaigns::decide::{self, Choice};
use gatehouse_broker::governance::campaigns::store::{self, Campaign, DecisionRow, Item, Progress};
use gatehouse_broker::governance::campaigns::{ApplyMode, Unanswered, close};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/reviews", get(queue))
        .route("/reviews/items/{id}", get(item).post(decide_item))
        .route("/reviews/campaigns/{id}", get(campaign))
        .route("/reviews/campaigns/{id}/accept", post(accept))
        .route("/reviews/campaigns/{id}/end", post(end))
        .route("/reviews/campaigns/{id}/sign-off", post(sign_off))
        .route("/reviews/campaigns/{id}/{file}", get(report_file))
}

/// Items per page.
const PAGE: i64 = 50;

/// Fixed banner codes: the words come from here, never from the URL.
#[derive(Deserialize, Default)]
struct Msg {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    n: Option<usize>,
    #[serde(default)]
    campaign: Option<String>,
    #[serde(default)]
    page: Option<i64>,
    #[serde(default)]
    state: Option<String>,
    /// Queue filter: `keep` or `revoke`.
    #[serde(default)]
    recommendation: Option<String>,
}

fn done_text(code: &str, n: usize) -> Option<String> {
    Some(match code {
        "decided" => "Decision recorded. It takes effect when the campaign ends.".into(),
        "staged" => "Kept at this stage: the item goes to the next stage's reviewer.".into(),
        "delegated" => "Handed to the other reviewer.".into(),
        "accepted" => format!(
            "{n} decided as recommended; items that need a reason stay in your queue. Decisions take effect when the campaign ends."
        ),
        "ended" => "The campaign has ended.".into(),
        "signed" => "Signed off: the results are applied.".into(),
        _ => return None,
    })
}

fn error_text(code: &str) -> &'static str {
    match code {
        "self_review" => "Nobody reviews their own access; nothing was decided.",
        "not_reviewer" => "You are not the reviewer of that item; nothing was decided.",
        "reason_required" => "A reason is needed for that decision; nothing was decided.",
        "not_owner" => "Only the campaign's owner signs it off.",
        "confirm" => "Tick the box to confirm; nothing was done.",
        "conflict" => "That is already decided, or the campaign has ended.",
        "invalid" => {
            "That decision is not complete (a date or a username is missing or wrong); nothing was decided."
        }
        "forbidden" => "You may not do that.",
        _ => "That was not done.",
    }
}

fn back(path: &str, kind: &str, code: &str, n: Option<usize>) -> axum::response::Response {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair(kind, code);
    if let Some(n) = n {
        q.append_pair("n", &n.to_string());
    }
    Redirect::to(&format!("{path}?{}", q.finish())).into_response()
}

fn banners(page: &mut Chrome, m: &Msg) {
    page.flash = m
        .done
        .as_deref()
        .and_then(|c| done_text(c, m.n.unwrap_or(0)));
    page.alert = m.error.as_deref().map(|c| error_text(c).to_string());
}

/// A campaign with its progress, as lists show it.
struct Row {
    c: Campaign,
    p: Progress,
}

/// My open items of one campaign, for the bulk form.
struct Mine {
    id: String,
    name: String,
    open: usize,
    revoke: usize,
    ends_ms: i64,
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct QueuePage {
    page: Chrome,
    items: Vec<Item>,
    total: i64,
    page_no: i64,
    pages: i64,
    campaign: String,
    recommendation: String,
    mine: Vec<Mine>,
    campaigns: Vec<Row>,
}

impl QueuePage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
    fn last_used(&self, i: &Item) -> String {
        last_used(i)
    }
    fn peers(&self, i: &Item) -> String {
        peers(i)
    }
}

fn last_used(i: &Item) -> String {
    match i.evidence.usage.last_ms {
        Some(t) => format!(
            "{} ({} in 90 days)",
            when(t),
            gatehouse_broker::governance::campaigns::plan::counted(
                i.evidence.usage.count_90d,
                &i.evidence.usage_of
            )
        ),
        None => format!("never ({})", i.evidence.usage_of),
    }
}

fn peers(i: &Item) -> String {
    i.evidence.peers.as_ref().map_or("—".into(), |p| {
        format!("{} of {} in {} {}", p.holding, p.of, p.attribute, p.value)
    })
}

async fn queue(State(state): State<AppState>, s: Signed, Query(m): Query<Msg>) -> PageResult {
    let mut page = s.chrome(&state, "Reviews", "reviews").await?;
    banners(&mut page, &m);
    let mut c = conn(&state).await?;
    let campaign = m.campaign.clone().unwrap_or_default();
    let page_no = m.page.unwrap_or(1).clamp(1, 100_000);
    let recommendation = m
        .recommendation
        .clone()
        .filter(|r| r == "keep" || r == "revoke")
        .unwrap_or_default();
    let (items, total) = store::queue_filtered(
        &mut c,
        s.username(),
        (!campaign.is_empty()).then_some(campaign.as_str()),
        (!recommendation.is_empty()).then_some(recommendation.as_str()),
        PAGE,
        (page_no - 1) * PAGE,
    )
    .await?;
    // My open items by campaign, for the filter and the bulk forms (counts only).
    let mine: Vec<Mine> = store::queue_counts(&mut c, s.username())
        .await?
        .into_iter()
        .map(|(id, name, ends_ms, open, revoke)| Mine {
            id,
            name,
            open: open as usize,
            revoke: revoke as usize,
            ends_ms,
        })
        .collect();
    let mut campaigns = Vec::new();
    for c0 in store::campaigns_for(&mut c, &s.0.identity)
        .await?
        .into_iter()
        .take(20)
    {
        let p = store::progress(&mut c, &c0.id).await?;
        campaigns.push(Row { c: c0, p });
    }
    render(&QueuePage {
        page,
        items,
        total,
        page_no,
        pages: (total + PAGE - 1) / PAGE,
        campaign,
        recommendation,
        mine,
        campaigns,
    })
}

#[derive(Template)]
#[template(path = "review_item.html")]
struct ItemPage {
    page: Chrome,
    i: Item,
    c: Campaign,
    stage_name: String,
    reviewer: bool,
    history: Vec<DecisionRow>,
    granted_by: Option<String>,
    applies: String,
}

impl ItemPage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
    fn last_used(&self) -> String {
        last_used(&self.i)
    }
    fn peers(&self) -> String {
        peers(&self.i)
    }
    fn needs_reason(&self) -> bool {
        self.i.privileged || self.i.recommendation == "revoke"
    }
}

fn applies(c: &Campaign) -> String {
    match c.spec.apply {
        ApplyMode::Auto => format!("when the campaign ends ({})", when(c.ends_ms)),
        ApplyMode::SignOff => format!(
            "when {} signs the campaign off, after it ends ({})",
            c.owner,
            when(c.ends_ms)
        ),
    }
}

/// Who gave the access, from the audit log (an assignment's `assignment.add` event).
async fn granted_by(c: &mut sqlx::AnyConnection, i: &Item) -> Result<Option<String>, PageError> {
    use sqlx::Row;
    let (Some(role), gatehouse_broker::governance::campaigns::Access::Assignment) =
        (i.role.as_deref(), i.access)
    else {
        return Ok(None);
    };
    let Some(since) = i.evidence.since_ms else {
        return Ok(None);
    };
    // The event is written in the transaction that made the assignment, at its creation time:
    // the time index narrows the search to that minute.
    let rows = sqlx::query(
        "SELECT actor, time, details FROM audit_events WHERE time >= $2 AND time <= $3 \
         AND action = 'assignment.add' AND object = $1 ORDER BY seq DESC LIMIT 200",
    )
    .bind(format!("role:{role}"))
    .bind(since - 60_000)
    .bind(since + 60_000)
    .fetch_all(&mut *c)
    .await
    .map_err(gatehouse_broker::Error::from)?;
    for r in rows {
        let details: String = r.try_get(2).map_err(gatehouse_broker::Error::from)?;
        if details.contains(&i.access_ref) {
            let actor: String = r.try_get(0).map_err(gatehouse_broker::Error::from)?;
            let time: i64 = r.try_get(1).map_err(gatehouse_broker::Error::from)?;
            return Ok(Some(format!("{actor} on {}", when(time))));
        }
    }
    Ok(None)
}

async fn item(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(m): Query<Msg>,
) -> PageResult {
    let mut page = s.chrome(&state, "Review item", "reviews").await?;
    banners(&mut page, &m);
    let mut c = conn(&state).await?;
    let i = store::item(&mut c, &id).await?;
    // The reviewer opened it: marked once (the report's "never opened" flag reads it).
    let mut tx = begin(&state).await?;
    let reviewer = decide::opened(&mut tx, s.username(), state.clock.now_ms(), &i).await?;
    tx.commit().await?;
    let campaign = if reviewer {
        store::campaign(&mut c, &i.campaign_id).await?
    } else {
        store::campaign_for(&mut c, &i.campaign_id, &s.0.identity).await?
    };
    let history = store::decisions(&mut c, &i.campaign_id, Some(&id)).await?;
    let granted_by = granted_by(&mut c, &i).await?;
    let stage_name = campaign
        .spec
        .stages
        .get(i.stage as usize)
        .cloned()
        .unwrap_or_default();
    render(&ItemPage {
        page,
        applies: applies(&campaign),
        i,
        c: campaign,
        stage_name,
        reviewer,
        history,
        granted_by,
    })
}

#[derive(Deserialize)]
struct DecisionForm {
    decision: Option<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    to: String,
}

async fn decide_item(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> PageResult {
    let here = format!("/reviews/items/{id}");
    let choice = match Choice::parse(
        f.decision.as_deref().unwrap_or(""),
        Some(&f.until),
        Some(&f.to),
    ) {
        Ok(c) => c,
        Err(_) => return Ok(back(&here, "error", "invalid", None)),
    };
    let mut tx = begin(&state).await?;
    let r = decide::decide(
        &mut tx,
        s.username(),
        state.clock.now_ms(),
        &id,
        &choice,
        &f.reason,
    )
    .await;
    tx.settle(&r).await?;
    let after = match r {
        Ok(i) => i,
        Err(e) => return Ok(back(&here, "error", ApiError::from_ref(&e).code, None)),
    };
    let code = match (&choice, after.state.as_str()) {
        (Choice::Delegate(_), _) => "delegated",
        (_, "open") => "staged",
        _ => "decided",
    };
    // On to the next item of the same campaign, for a keyboard flow; else back to the queue.
    let mut c = conn(&state).await?;
    let (next, _) = store::queue(&mut c, s.username(), Some(&after.campaign_id), 1, 0).await?;
    Ok(match next.first() {
        Some(n) => back(&format!("/reviews/items/{}", n.id), "done", code, None),
        None => back("/reviews", "done", code, None),
    })
}

#[derive(Template)]
#[template(path = "review_campaign.html")]
struct CampaignPage {
    page: Chrome,
    c: Campaign,
    p: Progress,
    items: Vec<Item>,
    state: String,
    page_no: i64,
    pages: i64,
    may_end: bool,
    owner: bool,
    unanswered: &'static str,
    applies: String,
    flags: Vec<gatehouse_broker::governance::campaigns::report::Flag>,
    /// The public key reports are signed with, for the verify command shown.
    key: String,
}

impl CampaignPage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
    /// The chart's bars (x, width in percent of the total), in order: revoke, keep, open.
    fn bars(&self) -> Vec<(&'static str, f64, f64, i64)> {
        let total = self.p.total.max(1) as f64;
        let mut x = 0.0;
        let mut out = Vec::new();
        for (class, n) in [
            ("revoke", self.p.revoke),
            ("keep", self.p.keep + self.p.keep_until),
            ("open", self.p.open),
        ] {
            let w = n as f64 * 100.0 / total;
            out.push((class, x, w, n));
            x += w;
        }
        out
    }
}

async fn campaign(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(m): Query<Msg>,
) -> PageResult {
    let mut page = s.chrome(&state, "Campaign", "reviews").await?;
    banners(&mut page, &m);
    let mut c = conn(&state).await?;
    let campaign = store::campaign_for(&mut c, &id, &s.0.identity).await?;
    let p = store::progress(&mut c, &id).await?;
    let filter = m
        .state
        .clone()
        .filter(|x| ["open", "decided", "applied"].contains(&x.as_str()))
        .unwrap_or_default();
    let count = match filter.as_str() {
        "open" => p.open,
        "decided" => p.decided,
        "applied" => p.applied,
        _ => p.total,
    };
    let page_no = m.page.unwrap_or(1).clamp(1, 100_000);
    let items = store::items(
        &mut c,
        &id,
        (!filter.is_empty()).then_some(filter.as_str()),
        PAGE,
        (page_no - 1) * PAGE,
    )
    .await?;
    let admin = privileges::has(&mut c, &s.0.identity.id, Privilege::Admin).await?;
    let decisions = store::decisions(&mut c, &id, None).await?;
    render(&CampaignPage {
        page,
        may_end: campaign.state == "active" && close::may_end(&campaign, s.username(), admin),
        owner: campaign.owner == s.username(),
        unanswered: match campaign.spec.unanswered {
            Unanswered::Keep => "kept",
            Unanswered::Revoke => "revoked",
            Unanswered::Recommendation => "decided as recommended",
        },
        applies: applies(&campaign),
        flags: gatehouse_broker::governance::campaigns::report::rubber_stamps(&decisions),
        key: state
            .web
            .signer
            .as_ref()
            .map_or("ed25519:…".into(), |k| k.public().to_string()),
        c: campaign,
        p,
        items,
        state: filter,
        page_no,
        pages: (count + PAGE - 1) / PAGE,
    })
}

#[derive(Deserialize)]
struct AcceptForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
}

async fn accept(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<AcceptForm>,
) -> PageResult {
    if f.confirm != "yes" {
        return Ok(back("/reviews", "error", "confirm", None));
    }
    let mut tx = begin(&state).await?;
    let r =
        decide::accept_recommendations(&mut tx, s.username(), state.clock.now_ms(), &id, &f.reason)
            .await;
    tx.settle(&r).await?;
    Ok(match r {
        Ok(b) => back("/reviews", "done", "accepted", Some(b.decided)),
        Err(e) => back("/reviews", "error", ApiError::from_ref(&e).code, None),
    })
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

async fn end(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<ConfirmForm>,
) -> PageResult {
    let here = format!("/reviews/campaigns/{id}");
    if f.confirm != "yes" {
        return Ok(back(&here, "error", "confirm", None));
    }
    let admin = privileges::has(
        &mut *conn(&state).await?,
        &s.0.identity.id,
        Privilege::Admin,
    )
    .await?;
    let mut tx = begin(&state).await?;
    let r = close::end_by(&mut tx, s.username(), admin, state.clock.now_ms(), &id).await;
    tx.settle(&r).await?;
    match r {
        Ok(Some(_)) => {
            close::verify(&state.store, state.clock.now_ms(), &id).await?;
        }
        Ok(None) => {}
        Err(e) => return Ok(back(&here, "error", ApiError::from_ref(&e).code, None)),
    }
    Ok(back(&here, "done", "ended", None))
}

async fn sign_off(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Form(f): Form<ConfirmForm>,
) -> PageResult {
    let here = format!("/reviews/campaigns/{id}");
    if f.confirm != "yes" {
        return Ok(back(&here, "error", "confirm", None));
    }
    let mut tx = begin(&state).await?;
    let r = close::sign_off(&mut tx, s.username(), state.clock.now_ms(), &id).await;
    tx.settle(&r).await?;
    if let Err(e) = r {
        return Ok(back(&here, "error", ApiError::from_ref(&e).code, None));
    }
    close::verify(&state.store, state.clock.now_ms(), &id).await?;
    Ok(back(&here, "done", "signed", None))
}

async fn report_file(
    State(state): State<AppState>,
    s: Signed,
    Path((id, file)): Path<(String, String)>,
) -> PageResult {
    let index = match file.as_str() {
        "report.json" => 0,
        "report.csv" => 1,
        "manifest.txt" => 2,
        "manifest.sig" => 3,
        _ => {
            return Err(PageError(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such report file",
            )));
        }
    };
    let files = crate::api::reviews::report_files(&state, &id, &s.0.identity).await?;
    let ctype = match index {
        0 => "application/json",
        1 => "text/csv; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    };
    let body = files[index].clone();
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response())
}
