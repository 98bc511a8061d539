//! A reviewer's decisions: keep, revoke, keep until a date, or delegate; stage by stage. Only the
//! item's reviewer decides (a username, or a member of the reviewing group), never about their
//! own access (except in a `self` stage, self-attestation); keeping privileged access or going
//! against the recommendation needs a reason. Every decision is audited as `review.item.*` and
//! every refusal as `review.item.refused`, in the transaction of the change (kept by
//! [`Tx::settle`]).

use super::plan::Access;
use super::store::{self, Item};
use crate::error::{Error, Result};
use crate::identity::identities;
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use sqlx::AnyConnection;

/// What a reviewer chooses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Keep,
    Revoke,
    /// Keep, ending at this time (role assignments only).
    KeepUntil(i64),
    /// Hand the item to another reviewer (a username).
    Delegate(String),
}

fn filled(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

impl Choice {
    /// The stored spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Choice::Keep => "keep",
            Choice::Revoke => "revoke",
            Choice::KeepUntil(_) => "keep_until",
            Choice::Delegate(_) => "delegate",
        }
    }

    /// From a form or API body: `keep`, `revoke`, `keep_until` (with `until`), `delegate` (with
    /// `to`).
    pub fn parse(decision: &str, until: Option<&str>, to: Option<&str>) -> Result<Choice> {
        match decision {
            "keep" => Ok(Choice::Keep),
            "revoke" => Ok(Choice::Revoke),
            "keep_until" => {
                let until = filled(until).ok_or_else(|| {
                    Error::invalid("keep until: give the date the access ends (2027-03-31)")
                })?;
                Ok(Choice::KeepUntil(
                    crate::provisioning::apply::doc::parse_instant(until)?,
                ))
            }
            "delegate" => Ok(Choice::Delegate(
                filled(to)
                    .ok_or_else(|| Error::invalid("delegate: give the username to hand it to"))?
                    .to_string(),
            )),
            other => Err(Error::invalid(format!(
                "decision {other:?}: use keep, revoke, keep_until or delegate"
            ))),
        }
    }

    fn keeps(&self) -> bool {
        matches!(self, Choice::Keep | Choice::KeepUntil(_))
    }
}

/// Decides one item as `username`; see the module doc. Returns the item as it is afterwards.
pub async fn decide(
    tx: &mut Tx,
    username: &str,
    now_ms: i64,
    item_id: &str,
    choice: &Choice,
    reason: &str,
) -> Result<Item> {
    let r = decide_checked(tx, username, now_ms, item_id, choice, reason, false).await;
    if let Err(e @ Error::Refused(..)) = &r {
        refused(tx, username, now_ms, item_id, e).await?;
    }
    r
}

async fn refused(tx: &mut Tx, username: &str, now_ms: i64, item_id: &str, e: &Error) -> Result<()> {
    super::audit_refusal(
        tx,
        username,
        now_ms,
        "review.item.refused",
        format!("review_item:{item_id}"),
        e,
    )
    .await
}

/// Whether `username` reviews `item` now (its reviewer, or a member of its reviewing group).
pub async fn is_reviewer(conn: &mut AnyConnection, username: &str, item: &Item) -> Result<bool> {
    Ok(store::reviewer_names(conn, username)
        .await?
        .contains(&item.reviewer))
}

