//! The end of a campaign and what follows: unanswered items take the campaign's policy, decisions
//! are applied through the same audited engine as every other change (an assignment removed, a
//! member taken out of a group, a privilege taken away: access events end live sessions), each
//! revoke is then verified by the decision function, and the owner signs off. [`tick`] is the
//! scheduler: it starts campaigns when due, reminds, escalates and ends them.

use super::plan::Access;
use super::spec::{self, ApplyMode, Unanswered};
use super::store::{self, Campaign, Item};
use crate::access::policy::{AccessRequest, Catalog, decide};
use crate::access::{assignments, privileges};
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::identity::groups;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::outbox::{self, Channel};
use crate::ledger::store::{Store, Tx};
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

/// Whether `username` may end a campaign early: its owner, or an administrator.
pub fn may_end(c: &Campaign, username: &str, admin: bool) -> bool {
    admin || c.owner == username
}

/// [`end`] by `username`, who must own the campaign or be an administrator (`admin`); a refusal
/// is audited as `review.campaign.end.refused` (kept by [`Tx::settle`]).
pub async fn end_by(
    tx: &mut Tx,
    username: &str,
    admin: bool,
    now_ms: i64,
    id: &str,
) -> Result<Option<Applied>> {
    let c = store::campaign(tx, id).await?;
    if !may_end(&c, username, admin) {
        let e = Error::refused(
            "not_owner",
            "only the campaign's owner or an administrator ends it",
        );
        let object = format!("campaign:{id}");
        super::audit_refusal(
            tx,
            username,
            now_ms,
            "review.campaign.end.refused",
            object,
            &e,
        )
        .await?;
        return Err(e);
    }
    end(tx, &Actor::identity(username), now_ms, id).await
}

/// Ends an active campaign now (its end came, or its owner ends it early): open items take the
/// unanswered policy (decided by `system`), the campaign is `ended`; with `apply = "auto"` the
/// results are applied at once. Audited as `review.campaign.end`.
pub async fn end(tx: &mut Tx, actor: &Actor, now_ms: i64, id: &str) -> Result<Option<Applied>> {
    let c = store::campaign(tx, id).await?;
    if c.state != "active" {
        return Err(Error::Conflict(format!(
            "campaign {} has already ended",
            c.name
        )));
    }
    let policy = match c.spec.unanswered {
        Unanswered::Keep => "keep",
        Unanswered::Revoke => "revoke",
        Unanswered::Recommendation => "recommendation",
    };
    // Claimed first: of two instances ending it at once, one does.
    let claimed = sqlx::query(
        "UPDATE review_campaigns SET state = 'ended', ended_at = $1 WHERE id = $2 AND state = 'active'",
    )
    .bind(now_ms)
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Err(Error::Conflict(format!(
            "campaign {} has already ended",
            c.name
        )));
    }
    let reason = format!("unanswered at the end of the campaign: {policy}");
    let decision = "CASE WHEN $2 = 'recommendation' THEN recommendation ELSE $2 END";
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO review_decisions (id, item_id, stage, reviewer, decision, reason, opened, \
         bulk, created_at) SELECT id || ':end', id, stage, 'system', {decision}, $3, 0, 0, $4 \
         FROM review_items WHERE campaign_id = $1 AND state = 'open'"
    )))
    .bind(id)
    .bind(policy)
    .bind(reason.as_str())
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    let unanswered = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE review_items SET state = 'decided', decision = {decision}, reason = $3, \
         decided_by = 'system', decided_at = $4 WHERE campaign_id = $1 AND state = 'open'"
    )))
    .bind(id)
    .bind(policy)
    .bind(reason.as_str())
    .bind(now_ms)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "review.campaign.end",
            format!("campaign:{id}"),
        )
        .details(
            serde_json::json!({ "name": c.name, "unanswered": unanswered, "policy": policy,
                "apply": c.spec.apply }),
        ),
    )
    .await?;
    outbox::enqueue(
        tx,
        now_ms,
        Channel::Notify,
        "review.ended",
        &format!(
            "Access review {} ended ({unanswered} unanswered: {policy}){}",
            c.name,
            if c.spec.apply == ApplyMode::SignOff {
                format!("; waiting for {}'s sign-off", c.owner)
            } else {
                String::new()
            }
        ),
        serde_json::json!({ "campaign": id, "name": c.name, "unanswered": unanswered }),
    )
    .await?;
    if c.spec.apply == ApplyMode::Auto {
        return Ok(Some(apply(tx, &Actor::System, now_ms, id).await?));
    }
    Ok(None)
}

