//! First-run setup: the one-time link printed at start creates the first administrator and shows
//! its API token once. The code in the link is the only credential; it works once, for an hour.

use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use axum::{Form, Router};
use gatehouse_broker::{Error, bootstrap};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/setup", get(form).post(redeem))
}

#[derive(Deserialize)]
struct CodeParam {
    #[serde(default)]
    code: String,
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - Gatehouse</title>\
         </head><body><h1>{}</h1>{body}</body></html>",
        escape(title),
        escape(title)
    ))
}

/// Minimal HTML escaping for text and attribute values.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

async fn form(Query(q): Query<CodeParam>) -> Html<String> {
    page(
        "Set up Gatehouse",
        &format!(
            "<p>This creates the administrator <code>{}</code> and shows its API token once.</p>\
             <form method=\"post\" action=\"/setup\"><input type=\"hidden\" name=\"code\" value=\"{}\">\
             <button type=\"submit\">Create the administrator</button></form>",
            bootstrap::ADMIN,
            escape(&q.code)
        ),
    )
}

async fn redeem(
    State(state): State<AppState>,
    Form(q): Form<CodeParam>,
) -> (StatusCode, Html<String>) {
    match bootstrap::redeem_setup_code(&state.store, state.clock.now_ms(), &q.code).await {
        Ok((admin, token)) => (
            StatusCode::OK,
            page(
                "Administrator created",
                &format!(
                    "<p>Identity <code>{}</code> is an administrator. Its API token is shown only \
                     now; store it in a password manager:</p><pre>{}</pre>\
                     <p>Use it as <code>Authorization: Bearer TOKEN</code> on <code>/api/v1</code>.</p>",
                    escape(&admin.username),
                    escape(token.expose())
                ),
            ),
        ),
        Err(Error::Unauthenticated) => (
            StatusCode::UNAUTHORIZED,
            page(
                "Setup link not valid",
                "<p>This setup link is wrong, already used or expired. Restart \
                 <code>gatehouse serve</code> to print a new one.</p>",
            ),
        ),
        Err(Error::Conflict(_)) => (
            StatusCode::CONFLICT,
            page(
                "Already set up",
                "<p>Gatehouse already has an administrator.</p>",
            ),
        ),
        Err(e) => {
            let err = crate::error::ApiError::from(e);
            (
                err.status,
                page("Setup failed", &format!("<p>{}</p>", escape(&err.message))),
            )
        }
    }
}
