//! The stored SCIM documents: one row per User or Group with the document as the client wrote
//! it, its version (the ETag) and the identity or group it provisions.

use crate::error::{Error, Result};
use crate::ledger::store::{Tx, Write};
use chrono::{SecondsFormat, TimeZone, Utc};
use gatehouse_scim::error::ScimError;
use gatehouse_scim::schema::Kind;
use serde_json::{Map, Value, json};
use sqlx::{AnyConnection, Row};

/// One stored resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: String,
    pub kind: Kind,
    pub doc: Map<String, Value>,
    pub version: i64,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub identity_id: Option<String>,
    pub group_id: Option<String>,
}

fn kind_str(k: Kind) -> &'static str {
    k.name()
}

fn time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl Stored {
    /// The weak ETag of this version.
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }

    /// The `meta` attribute; `base` is the absolute URL of `/scim/v2`.
    pub fn meta(&self, base: &str) -> Value {
        json!({
            "resourceType": self.kind.name(),
            "created": time(self.created_ms),
            "lastModified": time(self.modified_ms),
            "location": format!("{base}/{}/{}", self.kind.endpoint(), self.id),
            "version": self.etag(),
        })
    }

    /// The whole document with `id` and `meta`, as filters see it.
    pub fn filterable(&self, base: &str) -> Value {
        let mut d = self.doc.clone();
        d.insert("id".into(), Value::String(self.id.clone()));
        d.insert("meta".into(), self.meta(base));
        Value::Object(d)
    }

    /// Refuses a change when the request's `If-Match` names another version (412).
    pub fn check_if_match(&self, if_match: Option<&str>) -> std::result::Result<(), ScimError> {
        match if_match {
            Some(m) if !self.matches(m) => Err(ScimError::precondition_failed(format!(
                "the resource is at version {}, not {m}",
                self.etag()
            ))),
            _ => Ok(()),
        }
    }

    /// Does an `If-Match` header value allow a change to this version? (`*` or the ETag, weak
    /// or strong form.)
    pub fn matches(&self, if_match: &str) -> bool {
        let want = self.version.to_string();
        if_match
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == want)
    }
}

const SELECT: &str = "SELECT id, kind, document, version, created_at, modified_at, identity_id, \
                      group_id FROM scim_resources";

fn row(r: &sqlx::any::AnyRow) -> Result<Stored> {
    let kind: String = r.try_get(1)?;
    let doc: String = r.try_get(2)?;
    Ok(Stored {
        id: r.try_get(0)?,
        kind: if kind == "Group" {
            Kind::Group
        } else {
            Kind::User
        },
        doc: serde_json::from_str(&doc)
            .map_err(|e| Error::invalid(format!("stored SCIM document: {e}")))?,
        version: r.try_get(3)?,
        created_ms: r.try_get(4)?,
        modified_ms: r.try_get(5)?,
        identity_id: r.try_get(6)?,
        group_id: r.try_get(7)?,
    })
}

/// A resource by id.
pub async fn get(conn: &mut AnyConnection, kind: Kind, id: &str) -> Result<Option<Stored>> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE id = $1 AND kind = $2"
    )))
    .bind(id)
    .bind(kind_str(kind))
    .fetch_optional(&mut *conn)
    .await?;
    r.as_ref().map(row).transpose()
}

/// A resource by id, or SCIM's 404.
pub async fn require(
    conn: &mut AnyConnection,
    kind: Kind,
    id: &str,
) -> std::result::Result<Stored, ScimError> {
    get(conn, kind, id)
        .await
        .map_err(super::to_scim)?
        .ok_or_else(|| ScimError::not_found(format!("{} {id} not found", kind.name())))
}

/// A resource by its lower-cased userName / displayName.
pub async fn by_name(
    conn: &mut AnyConnection,
    kind: Kind,
    name_key: &str,
) -> Result<Option<Stored>> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE kind = $1 AND name_key = $2"
    )))
    .bind(kind_str(kind))
    .bind(name_key)
    .fetch_optional(&mut *conn)
    .await?;
    r.as_ref().map(row).transpose()
}

