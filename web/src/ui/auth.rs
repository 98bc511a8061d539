//! Sign-in and sign-out: password, then the second factor (TOTP, a recovery code or a passkey)
//! when the account has one; each step throttled, audited, and the same for unknown and known
//! usernames. Finishing sign-in always issues a new session id.

use super::{
    Chrome, PageError, PageResult, Signed, begin, conn, pre_session_csrf, render, render_status,
    safe_next,
};
use crate::AppState;
use crate::cookies::Kind;
use crate::error::ApiError;
use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use gatehouse_broker::identity::identities::{self, Identity, Status};
use gatehouse_broker::identity::web_sessions::{self, NewSession, Stage};
use gatehouse_broker::identity::{mfa, passkeys, passwords, recovery};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/login/second-factor", get(second_form).post(second))
        .route("/logout", post(logout))
}

/// The browser's User-Agent, for the sessions list ("" when absent or not text).
pub fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The client address from the socket (never from a header); unknown in in-process tests.
pub fn ip_of(ci: Option<Extension<ConnectInfo<SocketAddr>>>) -> IpAddr {
    ci.map(|Extension(ConnectInfo(a))| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

#[derive(Deserialize, Default)]
pub struct Next {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: Chrome,
    username: String,
    next: String,
    error: Option<String>,
    passkeys: bool,
    /// The single sign-on button's label, when `[oidc]` is configured.
    sso: Option<String>,
}

async fn login_form(
    State(state): State<AppState>,
    signed: Option<Signed>,
    headers: HeaderMap,
    Query(q): Query<Next>,
) -> PageResult {
    let next = safe_next(q.next.as_deref());
    if signed.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let (csrf, cookie) = pre_session_csrf(&state, &headers);
    let page = LoginPage {
        page: Chrome {
            title: "Sign in".into(),
            csrf,
            ..Chrome::default()
        },
        username: String::new(),
        next,
        error: None,
        passkeys: state.web.webauthn.is_some(),
        sso: state.web.oidc.as_ref().map(|o| o.label.clone()),
    };
    let mut resp = render(&page)?;
    if let Some((k, v)) = cookie {
        resp.headers_mut().append(k, v);
    }
    Ok(resp)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// Whether the browser carries a valid known-device mark for `identity_id`.
pub fn known_device(state: &AppState, headers: &HeaderMap, identity_id: Option<&str>) -> bool {
    let (Some(mark), Some(id)) = (state.web.cookies.read(headers, Kind::Device), identity_id)
    else {
        return false;
    };
    let Ok(plain) = state.web.sealing.open(&mark) else {
        return false;
    };
    let text = String::from_utf8_lossy(&plain);
    let mut parts = text.splitn(2, '|');
    let (Some(who), Some(until)) = (parts.next(), parts.next()) else {
        return false;
    };
    who == id && until.parse::<i64>().is_ok_and(|u| u > state.clock.now_ms())
}

/// The response that finishes a sign-in: a new session cookie, the known-device mark, and a
/// redirect (or, for a script, the place to go).
pub fn signed_in(
    state: &AppState,
    identity_id: &str,
    cookie: &str,
    next: &str,
    json: bool,
) -> Response {
    let mut resp = if json {
        axum::Json(serde_json::json!({ "next": next })).into_response()
    } else if next.starts_with("/apps/authorize?") {
        continue_to(next)
    } else {
        Redirect::to(next).into_response()
    };
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        state.web.cookies.set(Kind::Session, cookie, None),
    );
    let until = state.clock.now_ms() + 90 * 86_400_000;
    if let Ok(mark) = state
        .web
        .sealing
        .seal(format!("{identity_id}|{until}").as_bytes())
    {
        h.append(
            header::SET_COOKIE,
            state
                .web
                .cookies
                .set(Kind::Device, &mark, Some(90 * 86_400)),
        );
    }
    resp
}

/// A page that goes on to `next` with a refresh instead of a redirect. A sign-in form's
/// redirects are held to its page's CSP `form-action 'self'`, and the app sign-in hand-off
/// (`/apps/authorize`) ends on the app's own host: browsers stop such a chain on the sign-in
/// page. A refresh is a new navigation, not the form's.
fn continue_to(next: &str) -> Response {
    let href = next
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0; url='{href}'\"><title>Signed in — Gatehouse</title>\
         </head><body><p>Signed in. <a href=\"{href}\">Continue to the app</a>.</p></body></html>"
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// The refusal when a throttle says wait.
pub fn too_many(wait_s: u64) -> PageError {
    PageError(ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "throttled",
        format!("too many sign-in attempts; wait {wait_s} s and try again"),
    ))
}

/// Whether an identity has a second factor (TOTP or a passkey).
pub async fn has_second_factor(state: &AppState, identity: &Identity) -> Result<bool, PageError> {
    let mut c = conn(state).await?;
    Ok(mfa::has_totp(&mut c, &identity.id).await?
        || !passkeys::of_identity(&mut c, &identity.id)
            .await?
            .is_empty())
}

async fn login(
    State(state): State<AppState>,
    ci: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> PageResult {
    let ip = ip_of(ci);
    let next = safe_next(f.next.as_deref());
    let username = f.username.trim().to_string();
    let (identity, stored) = {
        let mut c = conn(&state).await?;
        match identities::by_username(&mut c, &username).await? {
            Some(i) if i.status == Status::Active => {
                let h = passwords::stored(&mut c, &i.id).await?;
                (Some(i), h)
            }
            _ => (None, None),
        }
    };
    let known = known_device(&state, &headers, identity.as_ref().map(|i| i.id.as_str()));
    if let Err(wait) = state.web.throttle.attempt(ip, &username, known) {
        return Err(too_many(wait));
    }
    // The directory answers for people without a local password (local accounts, e.g. the
    // break-glass admin, keep theirs and work when the directory is down).
    let (ok, identity) = match &state.web.ldap {
        Some(ldap) if stored.is_none() => {
            directory_sign_in(&state, ldap, &username, &f.password).await?
        }
        // Always one argon2 verification, known user or not.
        _ => (
            passwords::check(stored, f.password).await && identity.is_some(),
            identity,
        ),
    };
    let now = state.clock.now_ms();
    let address = ip.to_string();
    let ua = user_agent(&headers);
    let identity = match (ok, identity) {
        (true, Some(i)) => i,
        _ => {
            if let Some(unrecorded) = state.web.throttle.failure_row() {
                let mut tx = begin(&state).await?;
                web_sessions::sign_in_failed(
                    &mut tx, now, &username, "password", &address, unrecorded,
                )
                .await?;
                tx.commit().await?;
            }
            let (csrf, _) = pre_session_csrf(&state, &headers);
            return render_status(
                StatusCode::UNAUTHORIZED,
                &LoginPage {
                    page: Chrome {
                        title: "Sign in".into(),
                        csrf,
                        ..Chrome::default()
                    },
                    username,
                    next,
                    error: Some("Wrong username or password.".into()),
                    passkeys: state.web.webauthn.is_some(),
                    sso: state.web.oidc.as_ref().map(|o| o.label.clone()),
                },
            );
        }
    };
    let second = has_second_factor(&state, &identity).await?;
    let mut tx = begin(&state).await?;
    let (cookie, _) = web_sessions::create(
        &mut tx,
        now,
        NewSession {
            identity: &identity,
            stage: if second {
                Stage::SecondFactor
            } else {
                Stage::Active
            },
            methods: "password",
            mfa_at_ms: None,
            address: &address,
            user_agent: ua,
        },
        state.web.timeouts,
    )
    .await?;
    tx.commit().await?;
    if second {
        let mut resp = Redirect::to(&format!(
            "/login/second-factor?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ))
        .into_response();
        resp.headers_mut().append(
            header::SET_COOKIE,
            state.web.cookies.set(Kind::Session, cookie.expose(), None),
        );
        return Ok(resp);
    }
    // No second factor yet: signed in, and sent to set one up.
    let go = if next == "/" {
        "/account?setup=1".to_string()
    } else {
        next
    };
    Ok(signed_in(&state, &identity.id, cookie.expose(), &go, false))
}

/// The password step through the directory: bind, then the identity created or refreshed and
/// its mapped groups synced (`gatehouse_broker::identity::directory`). The same answer for an unknown user,
/// a wrong password and a leaver; an unreachable directory is logged and refuses.
async fn directory_sign_in(
    state: &AppState,
    ldap: &crate::directory::Ldap,
    username: &str,
    password: &str,
) -> Result<(bool, Option<Identity>), PageError> {
    let Ok(name) = gatehouse_broker::identity::directory::username_from(username) else {
        return Ok((false, None));
    };
    let found = match ldap.authenticate(username, password).await {
        Ok(Some(u)) => u,
        Ok(None) => return Ok((false, None)),
        Err(e) => {
            tracing::warn!(error = %e, "LDAP sign-in: the directory could not be asked");
            return Ok((false, None));
        }
    };
    let verified = gatehouse_broker::identity::directory::Verified {
        source: "ldap".into(),
        display_name: found.display_name.clone().unwrap_or_else(|| name.clone()),
        username: name,
        email: found.email.clone(),
        groups: found.groups.clone(),
        mapped: ldap.mapped_groups(),
        proof: found.dn.clone(),
    };
    let mut tx = begin(state).await?;
    let identity = gatehouse_broker::identity::directory::sign_in(
        &mut tx,
        state.clock.now_ms(),
        &verified,
        ldap.create_identities,
    )
    .await?;
    tx.commit().await?;
    Ok((identity.is_some(), identity))
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondPage {
    page: Chrome,
    next: String,
    totp: bool,
    passkeys: bool,
    error: Option<String>,
}

async fn second_page(
    state: &AppState,
    b: &crate::access::Browser,
    next: String,
    error: Option<String>,
) -> Result<SecondPage, PageError> {
    let mut c = conn(state).await?;
    Ok(SecondPage {
        page: Chrome {
            title: "Second factor".into(),
            csrf: b.session.csrf.clone(),
            ..Chrome::default()
        },
        next,
        totp: mfa::has_totp(&mut c, &b.identity.id).await?,
        passkeys: state.web.webauthn.is_some()
            && !passkeys::of_identity(&mut c, &b.identity.id)
                .await?
                .is_empty(),
        error,
    })
}

async fn second_form(
    State(state): State<AppState>,
    Extension(b): Extension<crate::access::Browser>,
    Query(q): Query<Next>,
) -> PageResult {
    let next = safe_next(q.next.as_deref());
    if b.session.stage == Stage::Active {
        return Ok(Redirect::to(&next).into_response());
    }
    render(&second_page(&state, &b, next, None).await?)
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: Option<String>,
}

/// Replaces a second-factor session with a signed-in one (a new id), audited as `web.sign_in`.
pub async fn promote(
    state: &AppState,
    b: &crate::access::Browser,
    methods: &str,
    address: &str,
    user_agent: &str,
) -> Result<String, PageError> {
    let now = state.clock.now_ms();
    let mut tx = begin(state).await?;
    web_sessions::discard(&mut tx, &b.session.id).await?;
    let (cookie, _) = web_sessions::create(
        &mut tx,
        now,
        NewSession {
            identity: &b.identity,
            stage: Stage::Active,
            methods,
            mfa_at_ms: Some(now),
            address,
            user_agent,
        },
        state.web.timeouts,
    )
    .await?;
    tx.commit().await?;
    Ok(cookie.expose().to_string())
}

async fn second(
    State(state): State<AppState>,
    Extension(b): Extension<crate::access::Browser>,
    ci: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> PageResult {
    let next = safe_next(f.next.as_deref());
    if b.session.stage == Stage::Active {
        return Ok(Redirect::to(&next).into_response());
    }
    let ip = ip_of(ci);
    let known = known_device(&state, &headers, Some(&b.identity.id));
    if let Err(wait) = state.web.throttle.attempt(ip, &b.identity.username, known) {
        return Err(too_many(wait));
    }
    let now = state.clock.now_ms();
    let code: String = f.code.chars().filter(|c| !c.is_whitespace()).collect();
    let mut tx = begin(&state).await?;
    let (ok, method) = if code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()) {
        let ok = mfa::check_totp(
            &mut tx,
            now,
            &b.identity.id,
            &b.identity.username,
            &code,
            "web",
            &state.web.sealing,
        )
        .await?;
        if !ok && let Some(unrecorded) = state.web.throttle.failure_row() {
            mfa::totp_failed(&mut tx, now, &b.identity.username, "web", unrecorded).await?;
        }
        (ok, "totp")
    } else {
        let ok =
            recovery::redeem(&mut tx, now, &b.identity.id, &b.identity.username, &code).await?;
        (ok, "recovery_code")
    };
    tx.commit().await?;
    if !ok {
        return render_status(
            StatusCode::UNAUTHORIZED,
            &second_page(&state, &b, next, Some("That code is not valid. Use the current code from your app, or an unused recovery code.".into())).await?,
        );
    }
    let ua = user_agent(&headers);
    // The first step (`password`, or `oidc` for single sign-on) and this one.
    let methods = format!("{}+{method}", b.session.methods);
    let cookie = promote(&state, &b, &methods, &ip.to_string(), ua).await?;
    let go = if method == "recovery_code" {
        "/account?recovered=1".to_string()
    } else {
        next
    };
    Ok(signed_in(&state, &b.identity.id, &cookie, &go, false))
}

async fn logout(
    State(state): State<AppState>,
    b: Option<Extension<crate::access::Browser>>,
) -> PageResult {
    if let Some(Extension(b)) = b {
        let mut tx = begin(&state).await?;
        web_sessions::end(
            &mut tx,
            state.clock.now_ms(),
            &b.session,
            &b.identity.username,
        )
        .await?;
        tx.commit().await?;
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, state.web.cookies.clear(Kind::Session));
    Ok(resp)
}
