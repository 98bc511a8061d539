//! Identities, their API tokens and SSH keys, and groups.

use super::{ApiResult, Body, actor, begin, conn};
use crate::AppState;
use crate::access::Principal;
use crate::error::ApiError;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use gatehouse_broker::identity::identities::{self, Identity, NewIdentity, Status};
use gatehouse_broker::{
    Error,
    identity::{groups, ssh_keys, tokens},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/identities", get(list_identities).post(create_identity))
        .route("/identities/{username}", get(get_identity))
        .route("/identities/{username}/status", post(set_status))
        .route("/identities/{username}/tokens", post(create_token))
        .route("/identities/{username}/password", post(set_password))
        .route("/identities/{username}/privileges", post(grant_privilege))
        .route(
            "/identities/{username}/ssh-keys",
            get(list_keys).post(add_key),
        )
        .route("/me/ssh-keys", get(my_keys).post(add_my_key))
        .route("/groups", get(list_groups).post(create_group))
        .route("/groups/{name}/members", get(members).post(add_member))
        .route("/groups/{name}/members/{username}", delete(remove_member))
}

async fn list_identities(State(state): State<AppState>) -> ApiResult<Vec<Identity>> {
    Ok(Json(identities::list(&mut *conn(&state).await?).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewIdentityBody {
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    attributes: Map<String, Value>,
}

async fn create_identity(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<NewIdentityBody>,
) -> Result<(StatusCode, Json<Identity>), ApiError> {
    let mut tx = begin(&state).await?;
    let created = identities::create(
        &mut tx,
        &actor(&p),
        state.clock.now_ms(),
        NewIdentity {
            username: b.username,
            display_name: b.display_name,
            email: b.email,
            attributes: b.attributes,
            source: "api".into(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn find(state: &AppState, username: &str) -> Result<Identity, ApiError> {
    Ok(identities::by_username(&mut *conn(state).await?, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?)
}

async fn get_identity(
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> ApiResult<Value> {
    let who = find(&state, &username).await?;
    let mut c = conn(&state).await?;
    let groups = groups::of_identity(&mut c, &username).await?;
    let now = state.clock.now_ms();
    let assignments = gatehouse_broker::access::assignments::of_identity(&mut c, &who.id).await?;
    let grants = gatehouse_broker::access::grants::active_of(&mut c, &who.id, now).await?;
    let privileges = gatehouse_broker::access::privileges::of(&mut c, &who.id).await?;
    Ok(Json(json!({
        "identity": who, "groups": groups, "assignments": assignments, "grants": grants,
        "privileges": privileges,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
}

async fn set_status(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(username): Path<String>,
    Body(b): Body<StatusBody>,
) -> ApiResult<Identity> {
    let status = match b.status.as_str() {
        "active" => Status::Active,
        "disabled" => Status::Disabled,
        "suspended" => Status::Suspended,
        other => {
            return Err(Error::Invalid(format!(
                "status {other:?}: use active, disabled or suspended"
            ))
            .into());
        }
    };
    let mut tx = begin(&state).await?;
    let updated =
        identities::set_status(&mut tx, &actor(&p), state.clock.now_ms(), &username, status)
            .await?;
    tx.commit().await?;
    Ok(Json(updated))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

/// Sets an identity's web sign-in password (argon2id); its browser sessions end.
async fn set_password(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(username): Path<String>,
    Body(b): Body<PasswordBody>,
) -> ApiResult<serde_json::Value> {
    gatehouse_broker::identity::passwords::validate(&username, &b.password)?;
    let pw = b.password;
    let phc = tokio::task::spawn_blocking(move || gatehouse_broker::identity::passwords::hash(&pw))
        .await
        .map_err(|_| Error::Key("password hashing task failed".into()))??;
    let mut tx = begin(&state).await?;
    gatehouse_broker::identity::passwords::set_hash(
        &mut tx,
        &actor(&p),
        state.clock.now_ms(),
        &username,
        &phc,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        serde_json::json!({ "username": username, "password": "set" }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivilegeBody {
    privilege: String,
}

/// Grants a control-plane privilege (`admin`, `reviewer`).
async fn grant_privilege(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(username): Path<String>,
    Body(b): Body<PrivilegeBody>,
) -> ApiResult<serde_json::Value> {
    let privilege = gatehouse_broker::access::privileges::parse(&b.privilege).ok_or_else(|| {
        Error::Invalid(format!(
            "privilege {:?}: use admin or reviewer",
            b.privilege
        ))
    })?;
    let mut tx = begin(&state).await?;
    gatehouse_broker::access::privileges::grant(
        &mut tx,
        &actor(&p),
        state.clock.now_ms(),
        &username,
        privilege,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        serde_json::json!({ "username": username, "privilege": privilege }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    /// RFC 3339.
    #[serde(default)]
    expires_at: Option<String>,
}

async fn create_token(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(username): Path<String>,
    Body(b): Body<TokenBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let expires = b
        .expires_at
        .as_deref()
        .map(super::workflow::parse_time)
        .transpose()?;
    let mut tx = begin(&state).await?;
    let (token, secret) = tokens::create(
        &mut tx,
        &actor(&p),
        state.clock.now_ms(),
        &username,
        &b.name,
        expires,
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "id": token.id, "name": token.name, "token": secret.expose(),
            "note": "shown once: store it now" }),
        ),
    ))
}

async fn list_keys(
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> ApiResult<Vec<ssh_keys::SshKey>> {
    let who = find(&state, &username).await?;
    Ok(Json(
        ssh_keys::of_identity(&mut *conn(&state).await?, &who.id).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    public_key: String,
}

async fn add_key_for(
    state: &AppState,
    p: &Principal,
    username: &str,
    line: &str,
) -> Result<(StatusCode, Json<ssh_keys::SshKey>), ApiError> {
    let mut tx = begin(state).await?;
    let key = ssh_keys::add(&mut tx, &actor(p), state.clock.now_ms(), username, line).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(key)))
}

async fn add_key(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(username): Path<String>,
    Body(b): Body<KeyBody>,
) -> Result<(StatusCode, Json<ssh_keys::SshKey>), ApiError> {
    add_key_for(&state, &p, &username, &b.public_key).await
}

async fn my_keys(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Vec<ssh_keys::SshKey>> {
    Ok(Json(
        ssh_keys::of_identity(&mut *conn(&state).await?, &p.0.id).await?,
    ))
}

async fn add_my_key(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<KeyBody>,
) -> Result<(StatusCode, Json<ssh_keys::SshKey>), ApiError> {
    let username = p.0.username.clone();
    add_key_for(&state, &p, &username, &b.public_key).await
}

async fn list_groups(State(state): State<AppState>) -> ApiResult<Vec<Value>> {
    let mut c = conn(&state).await?;
    let mut out = Vec::new();
    for g in groups::list(&mut c).await? {
        let members = groups::members(&mut c, &g.name).await?;
        out.push(json!({ "group": g, "members": members }));
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_group(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<GroupBody>,
) -> Result<(StatusCode, Json<groups::Group>), ApiError> {
    let mut tx = begin(&state).await?;
    let g = groups::create(
        &mut tx,
        &actor(&p),
        state.clock.now_ms(),
        &b.name,
        &b.description,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(g)))
}

async fn members(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Vec<String>> {
    let mut c = conn(&state).await?;
    groups::by_name(&mut c, &name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("group {name}")))?;
    Ok(Json(groups::members(&mut c, &name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    username: String,
}

async fn add_member(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Body(b): Body<MemberBody>,
) -> Result<StatusCode, ApiError> {
    let mut tx = begin(&state).await?;
    groups::add_member(
        &mut tx,
        &actor(&p),
        state.clock.now_ms(),
        &name,
        &b.username,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_member(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = begin(&state).await?;
    groups::remove_member(&mut tx, &actor(&p), state.clock.now_ms(), &name, &username).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
