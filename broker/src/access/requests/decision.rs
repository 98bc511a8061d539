//! Deciding requests: who may approve (the role's approver sets, resolved for this request),
//! self-approval refused, fresh MFA where the role requires it, SoD re-checked, and the AND
//! quorum of [`super::quorum`]. One deny from an approver denies the request.

use super::quorum::{self, Seats};
use super::{Request, by_id};
use crate::access::assignments::Subject;
use crate::access::grants::Source;
use crate::access::role_spec::ApproverSource;
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::identity::identities::Identity;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::outbox::{self, Channel};
use crate::ledger::store::Tx;
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeSet;

/// Identity ids a subject (`group:NAME` or a username) stands for.
async fn members_of(conn: &mut AnyConnection, subject: &Subject) -> Result<BTreeSet<String>> {
    Ok(match subject {
        Subject::Identity(u) => crate::identity::identities::by_username(conn, u)
            .await?
            .filter(|i| i.status == crate::identity::identities::Status::Active)
            .map(|i| i.id)
            .into_iter()
            .collect(),
        Subject::Group(g) => {
            let rows = sqlx::query(
                "SELECT m.identity_id FROM group_members m JOIN groups g ON g.id = m.group_id \
                 JOIN identities i ON i.id = m.identity_id WHERE g.name = $1 AND i.status = 'active'",
            )
            .bind(g.as_str())
            .fetch_all(&mut *conn)
            .await?;
            rows.iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?
        }
    })
}

/// The approver sets of a request, resolved to identity ids (never the requester).
pub async fn seats(conn: &mut AnyConnection, req: &Request) -> Result<Vec<Seats>> {
    let role = crate::access::roles::by_id(conn, &req.role_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("role {}", req.role)))?;
    let requester = crate::identity::identities::by_id(conn, &req.requester_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("identity {}", req.requester)))?;
    let mut out = Vec::new();
    for set in &role.spec.approvals {
        let mut members = match set.source()? {
            ApproverSource::Group(g) => members_of(conn, &Subject::Group(g)).await?,
            ApproverSource::Identity(u) => members_of(conn, &Subject::Identity(u)).await?,
            ApproverSource::Manager => {
                match requester.attributes.get("manager").and_then(|m| m.as_str()) {
                    Some(m) => members_of(conn, &Subject::Identity(m.into())).await?,
                    None => BTreeSet::new(),
                }
            }
            ApproverSource::TargetOwner => {
                let names = match &req.targets {
                    Some(t) => t.clone(),
                    None => super::targets_of_role(conn, &role).await?,
                };
                let mut all = BTreeSet::new();
                for n in names {
                    if let Some(owner) = crate::access::targets::by_name(conn, &n)
                        .await?
                        .and_then(|t| t.owner)
                        && let Ok(s) = Subject::parse(&owner)
                    {
                        all.extend(members_of(conn, &s).await?);
                    }
                }
                all
            }
        };
        members.remove(&req.requester_id);
        out.push(Seats {
            label: set.from.clone(),
            count: set.count,
            members,
        });
    }
    Ok(out)
}

