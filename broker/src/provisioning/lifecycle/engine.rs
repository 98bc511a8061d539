//! Carries out a joiner / mover / leaver plan: identities created, updated, suspended or
//! terminated; birthright roles assigned at once, and those no longer implied given a grace
//! period; leavers cut off everywhere. Each change is audited as `hr.<kind>` with the record
//! (file, line, employee number) that caused it, in the transaction of the change.

use super::plan::{Change, Current, Kind};
use crate::access::assignments::{self, Kind as AssignmentKind, NewAssignment, Subject};
use crate::access::role_spec::RoleSpec;
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::identity::identities::{self, NewIdentity, Status};
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row};
use std::collections::{BTreeSet, HashMap};

/// Default grace period for access a mover no longer needs.
pub const DEFAULT_GRACE_MS: i64 = 7 * 86_400_000;

/// Where assignments made by birthright rules come from.
pub const BIRTHRIGHT: &str = "birthright";

/// Everyone HR manages now, by employee number.
pub async fn current(conn: &mut AnyConnection) -> Result<HashMap<String, Current>> {
    let rows = sqlx::query(
        "SELECT id, username, status, attributes, employee_number FROM identities \
         WHERE employee_number IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut held: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in sqlx::query(
        "SELECT a.subject_id, r.name FROM role_assignments a JOIN roles r ON r.id = a.role_id \
         WHERE a.source = $1 AND a.subject_kind = 'identity' AND a.not_after IS NULL",
    )
    .bind(BIRTHRIGHT)
    .fetch_all(&mut *conn)
    .await?
    {
        held.entry(r.try_get(0)?).or_default().insert(r.try_get(1)?);
    }
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let id: String = r.try_get(0)?;
        let attrs: String = r.try_get(3)?;
        let status: String = r.try_get(2)?;
        out.insert(
            r.try_get::<String, _>(4)?,
            Current {
                birthright: held.remove(&id).unwrap_or_default(),
                identity_id: id,
                username: r.try_get(1)?,
                status: Status::parse(&status)?,
                attributes: serde_json::from_str(&attrs).unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

/// The roles with a birthright rule.
pub async fn birthright_roles(conn: &mut AnyConnection) -> Result<Vec<(String, RoleSpec)>> {
    Ok(crate::access::roles::list(conn)
        .await?
        .into_iter()
        .filter(|r| !r.spec.birthright.is_empty())
        .map(|r| (r.name, r.spec))
        .collect())
}

/// Applies one planned change.
pub async fn apply(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    c: &Change,
    source: &str,
    grace_ms: i64,
) -> Result<()> {
    if c.kind == Kind::Unchanged {
        return Ok(());
    }
    match c.kind {
        Kind::Joiner | Kind::Staged => {
            if identities::by_username(tx, &c.username).await?.is_some() {
                return Err(Error::Conflict(format!(
                    "username {} is taken by an identity HR does not manage (employee {})",
                    c.username, c.employee_number
                )));
            }
            let created = identities::create(
                tx,
                actor,
                now_ms,
                NewIdentity {
                    username: c.username.clone(),
                    display_name: c.display_name.clone(),
                    email: c.email.clone(),
                    attributes: c.attributes.clone(),
                    source: "hr".into(),
                },
            )
            .await?;
            sqlx::query("UPDATE identities SET employee_number = $1 WHERE id = $2")
                .bind(c.employee_number.as_str())
                .bind(created.id.as_str())
                .execute(&mut **tx)
                .await
                .map_err(|e| {
                    Error::from(e).on_conflict(|| {
                        format!("employee number {} is already used", c.employee_number)
                    })
                })?;
            if c.status != Status::Active {
                identities::set_status(tx, actor, now_ms, &c.username, c.status).await?;
            }
        }
        Kind::Mover | Kind::Start | Kind::Leave => {
            identities::update(
                tx,
                actor,
                now_ms,
                &c.username,
                &c.display_name,
                c.email.as_deref(),
                &c.attributes,
            )
            .await?;
            if let Some(i) = identities::by_username(tx, &c.username).await?
                && i.status != c.status
            {
                // The feed lifts only a status it (or the system) set: an administrator's
                // suspension or disable stays until an administrator lifts it.
                let by = identities::status_set_by(tx, &i.id).await?;
                let held = c.status == Status::Active
                    && matches!(i.status, Status::Suspended | Status::Disabled)
                    && !by.is_empty()
                    && by != actor.to_string();
                if held {
                    audit::append(
                        tx,
                        now_ms,
                        NewEvent::new(
                            actor.to_string(),
                            "hr.status_kept",
                            format!("identity:{}", c.username),
                        )
                        .details(serde_json::json!({
                            "status": i.status, "set_by": by, "feed_says": c.status,
                            "source": source, "line": c.line,
                        })),
                    )
                    .await?;
                } else {
                    identities::set_status(tx, actor, now_ms, &c.username, c.status).await?;
                }
            }
        }
        Kind::Leaver => {
            identities::update(
                tx,
                actor,
                now_ms,
                &c.username,
                &c.display_name,
                c.email.as_deref(),
                &c.attributes,
            )
            .await?;
        }
        Kind::Unchanged => {}
    }
    let mut handed = Value::Null;
    if c.kind == Kind::Leaver {
        handed = terminate(tx, actor, now_ms, &c.username, &c.attributes).await?;
    } else {
        for role in &c.roles_add {
            assign(tx, actor, now_ms, &c.username, role).await?;
        }
        for role in &c.roles_remove {
            start_grace(tx, actor, now_ms, &c.username, role, now_ms + grace_ms).await?;
        }
        // What the mover holds beyond birthright goes to the new manager's review.
        if c.kind == Kind::Mover && !c.moved.is_empty() {
            crate::governance::campaigns::mover::open(tx, actor, now_ms, &c.username, grace_ms)
                .await?;
        }
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            format!("hr.{}", c.kind.as_str()),
            format!("identity:{}", c.username),
        )
        .details(serde_json::json!({
            "source": source,
            "line": c.line,
            "employee_number": c.employee_number,
            "status": c.status,
            "moved": c.moved,
            "roles_added": c.roles_add,
            "roles_removed": c.roles_remove,
            "leaver": handed,
        })),
    )
    .await?;
    Ok(())
}

/// Brings one identity's birthright roles in line with its attributes (SCIM changes, which come
/// one at a time): new roles at once, roles no longer implied into their grace period. Returns
/// (added, removed).
#[allow(clippy::too_many_arguments)]
pub async fn reconcile_birthright(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    identity_id: &str,
    attributes: &Map<String, Value>,
    status: crate::identity::identities::Status,
    grace_ms: i64,
) -> Result<(Vec<String>, Vec<String>)> {
    let roles = birthright_roles(tx).await?;
    if roles.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let want = super::plan::birthright_roles(&roles, attributes, status);
    let have: BTreeSet<String> = sqlx::query_scalar(
        "SELECT r.name FROM role_assignments a JOIN roles r ON r.id = a.role_id \
         WHERE a.source = $1 AND a.subject_kind = 'identity' AND a.subject_id = $2 AND a.not_after IS NULL",
    )
    .bind(BIRTHRIGHT)
    .bind(identity_id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let added: Vec<String> = want.difference(&have).cloned().collect();
    let removed: Vec<String> = have.difference(&want).cloned().collect();
    for role in &added {
        assign(tx, actor, now_ms, username, role).await?;
    }
    for role in &removed {
        start_grace(tx, actor, now_ms, username, role, now_ms + grace_ms).await?;
    }
    Ok((added, removed))
}

/// The birthright roles of an identity created in this transaction, which holds no
/// assignment yet: the roles its attributes imply, assigned without looking for ones it has.
/// `later`: the rows go with the commit (`Tx::write_later`).
pub async fn birthright_for_joiner(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    identity: &identities::Identity,
    status: Status,
    later: bool,
) -> Result<Vec<String>> {
    if status != Status::Active {
        return Ok(Vec::new());
    }
    let mut added = Vec::new();
    for role in crate::access::roles::list(tx).await? {
        if role.spec.birthright.is_empty() || !role.spec.birthright_matches(&identity.attributes) {
            continue;
        }
        let a = assignments::Assignment {
            id: crate::ids::new_id(),
            role_id: role.id,
            role: role.name,
            subject: Subject::Identity(identity.username.clone()),
            subject_id: identity.id.clone(),
            kind: AssignmentKind::Standing,
            not_before_ms: None,
            not_after_ms: None,
            source: BIRTHRIGHT.into(),
        };
        assignments::insert(tx, actor, now_ms, &a, later).await?;
        added.push(a.role);
    }
    Ok(added)
}

/// Gives `username` a birthright role: a new standing assignment, or the one in its grace
/// period kept again.
async fn assign(tx: &mut Tx, actor: &Actor, now_ms: i64, username: &str, role: &str) -> Result<()> {
    let kept = sqlx::query(
        "UPDATE role_assignments SET not_after = NULL WHERE source = $1 AND subject_kind = 'identity' \
         AND subject_id = (SELECT id FROM identities WHERE username = $2) \
         AND role_id = (SELECT id FROM roles WHERE name = $3) AND not_after IS NOT NULL",
    )
    .bind(BIRTHRIGHT)
    .bind(username)
    .bind(role)
    .execute(&mut **tx)
    .await?;
    if kept.rows_affected() > 0 {
        // Implied again before its grace period ended: the end is lifted, and said so (the
        // audit log alone must tell who held what when).
        audit::append(
            tx,
            now_ms,
            NewEvent::new(
                actor.to_string(),
                "lifecycle.restore",
                format!("identity:{username}"),
            )
            .details(serde_json::json!({ "role": role,
                    "note": "implied by HR attributes again: the grace period's end is lifted" })),
        )
        .await?;
        return Ok(());
    }
    assignments::add(
        tx,
        actor,
        now_ms,
        NewAssignment {
            role: role.into(),
            subject: Subject::Identity(username.into()),
            kind: AssignmentKind::Standing,
            not_before_ms: None,
            not_after_ms: None,
            source: BIRTHRIGHT.into(),
        },
    )
    .await?;
    Ok(())
}

/// Ends a birthright role after the grace period (unless kept before); audited as
/// `lifecycle.grace`.
async fn start_grace(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    role: &str,
    until_ms: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE role_assignments SET not_after = $4 WHERE source = $1 AND subject_kind = 'identity' \
         AND subject_id = (SELECT id FROM identities WHERE username = $2) \
         AND role_id = (SELECT id FROM roles WHERE name = $3) AND not_after IS NULL",
    )
    .bind(BIRTHRIGHT)
    .bind(username)
    .bind(role)
    .bind(until_ms)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "lifecycle.grace", format!("identity:{username}"))
            .details(serde_json::json!({ "role": role, "until_ms": until_ms,
                "note": "no longer implied by HR attributes; removed at the end of the grace period unless the manager keeps it" })),
    )
    .await?;
    Ok(())
}