/// Before a User create, in one query: whether a User already has this userName key, and
/// whether an identity already has this Gatehouse username. The audit chain head comes with it
/// (see `audit::known_head`).
pub(crate) async fn probe_user(
    tx: &mut Tx,
    name_key: &str,
    username: &str,
) -> Result<(bool, bool)> {
    let r = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM scim_resources WHERE kind = $1 AND name_key = $2), \
         (SELECT COUNT(*) FROM identities WHERE username = $3), \
         (SELECT seq FROM audit_head WHERE id = 1), (SELECT hash FROM audit_head WHERE id = 1)",
    )
    .bind(kind_str(Kind::User))
    .bind(name_key)
    .bind(username)
    .fetch_one(&mut **tx)
    .await?;
    crate::ledger::audit::known_head(tx, r.try_get(2)?, &r.try_get::<String, _>(3)?)?;
    Ok((r.try_get::<i64, _>(0)? > 0, r.try_get::<i64, _>(1)? > 0))
}

/// The resource provisioning an identity.
pub async fn by_identity(conn: &mut AnyConnection, identity_id: &str) -> Result<Option<Stored>> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE identity_id = $1"
    )))
    .bind(identity_id)
    .fetch_optional(&mut *conn)
    .await?;
    r.as_ref().map(row).transpose()
}

/// The resource provisioning a group.
pub async fn by_group(conn: &mut AnyConnection, group_id: &str) -> Result<Option<Stored>> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE group_id = $1")))
        .bind(group_id)
        .fetch_optional(&mut *conn)
        .await?;
    r.as_ref().map(row).transpose()
}

/// Every resource of a kind, oldest first (the stable order of unsorted lists).
pub async fn all(conn: &mut AnyConnection, kind: Kind) -> Result<Vec<Stored>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE kind = $1 ORDER BY created_at, id"
    )))
    .bind(kind_str(kind))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(row).collect()
}

/// Resources of a kind by externalId.
pub async fn by_external_id(
    conn: &mut AnyConnection,
    kind: Kind,
    ext: &str,
) -> Result<Vec<Stored>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE kind = $1 AND external_id = $2 ORDER BY created_at, id"
    )))
    .bind(kind_str(kind))
    .bind(ext)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(row).collect()
}

/// The key userName / displayName uniqueness is checked on.
pub fn name_key(kind: Kind, doc: &Map<String, Value>) -> String {
    let attr = match kind {
        Kind::User => "userName",
        Kind::Group => "displayName",
    };
    doc.get(attr)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase()
}

/// Stores a new resource; `later`: with the commit (see `Tx::write_later`).
pub(crate) async fn insert(tx: &mut Tx, s: &Stored, client: &str, later: bool) -> Result<()> {
    let w = Write::new(
        "INSERT INTO scim_resources (id, kind, name_key, external_id, identity_id, group_id, \
         document, version, created_at, modified_at, client) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .text(s.id.as_str())
    .text(kind_str(s.kind))
    .text(name_key(s.kind, &s.doc))
    .opt_text(s.doc.get("externalId").and_then(Value::as_str))
    .opt_text(s.identity_id.as_deref())
    .opt_text(s.group_id.as_deref())
    .text(Value::Object(s.doc.clone()).to_string())
    .int(s.version)
    .int(s.created_ms)
    .int(s.modified_ms)
    .text(client)
    .on_conflict("the name is already taken");
    if later {
        tx.write_later(w).await
    } else {
        tx.write(w).await.map(drop)
    }
}

pub(crate) async fn update(tx: &mut Tx, s: &Stored) -> Result<()> {
    sqlx::query(
        "UPDATE scim_resources SET name_key = $1, external_id = $2, document = $3, version = $4, \
         modified_at = $5, identity_id = $6, group_id = $7 WHERE id = $8",
    )
    .bind(name_key(s.kind, &s.doc))
    .bind(s.doc.get("externalId").and_then(Value::as_str))
    .bind(Value::Object(s.doc.clone()).to_string())
    .bind(s.version)
    .bind(s.modified_ms)
    .bind(s.identity_id.as_deref())
    .bind(s.group_id.as_deref())
    .bind(s.id.as_str())
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from(e).on_conflict(|| "the name is already taken".to_string()))?;
    Ok(())
}

pub(crate) async fn delete(tx: &mut Tx, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM scim_resources WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
