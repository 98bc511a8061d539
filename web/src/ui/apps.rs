//! The web UI's half of the app gateway's sign-in hand-off: `/apps/authorize` gives a signed-in
//! browser a one-time code for an app and sends it back to the app host's callback, and
//! `/.well-known/jwks.json` publishes the key the app assertions are signed with.

use super::{PageError, PageResult, Signed, begin, conn};
use crate::error::ApiError;
use crate::{AppState, AppsWeb};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_broker::access::apps;
use gatehouse_broker::access::targets::{self, Kind};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/apps/authorize", get(authorize))
        .route("/.well-known/jwks.json", get(jwks))
}

/// What the app host sends the browser here with.
#[derive(Deserialize)]
struct Authorize {
    app: Option<String>,
    /// The value the app host keeps in its own state cookie; the code is bound to it.
    state: Option<String>,
    /// Where to go on the app host afterwards (a local path; the code keeps it).
    next: Option<String>,
}

/// The same answer for apps off, an unknown name and a target that is not an app: it names
/// nothing about which targets exist.
fn no_app() -> PageError {
    PageError(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such app",
    ))
}

/// `GET /apps/authorize?app=NAME&state=STATE&next=PATH`. The access layer has let only a
/// signed-in browser (session `active`, and a second factor where the identity's privileges
/// need one) or a valid API token through; anyone else went to sign-in and comes back here.
///
/// Whether this person may use the app is not decided here: the code only carries who they are
/// to the app host, and the app gateway decides every request there (and shows the denial page
/// with Request access), so a code says nothing about access.
async fn authorize(
    State(state): State<AppState>,
    method: axum::http::Method,
    signed: Option<Signed>,
    query: Result<Query<Authorize>, QueryRejection>,
) -> PageResult {
    let Some(web_apps) = state.web.apps.as_ref() else {
        return Err(no_app());
    };
    // HEAD is answered by this GET handler: it issues nothing (its answer would lose the code).
    if method == axum::http::Method::HEAD {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // An app session lives with a browser session (it ends when that one does), so an API
    // token, which the access layer accepts on Authenticated routes, never gets a code.
    let Some(Signed(browser)) = signed else {
        return Err(PageError(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "browser_required",
            "apps are opened from a signed-in browser, not with an API token",
        )));
    };
    let Ok(Query(q)) = query else {
        return Err(PageError(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the app's sign-in request is malformed",
        )));
    };
    let name = q.app.unwrap_or_default();
    let target = {
        let mut c = conn(&state).await?;
        targets::by_name(&mut c, &name).await?
    }
    .filter(|t| t.kind == Kind::Http)
    .ok_or_else(no_app)?;
    // A host of its own that the app gateway serves to nobody (under the apps domain, or
    // claimed by two apps) gets no code: it would be carried to a host that is not this app's.
    if let Some(own) = target.app.host.as_deref() {
        let domain = web_apps.domain.trim_matches('.').to_ascii_lowercase();
        let own = own.to_ascii_lowercase();
        let claims = {
            let mut c = conn(&state).await?;
            targets::list(&mut c)
                .await?
                .iter()
                .filter(|t| t.kind == Kind::Http)
                .filter(|t| {
                    t.app
                        .host
                        .as_deref()
                        .is_some_and(|h| h.eq_ignore_ascii_case(&own))
                })
                .count()
        };
        if own == domain || own.ends_with(&format!(".{domain}")) || claims > 1 {
            return Err(no_app());
        }
    }
    let now = state.clock.now_ms();
    let mut tx = begin(&state).await?;
    // A missing or malformed state is `Invalid` here: 400.
    let code = apps::issue_code(
        &mut tx,
        now,
        &browser.identity,
        &browser.session.id,
        &target,
        q.state.as_deref().unwrap_or_default(),
        q.next.as_deref().unwrap_or("/"),
    )
    .await?;
    tx.commit().await?;
    let to = callback(web_apps, &target, code.expose())?;
    // The code is in the Location: the response is `no-store` and the referrer policy is
    // `same-origin` (the security headers), so it goes to the app host alone.
    Ok(Redirect::to(to.as_str()).into_response())
}

/// The host (and port unless 443) app `name` is served at: its own `host`, else
/// `NAME.DOMAIN`.
fn app_authority(name: &str, own_host: Option<&str>, apps: &AppsWeb) -> String {
    let host = match own_host {
        Some(h) => h.to_string(),
        None => format!("{name}.{}", apps.domain),
    };
    if apps.port == 443 {
        host
    } else {
        format!("{host}:{}", apps.port)
    }
}

/// `https://HOST[:PORT]/` (see [`app_authority`]): where app `name` is opened.
pub fn app_origin(name: &str, own_host: Option<&str>, apps: &AppsWeb) -> String {
    format!("https://{}/", app_authority(name, own_host, apps))
}

/// `https://HOST[:PORT]/.gatehouse/callback?code=CODE` (see [`app_authority`]).
fn callback(apps: &AppsWeb, target: &targets::Target, code: &str) -> Result<url::Url, PageError> {
    let name = target.name.as_str();
    let host = app_authority(name, target.app.host.as_deref(), apps);
    let mut url = url::Url::parse(&format!("https://{host}/.gatehouse/callback")).map_err(|e| {
        tracing::error!(app = name, domain = apps.domain, error = %e, "no app host URL");
        PageError(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        ))
    })?;
    url.query_pairs_mut().append_pair("code", code);
    Ok(url)
}

/// `GET /.well-known/jwks.json`: the public key app assertions verify against.
async fn jwks(State(state): State<AppState>) -> Response {
    match &state.web.apps {
        None => crate::error::not_found().await.into_response(),
        Some(a) => (
            [(header::CACHE_CONTROL, "public, max-age=300")],
            Json(apps::jwks(&a.assertion_key)),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(port: u16) -> AppsWeb {
        AppsWeb {
            domain: "apps.example.com".into(),
            port,
            assertion_key: "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
                .parse()
                .unwrap(),
        }
    }

    fn app(name: &str, host: Option<&str>) -> targets::Target {
        targets::Target {
            id: "t1".into(),
            name: name.into(),
            kind: Kind::Http,
            address: "http://127.0.0.1:3000".into(),
            labels: Default::default(),
            host_key: None,
            description: String::new(),
            owner: None,
            source: "api".into(),
            app: targets::AppSettings {
                host: host.map(str::to_owned),
                ..Default::default()
            },
        }
    }

    #[test]
    fn callbacks_name_the_app_host_and_encode_the_code() {
        let grafana = app("grafana", None);
        let u = callback(&web(443), &grafana, "ghac_a+b/c=").unwrap();
        assert_eq!(
            u.as_str(),
            "https://grafana.apps.example.com/.gatehouse/callback?code=ghac_a%2Bb%2Fc%3D"
        );
        let u = callback(&web(8443), &grafana, "ghac_x").unwrap();
        assert_eq!(
            u.as_str(),
            "https://grafana.apps.example.com:8443/.gatehouse/callback?code=ghac_x"
        );
        // An app with a host of its own is returned to there.
        let own = app("jenkins", Some("ci.corp.example"));
        let u = callback(&web(443), &own, "ghac_y").unwrap();
        assert_eq!(
            u.as_str(),
            "https://ci.corp.example/.gatehouse/callback?code=ghac_y"
        );
        assert_eq!(
            app_origin("jenkins", Some("ci.corp.example"), &web(8443)),
            "https://ci.corp.example:8443/"
        );
    }
}
