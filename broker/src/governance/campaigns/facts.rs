//! The facts a campaign is planned from, read from the store: people, privileges, roles,
//! targets, assignments in their window, memberships, uses (sessions by the role that carried
//! them, web sign-ins) and SoD conflicts.

use super::plan::{self, Facts};
use crate::access::assignments::Kind as HeldAs;
use crate::error::Result;
use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

/// Reads what [`plan::plan`] needs at `now_ms`: about everyone, or with `only` about one person
/// (and their manager; no peer counts), for a mover review.
pub async fn read(conn: &mut AnyConnection, now_ms: i64, only: Option<&str>) -> Result<Facts> {
    let mut f = Facts {
        now_ms,
        ..Default::default()
    };
    let mut names: HashMap<String, String> = HashMap::new();
    let mut rows = sqlx::query(
        "SELECT id, username, status, attributes FROM identities WHERE $1 = '' OR username = $1",
    )
    .bind(only.unwrap_or(""))
    .fetch_all(&mut *conn)
    .await?;
    if only.is_some() {
        // The manager, who reviews.
        let manager = rows
            .first()
            .and_then(|r| r.try_get::<String, _>(3).ok())
            .and_then(|a| serde_json::from_str::<Map<String, Value>>(&a).ok())
            .and_then(|a| a.get("manager").and_then(Value::as_str).map(str::to_string));
        if let Some(m) = manager {
            rows.extend(
                sqlx::query(
                    "SELECT id, username, status, attributes FROM identities WHERE username = $1",
                )
                .bind(m)
                .fetch_all(&mut *conn)
                .await?,
            );
        }
    }
    let only_id: Option<String> = match only {
        Some(u) => rows
            .iter()
            .find(|r| r.try_get::<String, _>(1).ok().as_deref() == Some(u))
            .map(|r| r.try_get(0))
            .transpose()?,
        None => None,
    };
    if only.is_some() && only_id.is_none() {
        return Ok(f);
    }
    let only_id = only_id.unwrap_or_default();
    for r in rows {
        let id: String = r.try_get(0)?;
        let username: String = r.try_get(1)?;
        let attrs: String = r.try_get(3)?;
        names.insert(id.clone(), username.clone());
        f.people.insert(
            username.clone(),
            plan::Person {
                id,
                username,
                status: r.try_get(2)?,
                attributes: serde_json::from_str::<Map<String, Value>>(&attrs).unwrap_or_default(),
                privileges: Vec::new(),
            },
        );
    }
    for r in sqlx::query(
        "SELECT identity_id, privilege, granted_at FROM identity_privileges \
         WHERE $1 = '' OR identity_id = $1",
    )
    .bind(only_id.as_str())
    .fetch_all(&mut *conn)
    .await?
    {
        let id: String = r.try_get(0)?;
        if let Some(p) = names.get(&id).and_then(|n| f.people.get_mut(n)) {
            p.privileges.push((r.try_get(1)?, r.try_get(2)?));
        }
    }
    for role in crate::access::roles::list(conn).await? {
        f.roles.insert(
            role.name.clone(),
            plan::Role {
                privileged: crate::governance::findings::is_privileged(&role.spec),
                owner: role.spec.owner.clone(),
                targets: role.spec.targets.clone(),
                logins: role.spec.logins.clone(),
                name: role.name,
            },
        );
    }
    for t in crate::access::targets::list(conn).await? {
        f.targets.push(plan::Target {
            name: t.name,
            labels: t.labels,
            owner: t.owner,
        });
    }
    let group_names: HashMap<String, String> = sqlx::query("SELECT id, name FROM groups")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
    let role_names: HashMap<String, String> = sqlx::query("SELECT id, name FROM roles")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
    for r in sqlx::query(
        "SELECT id, role_id, subject_kind, subject_id, kind, source, created_at, not_before, \
         not_after FROM role_assignments WHERE $1 = '' OR subject_id = $1 OR subject_kind = 'group'",
    )
    .bind(only_id.as_str())
    .fetch_all(&mut *conn)
    .await?
    {
        let not_before: Option<i64> = r.try_get(7)?;
        let not_after: Option<i64> = r.try_get(8)?;
        if not_before.is_some_and(|t| t > now_ms) || not_after.is_some_and(|t| t <= now_ms) {
            continue;
        }
        // Birthright access in its HR grace period is the new manager's to keep (approvals), and
        // ends by itself: not reviewed again.
        let source: String = r.try_get(5)?;
        if not_after.is_some() && source == crate::provisioning::lifecycle::engine::BIRTHRIGHT {
            continue;
        }
        let group = r.try_get::<String, _>(2)? == "group";
        let subject_id: String = r.try_get(3)?;
        if !group && !only_id.is_empty() && subject_id != only_id {
            continue;
        }
        let subject = if group {
            group_names.get(&subject_id)
        } else {
            names.get(&subject_id)
        };
        let (Some(subject), Some(role)) = (subject, role_names.get(&r.try_get::<String, _>(1)?))
        else {
            continue;
        };
        f.assignments.push(plan::Assignment {
            id: r.try_get(0)?,
            role: role.clone(),
            subject: subject.clone(),
            group,
            kind: HeldAs::parse(&r.try_get::<String, _>(4)?)?,
            source: r.try_get(5)?,
            since_ms: r.try_get(6)?,
        });
    }
    for r in sqlx::query(
        "SELECT group_id, identity_id, added_at FROM group_members WHERE $1 = '' OR identity_id = $1",
    )
    .bind(only_id.as_str())
    .fetch_all(&mut *conn)
    .await?
    {
        let (Some(g), Some(u)) = (
            group_names.get(&r.try_get::<String, _>(0)?),
            names.get(&r.try_get::<String, _>(1)?),
        ) else {
            continue;
        };
        f.members
            .entry(g.clone())
            .or_default()
            .push((u.clone(), r.try_get(2)?));
    }
    // Sessions by the role that carried them: a standing assignment's role, or a grant's.
    for r in sqlx::query(
        "SELECT s.identity_id, COALESCE(r.name, g.role_name), MAX(s.started_at), \
         SUM(CASE WHEN s.started_at >= $1 THEN 1 ELSE 0 END) FROM sessions s \
         LEFT JOIN role_assignments a ON s.grant_kind = 'standing' AND a.id = s.grant_id \
         LEFT JOIN roles r ON r.id = a.role_id \
         LEFT JOIN grants g ON s.grant_kind <> 'standing' AND g.id = s.grant_id \
         WHERE $2 = '' OR s.identity_id = $2 GROUP BY s.identity_id, COALESCE(r.name, g.role_name)",
    )
    .bind(now_ms - plan::UNUSED_MS)
    .bind(only_id.as_str())
    .fetch_all(&mut *conn)
    .await?
    {
        let role: Option<String> = r.try_get(1)?;
        if let (Some(u), Some(role)) = (names.get(&r.try_get::<String, _>(0)?), role) {
            f.usage.insert(
                (u.clone(), role),
                plan::Usage {
                    last_ms: r.try_get(2)?,
                    count_90d: r.try_get::<Option<i64>, _>(3)?.unwrap_or(0),
                },
            );
        }
    }
    for r in sqlx::query(
        "SELECT actor, MAX(time), COUNT(*) FROM audit_events WHERE time >= $1 \
         AND action = 'web.sign_in' AND ($2 = '' OR actor = $2) GROUP BY actor",
    )
    .bind(now_ms - plan::UNUSED_MS)
    .bind(only.map(|u| format!("identity:{u}")).unwrap_or_default())
    .fetch_all(&mut *conn)
    .await?
    {
        let actor: String = r.try_get(0)?;
        if let Some(u) = actor.strip_prefix("identity:") {
            f.sign_ins.insert(
                u.to_string(),
                plan::Usage {
                    last_ms: r.try_get(1)?,
                    count_90d: r.try_get(2)?,
                },
            );
        }
    }
    f.partial = !only_id.is_empty();
    // SoD conflicts are scanned for everyone at once; a one-person read (a mover review) leaves
    // them out rather than scan everyone for each mover of an import.
    let scanned = if f.partial {
        Vec::new()
    } else {
        crate::access::sod::scan(conn, now_ms).await?
    };
    for (c, excepted) in scanned {
        if excepted {
            continue;
        }
        let line = c.describe();
        for role in c.left.iter().chain(&c.right) {
            f.sod
                .entry(c.identity.clone())
                .or_default()
                .push((role.clone(), line.clone()));
        }
    }
    Ok(f)
}
