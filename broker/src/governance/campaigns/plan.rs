//! Which items a campaign has, with their evidence, recommendation and reviewers: a plain
//! function ([`plan`]) over [`Facts`], tested without a database. [`super::facts`] reads the
//! facts from the store.

use super::spec::{CampaignSpec, Scope};
use crate::access::assignments::Kind as HeldAs;
use crate::access::role_spec::TargetSelector;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Unused for this long means unused (90 days), as in the findings.
pub const UNUSED_MS: i64 = crate::governance::findings::UNUSED_MS;

/// A person as the planner needs them.
#[derive(Debug, Clone, Default)]
pub struct Person {
    pub id: String,
    pub username: String,
    /// `active`, `disabled`, `suspended`, `prehire`, `terminated`.
    pub status: String,
    pub attributes: Map<String, Value>,
    /// Gatehouse privileges held: (privilege, granted at).
    pub privileges: Vec<(String, i64)>,
}

impl Person {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// A role as the planner needs it.
#[derive(Debug, Clone, Default)]
pub struct Role {
    pub name: String,
    pub privileged: bool,
    pub owner: Option<String>,
    pub targets: TargetSelector,
    pub logins: Vec<String>,
}

/// A target: name, labels, owner.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub name: String,
    pub labels: Map<String, Value>,
    pub owner: Option<String>,
}

/// A role assignment in its window, to a person or a group.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub id: String,
    pub role: String,
    /// The username, or the group name when `group`.
    pub subject: String,
    pub group: bool,
    pub kind: HeldAs,
    pub source: String,
    pub since_ms: i64,
}

/// Sessions (or, for privileges, web sign-ins) of one access.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub last_ms: Option<i64>,
    /// Within the last 90 days.
    pub count_90d: i64,
}

impl Usage {
    fn merge(self, o: Usage) -> Usage {
        Usage {
            last_ms: self.last_ms.max(o.last_ms),
            count_90d: self.count_90d + o.count_90d,
        }
    }
}

/// Everything [`plan`] looks at.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub now_ms: i64,
    pub people: HashMap<String, Person>,
    pub roles: HashMap<String, Role>,
    pub targets: Vec<Target>,
    pub assignments: Vec<Assignment>,
    /// Group → (member username, added at).
    pub members: HashMap<String, Vec<(String, i64)>>,
    /// (username, role) → sessions through that role.
    pub usage: HashMap<(String, String), Usage>,
    /// Username → web sign-ins (the use of a Gatehouse privilege).
    pub sign_ins: HashMap<String, Usage>,
    /// Username → (role, SoD conflict in words) without an exception.
    pub sod: HashMap<String, Vec<(String, String)>>,
    /// Facts about one person only (a mover review): no peer counts, no SoD scan.
    pub partial: bool,
}

/// What kind of access an item is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// A role assignment to the person (`access_ref`: the assignment id).
    Assignment,
    /// Membership of a group (`access_ref`: the group name).
    Membership,
    /// A Gatehouse privilege (`access_ref`: `admin` or `reviewer`).
    Privilege,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Assignment => "assignment",
            Access::Membership => "membership",
            Access::Privilege => "privilege",
        }
    }

    pub fn parse(s: &str) -> Access {
        match s {
            "membership" => Access::Membership,
            "privilege" => Access::Privilege,
            _ => Access::Assignment,
        }
    }
}

/// How many people of the same department (or title) hold the access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peers {
    pub attribute: String,
    pub value: String,
    pub holding: usize,
    pub of: usize,
}

/// What a reviewer sees about an item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// When the access was given.
    pub since_ms: Option<i64>,
    /// How it was given: `apply`, `api`, `birthright`, `scim`, `kept`, ...
    pub source: String,
    /// The roles a group membership carries (membership items).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Targets the role reaches and its logins (assignment items).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logins: Vec<String>,
    pub usage: Usage,
    /// `sessions`, or `sign-ins` for a privilege.
    pub usage_of: String,
    pub peers: Option<Peers>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sod: Vec<String>,
    /// The identity's status, and its HR end date when it is leaving.
    pub status: String,
    pub leaving_on: Option<String>,
    pub manager: Option<String>,
    /// The reviewer of each stage, resolved at the start.
    pub reviewers: Vec<String>,
}

