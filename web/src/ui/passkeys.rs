//! WebAuthn passkey ceremonies (webauthn-rs): passwordless sign-in, a passkey as the second
//! factor after a password, and registering a passkey on the account. The browser side is
//! `assets/gatehouse.js`; challenges live in the database (a sign-in's in `web_challenges`, the
//! others in the session), so any instance can finish what another started.

use super::auth::{ip_of, known_device, promote, signed_in, too_many, user_agent};
use super::{PageError, Signed, begin, conn, safe_next};
use crate::AppState;
use crate::access::Browser;
use crate::error::ApiError;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use gatehouse_broker::identity::identities::{self, Status};
use gatehouse_broker::identity::web_sessions::{self, NewSession, Stage};
use gatehouse_broker::{identity::passkeys, secrets};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;
use std::net::SocketAddr;
use webauthn_rs::prelude::*;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login/passkey/start", post(login_start))
        .route("/login/passkey/finish", post(login_finish))
        .route("/login/second-factor/passkey/start", post(second_start))
        .route("/login/second-factor/passkey/finish", post(second_finish))
        .route("/account/passkeys/start", post(register_start))
        .route("/account/passkeys/finish", post(register_finish))
}

/// How long a challenge may be answered.
const CHALLENGE_MS: i64 = 2 * 60_000;

fn failed() -> PageError {
    PageError(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "passkey_failed",
        "passkey sign-in failed",
    ))
}

fn webauthn(state: &AppState) -> Result<&Webauthn, PageError> {
    state.web.webauthn.as_ref().ok_or_else(|| {
        PageError(ApiError::new(
            StatusCode::NOT_FOUND,
            "passkeys_off",
            "passkeys need Gatehouse to be reached by a host name (set web.public_url)",
        ))
    })
}

