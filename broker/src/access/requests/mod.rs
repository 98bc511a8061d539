//! Access requests: for a role, or for specific targets and a login (the role is then the one
//! the requester is eligible for that covers them), with a duration, reason, ticket, optional
//! scheduled start, or as an extension of a live grant. States: pending → approved | denied |
//! cancelled | expired (pending past its TTL); an approved request's grant is then scheduled,
//! active, ended or revoked. Break-glass roles grant at once; roles without approvers activate
//! at once (PIM-style self-activation). Decisions are in [`decision`].

pub mod decision;
pub mod quorum;

use crate::access::assignments::{Kind as AssignmentKind, Subject};
use crate::access::grants::{self, Grant, NewGrant, Source};
use crate::access::roles::Role;
use crate::actor::Actor;
use crate::clock::format_ms;
use crate::error::{Error, Result};
use crate::identity::identities::Identity;
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::outbox::{self, Channel};
use crate::ledger::store::Tx;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

pub use decision::{approve, deny};

/// What a requester asks for.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// The role; may be left out when `targets` are given.
    #[serde(default)]
    pub role: Option<String>,
    /// Narrow the grant to these targets (and pick the role by them when `role` is absent).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Narrow the grant to this login.
    #[serde(default)]
    pub login: Option<String>,
    /// How long, e.g. `1h`, `30m`.
    pub duration: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
    /// Scheduled start (RFC 3339); the grant starts at approval or then, whichever is later.
    #[serde(default)]
    pub start_at: Option<String>,
    /// Extend this live grant instead of creating a new one.
    #[serde(default)]
    pub extends_grant: Option<String>,
}

/// A stored request, with its effective state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub id: String,
    pub requester_id: String,
    pub requester: String,
    pub role_id: String,
    pub role: String,
    pub targets: Option<Vec<String>>,
    pub login: Option<String>,
    pub duration_ms: i64,
    pub reason: String,
    pub ticket: Option<String>,
    pub start_at_ms: Option<i64>,
    pub extends_grant: Option<String>,
    pub break_glass: bool,
    /// pending, approved, denied, cancelled, expired (stored state, with pending past its TTL
    /// shown as expired).
    pub state: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub decided_at_ms: Option<i64>,
    pub grant_id: Option<String>,
}

const SELECT: &str = "SELECT r.id, r.requester_id, i.username, r.role_id, r.role_name, r.targets, \
     r.login, r.duration_ms, r.reason, r.ticket, r.start_at, r.extends_grant, r.break_glass, \
     r.state, r.created_at, r.expires_at, r.decided_at, r.grant_id \
     FROM access_requests r JOIN identities i ON i.id = r.requester_id";

fn from_row(r: &AnyRow, now_ms: i64) -> Result<Request> {
    let targets: Option<String> = r.try_get(5)?;
    let mut state: String = r.try_get(13)?;
    let expires_at_ms: i64 = r.try_get(15)?;
    if state == "pending" && now_ms >= expires_at_ms {
        state = "expired".into();
    }
    Ok(Request {
        id: r.try_get(0)?,
        requester_id: r.try_get(1)?,
        requester: r.try_get(2)?,
        role_id: r.try_get(3)?,
        role: r.try_get(4)?,
        targets: targets
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| Error::Storage(format!("request targets: {e}")))?,
        login: r.try_get(6)?,
        duration_ms: r.try_get(7)?,
        reason: r.try_get(8)?,
        ticket: r.try_get(9)?,
        start_at_ms: r.try_get(10)?,
        extends_grant: r.try_get(11)?,
        break_glass: r.try_get::<i64, _>(12)? != 0,
        state,
        created_at_ms: r.try_get(14)?,
        expires_at_ms,
        decided_at_ms: r.try_get(16)?,
        grant_id: r.try_get(17)?,
    })
}

/// One request.
pub async fn by_id(conn: &mut AnyConnection, id: &str, now_ms: i64) -> Result<Option<Request>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE r.id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(|r| from_row(r, now_ms)).transpose()
}

