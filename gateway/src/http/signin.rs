//! Signing in to an app host and deciding its requests. Without a live app session the browser
//! is sent to the web UI's `/apps/authorize` with a fresh state, kept in a host-only state
//! cookie; the web UI answers at [`CALLBACK`] with a one-time code, redeemed here only with that
//! state, for this app. The app session's cookie is host-only (`__Host-`), so no other app host
//! ever receives it, and [`gatehouse_broker::access::apps::lookup`] finds it only for its own app.

use super::{Body, Shared, plain};
use gatehouse_broker::access::apps::{self, AppSession, Redeemed};
use gatehouse_broker::access::policy::{self, AccessRequest, GrantRef};
use gatehouse_broker::access::targets::Target;
use gatehouse_broker::identity::identities::Identity;
use gatehouse_broker::ledger::audit::{self, NewEvent, Outcome};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, LOCATION, SET_COOKIE};
use hyper::{Request, Response, StatusCode};
use std::net::SocketAddr;

/// Where the web UI returns the browser with its code.
pub const CALLBACK: &str = "/.gatehouse/callback";
/// Signs out of this app (the web UI session stays).
pub const LOGOUT: &str = "/.gatehouse/logout";

/// The app session cookie and the sign-in state cookie (host-only, Secure, HttpOnly).
const SESSION_COOKIE: &str = "__Host-gh_app";
const STATE_COOKIE: &str = "__Host-gh_app_state";

/// Who is behind a request.
#[derive(Debug, Clone)]
pub struct Who {
    pub session: AppSession,
    pub identity: Identity,
    /// The identity's groups (sent to the app in a header and the assertion).
    pub groups: std::sync::Arc<Vec<String>>,
    /// The store generation this was read at (what is made from it is kept at that one).
    pub generation: u64,
}

fn cookie<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The id of the app session this request's cookie names (live or not): the cookie's hash.
pub fn app_session_id(req: &Request<Incoming>) -> Option<String> {
    cookie(req, SESSION_COOKIE)
        .filter(|c| !c.is_empty() && c.len() <= 128)
        .map(gatehouse_broker::secrets::hash)
}

/// The live app session of this request for `target`, if any.
pub async fn session(
    shared: &Shared,
    target: &Target,
    req: &Request<Incoming>,
) -> gatehouse_broker::Result<Option<Who>> {
    let Some(value) = cookie(req, SESSION_COOKIE) else {
        return Ok(None);
    };
    shared
        .reads
        .session(&shared.store, value, &target.id, shared.clock.now_ms())
        .await
}

fn redirect(to: &str) -> Response<Body> {
    let mut r = plain(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        String::new(),
    );
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn set_cookie(r: &mut Response<Body>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(SET_COOKIE, v);
    }
}

fn wants_html(req: &Request<Incoming>) -> bool {
    req.method() == hyper::Method::GET
        && req
            .headers()
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// Not signed in to this app: a browser's page load goes to the web UI to sign in (and comes
/// back to the same path); anything else gets 401.
pub fn to_sign_in(shared: &Shared, target: &Target, req: &Request<Incoming>) -> Response<Body> {
    if !wants_html(req) {
        return plain(
            StatusCode::UNAUTHORIZED,
            "application/json",
            r#"{"error":{"code":"unauthenticated","message":"sign in to this app in a browser first"}}"#.into(),
        );
    }
    let Ok(state) = gatehouse_broker::secrets::generate("") else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "unavailable\n".into(),
        );
    };
    let next = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("app", &target.name)
        .append_pair("state", &state)
        .append_pair("next", &apps::local_path(next))
        .finish();
    let mut r = redirect(&format!(
        "{}/apps/authorize?{q}",
        shared.settings.web_origin.trim_end_matches('/')
    ));
    set_cookie(
        &mut r,
        &format!("{STATE_COOKIE}={state}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=300"),
    );
    r
}

/// The web UI's return: redeems the code with this browser's state, for this app only.
pub async fn callback(shared: &Shared, target: &Target, req: &Request<Incoming>) -> Response<Body> {
    let code = url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let state = cookie(req, STATE_COOKIE).unwrap_or_default().to_string();
    let now = shared.clock.now_ms();
    let redeemed = async {
        let mut tx = shared.store.begin().await?;
        let r = apps::redeem_code(&mut tx, now, &code, target, &state).await;
        tx.settle(&r).await?;
        r
    }
    .await;
    match redeemed {
        Ok(Redeemed::Session { cookie, next, .. }) => {
            let mut r = redirect(&next);
            set_cookie(
                &mut r,
                &format!(
                    "{SESSION_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax",
                    cookie.expose()
                ),
            );
            set_cookie(
                &mut r,
                &format!("{STATE_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"),
            );
            r
        }
        Ok(Redeemed::Refused(why)) => {
            tracing::info!(app = %target.name, why, "app gateway: sign-in callback refused");
            page(
                StatusCode::FORBIDDEN,
                "Sign-in did not complete",
                "This sign-in link was already used, has expired, or was started in another browser. Open the app again to sign in.",
                None,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "app gateway: cannot redeem a sign-in code");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                "unavailable\n".into(),
            )
        }
    }
}

