//! Single sign-on: Gatehouse as an OpenID Connect relying party (openidconnect). Authorization
//! code with PKCE; the state, nonce and PKCE verifier travel sealed in a short-lived cookie; the
//! ID token's issuer, audience, expiry (Gatehouse's clock), nonce and signature (the provider's
//! JWKS) are checked by the crate. The person is the identity linked to the provider's subject,
//! or the first time the one identity with the token's *verified* email, or a new identity when
//! allowed — never an existing identity merely because a claim names it.

use super::auth::{signed_in, user_agent};
use super::{PageError, PageResult, begin, conn, safe_next};
use crate::AppState;
use crate::cookies::Kind;
use crate::error::ApiError;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use base64::Engine;
use gatehouse_broker::identity::directory::{self, Verified};
use gatehouse_broker::identity::web_sessions::{self, NewSession, Stage};
use gatehouse_broker::secrets::Secret;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// How to reach the provider (`[oidc]` in the configuration).
#[derive(Debug, Clone)]
pub struct Oidc {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Besides `openid` [default: email, profile].
    pub scopes: Vec<String>,
    /// The claim that names the username of a new identity [default: preferred_username, else
    /// the email's local part].
    pub username_claim: String,
    /// The claim listing the person's groups [default: groups].
    pub groups_claim: String,
    /// Provider group → Gatehouse group.
    pub group_mapping: BTreeMap<String, String>,
    pub create_identities: bool,
    /// The button on the sign-in page.
    pub label: String,
    /// Where an identity must come from (its `source`) to be linked by a verified e-mail at
    /// its first single sign-on [default: `oidc`]; any other identity needs an explicit link by
    /// an administrator (`gatehouse mfa link-sso`). Never one that holds a privilege.
    pub link_by_email: Vec<String>,
    /// TLS towards the provider: the binary's outbound roots (`[tls] extra_ca_file` included).
    pub tls: rustls::ClientConfig,
}

/// What the browser carries between the redirect out and the callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    until_ms: i64,
}

/// Without the state, nonce and PKCE verifier: a log line must not let anyone finish the sign-in.
impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("next", &self.next)
            .field("until_ms", &self.until_ms)
            .finish_non_exhaustive()
    }
}

const PENDING_S: i64 = 600;

fn refused(status: StatusCode, message: &str) -> PageError {
    PageError(ApiError::new(
        status,
        "sso_failed",
        format!("Single sign-on failed: {message}. Start again from the sign-in page."),
    ))
}

fn http(o: &Oidc) -> Result<openidconnect::reqwest::Client, PageError> {
    openidconnect::reqwest::ClientBuilder::new()
        .use_preconfigured_tls(o.tls.clone())
        // Following redirects would let a provider point Gatehouse anywhere (SSRF).
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| {
            tracing::error!(error = %e, "OIDC: cannot build the HTTP client");
            refused(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })
}

async fn client(
    state: &AppState,
    o: &Oidc,
    http: &openidconnect::reqwest::Client,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    PageError,
> {
    let issuer = IssuerUrl::new(o.issuer.clone()).map_err(|_| {
        refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the issuer URL is invalid",
        )
    })?;
    let meta = CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, issuer = %o.issuer, "OIDC: discovery failed");
            refused(
                StatusCode::BAD_GATEWAY,
                "the identity provider could not be reached",
            )
        })?;
    let redirect = RedirectUrl::new(format!("{}login/oidc/callback", state.web.origin))
        .map_err(|_| refused(StatusCode::INTERNAL_SERVER_ERROR, "bad redirect URL"))?;
    Ok(CoreClient::from_provider_metadata(
        meta,
        ClientId::new(o.client_id.clone()),
        Some(ClientSecret::new(o.client_secret.expose().to_string())),
    )
    .set_redirect_uri(redirect))
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