/// Filters for [`list`].
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub requester_id: Option<String>,
    /// Stored state (`pending` also returns those past their TTL, shown as expired).
    pub state: Option<String>,
    pub limit: i64,
}

/// Requests, newest first.
pub async fn list(conn: &mut AnyConnection, f: &Filter, now_ms: i64) -> Result<Vec<Request>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE ($1 = '' OR r.requester_id = $1) AND ($2 = '' OR r.state = $2) \
         ORDER BY r.created_at DESC, r.id DESC LIMIT $3"
    )))
    .bind(f.requester_id.clone().unwrap_or_default())
    .bind(f.state.clone().unwrap_or_default())
    .bind(if f.limit > 0 { f.limit } else { 100 })
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| from_row(r, now_ms)).collect()
}

/// Parses a duration such as `1h`, `90m`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<i64> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| Error::invalid(format!("duration {s:?}: {e} (write it like 1h or 30m)")))?;
    i64::try_from(d.as_millis())
        .ok()
        .filter(|ms| *ms > 0)
        .ok_or_else(|| Error::invalid(format!("duration {s:?} must be positive")))
}

/// Whether `who` may request `role`: an eligible assignment in its window (direct or through a
/// group), or the role's `requestable_by`.
pub async fn may_request(
    conn: &mut AnyConnection,
    who: &Identity,
    role: &Role,
    now_ms: i64,
) -> Result<bool> {
    let eligible = crate::access::assignments::of_identity(conn, &who.id)
        .await?
        .into_iter()
        .any(|a| a.role_id == role.id && a.kind == AssignmentKind::Eligible && a.in_window(now_ms));
    if eligible {
        return Ok(true);
    }
    if role.spec.requestable_by.is_empty() {
        return Ok(false);
    }
    let groups = crate::identity::groups::of_identity(conn, &who.username).await?;
    Ok(role
        .spec
        .requestable_by
        .iter()
        .any(|s| match Subject::parse(s) {
            Ok(Subject::Identity(u)) => u == who.username,
            Ok(Subject::Group(g)) => groups.contains(&g),
            Err(_) => false,
        }))
}

/// The targets a role selects, by name.
pub async fn targets_of_role(conn: &mut AnyConnection, role: &Role) -> Result<Vec<String>> {
    Ok(crate::access::targets::list(conn)
        .await?
        .into_iter()
        .filter(|t| role.spec.targets.matches(&t.name, &t.labels))
        .map(|t| t.name)
        .collect())
}

/// Picks the role for a request by targets: the first (by name) the requester may request that
/// covers every target and the login.
async fn pick_role(
    conn: &mut AnyConnection,
    who: &Identity,
    targets: &[String],
    login: Option<&str>,
    now_ms: i64,
) -> Result<Role> {
    let all_targets = crate::access::targets::list(conn).await?;
    for role in crate::access::roles::list(conn).await? {
        let covered: Vec<&str> = all_targets
            .iter()
            .filter(|t| role.spec.targets.matches(&t.name, &t.labels))
            .map(|t| t.name.as_str())
            .collect();
        if targets.iter().all(|t| covered.contains(&t.as_str()))
            && login.is_none_or(|l| role.spec.logins.iter().any(|x| x == l))
            && may_request(conn, who, &role, now_ms).await?
        {
            return Ok(role);
        }
    }
    Err(Error::refused(
        "not_eligible",
        format!(
            "no role you may request covers {}{}",
            targets.join(", "),
            login.map(|l| format!(" as {l}")).unwrap_or_default()
        ),
    ))
}

