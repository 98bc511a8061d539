//! The audit log over the API: filters and paging (newest first, `before_seq` for the next page).

use super::{ApiResult, conn};
use crate::AppState;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_broker::ledger::audit::query::{self, Filter};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new().route("/audit", get(events))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    actor: Option<String>,
    action: Option<String>,
    object: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before_seq: Option<i64>,
    limit: Option<i64>,
}

async fn events(State(state): State<AppState>, Query(p): Query<Params>) -> ApiResult<Value> {
    let at = |s: &Option<String>| s.as_deref().map(super::workflow::parse_time).transpose();
    let f = Filter {
        actor: p.actor,
        action: p.action,
        object: p.object,
        since_ms: at(&p.since)?,
        until_ms: at(&p.until)?,
        before_seq: p.before_seq,
        limit: p.limit.unwrap_or(100),
    };
    let events = query::query(&mut *conn(&state).await?, &f).await?;
    let next = if events.len() as i64 == f.limit.clamp(1, 1000) {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Json(json!({
        "events": events.iter().map(|e| e.to_export_json()).collect::<Vec<_>>(),
        "next_before_seq": next,
    })))
}