/// The approvals recorded so far, as identity ids in the order given.
/// Every decision on a request so far: (approver id, `approve` or `deny`), oldest first.
pub async fn decisions(
    conn: &mut AnyConnection,
    request_id: &str,
) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT approver_id, decision FROM request_decisions WHERE request_id = $1 \
         ORDER BY created_at",
    )
    .bind(request_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

async fn approvals(conn: &mut AnyConnection, request_id: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT approver_id FROM request_decisions WHERE request_id = $1 AND decision = 'approve' \
         ORDER BY created_at",
    )
    .bind(request_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// What a decision did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub request: Request,
    /// Seats still to fill, as "N of SET" (empty once approved).
    pub waiting_for: Vec<String>,
}

/// Whether `approver` may decide request `id` now, before any second factor is looked at: it
/// exists, is pending, is not their own, and they sit in one of its approver sets. A refusal
/// (`self_approval`, `not_approver`) is audited as `request.<action>.refused` and the
/// transaction kept for that record ([`Tx::settle`]). The approval page checks this before a
/// typed code, so a code is never tested against a request its sender cannot decide.
pub async fn may_decide(
    tx: &mut Tx,
    approver: &Identity,
    now_ms: i64,
    id: &str,
    action: &str,
) -> Result<Request> {
    let r = deciders_checks(tx, approver, now_ms, id).await;
    audit_refusal(tx, approver, now_ms, id, action, r)
        .await
        .map(|(req, _)| req)
}

/// Audits a refusal of a decision (an [`Error::Refused`]: self-approval, not an approver,
/// missing fresh MFA, an SoD conflict) as `request.<action>.refused` with its code and reason,
/// and marks the transaction to keep that record; other outcomes pass through.
async fn audit_refusal<T>(
    tx: &mut Tx,
    approver: &Identity,
    now_ms: i64,
    id: &str,
    action: &str,
    r: Result<T>,
) -> Result<T> {
    if let Err(Error::Refused(code, reason)) = &r {
        audit::append(
            tx,
            now_ms,
            NewEvent::new(
                Actor::identity(&approver.username).to_string(),
                format!("request.{action}.refused"),
                format!("request:{id}"),
            )
            .outcome(audit::Outcome::Failure)
            .details(serde_json::json!({ "code": code, "reason": reason })),
        )
        .await?;
        tx.mark_refusal();
    }
    r
}

async fn deciders_checks(
    tx: &mut Tx,
    approver: &Identity,
    now_ms: i64,
    id: &str,
) -> Result<(Request, Vec<Seats>)> {
    let req = by_id(tx, id, now_ms)
        .await?
        .ok_or_else(|| Error::NotFound(format!("request {id}")))?;
    if req.requester_id == approver.id {
        return Err(Error::refused(
            "self_approval",
            "nobody decides their own request",
        ));
    }
    if req.state != "pending" {
        return Err(Error::Conflict(format!("request {id} is {}", req.state)));
    }
    let sets = seats(tx, &req).await?;
    if !sets.iter().any(|s| s.members.contains(&approver.id)) {
        return Err(Error::refused(
            "not_approver",
            format!("{} is not an approver of request {id}", approver.username),
        ));
    }
    let already: Option<String> = sqlx::query_scalar(
        "SELECT decision FROM request_decisions WHERE request_id = $1 AND approver_id = $2",
    )
    .bind(id)
    .bind(approver.id.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(d) = already {
        return Err(Error::Conflict(format!(
            "{} already decided request {id} ({d})",
            approver.username
        )));
    }
    Ok((req, sets))
}

/// Checks everything a decider must pass; returns the request.
async fn admissible(
    tx: &mut Tx,
    approver: &Identity,
    now_ms: i64,
    id: &str,
    mfa_at_ms: Option<i64>,
) -> Result<(Request, Vec<Seats>)> {
    let (req, sets) = deciders_checks(tx, approver, now_ms, id).await?;
    let role = crate::access::roles::by_id(tx, &req.role_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("role {}", req.role)))?;
    if role.spec.approval_requires_mfa
        && mfa_at_ms.is_none_or(|t| now_ms - t > role.spec.approval_mfa_max_age_ms)
    {
        return Err(Error::refused(
            "mfa_required",
            format!(
                "role {} requires a fresh multi-factor check to approve",
                role.name
            ),
        ));
    }
    Ok((req, sets))
}

async fn record(
    tx: &mut Tx,
    approver: &Identity,
    now_ms: i64,
    id: &str,
    decision: &str,
    comment: &str,
    mfa_at_ms: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO request_decisions (request_id, approver_id, decision, comment, mfa_at, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(approver.id.as_str())
    .bind(decision)
    .bind(comment)
    .bind(mfa_at_ms)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Approves. The request becomes approved (and its grant starts) once every approver set has its
/// count of distinct approvers. Audited as `request.approve`; a refusal as
/// `request.approve.refused`, kept by [`Tx::settle`] although the approval fails.
pub async fn approve(
    tx: &mut Tx,
    approver: &Identity,
    now_ms: i64,
    id: &str,
    comment: &str,
    mfa_at_ms: Option<i64>,
) -> Result<Outcome> {
    // Every check reads only, so a refusal's audit record is all the transaction then holds.
    let checked = async {
        let (req, sets) = admissible(tx, approver, now_ms, id, mfa_at_ms).await?;
        crate::access::sod::check_adding(tx, &req.requester_id, &req.requester, &req.role, now_ms)
            .await?;
        Ok((req, sets))
    }
    .await;
    let (req, sets) = audit_refusal(tx, approver, now_ms, id, "approve", checked).await?;
    record(tx, approver, now_ms, id, "approve", comment, mfa_at_ms).await?;
    let missing = quorum::missing(&sets, &approvals(tx, id).await?);
    let waiting_for: Vec<String> = missing.iter().map(|(l, n)| format!("{n} of {l}")).collect();
    let actor = Actor::identity(&approver.username);
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "request.approve",
            format!("request:{id}"),
        )
        .details(serde_json::json!({
            "requester": req.requester, "role": req.role, "comment": comment,
            "mfa_at": mfa_at_ms.map(crate::clock::format_ms),
            "quorum_met": missing.is_empty(), "waiting_for": waiting_for,
        })),
    )
    .await?;
    if missing.is_empty() {
        let grant = super::fulfil(tx, &actor, now_ms, id, Source::Request).await?;
        outbox::enqueue(
            tx,
            now_ms,
            Channel::Notify,
            "request.approved",
            &format!(
                "request by {} for role {} approved; access until {}",
                req.requester,
                req.role,
                crate::clock::format_ms(grant.not_after_ms)
            ),
            serde_json::json!({ "request": id, "grant": grant.id }),
        )
        .await?;
    }
    let request = by_id(tx, id, now_ms)
        .await?
        .ok_or_else(|| Error::Storage("request vanished".into()))?;
    Ok(Outcome {
        request,
        waiting_for,
    })
}

/// Denies; one approver's deny ends the request. Audited as `request.deny`; a refusal as
/// `request.deny.refused`, kept by [`Tx::settle`].
pub async fn deny(
    tx: &mut Tx,
    approver: &Identity,
    now_ms: i64,
    id: &str,
    comment: &str,
) -> Result<Request> {
    let checked = admissible(tx, approver, now_ms, id, Some(now_ms)).await;
    let (req, _) = audit_refusal(tx, approver, now_ms, id, "deny", checked).await?;
    record(tx, approver, now_ms, id, "deny", comment, None).await?;
    sqlx::query("UPDATE access_requests SET state = 'denied', decided_at = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let actor = Actor::identity(&approver.username);
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "request.deny", format!("request:{id}")).details(
            serde_json::json!({ "requester": req.requester, "role": req.role, "comment": comment }),
        ),
    )
    .await?;
    outbox::enqueue(
        tx,
        now_ms,
        Channel::Notify,
        "request.denied",
        &format!(
            "request by {} for role {} denied by {}",
            req.requester, req.role, approver.username
        ),
        serde_json::json!({ "request": id }),
    )
    .await?;
    Ok(Request {
        state: "denied".into(),
        decided_at_ms: Some(now_ms),
        ..req
    })
}

/// Pending requests `approver` may decide (their approver queue).
pub async fn queue(
    conn: &mut AnyConnection,
    approver: &Identity,
    now_ms: i64,
) -> Result<Vec<Request>> {
    let pending = super::list(
        conn,
        &super::Filter {
            state: Some("pending".into()),
            limit: 1000,
            ..Default::default()
        },
        now_ms,
    )
    .await?;
    let mut out = Vec::new();
    for r in pending {
        if r.state != "pending" || r.requester_id == approver.id {
            continue;
        }
        if seats(conn, &r)
            .await?
            .iter()
            .any(|s| s.members.contains(&approver.id))
        {
            out.push(r);
        }
    }
    Ok(out)
}