/// Creates a request for `who`; audited as `request.create`. Break-glass roles and roles without
/// approvers are granted in the same transaction.
pub async fn create(tx: &mut Tx, who: &Identity, now_ms: i64, new: NewRequest) -> Result<Request> {
    let actor = Actor::identity(&who.username);
    if new.role.is_none() && new.targets.is_empty() {
        return Err(Error::invalid("name a role or at least one target"));
    }
    let role = match &new.role {
        Some(name) => {
            let role = crate::access::roles::by_name(tx, name)
                .await?
                .ok_or_else(|| Error::NotFound(format!("role {name}")))?;
            if !may_request(tx, who, &role, now_ms).await? {
                return Err(Error::refused(
                    "not_eligible",
                    format!("{} may not request role {name}", who.username),
                ));
            }
            role
        }
        None => pick_role(tx, who, &new.targets, new.login.as_deref(), now_ms).await?,
    };
    let spec = &role.spec;
    let duration_ms = parse_duration(&new.duration)?;
    if duration_ms > spec.ceiling_ms() {
        return Err(Error::invalid(format!(
            "duration {} is longer than role {} allows ({})",
            new.duration,
            role.name,
            humantime::format_duration(std::time::Duration::from_millis(
                u64::try_from(spec.ceiling_ms()).unwrap_or(0)
            ))
        )));
    }
    if (spec.require_reason || spec.break_glass) && new.reason.trim().is_empty() {
        return Err(Error::invalid(format!(
            "role {} requires a reason",
            role.name
        )));
    }
    let ticket = new.ticket.filter(|t| !t.trim().is_empty());
    if spec.require_ticket && ticket.is_none() {
        return Err(Error::invalid(format!(
            "role {} requires a ticket",
            role.name
        )));
    }
    let covered = targets_of_role(tx, &role).await?;
    for t in &new.targets {
        if !covered.contains(t) {
            return Err(Error::invalid(format!(
                "role {} does not cover target {t}",
                role.name
            )));
        }
    }
    if let Some(l) = &new.login
        && !spec.logins.contains(l)
    {
        return Err(Error::invalid(format!(
            "role {} does not allow login {l}",
            role.name
        )));
    }
    let start_at_ms = match &new.start_at {
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| Error::invalid(format!("start_at {s:?}: {e} (use RFC 3339)")))?
                .timestamp_millis(),
        ),
        None => None,
    };
    if let Some(g) = &new.extends_grant {
        let grant = grants::by_id(tx, g)
            .await?
            .filter(|x| x.identity_id == who.id)
            .ok_or_else(|| Error::NotFound(format!("grant {g}")))?;
        if grant.role_id != role.id || !grant.is_active(now_ms) {
            return Err(Error::invalid(format!(
                "grant {g} is not a live grant of role {}",
                role.name
            )));
        }
    }
    crate::access::sod::check_adding(tx, &who.id, &who.username, &role.name, now_ms).await?;

    let id = ids::new_id();
    let targets = (!new.targets.is_empty()).then_some(new.targets.clone());
    let targets_json = targets
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::Storage(e.to_string()))?;
    sqlx::query(
        "INSERT INTO access_requests (id, requester_id, role_id, role_name, targets, login, \
         duration_ms, reason, ticket, start_at, extends_grant, break_glass, state, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13, $14)",
    )
    .bind(id.as_str())
    .bind(who.id.as_str())
    .bind(role.id.as_str())
    .bind(role.name.as_str())
    .bind(targets_json)
    .bind(new.login.as_deref())
    .bind(duration_ms)
    .bind(new.reason.as_str())
    .bind(ticket.as_deref())
    .bind(start_at_ms)
    .bind(new.extends_grant.as_deref())
    .bind(i64::from(spec.break_glass))
    .bind(now_ms)
    .bind(now_ms + spec.request_ttl_ms)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "request.create", format!("request:{id}")).details(
            serde_json::json!({
                "role": role.name, "targets": targets, "login": new.login,
                "duration_ms": duration_ms, "reason": new.reason, "ticket": ticket,
                "start_at": start_at_ms.map(format_ms), "extends_grant": new.extends_grant,
                "break_glass": spec.break_glass,
            }),
        ),
    )
    .await?;

    if spec.break_glass {
        let grant = fulfil(tx, &Actor::System, now_ms, &id, Source::BreakGlass).await?;
        let summary = format!(
            "break-glass: {} took role {} until {} — reason: {}",
            who.username,
            role.name,
            format_ms(grant.not_after_ms),
            new.reason
        );
        crate::governance::reviews::open(
            tx,
            now_ms,
            "break_glass",
            &who.id,
            Some(&grant.id),
            &summary,
        )
        .await?;
        outbox::enqueue(
            tx,
            now_ms,
            Channel::Alert,
            "break_glass",
            &format!(":rotating_light: {summary}"),
            serde_json::json!({ "request": id, "grant": grant.id, "identity": who.username,
                "role": role.name, "reason": new.reason,
                "not_after": format_ms(grant.not_after_ms) }),
        )
        .await?;
    } else if spec.approvals.is_empty() {
        fulfil(tx, &Actor::System, now_ms, &id, Source::Request).await?;
    } else {
        outbox::enqueue(
            tx,
            now_ms,
            Channel::Notify,
            "request.created",
            &format!(
                "{} requests role {} for {}{} — reason: {} — approvers: {}",
                who.username,
                role.name,
                new.duration.trim(),
                targets
                    .as_ref()
                    .map(|t| format!(" on {}", t.join(", ")))
                    .unwrap_or_default(),
                if new.reason.is_empty() {
                    "(none)"
                } else {
                    new.reason.as_str()
                },
                spec.approvals
                    .iter()
                    .map(|a| format!("{} of {}", a.count, a.from))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ),
            serde_json::json!({ "request": id, "requester": who.username, "role": role.name }),
        )
        .await?;
    }
    by_id(tx, &id, now_ms)
        .await?
        .ok_or_else(|| Error::Storage("request vanished".into()))
}

