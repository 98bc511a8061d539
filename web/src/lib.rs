//! The Gatehouse control plane over HTTP: health, first-run setup and the REST API under
//! `/api/v1`. Every request passes through one access layer ([`access`]) that decides, from a
//! single table of routes, whether it needs no credential, any valid identity, or a privilege.

pub mod access;
mod api;
pub mod cookies;
pub mod csrf;
pub mod directory;
pub mod error;
mod headers;
mod health;
pub mod scim;

/// Single sign-on settings (`[oidc]`).
pub use ui::oidc::Oidc as OidcSettings;
mod setup;
pub mod throttle;
pub mod tls;
mod ui;

use axum::Router;
use gatehouse_broker::identity::web_sessions;
use gatehouse_broker::sealing::SealingKey;
use gatehouse_broker::{SharedClock, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub clock: SharedClock,
    /// The decision cache (`authorize`).
    pub cache: gatehouse_broker::access::policy::CatalogCache,
    /// The SSH user CA's public key line, when the SSH gateway runs beside the API.
    pub ssh_user_ca: Option<String>,
    /// What the browser side needs.
    pub web: Arc<WebConfig>,
}

/// Settings and shared parts of the browser side.
#[derive(Debug)]
pub struct WebConfig {
    /// The origin browsers reach this server at, e.g. `https://localhost:8443`.
    pub origin: url::Url,
    pub cookies: cookies::Cookies,
    pub timeouts: web_sessions::Timeouts,
    /// Passkeys; `None` when the origin's host is an IP address (WebAuthn needs a name).
    pub webauthn: Option<webauthn_rs::Webauthn>,
    /// Seals TOTP seeds in flight and the known-device cookie.
    pub sealing: Arc<SealingKey>,
    pub throttle: throttle::Throttle,
    /// Where session recordings are (replay and download).
    pub recordings_dir: std::path::PathBuf,
    /// The SSH gateway's address as users type it (`host:port`), for the ssh lines shown.
    pub ssh_address: Option<String>,
    /// The public key recording manifests are signed with (shown as verified or not).
    pub recording_key: Option<gatehouse_broker::keys::PublicKey>,
    /// Web sign-in against an LDAP / Active Directory server (`[ldap]`), when configured.
    pub ldap: Option<directory::Ldap>,
    /// Single sign-on through an OpenID provider (`[oidc]`), when configured.
    pub oidc: Option<ui::oidc::Oidc>,
    /// Whether SCIM clients may set passwords (`[scim] passwords`; never for an identity that
    /// holds a privilege).
    pub scim_passwords: bool,
    /// Whether a notification channel (`[notifications] webhook_url`) is configured: pages say
    /// that approvers are notified only when it is.
    pub notifications: bool,
    /// The app gateway's side of the web UI (the sign-in hand-off and the assertion key's
    /// JWKS); `None` when apps are off.
    pub apps: Option<AppsWeb>,
    /// The Gatehouse key that signs access review reports and evidence packs; `None`: they
    /// cannot be signed.
    pub signer: Option<Arc<gatehouse_broker::keys::SigningKeyPair>>,
    /// What evidence packs measure against (`[compliance]`, `[retention]`).
    pub compliance: ComplianceWeb,
    /// Command/output indexes of ended recordings (bounded; for the timeline and search).
    pub indexes: std::sync::Mutex<
        std::collections::HashMap<String, Arc<gatehouse_recordings::index::Index>>,
    >,
}

/// `[compliance] termination_sla` and `[retention]`, for evidence packs made from the web.
#[derive(Debug, Clone, Copy)]
pub struct ComplianceWeb {
    pub termination_sla_ms: i64,
    pub recordings_retention_ms: Option<i64>,
    pub audit_retention_ms: Option<i64>,
}

impl Default for ComplianceWeb {
    fn default() -> Self {
        Self {
            termination_sla_ms: 3_600_000,
            recordings_retention_ms: None,
            audit_retention_ms: None,
        }
    }
}

/// What the web UI needs to know of the app gateway.
#[derive(Debug, Clone)]
pub struct AppsWeb {
    /// App hosts are `NAME.DOMAIN`.
    pub domain: String,
    /// The app listener's public port (left out of app URLs when it is 443).
    pub port: u16,
    /// The public half of the key app assertions are signed with, published as a JWKS.
    pub assertion_key: gatehouse_broker::keys::PublicKey,
}

impl WebConfig {
    /// Settings for a server reached at `origin`. Cookies are Secure when it is HTTPS.
    pub fn new(
        origin: url::Url,
        sealing: Arc<SealingKey>,
        recordings_dir: std::path::PathBuf,
    ) -> Self {
        let webauthn = origin.host_str().and_then(|host| {
            if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
                tracing::warn!(%origin, "passkeys need a host name, not an IP address: they are off");
                return None;
            }
            match webauthn_rs::WebauthnBuilder::new(host, &origin)
                .map(|b| b.rp_name("Gatehouse"))
                .and_then(|b| b.build())
            {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(%origin, error = %e, "passkeys are off");
                    None
                }
            }
        });
        Self {
            cookies: cookies::Cookies::new(origin.scheme() == "https"),
            origin,
            timeouts: web_sessions::Timeouts::default(),
            webauthn,
            sealing,
            throttle: throttle::Throttle::default(),
            recordings_dir,
            ssh_address: None,
            recording_key: None,
            signer: None,
            compliance: ComplianceWeb::default(),
            ldap: None,
            oidc: None,
            scim_passwords: false,
            notifications: false,
            apps: None,
            indexes: std::sync::Mutex::default(),
        }
    }
}

/// Largest request body accepted anywhere (bytes).
pub const MAX_BODY: usize = 1024 * 1024;

/// The whole application: routes, the access layer, limits and security headers.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(health::routes())
        .merge(setup::routes())
        .merge(ui::routes())
        .nest("/api/v1", api::routes())
        .nest("/scim/v2", scim::routes());
    let hsts = state.web.cookies.secure().then(|| {
        tower_http::set_header::SetResponseHeaderLayer::if_not_present(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        )
    });
    let app = routes
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::layer,
        ))
        .layer(axum::middleware::from_fn(headers::security_headers))
        .layer(tower::util::option_layer(hsts))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .with_state(state);
    // Rewritten before routing (a layer of `app` would run after it): the same request is
    // then routed, authorised and answered as its canonical path.
    Router::new().fallback_service(
        tower::ServiceBuilder::new()
            .map_request(scim_without_trailing_slash)
            .service(app),
    )
}

/// SCIM clients (Microsoft's SCIM reference client among them) send `/scim/v2/Users/` and
/// `/scim/v2/Users/?filter=…`: one trailing slash of a path under `/scim/v2/` is dropped, so
/// they are answered like the paths without it.
fn scim_without_trailing_slash(mut req: axum::extract::Request) -> axum::extract::Request {
    const BASE: &str = "/scim/v2/";
    let path = req.uri().path();
    if path.len() > BASE.len() && path.starts_with(BASE) && path.ends_with('/') {
        let trimmed = &path[..path.len() - 1];
        let pq = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = axum::http::uri::PathAndQuery::try_from(pq) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// Serves `router(state)` on `listener` until `shutdown` is cancelled: over TLS with the
/// certificate and key files given, else plain HTTP (the caller allows that only on loopback).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Some((cert, key)) = tls {
        return tls::serve(listener, &cert, &key, router(state), shutdown).await;
    }
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