/// What applying a campaign did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub revoked: usize,
    pub kept: usize,
    pub kept_until: usize,
    /// Revokes of access already gone when applied.
    pub already_gone: usize,
}

/// Applies an ended campaign's decisions and closes it; audited as `review.campaign.apply` (and
/// each change as the engine audits it: `assignment.remove`, `group.member.remove`,
/// `privilege.revoke`, `assignment.end`).
pub async fn apply(tx: &mut Tx, actor: &Actor, now_ms: i64, id: &str) -> Result<Applied> {
    let c = store::campaign(tx, id).await?;
    if c.state != "ended" {
        return Err(Error::Conflict(format!(
            "campaign {} is {}: only an ended campaign is applied",
            c.name, c.state
        )));
    }
    let claimed = sqlx::query(
        "UPDATE review_campaigns SET state = 'closed', closed_at = $1 WHERE id = $2 AND state = 'ended'",
    )
    .bind(now_ms)
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Err(Error::Conflict(format!(
            "campaign {} is already applied",
            c.name
        )));
    }
    let items = store::items(tx, id, Some("decided"), i64::MAX, 0).await?;
    let mut done = Applied::default();
    // Outcome → items, written in bulk at the end.
    let mut outcomes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Revoked assignments, the bulk of a large campaign, go in one batch.
    let revoked: Vec<String> = items
        .iter()
        .filter(|i| i.decision.as_deref() == Some("revoke") && i.access == Access::Assignment)
        .map(|i| i.access_ref.clone())
        .collect();
    let removed: std::collections::HashSet<String> =
        assignments::remove_many(tx, actor, now_ms, &revoked)
            .await?
            .into_iter()
            .map(|a| a.id)
            .collect();
    for item in &items {
        let outcome =
            if item.decision.as_deref() == Some("revoke") && item.access == Access::Assignment {
                if removed.contains(&item.access_ref) {
                    done.revoked += 1;
                    "assignment removed".to_string()
                } else {
                    done.already_gone += 1;
                    "already gone".to_string()
                }
            } else {
                remediate(tx, actor, now_ms, item, &mut done).await?
            };
        outcomes.entry(outcome).or_default().push(item.id.clone());
    }
    let backend = crate::ledger::store::backend_of(tx);
    for (outcome, ids) in outcomes {
        for chunk in ids.chunks(500) {
            let list = assignments::in_list(chunk.len(), 2, backend);
            let sql = match backend {
                crate::Backend::Sqlite => format!(
                    "UPDATE review_items SET state = 'applied', applied_at = ?, outcome = ? WHERE id IN ({list})"
                ),
                crate::Backend::Postgres => format!(
                    "UPDATE review_items SET state = 'applied', applied_at = $1, outcome = $2 WHERE id IN ({list})"
                ),
            };
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now_ms)
                .bind(outcome.as_str());
            for i in chunk {
                q = q.bind(i.as_str());
            }
            q.execute(&mut **tx).await?;
        }
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "review.campaign.apply",
            format!("campaign:{id}"),
        )
        .details(serde_json::json!({ "name": c.name, "applied": done })),
    )
    .await?;
    Ok(done)
}

async fn remediate(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    item: &Item,
    done: &mut Applied,
) -> Result<String> {
    match (item.decision.as_deref(), item.access) {
        (Some("revoke"), Access::Membership) => {
            match groups::remove_member(tx, actor, now_ms, &item.access_ref, &item.username).await {
                Ok(true) => {
                    done.revoked += 1;
                    Ok(format!("removed from group {}", item.access_ref))
                }
                Ok(false) | Err(Error::NotFound(_)) => {
                    done.already_gone += 1;
                    Ok("already gone".into())
                }
                Err(e) => Err(e),
            }
        }
        (Some("revoke"), Access::Privilege) => {
            let p = privileges::parse(&item.access_ref)
                .ok_or_else(|| Error::Storage(format!("privilege {}", item.access_ref)))?;
            match privileges::revoke(tx, actor, now_ms, &item.username, p).await {
                Ok(true) => {
                    done.revoked += 1;
                    Ok(format!("privilege {} taken away", item.access_ref))
                }
                Ok(false) | Err(Error::NotFound(_)) => {
                    done.already_gone += 1;
                    Ok("already gone".into())
                }
                // The last administrator stays: said in the outcome, not a failure of the rest.
                Err(Error::Conflict(m)) => Ok(format!("not revoked: {m}")),
                Err(e) => Err(e),
            }
        }
        (Some("keep_until"), Access::Assignment) => {
            // A review only shortens access: an earlier end stays, an ended one stays ended.
            let Some(a) = assignments::by_id(tx, &item.access_ref)
                .await?
                .filter(|a| a.not_after_ms.is_none_or(|t| t > now_ms))
            else {
                done.already_gone += 1;
                return Ok("already gone".into());
            };
            let asked = item.keep_until_ms.unwrap_or(now_ms);
            let until = a.not_after_ms.map_or(asked, |t| t.min(asked));
            assignments::set_end(tx, actor, now_ms, &item.access_ref, until).await?;
            done.kept_until += 1;
            Ok(format!("ends {}", crate::clock::format_ms(until)))
        }
        (Some("keep"), _) => {
            done.kept += 1;
            Ok("kept".into())
        }
        // Assignment revokes go in one batch (`apply`); nothing else is decided.
        (d, a) => Err(Error::Storage(format!(
            "cannot apply {d:?} to a {}",
            a.as_str()
        ))),
    }
}