fn cred_id(p: &Passkey) -> String {
    serde_json::to_value(p.cred_id())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn json_err(e: PageError) -> Response {
    e.0.into_response()
}

/// The identity's passkeys, parsed.
async fn stored_passkeys(
    state: &AppState,
    identity_id: &str,
) -> Result<Vec<(String, Passkey)>, PageError> {
    let mut c = conn(state).await?;
    Ok(passkeys::of_identity(&mut c, identity_id)
        .await?
        .into_iter()
        .filter_map(|p| {
            serde_json::from_str::<Passkey>(&p.credential)
                .ok()
                .map(|k| (p.id, k))
        })
        .collect())
}

/// A challenge for someone with no passkey (or no account): shaped like a real one, with a
/// credential id derived from the username so repeated asks look the same.
fn decoy(state: &AppState, username: &str) -> Value {
    // Keyed with a random per-process salt, so nobody can compute the decoy for a username.
    static SALT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let salt = SALT.get_or_init(|| secrets::generate("").unwrap_or_default());
    let id = &secrets::hash(&format!("{salt}|{}|decoy|{username}", state.web.origin))[..32];
    let b64 = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let mut challenge = [0u8; 32];
    let _ = getrandom::fill(&mut challenge);
    json!({
        "publicKey": {
            "challenge": b64(&challenge),
            "timeout": 120000,
            "rpId": state.web.origin.host_str().unwrap_or("localhost"),
            "allowCredentials": [{ "type": "public-key", "id": b64(&hex::decode(id).unwrap_or_default()) }],
            "userVerification": "required",
        },
        "ceremony": secrets::generate("").unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct Start {
    #[serde(default)]
    username: String,
}

async fn login_start(
    State(state): State<AppState>,
    ci: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(s): Json<Start>,
) -> Response {
    match login_start_inner(&state, ip_of(ci), &headers, s).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => json_err(e),
    }
}

async fn login_start_inner(
    state: &AppState,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    s: Start,
) -> Result<Value, PageError> {
    let w = webauthn(state)?;
    let username = s.username.trim().to_string();
    let identity = {
        let mut c = conn(state).await?;
        identities::by_username(&mut c, &username)
            .await?
            .filter(|i| i.status == Status::Active)
    };
    let known = known_device(state, headers, identity.as_ref().map(|i| i.id.as_str()));
    if let Err(wait) = state.web.throttle.attempt(ip, &username, known) {
        return Err(too_many(wait));
    }
    let Some(identity) = identity else {
        return Ok(decoy(state, &username));
    };
    let keys: Vec<Passkey> = stored_passkeys(state, &identity.id)
        .await?
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    if keys.is_empty() {
        return Ok(decoy(state, &username));
    }
    let (challenge, auth_state) = w
        .start_passkey_authentication(&keys)
        .map_err(|_| failed())?;
    let ceremony = secrets::generate("")?;
    let now = state.clock.now_ms();
    let mut c = conn(state).await?;
    sqlx::query("DELETE FROM web_challenges WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *c)
        .await
        .map_err(gatehouse_broker::Error::from)?;
    sqlx::query(
        "INSERT INTO web_challenges (id, identity_id, state, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(secrets::hash(&ceremony))
    .bind(identity.id.as_str())
    .bind(serde_json::to_string(&auth_state).map_err(|_| failed())?)
    .bind(now + CHALLENGE_MS)
    .execute(&mut *c)
    .await
    .map_err(gatehouse_broker::Error::from)?;
    let mut v = serde_json::to_value(&challenge).map_err(|_| failed())?;
    v["ceremony"] = json!(ceremony);
    Ok(v)
}

#[derive(Deserialize)]
struct Finish {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    next: Option<String>,
    credential: Value,
}

/// Checks an assertion against the identity's passkeys; updates the used one's counter.
async fn verify_assertion(
    state: &AppState,
    identity_id: &str,
    auth_state: &PasskeyAuthentication,
    credential: Value,
) -> Result<(), PageError> {
    let w = webauthn(state)?;
    let cred: PublicKeyCredential = serde_json::from_value(credential).map_err(|_| failed())?;
    let result = w
        .finish_passkey_authentication(&cred, auth_state)
        .map_err(|e| {
            tracing::info!(error = %e, "passkey assertion refused");
            failed()
        })?;
    for (id, mut key) in stored_passkeys(state, identity_id).await? {
        if key.update_credential(&result).is_some() {
            let mut c = conn(state).await?;
            passkeys::used(
                &mut c,
                &id,
                &serde_json::to_string(&key).unwrap_or_default(),
                state.clock.now_ms(),
            )
            .await?;
            return Ok(());
        }
    }
    Err(failed())
}

async fn login_finish(
    State(state): State<AppState>,
    ci: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(f): Json<Finish>,
) -> Response {
    let ip = ip_of(ci);
    let now = state.clock.now_ms();
    let result: Result<Response, PageError> = async {
        let row = {
            let mut c = conn(&state).await?;
            let row = sqlx::query(
                "SELECT identity_id, state, expires_at FROM web_challenges WHERE id = $1",
            )
            .bind(secrets::hash(&f.ceremony))
            .fetch_optional(&mut *c)
            .await
            .map_err(gatehouse_broker::Error::from)?;
            sqlx::query("DELETE FROM web_challenges WHERE id = $1")
                .bind(secrets::hash(&f.ceremony))
                .execute(&mut *c)
                .await
                .map_err(gatehouse_broker::Error::from)?;
            row
        };
        let Some(row) = row else { return Err(failed()) };
        let identity_id: String = row.try_get(0).map_err(gatehouse_broker::Error::from)?;
        let saved: String = row.try_get(1).map_err(gatehouse_broker::Error::from)?;
        let expires: i64 = row.try_get(2).map_err(gatehouse_broker::Error::from)?;
        if expires < now {
            return Err(failed());
        }
        let auth_state: PasskeyAuthentication =
            serde_json::from_str(&saved).map_err(|_| failed())?;
        let identity = {
            let mut c = conn(&state).await?;
            identities::by_id(&mut c, &identity_id)
                .await?
                .filter(|i| i.status == Status::Active)
                .ok_or_else(failed)?
        };
        if let Err(e) = verify_assertion(&state, &identity.id, &auth_state, f.credential).await {
            if let Some(unrecorded) = state.web.throttle.failure_row() {
                let mut tx = begin(&state).await?;
                web_sessions::sign_in_failed(
                    &mut tx,
                    now,
                    &identity.username,
                    "passkey",
                    &ip.to_string(),
                    unrecorded,
                )
                .await?;
                tx.commit().await?;
            }
            return Err(e);
        }
        let ua = user_agent(&headers);
        let mut tx = begin(&state).await?;
        let (cookie, _) = web_sessions::create(
            &mut tx,
            now,
            NewSession {
                identity: &identity,
                stage: Stage::Active,
                methods: "passkey",
                mfa_at_ms: Some(now),
                address: &ip.to_string(),
                user_agent: ua,
            },
            state.web.timeouts,
        )
        .await?;
        tx.commit().await?;
        let next = safe_next(f.next.as_deref());
        Ok(signed_in(
            &state,
            &identity.id,
            cookie.expose(),
            &next,
            true,
        ))
    }
    .await;
    result.unwrap_or_else(json_err)
}

async fn second_start(State(state): State<AppState>, Extension(b): Extension<Browser>) -> Response {
    let r: Result<Value, PageError> = async {
        let w = webauthn(&state)?;
        let keys: Vec<Passkey> = stored_passkeys(&state, &b.identity.id)
            .await?
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        let (challenge, auth_state) = w.start_passkey_authentication(&keys).map_err(|_| failed())?;
        let pending = json!({ "kind": "authenticate", "state": auth_state, "until": state.clock.now_ms() + CHALLENGE_MS });
        let mut c = conn(&state).await?;
        web_sessions::set_pending(&mut c, &b.session.id, Some(&pending.to_string())).await?;
        serde_json::to_value(&challenge).map_err(|_| failed())
    }
    .await;
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => json_err(e),
    }
}

/// Takes the ceremony state of `kind` out of the session.
async fn take_pending(state: &AppState, b: &Browser, kind: &str) -> Result<Value, PageError> {
    let mut c = conn(state).await?;
    web_sessions::set_pending(&mut c, &b.session.id, None).await?;
    let v: Value = b
        .session
        .pending
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(failed)?;
    if v["kind"] != kind || v["until"].as_i64().unwrap_or(0) < state.clock.now_ms() {
        return Err(failed());
    }
    Ok(v["state"].clone())
}

async fn second_finish(
    State(state): State<AppState>,
    Extension(b): Extension<Browser>,
    ci: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(f): Json<Finish>,
) -> Response {
    let ip = ip_of(ci);
    let r: Result<Response, PageError> = async {
        if b.session.stage == Stage::Active {
            return Ok(Json(json!({ "next": safe_next(f.next.as_deref()) })).into_response());
        }
        let saved = take_pending(&state, &b, "authenticate").await?;
        let auth_state: PasskeyAuthentication =
            serde_json::from_value(saved).map_err(|_| failed())?;
        verify_assertion(&state, &b.identity.id, &auth_state, f.credential).await?;
        let ua = user_agent(&headers);
        let methods = format!("{}+passkey", b.session.methods);
        let cookie = promote(&state, &b, &methods, &ip.to_string(), ua).await?;
        Ok(signed_in(
            &state,
            &b.identity.id,
            &cookie,
            &safe_next(f.next.as_deref()),
            true,
        ))
    }
    .await;
    r.unwrap_or_else(json_err)
}

async fn register_start(State(state): State<AppState>, signed: Signed) -> Response {
    let b = &signed.0;
    let r: Result<Value, PageError> = async {
        super::account::require_recent_auth(&state, b)?;
        let w = webauthn(&state)?;
        let existing: Vec<CredentialID> = stored_passkeys(&state, &b.identity.id)
            .await?
            .iter()
            .map(|(_, k)| k.cred_id().clone())
            .collect();
        let user_id = Uuid::parse_str(&b.identity.id).unwrap_or_else(|_| Uuid::nil());
        let display = if b.identity.display_name.is_empty() {
            b.identity.username.clone()
        } else {
            b.identity.display_name.clone()
        };
        let (challenge, reg_state) = w
            .start_passkey_registration(user_id, &b.identity.username, &display, Some(existing))
            .map_err(|_| failed())?;
        let pending = json!({ "kind": "register", "state": reg_state, "until": state.clock.now_ms() + CHALLENGE_MS });
        let mut c = conn(&state).await?;
        web_sessions::set_pending(&mut c, &b.session.id, Some(&pending.to_string())).await?;
        serde_json::to_value(&challenge).map_err(|_| failed())
    }
    .await;
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => json_err(e),
    }
}

#[derive(Deserialize)]
struct RegisterFinish {
    #[serde(default)]
    name: String,
    credential: Value,
}

async fn register_finish(
    State(state): State<AppState>,
    signed: Signed,
    Json(f): Json<RegisterFinish>,
) -> Response {
    let b = &signed.0;
    let r: Result<Response, PageError> = async {
        super::account::require_recent_auth(&state, b)?;
        let w = webauthn(&state)?;
        let saved = take_pending(&state, b, "register").await?;
        let reg_state: PasskeyRegistration = serde_json::from_value(saved).map_err(|_| failed())?;
        let cred: RegisterPublicKeyCredential =
            serde_json::from_value(f.credential).map_err(|_| failed())?;
        let key = w
            .finish_passkey_registration(&cred, &reg_state)
            .map_err(|e| {
                tracing::info!(error = %e, "passkey registration refused");
                PageError(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "passkey_failed",
                    "the passkey could not be registered",
                ))
            })?;
        let name = if f.name.trim().is_empty() {
            "Passkey".to_string()
        } else {
            f.name
        };
        let mut tx = begin(&state).await?;
        passkeys::add(
            &mut tx,
            &signed.actor(),
            state.clock.now_ms(),
            &b.identity.id,
            &b.identity.username,
            &cred_id(&key),
            &name,
            &serde_json::to_string(&key).unwrap_or_default(),
            Some(&b.session.id),
        )
        .await?;
        // The passkey just registered proves itself: this session now counts as having passed
        // a second factor (what a privileged identity needs to go on).
        web_sessions::reauthenticated(
            &mut tx,
            state.clock.now_ms(),
            &b.session,
            &b.identity.username,
            "passkey_registered",
            true,
        )
        .await?;
        tx.commit().await?;
        Ok(Json(json!({ "next": "/account?passkey=added" })).into_response())
    }
    .await;
    r.unwrap_or_else(json_err)
}
