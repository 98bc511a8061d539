//! Identities: the people (and service accounts) Gatehouse knows, with their attributes and
//! lifecycle status. Every change is audited in the caller's transaction.

use crate::error::{Error, Result};
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::{Tx, Write};
use crate::{actor::Actor, ids};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

/// Where an identity stands in its lifecycle. Only `Active` identities may sign in or hold access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Disabled,
    Suspended,
    Prehire,
    Terminated,
}

impl Status {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
            Status::Suspended => "suspended",
            Status::Prehire => "prehire",
            Status::Terminated => "terminated",
        }
    }

    /// Reads the stored spelling.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "active" => Status::Active,
            "disabled" => Status::Disabled,
            "suspended" => Status::Suspended,
            "prehire" => Status::Prehire,
            "terminated" => Status::Terminated,
            other => return Err(Error::Storage(format!("unknown identity status {other:?}"))),
        })
    }
}

/// A stored identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub status: Status,
    pub attributes: Map<String, Value>,
    pub source: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What it takes to create an identity.
#[derive(Debug, Clone, Default)]
pub struct NewIdentity {
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub attributes: Map<String, Value>,
    /// Where it came from: `local`, `apply`, `hr`, `scim`, `ldap`, `oidc`, `bootstrap`.
    pub source: String,
}

impl NewIdentity {
    /// A local identity with just a username.
    pub fn named(username: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            source: "local".into(),
            ..Default::default()
        }
    }
}

