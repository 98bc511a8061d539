//! Identities from a directory (LDAP / Active Directory) or a single sign-on provider (OIDC):
//! at each verified sign-in the identity is created if allowed (source `ldap` / `oidc`), its
//! name and email refreshed, and its membership of the mapped groups made to match what the
//! directory says. Groups outside the mapping are never touched. Audited as
//! `directory.sign_in` in the transaction of the change.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::identity::groups;
use crate::identity::identities::{self, Identity, NewIdentity, Status};
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use serde_json::Map;

/// What the directory or provider says of a person who just proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `ldap` or `oidc`.
    pub source: String,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// The Gatehouse groups the directory's groups map to.
    pub groups: Vec<String>,
    /// Every Gatehouse group the mapping can give (membership outside the directory's answer is
    /// removed from these, and only these).
    pub mapped: Vec<String>,
    /// Where the proof came from, for the audit event (directory DN, or issuer + subject).
    pub proof: String,
}

/// Where identities a directory may sign in for come from: itself, or the HR feed and SCIM
/// (people the directory also knows).
pub const DIRECTORY_SOURCES: &[&str] = &["ldap", "hr", "scim"];

/// Applies a verified sign-in. `None` when the identity does not exist and creating is off, or
/// exists but is not active (a leaver stays out whatever the directory says).
pub async fn sign_in(
    tx: &mut Tx,
    now_ms: i64,
    v: &Verified,
    create: bool,
) -> Result<Option<Identity>> {
    let actor = Actor::System;
    let identity = match identities::by_username(tx, &v.username).await? {
        Some(i) if i.status != Status::Active => return Ok(None),
        // A directory entry with the name of a local account (the bootstrap admin, an account
        // made by hand or by `apply`) is not that account.
        Some(i) if v.source == "ldap" && !DIRECTORY_SOURCES.contains(&i.source.as_str()) => {
            return Ok(None);
        }
        Some(i) => {
            if i.display_name != v.display_name || i.email != v.email {
                identities::update(
                    tx,
                    &actor,
                    now_ms,
                    &i.username,
                    &v.display_name,
                    v.email.as_deref(),
                    &i.attributes,
                )
                .await?
            } else {
                i
            }
        }
        None if create => {
            identities::create(
                tx,
                &actor,
                now_ms,
                NewIdentity {
                    username: v.username.clone(),
                    display_name: v.display_name.clone(),
                    email: v.email.clone(),
                    attributes: Map::new(),
                    source: v.source.clone(),
                },
            )
            .await?
        }
        None => return Ok(None),
    };
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let current = groups::of_identity(tx, &identity.username).await?;
    for g in &v.mapped {
        let want = v.groups.contains(g);
        let has = current.contains(g);
        if want && !has {
            if groups::by_name(tx, g).await?.is_none() {
                groups::create_with_source(tx, &actor, now_ms, g, "", &v.source).await?;
            }
            groups::add_member(tx, &actor, now_ms, g, &identity.username).await?;
            added.push(g.clone());
        } else if !want && has {
            groups::remove_member(tx, &actor, now_ms, g, &identity.username).await?;
            removed.push(g.clone());
        }
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            format!("{}:{}", v.source, v.proof),
            "directory.sign_in",
            format!("identity:{}", identity.username),
        )
        .details(serde_json::json!({
            "source": v.source, "groups_added": added, "groups_removed": removed,
        })),
    )
    .await?;
    Ok(Some(identity))
}

/// A username from a directory or provider value: lower-cased, the part before any '@'.
pub fn username_from(value: &str) -> Result<String> {
    let u = value
        .split('@')
        .next()
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    identities::validate_username(&u).map_err(|_| {
        Error::invalid(format!(
            "{value:?} does not give a valid Gatehouse username"
        ))
    })?;
    Ok(u)
}

/// The identity an OpenID provider's subject is linked to, by username.
pub async fn linked(
    conn: &mut sqlx::AnyConnection,
    provider: &str,
    subject: &str,
) -> Result<Option<Identity>> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT identity_id FROM identity_links WHERE provider = $1 AND subject = $2",
    )
    .bind(provider)
    .bind(subject)
    .fetch_optional(&mut *conn)
    .await?;
    match id {
        Some(id) => identities::by_id(conn, &id).await,
        None => Ok(None),
    }
}

/// The one identity with this email (none when several share it: linking by email must not
/// guess).
pub async fn by_email(conn: &mut sqlx::AnyConnection, email: &str) -> Result<Option<Identity>> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM identities WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_all(&mut *conn)
            .await?;
    match ids.as_slice() {
        [one] => identities::by_id(conn, one).await,
        _ => Ok(None),
    }
}

/// Links a provider's subject to an identity at its sign-in; audited as `identity.link`.
pub async fn link(
    tx: &mut Tx,
    now_ms: i64,
    provider: &str,
    subject: &str,
    identity: &Identity,
    how: &str,
) -> Result<()> {
    link_as(tx, &Actor::System, now_ms, provider, subject, identity, how).await
}

/// [`link`] by `actor` (an administrator's explicit link); audited as `identity.link`.
pub async fn link_as(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    provider: &str,
    subject: &str,
    identity: &Identity,
    how: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO identity_links (provider, subject, identity_id, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(provider)
    .bind(subject)
    .bind(identity.id.as_str())
    .bind(now_ms)
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from(e).on_conflict(|| "this subject is already linked".to_string()))?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "identity.link",
            format!("identity:{}", identity.username),
        )
        .details(serde_json::json!({ "provider": provider, "subject": subject, "by": how })),
    )
    .await?;
    Ok(())
}
