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

/// Every route of the application: (method, path pattern, requirement, summary). The OpenAPI
/// document is generated from this table, so it cannot list a route the access layer does not.
pub const RULES: &[(Method, &str, Requirement, &str)] = &[
    (
        Method::GET,
        "/healthz",
        PUBLIC,
        "Liveness and database reachability",
    ),
    (Method::GET, "/setup", PUBLIC, "First-run setup form"),
    (
        Method::POST,
        "/setup",
        PUBLIC,
        "Redeem the one-time setup code",
    ),
    (
        Method::GET,
        "/api/v1/openapi.json",
        PUBLIC,
        "This API's OpenAPI 3 document",
    ),
    (
        Method::GET,
        "/api/v1/whoami",
        AUTH,
        "The caller's identity and privileges",
    ),
    // Directory.
    (Method::GET, "/api/v1/identities", ADMIN, "List identities"),
    (
        Method::POST,
        "/api/v1/identities",
        ADMIN,
        "Create an identity",
    ),
    (
        Method::GET,
        "/api/v1/identities/{username}",
        ADMIN,
        "An identity with its groups, assignments and live grants",
    ),
    (
        Method::POST,
        "/api/v1/identities/{username}/status",
        ADMIN,
        "Enable, disable or suspend an identity",
    ),
    (
        Method::POST,
        "/api/v1/identities/{username}/tokens",
        ADMIN,
        "Create an API token for an identity (shown once)",
    ),
    (
        Method::GET,
        "/api/v1/identities/{username}/ssh-keys",
        ADMIN,
        "An identity's SSH public keys",
    ),
    (
        Method::POST,
        "/api/v1/identities/{username}/ssh-keys",
        ADMIN,
        "Register an SSH public key for an identity",
    ),
    (
        Method::GET,
        "/api/v1/me/ssh-keys",
        AUTH,
        "My SSH public keys",
    ),
    (
        Method::POST,
        "/api/v1/me/ssh-keys",
        AUTH,
        "Register one of my SSH public keys",
    ),
    (
        Method::GET,
        "/api/v1/groups",
        ADMIN,
        "List groups with members",
    ),
    (Method::POST, "/api/v1/groups", ADMIN, "Create a group"),
    (
        Method::GET,
        "/api/v1/groups/{name}/members",
        ADMIN,
        "Members of a group",
    ),
    (
        Method::POST,
        "/api/v1/groups/{name}/members",
        ADMIN,
        "Add a member to a group",
    ),
    (
        Method::DELETE,
        "/api/v1/groups/{name}/members/{username}",
        ADMIN,
        "Remove a member from a group",
    ),
    // Access model.
    (Method::GET, "/api/v1/targets", ADMIN, "List targets"),
    (Method::POST, "/api/v1/targets", ADMIN, "Create a target"),
    (Method::GET, "/api/v1/targets/{name}", ADMIN, "A target"),
    (
        Method::PUT,
        "/api/v1/targets/{name}",
        ADMIN,
        "Replace a target's settings",
    ),
    (
        Method::DELETE,
        "/api/v1/targets/{name}",
        ADMIN,
        "Delete a target",
    ),
    (
        Method::GET,
        "/api/v1/roles",
        AUTH,
        "List roles (what can be requested)",
    ),
    (Method::POST, "/api/v1/roles", ADMIN, "Create a role"),
    (Method::GET, "/api/v1/roles/{name}", AUTH, "A role"),
    (
        Method::PUT,
        "/api/v1/roles/{name}",
        ADMIN,
        "Replace a role's settings",
    ),
    (
        Method::DELETE,
        "/api/v1/roles/{name}",
        ADMIN,
        "Delete a role, its assignments and live grants",
    ),
    (
        Method::GET,
        "/api/v1/assignments",
        ADMIN,
        "List role assignments",
    ),
    (
        Method::POST,
        "/api/v1/assignments",
        ADMIN,
        "Assign a role (standing or eligible)",
    ),
    (
        Method::DELETE,
        "/api/v1/assignments/{id}",
        ADMIN,
        "Remove an assignment",
    ),
    (
        Method::GET,
        "/api/v1/sod/rules",
        ADMIN,
        "List segregation-of-duties rules",
    ),
    (
        Method::PUT,
        "/api/v1/sod/rules/{name}",
        ADMIN,
        "Create or replace an SoD rule",
    ),
    (
        Method::DELETE,
        "/api/v1/sod/rules/{name}",
        ADMIN,
        "Delete an SoD rule",
    ),
    (
        Method::POST,
        "/api/v1/sod/exceptions",
        ADMIN,
        "Accept an SoD conflict for one identity until a date",
    ),
    (
        Method::GET,
        "/api/v1/sod/violations",
        ADMIN,
        "Existing SoD violations (detective control)",
    ),
    (
        Method::POST,
        "/api/v1/apply",
        ADMIN,
        "Apply a policy-as-code TOML document (?dry_run=true to plan only)",
    ),
    // Workflow.
    (Method::GET, "/api/v1/requests", AUTH, "My access requests"),
    (
        Method::POST,
        "/api/v1/requests",
        AUTH,
        "Request access (a role, or targets and a login)",
    ),
    (
        Method::GET,
        "/api/v1/requests/all",
        ADMIN,
        "Every access request",
    ),
    (
        Method::POST,
        "/api/v1/requests/{id}/approve",
        AUTH,
        "Approve a request (approvers of its role only)",
    ),
    (
        Method::POST,
        "/api/v1/requests/{id}/deny",
        AUTH,
        "Deny a request (approvers of its role only)",
    ),
    (
        Method::POST,
        "/api/v1/requests/{id}/cancel",
        AUTH,
        "Cancel my pending request",
    ),
    (
        Method::GET,
        "/api/v1/approvals",
        AUTH,
        "Requests I may decide",
    ),
    (
        Method::GET,
        "/api/v1/grants",
        AUTH,
        "My live and scheduled grants",
    ),
    (
        Method::GET,
        "/api/v1/grants/all",
        ADMIN,
        "Grants, newest first (?identity=)",
    ),
    (
        Method::POST,
        "/api/v1/grants/{id}/revoke",
        ADMIN,
        "Revoke a grant now",
    ),
    (
        Method::POST,
        "/api/v1/authorize",
        ADMIN,
        "What-if: explain a decision without changing anything",
    ),
    (
        Method::GET,
        "/api/v1/reviews",
        ADMIN,
        "Open review items (?all=true for closed ones too)",
    ),
    (
        Method::POST,
        "/api/v1/reviews/{id}/close",
        ADMIN,
        "Close a review item with an outcome",
    ),
    (
        Method::GET,
        "/api/v1/audit",
        ADMIN,
        "Audit events with filters, newest first",
    ),
    // Sessions.
    (
        Method::GET,
        "/api/v1/sessions",
        ADMIN,
        "Sessions through the gateways with filters (identity, target, live), newest first",
    ),
    (
        Method::GET,
        "/api/v1/ssh/user-ca",
        PUBLIC,
        "The SSH user CA public key targets trust (sshd TrustedUserCAKeys), as text",
    ),
];

const PUBLIC: Requirement = Requirement::Public;
const AUTH: Requirement = Requirement::Authenticated;
const ADMIN: Requirement = Requirement::Privilege(Privilege::Admin);

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