/// Usernames are what people type in `ssh LOGIN@TARGET@gatehouse`: lower-case letters, digits,
/// `.`, `_`, `-`, starting with a letter or digit, at most 64 characters, and never `@`.
pub fn validate_username(name: &str) -> Result<()> {
    let ok_len = (1..=64).contains(&name.len());
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok_len && ok_first && ok_chars {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "username {name:?}: use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

const SELECT: &str = "SELECT id, username, display_name, email, status, attributes, source, \
                      created_at, updated_at FROM identities";

fn from_row(row: &AnyRow) -> Result<Identity> {
    let attrs: String = row.try_get(5)?;
    Ok(Identity {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        display_name: row.try_get(2)?,
        email: row.try_get(3)?,
        status: Status::parse(&row.try_get::<String, _>(4)?)?,
        attributes: serde_json::from_str(&attrs).map_err(|e| {
            Error::Storage(format!("identity attributes are not a JSON object: {e}"))
        })?,
        source: row.try_get(6)?,
        created_at_ms: row.try_get(7)?,
        updated_at_ms: row.try_get(8)?,
    })
}

/// Creates an identity; audited as `identity.create`.
pub async fn create(tx: &mut Tx, actor: &Actor, now_ms: i64, new: NewIdentity) -> Result<Identity> {
    create_with(tx, actor, now_ms, new, false).await
}

/// [`create`] whose row goes with the commit (`Tx::write_later`): for a caller that has checked
/// the username is free in this transaction and reads nothing of the identity back.
pub(crate) async fn create_later(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    new: NewIdentity,
) -> Result<Identity> {
    create_with(tx, actor, now_ms, new, true).await
}

async fn create_with(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    new: NewIdentity,
    later: bool,
) -> Result<Identity> {
    validate_username(&new.username)?;
    let identity = Identity {
        id: ids::new_id(),
        username: new.username,
        display_name: new.display_name,
        email: new.email,
        status: Status::Active,
        attributes: new.attributes,
        source: if new.source.is_empty() {
            "local".into()
        } else {
            new.source
        },
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    };
    let w = Write::new(
        "INSERT INTO identities (id, username, display_name, email, status, attributes, source, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .text(identity.id.as_str())
    .text(identity.username.as_str())
    .text(identity.display_name.as_str())
    .opt_text(identity.email.as_deref())
    .text(identity.status.as_str())
    .text(Value::Object(identity.attributes.clone()).to_string())
    .text(identity.source.as_str())
    .int(now_ms)
    .int(now_ms)
    .on_conflict(format!("identity {} already exists", identity.username));
    if later {
        tx.write_later(w).await?;
    } else {
        tx.write(w).await?;
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "identity.create",
            format!("identity:{}", identity.username),
        )
        .details(serde_json::json!({
            "id": identity.id,
            "source": identity.source,
            "email": identity.email,
        })),
    )
    .await?;
    Ok(identity)
}

/// Changes an identity's status; audited as `identity.status`.
pub async fn set_status(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    status: Status,
) -> Result<Identity> {
    let before = by_username(tx, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
    sqlx::query("UPDATE identities SET status = $1, updated_at = $2, status_by = $3 WHERE id = $4")
        .bind(status.as_str())
        .bind(now_ms)
        .bind(actor.to_string())
        .bind(before.id.as_str())
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "identity.status",
            format!("identity:{username}"),
        )
        .details(serde_json::json!({ "from": before.status, "to": status })),
    )
    .await?;
    if status != Status::Active {
        crate::identity::web_sessions::end_all(
            tx,
            now_ms,
            &before.id,
            username,
            None,
            "identity_disabled",
        )
        .await?;
        tx.publish(crate::events::AccessEvent::IdentityDisabled {
            identity: username.into(),
        });
    }
    Ok(Identity {
        status,
        updated_at_ms: now_ms,
        ..before
    })
}

/// Who last set the identity's status, as the audit log names actors (`identity:alice`,
/// `scim:okta`, `cli`, `system`); empty when it never changed since creation.
pub async fn status_set_by(conn: &mut AnyConnection, identity_id: &str) -> Result<String> {
    let by: Option<String> = sqlx::query_scalar("SELECT status_by FROM identities WHERE id = $1")
        .bind(identity_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(by.unwrap_or_default())
}

/// Keeps `by` (an administrator, the CLI, HR) as whose decision the identity's current status
/// stands on, after a provisioning client made a leaver of an identity `by` had suspended or
/// disabled: only `by`'s side may make it active again. The status change itself was audited
/// under its real actor.
pub async fn hold_status_for(tx: &mut Tx, identity_id: &str, by: &str) -> Result<()> {
    sqlx::query("UPDATE identities SET status_by = $2 WHERE id = $1")
        .bind(identity_id)
        .bind(by)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Replaces an identity's display name, email and attributes; audited as `identity.update`
/// with the attribute keys that changed.
pub async fn update(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    display_name: &str,
    email: Option<&str>,
    attributes: &Map<String, Value>,
) -> Result<Identity> {
    let before = by_username(tx, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
    sqlx::query(
        "UPDATE identities SET display_name = $1, email = $2, attributes = $3, updated_at = $4 \
         WHERE id = $5",
    )
    .bind(display_name)
    .bind(email)
    .bind(Value::Object(attributes.clone()).to_string())
    .bind(now_ms)
    .bind(before.id.as_str())
    .execute(&mut **tx)
    .await?;
    let mut changed: Vec<&String> = attributes
        .iter()
        .filter(|(k, v)| before.attributes.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .chain(
            before
                .attributes
                .keys()
                .filter(|k| !attributes.contains_key(*k)),
        )
        .collect();
    changed.sort();
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "identity.update",
            format!("identity:{username}"),
        )
        .details(serde_json::json!({
            "attributes_changed": changed,
            "email_changed": before.email.as_deref() != email,
        })),
    )
    .await?;
    Ok(Identity {
        display_name: display_name.into(),
        email: email.map(str::to_owned),
        attributes: attributes.clone(),
        updated_at_ms: now_ms,
        ..before
    })
}

/// Renames an identity (a SCIM userName change); targets it owns follow. Audited as
/// `identity.rename`.
pub async fn rename(tx: &mut Tx, actor: &Actor, now_ms: i64, from: &str, to: &str) -> Result<()> {
    validate_username(to)?;
    let done =
        sqlx::query("UPDATE identities SET username = $1, updated_at = $2 WHERE username = $3")
            .bind(to)
            .bind(now_ms)
            .bind(from)
            .execute(&mut **tx)
            .await
            .map_err(|e| Error::from(e).on_conflict(|| format!("identity {to} already exists")))?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("identity {from}")));
    }
    sqlx::query("UPDATE targets SET owner = $1 WHERE owner = $2")
        .bind(to)
        .bind(from)
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "identity.rename",
            format!("identity:{to}"),
        )
        .details(serde_json::json!({ "from": from })),
    )
    .await?;
    Ok(())
}

/// Looks an identity up by username.
pub async fn by_username(conn: &mut AnyConnection, username: &str) -> Result<Option<Identity>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE username = $1")))
        .bind(username)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Looks an identity up by id.
pub async fn by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<Identity>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every identity, by username.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<Identity>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY username")))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_checked() {
        for ok in ["alice", "a", "bob.smith", "svc-deploy_2", "0ps"] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "root@db",
            "-x",
            ".x",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }
}
