//! Reading the evidence: every dataset of a pack, each from one stated query over the tables or
//! the audit log for the period, plus the checks that reconcile table populations with the
//! audit chain. IO only; what the numbers mean is decided in `controls`.

use super::dataset::{Col, Dataset, query, time};
use super::entitlements::{self, State};
use crate::error::Result;
use crate::governance::findings::is_privileged;
use futures_util::StreamExt;
use serde_json::Value;
use sqlx::{AnyConnection, AssertSqlSafe, Row};
use std::collections::BTreeMap;

/// The period a pack covers: `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// What a pack is generated with.
#[derive(Debug, Clone)]
pub struct Options {
    pub period: Period,
    /// Leavers must be cut off within this (ms) of their HR event.
    pub termination_sla_ms: i64,
    /// Recording retention (ms), if set.
    pub recordings_retention_ms: Option<i64>,
    /// Audit retention (ms), if set.
    pub audit_retention_ms: Option<i64>,
    /// Web sign-in session idle and absolute limits (ms), for automatic logoff.
    pub web_idle_ms: i64,
    pub web_absolute_ms: i64,
    pub now_ms: i64,
}

/// Every dataset by name.
pub type Datasets = BTreeMap<String, Dataset>;

const EVENT_COLS: [Col; 6] = [
    Col::Int("seq"),
    Col::Time("time"),
    Col::Text("actor"),
    Col::Text("action"),
    Col::Text("object"),
    Col::Text("outcome"),
];

