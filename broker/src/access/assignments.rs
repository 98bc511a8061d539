//! Role assignments: a role held by an identity or a group, standing (active now) or eligible
//! (must be requested, PIM-style), each with an optional validity window.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::events::AccessEvent;
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::{Tx, Write};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::fmt;

/// Who an assignment (or an approver set, an owner) names: `group:NAME`, or a username
/// (optionally written `user:NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Subject {
    Identity(String),
    Group(String),
}

impl Subject {
    /// Parses `group:NAME`, `user:NAME` or `NAME`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::invalid(format!("subject {s:?}: use \"group:NAME\" or a username"));
        if let Some(g) = s.strip_prefix("group:") {
            crate::identity::groups::validate_name(g).map_err(|_| bad())?;
            return Ok(Subject::Group(g.into()));
        }
        let u = s.strip_prefix("user:").unwrap_or(s);
        crate::identity::identities::validate_username(u).map_err(|_| bad())?;
        Ok(Subject::Identity(u.into()))
    }

    fn kind(&self) -> &'static str {
        match self {
            Subject::Identity(_) => "identity",
            Subject::Group(_) => "group",
        }
    }
}

impl TryFrom<String> for Subject {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Subject::parse(&s)
    }
}

impl From<Subject> for String {
    fn from(s: Subject) -> String {
        s.to_string()
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Identity(u) => f.write_str(u),
            Subject::Group(g) => write!(f, "group:{g}"),
        }
    }
}

/// Standing or eligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Active without asking (within its window).
    Standing,
    /// Must be requested; the request follows the role's approval policy.
    Eligible,
}

impl Kind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Standing => "standing",
            Kind::Eligible => "eligible",
        }
    }

    /// Parses `standing` or `eligible`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "standing" => Ok(Kind::Standing),
            "eligible" => Ok(Kind::Eligible),
            other => Err(Error::invalid(format!(
                "assignment kind {other:?}: use \"standing\" or \"eligible\""
            ))),
        }
    }
}

/// A stored assignment, with names resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    pub id: String,
    pub role_id: String,
    pub role: String,
    pub subject: Subject,
    /// The identity or group id the subject names.
    #[serde(skip)]
    pub subject_id: String,
    pub kind: Kind,
    pub not_before_ms: Option<i64>,
    pub not_after_ms: Option<i64>,
    pub source: String,
}

impl Assignment {
    /// Whether the assignment's window includes `now_ms`.
    pub fn in_window(&self, now_ms: i64) -> bool {
        self.not_before_ms.is_none_or(|t| t <= now_ms)
            && self.not_after_ms.is_none_or(|t| now_ms < t)
    }
}

/// What it takes to assign a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssignment {
    pub role: String,
    pub subject: Subject,
    pub kind: Kind,
    pub not_before_ms: Option<i64>,
    pub not_after_ms: Option<i64>,
    /// Empty means `api`.
    pub source: String,
}

const SELECT: &str = "SELECT a.id, a.role_id, r.name, a.subject_kind, \
     COALESCE(i.username, g.name), a.subject_id, a.kind, a.not_before, a.not_after, a.source \
     FROM role_assignments a JOIN roles r ON r.id = a.role_id \
     LEFT JOIN identities i ON a.subject_kind = 'identity' AND i.id = a.subject_id \
     LEFT JOIN groups g ON a.subject_kind = 'group' AND g.id = a.subject_id";

fn from_row(r: &AnyRow) -> Result<Assignment> {
    let kind: String = r.try_get(3)?;
    let name: Option<String> = r.try_get(4)?;
    let name = name.unwrap_or_else(|| "(deleted)".into());
    Ok(Assignment {
        id: r.try_get(0)?,
        role_id: r.try_get(1)?,
        role: r.try_get(2)?,
        subject: if kind == "group" {
            Subject::Group(name)
        } else {
            Subject::Identity(name)
        },
        subject_id: r.try_get(5)?,
        kind: Kind::parse(&r.try_get::<String, _>(6)?)?,
        not_before_ms: r.try_get(7)?,
        not_after_ms: r.try_get(8)?,
        source: r.try_get(9)?,
    })
}

/// The id of the identity or group a subject names.
pub async fn resolve(conn: &mut AnyConnection, subject: &Subject) -> Result<String> {
    match subject {
        Subject::Identity(u) => crate::identity::identities::by_username(conn, u)
            .await?
            .map(|i| i.id)
            .ok_or_else(|| Error::NotFound(format!("identity {u}"))),
        Subject::Group(g) => crate::identity::groups::by_name(conn, g)
            .await?
            .map(|g| g.id)
            .ok_or_else(|| Error::NotFound(format!("group {g}"))),
    }
}

/// Assigns a role; audited as `assignment.add`.
pub async fn add(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    new: NewAssignment,
) -> Result<Assignment> {
    if let (Some(a), Some(b)) = (new.not_before_ms, new.not_after_ms)
        && a >= b
    {
        return Err(Error::invalid(
            "assignment: the window ends before it starts",
        ));
    }
    let role = crate::access::roles::by_name(tx, &new.role)
        .await?
        .ok_or_else(|| Error::NotFound(format!("role {}", new.role)))?;
    let subject_id = resolve(tx, &new.subject).await?;
    let a = Assignment {
        id: ids::new_id(),
        role_id: role.id,
        role: role.name,
        subject: new.subject,
        subject_id,
        kind: new.kind,
        not_before_ms: new.not_before_ms,
        not_after_ms: new.not_after_ms,
        source: if new.source.is_empty() {
            "api".into()
        } else {
            new.source
        },
    };
    insert(tx, actor, now_ms, &a, false).await?;
    Ok(a)
}

