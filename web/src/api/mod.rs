//! The REST API under `/api/v1`. Handlers receive the caller as a [`Principal`] set by the
//! access layer; they never authenticate or authorize on their own. Object-level rules (who may
//! approve a request, whose grants are listed) are broker rules, not handler checks.

mod audit;
mod catalog;
mod directory;
pub mod openapi;
pub(crate) mod reviews;
mod sessions;
mod workflow;

use crate::AppState;
use crate::access::Principal;
use crate::error::ApiError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_broker::access::privileges::{self, Privilege};
use gatehouse_broker::{Actor, Error, Tx};
use serde::de::DeserializeOwned;
use sqlx::pool::PoolConnection;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/openapi.json", get(openapi::document))
        .merge(directory::routes())
        .merge(catalog::routes())
        .merge(workflow::routes())
        .merge(audit::routes())
        .merge(sessions::routes())
        .merge(reviews::routes())
}

/// A JSON body whose errors come back in the API's error format (400 `invalid`), not axum's.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                match &e {
                    JsonRejection::JsonDataError(d) => format!("invalid body: {}", d.body_text()),
                    other => format!("invalid body: {}", other.body_text()),
                },
            )),
        }
    }
}

/// A pooled connection for reads.
pub(crate) async fn conn(state: &AppState) -> Result<PoolConnection<sqlx::Any>, ApiError> {
    Ok(state.store.pool().acquire().await.map_err(Error::from)?)
}

/// A write transaction.
pub(crate) async fn begin(state: &AppState) -> Result<Tx, ApiError> {
    Ok(state.store.begin().await?)
}

/// The audit actor for the caller.
pub(crate) fn actor(p: &Principal) -> Actor {
    Actor::identity(&p.0.username)
}

type ApiResult<T> = Result<Json<T>, ApiError>;

async fn whoami(
    State(state): State<AppState>,
    Extension(Principal(me)): Extension<Principal>,
) -> ApiResult<serde_json::Value> {
    let mut conn = conn(&state).await?;
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
