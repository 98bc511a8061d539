//! Bulk (RFC 7644 §3.7): up to [`MAX_BULK_OPERATIONS`] POST / PUT / PATCH / DELETE operations in
//! one request, run in order, each in its own transaction; `bulkId:X` references in later
//! operations resolve to the ids created earlier; `failOnErrors` stops after that many errors.

use super::resources::{do_create, do_delete, do_patch, do_replace};
use super::{Client, MAX_BULK_OPERATIONS, base, document, error, kind_of};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_scim::error::ScimError;
use gatehouse_scim::filter::get_ci;
use gatehouse_scim::schema::{BULK_RESPONSE_URN, Kind};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// An operation's status and, for a written resource, its (kind, id, ETag).
type Done = (StatusCode, Option<(Kind, String, String)>);

/// Replaces every string `bulkId:X` with the id created for X; an unknown X is an error.
fn resolve(v: &Value, ids: &HashMap<String, String>) -> Result<Value, ScimError> {
    Ok(match v {
        Value::String(s) => match s.strip_prefix("bulkId:") {
            Some(b) => Value::String(
                ids.get(b)
                    .cloned()
                    .ok_or_else(|| ScimError::invalid_value(format!("unknown bulkId {b}")))?,
            ),
            None => v.clone(),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| resolve(i, ids))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), resolve(x, ids)?)))
                .collect::<Result<Map<_, _>, ScimError>>()?,
        ),
        other => other.clone(),
    })
}

/// `(kind, id)` of an operation's path: `/Users`, `/Users/ID` (ID may be `bulkId:X`).
fn target(path: &str, ids: &HashMap<String, String>) -> Result<(Kind, Option<String>), ScimError> {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let kind = parts.next().and_then(kind_of).ok_or_else(|| {
        ScimError::invalid_path(format!("bulk path {path:?} names no resource type"))
    })?;
    let id = match parts.next() {
        None | Some("") => None,
        Some(id) => match id.strip_prefix("bulkId:") {
            Some(b) => Some(
                ids.get(b)
                    .cloned()
                    .ok_or_else(|| ScimError::invalid_value(format!("unknown bulkId {b}")))?,
            ),
            None => Some(id.to_string()),
        },
    };
    Ok((kind, id))
}

pub async fn bulk(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    body: Bytes,
) -> Response {
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(ScimError::invalid_syntax(format!(
                "the body is not JSON: {e}"
            )));
        }
    };
    let Some(obj) = req.as_object() else {
        return error(ScimError::invalid_syntax(
            "the body must be a BulkRequest object",
        ));
    };
    let Some(ops) = get_ci(obj, "Operations").and_then(Value::as_array) else {
        return error(ScimError::invalid_syntax(
            "Operations: a list of operations is required",
        ));
    };
    if ops.len() > MAX_BULK_OPERATIONS {
        return error(ScimError::new(
            413,
            None,
            format!("at most {MAX_BULK_OPERATIONS} operations per Bulk request"),
        ));
    }
    let fail_on = get_ci(obj, "failOnErrors")
        .and_then(Value::as_u64)
        .map(|n| n as usize);
    let base = base(&state);
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut errors = 0usize;
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        if fail_on.is_some_and(|n| errors >= n) {
            break;
        }
        let o = op.as_object().cloned().unwrap_or_default();
        let method = get_ci(&o, "method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_uppercase();
        let bulk_id = get_ci(&o, "bulkId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let path = get_ci(&o, "path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let version = get_ci(&o, "version")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let result: Result<Done, ScimError> = async {
            let (kind, id) = target(&path, &ids)?;
            let data = match get_ci(&o, "data") {
                Some(d) => Some(resolve(d, &ids)?),
                None => None,
            };
            let need_id = || {
                id.clone().ok_or_else(|| {
                    ScimError::invalid_path(format!("{method} needs /{}/ID", kind.endpoint()))
                })
            };
            let need_data = || {
                data.clone()
                    .ok_or_else(|| ScimError::invalid_syntax(format!("{method} needs data")))
            };
            match method.as_str() {
                "POST" => {
                    if bulk_id.is_none() {
                        return Err(ScimError::invalid_syntax("POST operations need a bulkId"));
                    }
                    let s = do_create(&state, &client, kind, &need_data()?).await?;
                    Ok((StatusCode::CREATED, Some((kind, s.id.clone(), s.etag()))))
                }
                "PUT" => {
                    let s = do_replace(
                        &state,
                        &client,
                        kind,
                        &need_id()?,
                        &need_data()?,
                        version.as_deref(),
                    )
                    .await?;
                    Ok((StatusCode::OK, Some((kind, s.id.clone(), s.etag()))))
                }
                "PATCH" => {
                    let s = do_patch(
                        &state,
                        &client,
                        kind,
                        &need_id()?,
                        &need_data()?,
                        version.as_deref(),
                    )
                    .await?;
                    Ok((StatusCode::OK, Some((kind, s.id.clone(), s.etag()))))
                }
                "DELETE" => {
                    do_delete(&state, &client, kind, &need_id()?, version.as_deref()).await?;
                    Ok((StatusCode::NO_CONTENT, None))
                }
                other => Err(ScimError::invalid_syntax(format!(
                    "unknown bulk method {other:?}"
                ))),
            }
        }
        .await;
        let mut entry = Map::new();
        entry.insert("method".into(), Value::String(method.clone()));
        if let Some(b) = &bulk_id {
            entry.insert("bulkId".into(), Value::String(b.clone()));
        }
        match result {
            Ok((status, created)) => {
                entry.insert("status".into(), Value::String(status.as_u16().to_string()));
                if let Some((kind, id, etag)) = created {
                    entry.insert(
                        "location".into(),
                        Value::String(format!("{base}/{}/{id}", kind.endpoint())),
                    );
                    entry.insert("version".into(), Value::String(etag));
                    if let Some(b) = &bulk_id {
                        ids.insert(b.clone(), id);
                    }
                } else if let Ok((kind, Some(id))) = target(&path, &ids) {
                    entry.insert(
                        "location".into(),
                        Value::String(format!("{base}/{}/{id}", kind.endpoint())),
                    );
                }
            }
            Err(e) => {
                errors += 1;
                entry.insert("status".into(), Value::String(e.status.to_string()));
                entry.insert("response".into(), e.to_json());
            }
        }
        out.push(Value::Object(entry));
    }
    document(
        StatusCode::OK,
        &json!({ "schemas": [BULK_RESPONSE_URN], "Operations": out }),
        None,
        None,
    )
}
