//! Roles: named bundles of access. This holds their identity; what they grant arrives with the
//! broker's access model.

use crate::actor::Actor;
use crate::audit::{self, NewEvent};
use crate::error::{Error, Result};
use crate::ids;
use crate::store::Tx;
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row;

/// A stored role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub description: String,
}

/// Creates a role; audited as `role.create`.
pub async fn create(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    name: &str,
    description: &str,
) -> Result<Role> {
    crate::identities::validate_username(name).map_err(|_| {
        Error::invalid(format!(
            "role name {name:?}: use 1-64 lower-case letters, digits, '.', '_' or '-'"
        ))
    })?;
    let role = Role {
        id: ids::new_id(),
        name: name.into(),
        description: description.into(),
    };
    sqlx::query(
        "INSERT INTO roles (id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(role.id.as_str())
    .bind(name)
    .bind(description)
    .bind(now_ms)
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from(e).on_conflict(|| format!("role {name} already exists")))?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "role.create", format!("role:{name}")),
    )
    .await?;
    Ok(role)
}

/// Every role, by name.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<Role>> {
    let rows = sqlx::query("SELECT id, name, description FROM roles ORDER BY name")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Role {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                description: r.try_get(2)?,
            })
        })
        .collect()
}
