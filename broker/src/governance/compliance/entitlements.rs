//! Entitlements — who can reach what, and why: identity × target × login × how held × since ×
//! last used. One plain function ([`entitlements`]) over a [`State`], which is either read from
//! the tables now ([`State::load`]) or rebuilt from the audit log as of a past time
//! ([`State::replay`]), so "what could alice reach on 2026-03-31?" is answered by the same code
//! that answers it today.
//!
//! What the replay knows comes only from events: roles (full spec in `role.create`/`update`),
//! targets (labels in `target.create`/`update`), identities and their status, memberships,
//! assignments with their windows (also the birthright roles an `hr.*` event names and the
//! grace periods), grants with their windows, extensions and revocations, privileges, and the
//! terminations that remove a leaver's direct assignments, memberships and privileges.

use crate::access::role_spec::RoleSpec;
use crate::error::Result;
use crate::ledger::audit::Event;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row};
use std::collections::{BTreeMap, BTreeSet};

/// A standing or eligible assignment of a role to a person or a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// `standing` or `eligible`.
    pub kind: String,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub since: i64,
}

/// A grant (from a request or break-glass) with its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub identity: String,
    pub role: String,
    /// `request` or `break_glass`.
    pub source: String,
    pub targets: Option<Vec<String>>,
    pub login: Option<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
}

/// Everything an entitlement depends on.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// username → status.
    pub identities: BTreeMap<String, String>,
    /// group → member → since.
    pub groups: BTreeMap<String, BTreeMap<String, i64>>,
    pub roles: BTreeMap<String, RoleSpec>,
    /// target → labels.
    pub targets: BTreeMap<String, Map<String, Value>>,
    /// (role, subject: a username or `group:NAME`, kind) → assignment.
    pub assignments: BTreeMap<(String, String, String), Assignment>,
    /// grant id → grant.
    pub grants: BTreeMap<String, Grant>,
    /// (username, privilege) → since.
    pub privileges: BTreeMap<(String, String), i64>,
}

/// One row: this person can reach this target as this login, this way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Entitlement {
    pub identity: String,
    pub target: String,
    pub login: String,
    pub role: String,
    /// `standing`, `eligible` (may activate or request), `grant`, `break_glass`, each with
    /// ` via group:NAME` when held through a group; `privilege` for Gatehouse's own rights.
    pub held_as: String,
    pub since: i64,
    pub until: Option<i64>,
}

fn live(a: &Assignment, at: i64) -> bool {
    a.not_before.is_none_or(|t| t <= at) && a.not_after.is_none_or(|t| at < t)
}

/// Who could reach what at `at_ms`, sorted. Only active identities hold anything.
pub fn entitlements(s: &State, at_ms: i64) -> Vec<Entitlement> {
    let mut out = BTreeSet::new();
    let active = |u: &str| s.identities.get(u).map(String::as_str) == Some("active");
    let mut emit = |identity: &str,
                    role: &str,
                    held_as: String,
                    since: i64,
                    until: Option<i64>,
                    narrow: Option<(&Option<Vec<String>>, &Option<String>)>| {
        let Some(spec) = s.roles.get(role) else {
            return;
        };
        for (target, labels) in &s.targets {
            if !spec.targets.matches(target, labels) {
                continue;
            }
            if let Some((Some(ts), _)) = narrow
                && !ts.iter().any(|t| t == target)
            {
                continue;
            }
            for login in &spec.logins {
                if let Some((_, Some(l))) = narrow
                    && l != login
                {
                    continue;
                }
                out.insert(Entitlement {
                    identity: identity.into(),
                    target: target.clone(),
                    login: login.clone(),
                    role: role.into(),
                    held_as: held_as.clone(),
                    since,
                    until,
                });
            }
        }
    };
    for ((role, subject, kind), a) in &s.assignments {
        if !live(a, at_ms) {
            continue;
        }
        if let Some(group) = subject.strip_prefix("group:") {
            for (member, joined) in s.groups.get(group).into_iter().flatten() {
                if active(member) {
                    emit(
                        member,
                        role,
                        format!("{kind} via group:{group}"),
                        a.since.max(*joined),
                        a.not_after,
                        None,
                    );
                }
            }
        } else if active(subject) {
            emit(subject, role, kind.clone(), a.since, a.not_after, None);
        }
    }
    for g in s.grants.values() {
        let end = g.revoked_at.map_or(g.not_after, |r| r.min(g.not_after));
        if g.not_before <= at_ms && at_ms < end && active(&g.identity) {
            let held = if g.source == "break_glass" {
                "break_glass"
            } else {
                "grant"
            };
            emit(
                &g.identity,
                &g.role,
                held.into(),
                g.not_before,
                Some(end),
                Some((&g.targets, &g.login)),
            );
        }
    }
    for ((who, privilege), since) in &s.privileges {
        if active(who) {
            out.insert(Entitlement {
                identity: who.clone(),
                target: "gatehouse".into(),
                login: privilege.clone(),
                role: privilege.clone(),
                held_as: "privilege".into(),
                since: *since,
                until: None,
            });
        }
    }
    out.into_iter().collect()
}

