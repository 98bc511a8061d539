//! `GET /healthz`: 200 when the database answers, 503 when it does not.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let ping = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let reachable = matches!(ping, Ok(Ok(())));
    if let Ok(Err(e)) = &ping {
        tracing::warn!(error = %e, "health check: database unreachable");
    }
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if reachable { "ok" } else { "unavailable" },
        "version": env!("CARGO_PKG_VERSION"),
        "database": {
            "backend": state.store.backend().name(),
            "reachable": reachable,
        },
    });
    (status, Json(body))
}
