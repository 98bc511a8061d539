//! The account page: password, TOTP (enrolled from a QR code and confirmed with a code),
//! passkeys, recovery codes and SSH public keys. Changing a factor needs a recent sign-in
//! (re-authentication) and ends the account's other browser sessions.

use super::{
    Chrome, FieldErrors, PageError, PageResult, Signed, begin, conn, render, render_status, when,
};
use crate::AppState;
use crate::access::Browser;
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use gatehouse_broker::identity::passkeys::StoredPasskey;
use gatehouse_broker::identity::ssh_keys::SshKey;
use gatehouse_broker::identity::{mfa, passkeys, passwords, recovery, ssh_keys, web_sessions};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/account", get(page))
        .route("/account/reauth", get(reauth_form).post(reauth))
        .route("/account/password", post(password))
        .route("/account/totp", get(totp_form).post(totp_confirm))
        .route("/account/recovery-codes", post(recovery_codes))
        .route("/account/ssh-keys", post(add_ssh_key))
}

/// How long after signing in (or re-authenticating) factors may be changed.
pub const RECENT_MS: i64 = 10 * 60_000;

/// Refuses unless the person proved who they are in the last [`RECENT_MS`].
pub fn require_recent_auth(state: &AppState, b: &Browser) -> Result<(), PageError> {
    if state.clock.now_ms() - b.session.auth_at_ms <= RECENT_MS {
        return Ok(());
    }
    Err(PageError(ApiError::new(
        StatusCode::FORBIDDEN,
        "reauth_required",
        "confirm it is you first (Account → Confirm it's you), then try again",
    )))
}

#[derive(Deserialize, Default)]
struct Flags {
    #[serde(default)]
    setup: Option<String>,
    #[serde(default)]
    recovered: Option<String>,
    #[serde(default)]
    passkey: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    page: Chrome,
    username: String,
    display_name: String,
    has_password: bool,
    totp: bool,
    passkeys: Vec<StoredPasskey>,
    passkeys_on: bool,
    recovery_left: i64,
    ssh_keys: Vec<SshKey>,
    recent: bool,
    errors: FieldErrors,
    ssh_key_value: String,
}

impl AccountPage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
}

async fn account_page(
    state: &AppState,
    s: &Signed,
    errors: FieldErrors,
    flash: Option<String>,
) -> Result<AccountPage, PageError> {
    let mut page = s.chrome(state, "Account", "account").await?;
    page.flash = flash;
    let id = &s.0.identity.id;
    let mut c = conn(state).await?;
    Ok(AccountPage {
        page,
        username: s.0.identity.username.clone(),
        display_name: s.0.identity.display_name.clone(),
        has_password: passwords::stored(&mut c, id).await?.is_some(),
        totp: mfa::has_totp(&mut c, id).await?,
        passkeys: passkeys::of_identity(&mut c, id).await?,
        passkeys_on: state.web.webauthn.is_some(),
        recovery_left: recovery::remaining(&mut c, id).await?,
        ssh_keys: ssh_keys::of_identity(&mut c, id).await?,
        recent: state.clock.now_ms() - s.0.session.auth_at_ms <= RECENT_MS,
        errors,
        ssh_key_value: String::new(),
    })
}

async fn page(State(state): State<AppState>, s: Signed, Query(f): Query<Flags>) -> PageResult {
    // A privileged identity signed in without a second factor can do nothing but set one up
    // (the access layer sends it here): say so, whatever brought it here.
    let must_enrol = s.0.session.mfa_at_ms.is_none()
        && !gatehouse_broker::access::privileges::of(&mut *conn(&state).await?, &s.0.identity.id)
            .await?
            .is_empty();
    if must_enrol {
        let mut page = account_page(&state, &s, FieldErrors::default(), None).await?;
        page.page.alert = Some(
            "Your account holds a privilege (administrator or reviewer): set up a second factor \
             — an authenticator app or a passkey — before anything else. Until then this \
             session can only do that or sign out."
                .to_string(),
        );
        return render(&page);
    }
    let flash = if f.setup.is_some() {
        Some("Welcome. Add a second factor — an authenticator app or a passkey — to protect your account.".to_string())
    } else if f.recovered.is_some() {
        Some(
            "You used a recovery code. Set up a new second factor and new recovery codes."
                .to_string(),
        )
    } else if f.passkey.is_some() {
        Some("Passkey added.".to_string())
    } else {
        f.done.map(|d| match d.as_str() {
            "password" => "Password changed. Your other sessions were signed out.".to_string(),
            "totp" => "Authenticator app set up. Your other sessions were signed out.".to_string(),
            "ssh-key" => "SSH key added.".to_string(),
            "reauth" => "Confirmed. You can change your sign-in factors for the next 10 minutes."
                .to_string(),
            _ => "Done.".to_string(),
        })
    };
    render(&account_page(&state, &s, FieldErrors::default(), flash).await?)
}

