//! The SCIM 2.0 service provider at `/scim/v2` (RFC 7644): discovery, Users and Groups, search,
//! PATCH, ETags and Bulk. Every request carries a SCIM client's bearer token, checked by the
//! access layer (`Requirement::ScimClient`); handlers get the client as [`Client`]. Errors are
//! SCIM error documents (`application/scim+json`), mapped here and nowhere else.

mod bulk;
mod discovery;
mod resources;

use crate::AppState;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use gatehouse_broker::provisioning::scim::clients::ScimClient;
use gatehouse_scim::error::ScimError;
use gatehouse_scim::schema::{Kind, Registry};
use serde_json::Value;
use std::sync::LazyLock;

/// The SCIM client a request was authenticated as (set by the access layer).
#[derive(Debug, Clone)]
pub struct Client(pub ScimClient);

/// The media type of every SCIM response.
pub const MEDIA_TYPE: &str = "application/scim+json";

/// Most resources one list or search returns (`ServiceProviderConfig.filter.maxResults`).
pub const MAX_RESULTS: usize = 1000;
/// Most operations in one Bulk request.
pub const MAX_BULK_OPERATIONS: usize = 1000;

static REGISTRY: LazyLock<Option<Registry>> = LazyLock::new(Registry::builtin);

/// The published schemas.
pub fn registry() -> Result<&'static Registry, ScimError> {
    REGISTRY
        .as_ref()
        .ok_or_else(|| ScimError::new(500, None, "the SCIM schemas could not be loaded"))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route(
            "/Users",
            get(resources::list_users).post(resources::create_user),
        )
        .route("/Users/.search", post(resources::search_users))
        .route(
            "/Users/{id}",
            get(resources::get_user)
                .put(resources::replace_user)
                .patch(resources::patch_user)
                .delete(resources::delete_user),
        )
        .route(
            "/Groups",
            get(resources::list_groups).post(resources::create_group),
        )
        .route("/Groups/.search", post(resources::search_groups))
        .route(
            "/Groups/{id}",
            get(resources::get_group)
                .put(resources::replace_group)
                .patch(resources::patch_group)
                .delete(resources::delete_group),
        )
        .route("/.search", post(resources::search_all))
        .route("/Bulk", post(bulk::bulk))
        .route("/{*rest}", any(not_found))
}

async fn not_found() -> Response {
    error(ScimError::not_found("no such SCIM endpoint"))
}

/// `https://host:port/scim/v2`, for `meta.location` and `$ref`.
pub fn base(state: &AppState) -> String {
    format!("{}scim/v2", state.web.origin)
}

/// A SCIM document response.
pub fn document(
    status: StatusCode,
    body: &Value,
    etag: Option<&str>,
    location: Option<&str>,
) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    for (name, v) in [(header::ETAG, etag), (header::LOCATION, location)] {
        if let Some(v) = v.and_then(|v| HeaderValue::from_str(v).ok()) {
            h.insert(name, v);
        }
    }
    r
}

/// A SCIM error response.
pub fn error(e: ScimError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = document(status, &e.to_json(), None, None);
    if e.status == 401 {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"gatehouse-scim\""),
        );
    }
    r
}

/// The kind an endpoint serves.
fn kind_of(endpoint: &str) -> Option<Kind> {
    Kind::from_endpoint(endpoint.trim_start_matches('/'))
}
