//! Findings: continuous least privilege. What people hold but do not use, or hold in a riskier
//! form than they need, each with its remediation. [`findings`] is a plain function over a
//! [`Snapshot`] (tested without a database); [`snapshot`] reads one from the store.

use crate::access::assignments::{self, Kind as HeldAs, Subject};
use crate::access::roles;
use crate::error::Result;
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

/// Unused for this long is unused (90 days).
pub const UNUSED_MS: i64 = 90 * 24 * 3600 * 1000;

/// Logins that make a role privileged (full control of what it reaches).
pub const PRIVILEGED_LOGINS: &[&str] = &["root", "administrator", "admin", "postgres", "sa"];

/// The kinds of finding, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A standing assignment of a privileged role: it could be eligible (just in time).
    StandingPrivilegedAccess,
    /// An eligible assignment not activated (no grant) in 90 days.
    EligibleNeverActivated,
    /// An active identity with no web sign-in and no session in 90 days.
    InactiveIdentity,
    /// A Gatehouse privilege (`admin`, `reviewer`), held standing.
    StandingGatehousePrivilege,
    /// A privileged role whose sessions need no second factor.
    PrivilegedRoleWithoutSessionMfa,
    /// Someone holds both sides of a separation-of-duties rule without an exception.
    SodViolation,
    /// A break-glass use whose post-review is still open.
    BreakGlassWithoutReview,
    /// An active SSH key that signed no login in 90 days.
    UnusedSshKey,
    /// A live API token that authenticated nothing in 90 days.
    UnusedApiToken,
}

impl Kind {
    /// The stored and printed spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::StandingPrivilegedAccess => "standing_privileged_access",
            Kind::EligibleNeverActivated => "eligible_never_activated",
            Kind::InactiveIdentity => "inactive_identity",
            Kind::StandingGatehousePrivilege => "standing_gatehouse_privilege",
            Kind::PrivilegedRoleWithoutSessionMfa => "privileged_role_without_session_mfa",
            Kind::SodViolation => "sod_violation",
            Kind::BreakGlassWithoutReview => "break_glass_without_review",
            Kind::UnusedSshKey => "unused_ssh_key",
            Kind::UnusedApiToken => "unused_api_token",
        }
    }
}

/// One finding: what, about whom or what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: Kind,
    /// `identity:NAME`, `role:NAME`, `review:ID`.
    pub subject: String,
    pub detail: String,
    pub remediation: String,
    /// What a review of it covers, when one helps: `role:NAME` or `privilege:NAME` (see
    /// `campaigns::store::start_for`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
}

/// An identity as findings need it.
#[derive(Debug, Clone, Default)]
pub struct Person {
    pub username: String,
    pub active: bool,
    pub created_at_ms: i64,
    /// Last web sign-in and last session start (SSH or app), if any.
    pub last_sign_in_ms: Option<i64>,
    pub last_session_ms: Option<i64>,
    pub privileges: Vec<String>,
}

/// A role: its name, whether it is privileged, whether its sessions need a second factor.
#[derive(Debug, Clone, Default)]
pub struct RoleFacts {
    pub name: String,
    pub privileged: bool,
    pub session_mfa: bool,
}

/// A role assigned to an identity, directly or through a group.
#[derive(Debug, Clone)]
pub struct Held {
    pub username: String,
    pub role: String,
    pub kind: HeldAs,
    pub since_ms: i64,
    /// The group the assignment is made to, if not to the person.
    pub via_group: Option<String>,
}

/// A credential's use: an SSH key (`name` = its fingerprint) or an API token (its name).
#[derive(Debug, Clone, Default)]
pub struct CredentialUse {
    pub username: String,
    pub name: String,
    pub created_at_ms: i64,
    pub last_used_ms: Option<i64>,
}

/// Everything [`findings`] looks at.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub now_ms: i64,
    pub people: Vec<Person>,
    pub roles: Vec<RoleFacts>,
    pub held: Vec<Held>,
    /// (username, role) → the start of the last grant of that role.
    pub last_grant_ms: HashMap<(String, String), i64>,
    /// SoD conflicts without an exception, in words.
    pub sod: Vec<(String, String)>,
    /// Open break-glass post-reviews: (review id, subject, opened at).
    pub open_reviews: Vec<(String, String, i64)>,
    pub ssh_keys: Vec<CredentialUse>,
    pub tokens: Vec<CredentialUse>,
}

