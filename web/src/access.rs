//! The single access layer. Every route is listed in [`RULES`] with what it requires; a request
//! whose route is not listed is refused (fail closed), so a new route cannot ship without a
//! decision. Identity comes only from a verified bearer token; identity headers sent by clients
//! (`X-Remote-User`, `X-Forwarded-User`, ...) are never read.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_broker::identities::Identity;
use gatehouse_broker::privileges::{self, Privilege};
use gatehouse_broker::tokens;

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone, signed in or not.
    Public,
    /// Any active identity with a valid credential.
    Authenticated,
    /// An identity holding this privilege.
    Privilege(Privilege),
}

/// Every route of the application and its requirement: (method, path pattern, requirement).
pub const RULES: &[(Method, &str, Requirement)] = &[
    (Method::GET, "/healthz", Requirement::Public),
    (Method::GET, "/setup", Requirement::Public),
    (Method::POST, "/setup", Requirement::Public),
    (Method::GET, "/api/v1/whoami", Requirement::Authenticated),
];

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
        .find(|(m, p, _)| m == method && *p == path)
        .map(|(_, _, r)| *r)
}

/// Whether some method of `path` is listed.
fn path_is_listed(path: &str) -> bool {
    RULES.iter().any(|(_, p, _)| *p == path)
}

/// The identity a request was authenticated as, for handlers.
#[derive(Debug, Clone)]
pub struct Principal(pub Identity);

/// The middleware.
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        // No route matched: answer here rather than pass an unchecked request on.
        return crate::error::not_found().await.into_response();
    };
    let Some(rule) = requirement(req.method(), &path) else {
        if path_is_listed(&path) {
            // A known path with a method it does not have: nothing to log.
            return ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed",
            )
            .into_response();
        }
        tracing::error!(method = %req.method(), path, "route has no access rule; refusing");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "you are not allowed to do this",
        )
        .into_response();
    };
    if rule == Requirement::Public {
        return next.run(req).await;
    }
    let bearer = bearer_token(&req).map(str::to_owned);
    let identity = match authenticate(&state, bearer).await {
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    if let Requirement::Privilege(p) = rule {
        let held = match state.store.pool().acquire().await {
            Ok(mut conn) => privileges::has(&mut conn, &identity.id, p).await,
            Err(e) => Err(gatehouse_broker::Error::from(e)),
        };
        match held {
            Ok(true) => {}
            Ok(false) => {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "you are not allowed to do this",
                )
                .into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    req.extensions_mut().insert(Principal(identity));
    next.run(req).await
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
