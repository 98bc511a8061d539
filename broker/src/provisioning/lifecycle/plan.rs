//! The joiner / mover / leaver plan: what an HR feed changes, worked out as a plain function over
//! the records, what Gatehouse holds now and the birthright rules — the same plan for a dry run
//! and for the real import.

use super::record::HrRecord;
use crate::access::role_spec::RoleSpec;
use crate::identity::identities::Status;
use chrono::NaiveDate;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// What Gatehouse holds of a person HR knows (by employee number).
#[derive(Debug, Clone)]
pub struct Current {
    pub identity_id: String,
    pub username: String,
    pub status: Status,
    pub attributes: Map<String, Value>,
    /// Roles held through birthright assignments still in force (not in a grace period).
    pub birthright: BTreeSet<String>,
}

/// The kind of change a record makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// New, starting now (or already started).
    Joiner,
    /// New, starting later: created as `prehire`, no access until the start date.
    Staged,
    /// Prehire or on leave, now active.
    Start,
    /// Department, title, location, manager or employment type changed.
    Mover,
    /// On leave: suspended.
    Leave,
    /// Terminated (or past the end date).
    Leaver,
    Unchanged,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Joiner => "joiner",
            Kind::Staged => "staged",
            Kind::Start => "start",
            Kind::Mover => "mover",
            Kind::Leave => "leave",
            Kind::Leaver => "leaver",
            Kind::Unchanged => "unchanged",
        }
    }
}

/// One planned change.
#[derive(Debug, Clone)]
pub struct Change {
    pub line: usize,
    pub employee_number: String,
    pub username: String,
    pub kind: Kind,
    /// The identity, when it exists.
    pub identity_id: Option<String>,
    pub status: Status,
    pub display_name: String,
    pub email: Option<String>,
    pub attributes: Map<String, Value>,
    /// (attribute, before, after) for the attributes a mover changes.
    pub moved: Vec<(String, String, String)>,
    /// Birthright roles to assign.
    pub roles_add: Vec<String>,
    /// Birthright roles to remove (movers: after the grace period; leavers: now).
    pub roles_remove: Vec<String>,
}

/// Attributes whose change makes a mover.
pub const MOVER_KEYS: &[&str] = &[
    "department",
    "title",
    "location",
    "manager",
    "employment_type",
];

/// The status a record means on `today`.
pub fn status_of(r: &HrRecord, today: NaiveDate) -> Status {
    match r.status.as_deref() {
        Some("terminated") => return Status::Terminated,
        Some("leave") => return Status::Suspended,
        _ => {}
    }
    if r.end_date.is_some_and(|e| today > e) {
        return Status::Terminated;
    }
    if r.start_date.is_some_and(|s| s > today) {
        return Status::Prehire;
    }
    Status::Active
}