/// A leaver: terminated at once (browser sessions end; live SSH sessions end through the
/// `IdentityDisabled` event), every grant revoked, API tokens revoked, SSH keys disabled,
/// pending requests cancelled, birthright and kept assignments removed, privileges and sign-in
/// factors (password, TOTP, passkeys, recovery codes) removed, owned targets handed to the
/// manager. Returns what was done, for the audit event.
pub async fn terminate(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    attributes: &Map<String, Value>,
) -> Result<Value> {
    let who = identities::by_username(tx, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
    if who.status != Status::Terminated {
        identities::set_status(tx, actor, now_ms, username, Status::Terminated).await?;
    }
    let mut revoked = 0;
    for g in crate::access::grants::active_of(tx, &who.id, now_ms).await? {
        crate::access::grants::revoke(tx, actor, now_ms, &g.id, "leaver").await?;
        revoked += 1;
    }
    let tokens = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE identity_id = $2 AND revoked_at IS NULL",
    )
    .bind(now_ms)
    .bind(who.id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let keys = sqlx::query(
        "UPDATE ssh_keys SET status = 'disabled' WHERE identity_id = $1 AND status = 'active'",
    )
    .bind(who.id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let requests = sqlx::query(
        "UPDATE access_requests SET state = 'cancelled', decided_at = $1 \
         WHERE requester_id = $2 AND state = 'pending'",
    )
    .bind(now_ms)
    .bind(who.id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    // Every role assignment of the person (birthright, kept, and those an administrator made),
    // their group memberships (roles and approver seats) and single sign-on links: someone
    // given the same username later starts with nothing of theirs.
    let birthright = sqlx::query(
        "DELETE FROM role_assignments WHERE source IN ($1, 'kept') AND subject_kind = 'identity' \
         AND subject_id = $2",
    )
    .bind(BIRTHRIGHT)
    .bind(who.id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let other_assignments = sqlx::query(
        "DELETE FROM role_assignments WHERE subject_kind = 'identity' AND subject_id = $1",
    )
    .bind(who.id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let memberships = sqlx::query("DELETE FROM group_members WHERE identity_id = $1")
        .bind(who.id.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    let links = sqlx::query("DELETE FROM identity_links WHERE identity_id = $1")
        .bind(who.id.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    // Privileges and sign-in factors go too: a leaver re-created later (SCIM, HR) starts as a
    // newcomer, never as the administrator it once was, and nobody who knew its password can
    // sign in as it.
    let mut privileges = 0;
    let mut factors = 0;
    for table in [
        "identity_privileges",
        "identity_passwords",
        "identity_totp",
        "identity_passkeys",
        "recovery_codes",
    ] {
        let n = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE identity_id = $1"
        )))
        .bind(who.id.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if table == "identity_privileges" {
            privileges += n;
        } else {
            factors += n;
        }
    }
    let manager = attributes
        .get("manager")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let mut handed = 0;
    if let Some(m) = &manager {
        handed = sqlx::query("UPDATE targets SET owner = $1 WHERE owner = $2")
            .bind(m.as_str())
            .bind(username)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    }
    Ok(serde_json::json!({
        "grants_revoked": revoked, "tokens_revoked": tokens, "ssh_keys_disabled": keys,
        "requests_cancelled": requests, "birthright_removed": birthright,
        "privileges_removed": privileges, "factors_removed": factors,
        "assignments_removed": other_assignments, "group_memberships_removed": memberships,
        "sso_links_removed": links,
        "targets_handed_to": manager, "targets_handed": handed,
    }))
}

/// Birthright access in its grace period held by the people `manager` manages: what the manager
/// may keep (see [`keep`]), soonest end first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InGrace {
    pub assignment_id: String,
    pub username: String,
    pub role: String,
    pub ends_ms: i64,
}

/// See [`InGrace`].
pub async fn in_grace_for(
    conn: &mut AnyConnection,
    manager: &str,
    now_ms: i64,
) -> Result<Vec<InGrace>> {
    let rows = sqlx::query(
        "SELECT a.id, i.username, r.name, a.not_after, i.attributes FROM role_assignments a \
         JOIN roles r ON r.id = a.role_id JOIN identities i ON i.id = a.subject_id \
         WHERE a.source = $1 AND a.subject_kind = 'identity' AND a.not_after > $2 \
         ORDER BY a.not_after, i.username",
    )
    .bind(BIRTHRIGHT)
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let attrs: Map<String, Value> =
            serde_json::from_str(&r.try_get::<String, _>(4)?).unwrap_or_default();
        let username: String = r.try_get(1)?;
        if attrs.get("manager").and_then(Value::as_str) == Some(manager) && username != manager {
            out.push(InGrace {
                assignment_id: r.try_get(0)?,
                username,
                role: r.try_get(2)?,
                ends_ms: r.try_get(3)?,
            });
        }
    }
    Ok(out)
}

/// The new manager keeps a mover's birthright access that is in its grace period (an approval):
/// the assignment loses its end and is no longer managed by the birthright rule (source
/// `kept`), so later imports leave it. Only the identity's manager may, and never for their own
/// access; audited as `lifecycle.keep`, a refusal as `lifecycle.keep.refused` (kept by
/// [`Tx::settle`]).
pub async fn keep(
    tx: &mut Tx,
    manager: &crate::identity::identities::Identity,
    now_ms: i64,
    assignment_id: &str,
) -> Result<crate::access::assignments::Assignment> {
    let r = keep_checked(tx, manager, now_ms, assignment_id).await;
    if let Err(Error::Refused(code, reason)) = &r {
        audit::append(
            tx,
            now_ms,
            NewEvent::new(
                format!("identity:{}", manager.username),
                "lifecycle.keep.refused",
                format!("assignment:{assignment_id}"),
            )
            .outcome(audit::Outcome::Failure)
            .details(serde_json::json!({ "code": code, "reason": reason })),
        )
        .await?;
        tx.mark_refusal();
    }
    r
}

async fn keep_checked(
    tx: &mut Tx,
    manager: &crate::identity::identities::Identity,
    now_ms: i64,
    assignment_id: &str,
) -> Result<crate::access::assignments::Assignment> {
    let a = assignments::by_id(tx, assignment_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("assignment {assignment_id}")))?;
    let Subject::Identity(username) = &a.subject else {
        return Err(Error::invalid(
            "assignment: only a person's birthright access can be kept",
        ));
    };
    if a.source != BIRTHRIGHT || a.not_after_ms.is_none_or(|t| t <= now_ms) {
        return Err(Error::Conflict(format!(
            "assignment {assignment_id} is not in a grace period"
        )));
    }
    let who = identities::by_username(tx, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
    // Nobody keeps their own access: the head of an org chart is often their own manager in
    // HR data (manager = self), and SCIM may set it so.
    if who.id == manager.id {
        return Err(Error::refused(
            "self_keep",
            "nobody keeps their own access; it takes another manager or an administrator",
        ));
    }
    if who.attributes.get("manager").and_then(|m| m.as_str()) != Some(manager.username.as_str()) {
        return Err(Error::refused(
            "not_manager",
            format!("only {username}'s manager may keep this access"),
        ));
    }
    sqlx::query("UPDATE role_assignments SET not_after = NULL, source = 'kept' WHERE id = $1")
        .bind(assignment_id)
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            format!("identity:{}", manager.username),
            "lifecycle.keep",
            format!("identity:{username}"),
        )
        .details(serde_json::json!({ "assignment": assignment_id, "role": a.role })),
    )
    .await?;
    assignments::by_id(tx, assignment_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("assignment {assignment_id}")))
}