/// Stores an assignment whose role and subject are already resolved (ids checked by the
/// caller, in this transaction); audited as `assignment.add`. `later`: the row goes with the
/// commit (`Tx::write_later`), for a caller that reads nothing of it back.
pub(crate) async fn insert(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    a: &Assignment,
    later: bool,
) -> Result<()> {
    let w = Write::new(
        "INSERT INTO role_assignments (id, role_id, subject_kind, subject_id, kind, not_before, \
         not_after, source, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .text(a.id.as_str())
    .text(a.role_id.as_str())
    .text(a.subject.kind())
    .text(a.subject_id.as_str())
    .text(a.kind.as_str())
    .int(a.not_before_ms)
    .int(a.not_after_ms)
    .text(a.source.as_str())
    .int(now_ms)
    .on_conflict(format!(
        "{} already holds role {} as {}",
        a.subject,
        a.role,
        a.kind.as_str()
    ));
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
            "assignment.add",
            format!("role:{}", a.role),
        )
        .details(serde_json::json!({
            "id": a.id, "subject": a.subject, "kind": a.kind,
            "not_before": a.not_before_ms.map(crate::clock::format_ms),
            "not_after": a.not_after_ms.map(crate::clock::format_ms),
        })),
    )
    .await?;
    Ok(())
}

/// Removes an assignment; audited as `assignment.remove`. Sessions it carried are told through
/// [`AccessEvent::AssignmentRemoved`].
pub async fn remove(tx: &mut Tx, actor: &Actor, now_ms: i64, id: &str) -> Result<Assignment> {
    let a = by_id(tx, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("assignment {id}")))?;
    sqlx::query("DELETE FROM role_assignments WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "assignment.remove",
            format!("role:{}", a.role),
        )
        .details(serde_json::json!({ "id": a.id, "subject": a.subject, "kind": a.kind })),
    )
    .await?;
    tx.publish(AccessEvent::AssignmentRemoved {
        assignment_id: a.id.clone(),
    });
    Ok(a)
}

/// `?, ?, ?` (SQLite) or `$1, $2, $3` (PostgreSQL) for an `IN (...)` list of `n` values after
/// `offset` others.
pub(crate) fn in_list(n: usize, offset: usize, backend: crate::ledger::store::Backend) -> String {
    (0..n)
        .map(|i| match backend {
            crate::ledger::store::Backend::Sqlite => "?".to_string(),
            crate::ledger::store::Backend::Postgres => format!("${}", offset + i + 1),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Removes many assignments at once (an access review's revokes): read, deleted and audited —
/// one `assignment.remove` each, appended as a batch — 500 at a time. Live sessions are
/// re-decided once, on the access change the commit announces (rather than once per
/// assignment). Returns those that existed.
pub async fn remove_many(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    ids: &[String],
) -> Result<Vec<Assignment>> {
    let backend = crate::ledger::store::backend_of(tx);
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let list = in_list(chunk.len(), 0, backend);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE a.id IN ({list})"
        )));
        for id in chunk {
            q = q.bind(id.as_str());
        }
        let found: Vec<Assignment> = q
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(from_row)
            .collect::<Result<_>>()?;
        let mut d = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM role_assignments WHERE id IN ({list})"
        )));
        for id in chunk {
            d = d.bind(id.as_str());
        }
        d.execute(&mut **tx).await?;
        let events = found
            .iter()
            .map(|a| {
                NewEvent::new(
                    actor.to_string(),
                    "assignment.remove",
                    format!("role:{}", a.role),
                )
                .details(serde_json::json!({ "id": a.id, "subject": a.subject, "kind": a.kind }))
            })
            .collect::<Vec<_>>();
        if !events.is_empty() {
            audit::append_batch(tx, now_ms, events).await?;
        }
        out.extend(found);
    }
    tx.publish(AccessEvent::AccessChanged);
    Ok(out)
}

/// Sets when an assignment ends (an access review's "keep until"); audited as
/// `assignment.end`. Sessions it carries end when the time comes, as for any window.
pub async fn set_end(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    id: &str,
    not_after_ms: i64,
) -> Result<Assignment> {
    let a = by_id(tx, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("assignment {id}")))?;
    sqlx::query("UPDATE role_assignments SET not_after = $1 WHERE id = $2")
        .bind(not_after_ms)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "assignment.end",
            format!("role:{}", a.role),
        )
        .details(
            serde_json::json!({ "id": a.id, "subject": a.subject, "kind": a.kind,
                "until": crate::clock::format_ms(not_after_ms) }),
        ),
    )
    .await?;
    Ok(a)
}

/// One assignment.
pub async fn by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<Assignment>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE a.id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every assignment, by role then subject.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<Assignment>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} ORDER BY r.name, a.subject_kind, a.subject_id, a.kind"
    )))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The assignments of one role.
pub async fn of_role(conn: &mut AnyConnection, role_id: &str) -> Result<Vec<Assignment>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE a.role_id = $1"
    )))
    .bind(role_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The assignments that reach an identity: its own and its groups'.
pub async fn of_identity(conn: &mut AnyConnection, identity_id: &str) -> Result<Vec<Assignment>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE (a.subject_kind = 'identity' AND a.subject_id = $1) OR \
         (a.subject_kind = 'group' AND a.subject_id IN \
          (SELECT group_id FROM group_members WHERE identity_id = $1)) ORDER BY r.name"
    )))
    .bind(identity_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}