/// The owner signs an ended campaign off: its results are applied. Refused to anyone else
/// (`not_owner`, audited).
pub async fn sign_off(tx: &mut Tx, username: &str, now_ms: i64, id: &str) -> Result<Applied> {
    let c = store::campaign(tx, id).await?;
    if c.owner != username {
        let e = Error::refused(
            "not_owner",
            format!("only the campaign's owner ({}) signs it off", c.owner),
        );
        let object = format!("campaign:{id}");
        super::audit_refusal(
            tx,
            username,
            now_ms,
            "review.campaign.sign_off.refused",
            object,
            &e,
        )
        .await?;
        return Err(e);
    }
    if c.state == "active" {
        return Err(Error::Conflict(format!(
            "campaign {} is still running: end it first",
            c.name
        )));
    }
    sqlx::query("UPDATE review_campaigns SET signed_off_by = $1 WHERE id = $2")
        .bind(username)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            format!("identity:{username}"),
            "review.campaign.sign_off",
            format!("campaign:{id}"),
        )
        .details(serde_json::json!({ "name": c.name })),
    )
    .await?;
    apply(tx, &Actor::identity(username), now_ms, id).await
}

/// Checks each applied revoke of a campaign against the decision function, after the change has
/// committed: an assignment carries nothing (no decision over the role's targets and logins is
/// carried by it), a member is out of the group, a privilege is gone. Records the result and its
/// time on each item; audited as `review.campaign.verify`. Returns (verified, still there).
pub async fn verify(store: &Store, now_ms: i64, id: &str) -> Result<(usize, usize)> {
    let mut conn = store.pool().acquire().await?;
    let catalog = Catalog::load(&mut conn, now_ms).await?;
    let items = store::items(&mut conn, id, Some("applied"), i64::MAX, 0).await?;
    drop(conn);
    let mut results = Vec::new();
    let mut mconn = store.pool().acquire().await?;
    for item in items
        .iter()
        .filter(|i| i.decision.as_deref() == Some("revoke") && i.verified.is_none())
    {
        let gone = match item.access {
            Access::Assignment => assignment_gone(&catalog, item, now_ms),
            Access::Membership => catalog
                .identities
                .get(&item.username)
                .is_none_or(|p| !p.groups.contains(&item.access_ref)),
            Access::Privilege => {
                let held: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM identity_privileges p JOIN identities i \
                     ON i.id = p.identity_id WHERE i.username = $1 AND p.privilege = $2",
                )
                .bind(item.username.as_str())
                .bind(item.access_ref.as_str())
                .fetch_one(&mut *mconn)
                .await?
                .try_get(0)?;
                held == 0
            }
        };
        results.push((item.id.clone(), gone));
    }
    drop(mconn);
    let mut tx = store.begin().await?;
    let backend = crate::ledger::store::backend_of(&tx);
    for gone in [true, false] {
        let ids: Vec<&str> = results
            .iter()
            .filter(|(_, g)| *g == gone)
            .map(|(i, _)| i.as_str())
            .collect();
        for chunk in ids.chunks(500) {
            let list = assignments::in_list(chunk.len(), 2, backend);
            let sql = match backend {
                crate::Backend::Sqlite => format!(
                    "UPDATE review_items SET verified = ?, verified_at = ? WHERE id IN ({list})"
                ),
                crate::Backend::Postgres => format!(
                    "UPDATE review_items SET verified = $1, verified_at = $2 WHERE id IN ({list})"
                ),
            };
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(i64::from(gone))
                .bind(now_ms);
            for i in chunk {
                q = q.bind(*i);
            }
            q.execute(&mut *tx).await?;
        }
    }
    let ok = results.iter().filter(|(_, g)| *g).count();
    let bad = results.len() - ok;
    audit::append(
        &mut tx,
        now_ms,
        NewEvent::new("system", "review.campaign.verify", format!("campaign:{id}"))
            .outcome(if bad == 0 {
                audit::Outcome::Success
            } else {
                audit::Outcome::Failure
            })
            .details(serde_json::json!({ "verified": ok, "still_there": bad })),
    )
    .await?;
    tx.commit().await?;
    Ok((ok, bad))
}

