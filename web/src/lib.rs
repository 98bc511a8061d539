//! The Gatehouse control plane over HTTP: health, first-run setup and the REST API under
//! `/api/v1`. Every request passes through one access layer ([`access`]) that decides, from a
//! single table of routes, whether it needs no credential, any valid identity, or a privilege.

pub mod access;
mod api;
pub mod error;
mod headers;
mod health;
mod setup;

use axum::Router;
use gatehouse_broker::{SharedClock, Store};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub clock: SharedClock,
    /// The decision cache (`authorize`).
    pub cache: gatehouse_broker::policy::CatalogCache,
    /// The SSH user CA's public key line, when the SSH gateway runs beside the API.
    pub ssh_user_ca: Option<String>,
}

/// Largest request body accepted anywhere (bytes).
pub const MAX_BODY: usize = 1024 * 1024;

/// The whole application: routes, the access layer, limits and security headers.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(health::routes())
        .merge(setup::routes())
        .nest("/api/v1", api::routes());
    routes
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::layer,
        ))
        .layer(axum::middleware::from_fn(headers::security_headers))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
