//! Push to apps (SCIM client side): who an app should have — the active holders of the roles
//! mapped to it — and the plan that brings the app's users and groups in line, with the drift
//! found on the way. Plain functions over data; the HTTP side is in the binary (`src/push.rs`).

use crate::error::Result;
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Gatehouse marks the users it provisions with `externalId = "gatehouse:<identity id>"`; it
/// never changes a user without that mark (reported as drift instead).
pub const EXTERNAL_PREFIX: &str = "gatehouse:";

/// A person the app should have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    pub identity_id: String,
    /// The app's userName: the email, else the username.
    pub user_name: String,
    pub display_name: String,
    pub email: Option<String>,
    pub given_name: String,
    pub family_name: String,
    /// The mapped roles the person holds (one app group each).
    pub roles: BTreeSet<String>,
}

impl Person {
    pub fn external_id(&self) -> String {
        format!("{EXTERNAL_PREFIX}{}", self.identity_id)
    }
}

/// A user as the app has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

/// A group as the app has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteGroup {
    pub id: String,
    pub display_name: String,
    pub members: BTreeSet<String>,
}

/// What to do to the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Create {
        person: Person,
    },
    /// Bring a user we manage back to what Gatehouse says (`fields` differed).
    Update {
        remote_id: String,
        person: Person,
        fields: Vec<String>,
    },
    /// A user we manage who should no longer have the app.
    Deactivate {
        remote_id: String,
        user_name: String,
    },
    /// A group per role: created with, or set to, these members (Gatehouse identity ids).
    Group {
        role: String,
        remote_id: Option<String>,
        members: BTreeSet<String>,
    },
}

/// Differences found between Gatehouse and the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "drift", rename_all = "snake_case")]
pub enum Drift {
    /// A user in the app Gatehouse did not provision (left alone).
    Unmanaged { user_name: String, active: bool },
    /// A user we manage changed in the app (`fields`), put back.
    Changed {
        user_name: String,
        fields: Vec<String>,
    },
    /// A user who should not have the app was active there.
    ShouldNotHaveAccess { user_name: String },
    /// A person who should have the app had no user there.
    Missing { user_name: String },
    /// A role's group had other members than the role's holders.
    GroupMembers {
        role: String,
        added: usize,
        removed: usize,
    },
}