fn via(h: &Held) -> String {
    h.via_group
        .as_ref()
        .map(|g| format!(" (through group {g})"))
        .unwrap_or_default()
}

fn days(ms: i64) -> i64 {
    ms / (24 * 3600 * 1000)
}

/// The findings of a snapshot, by kind then subject.
pub fn findings(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    let old = |t: i64| s.now_ms - t >= UNUSED_MS;
    let roles: HashMap<&str, &RoleFacts> = s.roles.iter().map(|r| (r.name.as_str(), r)).collect();
    for h in &s.held {
        let privileged = roles.get(h.role.as_str()).is_some_and(|r| r.privileged);
        let last = s
            .last_grant_ms
            .get(&(h.username.clone(), h.role.clone()))
            .copied();
        match h.kind {
            HeldAs::Standing if privileged => out.push(Finding {
                kind: Kind::StandingPrivilegedAccess,
                subject: format!("identity:{}", h.username),
                detail: format!("holds the privileged role {} standing{}", h.role, via(h)),
                remediation: format!(
                    "assign {} to {} as eligible (kind = \"eligible\" in policy as code, or POST /api/v1/assignments) and remove the standing assignment",
                    h.role,
                    h.via_group
                        .as_ref()
                        .map_or(h.username.clone(), |g| format!("group:{g}"))
                ),
                review: Some(format!("role:{}", h.role)),
            }),
            HeldAs::Eligible if old(h.since_ms) && last.is_none_or(old) => out.push(Finding {
                kind: Kind::EligibleNeverActivated,
                subject: format!("identity:{}", h.username),
                detail: match last {
                    None => format!("eligible for {}{} and never activated it", h.role, via(h)),
                    Some(t) => format!(
                        "eligible for {}{} and last activated it {} days ago",
                        h.role,
                        via(h),
                        days(s.now_ms - t)
                    ),
                },
                remediation: format!(
                    "remove the eligible assignment of {} (policy as code, or DELETE /api/v1/assignments/ID), or review who holds it",
                    h.role
                ),
                review: Some(format!("role:{}", h.role)),
            }),
            _ => {}
        }
    }
    for p in s.people.iter().filter(|p| p.active) {
        let last = p.last_sign_in_ms.max(p.last_session_ms);
        if old(p.created_at_ms) && last.is_none_or(old) {
            out.push(Finding {
                kind: Kind::InactiveIdentity,
                subject: format!("identity:{}", p.username),
                detail: match last {
                    None => "no web sign-in or session in 90 days".into(),
                    Some(t) => format!("last seen {} days ago", days(s.now_ms - t)),
                },
                remediation: "suspend it, or confirm with its manager that it is still needed"
                    .into(),
                review: None,
            });
        }
        for privilege in &p.privileges {
            out.push(Finding {
                kind: Kind::StandingGatehousePrivilege,
                subject: format!("identity:{}", p.username),
                detail: format!("holds the Gatehouse privilege {privilege} standing"),
                remediation: "confirm it is still needed (a review of the privilege's holders): Gatehouse privileges are held standing (just-in-time privileges do not exist yet)".into(),
                review: Some(format!("privilege:{privilege}")),
            });
        }
    }
    for r in s.roles.iter().filter(|r| r.privileged && !r.session_mfa) {
        out.push(Finding {
            kind: Kind::PrivilegedRoleWithoutSessionMfa,
            subject: format!("role:{}", r.name),
            detail: "a privileged role whose sessions need no second factor".into(),
            remediation: "set session_mfa = true on the role".into(),
            review: None,
        });
    }
    for (identity, conflict) in &s.sod {
        out.push(Finding {
            kind: Kind::SodViolation,
            subject: format!("identity:{identity}"),
            detail: conflict.clone(),
            remediation: "remove one side, or record an exception with its approver and expiry"
                .into(),
            review: None,
        });
    }
    for (id, subject, opened) in &s.open_reviews {
        out.push(Finding {
            kind: Kind::BreakGlassWithoutReview,
            subject: format!("review:{id}"),
            detail: format!(
                "break-glass use by {subject}, review open for {} days",
                days(s.now_ms - opened)
            ),
            remediation: format!(
                "look at the session and close the review: POST /api/v1/reviews/{id}/close"
            ),
            review: None,
        });
    }
    for (kind, list, what) in [
        (Kind::UnusedSshKey, &s.ssh_keys, "SSH key"),
        (Kind::UnusedApiToken, &s.tokens, "API token"),
    ] {
        for c in list {
            if old(c.created_at_ms) && c.last_used_ms.is_none_or(old) {
                out.push(Finding {
                    kind,
                    subject: format!("identity:{}", c.username),
                    detail: match c.last_used_ms {
                        None => format!("{what} {} never used", c.name),
                        Some(t) => format!(
                            "{what} {} last used {} days ago",
                            c.name,
                            days(s.now_ms - t)
                        ),
                    },
                    remediation: match kind {
                        Kind::UnusedSshKey => "remove the key from the identity".into(),
                        _ => "revoke the token".into(),
                    },
                    review: None,
                });
            }
        }
    }
    out.sort_by(|a, b| (a.kind, &a.subject, &a.detail).cmp(&(b.kind, &b.subject, &b.detail)));
    out
}

