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
use gatehouse_broker::identities::Identity;
use gatehouse_broker::privileges::{self, Privilege};
use gatehouse_broker::tokens;
use gatehouse_broker::web_sessions::{self, Stage, WebSession};

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
    // Browser pages (the web UI). Forms that change state also pass the CSRF check.
    (
        Method::GET,
        "/assets/{file}",
        PUBLIC,
        "Stylesheet, scripts and the replay player",
    ),
    (Method::GET, "/login", PUBLIC, "Sign-in page"),
    (
        Method::GET,
        "/login/oidc",
        PUBLIC,
        "Start single sign-on at the OpenID provider",
    ),
    (
        Method::GET,
        "/login/oidc/callback",
        PUBLIC,
        "Finish single sign-on (code, state)",
    ),
    (
        Method::POST,
        "/login",
        PUBLIC,
        "Sign in with username and password",
    ),
    (
        Method::POST,
        "/login/passkey/start",
        PUBLIC,
        "Start a passkey sign-in",
    ),
    (
        Method::POST,
        "/login/passkey/finish",
        PUBLIC,
        "Finish a passkey sign-in",
    ),
    (
        Method::GET,
        "/login/second-factor",
        SECOND,
        "Second-factor page",
    ),
    (
        Method::POST,
        "/login/second-factor",
        SECOND,
        "Check a TOTP or recovery code",
    ),
    (
        Method::POST,
        "/login/second-factor/passkey/start",
        SECOND,
        "Start a passkey second factor",
    ),
    (
        Method::POST,
        "/login/second-factor/passkey/finish",
        SECOND,
        "Finish a passkey second factor",
    ),
    (Method::POST, "/logout", SECOND, "Sign out"),
    (Method::GET, "/", AUTH, "My access"),
    (Method::GET, "/requests", AUTH, "My requests"),
    (Method::GET, "/requests/new", AUTH, "Request access form"),
    (
        Method::POST,
        "/requests/new",
        AUTH,
        "Send an access request",
    ),
    (Method::GET, "/approvals", AUTH, "My approval queue"),
    (
        Method::POST,
        "/approvals/{id}/approve",
        AUTH,
        "Approve a request",
    ),
    (Method::POST, "/approvals/{id}/deny", AUTH, "Deny a request"),
    (
        Method::POST,
        "/approvals/keep/{id}",
        AUTH,
        "As the person's manager, keep access in its HR grace period",
    ),
    (
        Method::GET,
        "/account",
        AUTH,
        "My account and sign-in factors",
    ),
    (Method::GET, "/account/reauth", AUTH, "Confirm it is you"),
    (Method::POST, "/account/reauth", AUTH, "Re-authenticate"),
    (
        Method::POST,
        "/account/password",
        AUTH,
        "Change my password",
    ),
    (
        Method::GET,
        "/account/totp",
        AUTH,
        "Start authenticator app enrollment",
    ),
    (
        Method::POST,
        "/account/totp",
        AUTH,
        "Confirm authenticator app enrollment",
    ),
    (
        Method::POST,
        "/account/recovery-codes",
        AUTH,
        "Make new recovery codes",
    ),
    (
        Method::POST,
        "/account/ssh-keys",
        AUTH,
        "Add one of my SSH public keys",
    ),
    (
        Method::POST,
        "/account/passkeys/start",
        AUTH,
        "Start registering a passkey",
    ),
    (
        Method::POST,
        "/account/passkeys/finish",
        AUTH,
        "Finish registering a passkey",
    ),
    (
        Method::GET,
        "/audit",
        REVIEWER,
        "Audit log viewer with filters",
    ),
    (
        Method::GET,
        "/admin",
        ADMIN,
        "Administration: what exists, policy as code",
    ),
    (
        Method::POST,
        "/admin/apply",
        ADMIN,
        "Dry-run or apply a policy document",
    ),
    (
        Method::POST,
        "/admin/identities/{username}/status",
        ADMIN,
        "Enable or disable an identity",
    ),
    (
        Method::GET,
        "/sessions",
        REVIEWER,
        "Sessions, with filters and full-text search",
    ),
    (
        Method::GET,
        "/sessions/{id}",
        REVIEWER,
        "Replay a session, with its command timeline",
    ),
    (
        Method::GET,
        "/sessions/{id}/cast",
        REVIEWER,
        "A session's recording (asciicast v2)",
    ),
    (
        Method::GET,
        "/sessions/{id}/manifest.json",
        REVIEWER,
        "A recording's manifest",
    ),
    (
        Method::GET,
        "/sessions/{id}/manifest.sig",
        REVIEWER,
        "A recording manifest's signature",
    ),
    (
        Method::GET,
        "/sessions/{id}/live",
        REVIEWER,
        "Watch a live session (websocket)",
    ),
    (
        Method::POST,
        "/sessions/{id}/terminate",
        REVIEWER,
        "End a live session now",
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
        Method::POST,
        "/api/v1/identities/{username}/password",
        ADMIN,
        "Set an identity's web sign-in password",
    ),
    (
        Method::POST,
        "/api/v1/identities/{username}/privileges",
        ADMIN,
        "Grant a privilege (admin, reviewer)",
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
        Method::POST,
        "/api/v1/assignments/{id}/keep",
        AUTH,
        "As the person's manager, keep access in its HR grace period",
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
    // SCIM 2.0 service provider (RFC 7644), for identity providers and HR systems.
    (
        Method::GET,
        "/scim/v2/ServiceProviderConfig",
        SCIM,
        "SCIM service provider configuration",
    ),
    (
        Method::GET,
        "/scim/v2/ResourceTypes",
        SCIM,
        "SCIM resource types",
    ),
    (
        Method::GET,
        "/scim/v2/ResourceTypes/{id}",
        SCIM,
        "One SCIM resource type",
    ),
    (Method::GET, "/scim/v2/Schemas", SCIM, "SCIM schemas"),
    (
        Method::GET,
        "/scim/v2/Schemas/{id}",
        SCIM,
        "One SCIM schema",
    ),
    (
        Method::GET,
        "/scim/v2/Users",
        SCIM,
        "List or filter SCIM Users",
    ),
    (
        Method::POST,
        "/scim/v2/Users",
        SCIM,
        "Provision a User (an identity)",
    ),
    (Method::POST, "/scim/v2/Users/.search", SCIM, "Search Users"),
    (Method::GET, "/scim/v2/Users/{id}", SCIM, "Read a User"),
    (Method::PUT, "/scim/v2/Users/{id}", SCIM, "Replace a User"),
    (
        Method::PATCH,
        "/scim/v2/Users/{id}",
        SCIM,
        "Modify a User (active=false is a leaver)",
    ),
    (
        Method::DELETE,
        "/scim/v2/Users/{id}",
        SCIM,
        "Deprovision a User (a leaver)",
    ),
    (
        Method::GET,
        "/scim/v2/Groups",
        SCIM,
        "List or filter SCIM Groups",
    ),
    (Method::POST, "/scim/v2/Groups", SCIM, "Provision a Group"),
    (
        Method::POST,
        "/scim/v2/Groups/.search",
        SCIM,
        "Search Groups",
    ),
    (Method::GET, "/scim/v2/Groups/{id}", SCIM, "Read a Group"),
    (Method::PUT, "/scim/v2/Groups/{id}", SCIM, "Replace a Group"),
    (
        Method::PATCH,
        "/scim/v2/Groups/{id}",
        SCIM,
        "Modify a Group",
    ),
    (
        Method::DELETE,
        "/scim/v2/Groups/{id}",
        SCIM,
        "Delete a Group",
    ),
    (
        Method::POST,
        "/scim/v2/.search",
        SCIM,
        "Search Users and Groups",
    ),
    (Method::POST, "/scim/v2/Bulk", SCIM, "SCIM Bulk operations"),
    (
        Method::GET,
        "/scim/v2/{*rest}",
        SCIM,
        "Unknown SCIM endpoint (404)",
    ),
    (
        Method::POST,
        "/scim/v2/{*rest}",
        SCIM,
        "Unknown SCIM endpoint (404)",
    ),
    (
        Method::PUT,
        "/scim/v2/{*rest}",
        SCIM,
        "Unknown SCIM endpoint (404)",
    ),
    (
        Method::PATCH,
        "/scim/v2/{*rest}",
        SCIM,
        "Unknown SCIM endpoint (404)",
    ),
    (
        Method::DELETE,
        "/scim/v2/{*rest}",
        SCIM,
        "Unknown SCIM endpoint (404)",
    ),
];

/// Routes whose state-changing requests carry their own credential in the body and use no
/// cookie, so cross-site forgery gains nothing.
const CSRF_EXEMPT: &[&str] = &["/setup"];

const PUBLIC: Requirement = Requirement::Public;
const SCIM: Requirement = Requirement::ScimClient;
const AUTH: Requirement = Requirement::Authenticated;
const SECOND: Requirement = Requirement::SecondFactor;
const ADMIN: Requirement = Requirement::Privilege(Privilege::Admin);
const REVIEWER: Requirement = Requirement::Privilege(Privilege::Reviewer);

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
        match crate::csrf::check(
            req,
            &state.web.cookies,
            browser.as_ref().map(|b| b.session.csrf.as_str()),
            crate::MAX_BODY,
        )
        .await
        {
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
        Ok(mut conn) => gatehouse_broker::scim::clients::authenticate(&mut conn, &token).await,
        Err(e) => Err(gatehouse_broker::Error::from(e)),
    };
    match client {
        Ok(Some(c)) => {
            req.extensions_mut().insert(crate::scim::Client(c));
            next.run(req).await
        }
        Ok(None) => unauthenticated(),
        Err(e) => crate::scim::error(gatehouse_broker::scim::to_scim(e)),
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
