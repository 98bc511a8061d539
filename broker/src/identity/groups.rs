//! Groups of identities and their memberships (from `apply`, HR, SCIM or LDAP).

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row;

/// A stored group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub description: String,
    pub source: String,
}

/// Group names follow the username rules (they appear in policies as `group:NAME`).
pub fn validate_name(name: &str) -> Result<()> {
    crate::identity::identities::validate_username(name).map_err(|_| {
        Error::invalid(format!(
            "group name {name:?}: use 1-64 lower-case letters, digits, '.', '_' or '-'"
        ))
    })
}

/// Creates a group; audited as `group.create`.
pub async fn create(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    name: &str,
    description: &str,
) -> Result<Group> {
    create_with_source(tx, actor, now_ms, name, description, "local").await
}

/// Creates a group recording where it came from (`apply`, `hr`, `scim`, `ldap`, ...).
pub async fn create_with_source(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    name: &str,
    description: &str,
    source: &str,
) -> Result<Group> {
    validate_name(name)?;
    let group = Group {
        id: ids::new_id(),
        name: name.into(),
        description: description.into(),
        source: source.into(),
    };
    sqlx::query(
        "INSERT INTO groups (id, name, description, source, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(group.id.as_str())
    .bind(name)
    .bind(description)
    .bind(group.source.as_str())
    .bind(now_ms)
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from(e).on_conflict(|| format!("group {name} already exists")))?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "group.create", format!("group:{name}")),
    )
    .await?;
    Ok(group)
}

/// Renames a group (a SCIM displayName change); audited as `group.rename`.
pub async fn rename(tx: &mut Tx, actor: &Actor, now_ms: i64, from: &str, to: &str) -> Result<()> {
    validate_name(to)?;
    let done = sqlx::query("UPDATE groups SET name = $1, updated_at = $2 WHERE name = $3")
        .bind(to)
        .bind(now_ms)
        .bind(from)
        .execute(&mut **tx)
        .await
        .map_err(|e| Error::from(e).on_conflict(|| format!("group {to} already exists")))?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("group {from}")));
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "group.rename", format!("group:{to}"))
            .details(serde_json::json!({ "from": from })),
    )
    .await?;
    Ok(())
}

/// Every group, by name.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<Group>> {
    let rows = sqlx::query("SELECT id, name, description, source FROM groups ORDER BY name")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Group {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                description: r.try_get(2)?,
                source: r.try_get(3)?,
            })
        })
        .collect()
}

/// Deletes a group, its memberships and the role assignments made to it; audited as
/// `group.delete`.
pub async fn delete(tx: &mut Tx, actor: &Actor, now_ms: i64, name: &str) -> Result<()> {
    let g = by_name(tx, name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("group {name}")))?;
    let assigned: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM role_assignments WHERE subject_kind = 'group' AND subject_id = $1",
    )
    .bind(g.id.as_str())
    .fetch_all(&mut **tx)
    .await?;
    for a in assigned {
        crate::access::assignments::remove(tx, actor, now_ms, &a).await?;
    }
    sqlx::query("DELETE FROM groups WHERE id = $1")
        .bind(g.id.as_str())
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "group.delete", format!("group:{name}")),
    )
    .await?;
    Ok(())
}

/// Looks a group up by name.
pub async fn by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<Group>> {
    let row = sqlx::query("SELECT id, name, description, source FROM groups WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(r) => Ok(Some(Group {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            description: r.try_get(2)?,
            source: r.try_get(3)?,
        })),
        None => Ok(None),
    }
}

async fn ids_of(conn: &mut AnyConnection, group: &str, username: &str) -> Result<(String, String)> {
    let g = by_name(conn, group)
        .await?
        .ok_or_else(|| Error::NotFound(format!("group {group}")))?;
    let i = crate::identity::identities::by_username(conn, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
    Ok((g.id, i.id))
}

/// Adds a member (no-op if already one); audited as `group.member.add` when it changes anything.
pub async fn add_member(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    group: &str,
    username: &str,
) -> Result<bool> {
    let (gid, iid) = ids_of(tx, group, username).await?;
    let done = sqlx::query(
        "INSERT INTO group_members (group_id, identity_id, added_at) VALUES ($1, $2, $3) \
         ON CONFLICT (group_id, identity_id) DO NOTHING",
    )
    .bind(gid)
    .bind(iid)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    let changed = done.rows_affected() > 0;
    if changed {
        audit::append(
            tx,
            now_ms,
            NewEvent::new(
                actor.to_string(),
                "group.member.add",
                format!("group:{group}"),
            )
            .details(serde_json::json!({ "member": username })),
        )
        .await?;
    }
    Ok(changed)
}

/// Removes a member (no-op if not one); audited as `group.member.remove` when it changes anything.
pub async fn remove_member(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    group: &str,
    username: &str,
) -> Result<bool> {
    let (gid, iid) = ids_of(tx, group, username).await?;
    let done = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND identity_id = $2")
        .bind(gid)
        .bind(iid)
        .execute(&mut **tx)
        .await?;
    let changed = done.rows_affected() > 0;
    if changed {
        audit::append(
            tx,
            now_ms,
            NewEvent::new(
                actor.to_string(),
                "group.member.remove",
                format!("group:{group}"),
            )
            .details(serde_json::json!({ "member": username })),
        )
        .await?;
    }
    Ok(changed)
}

/// Usernames of a group's members, sorted.
pub async fn members(conn: &mut AnyConnection, group: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT i.username FROM group_members m JOIN groups g ON g.id = m.group_id \
         JOIN identities i ON i.id = m.identity_id WHERE g.name = $1 ORDER BY i.username",
    )
    .bind(group)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Error::from))
        .collect()
}

/// Names of the groups an identity belongs to, sorted.
pub async fn of_identity(conn: &mut AnyConnection, username: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT g.name FROM group_members m JOIN groups g ON g.id = m.group_id \
         JOIN identities i ON i.id = m.identity_id WHERE i.username = $1 ORDER BY g.name",
    )
    .bind(username)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Error::from))
        .collect()
}