/// One item to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub identity_id: String,
    pub username: String,
    pub access: Access,
    pub access_ref: String,
    pub role: Option<String>,
    /// `standing`, `eligible`, `group`, `birthright` or `privilege`.
    pub held_as: String,
    pub privileged: bool,
    pub evidence: Evidence,
    /// `keep` or `revoke`.
    pub recommendation: &'static str,
    pub rec_reason: String,
}

/// `1 session`, `7 sessions`, `1 sign-in`.
pub fn counted(n: i64, what: &str) -> String {
    if n == 1 {
        format!("1 {}", what.strip_suffix('s').unwrap_or(what))
    } else {
        format!("{n} {what}")
    }
}

fn days(ms: i64) -> i64 {
    ms / 86_400_000
}

fn date(ms: i64) -> String {
    crate::clock::from_ms(ms).format("%Y-%m-%d").to_string()
}

/// Why keep or revoke: disabled or leaving → revoke; held 90 days and unused for 90 → revoke;
/// otherwise keep.
pub fn recommend(ev: &Evidence, now_ms: i64) -> (&'static str, String) {
    if ev.status != "active" {
        return ("revoke", format!("the identity is {}", ev.status));
    }
    if let Some(d) = &ev.leaving_on {
        return ("revoke", format!("leaving: HR end date {d}"));
    }
    let what = &ev.usage_of;
    let held_long = ev.since_ms.is_none_or(|t| now_ms - t >= UNUSED_MS);
    match ev.usage.last_ms {
        None if held_long => ("revoke", format!("no {what} in 90 days (never used)")),
        Some(t) if held_long && now_ms - t >= UNUSED_MS => (
            "revoke",
            format!("no {what} in 90 days (last {} days ago)", days(now_ms - t)),
        ),
        Some(t) if ev.usage.count_90d > 0 => (
            "keep",
            format!(
                "{} in the last 90 days, last on {}",
                counted(ev.usage.count_90d, what),
                date(t)
            ),
        ),
        _ => (
            "keep",
            format!(
                "given {} days ago: too recent to judge by use",
                days(now_ms - ev.since_ms.unwrap_or(now_ms))
            ),
        ),
    }
}

fn reaches(role: &Role, targets: &[Target]) -> Vec<String> {
    targets
        .iter()
        .filter(|t| role.targets.matches(&t.name, &t.labels))
        .map(|t| t.name.clone())
        .collect()
}

fn in_scope(scope: &Scope, role: &Role, targets: &[Target]) -> bool {
    if scope.all || scope.roles.contains(&role.name) {
        return true;
    }
    targets.iter().any(|t| {
        role.targets.matches(&t.name, &t.labels)
            && (scope.targets.contains(&t.name)
                || !scope.labels.is_empty()
                    && scope
                        .labels
                        .iter()
                        .all(|(k, v)| t.labels.get(k).and_then(Value::as_str) == Some(v)))
    })
}

/// The reviewer of `stage` for an item: `manager`, `role_owner`, `target_owner`, `self`,
/// `group:NAME` or a username; the fallback when it cannot be found or would be the person
/// themselves (only a `self` stage reviews one's own access), and the campaign's owner when
/// the fallback is the person. When the owner is the person too, nobody can decide the item
/// (it is refused to them): the unanswered policy decides it at the end.
pub fn resolve_reviewer(
    stage: &str,
    fallback: &str,
    owner: &str,
    person: &Person,
    role: Option<&Role>,
    targets: &[Target],
    people: &HashMap<String, Person>,
) -> String {
    let found = match stage {
        "self" => return person.username.clone(),
        "manager" => person
            .attr("manager")
            .filter(|m| people.get(*m).is_some_and(|p| p.status == "active"))
            .map(str::to_string),
        "role_owner" => role.and_then(|r| r.owner.clone()),
        "target_owner" => role.and_then(|r| {
            targets
                .iter()
                .filter(|t| r.targets.matches(&t.name, &t.labels))
                .find_map(|t| t.owner.clone())
        }),
        other => Some(other.to_string()),
    };
    match found {
        Some(r) if r != person.username => r,
        _ if fallback != person.username => fallback.to_string(),
        _ => owner.to_string(),
    }
}

