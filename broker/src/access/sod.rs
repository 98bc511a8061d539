//! Segregation of duties: rules naming two conflicting role sets (left vs right). Holding a role
//! of each side is a conflict, refused at request and approval time unless an unexpired exception
//! (approver, reason, expiry) covers it. [`scan`] lists the conflicts that exist anyway.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::collections::{BTreeSet, HashMap};

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub left: Vec<String>,
    pub right: Vec<String>,
    pub description: String,
    pub source: String,
}

/// A conflict: which rule, and which held (or requested) roles fall on each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub rule: String,
    pub identity: String,
    pub left: Vec<String>,
    pub right: Vec<String>,
}

impl Conflict {
    /// One line for refusals and reports.
    pub fn describe(&self) -> String {
        format!(
            "SoD rule {} forbids holding {} together with {}",
            self.rule,
            self.left.join(", "),
            self.right.join(", ")
        )
    }
}

/// The conflicts of holding `roles`, plain logic. With `adding`, only the conflicts that role
/// takes part in (a new request must not be refused for a conflict it does not create).
pub fn conflicts(
    rules: &[Rule],
    identity: &str,
    roles: &BTreeSet<String>,
    adding: Option<&str>,
) -> Vec<Conflict> {
    let mut out = Vec::new();
    for r in rules {
        let left: Vec<String> = r
            .left
            .iter()
            .filter(|x| roles.contains(*x))
            .cloned()
            .collect();
        let right: Vec<String> = r
            .right
            .iter()
            .filter(|x| roles.contains(*x))
            .cloned()
            .collect();
        if left.is_empty() || right.is_empty() {
            continue;
        }
        if let Some(a) = adding
            && !left.iter().chain(&right).any(|x| x == a)
        {
            continue;
        }
        out.push(Conflict {
            rule: r.name.clone(),
            identity: identity.into(),
            left,
            right,
        });
    }
    out
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Rule> {
    let parse = |s: String| {
        serde_json::from_str::<Vec<String>>(&s)
            .map_err(|e| Error::Storage(format!("SoD rule roles: {e}")))
    };
    Ok(Rule {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        left: parse(r.try_get(2)?)?,
        right: parse(r.try_get(3)?)?,
        description: r.try_get(4)?,
        source: r.try_get(5)?,
    })
}

/// Every rule, by name.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<Rule>> {
    sqlx::query(
        "SELECT id, name, left_roles, right_roles, description, source FROM sod_rules ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

fn check(name: &str, left: &[String], right: &[String]) -> Result<()> {
    crate::access::roles::validate_name(name).map_err(|_| {
        Error::invalid(format!(
            "SoD rule name {name:?}: use lower-case letters, digits, '.', '_' or '-'"
        ))
    })?;
    if left.is_empty() || right.is_empty() {
        return Err(Error::invalid(format!(
            "SoD rule {name}: left and right each need a role"
        )));
    }
    if let Some(both) = left.iter().find(|l| right.contains(l)) {
        return Err(Error::invalid(format!(
            "SoD rule {name}: role {both} is on both sides"
        )));
    }
    Ok(())
}

/// What it takes to create or replace a rule.
#[derive(Debug, Clone, Default)]
pub struct NewRule {
    pub name: String,
    pub left: Vec<String>,
    pub right: Vec<String>,
    pub description: String,
    /// Empty means `api`.
    pub source: String,
}

/// Creates or replaces a rule by name; audited as `sod_rule.create` / `sod_rule.update`.
pub async fn put(tx: &mut Tx, actor: &Actor, now_ms: i64, rule: &NewRule) -> Result<()> {
    let (name, left, right) = (rule.name.as_str(), &rule.left, &rule.right);
    let (description, source) = (rule.description.as_str(), rule.source.as_str());
    check(name, left, right)?;
    let l = serde_json::to_string(left).map_err(|e| Error::Storage(e.to_string()))?;
    let r = serde_json::to_string(right).map_err(|e| Error::Storage(e.to_string()))?;
    let updated = sqlx::query(
        "UPDATE sod_rules SET left_roles = $1, right_roles = $2, description = $3, updated_at = $4 \
         WHERE name = $5",
    )
    .bind(l.as_str())
    .bind(r.as_str())
    .bind(description)
    .bind(now_ms)
    .bind(name)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if updated == 0 {
        sqlx::query(
            "INSERT INTO sod_rules (id, name, left_roles, right_roles, description, source, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(ids::new_id())
        .bind(name)
        .bind(l.as_str())
        .bind(r.as_str())
        .bind(description)
        .bind(if source.is_empty() { "api" } else { source })
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    }
    let action = if updated == 0 {
        "sod_rule.create"
    } else {
        "sod_rule.update"
    };
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), action, format!("sod_rule:{name}"))
            .details(serde_json::json!({ "left": left, "right": right })),
    )
    .await?;
    Ok(())
}

/// Deletes a rule; audited as `sod_rule.delete`.
pub async fn delete(tx: &mut Tx, actor: &Actor, now_ms: i64, name: &str) -> Result<()> {
    let n = sqlx::query("DELETE FROM sod_rules WHERE name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(Error::NotFound(format!("SoD rule {name}")));
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "sod_rule.delete",
            format!("sod_rule:{name}"),
        ),
    )
    .await?;
    Ok(())
}