#[derive(Template)]
#[template(path = "reauth.html")]
struct ReauthPage {
    page: Chrome,
    totp: bool,
    has_password: bool,
    error: Option<String>,
}

async fn reauth_form(State(state): State<AppState>, s: Signed) -> PageResult {
    let mut c = conn(&state).await?;
    let page = ReauthPage {
        page: s.chrome(&state, "Confirm it's you", "account").await?,
        totp: mfa::has_totp(&mut c, &s.0.identity.id).await?,
        has_password: passwords::stored(&mut c, &s.0.identity.id).await?.is_some(),
        error: None,
    };
    render(&page)
}

#[derive(Deserialize)]
struct ReauthForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

async fn reauth(
    State(state): State<AppState>,
    s: Signed,
    ci: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Form(f): Form<ReauthForm>,
) -> PageResult {
    let id = s.0.identity.id.clone();
    let (stored, totp) = {
        let mut c = conn(&state).await?;
        (
            passwords::stored(&mut c, &id).await?,
            mfa::has_totp(&mut c, &id).await?,
        )
    };
    // Per address and per account, like sign-in.
    if let Err(wait) = state
        .web
        .throttle
        .attempt(super::auth::ip_of(ci), s.username(), false)
    {
        return Err(super::auth::too_many(wait));
    }
    let has_password = stored.is_some();
    let mut ok = has_password && passwords::check(stored, f.password).await;
    let now = state.clock.now_ms();
    let mut tx = begin(&state).await?;
    if ok && totp {
        ok = mfa::check_totp(
            &mut tx,
            now,
            &id,
            s.username(),
            &f.code,
            "web-reauth",
            &state.web.sealing,
        )
        .await?;
    }
    if !ok {
        if let Some(unrecorded) = state.web.throttle.failure_row() {
            web_sessions::sign_in_failed(&mut tx, now, s.username(), "reauth", "", unrecorded)
                .await?;
        }
        tx.commit().await?;
        let page = ReauthPage {
            page: s.chrome(&state, "Confirm it's you", "account").await?,
            totp,
            has_password,
            error: Some("That did not match. Try again.".into()),
        };
        return render_status(StatusCode::UNAUTHORIZED, &page);
    }
    web_sessions::reauthenticated(
        &mut tx,
        now,
        &s.0.session,
        s.username(),
        if totp { "password+totp" } else { "password" },
        totp,
    )
    .await?;
    tx.commit().await?;
    Ok(Redirect::to("/account?done=reauth").into_response())
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm: String,
}

async fn password(
    State(state): State<AppState>,
    s: Signed,
    Form(f): Form<PasswordForm>,
) -> PageResult {
    require_recent_auth(&state, &s.0)?;
    let mut errors = FieldErrors::default();
    if let Err(e) = passwords::validate(s.username(), &f.new_password) {
        errors = FieldErrors::from_error(&e);
    } else if f.new_password != f.confirm {
        errors.add("confirm", "the two passwords differ");
    }
    if !errors.is_empty() {
        return render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &account_page(&state, &s, errors, None).await?,
        );
    }
    let pw = f.new_password;
    let phc = tokio::task::spawn_blocking(move || passwords::hash(&pw))
        .await
        .map_err(|_| {
            PageError(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            ))
        })??;
    let mut tx = begin(&state).await?;
    passwords::set_hash(
        &mut tx,
        &s.actor(),
        state.clock.now_ms(),
        s.username(),
        &phc,
        Some(&s.0.session.id),
    )
    .await?;
    tx.commit().await?;
    Ok(Redirect::to("/account?done=password").into_response())
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage {
    page: Chrome,
    qr_svg: String,
    secret: String,
    error: Option<String>,
}

fn qr_svg(data: &str) -> String {
    use qrcode::render::svg;
    match qrcode::QrCode::with_error_correction_level(data.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => {
            let s = code
                .render::<svg::Color>()
                .min_dimensions(200, 200)
                .dark_color(svg::Color("#000000"))
                .light_color(svg::Color("#ffffff"))
                .build();
            s.find("<svg").map(|i| s[i..].to_string()).unwrap_or(s)
        }
        Err(_) => String::new(),
    }
}

