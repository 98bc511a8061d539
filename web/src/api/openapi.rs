//! The OpenAPI 3 document at `/api/v1/openapi.json`, generated from the access table
//! ([`crate::access::RULES`]): every route, its summary, its path parameters and whether it needs
//! a bearer token or a privilege. Bodies are described in docs/api.md.

use crate::access::{RULES, Requirement};
use axum::Json;
use serde_json::{Map, Value, json};

/// The document.
pub fn build() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, req, summary) in RULES {
        let Some(api_path) = path.strip_prefix("/api/v1") else {
            continue;
        };
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut op = json!({
            "summary": summary,
            "operationId": format!("{}{}", method.as_str().to_lowercase(), api_path.replace(['/', '{', '}', '-'], "_")),
            "parameters": params,
            "responses": {
                "200": { "description": "OK" },
                "400": { "$ref": "#/components/responses/Error" },
                "401": { "$ref": "#/components/responses/Error" },
                "403": { "$ref": "#/components/responses/Error" },
                "404": { "$ref": "#/components/responses/Error" },
                "409": { "$ref": "#/components/responses/Error" },
            },
        });
        match req {
            Requirement::Public => op["security"] = json!([]),
            Requirement::Authenticated | Requirement::SecondFactor | Requirement::ScimClient => {}
            Requirement::Privilege(p) => {
                op["description"] = json!(format!("Requires the `{}` privilege.", p.as_str()));
            }
        }
        if *method == axum::http::Method::POST || *method == axum::http::Method::PUT {
            op["requestBody"] = json!({ "required": false, "content": { "application/json": { "schema": { "type": "object" } } } });
        }
        paths
            .entry(api_path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|o| o.insert(method.as_str().to_lowercase(), op));
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Gatehouse API", "version": env!("CARGO_PKG_VERSION") },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": { "Error": {
                "description": "An error with a stable code",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
            } },
            "schemas": { "Error": {
                "type": "object",
                "properties": { "error": { "type": "object", "properties": {
                    "code": { "type": "string" }, "message": { "type": "string" },
                } } },
            } },
        },
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}
