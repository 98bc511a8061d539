//! The app gateway's sign-in hand-off and app sessions. An app host without its cookie sends the
//! browser to the web UI, which issues a one-time code ([`issue_code`]) for that app, that
//! browser session and the state the app host set in its own cookie; the app host redeems it
//! ([`redeem_code`]) for an app session whose cookie it sets host-only. An app session lives
//! while its browser session does (sign-out, expiry, a factor change or the identity leaving
//! `active` end it) and [`lookup`] finds it only for the app it was made for. The identity
//! assertion the app receives is an EdDSA JWT ([`assertion`]), its key published as a JWKS.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::identity::identities::{Identity, Status};
use crate::keys::{PublicKey, SigningKeyPair};
use crate::ledger::audit::{self, NewEvent, Outcome};
use crate::ledger::store::Tx;
use crate::secrets::{self, Secret};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

/// How long a one-time code may wait for the app host's callback.
pub const CODE_TTL_MS: i64 = 60_000;

/// Longest return path kept with a code.
const MAX_NEXT: usize = 2048;

/// An app session: one browser's sign-in to one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppSession {
    /// SHA-256 of the cookie.
    pub id: String,
    pub target_id: String,
    pub identity_id: String,
    pub web_session_id: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// When the browser session behind it last passed a second factor.
    pub mfa_at_ms: Option<i64>,
}

/// A return path on the app host: a local path of visible ASCII (`/…`, never `//…` or `/\…`),
/// else `/`. Browsers drop tabs and line breaks from URLs, so only visible ASCII passes.
pub fn local_path(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= MAX_NEXT
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if ok { next.to_string() } else { "/".into() }
}

/// Issues a one-time code for `target` (an `http` target) to the signed-in browser session
/// `web_session_id` of `who`, bound to `state` (the value the app host keeps in its state
/// cookie). Audited as `app.authorize`. The code is returned once and stored as its hash.
#[allow(clippy::too_many_arguments)]
pub async fn issue_code(
    tx: &mut Tx,
    now_ms: i64,
    who: &Identity,
    web_session_id: &str,
    target: &crate::access::targets::Target,
    state: &str,
    next: &str,
) -> Result<Secret> {
    if target.kind != crate::access::targets::Kind::Http {
        return Err(Error::invalid(format!(
            "target {} is not an app",
            target.name
        )));
    }
    if state.len() < 16 || state.len() > 256 {
        return Err(Error::invalid(
            "the app's sign-in state is missing or malformed",
        ));
    }
    let code = secrets::generate("ghac_")?;
    let next = local_path(next);
    sqlx::query(
        "INSERT INTO app_codes (code_hash, target_id, identity_id, web_session_id, state_hash, \
         next_path, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(secrets::hash(&code))
    .bind(target.id.as_str())
    .bind(who.id.as_str())
    .bind(web_session_id)
    .bind(secrets::hash(state))
    .bind(next.as_str())
    .bind(now_ms)
    .bind(now_ms + CODE_TTL_MS)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            Actor::identity(&who.username).to_string(),
            "app.authorize",
            format!("target:{}", target.name),
        )
        .details(serde_json::json!({ "web_session": crate::identity::web_sessions::short(web_session_id) })),
    )
    .await?;
    Ok(Secret::new(code))
}

