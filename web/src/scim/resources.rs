//! Users and Groups: list and search (filter, sort, paging, attributes), read (with
//! `If-None-Match`), create, replace, PATCH (with `If-Match`) and delete. The operations are
//! shared with Bulk.

use super::{Client, MAX_RESULTS, base, document, error, registry};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_broker::Actor;
use gatehouse_broker::provisioning::lifecycle::DEFAULT_GRACE_MS;
use gatehouse_broker::provisioning::scim::provision::{self, Call, Write};
use gatehouse_broker::provisioning::scim::store::{self, Stored};
use gatehouse_broker::provisioning::scim::to_scim;
use gatehouse_scim::error::ScimError;
use gatehouse_scim::filter::{self, CompareOp, Filter};
use gatehouse_scim::resource::{self, Projection};
use gatehouse_scim::schema::{Kind, KindAttributes, LIST_URN};
use serde::Deserialize;
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, ScimError>;

/// List and search parameters (query string or `.search` body).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchParams {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    #[serde(default, deserialize_with = "list_or_string")]
    pub attributes: Option<String>,
    #[serde(default, deserialize_with = "list_or_string")]
    pub excluded_attributes: Option<String>,
}

/// `attributes` is a comma-separated string in a query and a list in a `.search` body.
fn list_or_string<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    })
}

/// The response projection parameters of single-resource requests.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionParams {
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

fn call(client: &Client, state: &AppState) -> Call {
    Call {
        actor: Actor::Scim(client.0.name.clone()),
        client: client.0.name.clone(),
        now_ms: state.clock.now_ms(),
        grace_ms: DEFAULT_GRACE_MS,
        passwords: state.web.scim_passwords,
    }
}

fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

/// A stored resource as the client sees it.
pub async fn render(state: &AppState, s: &Stored, p: &Projection) -> Result<Value> {
    render_with(state, s, p, true).await
}

/// `groups`: whether to look up a User's groups (a User just created has none).
async fn render_with(state: &AppState, s: &Stored, p: &Projection, groups: bool) -> Result<Value> {
    let reg = registry()?;
    let base = base(state);
    let mut doc = s.doc.clone();
    if groups
        && s.kind == Kind::User
        && let Some(iid) = &s.identity_id
    {
        let mut conn = state
            .store
            .pool()
            .acquire()
            .await
            .map_err(|e| to_scim(e.into()))?;
        let groups = provision::user_groups(&mut conn, iid, &base).await?;
        if !groups.is_empty() {
            doc.insert("groups".into(), Value::Array(groups));
        }
    }
    Ok(resource::render(reg, s.kind, &s.id, &doc, s.meta(&base), p))
}