fn in_list(actions: &[&str]) -> String {
    actions
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Audit events of the period whose action is one of `actions` (with their details).
async fn events(
    conn: &mut AnyConnection,
    p: Period,
    name: &str,
    title: &str,
    actions: &[&str],
) -> Result<Dataset> {
    let sql = format!(
        "SELECT seq, time, actor, action, object, outcome, details FROM audit_events \
         WHERE time >= $1 AND time < $2 AND action IN ({}) AND outcome = 'success' \
         AND NOT (action = 'identity.status' AND details LIKE '%\"to\":\"active\"%') ORDER BY seq",
        in_list(actions)
    );
    let mut cols = EVENT_COLS.to_vec();
    cols.push(Col::Text("details"));
    query(
        conn,
        name,
        title,
        &sql,
        &[("from_ms", p.from_ms), ("to_ms", p.to_ms)],
        &cols,
    )
    .await
}

/// Counts audit events of the period by action (one query).
async fn count_events(
    conn: &mut AnyConnection,
    p: Period,
    actions: &[&str],
    outcome: Option<&str>,
) -> Result<i64> {
    let mut sql = format!(
        "SELECT COUNT(*) FROM audit_events WHERE time >= $1 AND time < $2 AND action IN ({})",
        in_list(actions)
    );
    if let Some(o) = outcome {
        sql.push_str(&format!(" AND outcome = '{o}'"));
    }
    Ok(sqlx::query(AssertSqlSafe(sql))
        .bind(p.from_ms)
        .bind(p.to_ms)
        .fetch_one(conn)
        .await?
        .try_get(0)?)
}

/// Reads every dataset any framework uses.
pub async fn gather(
    conn: &mut AnyConnection,
    o: &Options,
    chain: &crate::ledger::audit::VerifyReport,
) -> Result<Datasets> {
    let p = o.period;
    let pp = [("from_ms", p.from_ms), ("to_ms", p.to_ms)];
    let mut out = Datasets::new();
    let mut put = |d: Dataset| {
        out.insert(d.name.clone(), d);
    };

    put(query(
        conn,
        "identities",
        "Every identity now: unique user name, source, status and sign-in factors (CC6.1, A.5.16, 164.312(a)(2)(i), 164.312(d))",
        "SELECT i.username, i.display_name, i.source, i.status, i.created_at, i.updated_at, \
         (SELECT COUNT(*) FROM identity_privileges p WHERE p.identity_id = i.id) AS privileges, \
         CASE WHEN EXISTS (SELECT 1 FROM identity_passwords w WHERE w.identity_id = i.id) THEN 1 ELSE 0 END AS password, \
         CASE WHEN EXISTS (SELECT 1 FROM identity_totp t WHERE t.identity_id = i.id) THEN 1 ELSE 0 END AS totp, \
         (SELECT COUNT(*) FROM identity_passkeys k WHERE k.identity_id = i.id) AS passkeys, \
         (SELECT COUNT(*) FROM ssh_keys s WHERE s.identity_id = i.id AND s.status = 'active') AS ssh_keys \
         FROM identities i ORDER BY i.username",
        &[],
        &[
            Col::Text("username"),
            Col::Text("display_name"),
            Col::Text("source"),
            Col::Text("status"),
            Col::Time("created_at"),
            Col::Time("updated_at"),
            Col::Int("privileges"),
            Col::Flag("password"),
            Col::Flag("totp"),
            Col::Int("passkeys"),
            Col::Int("ssh_keys"),
        ],
    )
    .await?);

    put(query(
        conn,
        "privileges",
        "Gatehouse's own privileges (admin, reviewer) now, with who granted them",
        "SELECT i.username, p.privilege, p.granted_at, p.granted_by, i.status FROM identity_privileges p \
         JOIN identities i ON i.id = p.identity_id ORDER BY i.username, p.privilege",
        &[],
        &[
            Col::Text("username"),
            Col::Text("privilege"),
            Col::Time("granted_at"),
            Col::Text("granted_by"),
            Col::Text("status"),
        ],
    )
    .await?);

    let mut roles = query(
        conn,
        "roles",
        "Every role now as policy defines it (selector, logins, approvals, condition), with its holders",
        "SELECT r.name, r.description, r.source, r.spec, \
         (SELECT COUNT(*) FROM role_assignments a WHERE a.role_id = r.id AND a.kind = 'standing') AS standing, \
         (SELECT COUNT(*) FROM role_assignments a WHERE a.role_id = r.id AND a.kind = 'eligible') AS eligible \
         FROM roles r ORDER BY r.name",
        &[],
        &[
            Col::Text("role"),
            Col::Text("description"),
            Col::Text("source"),
            Col::Text("spec"),
            Col::Int("standing_assignments"),
            Col::Int("eligible_assignments"),
        ],
    )
    .await?;
    roles.columns.push("privileged".into());
    roles.columns.push("approvals_required".into());
    for r in &mut roles.rows {
        let spec: crate::access::role_spec::RoleSpec = r
            .get(3)
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let need: i64 = spec.approvals.iter().map(|a| i64::from(a.count)).sum();
        r.push(Value::Bool(is_privileged(&spec)));
        r.push(Value::from(need));
    }
    roles.query.push_str(
        " -- privileged: the spec's logins include a superuser login; approvals_required: the sum of its approver sets' counts",
    );
    put(roles);

    put(query(
        conn,
        "assignments",
        "Standing and eligible assignments now: role, person or group, window, source",
        "SELECT r.name, a.subject_kind, COALESCE(i.username, g.name) AS subject, a.kind, a.not_before, \
         a.not_after, a.source, a.created_at FROM role_assignments a JOIN roles r ON r.id = a.role_id \
         LEFT JOIN identities i ON a.subject_kind = 'identity' AND i.id = a.subject_id \
         LEFT JOIN groups g ON a.subject_kind = 'group' AND g.id = a.subject_id \
         ORDER BY r.name, subject, a.kind",
        &[],
        &[
            Col::Text("role"),
            Col::Text("subject_kind"),
            Col::Text("subject"),
            Col::Text("kind"),
            Col::Time("not_before"),
            Col::Time("not_after"),
            Col::Text("source"),
            Col::Time("created_at"),
        ],
    )
    .await?);

    // Entitlements at the end of the period, rebuilt from the audit log (the same function as
    // the as-of report; equal to the tables' answer when the period ends now).
    let end = p.to_ms.min(o.now_ms);
    let state = State::replay(conn, end).await?;
    let used = entitlements::last_used(conn, end).await?;
    put(entitlement_dataset(
        &state,
        &used,
        end - 1,
        "audit log replayed up to the end of the period",
    ));

    let mut grants = query(
        conn,
        "grants",
        "Every grant that started in the period, with its request and approvals (CC6.2, SOX provisioning)",
        "SELECT g.id, i.username, g.role_name, g.source, g.request_id, q.created_at, q.reason, q.ticket, \
         (SELECT COUNT(*) FROM request_decisions d WHERE d.request_id = g.request_id AND d.decision = 'approve') AS approvals, \
         (SELECT MAX(d.created_at) FROM request_decisions d WHERE d.request_id = g.request_id AND d.decision = 'approve') AS last_approval, \
         g.not_before, g.not_after, g.revoked_at, g.revoked_by, g.revoke_reason, g.created_at \
         FROM grants g JOIN identities i ON i.id = g.identity_id LEFT JOIN access_requests q ON q.id = g.request_id \
         WHERE g.created_at >= $1 AND g.created_at < $2 ORDER BY g.created_at, g.id",
        &pp,
        &[
            Col::Text("grant"),
            Col::Text("identity"),
            Col::Text("role"),
            Col::Text("source"),
            Col::Text("request"),
            Col::Time("requested_at"),
            Col::Text("reason"),
            Col::Text("ticket"),
            Col::Int("approvals"),
            Col::Time("last_approval_at"),
            Col::Time("not_before"),
            Col::Time("not_after"),
            Col::Time("revoked_at"),
            Col::Text("revoked_by"),
            Col::Text("revoke_reason"),
            Col::Time("created_at"),
        ],
    )
    .await?;
    grants.columns.push("approvals_required".into());
    grants.columns.push("approval".into());
    let history = role_history(conn, p.to_ms).await?;
    for r in &mut grants.rows {
        let role = r
            .get(2)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let source = r
            .get(3)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let approvals = r.get(8).and_then(Value::as_i64).unwrap_or(0);
        let created = r
            .get(15)
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(i64::MAX, |t| t.timestamp_millis());
        let need = spec_at(&history, &role, created).map(|spec| {
            spec.approvals
                .iter()
                .map(|a| i64::from(a.count))
                .sum::<i64>()
        });
        let last = r
            .get(9)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let start = r
            .get(10)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let verdict = match need {
            _ if source == "break_glass" => "break-glass (post-review)".to_string(),
            None => {
                format!("MISSING: the role {role} is not in the audit log at the grant's start")
            }
            Some(0) => "self-activation (the role needed no approval)".to_string(),
            Some(need) if approvals >= need && !last.is_empty() && last <= start => {
                format!("{approvals} approval(s) of {need} before start")
            }
            Some(need) => format!("MISSING: {approvals} approval(s) of {need} before start"),
        };
        r.push(need.map_or(Value::Null, Value::from));
        r.push(Value::String(verdict));
    }
    grants.query.push_str(
        " -- approvals_required: the role's approver sets as they stood when the grant was created (role.create / role.update events); approval: approvals before not_before against it",
    );
    put(grants);

    put(query(
        conn,
        "approvals",
        "Every decision on the requests of the period: approver, decision, comment, second factor",
        "SELECT d.request_id, q.role_name, r.username AS requester, a.username AS approver, d.decision, d.comment, \
         d.mfa_at, d.created_at FROM request_decisions d JOIN access_requests q ON q.id = d.request_id \
         JOIN identities r ON r.id = q.requester_id JOIN identities a ON a.id = d.approver_id \
         WHERE d.created_at >= $1 AND d.created_at < $2 ORDER BY d.created_at, d.request_id",
        &pp,
        &[
            Col::Text("request"),
            Col::Text("role"),
            Col::Text("requester"),
            Col::Text("approver"),
            Col::Text("decision"),
            Col::Text("comment"),
            Col::Time("mfa_at"),
            Col::Time("decided_at"),
        ],
    )
    .await?);

    put(query(
        conn,
        "requests",
        "Every access request of the period and how it ended",
        "SELECT q.id, i.username, q.role_name, q.state, q.break_glass, q.reason, q.ticket, q.duration_ms, \
         q.created_at, q.decided_at, q.grant_id FROM access_requests q JOIN identities i ON i.id = q.requester_id \
         WHERE q.created_at >= $1 AND q.created_at < $2 ORDER BY q.created_at, q.id",
        &pp,
        &[
            Col::Text("request"),
            Col::Text("requester"),
            Col::Text("role"),
            Col::Text("state"),
            Col::Flag("break_glass"),
            Col::Text("reason"),
            Col::Text("ticket"),
            Col::Int("duration_ms"),
            Col::Time("created_at"),
            Col::Time("decided_at"),
            Col::Text("grant"),
        ],
    )
    .await?);

    put(joiners(conn, p).await?);

    put(leavers(conn, o).await?);

    put(events(
        conn,
        p,
        "removals",
        "Access removed in the period: grants revoked, assignments removed or ended, memberships and privileges removed, identities disabled",
        &[
            "grant.revoke",
            "assignment.remove",
            "assignment.end",
            "group.member.remove",
            "privilege.revoke",
            "identity.status",
        ],
    )
    .await?);

    put(query(
        conn,
        "sessions",
        "Every session of the period through the gateways, with its end and recording (CC6.6, CC7.2, 164.308(a)(5)(ii)(C))",
        "SELECT s.id, s.identity, s.target, s.login, s.protocol, s.kind, s.grant_kind, s.started_at, s.ended_at, \
         s.end_reason, s.bytes_up, s.bytes_down, CASE WHEN s.recording IS NULL THEN 0 ELSE 1 END AS recorded \
         FROM sessions s WHERE s.started_at >= $1 AND s.started_at < $2 ORDER BY s.started_at, s.id",
        &pp,
        &[
            Col::Text("session"),
            Col::Text("identity"),
            Col::Text("target"),
            Col::Text("login"),
            Col::Text("protocol"),
            Col::Text("kind"),
            Col::Text("held_as"),
            Col::Time("started_at"),
            Col::Time("ended_at"),
            Col::Text("end_reason"),
            Col::Int("bytes_up"),
            Col::Int("bytes_down"),
            Col::Flag("recorded"),
        ],
    )
    .await?);

    put(query(
        conn,
        "targets",
        "Every target and how it is reached: only through the gateway, host key pinned, logins vaulted, sessions in the period",
        "SELECT t.name, t.kind, t.address, t.owner, CASE WHEN t.host_key IS NULL THEN 0 ELSE 1 END AS host_key_pinned, \
         (SELECT COUNT(*) FROM target_credentials c WHERE c.target_id = t.id) AS vaulted_logins, \
         (SELECT COUNT(*) FROM sessions s WHERE s.target = t.name AND s.started_at >= $1 AND s.started_at < $2) AS sessions \
         FROM targets t ORDER BY t.name",
        &pp,
        &[
            Col::Text("target"),
            Col::Text("kind"),
            Col::Text("address"),
            Col::Text("owner"),
            Col::Flag("host_key_pinned"),
            Col::Int("vaulted_logins"),
            Col::Int("sessions"),
        ],
    )
    .await?);

    put(query(
        conn,
        "break_glass",
        "Every break-glass grant of the period with its reason and its post-review (CC7.2, 164.312(a)(2)(ii))",
        "SELECT g.id, i.username, g.role_name, q.reason, g.not_before, g.not_after, g.revoked_at, v.id, v.state, \
         v.closed_at, v.closed_by, v.outcome FROM grants g JOIN identities i ON i.id = g.identity_id \
         LEFT JOIN access_requests q ON q.id = g.request_id LEFT JOIN reviews v ON v.grant_id = g.id \
         WHERE g.source = 'break_glass' AND g.created_at >= $1 AND g.created_at < $2 ORDER BY g.created_at, g.id",
        &pp,
        &[
            Col::Text("grant"),
            Col::Text("identity"),
            Col::Text("role"),
            Col::Text("reason"),
            Col::Time("not_before"),
            Col::Time("not_after"),
            Col::Time("revoked_at"),
            Col::Text("review"),
            Col::Text("review_state"),
            Col::Time("reviewed_at"),
            Col::Text("reviewed_by"),
            Col::Text("review_outcome"),
        ],
    )
    .await?);

    put(query(
        conn,
        "alerts",
        "Alerts queued for the webhook in the period (break-glass and security alerts) and their delivery",
        "SELECT o.id, o.channel, o.created_at, o.delivered_at, o.attempts, o.last_error FROM webhook_outbox o \
         WHERE o.created_at >= $1 AND o.created_at < $2 ORDER BY o.created_at, o.id",
        &pp,
        &[
            Col::Text("id"),
            Col::Text("channel"),
            Col::Time("created_at"),
            Col::Time("delivered_at"),
            Col::Int("attempts"),
            Col::Text("last_error"),
        ],
    )
    .await?);

    put(events(
        conn,
        p,
        "terminations",
        "Sessions terminated by an administrator in the period",
        &["session.terminate"],
    )
    .await?);

    put(query(
        conn,
        "reviews",
        "Access review campaigns open during the period: completion, revokes, verification, sign-off",
        "SELECT c.id, c.name, c.kind, c.owner, c.state, c.started_at, c.ends_at, c.ended_at, c.signed_off_by, \
         (SELECT COUNT(*) FROM review_items x WHERE x.campaign_id = c.id) AS items, \
         (SELECT COUNT(*) FROM review_items x WHERE x.campaign_id = c.id AND x.decision IS NOT NULL) AS decided, \
         (SELECT COUNT(*) FROM review_items x WHERE x.campaign_id = c.id AND x.decision = 'revoke') AS revoke_decisions, \
         (SELECT COUNT(*) FROM review_items x WHERE x.campaign_id = c.id AND x.verified = 1) AS verified, \
         (SELECT COUNT(*) FROM review_items x WHERE x.campaign_id = c.id AND x.decision = 'revoke' \
          AND (x.verified IS NULL OR x.verified = 0)) AS revokes_not_verified, \
         CASE WHEN c.spec LIKE '%\"apply\":\"sign_off\"%' THEN 1 ELSE 0 END AS needs_sign_off \
         FROM review_campaigns c WHERE c.started_at < $2 AND (c.ended_at IS NULL OR c.ended_at >= $1) \
         ORDER BY c.started_at, c.id",
        &pp,
        &[
            Col::Text("campaign"),
            Col::Text("name"),
            Col::Text("kind"),
            Col::Text("owner"),
            Col::Text("state"),
            Col::Time("started_at"),
            Col::Time("ends_at"),
            Col::Time("ended_at"),
            Col::Text("signed_off_by"),
            Col::Int("items"),
            Col::Int("decided"),
            Col::Int("revoke_decisions"),
            Col::Int("verified"),
            Col::Int("revokes_not_verified"),
            Col::Flag("needs_sign_off"),
        ],
    )
    .await?);

    put(events(
        conn,
        p,
        "policy_changes",
        "Changes to access policy in the period: roles, targets, assignments, groups, SoD rules and exceptions, privileges, review definitions",
        &[
            "role.create",
            "role.update",
            "role.delete",
            "target.create",
            "target.update",
            "target.delete",
            "assignment.add",
            "assignment.remove",
            "assignment.end",
            "group.create",
            "group.rename",
            "group.delete",
            "group.member.add",
            "group.member.remove",
            "sod_rule.create",
            "sod_rule.update",
            "sod_rule.delete",
            "sod_exception.create",
            "privilege.grant",
            "privilege.revoke",
            "review.define",
            "review.undefine",
        ],
    )
    .await?);

    put(sign_ins(conn, p).await?);

    put(query(
        conn,
        "privileged_sessions",
        "Sessions of the period by how the access was held: just in time (grant, break-glass) or standing (A.8.2)",
        "SELECT s.grant_kind, COUNT(*) AS sessions, COUNT(DISTINCT s.identity) AS identities \
         FROM sessions s WHERE s.started_at >= $1 AND s.started_at < $2 GROUP BY s.grant_kind ORDER BY s.grant_kind",
        &pp,
        &[Col::Text("held_as"), Col::Int("sessions"), Col::Int("identities")],
    )
    .await?);

    put(query(
        conn,
        "sod_rules",
        "Segregation-of-duties rules now",
        "SELECT name, left_roles, right_roles, description, source, updated_at FROM sod_rules ORDER BY name",
        &[],
        &[
            Col::Text("rule"),
            Col::Text("left_roles"),
            Col::Text("right_roles"),
            Col::Text("description"),
            Col::Text("source"),
            Col::Time("updated_at"),
        ],
    )
    .await?);

    put(query(
        conn,
        "sod_exceptions",
        "SoD exceptions: who holds one, who approved it, why, until when",
        "SELECT e.rule_name, i.username, e.approved_by, e.reason, e.created_at, e.expires_at \
         FROM sod_exceptions e JOIN identities i ON i.id = e.identity_id ORDER BY e.created_at, e.id",
        &[],
        &[
            Col::Text("rule"),
            Col::Text("identity"),
            Col::Text("approved_by"),
            Col::Text("reason"),
            Col::Time("created_at"),
            Col::Time("expires_at"),
        ],
    )
    .await?);

    let mut sod = Dataset::derived(
        "sod_violations",
        "People holding both sides of an SoD rule now, and whether an unexpired exception covers it",
        "sod::scan: roles held by each identity now (standing, group, active grants) checked against sod_rules; exceptions from sod_exceptions WHERE expires_at > now",
        &["rule", "identity", "left", "right", "excepted"],
    )
    .param("now_ms", o.now_ms);
    for (c, excepted) in crate::access::sod::scan(conn, o.now_ms).await? {
        sod.rows.push(vec![
            Value::from(c.rule),
            Value::from(c.identity),
            Value::from(c.left),
            Value::from(c.right),
            Value::Bool(excepted),
        ]);
    }
    put(sod);

    put(query(
        conn,
        "checkpoints",
        "Signed audit checkpoints made in the period",
        "SELECT size, root_hash, created_at, key_id FROM audit_checkpoints \
         WHERE created_at >= $1 AND created_at < $2 ORDER BY size",
        &pp,
        &[
            Col::Int("size"),
            Col::Text("root_hash"),
            Col::Time("created_at"),
            Col::Text("key_id"),
        ],
    )
    .await?);

    let mut integ = Dataset::derived(
        "audit_integrity",
        "The audit chain verified end to end when the pack was made (A.8.15, 164.312(b))",
        "audit verify: every event's hash recomputed and linked to the one before, checkpoints checked against the trusted key",
        &[
            "events",
            "head_hash",
            "checkpoints_checked",
            "problems",
            "first_problem",
        ],
    );
    integ.rows.push(vec![
        Value::from(chain.events),
        Value::from(chain.head_hash.clone()),
        Value::from(chain.checkpoints),
        Value::from(usize::from(chain.problem.is_some())),
        Value::from(chain.problem.as_ref().map(|p| p.to_string())),
    ]);
    put(integ);

    put(retention_dataset(conn, o).await?);

    let mut logoff = Dataset::derived(
        "automatic_logoff",
        "Automatic logoff: browser session limits, grant expiry ends sessions (164.312(a)(2)(iii))",
        "settings [web] idle/absolute; COUNT(*) FROM sessions WHERE end_reason IN ('grant_expired','access_ended') in the period",
        &["control", "value"],
    )
    .param("from_ms", p.from_ms)
    .param("to_ms", p.to_ms);
    let expired: i64 = sqlx::query(
        "SELECT COUNT(*) FROM sessions WHERE started_at >= $1 AND started_at < $2 \
         AND end_reason IN ('grant_expired', 'access_ended')",
    )
    .bind(p.from_ms)
    .bind(p.to_ms)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    logoff.rows.push(vec![
        "web sign-in idle limit (s)".into(),
        Value::from(o.web_idle_ms / 1000),
    ]);
    logoff.rows.push(vec![
        "web sign-in absolute limit (s)".into(),
        Value::from(o.web_absolute_ms / 1000),
    ]);
    logoff.rows.push(vec![
        "sessions ended when their access ended".into(),
        Value::from(expired),
    ]);
    put(logoff);

    let recon = reconcile(conn, p, &out).await?;
    out.insert(recon.name.clone(), recon);
    Ok(out)
}

/// The entitlement rows as a dataset.
pub fn entitlement_dataset(
    state: &State,
    used: &BTreeMap<(String, String, String), i64>,
    at_ms: i64,
    source: &str,
) -> Dataset {
    let mut d = Dataset::derived(
        "entitlements",
        "Who can reach what, and why: identity × target × login × how held × since × last used",
        &format!(
            "entitlements over the {source}: roles' target selectors and logins applied to standing and eligible assignments (direct and through groups), grants live at the time, and privileges; active identities only; last used = MAX(sessions.started_at) before the time"
        ),
        &[
            "identity", "target", "login", "role", "held_as", "since", "until", "last_used",
        ],
    )
    .param("at_ms", at_ms)
    .param("at", crate::clock::format_ms(at_ms));
    for e in entitlements::entitlements(state, at_ms) {
        let last = used
            .get(&(e.identity.clone(), e.target.clone(), e.login.clone()))
            .copied();
        d.rows.push(vec![
            Value::from(e.identity),
            Value::from(e.target),
            Value::from(e.login),
            Value::from(e.role),
            Value::from(e.held_as),
            time(Some(e.since)),
            time(e.until),
            time(last),
        ]);
    }
    d
}

/// Leavers of the period: HR (or SCIM, directory, administrator) event → access removed →
/// live sessions ended, and the time to cut-off.
pub(crate) async fn leavers(conn: &mut AnyConnection, o: &Options) -> Result<Dataset> {
    let p = o.period;
    let sql = "SELECT e.object, e.time, e.actor, \
               (SELECT MIN(h.time) FROM audit_events h WHERE h.object = e.object \
                AND h.action IN ('hr.leaver', 'scim.leaver', 'directory.leaver') \
                AND h.time >= e.time - 86400000 AND h.time <= e.time) AS hr_event \
               FROM audit_events e WHERE e.time >= $1 AND e.time < $2 AND e.action = 'identity.status' \
               AND e.outcome = 'success' AND e.details LIKE '%\"to\":\"terminated\"%' ORDER BY e.seq";
    let mut d = Dataset::derived(
        "leavers",
        "Leavers of the period: HR event → access removed → sessions ended, with the time to cut-off (CC6.3, SOX terminations, 164.308(a)(3)(ii)(C))",
        &format!(
            "{sql}; then per leaver: SELECT MAX(ended_at), COUNT(*) FROM sessions WHERE identity = leaver AND started_at < removed AND (ended_at IS NULL OR ended_at >= removed); HR event = MIN(the leaver event, the end of the identity's end_date); cut_off = MAX(removed, sessions ended) - HR event"
        ),
        &[
            "identity",
            "by",
            "hr_event_at",
            "access_removed_at",
            "live_sessions",
            "sessions_ended_at",
            "cut_off_ms",
            "within_sla",
        ],
    )
    .param("from_ms", p.from_ms)
    .param("to_ms", p.to_ms)
    .param("termination_sla_ms", o.termination_sla_ms);
    let rows = sqlx::query(sql)
        .bind(p.from_ms)
        .bind(p.to_ms)
        .fetch_all(&mut *conn)
        .await?;
    for r in rows {
        let object: String = r.try_get(0)?;
        let removed: i64 = r.try_get(1)?;
        let actor: String = r.try_get(2)?;
        let hr: Option<i64> = r.try_get(3)?;
        let who = object
            .strip_prefix("identity:")
            .unwrap_or(&object)
            .to_string();
        // HR dated the leave earlier than it arrived: access was due at the end of end_date.
        let attrs: Option<String> =
            sqlx::query("SELECT attributes FROM identities WHERE username = $1")
                .bind(&who)
                .fetch_optional(&mut *conn)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        let due = attrs
            .and_then(|a| serde_json::from_str::<Value>(&a).ok())
            .and_then(|a| a.get("end_date").and_then(Value::as_str).map(String::from))
            .and_then(|d| super::parse_time(&d, true).ok());
        let s = sqlx::query(
            "SELECT MAX(ended_at), COUNT(*), SUM(CASE WHEN ended_at IS NULL THEN 1 ELSE 0 END) \
             FROM sessions WHERE identity = $1 AND started_at < $2 AND (ended_at IS NULL OR ended_at >= $2)",
        )
        .bind(&who)
        .bind(removed)
        .fetch_one(&mut *conn)
        .await?;
        let ended: Option<i64> = s.try_get(0)?;
        let live: i64 = s.try_get(1)?;
        let still: Option<i64> = s.try_get(2)?;
        let start = hr.unwrap_or(removed).min(due.unwrap_or(i64::MAX));
        let cut = if still.unwrap_or(0) > 0 {
            None
        } else {
            Some(ended.unwrap_or(removed).max(removed) - start)
        };
        d.rows.push(vec![
            Value::from(who),
            Value::from(actor),
            time(Some(start)),
            time(Some(removed)),
            Value::from(live),
            time(ended),
            cut.map_or(Value::Null, Value::from),
            Value::Bool(cut.is_some_and(|c| c <= o.termination_sla_ms)),
        ]);
    }
    Ok(d)
}

/// Sign-ins and second-factor checks of the period by method and outcome (aggregated from the
/// audit log; 164.308(a)(5)(ii)(C), A.8.5).
async fn sign_ins(conn: &mut AnyConnection, p: Period) -> Result<Dataset> {
    let actions = [
        "web.sign_in",
        "web.reauth",
        "mfa.totp",
        "mfa.recovery_code",
        "directory.sign_in",
        "session.denied",
        "authorize",
    ];
    let sql = format!(
        "SELECT action, outcome, details FROM audit_events WHERE time >= $1 AND time < $2 AND action IN ({})",
        in_list(&actions)
    );
    let mut d = Dataset::derived(
        "sign_ins",
        "Sign-ins, second-factor checks and access decisions of the period by method and outcome",
        &format!(
            "{sql} -- counted by action, method (details.methods / method / via / protocol) and outcome"
        ),
        &["action", "method", "outcome", "count"],
    )
    .param("from_ms", p.from_ms)
    .param("to_ms", p.to_ms);
    let mut counts: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    let mut rows = sqlx::query(AssertSqlSafe(sql))
        .bind(p.from_ms)
        .bind(p.to_ms)
        .fetch(&mut *conn);
    while let Some(r) = rows.next().await {
        let r = r?;
        let action: String = r.try_get(0)?;
        let outcome: String = r.try_get(1)?;
        let details: String = r.try_get(2)?;
        let v: Value = serde_json::from_str(&details).unwrap_or(Value::Null);
        let method = ["methods", "method", "via", "protocol", "source", "step"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .unwrap_or("")
            .to_string();
        *counts.entry((action, method, outcome)).or_default() += 1;
    }
    drop(rows);
    for ((a, m, o), n) in counts {
        d.rows.push(vec![
            Value::from(a),
            Value::from(m),
            Value::from(o),
            Value::from(n),
        ]);
    }
    Ok(d)
}

async fn retention_dataset(conn: &mut AnyConnection, o: &Options) -> Result<Dataset> {
    let s = super::retention::status(
        conn,
        o.now_ms,
        o.recordings_retention_ms,
        o.audit_retention_ms,
    )
    .await?;
    let mut d = Dataset::derived(
        "retention",
        "Retention: what is kept and for how long (164.316(b)(2))",
        "MIN(time) FROM audit_events; sessions with a recording by ended_at against [retention] recordings",
        &["item", "policy", "status"],
    );
    for r in s.rows() {
        d.rows
            .push(vec![Value::from(r.0), Value::from(r.1), Value::from(r.2)]);
    }
    Ok(d)
}

/// Table populations reconciled with the audit chain: each dataset drawn from a table against
/// the count of the audit events that record the same thing in the period.
async fn reconcile(conn: &mut AnyConnection, p: Period, ds: &Datasets) -> Result<Dataset> {
    let mut d = Dataset::derived(
        "reconciliation",
        "Completeness and accuracy: each population from the tables against the audit events recording the same facts in the period",
        "SELECT COUNT(*) FROM audit_events WHERE time >= $1 AND time < $2 AND action IN (...) [AND outcome = ...]",
        &["dataset", "rows", "audit_actions", "audit_events", "reconciled"],
    )
    .param("from_ms", p.from_ms)
    .param("to_ms", p.to_ms);
    // Populations read from the tables only; those read from the audit log (leavers, joiners,
    // removals, policy changes, sign-ins) are the log itself.
    let checks: [(&str, &[&str], Option<&str>); 4] = [
        ("grants", &["grant.start"], None),
        ("requests", &["request.create"], None),
        ("sessions", &["session.start"], Some("allow")),
        (
            "approvals",
            &["request.approve", "request.deny"],
            Some("success"),
        ),
    ];
    for (name, actions, outcome) in checks {
        let rows = ds.get(name).map_or(0, |x| x.rows.len() as i64);
        let n = count_events(conn, p, actions, outcome).await?;
        d.rows.push(vec![
            Value::from(name),
            Value::from(rows),
            Value::from(actions.join(" ")),
            Value::from(n),
            Value::Bool(rows == n),
        ]);
    }
    Ok(d)
}

/// Each role's spec over time, from `role.create` / `role.update` / `role.delete` events before
/// `until_ms`: (time, spec or None when deleted), in order.
pub(crate) type RoleHistory =
    BTreeMap<String, Vec<(i64, Option<crate::access::role_spec::RoleSpec>)>>;

pub(crate) async fn role_history(conn: &mut AnyConnection, until_ms: i64) -> Result<RoleHistory> {
    let rows = sqlx::query(
        "SELECT time, action, object, details FROM audit_events WHERE time < $1 \
         AND action IN ('role.create', 'role.update', 'role.delete') AND outcome = 'success' ORDER BY seq",
    )
    .bind(until_ms)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = RoleHistory::new();
    for r in rows {
        let t: i64 = r.try_get(0)?;
        let action: String = r.try_get(1)?;
        let object: String = r.try_get(2)?;
        let details: String = r.try_get(3)?;
        let name = object.strip_prefix("role:").unwrap_or(&object).to_string();
        let d: Value = serde_json::from_str(&details).unwrap_or(Value::Null);
        let spec = match action.as_str() {
            "role.create" => d
                .get("spec")
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
            "role.update" => d
                .get("after")
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
            _ => None,
        };
        out.entry(name).or_default().push((t, spec));
    }
    Ok(out)
}

/// The role's spec in force at `at_ms` (the last change at or before it).
pub(crate) fn spec_at<'a>(
    h: &'a RoleHistory,
    role: &str,
    at_ms: i64,
) -> Option<&'a crate::access::role_spec::RoleSpec> {
    h.get(role)?
        .iter()
        .rev()
        .find(|(t, _)| *t <= at_ms)
        .and_then(|(_, s)| s.as_ref())
}

