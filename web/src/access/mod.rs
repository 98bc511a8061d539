//! The single access layer. Every route is listed in [`RULES`] with what it requires; a request
//! whose route is not listed is refused (fail closed), so a new route cannot ship without a
//! decision. Identity comes only from a verified bearer token; identity headers sent by clients
//! (`X-Remote-User`, `X-Forwarded-User`, ...) are never read.

use crate::AppState;
use crate::cookies::Kind;
use crate::error::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_broker::access::privileges::{self, Privilege};
use gatehouse_broker::identity::identities::Identity;
use gatehouse_broker::identity::tokens;
use gatehouse_broker::identity::web_sessions::{self, Stage, WebSession};

mod rules;
pub use rules::RULES;

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone, signed in or not.
    Public,
    /// Any active identity with a valid credential.
    Authenticated,
    /// A browser that has passed the password step and not yet the second factor (or has).
    SecondFactor,
    /// An identity holding this privilege.
    Privilege(Privilege),
    /// A SCIM client's bearer token (`gatehouse scim client add`); never a session cookie or an
    /// identity's API token.
    ScimClient,
}

/// Routes whose state-changing requests carry their own credential in the body and use no
/// cookie, so cross-site forgery gains nothing.
const CSRF_EXEMPT: &[&str] = &["/setup"];

/// The requirement for a matched route, if it is listed. HEAD is answered by GET handlers, so
/// it has GET's requirement.
pub fn requirement(method: &Method, path: &str) -> Option<Requirement> {
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    RULES
        .iter()
        .find(|(m, p, _, _)| m == method && *p == path)
        .map(|(_, _, r, _)| *r)
}

/// Whether some method of `path` is listed.
fn path_is_listed(path: &str) -> bool {
    RULES.iter().any(|(_, p, _, _)| *p == path)
}

/// The identity a request was authenticated as, for handlers.
#[derive(Debug, Clone)]
pub struct Principal(pub Identity);

/// A browser request's session (set when the request came with a live session cookie).
#[derive(Debug, Clone)]
pub struct Browser {
    pub session: WebSession,
    pub identity: Identity,
}

/// A privileged identity without a second factor: to enrolment (pages) or 403
/// `second_factor_required` (API calls riding on its cookie).
fn enrol_first(api: bool) -> Response {
    if api {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "second_factor_required",
            "this identity holds a privilege: set up a second factor (authenticator app or passkey) at /account first",
        )
        .into_response()
    } else {
        axum::response::Redirect::to("/account?setup=required").into_response()
    }
}

/// Refuses the request in the form its caller reads: JSON under `/api/`, a page elsewhere.
fn refuse(api: bool, e: ApiError) -> Response {
    if api {
        e.into_response()
    } else {
        crate::error::page(e)
    }
}

/// The middleware.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        // No route matched: answer here rather than pass an unchecked request on.
        return crate::error::not_found().await.into_response();
    };
    let api = path.starts_with("/api/");
    if path.starts_with("/scim/") {
        return scim_layer(&state, req, &path, next).await;
    }
    let Some(rule) = requirement(req.method(), &path) else {
        if path_is_listed(&path) {
            // A known path with a method it does not have: nothing to log.
            return refuse(
                api,
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "method not allowed",
                ),
            );
        }
        tracing::error!(method = %req.method(), path, "route has no access rule; refusing");
        return refuse(api, forbidden());
    };
    // One credential per request: a bearer token, or else the browser session cookie.
    let bearer = bearer_token(&req).map(str::to_owned);
    let browser = match bearer {
        Some(_) => None,
        None => match browser_session(&state, req.headers()).await {
            Ok(b) => b,
            Err(e) => return refuse(api, e),
        },
    };
    // Browser requests that change state must prove they come from our own pages: every page
    // form (sign-in included, against login CSRF) and any API call riding on a session cookie.
    // The setup form is exempt: its one-time code in the body is the credential.
    let mut req = if bearer.is_none()
        && crate::csrf::is_unsafe(req.method())
        && (browser.is_some() || !api)
        && !CSRF_EXEMPT.contains(&path.as_str())
    {
        // The token the form was rendered with: the session's once signed in, and on the
        // second-factor pages the half-signed one's; every other page seen before sign-in
        // carries the pre-session cookie's (so the sign-in form still works when a sign-in was
        // left at its second factor).
        let session_token = browser
            .as_ref()
            .filter(|b| {
                b.session.stage == Stage::Active || matches!(rule, Requirement::SecondFactor)
            })
            .map(|b| b.session.csrf.as_str());
        match crate::csrf::check(req, &state.web.cookies, session_token, crate::MAX_BODY).await {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(
                    ?why,
                    path,
                    "state-changing browser request without a valid CSRF token"
                );
                return refuse(
                    api,
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf",
                        "this form has expired or was sent from another site; reload the page and try again",
                    ),
                );
            }
        }
    } else {
        req
    };
    let signed_in = browser
        .as_ref()
        .filter(|b| b.session.stage == Stage::Active)
        .cloned();
    match rule {
        Requirement::Public => {
            if let Some(b) = signed_in {
                req.extensions_mut().insert(Principal(b.identity.clone()));
                req.extensions_mut().insert(b);
            }
            return next.run(req).await;
        }
        Requirement::SecondFactor => {
            return match browser {
                Some(b) => {
                    req.extensions_mut().insert(b);
                    next.run(req).await
                }
                None => to_sign_in(api, &req),
            };
        }
        Requirement::Authenticated | Requirement::Privilege(_) => {}
        // Only /scim/ paths carry it, and those never get here.
        Requirement::ScimClient => return refuse(api, forbidden()),
    }
    let identity = match (&bearer, &signed_in) {
        (Some(_), _) => match authenticate(&state, bearer).await {
            Ok(identity) => identity,
            Err(e) => return refuse(api, e),
        },
        (None, Some(b)) => b.identity.clone(),
        (None, None) => return to_sign_in(api, &req),
    };
    // A privileged identity signed in with a password alone (no second factor) may only set
    // one up: its session is good for nothing else until it has. (`signed_in` is only ever a
    // cookie's session: a request with a bearer token has none.)
    if let Some(b) = signed_in.as_ref().filter(|b| b.session.mfa_at_ms.is_none())
        && !rules::ENROLMENT.iter().any(|(m, p)| {
            (m == req.method() || (m == Method::GET && req.method() == Method::HEAD)) && *p == path
        })
    {
        let held = match state.store.pool().acquire().await {
            Ok(mut conn) => privileges::of(&mut conn, &b.identity.id).await,
            Err(e) => Err(gatehouse_broker::Error::from(e)),
        };
        match held {
            Ok(p) if p.is_empty() => {}
            Ok(_) => return enrol_first(api),
            Err(e) => return refuse(api, ApiError::from(e)),
        }
    }
    if let Requirement::Privilege(p) = rule {
        let held = match state.store.pool().acquire().await {
            Ok(mut conn) => privileges::has(&mut conn, &identity.id, p).await,
            Err(e) => Err(gatehouse_broker::Error::from(e)),
        };
        match held {
            Ok(true) => {}
            Ok(false) => return refuse(api, forbidden()),
            Err(e) => return refuse(api, ApiError::from(e)),
        }
    }
    req.extensions_mut().insert(Principal(identity));
    if let Some(b) = signed_in {
        req.extensions_mut().insert(b);
    }
    next.run(req).await
}