/// Checks a client document and, when SCIM passwords are on, hashes its password off the
/// runtime (off, a password is dropped unread and the audit event says so).
async fn write_of(kind: Kind, body: &Value, passwords: bool) -> Result<Write> {
    let input = resource::normalize(registry()?, kind, body)?;
    let password_ignored = input.password.is_some() && !passwords;
    let password_phc = match input.password.filter(|_| passwords) {
        None => None,
        Some(pw) => {
            let user = input
                .doc
                .get("userName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            gatehouse_broker::identity::passwords::validate(&user, &pw)
                .map_err(|e| ScimError::invalid_value(e.to_string()))?;
            let phc = tokio::task::spawn_blocking(move || {
                gatehouse_broker::identity::passwords::hash(&pw)
            })
            .await
            .map_err(|_| ScimError::new(500, None, "internal error"))?
            .map_err(to_scim)?;
            Some(phc)
        }
    };
    Ok(Write {
        doc: input.doc,
        password_phc,
        password_ignored,
    })
}

pub async fn do_create(
    state: &AppState,
    client: &Client,
    kind: Kind,
    body: &Value,
) -> Result<Stored> {
    let w = write_of(kind, body, state.web.scim_passwords).await?;
    let mut tx = state.store.begin().await.map_err(to_scim)?;
    let s = provision::create(&mut tx, &call(client, state), kind, w).await;
    tx.settle(&s).await.map_err(to_scim)?;
    s
}

pub async fn do_replace(
    state: &AppState,
    client: &Client,
    kind: Kind,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Result<Stored> {
    let w = write_of(kind, body, state.web.scim_passwords).await?;
    let mut tx = state.store.begin().await.map_err(to_scim)?;
    let s = provision::replace(
        &mut tx,
        &call(client, state),
        kind,
        id,
        w,
        if_match,
        "replace",
    )
    .await;
    tx.settle(&s).await.map_err(to_scim)?;
    s
}

pub async fn do_patch(
    state: &AppState,
    client: &Client,
    kind: Kind,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Result<Stored> {
    let reg = registry()?;
    let before = {
        let mut conn = state
            .store
            .pool()
            .acquire()
            .await
            .map_err(|e| to_scim(e.into()))?;
        store::require(&mut conn, kind, id).await?
    };
    before.check_if_match(if_match)?;
    let patched = gatehouse_scim::patch::apply(reg, kind, &before.doc, body)?;
    let w = write_of(kind, &patched, state.web.scim_passwords).await?;
    let mut tx = state.store.begin().await.map_err(to_scim)?;
    // The version read above must still be the one stored (no lost update between the read and
    // this transaction).
    let s = provision::replace(
        &mut tx,
        &call(client, state),
        kind,
        id,
        w,
        Some(&before.etag()),
        "patch",
    )
    .await;
    tx.settle(&s).await.map_err(to_scim)?;
    s
}

pub async fn do_delete(
    state: &AppState,
    client: &Client,
    kind: Kind,
    id: &str,
    if_match: Option<&str>,
) -> Result<()> {
    let mut tx = state.store.begin().await.map_err(to_scim)?;
    provision::delete(&mut tx, &call(client, state), kind, id, if_match).await?;
    tx.commit().await.map_err(to_scim)?;
    Ok(())
}

/// A filter the database can answer from an index: `userName eq "x"` (Users),
/// `displayName eq "x"` (Groups), `externalId eq "x"`, `id eq "x"`.
enum Indexed {
    Name(String),
    External(String),
    Id(String),
}

fn indexed(kind: Kind, f: &Filter) -> Option<Indexed> {
    let Filter::Compare(p, CompareOp::Eq, Value::String(v)) = f else {
        return None;
    };
    if p.sub.is_some()
        || p.urn
            .as_deref()
            .is_some_and(|u| !u.eq_ignore_ascii_case(kind.core_urn()))
    {
        return None;
    }
    let name_attr = match kind {
        Kind::User => "userName",
        Kind::Group => "displayName",
    };
    if p.attr.eq_ignore_ascii_case(name_attr) {
        Some(Indexed::Name(v.to_lowercase()))
    } else if p.attr.eq_ignore_ascii_case("externalId") {
        Some(Indexed::External(v.clone()))
    } else if p.attr.eq_ignore_ascii_case("id") {
        Some(Indexed::Id(v.clone()))
    } else {
        None
    }
}

/// Runs a search over the given kinds and builds the ListResponse.
pub async fn search(state: &AppState, kinds: &[Kind], p: SearchParams) -> Result<Value> {
    let reg = registry()?;
    let base = base(state);
    let projection = Projection::parse(p.attributes.as_deref(), p.excluded_attributes.as_deref())?;
    let f = match p.filter.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        Some(text) => {
            Some(filter::parse_filter(text).map_err(|e| ScimError::invalid_filter(e.to_string()))?)
        }
        None => None,
    };
    let sort_by = match p.sort_by.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            filter::parse_attr_path(s)
                .map_err(|e| ScimError::invalid_path(format!("sortBy: {e}")))?,
        ),
        None => None,
    };
    let descending = match p.sort_order.as_deref() {
        None | Some("") => false,
        Some(o) if o.eq_ignore_ascii_case("ascending") => false,
        Some(o) if o.eq_ignore_ascii_case("descending") => true,
        Some(o) => {
            return Err(ScimError::invalid_value(format!(
                "sortOrder must be ascending or descending, not {o:?}"
            )));
        }
    };
    let mut conn = state
        .store
        .pool()
        .acquire()
        .await
        .map_err(|e| to_scim(e.into()))?;
    let mut hits: Vec<(Stored, Value)> = Vec::new();
    for &kind in kinds {
        let candidates = match f.as_ref().and_then(|f| indexed(kind, f)) {
            Some(Indexed::Name(n)) => store::by_name(&mut conn, kind, &n)
                .await
                .map_err(to_scim)?
                .into_iter()
                .collect(),
            Some(Indexed::External(e)) => store::by_external_id(&mut conn, kind, &e)
                .await
                .map_err(to_scim)?,
            Some(Indexed::Id(id)) => store::get(&mut conn, kind, &id)
                .await
                .map_err(to_scim)?
                .into_iter()
                .collect(),
            None => store::all(&mut conn, kind).await.map_err(to_scim)?,
        };
        let attrs = KindAttributes {
            registry: reg,
            kind,
        };
        for s in candidates {
            let full = s.filterable(&base);
            if f.as_ref()
                .is_none_or(|f| filter::matches(f, &full, kind.core_urn(), &attrs))
            {
                hits.push((s, full));
            }
        }
    }
    drop(conn);
    if let Some(path) = &sort_by {
        let key = |s: &Stored, full: &Value| resource::sort_key(full, path, s.kind);
        hits.sort_by(|(a, fa), (b, fb)| {
            let (ka, kb) = (key(a, fa), key(b, fb));
            let o = compare(ka.as_ref(), kb.as_ref());
            if descending { o.reverse() } else { o }
        });
    }
    let total = hits.len();
    let start = p.start_index.unwrap_or(1).max(1) as usize;
    let count = p
        .count
        .map(|c| c.max(0) as usize)
        .unwrap_or(MAX_RESULTS)
        .min(MAX_RESULTS);
    let mut out = Vec::new();
    for (s, _) in hits.iter().skip(start - 1).take(count) {
        out.push(render(state, s, &projection).await?);
    }
    Ok(json!({
        "schemas": [LIST_URN],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": out.len(),
        "Resources": out,
    }))
}