/// `GET /login/oidc`: off to the provider.
pub async fn start(State(state): State<AppState>, Query(q): Query<StartQuery>) -> PageResult {
    let Some(o) = state.web.oidc.clone() else {
        return Err(refused(
            StatusCode::NOT_FOUND,
            "single sign-on is not configured",
        ));
    };
    let http = http(&o)?;
    let c = client(&state, &o, &http).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = c
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for s in &o.scopes {
        req = req.add_scope(Scope::new(s.clone()));
    }
    let (url, csrf, nonce) = req.url();
    let pending = Pending {
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        next: safe_next(q.next.as_deref()),
        until_ms: state.clock.now_ms() + PENDING_S * 1000,
    };
    let sealed = serde_json::to_vec(&pending)
        .map_err(|_| refused(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
        .and_then(|p| state.web.sealing.seal(&p).map_err(PageError::from))?;
    let mut resp = Redirect::to(url.as_str()).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        state.web.cookies.set(Kind::Oidc, &sealed, Some(PENDING_S)),
    );
    Ok(resp)
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn same(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// `GET /login/oidc/callback`: the provider sends the browser back with a code.
pub async fn callback(
    State(state): State<AppState>,
    ci: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> PageResult {
    let address = super::auth::ip_of(ci).to_string();
    let result = finish(&state, &headers, q, &address).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    // The pending state is single-use, whatever happened.
    resp.headers_mut()
        .append(header::SET_COOKIE, state.web.cookies.clear(Kind::Oidc));
    Ok(resp)
}

async fn finish(
    state: &AppState,
    headers: &HeaderMap,
    q: CallbackQuery,
    address: &str,
) -> PageResult {
    let Some(o) = state.web.oidc.clone() else {
        return Err(refused(
            StatusCode::NOT_FOUND,
            "single sign-on is not configured",
        ));
    };
    let pending: Pending = state
        .web
        .cookies
        .read(headers, Kind::Oidc)
        .and_then(|c| state.web.sealing.open(&c).ok())
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or_else(|| {
            refused(
                StatusCode::BAD_REQUEST,
                "this sign-in was not started here, or took too long",
            )
        })?;
    if pending.until_ms < state.clock.now_ms() {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "this sign-in took too long",
        ));
    }
    if let Some(e) = &q.error {
        let e: String = e
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(refused(
            StatusCode::UNAUTHORIZED,
            &format!("the identity provider said {e}"),
        ));
    }
    let (Some(code), Some(got_state)) = (q.code, q.state) else {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "the identity provider sent no code",
        ));
    };
    if !same(&got_state, &pending.state) {
        tracing::warn!(
            "OIDC: callback with a state that is not this browser's (forged or replayed)"
        );
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "the sign-in state does not match",
        ));
    }
    let http = http(&o)?;
    let c = client(state, &o, &http).await?;
    let token = c
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|_| {
            refused(
                StatusCode::BAD_GATEWAY,
                "the provider has no token endpoint",
            )
        })?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "OIDC: code exchange failed");
            refused(StatusCode::UNAUTHORIZED, "the code was refused")
        })?;
    let id_token = token
        .id_token()
        .ok_or_else(|| refused(StatusCode::UNAUTHORIZED, "no ID token"))?;
    let clock = state.clock.clone();
    let verifier = c.id_token_verifier().set_time_fn(move || {
        chrono::DateTime::from_timestamp_millis(clock.now_ms()).unwrap_or_default()
    });
    let claims = id_token
        .claims(&verifier, &Nonce::new(pending.nonce.clone()))
        .map_err(|e| {
            tracing::warn!(error = %e, "OIDC: ID token refused");
            refused(
                StatusCode::UNAUTHORIZED,
                "the ID token is not valid (expired, wrong audience or signature)",
            )
        })?;
    // The signature is checked: the payload's other claims (groups) can be read.
    let raw: serde_json::Value = id_token
        .to_string()
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let subject = claims.subject().as_str().to_string();
    let verified_email = claims
        .email()
        .filter(|_| claims.email_verified() == Some(true))
        .map(|e| e.as_str().to_string());
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_string());
    let claimed_username = raw
        .get(&o.username_claim)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or_else(|| verified_email.clone());
    let groups: Vec<String> = raw
        .get(&o.groups_claim)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str())
                .filter_map(|g| o.group_mapping.get(g).cloned())
                .collect()
        })
        .unwrap_or_default();
    let provider = o.issuer.trim_end_matches('/').to_string();
    let now = state.clock.now_ms();
    // Who this is: the link, else the one identity with this verified email that came from
    // this provider's side (`link_by_email`) and holds no privilege, else new. A local account
    // (bootstrap, the API, `apply`) is never linked by e-mail: an administrator links it.
    let (existing, how) = {
        let mut cn = conn(state).await?;
        match directory::linked(&mut cn, &provider, &subject).await? {
            Some(i) => (Some(i), None),
            None => match &verified_email {
                Some(e) => match directory::by_email(&mut cn, e).await? {
                    Some(i)
                        if o.link_by_email.contains(&i.source)
                            && gatehouse_broker::access::privileges::of(&mut cn, &i.id)
                                .await?
                                .is_empty() =>
                    {
                        (Some(i), Some("verified_email"))
                    }
                    Some(i) => {
                        tracing::warn!(identity = %i.username, source = %i.source, "OIDC: a verified e-mail names an identity that may not be linked by e-mail; refused");
                        return Err(refused(
                            StatusCode::FORBIDDEN,
                            "an account with this e-mail exists and is not linked to you; ask an administrator to link it",
                        ));
                    }
                    None => (None, Some("created")),
                },
                None => (None, Some("created")),
            },
        }
    };
    let username = match &existing {
        Some(i) => i.username.clone(),
        None => {
            let u = claimed_username
                .as_deref()
                .and_then(|u| directory::username_from(u).ok())
                .ok_or_else(|| {
                    refused(
                        StatusCode::FORBIDDEN,
                        "the provider gave no usable username",
                    )
                })?;
            let mut cn = conn(state).await?;
            if gatehouse_broker::identity::identities::by_username(&mut cn, &u)
                .await?
                .is_some()
            {
                // An unlinked identity is never taken over by a name claim.
                return Err(refused(
                    StatusCode::FORBIDDEN,
                    "an account with this name exists and is not linked to you; ask an administrator",
                ));
            }
            u
        }
    };
    let v = Verified {
        source: "oidc".into(),
        display_name: name.unwrap_or_else(|| username.clone()),
        username,
        email: verified_email.clone(),
        groups,
        mapped: {
            let mut m: Vec<String> = o.group_mapping.values().cloned().collect();
            m.sort();
            m.dedup();
            m
        },
        proof: format!("{provider}#{subject}"),
    };
    let mut tx = begin(state).await?;
    let identity = directory::sign_in(&mut tx, now, &v, o.create_identities)
        .await?
        .ok_or_else(|| {
            refused(
                StatusCode::FORBIDDEN,
                "you have no active Gatehouse account",
            )
        })?;
    if let Some(how) = how {
        directory::link(&mut tx, now, &provider, &subject, &identity, how).await?;
    }
    // The account's own second factor still applies: single sign-on replaces the password
    // step, never the authenticator app or passkey the identity enrolled.
    let second = super::auth::has_second_factor(state, &identity).await?;
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
            methods: "oidc",
            mfa_at_ms: None,
            address,
            user_agent: user_agent(headers),
        },
        state.web.timeouts,
    )
    .await?;
    tx.commit().await?;
    if second {
        let mut resp = axum::response::Redirect::to(&format!(
            "/login/second-factor?next={}",
            url::form_urlencoded::byte_serialize(pending.next.as_bytes()).collect::<String>()
        ))
        .into_response();
        resp.headers_mut().append(
            axum::http::header::SET_COOKIE,
            state
                .web
                .cookies
                .set(crate::cookies::Kind::Session, cookie.expose(), None),
        );
        return Ok(resp);
    }
    Ok(signed_in(
        state,
        &identity.id,
        cookie.expose(),
        &pending.next,
        false,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_a_pending_sso_sign_in_hides_its_secrets_in_debug() {
        let p = Pending {
            state: "state-s3cret".into(),
            nonce: "nonce-s3cret".into(),
            verifier: "verifier-s3cret".into(),
            next: "/approvals".into(),
            until_ms: 1,
        };
        let shown = format!("{p:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("/approvals"), "{shown}");
    }
}
