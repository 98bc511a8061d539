//! First start: creating the first administrator without a UI, either from
//! `GATEHOUSE_BOOTSTRAP_TOKEN` or through a one-time setup code printed as a link.

use crate::access::privileges::{self, Privilege};
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::identity::identities::{self, Identity, NewIdentity};
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::{Store, Tx};
use crate::secrets::{self, Secret};
use crate::{identity::tokens, ids};

/// Username of the first administrator.
pub const ADMIN: &str = "admin";

/// How long a setup code stays valid.
pub const SETUP_CODE_TTL_MS: i64 = 60 * 60 * 1000;

/// What start-up did about the first administrator.
#[derive(Debug)]
pub enum Outcome {
    /// An active administrator already exists; nothing to do.
    AdminExists,
    /// `admin` was created with the bootstrap token as its API token.
    AdminCreated,
    /// No administrator and no bootstrap token: a one-time setup code, to print as a link.
    SetupCode { code: Secret, expires_at_ms: i64 },
}

/// Runs at every start of `serve`.
pub async fn on_start(
    store: &Store,
    now_ms: i64,
    bootstrap_token: Option<&Secret>,
) -> Result<Outcome> {
    let mut tx = store.begin().await?;
    if privileges::active_admin_exists(&mut tx).await? {
        return Ok(Outcome::AdminExists);
    }
    let outcome = match bootstrap_token {
        Some(token) => {
            if token.expose().len() < tokens::MIN_CHOSEN_LEN {
                return Err(Error::invalid(format!(
                    "GATEHOUSE_BOOTSTRAP_TOKEN must be at least {} characters (try `openssl rand -hex 32`)",
                    tokens::MIN_CHOSEN_LEN
                )));
            }
            create_admin(&mut tx, now_ms, "GATEHOUSE_BOOTSTRAP_TOKEN", token).await?;
            Outcome::AdminCreated
        }
        None => {
            // Only the newest code works: a restart invalidates the link printed before.
            sqlx::query(
                "UPDATE setup_codes SET expires_at = $1 WHERE used_at IS NULL AND expires_at > $1",
            )
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            let code = Secret::new(secrets::generate("ghs_")?);
            let expires_at_ms = now_ms + SETUP_CODE_TTL_MS;
            let id = ids::new_id();
            sqlx::query(
                "INSERT INTO setup_codes (id, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id.as_str())
            .bind(secrets::hash(code.expose()))
            .bind(now_ms)
            .bind(expires_at_ms)
            .execute(&mut *tx)
            .await?;
            audit::append(
                &mut tx,
                now_ms,
                NewEvent::new(
                    Actor::System.to_string(),
                    "setup_code.issue",
                    format!("setup_code:{id}"),
                )
                .details(serde_json::json!({ "expires_at": expires_at_ms })),
            )
            .await?;
            Outcome::SetupCode {
                code,
                expires_at_ms,
            }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Redeems a setup code: creates `admin` and returns a fresh API token for it (shown once).
/// A wrong, used or expired code is `Unauthenticated`, whichever it was.
pub async fn redeem_setup_code(
    store: &Store,
    now_ms: i64,
    code: &str,
) -> Result<(Identity, Secret)> {
    let mut tx = store.begin().await?;
    let claimed = sqlx::query(
        "UPDATE setup_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now_ms)
    .bind(secrets::hash(code))
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() != 1 {
        return Err(Error::Unauthenticated);
    }
    if privileges::active_admin_exists(&mut tx).await? {
        return Err(Error::Conflict(
            "Gatehouse already has an administrator".into(),
        ));
    }
    let token = Secret::new(secrets::generate(tokens::PREFIX)?);
    let identity = create_admin(&mut tx, now_ms, "setup code", &token).await?;
    tx.commit().await?;
    Ok((identity, token))
}

/// Creates `admin` with the admin privilege and `token`. An `admin` made by an earlier bootstrap
/// that is no longer active (no active administrator is why we are here) is re-activated, which
/// is audited; an `admin` from anywhere else is never promoted.
async fn create_admin(tx: &mut Tx, now_ms: i64, via: &str, token: &Secret) -> Result<Identity> {
    let actor = Actor::System;
    let identity = match identities::by_username(tx, ADMIN).await? {
        Some(existing) if existing.source == "bootstrap" => {
            if existing.status == identities::Status::Active {
                existing
            } else {
                identities::set_status(tx, &actor, now_ms, ADMIN, identities::Status::Active)
                    .await?
            }
        }
        Some(_) => {
            return Err(Error::Conflict(format!(
                "an identity named {ADMIN} exists but is not an administrator; refusing to promote it"
            )));
        }
        None => {
            let new = NewIdentity {
                username: ADMIN.into(),
                display_name: "Administrator".into(),
                source: "bootstrap".into(),
                ..Default::default()
            };
            identities::create(tx, &actor, now_ms, new).await?
        }
    };
    privileges::grant(tx, &actor, now_ms, ADMIN, Privilege::Admin).await?;
    tokens::insert(
        tx,
        &actor,
        now_ms,
        ADMIN,
        &format!("bootstrap ({via})"),
        token,
        None,
    )
    .await
    .map_err(|e| {
        e.on_conflict(|| {
            "GATEHOUSE_BOOTSTRAP_TOKEN was used before (and may be revoked): choose a new value"
                .into()
        })
    })?;
    Ok(identity)
}