/// What redeeming a code gave.
#[derive(Debug)]
pub enum Redeemed {
    /// The app session, its cookie (shown once), its identity and the return path.
    Session {
        session: AppSession,
        cookie: Secret,
        identity: Box<Identity>,
        next: String,
    },
    /// Refused, and why (audited as `app.callback.refused`; the caller keeps that record with
    /// [`Tx::settle`] or a commit).
    Refused(&'static str),
}

/// Redeems a code at the app host's callback: it must exist, be unused and unexpired, be for
/// this app (`target_id`), match `state` (the app host's state cookie), and its browser session
/// and identity must still be live. A code is used once even under concurrent callbacks. Audited
/// as `app.session.start`, a refusal as `app.callback.refused`.
pub async fn redeem_code(
    tx: &mut Tx,
    now_ms: i64,
    code: &str,
    target: &crate::access::targets::Target,
    state: &str,
) -> Result<Redeemed> {
    let refuse = |why: &'static str| why;
    let why = 'check: {
        if code.is_empty() || code.len() > 128 || state.is_empty() || state.len() > 256 {
            break 'check refuse("malformed");
        }
        let hash = secrets::hash(code);
        let row = sqlx::query(
            "SELECT target_id, identity_id, web_session_id, state_hash, next_path, expires_at, \
             used_at FROM app_codes WHERE code_hash = $1",
        )
        .bind(hash.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            break 'check refuse("unknown_code");
        };
        let used: Option<i64> = row.try_get(6)?;
        if used.is_some() {
            break 'check refuse("code_used");
        }
        let expires: i64 = row.try_get(5)?;
        if now_ms >= expires {
            break 'check refuse("code_expired");
        }
        let target_id: String = row.try_get(0)?;
        if target_id != target.id {
            break 'check refuse("other_app");
        }
        let state_hash: String = row.try_get(3)?;
        if !same(&state_hash, &secrets::hash(state)) {
            break 'check refuse("state_mismatch");
        }
        // Used now, whatever follows: a second callback with the same code finds it used.
        let took = sqlx::query(
            "UPDATE app_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL",
        )
        .bind(hash.as_str())
        .bind(now_ms)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if took != 1 {
            break 'check refuse("code_used");
        }
        let identity_id: String = row.try_get(1)?;
        let web_session_id: String = row.try_get(2)?;
        let next: String = row.try_get(4)?;
        let Some((web_expires, mfa_at)) = web_session(tx, &web_session_id, now_ms).await? else {
            break 'check refuse("signed_out");
        };
        let Some(identity) = crate::identity::identities::by_id(tx, &identity_id).await? else {
            break 'check refuse("signed_out");
        };
        if identity.status != Status::Active {
            break 'check refuse("identity_not_active");
        }
        let cookie = secrets::generate("")?;
        let session = AppSession {
            id: secrets::hash(&cookie),
            target_id,
            identity_id,
            web_session_id,
            created_at_ms: now_ms,
            expires_at_ms: web_expires,
            mfa_at_ms: mfa_at,
        };
        sqlx::query(
            "INSERT INTO app_sessions (id, target_id, identity_id, web_session_id, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session.id.as_str())
        .bind(session.target_id.as_str())
        .bind(session.identity_id.as_str())
        .bind(session.web_session_id.as_str())
        .bind(now_ms)
        .bind(web_expires)
        .execute(&mut **tx)
        .await?;
        audit::append(
            tx,
            now_ms,
            NewEvent::new(
                Actor::identity(&identity.username).to_string(),
                "app.session.start",
                format!("target:{}", target.name),
            )
            .details(serde_json::json!({
                "app_session": crate::identity::web_sessions::short(&session.id),
                "web_session": crate::identity::web_sessions::short(&session.web_session_id),
            })),
        )
        .await?;
        return Ok(Redeemed::Session {
            session,
            cookie: Secret::new(cookie),
            identity: Box::new(identity),
            next: local_path(&next),
        });
    };
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            "anonymous",
            "app.callback.refused",
            format!("target:{}", target.name),
        )
        .outcome(Outcome::Failure)
        .details(serde_json::json!({ "reason": why })),
    )
    .await?;
    tx.mark_refusal();
    Ok(Redeemed::Refused(why))
}