/// The active holders of `roles` at `now_ms`: standing assignments (direct or through a group)
/// in their window, and live grants.
pub async fn holders(
    conn: &mut AnyConnection,
    roles: &[String],
    now_ms: i64,
) -> Result<Vec<Person>> {
    let wanted: BTreeSet<&str> = roles.iter().map(String::as_str).collect();
    let window = "a.kind = 'standing' AND (a.not_before IS NULL OR a.not_before <= $1) \
                  AND (a.not_after IS NULL OR a.not_after > $1)";
    let queries = [
        format!(
            "SELECT a.subject_id, r.name FROM role_assignments a JOIN roles r ON r.id = a.role_id \
             WHERE a.subject_kind = 'identity' AND {window}"
        ),
        format!(
            "SELECT m.identity_id, r.name FROM role_assignments a JOIN roles r ON r.id = a.role_id \
             JOIN group_members m ON m.group_id = a.subject_id \
             WHERE a.subject_kind = 'group' AND {window}"
        ),
        "SELECT g.identity_id, g.role_name FROM grants g WHERE g.revoked_at IS NULL \
         AND g.not_before <= $1 AND g.not_after > $1"
            .to_string(),
    ];
    let mut held: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for q in queries {
        for r in sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(now_ms)
            .fetch_all(&mut *conn)
            .await?
        {
            let (id, role): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            if wanted.contains(role.as_str()) {
                held.entry(id).or_default().insert(role);
            }
        }
    }
    let mut out = Vec::with_capacity(held.len());
    for (id, roles) in held {
        let Some(i) = crate::identity::identities::by_id(conn, &id).await? else {
            continue;
        };
        if i.status != crate::identity::identities::Status::Active {
            continue;
        }
        let attr = |k: &str| {
            i.attributes
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let (given, family) = match (attr("first_name"), attr("last_name")) {
            (g, f) if !g.is_empty() || !f.is_empty() => (g, f),
            _ => match i.display_name.split_once(' ') {
                Some((g, f)) => (g.to_string(), f.to_string()),
                None => (i.display_name.clone(), String::new()),
            },
        };
        out.push(Person {
            identity_id: i.id.clone(),
            user_name: i.email.clone().unwrap_or_else(|| i.username.clone()),
            display_name: if i.display_name.is_empty() {
                i.username.clone()
            } else {
                i.display_name.clone()
            },
            email: i.email.clone(),
            given_name: given,
            family_name: family,
            roles,
        });
    }
    Ok(out)
}

fn differences(p: &Person, r: &Remote) -> Vec<String> {
    let mut f = Vec::new();
    if !r.active {
        f.push("active".to_string());
    }
    if !p.user_name.eq_ignore_ascii_case(&r.user_name) {
        f.push("userName".into());
    }
    if r.display_name.as_deref() != Some(p.display_name.as_str()) {
        f.push("displayName".into());
    }
    if p.email.is_some() && r.email != p.email {
        f.push("emails".into());
    }
    f
}

/// The users plan: compares who should have the app with what the app has.
pub fn plan_users(desired: &[Person], remote: &[Remote]) -> (Vec<Action>, Vec<Drift>) {
    let mut actions = Vec::new();
    let mut drift = Vec::new();
    let ours: HashMap<&str, &Remote> = remote
        .iter()
        .filter_map(|r| {
            r.external_id
                .as_deref()
                .filter(|e| e.starts_with(EXTERNAL_PREFIX))
                .map(|e| (e, r))
        })
        .collect();
    let wanted: BTreeSet<String> = desired.iter().map(Person::external_id).collect();
    for p in desired {
        match ours.get(p.external_id().as_str()) {
            None => {
                drift.push(Drift::Missing {
                    user_name: p.user_name.clone(),
                });
                actions.push(Action::Create { person: p.clone() });
            }
            Some(r) => {
                let fields = differences(p, r);
                if !fields.is_empty() {
                    if r.active {
                        drift.push(Drift::Changed {
                            user_name: r.user_name.clone(),
                            fields: fields.clone(),
                        });
                    }
                    actions.push(Action::Update {
                        remote_id: r.id.clone(),
                        person: p.clone(),
                        fields,
                    });
                }
            }
        }
    }
    for r in remote {
        match r
            .external_id
            .as_deref()
            .filter(|e| e.starts_with(EXTERNAL_PREFIX))
        {
            Some(e) if !wanted.contains(e) && r.active => {
                drift.push(Drift::ShouldNotHaveAccess {
                    user_name: r.user_name.clone(),
                });
                actions.push(Action::Deactivate {
                    remote_id: r.id.clone(),
                    user_name: r.user_name.clone(),
                });
            }
            Some(_) => {}
            None => drift.push(Drift::Unmanaged {
                user_name: r.user_name.clone(),
                active: r.active,
            }),
        }
    }
    (actions, drift)
}

/// The groups plan: one group per role, named after it, whose members are the role's holders.
/// `remote_ids` maps identity ids to the app's user ids (after the users plan ran).
pub fn plan_groups(
    roles: &[String],
    desired: &[Person],
    groups: &[RemoteGroup],
    remote_ids: &HashMap<String, String>,
) -> (Vec<Action>, Vec<Drift>) {
    let mut actions = Vec::new();
    let mut drift = Vec::new();
    for role in roles {
        let members: BTreeSet<String> = desired
            .iter()
            .filter(|p| p.roles.contains(role))
            .filter_map(|p| remote_ids.get(&p.identity_id).cloned())
            .collect();
        match groups
            .iter()
            .find(|g| g.display_name.eq_ignore_ascii_case(role))
        {
            None => actions.push(Action::Group {
                role: role.clone(),
                remote_id: None,
                members,
            }),
            Some(g) if g.members != members => {
                drift.push(Drift::GroupMembers {
                    role: role.clone(),
                    added: g.members.difference(&members).count(),
                    removed: members.difference(&g.members).count(),
                });
                actions.push(Action::Group {
                    role: role.clone(),
                    remote_id: Some(g.id.clone()),
                    members,
                });
            }
            Some(_) => {}
        }
    }
    (actions, drift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, roles: &[&str]) -> Person {
        Person {
            identity_id: id.into(),
            user_name: format!("{id}@x.io"),
            display_name: id.to_uppercase(),
            email: Some(format!("{id}@x.io")),
            given_name: id.into(),
            family_name: String::new(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn remote(id: &str, ext: Option<&str>, name: &str, active: bool) -> Remote {
        Remote {
            id: id.into(),
            user_name: format!("{name}@x.io"),
            external_id: ext.map(str::to_owned),
            active,
            display_name: Some(name.to_uppercase()),
            email: Some(format!("{name}@x.io")),
        }
    }

    #[test]
    fn creates_updates_deactivates_and_reports_drift() {
        let desired = vec![
            person("ann", &["jira-users"]),
            person("bob", &["jira-users"]),
        ];
        let mut changed = remote("r2", Some("gatehouse:bob"), "bob", true);
        changed.display_name = Some("Robert".into());
        let remote = vec![
            changed,
            remote("r3", Some("gatehouse:cy"), "cy", true),
            remote("r4", None, "admin", true),
            remote("r5", Some("gatehouse:old"), "old", false),
        ];
        let (actions, drift) = plan_users(&desired, &remote);
        let kinds: Vec<String> = actions
            .iter()
            .map(|a| match a {
                Action::Create { person } => format!("create {}", person.identity_id),
                Action::Update {
                    remote_id, fields, ..
                } => format!("update {remote_id} {fields:?}"),
                Action::Deactivate { remote_id, .. } => format!("deactivate {remote_id}"),
                Action::Group { role, .. } => format!("group {role}"),
            })
            .collect();
        assert_eq!(
            kinds,
            vec!["create ann", "update r2 [\"displayName\"]", "deactivate r3"]
        );
        assert!(drift.contains(&Drift::Unmanaged {
            user_name: "admin@x.io".into(),
            active: true
        }));
        assert!(drift.contains(&Drift::ShouldNotHaveAccess {
            user_name: "cy@x.io".into()
        }));
        let ids: HashMap<String, String> = [
            ("ann".to_string(), "r1".to_string()),
            ("bob".to_string(), "r2".to_string()),
        ]
        .into();
        let roles = vec!["jira-users".to_string()];
        let (g, _) = plan_groups(&roles, &desired, &[], &ids);
        assert_eq!(
            g,
            vec![Action::Group {
                role: "jira-users".into(),
                remote_id: None,
                members: ["r1".to_string(), "r2".to_string()].into()
            }]
        );
        let existing = RemoteGroup {
            id: "g1".into(),
            display_name: "jira-users".into(),
            members: ["r2".to_string(), "r3".to_string()].into(),
        };
        let (g, d) = plan_groups(&roles, &desired, &[existing], &ids);
        assert_eq!(
            d,
            vec![Drift::GroupMembers {
                role: "jira-users".into(),
                added: 1,
                removed: 1
            }]
        );
        assert!(matches!(&g[0], Action::Group { remote_id: Some(id), .. } if id == "g1"));
    }
}