#[allow(clippy::too_many_arguments)]
async fn decide_checked(
    tx: &mut Tx,
    username: &str,
    now_ms: i64,
    item_id: &str,
    choice: &Choice,
    reason: &str,
    bulk: bool,
) -> Result<Item> {
    let item = store::item(tx, item_id).await?;
    let campaign = store::campaign(tx, &item.campaign_id).await?;
    if !is_reviewer(tx, username, &item).await? {
        return Err(Error::refused(
            "not_reviewer",
            "you are not the reviewer of this item",
        ));
    }
    let stage_kind = campaign
        .spec
        .stages
        .get(item.stage as usize)
        .map_or("", String::as_str);
    if item.username == username && stage_kind != "self" {
        return Err(Error::refused(
            "self_review",
            "nobody reviews their own access; it goes to another reviewer",
        ));
    }
    if campaign.state != "active" {
        return Err(Error::Conflict(format!(
            "campaign {} has ended: decisions are closed",
            campaign.name
        )));
    }
    if item.state != "open" {
        return Err(Error::Conflict("this item is already decided".into()));
    }
    let reason = reason.trim();
    if let Choice::Delegate(to) = choice {
        let target = identities::by_username(tx, to)
            .await?
            .filter(|i| i.status == identities::Status::Active)
            .ok_or_else(|| Error::invalid(format!("delegate: no active identity {to}")))?;
        if target.username == item.username {
            return Err(Error::refused(
                "self_review",
                format!("{to} cannot review their own access"),
            ));
        }
        if target.username == username {
            return Err(Error::invalid("delegate: the item is already yours"));
        }
        let n = sqlx::query(
            "UPDATE review_items SET reviewer = $1, opened_at = NULL WHERE id = $2 \
             AND state = 'open' AND stage = $3 AND reviewer = $4",
        )
        .bind(to.as_str())
        .bind(item_id)
        .bind(item.stage)
        .bind(item.reviewer.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        changed_meanwhile(n)?;
        record(tx, &item, username, choice, reason, bulk, now_ms).await?;
        audit::append(
            tx,
            now_ms,
            NewEvent::new(
                format!("identity:{username}"),
                "review.item.delegate",
                format!("review_item:{item_id}"),
            )
            .details(serde_json::json!({ "campaign": item.campaign_id, "to": to,
                "identity": item.username, "access": item.what(), "reason": reason })),
        )
        .await?;
        return store::item(tx, item_id).await;
    }
    let against = if choice.keeps() {
        item.recommendation == "revoke"
    } else {
        item.recommendation == "keep"
    };
    if reason.is_empty() && (against || choice.keeps() && item.privileged) {
        return Err(Error::refused(
            "reason_required",
            if against {
                format!(
                    "give a reason: the recommendation is to {} ({})",
                    item.recommendation, item.rec_reason
                )
            } else {
                "give a reason: keeping privileged access needs one".to_string()
            },
        ));
    }
    if let Choice::KeepUntil(t) = choice {
        if *t <= now_ms {
            return Err(Error::invalid("keep until: the date must be in the future"));
        }
        if item.access != Access::Assignment {
            return Err(Error::invalid(
                "keep until applies to role assignments; keep or revoke a membership or privilege",
            ));
        }
    }
    let next = (item.stage + 1) as usize;
    let action = if choice.keeps() && next < campaign.spec.stages.len() {
        let reviewer = item
            .evidence
            .reviewers
            .get(next)
            .cloned()
            .unwrap_or_else(|| campaign.spec.fallback.clone());
        let n = sqlx::query(
            "UPDATE review_items SET stage = $1, reviewer = $2, opened_at = NULL WHERE id = $3 \
             AND state = 'open' AND stage = $4 AND reviewer = $5",
        )
        .bind(next as i64)
        .bind(reviewer)
        .bind(item_id)
        .bind(item.stage)
        .bind(item.reviewer.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        changed_meanwhile(n)?;
        "review.item.stage"
    } else {
        let until = match choice {
            Choice::KeepUntil(t) => Some(*t),
            _ => None,
        };
        let n = sqlx::query(
            "UPDATE review_items SET state = 'decided', decision = $1, keep_until = $2, \
             reason = $3, decided_by = $4, decided_at = $5 WHERE id = $6 \
             AND state = 'open' AND stage = $7 AND reviewer = $8",
        )
        .bind(choice.as_str())
        .bind(until)
        .bind(reason)
        .bind(username)
        .bind(now_ms)
        .bind(item_id)
        .bind(item.stage)
        .bind(item.reviewer.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        changed_meanwhile(n)?;
        "review.item.decide"
    };
    record(tx, &item, username, choice, reason, bulk, now_ms).await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            format!("identity:{username}"),
            action,
            format!("review_item:{item_id}"),
        )
        .details(
            serde_json::json!({ "campaign": item.campaign_id, "stage": item.stage,
            "decision": choice.as_str(), "reason": reason, "identity": item.username,
            "access": item.what(), "recommendation": item.recommendation, "bulk": bulk }),
        ),
    )
    .await?;
    store::item(tx, item_id).await
}

/// The item was decided, delegated or moved on by someone else between reading and writing it
/// (two members of a reviewing group at once): nothing is written.
fn changed_meanwhile(rows: u64) -> Result<()> {
    if rows == 1 {
        Ok(())
    } else {
        Err(Error::Conflict(
            "this item changed meanwhile (someone else decided it): reload it".into(),
        ))
    }
}

async fn record(
    tx: &mut Tx,
    item: &Item,
    username: &str,
    choice: &Choice,
    reason: &str,
    bulk: bool,
    now_ms: i64,
) -> Result<()> {
    let (until, to) = match choice {
        Choice::KeepUntil(t) => (Some(*t), None),
        Choice::Delegate(to) => (None, Some(to.clone())),
        _ => (None, None),
    };
    sqlx::query(
        "INSERT INTO review_decisions (id, item_id, stage, reviewer, decision, reason, keep_until, \
         delegate_to, opened, bulk, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(ids::new_id())
    .bind(item.id.as_str())
    .bind(item.stage)
    .bind(username)
    .bind(choice.as_str())
    .bind(reason)
    .bind(until)
    .bind(to)
    .bind(i64::from(item.opened_ms.is_some()))
    .bind(i64::from(bulk))
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What "accept the recommendations" did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Bulk {
    pub decided: usize,
    /// Items left for a one-by-one decision, with why (a privileged keep without a reason, ...).
    pub skipped: Vec<(String, String)>,
}

/// Decides every open item of `campaign_id` that `username` reviews as recommended, with
/// `reason` (needed for keeping privileged access: without one those items are skipped).
pub async fn accept_recommendations(
    tx: &mut Tx,
    username: &str,
    now_ms: i64,
    campaign_id: &str,
    reason: &str,
) -> Result<Bulk> {
    let campaign = store::campaign(tx, campaign_id).await?;
    if campaign.state != "active" {
        return Err(Error::Conflict(format!(
            "campaign {} has ended: decisions are closed",
            campaign.name
        )));
    }
    let mut out = Bulk::default();
    // The queue as it is now: an item kept into a next stage the same person reviews is not
    // decided twice by one click.
    let (items, _) = store::queue(tx, username, Some(campaign_id), i64::MAX, 0).await?;
    for item in items {
        let choice = if item.recommendation == "revoke" {
            Choice::Revoke
        } else {
            Choice::Keep
        };
        match decide_checked(tx, username, now_ms, &item.id, &choice, reason, true).await {
            Ok(_) => out.decided += 1,
            Err(e @ Error::Refused(..)) => {
                // Refused for this item (a reason needed, one's own access): audited like a
                // refusal one by one, and left in the queue.
                refused(tx, username, now_ms, &item.id, &e).await?;
                out.skipped.push((item.id.clone(), e.to_string()))
            }
            Err(e @ (Error::Invalid(_) | Error::Conflict(_))) => {
                out.skipped.push((item.id.clone(), e.to_string()))
            }
            Err(e) => return Err(e),
        }
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            format!("identity:{username}"),
            "review.accept_recommendations",
            format!("campaign:{campaign_id}"),
        )
        .details(serde_json::json!({ "decided": out.decided, "skipped": out.skipped.len() })),
    )
    .await?;
    Ok(out)
}

/// Marks an item as opened by its reviewer (the evidence was looked at), once. Returns whether
/// `username` is its reviewer.
pub async fn opened(
    conn: &mut AnyConnection,
    username: &str,
    now_ms: i64,
    item: &Item,
) -> Result<bool> {
    if !is_reviewer(conn, username, item).await? {
        return Ok(false);
    }
    if item.opened_ms.is_none() {
        sqlx::query("UPDATE review_items SET opened_at = $1 WHERE id = $2 AND opened_at IS NULL")
            .bind(now_ms)
            .bind(item.id.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(true)
}