/// The live browser session `id`: its absolute end and when it last passed a second factor.
/// `None` once signed out, expired, or still at its second-factor step.
async fn web_session(
    conn: &mut AnyConnection,
    id: &str,
    now_ms: i64,
) -> Result<Option<(i64, Option<i64>)>> {
    let row = sqlx::query(
        "SELECT expires_at, mfa_at, stage, last_seen_at FROM web_sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let expires: i64 = row.try_get(0)?;
    let stage: String = row.try_get(2)?;
    let last_seen: i64 = row.try_get(3)?;
    // The browser session's idle timeout holds for its app sessions too; using an app is
    // activity on it (the timer moves at most once every 10 s).
    let idle = crate::identity::web_sessions::Timeouts::default().idle_ms;
    if now_ms >= expires || stage != "active" || now_ms - last_seen >= idle {
        return Ok(None);
    }
    if now_ms - last_seen >= 10_000 {
        sqlx::query("UPDATE web_sessions SET last_seen_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Some((expires, row.try_get(1)?)))
}

/// Whether the app session `id` (the cookie's hash) still lives: not ended or expired, its
/// browser session live (not signed out, expired, idle or ended by a factor change) and its
/// identity active. The gateway's sweep ends the recorded sessions (and their websockets) of
/// those that no longer do.
pub async fn alive(conn: &mut AnyConnection, id: &str, now_ms: i64) -> Result<bool> {
    let row = sqlx::query(
        "SELECT s.web_session_id, s.expires_at, s.ended_at, i.status FROM app_sessions s \
         JOIN identities i ON i.id = s.identity_id WHERE s.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(false) };
    let ended: Option<i64> = row.try_get(2)?;
    let expires: i64 = row.try_get(1)?;
    let status: String = row.try_get(3)?;
    if ended.is_some() || now_ms >= expires || status != "active" {
        return Ok(false);
    }
    let web: String = row.try_get(0)?;
    Ok(web_session(conn, &web, now_ms).await?.is_some())
}

/// The live app session behind an app host's cookie, for that app only, with its identity:
/// `None` when unknown, for another app, ended, expired, its browser session gone (signed out,
/// expired, ended by a factor change), or its identity not active.
pub async fn lookup(
    conn: &mut AnyConnection,
    cookie: &str,
    target_id: &str,
    now_ms: i64,
) -> Result<Option<(AppSession, Identity)>> {
    if cookie.is_empty() || cookie.len() > 128 {
        return Ok(None);
    }
    let id = secrets::hash(cookie);
    let row = sqlx::query(
        "SELECT target_id, identity_id, web_session_id, created_at, expires_at, ended_at \
         FROM app_sessions WHERE id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let session_target: String = row.try_get(0)?;
    let ended: Option<i64> = row.try_get(5)?;
    let expires: i64 = row.try_get(4)?;
    if session_target != target_id || ended.is_some() || now_ms >= expires {
        return Ok(None);
    }
    let web_session_id: String = row.try_get(2)?;
    let Some((_, mfa_at)) = web_session(conn, &web_session_id, now_ms).await? else {
        return Ok(None);
    };
    let identity_id: String = row.try_get(1)?;
    let Some(identity) = crate::identity::identities::by_id(conn, &identity_id).await? else {
        return Ok(None);
    };
    if identity.status != Status::Active {
        return Ok(None);
    }
    Ok(Some((
        AppSession {
            id,
            target_id: session_target,
            identity_id,
            web_session_id,
            created_at_ms: row.try_get(3)?,
            expires_at_ms: expires,
            mfa_at_ms: mfa_at,
        },
        identity,
    )))
}

/// How long ended or expired app sessions and used or expired sign-in codes are kept before
/// [`purge`] deletes them (the `sessions` row and the request log stay: they are the record).
pub const KEEP_ENDED_MS: i64 = 7 * 24 * 3600 * 1000;

/// Deletes sign-in codes and app sessions that ended or expired more than [`KEEP_ENDED_MS`]
/// ago; returns how many of each. Neither can be used again, so nothing decided changes.
pub async fn purge(conn: &mut AnyConnection, now_ms: i64) -> Result<(u64, u64)> {
    let before = now_ms - KEEP_ENDED_MS;
    let codes = sqlx::query("DELETE FROM app_codes WHERE expires_at < $1")
        .bind(before)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let sessions = sqlx::query(
        "DELETE FROM app_sessions WHERE ended_at < $1 OR (ended_at IS NULL AND expires_at < $1)",
    )
    .bind(before)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((codes, sessions))
}

/// Ends an app session (sign-out at the app host, or its access ended); audited as
/// `app.session.end` with the reason. Ending one that has ended already changes nothing.
pub async fn end(
    tx: &mut Tx,
    now_ms: i64,
    session: &AppSession,
    username: &str,
    reason: &str,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE app_sessions SET ended_at = $2, end_reason = $3 WHERE id = $1 AND ended_at IS NULL",
    )
    .bind(session.id.as_str())
    .bind(now_ms)
    .bind(reason)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    // Caches of live app sessions drop theirs at commit.
    tx.mark_sessions_changed();
    if done > 0 {
        audit::append(
            tx,
            now_ms,
            NewEvent::new(
                Actor::identity(username).to_string(),
                "app.session.end",
                format!(
                    "app_session:{}",
                    crate::identity::web_sessions::short(&session.id)
                ),
            )
            .details(serde_json::json!({ "reason": reason })),
        )
        .await?;
    }
    Ok(())
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A secret the app gateway adds to requests it forwards to an app (credential injection), so
/// nobody needs the app's shared account: vaulted sealed per app and role
/// (`target_credentials`, login = the role, or `*` for any role), opened only in the gateway.
#[derive(Clone, PartialEq, Eq)]
pub enum Injected {
    /// HTTP basic authentication.
    Basic { user: String, password: String },
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
}

impl std::fmt::Debug for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Injected::Basic { user, .. } => write!(f, "Basic({user}, ***)"),
            Injected::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

impl Injected {
    /// The `Authorization` header value.
    pub fn authorization(&self) -> String {
        match self {
            Injected::Basic { user, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            Injected::Bearer(t) => format!("Bearer {t}"),
        }
    }

    /// What the audit log and listings may show: the kind and, for basic, the user.
    pub fn describe(&self) -> String {
        match self {
            Injected::Basic { user, .. } => format!("basic:{user}"),
            Injected::Bearer(_) => "bearer".into(),
        }
    }

    fn to_json(&self) -> String {
        match self {
            Injected::Basic { user, password } => {
                serde_json::json!({ "basic": { "user": user, "password": password } })
            }
            Injected::Bearer(t) => serde_json::json!({ "bearer": t }),
        }
        .to_string()
    }

    fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| Error::Key("a vaulted app credential is not JSON".into()))?;
        if let Some(t) = v.get("bearer").and_then(|t| t.as_str()) {
            return Ok(Injected::Bearer(t.to_string()));
        }
        let b = v
            .get("basic")
            .ok_or_else(|| Error::Key("a vaulted app credential of no known kind".into()))?;
        Ok(Injected::Basic {
            user: b["user"].as_str().unwrap_or_default().to_string(),
            password: b["password"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Refuses what cannot be sent in a header: empty values, control characters, a `:` in a
    /// basic user name.
    pub fn validate(&self) -> Result<()> {
        let clean = |s: &str| !s.is_empty() && s.len() <= 4096 && !s.chars().any(char::is_control);
        let ok = match self {
            Injected::Basic { user, password } => {
                clean(user) && !user.contains(':') && clean(password)
            }
            Injected::Bearer(t) => clean(t) && !t.contains(' '),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(
                "an app credential must be non-empty, without control characters (and a basic user without ':')",
            ))
        }
    }
}

/// Vaults (or replaces) the credential injected for `role` (`*`: any role) on app `target`;
/// audited as `target.credential_set` with its kind, never the secret.
pub async fn vault_credential(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    target: &crate::access::targets::Target,
    role: &str,
    credential: &Injected,
    key: &crate::sealing::SealingKey,
) -> Result<()> {
    if target.kind != crate::access::targets::Kind::Http {
        return Err(Error::invalid(format!(
            "target {} is not an app",
            target.name
        )));
    }
    credential.validate()?;
    crate::access::credentials::put(
        tx,
        actor,
        now_ms,
        &target.name,
        role,
        &credential.to_json(),
        &credential.describe(),
        key,
    )
    .await
}

/// The credential to inject for `role` on app `target`: the role's own, else the one for any
/// role (`*`), else none.
pub async fn credential(
    conn: &mut AnyConnection,
    target: &str,
    role: &str,
    key: &crate::sealing::SealingKey,
) -> Result<Option<Injected>> {
    for login in [role, "*"] {
        if let Some(text) = crate::access::credentials::open(conn, target, login, key).await? {
            return Injected::from_json(&text).map(Some);
        }
    }
    Ok(None)
}

/// The key id of a public key in the JWKS and JWT headers: the first 16 hex digits of the
/// SHA-256 of its bytes.
pub fn key_id(key: &PublicKey) -> String {
    hex::encode(Sha256::digest(key.bytes()))[..16].to_string()
}

/// The JWKS document (`/.well-known/jwks.json`) for the assertion key.
pub fn jwks(key: &PublicKey) -> serde_json::Value {
    serde_json::json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
        "kid": key_id(key), "x": B64URL.encode(key.bytes()),
    }] })
}

/// What the app is told about the person behind a request.
#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    /// The Gatehouse URL that issued it (the web UI's origin).
    pub iss: String,
    /// The username.
    pub sub: String,
    /// The app: its target name.
    pub aud: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    /// Seconds since the epoch.
    pub iat: i64,
    pub exp: i64,
}

/// Longest life of an assertion.
pub const ASSERTION_TTL_S: i64 = 300;

/// A signed EdDSA JWT (`alg` EdDSA, `typ` JWT, `kid`) carrying `claims`.
pub fn assertion(key: &SigningKeyPair, claims: &Claims) -> Result<String> {
    let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": key_id(&key.public()) });
    let body = serde_json::to_vec(claims).map_err(|e| Error::Storage(e.to_string()))?;
    let signing_input = format!(
        "{}.{}",
        B64URL.encode(header.to_string().as_bytes()),
        B64URL.encode(body)
    );
    let sig = key.sign(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", B64URL.encode(sig)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_return_paths_stay_on_the_app_host() {
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "/\t/evil.example",
            "/a b",
            "evil",
            "",
        ] {
            assert_eq!(local_path(bad), "/", "{bad:?}");
        }
        assert_eq!(local_path("/d/abc?x=1#y"), "/d/abc?x=1#y");
    }

    #[test]
    fn assertions_verify_with_the_published_key_and_name_it() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = SigningKeyPair::load_or_create(&dir.path().join("k.pem")).unwrap();
        let claims = Claims {
            iss: "https://gatehouse.example".into(),
            sub: "alice".into(),
            aud: "grafana".into(),
            email: Some("alice@example.com".into()),
            groups: vec!["eng".into()],
            roles: vec!["grafana-viewer".into()],
            iat: 1,
            exp: 301,
        };
        let jwt = assertion(&key, &claims).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[0]).unwrap_or_default())
                .unwrap_or_default();
        let jwk = &jwks(&key.public())["keys"][0];
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], jwk["kid"]);
        let x = B64URL
            .decode(jwk["x"].as_str().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(x, key.public().bytes());
        let sig = B64URL.decode(parts[2]).unwrap_or_default();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(key.public().verify(input.as_bytes(), &sig));
        assert!(!key.public().verify(b"tampered", &sig));
        let body: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[1]).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(
            (body["sub"].as_str(), body["aud"].as_str()),
            (Some("alice"), Some("grafana"))
        );
    }
}
