//! Roles: named bundles of access. What a role grants and how it is obtained is its
//! [`RoleSpec`]; who holds it is in [`crate::access::assignments`].

use crate::access::role_spec::RoleSpec;
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A stored role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub description: String,
    pub spec: RoleSpec,
    /// `apply` when managed by `gatehouse apply`, else `api`.
    pub source: String,
}

/// Role names follow the username rules (they appear in URLs and SSH listings).
pub fn validate_name(name: &str) -> Result<()> {
    crate::identity::identities::validate_username(name).map_err(|_| {
        Error::invalid(format!(
            "role name {name:?}: use 1-64 lower-case letters, digits, '.', '_' or '-'"
        ))
    })
}

const SELECT: &str = "SELECT id, name, description, spec, source FROM roles";

fn from_row(r: &AnyRow) -> Result<Role> {
    let spec: String = r.try_get(3)?;
    Ok(Role {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        description: r.try_get(2)?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| Error::Storage(format!("role spec is not readable: {e}")))?,
        source: r.try_get(4)?,
    })
}

fn spec_json(spec: &RoleSpec) -> Result<String> {
    serde_json::to_string(spec).map_err(|e| Error::Storage(format!("role spec: {e}")))
}

/// Creates a role with a plain spec (no access yet); audited as `role.create`.
pub async fn create(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    name: &str,
    description: &str,
) -> Result<Role> {
    create_with(
        tx,
        actor,
        now_ms,
        name,
        description,
        RoleSpec::default(),
        "api",
    )
    .await
}

/// Creates a role with its spec; audited as `role.create` with the whole spec.
pub async fn create_with(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    name: &str,
    description: &str,
    spec: RoleSpec,
    source: &str,
) -> Result<Role> {
    validate_name(name)?;
    spec.check(name)?;
    crate::access::policy::cedar::check_condition(name, spec.condition.as_deref())?;
    let role = Role {
        id: ids::new_id(),
        name: name.into(),
        description: description.into(),
        spec,
        source: source.into(),
    };
    sqlx::query(
        "INSERT INTO roles (id, name, description, spec, source, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(role.id.as_str())
    .bind(name)
    .bind(description)
    .bind(spec_json(&role.spec)?)
    .bind(source)
    .bind(now_ms)
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from(e).on_conflict(|| format!("role {name} already exists")))?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "role.create", format!("role:{name}"))
            .details(serde_json::json!({ "description": description, "spec": role.spec })),
    )
    .await?;
    Ok(role)
}

/// Replaces a role's description and spec; audited as `role.update` with before and after.
pub async fn update(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    name: &str,
    description: &str,
    spec: RoleSpec,
) -> Result<Role> {
    spec.check(name)?;
    crate::access::policy::cedar::check_condition(name, spec.condition.as_deref())?;
    let before = by_name(tx, name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("role {name}")))?;
    sqlx::query("UPDATE roles SET description = $1, spec = $2, updated_at = $3 WHERE id = $4")
        .bind(description)
        .bind(spec_json(&spec)?)
        .bind(now_ms)
        .bind(before.id.as_str())
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "role.update", format!("role:{name}")).details(
            serde_json::json!({ "before": before.spec, "after": spec, "description": description }),
        ),
    )
    .await?;
    Ok(Role {
        description: description.into(),
        spec,
        ..before
    })
}

/// Deletes a role and its assignments, and revokes its live grants; audited as `role.delete`.
pub async fn delete(tx: &mut Tx, actor: &Actor, now_ms: i64, name: &str) -> Result<()> {
    let role = by_name(tx, name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("role {name}")))?;
    for a in crate::access::assignments::of_role(tx, &role.id).await? {
        crate::access::assignments::remove(tx, actor, now_ms, &a.id).await?;
    }
    for g in crate::access::grants::active_of_role(tx, &role.id, now_ms).await? {
        crate::access::grants::revoke(tx, actor, now_ms, &g.id, "role deleted").await?;
    }
    sqlx::query("DELETE FROM roles WHERE id = $1")
        .bind(role.id.as_str())
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "role.delete", format!("role:{name}")),
    )
    .await?;
    Ok(())
}

/// Looks a role up by name.
pub async fn by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<Role>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE name = $1")))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Looks a role up by id.
pub async fn by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<Role>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every role, by name.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<Role>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY name")))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(from_row).collect()
}