/// Sort order of attribute values: absent last, strings case-insensitively, numbers numerically.
fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Greater,
        (_, None) => Ordering::Less,
        (Some(Value::String(x)), Some(Value::String(y))) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

fn if_match(h: &HeaderMap) -> Option<String> {
    h.get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn respond(r: Result<Response>) -> Response {
    r.unwrap_or_else(error)
}

async fn list(state: AppState, kind: Kind, p: SearchParams) -> Response {
    respond(
        search(&state, &[kind], p)
            .await
            .map(|v| document(StatusCode::OK, &v, None, None)),
    )
}

async fn search_body(state: AppState, kinds: &[Kind], body: Bytes) -> Response {
    let parsed = parse_json(&body).and_then(|v| {
        serde_json::from_value::<SearchParams>(v)
            .map_err(|e| ScimError::invalid_syntax(format!("SearchRequest: {e}")))
    });
    match parsed {
        Ok(p) => respond(
            search(&state, kinds, p)
                .await
                .map(|v| document(StatusCode::OK, &v, None, None)),
        ),
        Err(e) => error(e),
    }
}

async fn get_one(
    state: AppState,
    kind: Kind,
    id: String,
    p: ProjectionParams,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let projection =
                Projection::parse(p.attributes.as_deref(), p.excluded_attributes.as_deref())?;
            let mut conn = state
                .store
                .pool()
                .acquire()
                .await
                .map_err(|e| to_scim(e.into()))?;
            let s = store::require(&mut conn, kind, &id).await?;
            drop(conn);
            if let Some(tags) = headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                && s.matches(tags)
            {
                let mut r = StatusCode::NOT_MODIFIED.into_response();
                if let Ok(v) = s.etag().parse() {
                    r.headers_mut().insert(header::ETAG, v);
                }
                return Ok(r);
            }
            let body = render(&state, &s, &projection).await?;
            Ok(document(StatusCode::OK, &body, Some(&s.etag()), None))
        }
        .await,
    )
}