/// Records an exception: `identity` may hold the conflict of `rule` until `expires_at_ms`.
/// Audited as `sod_exception.create`.
pub async fn add_exception(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    rule: &str,
    username: &str,
    reason: &str,
    expires_at_ms: i64,
) -> Result<String> {
    if reason.trim().is_empty() {
        return Err(Error::invalid("an SoD exception needs a reason"));
    }
    if expires_at_ms <= now_ms {
        return Err(Error::invalid("an SoD exception must expire in the future"));
    }
    if !list(tx).await?.iter().any(|r| r.name == rule) {
        return Err(Error::NotFound(format!("SoD rule {rule}")));
    }
    let identity = crate::identity::identities::by_username(tx, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
    let id = ids::new_id();
    sqlx::query(
        "INSERT INTO sod_exceptions (id, rule_name, identity_id, approved_by, reason, expires_at, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.as_str())
    .bind(rule)
    .bind(identity.id.as_str())
    .bind(actor.to_string())
    .bind(reason)
    .bind(expires_at_ms)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "sod_exception.create",
            format!("sod_rule:{rule}"),
        )
        .details(serde_json::json!({
            "identity": username, "reason": reason,
            "expires_at": crate::clock::format_ms(expires_at_ms),
        })),
    )
    .await?;
    Ok(id)
}

/// The rule names an identity holds an unexpired exception for.
pub async fn exceptions_of(
    conn: &mut AnyConnection,
    identity_id: &str,
    now_ms: i64,
) -> Result<BTreeSet<String>> {
    let rows = sqlx::query(
        "SELECT rule_name FROM sod_exceptions WHERE identity_id = $1 AND expires_at > $2",
    )
    .bind(identity_id)
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// The roles an identity holds now or may activate: assignments in their window (standing and
/// eligible, direct and through groups) and live grants.
pub async fn roles_held(
    conn: &mut AnyConnection,
    identity_id: &str,
    now_ms: i64,
) -> Result<BTreeSet<String>> {
    let mut roles: BTreeSet<String> = crate::access::assignments::of_identity(conn, identity_id)
        .await?
        .into_iter()
        .filter(|a| a.in_window(now_ms))
        .map(|a| a.role)
        .collect();
    for g in crate::access::grants::active_of(conn, identity_id, now_ms).await? {
        roles.insert(g.role);
    }
    Ok(roles)
}

/// Refuses (code `sod_conflict`, naming the rule) when `identity` holding `role` on top of what
/// it holds breaks a rule no exception covers.
pub async fn check_adding(
    conn: &mut AnyConnection,
    identity_id: &str,
    username: &str,
    role: &str,
    now_ms: i64,
) -> Result<()> {
    let rules = list(conn).await?;
    if rules.is_empty() {
        return Ok(());
    }
    let mut roles = roles_held(conn, identity_id, now_ms).await?;
    roles.insert(role.into());
    let excepted = exceptions_of(conn, identity_id, now_ms).await?;
    let open: Vec<Conflict> = conflicts(&rules, username, &roles, Some(role))
        .into_iter()
        .filter(|c| !excepted.contains(&c.rule))
        .collect();
    match open.first() {
        None => Ok(()),
        Some(c) => Err(Error::refused(
            "sod_conflict",
            format!("{} (no exception covers {username})", c.describe()),
        )),
    }
}

/// Every existing violation (detective control): identities whose held roles break a rule, with
/// whether an exception covers it.
pub async fn scan(conn: &mut AnyConnection, now_ms: i64) -> Result<Vec<(Conflict, bool)>> {
    let rules = list(conn).await?;
    let mut out = Vec::new();
    if rules.is_empty() {
        return Ok(out);
    }
    let mut users: HashMap<String, String> = HashMap::new();
    for r in sqlx::query("SELECT id, username FROM identities")
        .fetch_all(&mut *conn)
        .await?
    {
        users.insert(r.try_get(0)?, r.try_get(1)?);
    }
    let mut ids: Vec<(&String, &String)> = users.iter().collect();
    ids.sort_by(|a, b| a.1.cmp(b.1));
    for (id, name) in ids {
        let roles = roles_held(conn, id, now_ms).await?;
        if roles.len() < 2 {
            continue;
        }
        let found = conflicts(&rules, name, &roles, None);
        if found.is_empty() {
            continue;
        }
        let excepted = exceptions_of(conn, id, now_ms).await?;
        for c in found {
            let covered = excepted.contains(&c.rule);
            out.push((c, covered));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_need_both_sides_and_the_added_role() {
        let rules = vec![Rule {
            id: "1".into(),
            name: "deployer-vs-approver".into(),
            left: vec!["prod-deployer".into()],
            right: vec!["change-approver".into()],
            description: String::new(),
            source: "api".into(),
        }];
        let held: BTreeSet<String> =
            ["prod-deployer".into(), "change-approver".into(), "x".into()].into();
        assert_eq!(conflicts(&rules, "a", &held, None).len(), 1);
        assert_eq!(
            conflicts(&rules, "a", &held, Some("change-approver")).len(),
            1
        );
        assert!(conflicts(&rules, "a", &held, Some("x")).is_empty());
        let one: BTreeSet<String> = ["prod-deployer".into()].into();
        assert!(conflicts(&rules, "a", &one, None).is_empty());
        assert!(
            conflicts(&rules, "a", &held, None)[0]
                .describe()
                .contains("deployer-vs-approver")
        );
    }
}
