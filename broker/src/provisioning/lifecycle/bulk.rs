//! Joiners in bulk: a batch of new people inserted with multi-row statements (identities, their
//! birthright assignments) and their `hr.joiner` / `hr.staged` events appended as one batch, in
//! the caller's transaction — the same outcome as one change at a time, in a few statements
//! (an initial load of 100,000 people has to fit in seconds).

use super::engine::BIRTHRIGHT;
use super::plan::{Change, Kind};
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::identity::identities::{Status, validate_username};
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::{Backend, Tx, backend_of};
use sqlx::AnyConnection;
use std::collections::HashMap;

/// Rows per INSERT statement (10 parameters a row: well under both backends' limits).
const ROWS: usize = 500;

/// `INSERT INTO table (cols) VALUES (...), (...)` with placeholders only.
pub(crate) fn insert_sql(table: &str, cols: &[&str], rows: usize, backend: Backend) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", r * cols.len() + c + 1)),
            }
        }
        sql.push(')');
    }
    sql
}

/// Inserts the joiners and staged hires of `changes` (others are ignored). `role_ids` maps role
/// names to ids. Any clash (a username or employee number taken) fails the whole call: the
/// caller then applies the changes one by one to name the culprit.
pub async fn joiners(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    changes: &[&Change],
    source: &str,
    role_ids: &HashMap<String, String>,
) -> Result<usize> {
    let new: Vec<(&Change, String)> = changes
        .iter()
        .filter(|c| matches!(c.kind, Kind::Joiner | Kind::Staged))
        .map(|c| (*c, crate::ids::new_id()))
        .collect();
    if new.is_empty() {
        return Ok(0);
    }
    for (c, _) in &new {
        validate_username(&c.username)?;
    }
    let backend = backend_of(tx);
    let conn: &mut AnyConnection = tx;
    const ICOLS: &[&str] = &[
        "id",
        "username",
        "display_name",
        "email",
        "status",
        "attributes",
        "source",
        "created_at",
        "updated_at",
        "employee_number",
    ];
    for chunk in new.chunks(ROWS) {
        let sql = insert_sql("identities", ICOLS, chunk.len(), backend);
        let attrs: Vec<String> = chunk
            .iter()
            .map(|(c, _)| serde_json::to_string(&c.attributes).unwrap_or_else(|_| "{}".into()))
            .collect();
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((c, id), a) in chunk.iter().zip(&attrs) {
            q = q
                .bind(id.as_str())
                .bind(c.username.as_str())
                .bind(c.display_name.as_str())
                .bind(c.email.as_deref())
                .bind(c.status.as_str())
                .bind(a.as_str())
                .bind("hr")
                .bind(now_ms)
                .bind(now_ms)
                .bind(c.employee_number.as_str());
        }
        q.execute(&mut *conn).await.map_err(|e| {
            Error::from(e).on_conflict(|| "a username or employee number is already used".into())
        })?;
    }
    const ACOLS: &[&str] = &[
        "id",
        "role_id",
        "subject_kind",
        "subject_id",
        "kind",
        "source",
        "created_at",
    ];
    let mut assignments: Vec<(String, &str, &str)> = Vec::new();
    for (c, id) in &new {
        if c.status != Status::Active {
            continue;
        }
        for role in &c.roles_add {
            let rid = role_ids
                .get(role)
                .ok_or_else(|| Error::NotFound(format!("role {role}")))?;
            assignments.push((crate::ids::new_id(), rid.as_str(), id.as_str()));
        }
    }
    for chunk in assignments.chunks(ROWS) {
        let sql = insert_sql("role_assignments", ACOLS, chunk.len(), backend);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (aid, rid, sid) in chunk {
            q = q
                .bind(aid.as_str())
                .bind(*rid)
                .bind("identity")
                .bind(*sid)
                .bind("standing")
                .bind(BIRTHRIGHT)
                .bind(now_ms);
        }
        q.execute(&mut *conn).await?;
    }
    let events: Vec<NewEvent> = new
        .iter()
        .map(|(c, id)| {
            NewEvent::new(
                actor.to_string(),
                format!("hr.{}", c.kind.as_str()),
                format!("identity:{}", c.username),
            )
            .details(serde_json::json!({
                "id": id,
                "source": source,
                "line": c.line,
                "employee_number": c.employee_number,
                "status": c.status,
                "email": c.email,
                "roles_added": if c.status == Status::Active { c.roles_add.clone() } else { Vec::new() },
            }))
        })
        .collect();
    audit::append_batch(tx, now_ms, events).await?;
    Ok(new.len())
}