async fn written(
    state: &AppState,
    s: Result<Stored>,
    status: StatusCode,
    p: &ProjectionParams,
) -> Response {
    respond(
        async {
            let s = s?;
            let projection =
                Projection::parse(p.attributes.as_deref(), p.excluded_attributes.as_deref())?;
            let body = render_with(state, &s, &projection, status != StatusCode::CREATED).await?;
            let location = (status == StatusCode::CREATED)
                .then(|| format!("{}/{}/{}", base(state), s.kind.endpoint(), s.id));
            Ok(document(
                status,
                &body,
                Some(&s.etag()),
                location.as_deref(),
            ))
        }
        .await,
    )
}

async fn create(
    state: AppState,
    client: Client,
    kind: Kind,
    p: ProjectionParams,
    body: Bytes,
) -> Response {
    let r = match parse_json(&body) {
        Ok(v) => do_create(&state, &client, kind, &v).await,
        Err(e) => Err(e),
    };
    written(&state, r, StatusCode::CREATED, &p).await
}

async fn replace(
    state: AppState,
    client: Client,
    kind: Kind,
    id: String,
    p: ProjectionParams,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = match parse_json(&body) {
        Ok(v) => {
            do_replace(
                &state,
                &client,
                kind,
                &id,
                &v,
                if_match(&headers).as_deref(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    written(&state, r, StatusCode::OK, &p).await
}

async fn patch(
    state: AppState,
    client: Client,
    kind: Kind,
    id: String,
    p: ProjectionParams,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = match parse_json(&body) {
        Ok(v) => {
            do_patch(
                &state,
                &client,
                kind,
                &id,
                &v,
                if_match(&headers).as_deref(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    written(&state, r, StatusCode::OK, &p).await
}

async fn delete(
    state: AppState,
    client: Client,
    kind: Kind,
    id: String,
    headers: HeaderMap,
) -> Response {
    match do_delete(&state, &client, kind, &id, if_match(&headers).as_deref()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

macro_rules! handlers {
    ($kind:expr, $list:ident, $search:ident, $get:ident, $create:ident, $replace:ident, $patch:ident, $delete:ident) => {
        pub async fn $list(State(s): State<AppState>, Query(p): Query<SearchParams>) -> Response {
            list(s, $kind, p).await
        }
        pub async fn $search(State(s): State<AppState>, body: Bytes) -> Response {
            search_body(s, &[$kind], body).await
        }
        pub async fn $get(
            State(s): State<AppState>,
            Path(id): Path<String>,
            Query(p): Query<ProjectionParams>,
            h: HeaderMap,
        ) -> Response {
            get_one(s, $kind, id, p, h).await
        }
        pub async fn $create(
            State(s): State<AppState>,
            Extension(c): Extension<Client>,
            Query(p): Query<ProjectionParams>,
            body: Bytes,
        ) -> Response {
            create(s, c, $kind, p, body).await
        }
        pub async fn $replace(
            State(s): State<AppState>,
            Extension(c): Extension<Client>,
            Path(id): Path<String>,
            Query(p): Query<ProjectionParams>,
            h: HeaderMap,
            body: Bytes,
        ) -> Response {
            replace(s, c, $kind, id, p, h, body).await
        }
        pub async fn $patch(
            State(s): State<AppState>,
            Extension(c): Extension<Client>,
            Path(id): Path<String>,
            Query(p): Query<ProjectionParams>,
            h: HeaderMap,
            body: Bytes,
        ) -> Response {
            patch(s, c, $kind, id, p, h, body).await
        }
        pub async fn $delete(
            State(s): State<AppState>,
            Extension(c): Extension<Client>,
            Path(id): Path<String>,
            h: HeaderMap,
        ) -> Response {
            delete(s, c, $kind, id, h).await
        }
    };
}

handlers!(
    Kind::User,
    list_users,
    search_users,
    get_user,
    create_user,
    replace_user,
    patch_user,
    delete_user
);
handlers!(
    Kind::Group,
    list_groups,
    search_groups,
    get_group,
    create_group,
    replace_group,
    patch_group,
    delete_group
);

/// `POST /scim/v2/.search`: Users and Groups at once.
pub async fn search_all(State(s): State<AppState>, body: Bytes) -> Response {
    search_body(s, &[Kind::User, Kind::Group], body).await
}
