//! Sessions through the gateways (who, what, when, why it ended, bytes, recording) and the SSH
//! user CA's public key that targets trust.

use super::{ApiError, ApiResult, conn};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_broker::access::sessions::{self, Filter, Session};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sessions", get(list))
        .route("/ssh/user-ca", get(user_ca))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    identity: Option<String>,
    target: Option<String>,
    live: Option<bool>,
    limit: Option<i64>,
}

async fn list(State(state): State<AppState>, Query(p): Query<Params>) -> ApiResult<Vec<Session>> {
    let f = Filter {
        identity: p.identity,
        target: p.target,
        live: p.live,
        since_ms: None,
        until_ms: None,
        limit: p.limit.unwrap_or(100),
    };
    Ok(Json(sessions::list(&mut *conn(&state).await?, &f).await?))
}

/// The `ssh-ed25519 AAAA…` line for sshd's TrustedUserCAKeys (a public key: no secret).
async fn user_ca(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match state.ssh_user_ca {
        Some(line) => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{line}\n"),
        )),
        None => {
            Err(gatehouse_broker::Error::NotFound("the SSH gateway is not running".into()).into())
        }
    }
}