fn text(v: Option<&Value>) -> String {
    v.and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

/// The attributes a record sets (over those it does not manage).
fn attributes_of(
    r: &HrRecord,
    base: &Map<String, Value>,
    usernames: &HashMap<String, String>,
) -> Map<String, Value> {
    let mut a = base.clone();
    let mut set = |k: &str, v: Option<String>| match v.filter(|v| !v.is_empty()) {
        Some(v) => {
            a.insert(k.to_string(), Value::String(v));
        }
        None => {
            a.remove(k);
        }
    };
    set("employee_number", Some(r.employee_number.clone()));
    set("first_name", Some(r.first_name.clone()));
    set("last_name", Some(r.last_name.clone()));
    set("department", Some(r.department.clone()));
    set("title", Some(r.title.clone()));
    set("location", Some(r.location.clone()));
    set(
        "employment_type",
        Some(r.employment_type.as_str().to_string()),
    );
    // The manager and sponsor by username (what approver sets and people read), by number too.
    set(
        "manager",
        r.manager.as_ref().and_then(|m| usernames.get(m).cloned()),
    );
    set("manager_employee_number", r.manager.clone());
    set(
        "sponsor",
        r.sponsor.as_ref().and_then(|m| usernames.get(m).cloned()),
    );
    set("start_date", r.start_date.map(|d| d.to_string()));
    set("end_date", r.end_date.map(|d| d.to_string()));
    a
}

/// The birthright roles attributes imply (none unless active).
pub fn birthright_roles(
    roles: &[(String, RoleSpec)],
    attributes: &Map<String, Value>,
    status: Status,
) -> BTreeSet<String> {
    if status != Status::Active {
        return BTreeSet::new();
    }
    roles
        .iter()
        .filter(|(_, spec)| spec.birthright_matches(attributes))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Plans every record. `current` is keyed by employee number; managers and sponsors are
/// resolved to usernames through `current` and the feed itself.
pub fn plan(
    records: &[(usize, HrRecord)],
    current: &HashMap<String, Current>,
    roles: &[(String, RoleSpec)],
    today: NaiveDate,
) -> Vec<Change> {
    let mut usernames: HashMap<String, String> = current
        .iter()
        .map(|(k, c)| (k.clone(), c.username.clone()))
        .collect();
    for (_, r) in records {
        usernames
            .entry(r.employee_number.clone())
            .or_insert_with(|| r.username.clone());
    }
    let mut out = Vec::with_capacity(records.len());
    for (line, r) in records {
        let status = status_of(r, today);
        let now = current.get(&r.employee_number);
        let base = now.map(|c| c.attributes.clone()).unwrap_or_default();
        let attributes = attributes_of(r, &base, &usernames);
        let display_name = format!("{} {}", r.first_name, r.last_name)
            .trim()
            .to_string();
        let after = birthright_roles(roles, &attributes, status);
        let (kind, before, moved) = match now {
            None => (
                match status {
                    Status::Active | Status::Suspended => Kind::Joiner,
                    Status::Prehire => Kind::Staged,
                    _ => Kind::Unchanged,
                },
                BTreeSet::new(),
                Vec::new(),
            ),
            Some(c) => {
                let moved: Vec<(String, String, String)> = MOVER_KEYS
                    .iter()
                    .filter(|k| text(c.attributes.get(**k)) != text(attributes.get(**k)))
                    .map(|k| {
                        (
                            k.to_string(),
                            text(c.attributes.get(*k)),
                            text(attributes.get(*k)),
                        )
                    })
                    .collect();
                let kind = match (c.status, status) {
                    (Status::Terminated, Status::Terminated) => Kind::Unchanged,
                    (_, Status::Terminated) => Kind::Leaver,
                    (Status::Active, Status::Suspended) => Kind::Leave,
                    (Status::Prehire | Status::Suspended | Status::Disabled, Status::Active) => {
                        Kind::Start
                    }
                    _ if !moved.is_empty() => Kind::Mover,
                    _ if c.birthright != after => Kind::Mover,
                    _ => Kind::Unchanged,
                };
                (kind, c.birthright.clone(), moved)
            }
        };
        let after = if kind == Kind::Unchanged && now.is_none() {
            BTreeSet::new()
        } else {
            after
        };
        out.push(Change {
            line: *line,
            employee_number: r.employee_number.clone(),
            username: now
                .map(|c| c.username.clone())
                .unwrap_or_else(|| r.username.clone()),
            kind,
            identity_id: now.map(|c| c.identity_id.clone()),
            status,
            display_name,
            email: r.email.clone(),
            attributes,
            moved,
            roles_add: after.difference(&before).cloned().collect(),
            roles_remove: before.difference(&after).cloned().collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::record::parse;
    use super::*;

    fn roles() -> Vec<(String, RoleSpec)> {
        let mut eng = RoleSpec::default();
        eng.birthright
            .insert("department".into(), vec!["engineering".into()]);
        let mut ops = RoleSpec::default();
        ops.birthright
            .insert("department".into(), vec!["operations".into()]);
        vec![("eng-base".into(), eng), ("ops-base".into(), ops)]
    }

    #[test]
    fn joiners_movers_leavers_and_staged_hires() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let feed = "employee_number,first_name,last_name,email,manager,department,start_date,end_date,status\n\
                    E1,Ann,Lee,ann@x.io,,engineering,2026-01-01,,\n\
                    E2,Bo,Ray,bo@x.io,E1,operations,2026-01-01,,\n\
                    E3,Cy,Day,cy@x.io,E1,engineering,2026-01-01,,terminated\n\
                    E4,Di,Fox,di@x.io,E1,engineering,2026-12-15,,\n";
        let p = parse(feed, false);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let mut current = HashMap::new();
        let mut attrs = Map::new();
        attrs.insert("department".into(), "engineering".into());
        attrs.insert("employee_number".into(), "E2".into());
        current.insert(
            "E2".to_string(),
            Current {
                identity_id: "i2".into(),
                username: "bo".into(),
                status: Status::Active,
                attributes: attrs.clone(),
                birthright: ["eng-base".to_string()].into(),
            },
        );
        current.insert(
            "E3".to_string(),
            Current {
                identity_id: "i3".into(),
                username: "cy".into(),
                status: Status::Active,
                attributes: attrs,
                birthright: ["eng-base".to_string()].into(),
            },
        );
        let plan = plan(&p.records, &current, &roles(), today);
        let kinds: Vec<(&str, Kind, Vec<String>, Vec<String>)> = plan
            .iter()
            .map(|c| {
                (
                    c.username.as_str(),
                    c.kind,
                    c.roles_add.clone(),
                    c.roles_remove.clone(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("ann", Kind::Joiner, vec!["eng-base".to_string()], vec![]),
                (
                    "bo",
                    Kind::Mover,
                    vec!["ops-base".to_string()],
                    vec!["eng-base".to_string()]
                ),
                ("cy", Kind::Leaver, vec![], vec!["eng-base".to_string()]),
                ("di", Kind::Staged, vec![], vec![]),
            ]
        );
        // bo's manager is ann, by username.
        assert_eq!(plan[1].attributes["manager"], "ann");
        assert_eq!(
            plan[1].moved[0],
            (
                "department".into(),
                "engineering".into(),
                "operations".into()
            )
        );
        assert_eq!(plan[3].status, Status::Prehire);
    }
}