fn ms(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
        _ => None,
    }
}

fn text(d: &Value, k: &str) -> String {
    d.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn strs(v: Option<&Value>) -> Option<Vec<String>> {
    let a = v?.as_array()?;
    Some(
        a.iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
    )
}

/// The actions [`State::apply`] reads; the replay asks the database for these only.
pub const ACTIONS: &[&str] = &[
    "identity.create",
    "identity.status",
    "identity.rename",
    "hr.joiner",
    "hr.staged",
    "hr.start",
    "hr.mover",
    "hr.leave",
    "hr.leaver",
    "lifecycle.grace",
    "lifecycle.keep",
    "lifecycle.restore",
    "group.rename",
    "group.delete",
    "group.member.add",
    "group.member.remove",
    "role.create",
    "role.update",
    "role.delete",
    "target.create",
    "target.update",
    "target.delete",
    "assignment.add",
    "assignment.remove",
    "assignment.end",
    "grant.start",
    "grant.revoke",
    "grant.extend",
    "privilege.grant",
    "privilege.revoke",
];

impl State {
    /// Applies one audit event (successful changes only; others are ignored).
    pub fn apply(&mut self, e: &Event) {
        if e.outcome != "success" {
            return;
        }
        let d: Value = serde_json::from_str(&e.details).unwrap_or(Value::Null);
        let (kind, name) = e.object.split_once(':').unwrap_or(("", &e.object));
        let name = name.to_string();
        let t = e.time_ms;
        match e.action.as_str() {
            "identity.create" => {
                self.identities.insert(name, "active".into());
            }
            "identity.status" => {
                let to = text(&d, "to");
                if to == "terminated" {
                    self.terminate(&name);
                }
                self.identities.insert(name, to);
            }
            "identity.rename" => self.rename_identity(&text(&d, "from"), &name),
            "hr.joiner" | "hr.staged" | "hr.start" | "hr.mover" | "hr.leave" | "hr.leaver" => {
                if let Some(status) = d.get("status").and_then(Value::as_str)
                    && d.get("id").is_some()
                {
                    // The bulk path: the row was inserted without `identity.create`.
                    self.identities.insert(name.clone(), status.into());
                }
                // The bulk joiner path writes birthright assignments with no `assignment.add`:
                // `roles_added` is their record. A role kept again out of its grace period has
                // its own `lifecycle.restore`.
                for r in strs(d.get("roles_added")).unwrap_or_default() {
                    self.assignments
                        .entry((r, name.clone(), "standing".to_string()))
                        .or_insert(Assignment {
                            kind: "standing".into(),
                            not_before: None,
                            not_after: None,
                            since: t,
                        });
                }
                // `roles_removed` are not removed here: they enter a grace period, whose end
                // the `lifecycle.grace` event of the same change carries.
            }
            "lifecycle.grace" => {
                let key = (text(&d, "role"), name, "standing".to_string());
                if let Some(a) = self.assignments.get_mut(&key) {
                    a.not_after = ms(d.get("until_ms"));
                }
            }
            "lifecycle.keep" | "lifecycle.restore" => {
                let key = (text(&d, "role"), name, "standing".to_string());
                if let Some(a) = self.assignments.get_mut(&key) {
                    a.not_after = None;
                }
            }
            "group.rename" => {
                let from = text(&d, "from");
                if let Some(m) = self.groups.remove(&from) {
                    self.groups.insert(name.clone(), m);
                }
                self.resubject(&format!("group:{from}"), &format!("group:{name}"));
            }
            "group.delete" => {
                self.groups.remove(&name);
            }
            "group.member.add" => {
                self.groups
                    .entry(name)
                    .or_default()
                    .insert(text(&d, "member"), t);
            }
            "group.member.remove" => {
                if let Some(m) = self.groups.get_mut(&name) {
                    m.remove(&text(&d, "member"));
                }
            }
            "role.create" | "role.update" => {
                let spec = d.get(if e.action == "role.create" {
                    "spec"
                } else {
                    "after"
                });
                if let Some(spec) = spec.and_then(|s| serde_json::from_value(s.clone()).ok()) {
                    self.roles.insert(name, spec);
                }
            }
            "role.delete" => {
                self.roles.remove(&name);
                self.assignments.retain(|(r, _, _), _| *r != name);
            }
            "target.create" | "target.update" if kind == "target" => {
                let labels = d
                    .get("labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                self.targets.insert(name, labels);
            }
            "target.delete" => {
                self.targets.remove(&name);
            }
            "assignment.add" => {
                self.assignments.insert(
                    (name, text(&d, "subject"), text(&d, "kind")),
                    Assignment {
                        kind: text(&d, "kind"),
                        not_before: ms(d.get("not_before")),
                        not_after: ms(d.get("not_after")),
                        since: t,
                    },
                );
            }
            "assignment.remove" => {
                self.assignments
                    .remove(&(name, text(&d, "subject"), text(&d, "kind")));
            }
            "assignment.end" => {
                if let Some(a) =
                    self.assignments
                        .get_mut(&(name, text(&d, "subject"), text(&d, "kind")))
                {
                    a.not_after = ms(d.get("until"));
                }
            }
            "grant.start" => {
                self.grants.insert(
                    name,
                    Grant {
                        identity: text(&d, "identity"),
                        role: text(&d, "role"),
                        source: text(&d, "source"),
                        targets: strs(d.get("targets")),
                        login: d.get("login").and_then(Value::as_str).map(String::from),
                        not_before: ms(d.get("not_before")).unwrap_or(t),
                        not_after: ms(d.get("not_after")).unwrap_or(t),
                        revoked_at: None,
                    },
                );
            }
            "grant.revoke" => {
                if let Some(g) = self.grants.get_mut(&name) {
                    g.revoked_at.get_or_insert(t);
                }
            }
            "grant.extend" => {
                if let (Some(g), Some(to)) = (self.grants.get_mut(&name), ms(d.get("to"))) {
                    g.not_after = to;
                }
            }
            "privilege.grant" => {
                self.privileges
                    .entry((name, text(&d, "privilege")))
                    .or_insert(t);
            }
            "privilege.revoke" => {
                self.privileges.remove(&(name, text(&d, "privilege")));
            }
            _ => {}
        }
    }

    /// What a termination removes: direct assignments, memberships, privileges (grants are
    /// revoked with their own events).
    fn terminate(&mut self, who: &str) {
        self.assignments.retain(|(_, s, _), _| s != who);
        for m in self.groups.values_mut() {
            m.remove(who);
        }
        self.privileges.retain(|(w, _), _| w != who);
    }

    fn resubject(&mut self, from: &str, to: &str) {
        let moved: Vec<_> = self
            .assignments
            .keys()
            .filter(|(_, s, _)| s == from)
            .cloned()
            .collect();
        for k in moved {
            if let Some(a) = self.assignments.remove(&k) {
                self.assignments.insert((k.0, to.into(), k.2), a);
            }
        }
    }

    fn rename_identity(&mut self, from: &str, to: &str) {
        if let Some(s) = self.identities.remove(from) {
            self.identities.insert(to.into(), s);
        }
        self.resubject(from, to);
        for m in self.groups.values_mut() {
            if let Some(since) = m.remove(from) {
                m.insert(to.into(), since);
            }
        }
        for g in self.grants.values_mut() {
            if g.identity == from {
                g.identity = to.into();
            }
        }
        let privs: Vec<_> = self
            .privileges
            .keys()
            .filter(|(w, _)| w == from)
            .cloned()
            .collect();
        for k in privs {
            if let Some(since) = self.privileges.remove(&k) {
                self.privileges.insert((to.into(), k.1), since);
            }
        }
    }

    /// The state as of `at_ms` (events before it), rebuilt from the audit log alone.
    pub async fn replay(conn: &mut AnyConnection, at_ms: i64) -> Result<Self> {
        let mut s = State::default();
        let list = ACTIONS
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT seq, time, actor, action, object, outcome, details, prev_hash, hash \
             FROM audit_events WHERE time < $1 AND action IN ({list}) ORDER BY seq"
        );
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(at_ms)
            .fetch(conn);
        while let Some(row) = rows.next().await {
            let row = row?;
            s.apply(&Event {
                seq: row.try_get(0)?,
                time_ms: row.try_get(1)?,
                actor: row.try_get(2)?,
                action: row.try_get(3)?,
                object: row.try_get(4)?,
                outcome: row.try_get(5)?,
                details: row.try_get(6)?,
                prev_hash: String::new(),
                hash: String::new(),
            });
        }
        Ok(s)
    }

    /// The state the tables hold now.
    pub async fn load(conn: &mut AnyConnection) -> Result<Self> {
        let mut s = State::default();
        for r in sqlx::query("SELECT username, status FROM identities")
            .fetch_all(&mut *conn)
            .await?
        {
            s.identities.insert(r.try_get(0)?, r.try_get(1)?);
        }
        for r in sqlx::query(
            "SELECT g.name, i.username, m.added_at FROM group_members m \
             JOIN groups g ON g.id = m.group_id JOIN identities i ON i.id = m.identity_id",
        )
        .fetch_all(&mut *conn)
        .await?
        {
            s.groups
                .entry(r.try_get(0)?)
                .or_default()
                .insert(r.try_get(1)?, r.try_get(2)?);
        }
        for r in sqlx::query("SELECT name, spec FROM roles")
            .fetch_all(&mut *conn)
            .await?
        {
            let spec: String = r.try_get(1)?;
            if let Ok(spec) = serde_json::from_str(&spec) {
                s.roles.insert(r.try_get(0)?, spec);
            }
        }
        for r in sqlx::query("SELECT name, labels FROM targets")
            .fetch_all(&mut *conn)
            .await?
        {
            let labels: String = r.try_get(1)?;
            s.targets.insert(
                r.try_get(0)?,
                serde_json::from_str(&labels).unwrap_or_default(),
            );
        }
        for r in sqlx::query(
            "SELECT r.name, CASE a.subject_kind WHEN 'group' THEN 'group:' || g.name \
             ELSE i.username END, a.kind, a.not_before, a.not_after, a.created_at \
             FROM role_assignments a JOIN roles r ON r.id = a.role_id \
             LEFT JOIN identities i ON a.subject_kind = 'identity' AND i.id = a.subject_id \
             LEFT JOIN groups g ON a.subject_kind = 'group' AND g.id = a.subject_id",
        )
        .fetch_all(&mut *conn)
        .await?
        {
            let subject: Option<String> = r.try_get(1)?;
            let kind: String = r.try_get(2)?;
            if let Some(subject) = subject {
                s.assignments.insert(
                    (r.try_get(0)?, subject, kind.clone()),
                    Assignment {
                        kind,
                        not_before: r.try_get(3)?,
                        not_after: r.try_get(4)?,
                        since: r.try_get(5)?,
                    },
                );
            }
        }
        for r in sqlx::query(
            "SELECT g.id, i.username, g.role_name, g.source, g.targets, g.login, g.not_before, \
             g.not_after, g.revoked_at FROM grants g JOIN identities i ON i.id = g.identity_id",
        )
        .fetch_all(&mut *conn)
        .await?
        {
            let targets: Option<String> = r.try_get(4)?;
            s.grants.insert(
                r.try_get(0)?,
                Grant {
                    identity: r.try_get(1)?,
                    role: r.try_get(2)?,
                    source: r.try_get(3)?,
                    targets: targets.and_then(|t| serde_json::from_str(&t).ok()),
                    login: r.try_get(5)?,
                    not_before: r.try_get(6)?,
                    not_after: r.try_get(7)?,
                    revoked_at: r.try_get(8)?,
                },
            );
        }
        for r in sqlx::query(
            "SELECT i.username, p.privilege, p.granted_at FROM identity_privileges p \
             JOIN identities i ON i.id = p.identity_id",
        )
        .fetch_all(&mut *conn)
        .await?
        {
            s.privileges
                .insert((r.try_get(0)?, r.try_get(1)?), r.try_get(2)?);
        }
        Ok(s)
    }
}

/// Last use of each (identity, target, login) before `at_ms`, from the sessions table.
pub async fn last_used(
    conn: &mut AnyConnection,
    at_ms: i64,
) -> Result<BTreeMap<(String, String, String), i64>> {
    let mut out = BTreeMap::new();
    for r in sqlx::query(
        "SELECT identity, target, login, MAX(started_at) FROM sessions WHERE started_at < $1 \
         GROUP BY identity, target, login",
    )
    .bind(at_ms)
    .fetch_all(conn)
    .await?
    {
        out.insert((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?), r.try_get(3)?);
    }
    Ok(out)
}