fn assignment_gone(catalog: &Catalog, item: &Item, now_ms: i64) -> bool {
    let Some(who) = catalog.identities.get(&item.username) else {
        return true;
    };
    if who.held.iter().any(|h| h.assignment_id == item.access_ref) {
        return false;
    }
    let Some(role) = item
        .role
        .as_deref()
        .and_then(|r| catalog.roles.values().find(|x| x.name == r))
    else {
        return true;
    };
    for (name, t) in &catalog.targets {
        if !role.spec.targets.matches(name, &t.labels) {
            continue;
        }
        for login in &role.spec.logins {
            for protocol in ["ssh", "http"] {
                let d = decide(
                    catalog,
                    &AccessRequest {
                        identity: item.username.clone(),
                        protocol: protocol.into(),
                        target: name.clone(),
                        login: Some(login.clone()),
                        ..Default::default()
                    },
                    now_ms,
                );
                if d.grant.is_some_and(|g| g.id == item.access_ref) {
                    return false;
                }
            }
        }
    }
    true
}

/// What one [`tick`] did, for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ticked {
    pub started: Vec<String>,
    pub reminded: Vec<String>,
    pub escalated: Vec<String>,
    pub ended: Vec<String>,
    /// What failed (the rest went on): one line each.
    pub failed: Vec<String>,
}

/// The scheduler's step at `now_ms`: starts the campaigns whose definitions are due (a missed
/// occurrence is not started twice), reminds reviewers with open items `remind_before` the end,
/// hands open items to the fallback reviewer `escalate_before` the end, and ends (and, with
/// `apply = "auto"`, applies and verifies) the campaigns whose end has come. One definition or
/// campaign failing does not hold the others back: its error is in [`Ticked::failed`].
pub async fn tick(store: &Store, now_ms: i64) -> Result<Ticked> {
    let mut out = Ticked::default();
    let due: Vec<(String, i64)> = {
        let mut conn = store.pool().acquire().await?;
        sqlx::query(
            "SELECT name, next_start_at FROM review_definitions WHERE next_start_at <= $1 \
             ORDER BY next_start_at",
        )
        .bind(now_ms)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?
    };
    for (name, at) in due {
        match start_due(store, now_ms, &name, at).await {
            Ok(Some(id)) => out.started.push(id),
            Ok(None) => {}
            Err(e) => out.failed.push(format!("start {name}: {e}")),
        }
    }
    let active = {
        let mut conn = store.pool().acquire().await?;
        store::campaigns(&mut conn)
            .await?
            .into_iter()
            .filter(|c| c.state == "active")
            .collect::<Vec<_>>()
    };
    for c in active {
        if let Err(e) = step(store, now_ms, &c, &mut out).await {
            out.failed.push(format!("campaign {}: {e}", c.name));
        }
    }
    // Revokes applied but never verified (the verification after applying failed): again.
    let unverified: Vec<String> = {
        let mut conn = store.pool().acquire().await?;
        sqlx::query_scalar(
            "SELECT DISTINCT campaign_id FROM review_items WHERE state = 'applied' \
             AND decision = 'revoke' AND verified IS NULL",
        )
        .fetch_all(&mut *conn)
        .await?
    };
    for id in unverified {
        if let Err(e) = verify(store, now_ms, &id).await {
            out.failed.push(format!("verify campaign {id}: {e}"));
        }
    }
    Ok(out)
}

