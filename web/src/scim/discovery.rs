//! Discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and Schemas.

use super::{MAX_BULK_OPERATIONS, MAX_RESULTS, base, document, error, registry};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_scim::error::ScimError;
use gatehouse_scim::schema::{Kind, LIST_URN, SPC_URN};
use serde_json::{Value, json};

pub async fn service_provider_config(State(state): State<AppState>) -> Response {
    let base = base(&state);
    let body = json!({
        "schemas": [SPC_URN],
        "documentationUri": "https://example.invalid/gatehouse/docs/scim.md",
        "patch": { "supported": true },
        "bulk": { "supported": true, "maxOperations": MAX_BULK_OPERATIONS, "maxPayloadSize": crate::MAX_BODY },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": state.web.scim_passwords },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A SCIM client token from `gatehouse scim client add NAME`",
            "primary": true,
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig") },
    });
    document(StatusCode::OK, &body, None, None)
}

fn list(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_URN],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

pub async fn resource_types(State(state): State<AppState>) -> Response {
    let reg = match registry() {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let base = base(&state);
    let items = [Kind::User, Kind::Group]
        .into_iter()
        .map(|k| reg.resource_type_document(k, &base))
        .collect();
    document(StatusCode::OK, &list(items), None, None)
}

pub async fn resource_type(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let reg = match registry() {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    match [Kind::User, Kind::Group]
        .into_iter()
        .find(|k| k.name() == id)
    {
        Some(k) => document(
            StatusCode::OK,
            &reg.resource_type_document(k, &base(&state)),
            None,
            None,
        ),
        None => error(ScimError::not_found(format!("no resource type {id}"))),
    }
}

pub async fn schemas(State(state): State<AppState>) -> Response {
    let reg = match registry() {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let base = base(&state);
    let items = reg
        .schemas()
        .into_iter()
        .map(|s| reg.schema_document(s, &base))
        .collect();
    document(StatusCode::OK, &list(items), None, None)
}

pub async fn schema(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let reg = match registry() {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    match reg.schemas().into_iter().find(|s| s.id == id) {
        Some(s) => document(
            StatusCode::OK,
            &reg.schema_document(s, &base(&state)),
            None,
            None,
        ),
        None => error(ScimError::not_found(format!("no schema {id}"))),
    }
}