/// Every item of a campaign over `facts`, in a stable order (person, access).
pub fn plan(spec: &CampaignSpec, facts: &Facts) -> Vec<NewItem> {
    let now = facts.now_ms;
    // Who holds what, for peer counts: access key → holders.
    let mut holders: HashMap<String, HashSet<&str>> = HashMap::new();
    for a in &facts.assignments {
        if a.group {
            for (m, _) in facts.members.get(&a.subject).into_iter().flatten() {
                holders
                    .entry(format!("role:{}", a.role))
                    .or_default()
                    .insert(m);
            }
        } else {
            holders
                .entry(format!("role:{}", a.role))
                .or_default()
                .insert(&a.subject);
        }
    }
    for (g, ms) in &facts.members {
        for (m, _) in ms {
            holders.entry(format!("group:{g}")).or_default().insert(m);
        }
    }
    for p in facts.people.values() {
        for (priv_, _) in &p.privileges {
            holders
                .entry(format!("privilege:{priv_}"))
                .or_default()
                .insert(&p.username);
        }
    }
    // People per department (or title), and holders of each access per department (or title):
    // counted once, so a peer count is a lookup (not a walk over every holder per item).
    let mut by_attr: HashMap<(&str, &str), usize> = HashMap::new();
    for p in facts.people.values() {
        for k in ["department", "title"] {
            if let Some(v) = p.attr(k) {
                *by_attr.entry((k, v)).or_default() += 1;
            }
        }
    }
    let mut holding: HashMap<(&str, &str, &str), usize> = HashMap::new();
    if !facts.partial {
        for (key, users) in &holders {
            for u in users {
                if let Some(p) = facts.people.get(*u) {
                    for k in ["department", "title"] {
                        if let Some(v) = p.attr(k) {
                            *holding.entry((key.as_str(), k, v)).or_default() += 1;
                        }
                    }
                }
            }
        }
    }
    let peers = |p: &Person, key: &str| -> Option<Peers> {
        if facts.partial {
            return None;
        }
        let (attribute, value) = ["department", "title"]
            .iter()
            .find_map(|k| p.attr(k).map(|v| (*k, v)))?;
        Some(Peers {
            attribute: attribute.into(),
            value: value.into(),
            holding: holding.get(&(key, attribute, value)).copied().unwrap_or(0),
            of: by_attr.get(&(attribute, value)).copied().unwrap_or(0),
        })
    };
    let base = |p: &Person, role: Option<&Role>| Evidence {
        status: p.status.clone(),
        leaving_on: p.attr("end_date").map(str::to_string),
        manager: p.attr("manager").map(str::to_string),
        reviewers: spec
            .stages
            .iter()
            .map(|s| {
                resolve_reviewer(
                    s,
                    &spec.fallback,
                    &spec.owner,
                    p,
                    role,
                    &facts.targets,
                    &facts.people,
                )
            })
            .collect(),
        usage_of: "sessions".into(),
        ..Default::default()
    };
    let sod_of = |user: &str, roles: &[&str]| -> Vec<String> {
        facts
            .sod
            .get(user)
            .into_iter()
            .flatten()
            .filter(|(r, _)| roles.contains(&r.as_str()))
            .map(|(_, d)| d.clone())
            .collect()
    };
    let mut out: BTreeMap<(String, Access, String), NewItem> = BTreeMap::new();
    let mut push = |item: NewItem| {
        let key = (item.username.clone(), item.access, item.access_ref.clone());
        match out.get_mut(&key) {
            // A person in a group that carries several roles in scope: one membership item.
            Some(existing) => {
                for r in item.evidence.roles {
                    if !existing.evidence.roles.contains(&r) {
                        existing.evidence.roles.push(r);
                    }
                }
                existing.privileged |= item.privileged;
                existing.evidence.usage = existing.evidence.usage.merge(item.evidence.usage);
                existing.evidence.sod.extend(item.evidence.sod);
                let (rec, why) = recommend(&existing.evidence, now);
                existing.recommendation = rec;
                existing.rec_reason = why;
            }
            None => {
                out.insert(key, item);
            }
        }
    };
    // Groups holding a role in scope.
    let mut groups: BTreeSet<&str> = BTreeSet::new();
    for a in &facts.assignments {
        let Some(role) = facts.roles.get(&a.role) else {
            continue;
        };
        if !in_scope(&spec.scope, role, &facts.targets) {
            continue;
        }
        if a.group {
            groups.insert(&a.subject);
            continue;
        }
        let Some(p) = facts.people.get(&a.subject) else {
            continue;
        };
        let mut ev = base(p, Some(role));
        ev.since_ms = Some(a.since_ms);
        ev.source = a.source.clone();
        ev.targets = reaches(role, &facts.targets);
        ev.logins = role.logins.clone();
        ev.usage = facts
            .usage
            .get(&(p.username.clone(), a.role.clone()))
            .copied()
            .unwrap_or_default();
        ev.peers = peers(p, &format!("role:{}", a.role));
        ev.sod = sod_of(&p.username, &[&a.role]);
        let (rec, why) = recommend(&ev, now);
        push(NewItem {
            identity_id: p.id.clone(),
            username: p.username.clone(),
            access: Access::Assignment,
            access_ref: a.id.clone(),
            role: Some(a.role.clone()),
            held_as: if a.source == crate::provisioning::lifecycle::engine::BIRTHRIGHT {
                "birthright".into()
            } else {
                a.kind.as_str().into()
            },
            privileged: role.privileged,
            evidence: ev,
            recommendation: rec,
            rec_reason: why,
        });
    }
    // Memberships: of groups holding a role in scope, and of the groups the scope names.
    for g in &spec.scope.groups {
        groups.insert(g);
    }
    for g in groups {
        let all_roles: Vec<&str> = facts
            .assignments
            .iter()
            .filter(|a| a.group && a.subject == g)
            .map(|a| a.role.as_str())
            .collect();
        // Revoking takes the person out of the group: every role it carries goes, so every
        // one is shown (not only those in scope).
        let shown = &all_roles;
        for (m, added) in facts.members.get(g).into_iter().flatten() {
            let Some(p) = facts.people.get(m) else {
                continue;
            };
            let mut ev = base(p, shown.first().and_then(|r| facts.roles.get(*r)));
            ev.since_ms = Some(*added);
            ev.source = "group".into();
            ev.roles = shown.iter().map(|r| r.to_string()).collect();
            for r in shown {
                if let Some(u) = facts.usage.get(&(m.clone(), r.to_string())) {
                    ev.usage = ev.usage.merge(*u);
                }
            }
            ev.peers = peers(p, &format!("group:{g}"));
            ev.sod = sod_of(m, shown);
            let (rec, why) = recommend(&ev, now);
            push(NewItem {
                identity_id: p.id.clone(),
                username: p.username.clone(),
                access: Access::Membership,
                access_ref: g.to_string(),
                role: (!shown.is_empty()).then(|| shown.join(", ")),
                held_as: "group".into(),
                privileged: shown
                    .iter()
                    .any(|r| facts.roles.get(*r).is_some_and(|r| r.privileged)),
                evidence: ev,
                recommendation: rec,
                rec_reason: why,
            });
        }
    }
    for p in facts.people.values() {
        for (privilege, since) in &p.privileges {
            if !spec.scope.privileges.contains(privilege) {
                continue;
            }
            let mut ev = base(p, None);
            ev.since_ms = Some(*since);
            ev.source = "privilege".into();
            ev.usage_of = "sign-ins".into();
            ev.usage = facts.sign_ins.get(&p.username).copied().unwrap_or_default();
            ev.peers = peers(p, &format!("privilege:{privilege}"));
            let (rec, why) = recommend(&ev, now);
            push(NewItem {
                identity_id: p.id.clone(),
                username: p.username.clone(),
                access: Access::Privilege,
                access_ref: privilege.clone(),
                role: None,
                held_as: "privilege".into(),
                privileged: true,
                evidence: ev,
                recommendation: rec,
                rec_reason: why,
            });
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::campaigns::spec::{ApplyMode, Unanswered};

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 2_000 * DAY;

    fn person(name: &str, attrs: serde_json::Value) -> Person {
        Person {
            id: format!("id-{name}"),
            username: name.into(),
            status: "active".into(),
            attributes: attrs.as_object().cloned().unwrap_or_default(),
            privileges: vec![],
        }
    }

    fn spec(scope: Scope, stages: &[&str]) -> CampaignSpec {
        CampaignSpec {
            description: String::new(),
            owner: "carol".into(),
            scope,
            stages: stages.iter().map(|s| s.to_string()).collect(),
            fallback: "carol".into(),
            schedule: "quarterly".into(),
            start_ms: None,
            duration_ms: 14 * DAY,
            unanswered: Unanswered::Recommendation,
            apply: ApplyMode::Auto,
            remind_before_ms: 3 * DAY,
            escalate_before_ms: DAY,
        }
    }

    fn assignment(id: &str, role: &str, who: &str, group: bool, since_days: i64) -> Assignment {
        Assignment {
            id: id.into(),
            role: role.into(),
            subject: who.into(),
            group,
            kind: HeldAs::Standing,
            source: "apply".into(),
            since_ms: NOW - since_days * DAY,
        }
    }

    fn facts() -> Facts {
        let mut people = HashMap::new();
        for p in [
            person(
                "idle",
                serde_json::json!({"manager": "mgr", "department": "eng"}),
            ),
            person(
                "busy",
                serde_json::json!({"manager": "mgr", "department": "eng"}),
            ),
            person(
                "leaving",
                serde_json::json!({"manager": "mgr", "department": "eng", "end_date": "2026-12-31"}),
            ),
            person(
                "mgr",
                serde_json::json!({"manager": "mgr", "department": "eng"}),
            ),
            person("carol", serde_json::json!({"department": "sec"})),
        ] {
            people.insert(p.username.clone(), p);
        }
        people.get_mut("carol").unwrap().privileges = vec![("admin".into(), NOW - 400 * DAY)];
        let mut roles = HashMap::new();
        roles.insert(
            "prod-root".to_string(),
            Role {
                name: "prod-root".into(),
                privileged: true,
                owner: Some("owner1".into()),
                targets: TargetSelector {
                    names: vec!["db-01".into()],
                    ..Default::default()
                },
                logins: vec!["root".into()],
            },
        );
        let mut usage = HashMap::new();
        usage.insert(
            ("idle".to_string(), "prod-root".to_string()),
            Usage {
                last_ms: Some(NOW - 100 * DAY),
                count_90d: 0,
            },
        );
        usage.insert(
            ("busy".to_string(), "prod-root".to_string()),
            Usage {
                last_ms: Some(NOW - DAY),
                count_90d: 7,
            },
        );
        Facts {
            now_ms: NOW,
            people,
            roles,
            targets: vec![Target {
                name: "db-01".into(),
                owner: Some("dba".into()),
                ..Default::default()
            }],
            assignments: vec![
                assignment("a1", "prod-root", "idle", false, 200),
                assignment("a2", "prod-root", "busy", false, 200),
                assignment("a3", "prod-root", "leaving", false, 200),
                assignment("a4", "prod-root", "mgr", false, 200),
            ],
            usage,
            ..Default::default()
        }
    }

    #[test]
    fn unused_is_revoked_used_is_kept_leaving_is_revoked_each_with_its_reason() {
        let scope = Scope {
            roles: vec!["prod-root".into()],
            ..Default::default()
        };
        let items = plan(&spec(scope, &["manager", "role_owner"]), &facts());
        let by: HashMap<&str, &NewItem> = items.iter().map(|i| (i.username.as_str(), i)).collect();
        assert_eq!(by["idle"].recommendation, "revoke");
        assert!(
            by["idle"].rec_reason.contains("last 100 days ago"),
            "{}",
            by["idle"].rec_reason
        );
        assert_eq!(by["busy"].recommendation, "keep");
        assert!(
            by["busy"].rec_reason.contains("7 sessions"),
            "{}",
            by["busy"].rec_reason
        );
        assert_eq!(by["leaving"].recommendation, "revoke");
        assert!(by["leaving"].rec_reason.contains("2026-12-31"));
        // Stages: the manager, then the role owner; the manager's own access goes to the
        // fallback at the manager stage (nobody reviews their own access).
        assert_eq!(by["idle"].evidence.reviewers, ["mgr", "owner1"]);
        assert_eq!(by["mgr"].evidence.reviewers, ["carol", "owner1"]);
        assert!(by["idle"].privileged);
        assert_eq!(by["idle"].evidence.targets, ["db-01"]);
        assert_eq!(
            by["idle"].evidence.peers,
            Some(Peers {
                attribute: "department".into(),
                value: "eng".into(),
                holding: 4,
                of: 4
            })
        );
    }

    #[test]
    fn nobody_is_made_the_reviewer_of_their_own_access() {
        let f = facts();
        // The fallback is the person: the owner reviews instead.
        let mut s = spec(
            Scope {
                roles: vec!["prod-root".into()],
                ..Default::default()
            },
            &["role_owner"],
        );
        s.fallback = "idle".into();
        let mut f2 = f.clone();
        f2.roles.get_mut("prod-root").unwrap().owner = None;
        let items = plan(&s, &f2);
        let idle = items.iter().find(|i| i.username == "idle").unwrap();
        assert_eq!(idle.evidence.reviewers, ["carol"]);
        let busy = items.iter().find(|i| i.username == "busy").unwrap();
        assert_eq!(busy.evidence.reviewers, ["idle"]);
    }

    #[test]
    fn scope_by_target_label_group_and_privilege() {
        let mut f = facts();
        f.targets[0].labels = serde_json::json!({"env": "prod"})
            .as_object()
            .cloned()
            .unwrap();
        f.assignments
            .push(assignment("g1", "prod-root", "ops", true, 10));
        f.members.insert(
            "ops".into(),
            vec![
                ("busy".into(), NOW - 10 * DAY),
                ("idle".into(), NOW - 300 * DAY),
            ],
        );
        let by_label = Scope {
            labels: [("env".to_string(), "prod".to_string())].into(),
            ..Default::default()
        };
        let items = plan(&spec(by_label, &["target_owner"]), &f);
        // Four direct assignments and two memberships of ops (which carries prod-root).
        assert_eq!(items.len(), 6);
        let m: Vec<&NewItem> = items
            .iter()
            .filter(|i| i.access == Access::Membership)
            .collect();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].access_ref, "ops");
        assert_eq!(m[0].role.as_deref(), Some("prod-root"));
        assert_eq!(m[0].evidence.reviewers, ["dba"]);
        let by_target = Scope {
            targets: vec!["db-01".into()],
            ..Default::default()
        };
        assert_eq!(plan(&spec(by_target, &["manager"]), &f).len(), 6);
        let none = Scope {
            targets: vec!["web-01".into()],
            ..Default::default()
        };
        assert!(plan(&spec(none, &["manager"]), &f).is_empty());
        let privileges = Scope {
            privileges: vec!["admin".into()],
            ..Default::default()
        };
        let items = plan(&spec(privileges, &["self"]), &f);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].access, Access::Privilege);
        assert_eq!(items[0].evidence.reviewers, ["carol"]);
        assert_eq!(items[0].evidence.usage_of, "sign-ins");
        assert_eq!(items[0].recommendation, "revoke");
    }

    #[test]
    fn a_disabled_identity_is_revoked_and_new_access_is_kept() {
        let mut f = facts();
        f.people.get_mut("busy").unwrap().status = "disabled".into();
        f.assignments[0].since_ms = NOW - 5 * DAY;
        f.usage.clear();
        let items = plan(
            &spec(
                Scope {
                    all: true,
                    ..Default::default()
                },
                &["manager"],
            ),
            &f,
        );
        let by: HashMap<&str, &NewItem> = items.iter().map(|i| (i.username.as_str(), i)).collect();
        assert_eq!(by["busy"].rec_reason, "the identity is disabled");
        assert_eq!(by["idle"].recommendation, "keep");
        assert!(by["idle"].rec_reason.contains("too recent"));
    }
}