/// Starts one due definition, unless another instance claimed it first.
async fn start_due(store: &Store, now_ms: i64, name: &str, at: i64) -> Result<Option<String>> {
    let mut tx = store.begin().await?;
    let def = store::definition(&mut tx, name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("review {name}")))?;
    let mut next = spec::next_start(&def.spec.schedule, at)?;
    while let Some(t) = next.filter(|t| *t <= now_ms) {
        next = spec::next_start(&def.spec.schedule, t)?;
    }
    // Claimed first: of two instances seeing it due, one starts it.
    let claimed = sqlx::query(
        "UPDATE review_definitions SET next_start_at = $1 WHERE name = $2 AND next_start_at = $3",
    )
    .bind(next)
    .bind(name)
    .bind(at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    let id = store::start(&mut tx, &Actor::System, now_ms, name).await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// One active campaign's step: the end (applied and verified), else a reminder and escalation
/// when their time has come. A campaign ended but not yet verified is verified again.
async fn step(store: &Store, now_ms: i64, c: &Campaign, out: &mut Ticked) -> Result<()> {
    if c.ends_ms <= now_ms {
        let mut tx = store.begin().await?;
        let applied = end(&mut tx, &Actor::System, now_ms, &c.id).await?;
        tx.commit().await?;
        out.ended.push(c.id.clone());
        if applied.is_some() {
            verify(store, now_ms, &c.id).await?;
        }
        return Ok(());
    }
    let flags: (Option<i64>, Option<i64>) = {
        let mut conn = store.pool().acquire().await?;
        let r = sqlx::query("SELECT reminded_at, escalated_at FROM review_campaigns WHERE id = $1")
            .bind(c.id.as_str())
            .fetch_one(&mut *conn)
            .await?;
        (r.try_get(0)?, r.try_get(1)?)
    };
    if flags.0.is_none() && now_ms >= c.ends_ms - c.spec.remind_before_ms {
        let mut tx = store.begin().await?;
        remind(&mut tx, now_ms, c).await?;
        tx.commit().await?;
        out.reminded.push(c.id.clone());
    }
    if flags.1.is_none() && now_ms >= c.ends_ms - c.spec.escalate_before_ms {
        let mut tx = store.begin().await?;
        escalate(&mut tx, now_ms, c).await?;
        tx.commit().await?;
        out.escalated.push(c.id.clone());
    }
    Ok(())
}

async fn open_by_reviewer(tx: &mut Tx, id: &str) -> Result<BTreeMap<String, i64>> {
    sqlx::query(
        "SELECT reviewer, COUNT(*) FROM review_items WHERE campaign_id = $1 AND state = 'open' \
         GROUP BY reviewer ORDER BY reviewer",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect()
}

async fn remind(tx: &mut Tx, now_ms: i64, c: &Campaign) -> Result<()> {
    let open = open_by_reviewer(tx, &c.id).await?;
    sqlx::query("UPDATE review_campaigns SET reminded_at = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(c.id.as_str())
        .execute(&mut **tx)
        .await?;
    if open.is_empty() {
        return Ok(());
    }
    let total: i64 = open.values().sum();
    outbox::enqueue(
        tx,
        now_ms,
        Channel::Notify,
        "review.reminder",
        &format!(
            "Reminder: access review {} ends {}; {total} items are still open",
            c.name,
            crate::clock::format_ms(c.ends_ms)
        ),
        serde_json::json!({ "campaign": c.id, "name": c.name, "open": open,
            "ends": crate::clock::format_ms(c.ends_ms) }),
    )
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            "system",
            "review.campaign.remind",
            format!("campaign:{}", c.id),
        )
        .details(serde_json::json!({ "open": total, "reviewers": open.len() })),
    )
    .await?;
    Ok(())
}

async fn escalate(tx: &mut Tx, now_ms: i64, c: &Campaign) -> Result<()> {
    let fallback = c.spec.fallback.as_str();
    // Every open item goes to the fallback, except one about the fallback themselves.
    sqlx::query(
        "INSERT INTO review_decisions (id, item_id, stage, reviewer, decision, reason, \
         delegate_to, opened, bulk, created_at) SELECT id || ':escalate', id, stage, 'system', \
         'escalate', 'not decided in time', $2, 0, 0, $3 FROM review_items \
         WHERE campaign_id = $1 AND state = 'open' AND reviewer <> $2 AND username <> $2",
    )
    .bind(c.id.as_str())
    .bind(fallback)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    let moved = sqlx::query(
        "UPDATE review_items SET reviewer = $2, opened_at = NULL WHERE campaign_id = $1 \
         AND state = 'open' AND reviewer <> $2 AND username <> $2",
    )
    .bind(c.id.as_str())
    .bind(fallback)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE review_campaigns SET escalated_at = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(c.id.as_str())
        .execute(&mut **tx)
        .await?;
    if moved == 0 {
        return Ok(());
    }
    outbox::enqueue(
        tx,
        now_ms,
        Channel::Notify,
        "review.escalated",
        &format!(
            "Access review {}: {moved} items not decided in time went to {fallback}",
            c.name
        ),
        serde_json::json!({ "campaign": c.id, "name": c.name, "to": fallback, "items": moved }),
    )
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            "system",
            "review.campaign.escalate",
            format!("campaign:{}", c.id),
        )
        .details(serde_json::json!({ "to": fallback, "items": moved })),
    )
    .await?;
    Ok(())
}
