//! The REST API under `/api/v1`. Handlers receive the caller as a [`Principal`] set by the
//! access layer; they never authenticate or authorize on their own.

use crate::AppState;
use crate::access::Principal;
use crate::error::ApiError;
use axum::extract::{Extension, State};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_broker::privileges::{self, Privilege};

pub fn routes() -> Router<AppState> {
    Router::new().route("/whoami", get(whoami))
}

async fn whoami(
    State(state): State<AppState>,
    Extension(Principal(me)): Extension<Principal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut conn = state
        .store
        .pool()
        .acquire()
        .await
        .map_err(gatehouse_broker::Error::from)?;
    let admin = privileges::has(&mut conn, &me.id, Privilege::Admin).await?;
    Ok(Json(serde_json::json!({
        "id": me.id,
        "username": me.username,
        "display_name": me.display_name,
        "email": me.email,
        "status": me.status,
        "privileges": if admin { vec!["admin"] } else { vec![] },
    })))
}