/// Marks a pending request approved and creates (or extends) its grant. The clock starts now,
/// or at the scheduled start if that is later.
pub(crate) async fn fulfil(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    id: &str,
    source: Source,
) -> Result<Grant> {
    let req = by_id(tx, id, now_ms)
        .await?
        .ok_or_else(|| Error::NotFound(format!("request {id}")))?;
    let grant = match &req.extends_grant {
        Some(g) => {
            let current = grants::by_id(tx, g)
                .await?
                .ok_or_else(|| Error::NotFound(format!("grant {g}")))?;
            let from = current.not_after_ms.max(now_ms);
            grants::extend(tx, actor, now_ms, g, from + req.duration_ms).await?
        }
        None => {
            let start = req.start_at_ms.unwrap_or(now_ms).max(now_ms);
            grants::create(
                tx,
                actor,
                now_ms,
                NewGrant {
                    identity_id: req.requester_id.clone(),
                    role_id: req.role_id.clone(),
                    role: req.role.clone(),
                    source,
                    request_id: Some(req.id.clone()),
                    targets: req.targets.clone(),
                    login: req.login.clone(),
                    not_before_ms: start,
                    not_after_ms: start + req.duration_ms,
                },
            )
            .await?
        }
    };
    sqlx::query(
        "UPDATE access_requests SET state = 'approved', decided_at = $1, grant_id = $2 WHERE id = $3",
    )
    .bind(now_ms)
    .bind(grant.id.as_str())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(grant)
}

/// Cancels a pending request; only its requester may. Audited as `request.cancel`.
pub async fn cancel(tx: &mut Tx, who: &Identity, now_ms: i64, id: &str) -> Result<Request> {
    let req = by_id(tx, id, now_ms)
        .await?
        .filter(|r| r.requester_id == who.id)
        .ok_or_else(|| Error::NotFound(format!("request {id}")))?;
    if req.state != "pending" {
        return Err(Error::Conflict(format!("request {id} is {}", req.state)));
    }
    sqlx::query("UPDATE access_requests SET state = 'cancelled', decided_at = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            Actor::identity(&who.username).to_string(),
            "request.cancel",
            format!("request:{id}"),
        ),
    )
    .await?;
    Ok(Request {
        state: "cancelled".into(),
        decided_at_ms: Some(now_ms),
        ..req
    })
}