/// Starts (or shows again) a TOTP enrollment: the seed waits, sealed, in the session until a
/// code confirms it.
async fn totp_form(State(state): State<AppState>, s: Signed) -> PageResult {
    require_recent_auth(&state, &s.0)?;
    let (sealed, enrollment) = mfa::new_totp(s.username(), &state.web.sealing)?;
    let show = state.web.sealing.seal(
        serde_json::json!({ "secret": enrollment.secret_base32, "url": enrollment.url })
            .to_string()
            .as_bytes(),
    )?;
    let pending = serde_json::json!({ "kind": "totp", "sealed": sealed, "show": show, "until": state.clock.now_ms() + 10 * 60_000 });
    let mut c = conn(&state).await?;
    web_sessions::set_pending(&mut c, &s.0.session.id, Some(&pending.to_string())).await?;
    render(&TotpPage {
        page: s
            .chrome(&state, "Set up an authenticator app", "account")
            .await?,
        qr_svg: qr_svg(&enrollment.url),
        secret: enrollment.secret_base32,
        error: None,
    })
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

async fn totp_confirm(
    State(state): State<AppState>,
    s: Signed,
    Form(f): Form<CodeForm>,
) -> PageResult {
    require_recent_auth(&state, &s.0)?;
    let pending: serde_json::Value =
        s.0.session
            .pending
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default();
    let now = state.clock.now_ms();
    let Some(sealed) = pending["sealed"]
        .as_str()
        .filter(|_| pending["kind"] == "totp" && pending["until"].as_i64().unwrap_or(0) > now)
    else {
        return Ok(Redirect::to("/account/totp").into_response());
    };
    let mut tx = begin(&state).await?;
    let ok = mfa::activate_totp(
        &mut tx,
        &s.actor(),
        now,
        &s.0.identity.id,
        s.username(),
        sealed,
        &f.code,
        &state.web.sealing,
        Some(&s.0.session.id),
    )
    .await?;
    if !ok {
        tx.rollback().await?;
        // Show the same seed again so the person can retry with their app.
        let show: serde_json::Value = pending["show"]
            .as_str()
            .and_then(|v| state.web.sealing.open(v).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let secret = show["secret"].as_str().unwrap_or_default().to_string();
        let url = show["url"].as_str().unwrap_or_default().to_string();
        return render_status(StatusCode::UNPROCESSABLE_ENTITY, &TotpPage {
            page: s.chrome(&state, "Set up an authenticator app", "account").await?,
            qr_svg: qr_svg(&url),
            secret,
            error: Some("That code did not match. Check the time on your phone and enter the current code.".into()),
        });
    }
    web_sessions::set_pending(&mut tx, &s.0.session.id, None).await?;
    // The code just typed proves the new factor: this session now counts as having passed a
    // second factor (what a privileged identity needs to go on).
    web_sessions::reauthenticated(
        &mut tx,
        now,
        &s.0.session,
        s.username(),
        "totp_enrolled",
        true,
    )
    .await?;
    tx.commit().await?;
    Ok(Redirect::to("/account?done=totp").into_response())
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct CodesPage {
    page: Chrome,
    codes: Vec<String>,
}

async fn recovery_codes(State(state): State<AppState>, s: Signed) -> PageResult {
    require_recent_auth(&state, &s.0)?;
    let mut tx = begin(&state).await?;
    let codes = recovery::generate(
        &mut tx,
        &s.actor(),
        state.clock.now_ms(),
        &s.0.identity.id,
        s.username(),
    )
    .await?;
    tx.commit().await?;
    render(&CodesPage {
        page: s.chrome(&state, "Recovery codes", "account").await?,
        codes,
    })
}

#[derive(Deserialize)]
struct KeyForm {
    #[serde(default)]
    key: String,
}

async fn add_ssh_key(
    State(state): State<AppState>,
    s: Signed,
    Form(f): Form<KeyForm>,
) -> PageResult {
    let mut tx = begin(&state).await?;
    match ssh_keys::add(
        &mut tx,
        &s.actor(),
        state.clock.now_ms(),
        s.username(),
        f.key.trim(),
    )
    .await
    {
        Ok(_) => {
            tx.commit().await?;
            Ok(Redirect::to("/account?done=ssh-key").into_response())
        }
        Err(e) => {
            tx.rollback().await?;
            let mut errors = FieldErrors::default();
            errors.add("key", crate::error::ApiError::from_ref(&e).message);
            let mut p = account_page(&state, &s, errors, None).await?;
            p.ssh_key_value = f.key;
            render_status(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
    }
}