/// Whether a role is privileged: it grants a privileged login ([`PRIVILEGED_LOGINS`]) or is a
/// break-glass role.
pub fn is_privileged(spec: &crate::access::role_spec::RoleSpec) -> bool {
    spec.break_glass
        || spec
            .logins
            .iter()
            .any(|l| PRIVILEGED_LOGINS.contains(&l.to_ascii_lowercase().as_str()))
}

/// Reads a snapshot at `now_ms`.
pub async fn snapshot(conn: &mut AnyConnection, now_ms: i64) -> Result<Snapshot> {
    let mut s = Snapshot {
        now_ms,
        ..Default::default()
    };
    let mut names: HashMap<String, String> = HashMap::new();
    let rows = sqlx::query("SELECT id, username, status, created_at FROM identities")
        .fetch_all(&mut *conn)
        .await?;
    let mut people: HashMap<String, Person> = HashMap::new();
    for r in rows {
        let id: String = r.try_get(0)?;
        let username: String = r.try_get(1)?;
        let status: String = r.try_get(2)?;
        names.insert(id.clone(), username.clone());
        people.insert(
            id,
            Person {
                username,
                active: status == "active",
                created_at_ms: r.try_get(3)?,
                ..Default::default()
            },
        );
    }
    for r in sqlx::query("SELECT identity_id, MAX(started_at) FROM sessions GROUP BY identity_id")
        .fetch_all(&mut *conn)
        .await?
    {
        let id: String = r.try_get(0)?;
        if let Some(p) = people.get_mut(&id) {
            p.last_session_ms = r.try_get(1)?;
        }
    }
    // Web sign-ins within the window only (the audit log's time index keeps this to the last
    // 90 days of events; an older sign-in counts as none, which is what the finding needs).
    let by_name: HashMap<String, String> = names
        .iter()
        .map(|(id, name)| (name.clone(), id.clone()))
        .collect();
    for r in sqlx::query(
        "SELECT actor, MAX(time) FROM audit_events WHERE time >= $1 AND action = 'web.sign_in' \
         GROUP BY actor",
    )
    .bind(now_ms - UNUSED_MS)
    .fetch_all(&mut *conn)
    .await?
    {
        let actor: String = r.try_get(0)?;
        if let Some(id) = actor
            .strip_prefix("identity:")
            .and_then(|name| by_name.get(name))
            && let Some(p) = people.get_mut(id)
        {
            p.last_sign_in_ms = r.try_get(1)?;
        }
    }
    for r in
        sqlx::query("SELECT identity_id, privilege FROM identity_privileges ORDER BY privilege")
            .fetch_all(&mut *conn)
            .await?
    {
        let id: String = r.try_get(0)?;
        if let Some(p) = people.get_mut(&id) {
            p.privileges.push(r.try_get(1)?);
        }
    }
    s.people = people.into_values().collect();
    for role in roles::list(conn).await? {
        s.roles.push(RoleFacts {
            privileged: is_privileged(&role.spec),
            session_mfa: role.spec.session_mfa,
            name: role.name,
        });
    }
    let since: HashMap<String, i64> = sqlx::query("SELECT id, created_at FROM role_assignments")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    for r in sqlx::query(
        "SELECT g.name, i.username FROM group_members m JOIN groups g ON g.id = m.group_id \
         JOIN identities i ON i.id = m.identity_id",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        members
            .entry(r.try_get(0)?)
            .or_default()
            .push(r.try_get(1)?);
    }
    for a in assignments::list(conn).await? {
        if !a.in_window(now_ms) {
            continue;
        }
        let since_ms = since.get(&a.id).copied().unwrap_or(now_ms);
        let (people, via_group) = match &a.subject {
            Subject::Identity(username) => (vec![username.clone()], None),
            Subject::Group(group) => (
                members.get(group).cloned().unwrap_or_default(),
                Some(group.clone()),
            ),
        };
        for username in people {
            s.held.push(Held {
                username,
                role: a.role.clone(),
                kind: a.kind,
                since_ms,
                via_group: via_group.clone(),
            });
        }
    }
    for r in sqlx::query("SELECT identity_id, role_name, MAX(not_before) FROM grants GROUP BY identity_id, role_name")
        .fetch_all(&mut *conn)
        .await?
    {
        let id: String = r.try_get(0)?;
        if let Some(name) = names.get(&id) {
            s.last_grant_ms
                .insert((name.clone(), r.try_get(1)?), r.try_get(2)?);
        }
    }
    for (c, excepted) in crate::access::sod::scan(conn, now_ms).await? {
        if !excepted {
            s.sod.push((c.identity.clone(), c.describe()));
        }
    }
    for r in crate::governance::reviews::list(conn, true).await? {
        if r.kind.contains("break_glass") {
            s.open_reviews.push((r.id, r.identity, r.created_at_ms));
        }
    }
    for r in sqlx::query(
        "SELECT identity_id, fingerprint, created_at, last_used_at FROM ssh_keys WHERE status = 'active'",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        let id: String = r.try_get(0)?;
        s.ssh_keys.push(CredentialUse {
            username: names.get(&id).cloned().unwrap_or(id),
            name: r.try_get(1)?,
            created_at_ms: r.try_get(2)?,
            last_used_ms: r.try_get(3)?,
        });
    }
    for r in sqlx::query(
        "SELECT identity_id, name, created_at, last_used_at FROM api_tokens \
         WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)",
    )
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?
    {
        let id: String = r.try_get(0)?;
        s.tokens.push(CredentialUse {
            username: names.get(&id).cloned().unwrap_or(id),
            name: r.try_get(1)?,
            created_at_ms: r.try_get(2)?,
            last_used_ms: r.try_get(3)?,
        });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600 * 1000;
    const NOW: i64 = 1_000 * DAY;

    fn kinds(s: &Snapshot) -> Vec<(Kind, String)> {
        findings(s)
            .into_iter()
            .map(|f| (f.kind, f.subject))
            .collect()
    }

    fn person(name: &str, last_seen_days_ago: Option<i64>) -> Person {
        Person {
            username: name.into(),
            active: true,
            created_at_ms: NOW - 400 * DAY,
            last_session_ms: last_seen_days_ago.map(|d| NOW - d * DAY),
            ..Default::default()
        }
    }

    #[test]
    fn each_kind_appears_for_its_fixture_and_clears_after_its_remediation() {
        let mut s = Snapshot {
            now_ms: NOW,
            people: vec![
                person("alice", Some(1)),
                person("idle", Some(120)),
                person("never", None),
                Person {
                    privileges: vec!["admin".into()],
                    ..person("root-admin", Some(1))
                },
            ],
            roles: vec![
                RoleFacts {
                    name: "prod-root".into(),
                    privileged: true,
                    session_mfa: false,
                },
                RoleFacts {
                    name: "viewer".into(),
                    privileged: false,
                    session_mfa: false,
                },
            ],
            held: vec![
                Held {
                    username: "alice".into(),
                    role: "prod-root".into(),
                    kind: HeldAs::Standing,
                    since_ms: NOW - 10 * DAY,
                    via_group: None,
                },
                Held {
                    username: "alice".into(),
                    role: "viewer".into(),
                    kind: HeldAs::Eligible,
                    since_ms: NOW - 200 * DAY,
                    via_group: Some("eng".into()),
                },
            ],
            sod: vec![("alice".into(), "rule deploy-vs-approve".into())],
            open_reviews: vec![("r1".into(), "alice".into(), NOW - 3 * DAY)],
            ssh_keys: vec![CredentialUse {
                username: "alice".into(),
                name: "SHA256:old".into(),
                created_at_ms: NOW - 300 * DAY,
                last_used_ms: Some(NOW - 100 * DAY),
            }],
            tokens: vec![CredentialUse {
                username: "root-admin".into(),
                name: "ci".into(),
                created_at_ms: NOW - 300 * DAY,
                last_used_ms: None,
            }],
            ..Default::default()
        };
        let all = kinds(&s);
        let want = [
            (Kind::StandingPrivilegedAccess, "identity:alice"),
            (Kind::EligibleNeverActivated, "identity:alice"),
            (Kind::InactiveIdentity, "identity:idle"),
            (Kind::InactiveIdentity, "identity:never"),
            (Kind::StandingGatehousePrivilege, "identity:root-admin"),
            (Kind::PrivilegedRoleWithoutSessionMfa, "role:prod-root"),
            (Kind::SodViolation, "identity:alice"),
            (Kind::BreakGlassWithoutReview, "review:r1"),
            (Kind::UnusedSshKey, "identity:alice"),
            (Kind::UnusedApiToken, "identity:root-admin"),
        ];
        assert_eq!(
            all,
            want.iter()
                .map(|(k, s)| (*k, s.to_string()))
                .collect::<Vec<_>>()
        );
        // Every finding says what to do.
        assert!(findings(&s).iter().all(|f| !f.remediation.is_empty()));

        // Remediated: eligible instead of standing, the eligible role used recently, idle people
        // gone, the privilege dropped, session MFA on, the conflict and review resolved, the key
        // used, the token revoked (no longer listed).
        s.held[0].kind = HeldAs::Eligible;
        s.last_grant_ms
            .insert(("alice".into(), "prod-root".into()), NOW - DAY);
        s.last_grant_ms
            .insert(("alice".into(), "viewer".into()), NOW - 5 * DAY);
        s.people[1].active = false;
        s.people[2].last_sign_in_ms = Some(NOW - DAY);
        s.people[3].privileges.clear();
        s.roles[0].session_mfa = true;
        s.sod.clear();
        s.open_reviews.clear();
        s.ssh_keys[0].last_used_ms = Some(NOW - DAY);
        s.tokens.clear();
        assert_eq!(kinds(&s), []);
    }

    #[test]
    fn new_access_is_not_unused_yet() {
        let s = Snapshot {
            now_ms: NOW,
            people: vec![Person {
                created_at_ms: NOW - 5 * DAY,
                ..person("new", None)
            }],
            held: vec![Held {
                username: "new".into(),
                role: "viewer".into(),
                kind: HeldAs::Eligible,
                since_ms: NOW - 5 * DAY,
                via_group: None,
            }],
            tokens: vec![CredentialUse {
                username: "new".into(),
                name: "t".into(),
                created_at_ms: NOW - 5 * DAY,
                last_used_ms: None,
            }],
            ..Default::default()
        };
        assert_eq!(kinds(&s), []);
    }

    #[test]
    fn privileged_roles_are_those_with_privileged_logins_or_break_glass() {
        let mut spec = crate::access::role_spec::RoleSpec {
            logins: vec!["deploy".into()],
            ..Default::default()
        };
        assert!(!is_privileged(&spec));
        spec.logins.push("Root".into());
        assert!(is_privileged(&spec));
        spec.logins = vec!["deploy".into()];
        spec.break_glass = true;
        assert!(is_privileged(&spec));
    }
}