/// Joiners of the period, one row per identity: the first event that brought it in (created by
/// an administrator or apply, by the HR feed, SCIM or the directory) and every such event.
async fn joiners(conn: &mut AnyConnection, p: Period) -> Result<Dataset> {
    let actions = [
        "identity.create",
        "hr.joiner",
        "hr.staged",
        "scim.user.create",
    ];
    let sql = format!(
        "SELECT object, time, actor, action FROM audit_events WHERE time >= $1 AND time < $2 \
         AND outcome = 'success' AND action IN ({}) ORDER BY seq",
        in_list(&actions)
    );
    let mut d = Dataset::derived(
        "joiners",
        "Joiners of the period, one row per identity: when and by whom it was brought in",
        &format!("{sql} -- grouped by object: the first event's time and actor, every action"),
        &["identity", "joined_at", "by", "via"],
    )
    .param("from_ms", p.from_ms)
    .param("to_ms", p.to_ms);
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(p.from_ms)
        .bind(p.to_ms)
        .fetch_all(&mut *conn)
        .await?;
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, (i64, String, Vec<String>)> = BTreeMap::new();
    for r in rows {
        let object: String = r.try_get(0)?;
        let who = object
            .strip_prefix("identity:")
            .unwrap_or(&object)
            .to_string();
        let t: i64 = r.try_get(1)?;
        let actor: String = r.try_get(2)?;
        let action: String = r.try_get(3)?;
        let e = by.entry(who.clone()).or_insert_with(|| {
            order.push(who.clone());
            (t, actor, Vec::new())
        });
        if !e.2.contains(&action) {
            e.2.push(action);
        }
    }
    for who in order {
        if let Some((t, actor, via)) = by.remove(&who) {
            d.rows.push(vec![
                Value::from(who),
                time(Some(t)),
                Value::from(actor),
                Value::from(via),
            ]);
        }
    }
    Ok(d)
}