/// Signs this browser out of this app (the web UI session stays).
pub async fn logout(shared: &Shared, target: &Target, req: &Request<Incoming>) -> Response<Body> {
    if let Ok(Some(who)) = session(shared, target, req).await {
        super::record::end(shared, &who.session.id, "logout").await;
        let ended = async {
            let mut tx = shared.store.begin().await?;
            apps::end(
                &mut tx,
                shared.clock.now_ms(),
                &who.session,
                &who.identity.username,
                "logout",
            )
            .await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = ended {
            tracing::error!(error = %e, "app gateway: cannot end an app session");
        }
    }
    let mut r = page(
        StatusCode::OK,
        "Signed out of this app",
        "You are signed out of this app. Your Gatehouse sign-in is unchanged.",
        None,
    );
    set_cookie(
        &mut r,
        &format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    r
}

/// Decides one request with the broker's `decide` (protocol `http`); a denial is audited as
/// `authorize` (allowed requests are not: the app session's start and end are). Any error
/// while deciding is a deny.
pub async fn decide(
    shared: &Shared,
    target: &Target,
    who: &Who,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Option<(GrantRef, AccessRequest)> {
    let now = shared.clock.now_ms();
    let catalog = shared
        .reads
        .catalog(&shared.store, &shared.cache, now)
        .await
        .ok()?;
    let request = AccessRequest {
        identity: who.identity.username.clone(),
        protocol: "http".into(),
        target: target.name.clone(),
        login: None,
        source_ip: Some(peer.ip()),
        mfa_at_ms: who.session.mfa_at_ms,
        reason: None,
        ticket: None,
        http: Some(policy::decide::HttpFacts {
            method: req.method().as_str().to_string(),
            path: req.uri().path().to_string(),
        }),
    };
    let d = policy::decide(&catalog, &request, now);
    if d.allow {
        return d.grant.map(|g| (g, request));
    }
    let recorded = async {
        let mut tx = shared.store.begin().await?;
        audit::append(
            &mut tx,
            now,
            NewEvent::new(
                format!("identity:{}", who.identity.username),
                "authorize",
                format!("target:{}", target.name),
            )
            .outcome(Outcome::Deny)
            .details(serde_json::json!({
                "protocol": "http", "source_ip": peer.ip().to_string(),
                "method": req.method().as_str(), "path": req.uri().path(),
                "reasons": d.reasons,
            })),
        )
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "app gateway: cannot audit a denial");
    }
    None
}

/// The answer to a denied request: for a browser, a page saying so with a link to request
/// access to this app; for anything else, 403 JSON.
pub fn denied(shared: &Shared, target: &Target, req: &Request<Incoming>) -> Response<Body> {
    if !wants_html(req) {
        return plain(
            StatusCode::FORBIDDEN,
            "application/json",
            format!(
                r#"{{"error":{{"code":"forbidden","message":"you have no access to {} now"}}}}"#,
                target.name
            ),
        );
    }
    let request = format!(
        "{}/requests/new?target={}",
        shared.settings.web_origin.trim_end_matches('/'),
        url::form_urlencoded::byte_serialize(target.name.as_bytes()).collect::<String>()
    );
    page(
        StatusCode::FORBIDDEN,
        "No access to this app now",
        &format!(
            "You are signed in, but you hold no live access to {} at the moment.",
            target.name
        ),
        Some(("Request access", &request)),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A small page of Gatehouse's own (no script; the CSP allows none).
fn page(
    status: StatusCode,
    title: &str,
    text: &str,
    action: Option<(&str, &str)>,
) -> Response<Body> {
    let button = action
        .map(|(label, href)| {
            format!(
                r#"<p><a class="button" id="request-access" href="{}">{}</a></p>"#,
                escape(href),
                escape(label)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} — Gatehouse</title><style>body{{font-family:system-ui,sans-serif;\
         max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1b1f24}}\
         a.button{{display:inline-block;background:#1f5fbf;color:#fff;padding:.6rem 1rem;\
         border-radius:6px;text-decoration:none}}</style></head><body><h1>{t}</h1><p>{x}</p>\
         {button}</body></html>",
        t = escape(title),
        x = escape(text),
    );
    let mut r = plain(status, "text/html; charset=utf-8", body);
    r.headers_mut().insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    r
}
