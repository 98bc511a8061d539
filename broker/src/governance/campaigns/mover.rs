//! The mover review: when HR or SCIM moves someone (department, title, manager, ... change),
//! everything they hold that is not birthright for the new position — roles assigned by hand
//! (standing or eligible), group memberships that carry roles, Gatehouse privileges — goes to
//! their new manager as a one-stage campaign that ends with the grace period; what the manager
//! does not keep is revoked then. Without an active manager (other than the person) nothing is
//! opened, and the audit log says so.

use super::plan::{self, Access};
use super::spec::{ApplyMode, CampaignSpec, Scope, Unanswered};
use super::store;
use crate::actor::Actor;
use crate::error::Result;
use crate::identity::identities;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use crate::provisioning::lifecycle::plan::MOVER_KEYS;
use serde_json::{Map, Value};

/// Whether a change of attributes from `before` to `after` makes a mover.
pub fn moved(before: &Map<String, Value>, after: &Map<String, Value>) -> bool {
    MOVER_KEYS.iter().any(|k| before.get(*k) != after.get(*k))
}

/// Opens the mover review of `username` (whose attributes are already the new ones); returns
/// the campaign id, or None when there is nothing to review. Without a manager to review, the
/// review is not opened and the audit log says so (`review.mover.skipped`).
pub async fn open(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    username: &str,
    grace_ms: i64,
) -> Result<Option<String>> {
    let Some(who) = identities::by_username(tx, username).await? else {
        return Ok(None);
    };
    // Most movers hold nothing beyond birthright: say so without reading more.
    let held: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM role_assignments WHERE subject_kind = 'identity' \
         AND subject_id = $1 AND source <> $2) + (SELECT COUNT(*) FROM group_members m \
         JOIN role_assignments a ON a.subject_kind = 'group' AND a.subject_id = m.group_id \
         WHERE m.identity_id = $1) + (SELECT COUNT(*) FROM identity_privileges \
         WHERE identity_id = $1)",
    )
    .bind(who.id.as_str())
    .bind(crate::provisioning::lifecycle::engine::BIRTHRIGHT)
    .fetch_one(&mut **tx)
    .await?;
    if held == 0 {
        return Ok(None);
    }
    // The manager reviews: an active identity other than the person, or nobody.
    let manager = match who
        .attributes
        .get("manager")
        .and_then(Value::as_str)
        .filter(|m| *m != username)
    {
        Some(m) => identities::by_username(tx, m)
            .await?
            .filter(|i| i.status == identities::Status::Active)
            .map(|i| i.username),
        None => None,
    };
    let facts = super::facts::read(tx, now_ms, Some(username)).await?;
    let spec = CampaignSpec {
        description: format!(
            "{username} moved: access that is not birthright for the new position"
        ),
        owner: manager.clone().unwrap_or_default(),
        scope: Scope {
            all: true,
            groups: facts
                .members
                .iter()
                .filter(|(_, ms)| ms.iter().any(|(m, _)| m == username))
                .map(|(g, _)| g.clone())
                .collect(),
            privileges: vec!["admin".into(), "reviewer".into()],
            ..Default::default()
        },
        stages: vec!["manager".into()],
        fallback: manager.clone().unwrap_or_default(),
        schedule: "once".into(),
        start_ms: None,
        duration_ms: grace_ms.max(60_000),
        unanswered: Unanswered::Revoke,
        apply: ApplyMode::Auto,
        remind_before_ms: grace_ms / 2,
        escalate_before_ms: 0,
    };
    let items: Vec<plan::NewItem> = plan::plan(&spec, &facts)
        .into_iter()
        .filter(|i| i.username == username && i.held_as != "birthright")
        // Plain groups that carry no role are directory structure, not access.
        .filter(|i| i.access != Access::Membership || i.role.is_some())
        .collect();
    if items.is_empty() {
        return Ok(None);
    }
    if manager.is_none() {
        audit::append(
            tx,
            now_ms,
            NewEvent::new(actor.to_string(), "review.mover.skipped", format!("identity:{username}"))
                .details(serde_json::json!({ "items": items.len(),
                    "why": "no manager to review: the access stays; start a campaign to review it" })),
        )
        .await?;
        return Ok(None);
    }
    let name = super::spec::campaign_name(&format!("mover-{username}"), now_ms);
    let id = store::create(tx, actor, now_ms, &name, None, "mover", &spec, &items).await?;
    Ok(Some(id))
}
