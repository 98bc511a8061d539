//! The server-rendered web UI: sign-in, the requester's, approver's and reviewer's pages, the
//! account's factors. Handlers render askama templates; the access layer has already
//! authenticated the browser and checked CSRF for every form that changes state.

mod account;
mod admin;
mod app_replay;
mod approvals;
mod apps;
mod assets;
mod audit;
mod auth;
mod compliance;
mod findings;
mod home;
pub mod oidc;
mod passkeys;
mod requests;
mod reviews;
mod sessions;

use crate::AppState;
use crate::access::Browser;
use crate::cookies::Kind;
use crate::error::ApiError;
use axum::Router;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use gatehouse_broker::access::privileges::{self, Privilege};
use gatehouse_broker::{Actor, Error, Tx};
use sqlx::pool::PoolConnection;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(assets::routes())
        .merge(auth::routes())
        .route("/login/oidc", axum::routing::get(oidc::start))
        .route("/login/oidc/callback", axum::routing::get(oidc::callback))
        .merge(passkeys::routes())
        .merge(home::routes())
        .merge(requests::routes())
        .merge(approvals::routes())
        .merge(account::routes())
        .merge(sessions::routes())
        .merge(admin::routes())
        .merge(audit::routes())
        .merge(findings::routes())
        .merge(compliance::routes())
        .merge(reviews::routes())
        .merge(apps::routes())
}

/// A page's frame: title, who is signed in, the CSRF token, what the navigation highlights.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub title: String,
    pub user: Option<String>,
    pub csrf: String,
    pub reviewer: bool,
    pub admin: bool,
    pub nav: &'static str,
    /// A success banner (green); its words come from code, never from the request.
    pub flash: Option<String>,
    /// An error banner (red), same rule.
    pub alert: Option<String>,
}

/// A signed-in browser, for page handlers (set by the access layer; without it the request is
/// sent to the sign-in page).
#[derive(Debug, Clone)]
pub struct Signed(pub Browser);

impl<S: Send + Sync> FromRequestParts<S> for Signed {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<Browser>()
            .cloned()
            .map(Signed)
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Signed {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Browser>().cloned().map(Signed))
    }
}

impl Signed {
    pub fn username(&self) -> &str {
        &self.0.identity.username
    }

    pub fn actor(&self) -> Actor {
        Actor::identity(self.0.identity.username.clone())
    }

    /// The frame of a page for this person.
    pub async fn chrome(
        &self,
        state: &AppState,
        title: &str,
        nav: &'static str,
    ) -> Result<Chrome, PageError> {
        let mut conn = conn(state).await?;
        let id = &self.0.identity.id;
        Ok(Chrome {
            title: title.into(),
            user: Some(self.0.identity.username.clone()),
            csrf: self.0.session.csrf.clone(),
            reviewer: privileges::has(&mut conn, id, Privilege::Reviewer).await?,
            admin: privileges::has(&mut conn, id, Privilege::Admin).await?,
            nav,
            flash: None,
            alert: None,
        })
    }
}

/// An error on a page route: rendered as a page with the API's status and code.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        PageError(ApiError::from(e))
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "template rendering failed");
        PageError(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        ))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        crate::error::page(self.0)
    }
}

pub type PageResult = Result<Response, PageError>;

/// Renders a template as a 200 page.
pub fn render(t: &impl askama::Template) -> PageResult {
    Ok(Html(t.render()?).into_response())
}

/// Renders a template with a status (a form with errors is 422, so tools see the failure).
pub fn render_status(status: StatusCode, t: &impl askama::Template) -> PageResult {
    Ok((status, Html(t.render()?)).into_response())
}

pub(crate) async fn conn(state: &AppState) -> Result<PoolConnection<sqlx::Any>, PageError> {
    Ok(state.store.pool().acquire().await.map_err(Error::from)?)
}

pub(crate) async fn begin(state: &AppState) -> Result<Tx, PageError> {
    Ok(state.store.begin().await?)
}

/// The field a broker `Invalid("field: message")` error is about, and its message.
pub fn field_error(e: &Error) -> Option<(String, String)> {
    match e {
        Error::Invalid(m) => m
            .split_once(": ")
            .filter(|(f, _)| !f.contains(' '))
            .map(|(f, msg)| (f.to_string(), msg.to_string())),
        _ => None,
    }
}

/// Form errors by field, for templates (`errors.get("duration")`).
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Files a broker error under its field, or under `form` when it has none.
    pub fn from_error(e: &Error) -> Self {
        let mut me = Self::default();
        match field_error(e) {
            Some((f, m)) => me.add(&f, m),
            None => me.add("form", ApiError::from_ref(e).message),
        }
        me
    }
}

/// The pre-session CSRF token of a browser, and the cookie to set when it has none yet.
pub fn pre_session_csrf(
    state: &AppState,
    headers: &HeaderMap,
) -> (
    String,
    Option<(header::HeaderName, axum::http::HeaderValue)>,
) {
    match state.web.cookies.read(headers, Kind::Csrf) {
        Some(t) => (t, None),
        None => {
            let t = gatehouse_broker::secrets::generate("").unwrap_or_default();
            let c = state.web.cookies.set(Kind::Csrf, &t, None);
            (t, Some((header::SET_COOKIE, c)))
        }
    }
}

/// Formats epoch milliseconds as UTC for pages.
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Formats a duration in milliseconds as "1h 30m".
pub fn span(ms: i64) -> String {
    let m = (ms.max(0) + 59_999) / 60_000;
    match (m / 60, m % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// A day typed in a filter (`YYYY-MM-DD`, UTC) as epoch milliseconds: its start, or with `end`
/// the start of the next day (so the day is included). Empty: no bound.
pub fn day_bound(s: &str, end: bool) -> Result<Option<i64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a date like 2026-11-26"))?;
    let d = if end { d.succ_opt().unwrap_or(d) } else { d };
    Ok(d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis()))
}

/// A local path to go back to after sign-in (never another site).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        // Visible ASCII only: browsers drop tabs and line breaks from a URL, so "/\t/evil"
        // would become "//evil", another site; a backslash reads as a slash.
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_next_never_leaves_this_site() {
        assert_eq!(safe_next(Some("/approvals")), "/approvals");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        // Browsers remove tabs and line breaks from URLs: each of these would be "//evil.example".
        for sneaky in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/ /evil",
        ] {
            assert_eq!(safe_next(Some(sneaky)), "/", "{sneaky:?}");
        }
        assert_eq!(safe_next(Some("/sessions?q=a%20b")), "/sessions?q=a%20b");
        assert_eq!(safe_next(None), "/");
        assert_eq!(span(90 * 60_000), "1h 30m");
        assert_eq!(span(3_600_000), "1h");
    }
}