/// SCIM requests: a SCIM client's bearer token and nothing else (no cookie, so no CSRF
/// exposure; no identity token), errors in SCIM form.
async fn scim_layer(state: &AppState, mut req: Request, path: &str, next: Next) -> Response {
    use gatehouse_scim::error::ScimError;
    match requirement(req.method(), path) {
        Some(Requirement::ScimClient) => {}
        Some(_) => {
            tracing::error!(path, "SCIM route with a non-SCIM rule; refusing");
            return crate::scim::error(ScimError::new(403, None, "forbidden"));
        }
        None => {
            return crate::scim::error(ScimError::new(405, None, "method not allowed"));
        }
    }
    let unauthenticated = || {
        crate::scim::error(ScimError::new(
            401,
            None,
            "a SCIM client bearer token is required",
        ))
    };
    let Some(token) = bearer_token(&req).map(str::to_owned) else {
        return unauthenticated();
    };
    let client = match state.store.pool().acquire().await {
        Ok(mut conn) => {
            gatehouse_broker::provisioning::scim::clients::authenticate(&mut conn, &token).await
        }
        Err(e) => Err(gatehouse_broker::Error::from(e)),
    };
    match client {
        Ok(Some(c)) => {
            req.extensions_mut().insert(crate::scim::Client(c));
            next.run(req).await
        }
        Ok(None) => unauthenticated(),
        Err(e) => crate::scim::error(gatehouse_broker::provisioning::scim::to_scim(e)),
    }
}

fn forbidden() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "you are not allowed to do this",
    )
}

/// Unauthenticated: 401 for the API; for pages, the sign-in page, coming back here after.
fn to_sign_in(api: bool, req: &Request) -> Response {
    if api {
        return ApiError::from(gatehouse_broker::Error::Unauthenticated).into_response();
    }
    let back = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| *p != "/")
        .map(|p| {
            format!(
                "?next={}",
                url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
            )
        })
        .unwrap_or_default();
    axum::response::Redirect::to(&format!("/login{back}")).into_response()
}

/// The session behind the request's session cookie, if any is live.
async fn browser_session(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Option<Browser>, ApiError> {
    let Some(cookie) = state.web.cookies.read(headers, Kind::Session) else {
        return Ok(None);
    };
    let mut conn = state
        .store
        .pool()
        .acquire()
        .await
        .map_err(gatehouse_broker::Error::from)?;
    let found =
        web_sessions::lookup(&mut conn, &cookie, state.clock.now_ms(), state.web.timeouts).await?;
    Ok(found.map(|(session, identity)| Browser { session, identity }))
}

/// The token of an `Authorization: Bearer TOKEN` header, if that is what the request carries.
fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authenticate(state: &AppState, bearer: Option<String>) -> Result<Identity, ApiError> {
    let token = bearer.ok_or(gatehouse_broker::Error::Unauthenticated)?;
    let mut conn = state
        .store
        .pool()
        .acquire()
        .await
        .map_err(gatehouse_broker::Error::from)?;
    Ok(tokens::authenticate(&mut conn, &token, state.clock.now_ms()).await?)
}
