//! The audit log viewer: events newest first, filtered by actor, action, object and day, paged
//! by sequence number. Reading needs the `reviewer` privilege; `gatehouse audit verify` checks
//! the chain offline.

use super::{Chrome, PageResult, Signed, conn, render, when};
use crate::AppState;
use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use gatehouse_broker::ledger::audit::{self, Event};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/audit", get(page))
}

#[derive(Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    object: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: Option<i64>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: Chrome,
    f: AuditQuery,
    events: Vec<Event>,
    older: Option<String>,
    error: Option<String>,
}

impl AuditPage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
    fn short(&self, s: &str) -> String {
        let t: String = s.chars().take(240).collect();
        if t.len() < s.len() {
            format!("{t}…")
        } else {
            t
        }
    }
}

const PAGE: i64 = 100;

async fn page(State(state): State<AppState>, s: Signed, Query(f): Query<AuditQuery>) -> PageResult {
    let page = s.chrome(&state, "Audit log", "audit").await?;
    let (since, until) = match (
        super::day_bound(&f.from, false),
        super::day_bound(&f.to, true),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return render(&AuditPage {
                page,
                f,
                events: Vec::new(),
                older: None,
                error: Some(e),
            });
        }
    };
    let opt = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let filter = audit::query::Filter {
        actor: opt(&f.actor),
        action: opt(&f.action),
        object: opt(&f.object),
        since_ms: since,
        until_ms: until,
        before_seq: f.before,
        limit: PAGE,
    };
    let events = {
        let mut c = conn(&state).await?;
        audit::query::query(&mut c, &filter).await?
    };
    let older = (events.len() as i64 == PAGE).then(|| {
        let last = events.last().map(|e| e.seq).unwrap_or(0);
        let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        format!(
            "/audit?actor={}&action={}&object={}&from={}&to={}&before={last}",
            enc(&f.actor),
            enc(&f.action),
            enc(&f.object),
            enc(&f.from),
            enc(&f.to)
        )
    });
    render(&AuditPage {
        page,
        f,
        events,
        older,
        error: None,
    })
}
