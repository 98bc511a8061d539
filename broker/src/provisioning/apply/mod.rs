//! Policy as code: `gatehouse apply FILE [--dry-run]`. The document is applied in one
//! transaction, in dependency order (identities, groups, targets, roles, assignments, SoD rules,
//! review definitions; deletions in reverse), and every step that changes something adds a line to the plan. A dry
//! run is the same run rolled back, so the plan it prints is exactly what a real run would do.
//!
//! Ownership: apply creates things with source `apply` and only ever deletes (or, for
//! identities, disables) things with that source that the document no longer names; whatever
//! was made through the API, HR, SCIM or LDAP is left alone.

pub mod doc;

pub use doc::{Document, parse};

use crate::access::assignments::{self, Subject};
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::identity::identities::{self, NewIdentity, Status};
use crate::ledger::store::{Store, Tx};
use crate::{
    access::{roles, sod, targets},
    governance::campaigns,
    identity::{groups, ssh_keys},
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What it is called in `source` columns.
pub const SOURCE: &str = "apply";

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `create`, `update`, `delete` or `disable`.
    pub op: &'static str,
    /// `identity alice`, `role prod-db`, `assignment prod-db → group:engineering (eligible)`.
    pub object: String,
    /// What changes, for updates.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = match self.op {
            "create" => '+',
            "delete" | "disable" => '-',
            _ => '~',
        };
        write!(f, "{sign} {} {}", self.op, self.object)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// Applies `doc` (or, with `dry_run`, only works out the plan) and returns the plan.
pub async fn apply(
    store: &Store,
    actor: &Actor,
    now_ms: i64,
    doc: &Document,
    dry_run: bool,
) -> Result<Vec<Change>> {
    check_unique(doc)?;
    let mut tx = store.begin().await?;
    let mut plan = Vec::new();
    run(&mut tx, actor, now_ms, doc, &mut plan).await?;
    if dry_run || plan.is_empty() {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(plan)
}

fn check_unique(doc: &Document) -> Result<()> {
    fn dups<'a>(what: &str, names: impl Iterator<Item = &'a String>) -> Result<()> {
        let mut seen = BTreeSet::new();
        for n in names {
            if !seen.insert(n) {
                return Err(Error::invalid(format!("{what} {n} appears twice")));
            }
        }
        Ok(())
    }
    dups("identity", doc.identities.iter().map(|i| &i.username))?;
    dups("group", doc.groups.iter().map(|g| &g.name))?;
    dups("target", doc.targets.iter().map(|t| &t.name))?;
    dups("role", doc.roles.iter().map(|r| &r.name))?;
    dups("SoD rule", doc.sod_rules.iter().map(|r| &r.name))?;
    dups("review", doc.reviews.iter().map(|r| &r.name))?;
    Ok(())
}

fn change(op: &'static str, object: String, detail: impl Into<String>) -> Change {
    Change {
        op,
        object,
        detail: detail.into(),
    }
}

async fn run(
    tx: &mut Tx,
    actor: &Actor,
    now: i64,
    doc: &Document,
    plan: &mut Vec<Change>,
) -> Result<()> {
    // Identities.
    for i in &doc.identities {
        let obj = format!("identity {}", i.username);
        match identities::by_username(tx, &i.username).await? {
            None => {
                identities::create(
                    tx,
                    actor,
                    now,
                    NewIdentity {
                        username: i.username.clone(),
                        display_name: i.display_name.clone(),
                        email: i.email.clone(),
                        attributes: i.attributes.clone(),
                        source: SOURCE.into(),
                    },
                )
                .await
                .map_err(|e| Error::invalid(format!("{obj}: {e}")))?;
                plan.push(change("create", obj.clone(), ""));
            }
            Some(cur) => {
                let mut what = Vec::new();
                if cur.email != i.email {
                    what.push("email");
                }
                if cur.display_name != i.display_name {
                    what.push("display_name");
                }
                if cur.attributes != i.attributes {
                    what.push("attributes");
                }
                if !what.is_empty() {
                    identities::update(
                        tx,
                        actor,
                        now,
                        &i.username,
                        &i.display_name,
                        i.email.as_deref(),
                        &i.attributes,
                    )
                    .await?;
                    plan.push(change("update", obj.clone(), what.join(", ")));
                }
                // Only the disable `apply` itself makes is lifted by it; a suspension (an
                // incident responder's) or a leaver stays until someone lifts it deliberately.
                if cur.status == Status::Disabled && cur.source == SOURCE {
                    identities::set_status(tx, actor, now, &i.username, Status::Active).await?;
                    plan.push(change("update", obj.clone(), "re-enabled"));
                }
            }
        }
        if let Some(keys) = &i.ssh_keys {
            let who = identities::by_username(tx, &i.username)
                .await?
                .ok_or_else(|| Error::Storage("identity vanished".into()))?;
            let have: BTreeMap<String, String> = ssh_keys::of_identity(tx, &who.id)
                .await?
                .into_iter()
                .map(|k| (k.fingerprint.clone(), k.id))
                .collect();
            let mut want = BTreeSet::new();
            for line in keys {
                let parsed = ssh_keys::parse(line)
                    .map_err(|e| Error::invalid(format!("{obj} ssh key: {e}")))?;
                want.insert(parsed.fingerprint.clone());
                if !have.contains_key(&parsed.fingerprint) {
                    ssh_keys::add(tx, actor, now, &i.username, line).await?;
                    plan.push(change(
                        "create",
                        format!("ssh key {} of {}", parsed.fingerprint, i.username),
                        "",
                    ));
                }
            }
            for (fp, id) in &have {
                if !want.contains(fp) {
                    ssh_keys::remove(tx, actor, now, &i.username, id).await?;
                    plan.push(change(
                        "delete",
                        format!("ssh key {fp} of {}", i.username),
                        "",
                    ));
                }
            }
        }
    }
    // Groups.
    for g in &doc.groups {
        let obj = format!("group {}", g.name);
        if groups::by_name(tx, &g.name).await?.is_none() {
            groups::create_with_source(tx, actor, now, &g.name, &g.description, SOURCE)
                .await
                .map_err(|e| Error::invalid(format!("{obj}: {e}")))?;
            plan.push(change("create", obj.clone(), ""));
        }
        if let Some(members) = &g.members {
            let have: BTreeSet<String> = groups::members(tx, &g.name).await?.into_iter().collect();
            let want: BTreeSet<String> = members.iter().cloned().collect();
            for m in want.difference(&have) {
                groups::add_member(tx, actor, now, &g.name, m)
                    .await
                    .map_err(|e| Error::invalid(format!("{obj} member {m}: {e}")))?;
                plan.push(change(
                    "create",
                    format!("member {m} of group {}", g.name),
                    "",
                ));
            }
            for m in have.difference(&want) {
                groups::remove_member(tx, actor, now, &g.name, m).await?;
                plan.push(change(
                    "delete",
                    format!("member {m} of group {}", g.name),
                    "",
                ));
            }
        }
    }
    // Targets.
    for t in &doc.targets {
        let obj = format!("target {}", t.name);
        let new = t
            .to_new(SOURCE)
            .map_err(|e| Error::invalid(format!("{obj}: {e}")))?;
        match targets::by_name(tx, &t.name).await? {
            None => {
                targets::create(tx, actor, now, new).await?;
                plan.push(change("create", obj, ""));
            }
            Some(cur) => {
                let mut what = Vec::new();
                if cur.kind != new.kind {
                    what.push("kind");
                }
                if cur.address != new.address {
                    what.push("address");
                }
                if cur.labels != new.labels {
                    what.push("labels");
                }
                if cur.host_key != new.host_key {
                    what.push("host_key");
                }
                if cur.owner != new.owner {
                    what.push("owner");
                }
                if cur.description != new.description {
                    what.push("description");
                }
                if cur.app != new.app {
                    what.push("app");
                }
                if !what.is_empty() {
                    targets::update(tx, actor, now, new).await?;
                    plan.push(change("update", obj, what.join(", ")));
                }
            }
        }
    }
    // Roles.
    for r in &doc.roles {
        let obj = format!("role {}", r.name);
        let spec = r.to_spec()?;
        match roles::by_name(tx, &r.name).await? {
            None => {
                roles::create_with(tx, actor, now, &r.name, &r.description, spec, SOURCE).await?;
                plan.push(change("create", obj, ""));
            }
            Some(cur) if cur.spec != spec || cur.description != r.description => {
                roles::update(tx, actor, now, &r.name, &r.description, spec).await?;
                plan.push(change("update", obj, ""));
            }
            Some(_) => {}
        }
    }
    // Assignments: keyed by (role, subject, kind); the document's set replaces apply's own.
    let mut wanted = BTreeSet::new();
    let existing_assignments = assignments::list(tx).await?;
    for a in &doc.assignments {
        let new = a
            .to_new(SOURCE)
            .map_err(|e| Error::invalid(format!("assignment of role {}: {e}", a.role)))?;
        let obj = format!(
            "assignment {} → {} ({})",
            new.role,
            new.subject,
            new.kind.as_str()
        );
        wanted.insert((new.role.clone(), new.subject.clone(), new.kind));
        let existing = existing_assignments
            .iter()
            .find(|x| x.role == new.role && x.subject == new.subject && x.kind == new.kind)
            .cloned();
        match existing {
            Some(x)
                if x.not_before_ms == new.not_before_ms && x.not_after_ms == new.not_after_ms => {}
            Some(x) => {
                assignments::remove(tx, actor, now, &x.id).await?;
                assignments::add(tx, actor, now, new).await?;
                plan.push(change("update", obj, "validity window"));
            }
            None => {
                assignments::add(tx, actor, now, new)
                    .await
                    .map_err(|e| Error::invalid(format!("{obj}: {e}")))?;
                plan.push(change("create", obj, ""));
            }
        }
    }
    // SoD rules.
    let current_rules = sod::list(tx).await?;
    for r in &doc.sod_rules {
        let obj = format!("SoD rule {}", r.name);
        match current_rules.iter().find(|c| c.name == r.name) {
            Some(c) if c.left == r.left && c.right == r.right && c.description == r.description => {
            }
            found => {
                let rule = sod::NewRule {
                    name: r.name.clone(),
                    left: r.left.clone(),
                    right: r.right.clone(),
                    description: r.description.clone(),
                    source: SOURCE.into(),
                };
                sod::put(tx, actor, now, &rule).await?;
                plan.push(change(
                    if found.is_some() { "update" } else { "create" },
                    obj,
                    "",
                ));
            }
        }
    }

    // Access review definitions.
    let current_reviews = campaigns::store::definitions(tx).await?;
    for r in &doc.reviews {
        let spec = r.to_spec()?;
        let found = current_reviews.iter().any(|c| c.name == r.name);
        if campaigns::store::define(tx, actor, now, &r.name, &spec, SOURCE).await? {
            plan.push(change(
                if found { "update" } else { "create" },
                format!("review {}", r.name),
                format!("{}, {}", spec.schedule, r.duration),
            ));
        }
    }

    // Deletions of what apply owns and the document no longer names, in reverse order.
    let names = |v: Vec<&String>| v.into_iter().cloned().collect::<BTreeSet<String>>();
    let keep_reviews = names(doc.reviews.iter().map(|r| &r.name).collect());
    for r in current_reviews {
        if r.source == SOURCE && !keep_reviews.contains(&r.name) {
            campaigns::store::undefine(tx, actor, now, &r.name).await?;
            plan.push(change("delete", format!("review {}", r.name), ""));
        }
    }
    let keep_rules = names(doc.sod_rules.iter().map(|r| &r.name).collect());
    for r in current_rules {
        if r.source == SOURCE && !keep_rules.contains(&r.name) {
            sod::delete(tx, actor, now, &r.name).await?;
            plan.push(change("delete", format!("SoD rule {}", r.name), ""));
        }
    }
    for a in assignments::list(tx).await? {
        if a.source == SOURCE && !wanted.contains(&(a.role.clone(), a.subject.clone(), a.kind)) {
            assignments::remove(tx, actor, now, &a.id).await?;
            plan.push(change(
                "delete",
                format!(
                    "assignment {} → {} ({})",
                    a.role,
                    a.subject,
                    a.kind.as_str()
                ),
                "",
            ));
        }
    }
    let keep_roles = names(doc.roles.iter().map(|r| &r.name).collect());
    for r in roles::list(tx).await? {
        if r.source == SOURCE && !keep_roles.contains(&r.name) {
            roles::delete(tx, actor, now, &r.name).await?;
            plan.push(change("delete", format!("role {}", r.name), ""));
        }
    }
    let keep_targets = names(doc.targets.iter().map(|t| &t.name).collect());
    for t in targets::list(tx).await? {
        if t.source == SOURCE && !keep_targets.contains(&t.name) {
            targets::delete(tx, actor, now, &t.name).await?;
            plan.push(change("delete", format!("target {}", t.name), ""));
        }
    }
    let keep_groups = names(doc.groups.iter().map(|g| &g.name).collect());
    for g in groups::list(tx).await? {
        if g.source == SOURCE && !keep_groups.contains(&g.name) {
            groups::delete(tx, actor, now, &g.name).await?;
            plan.push(change("delete", format!("group {}", g.name), ""));
        }
    }
    let keep_ids = names(doc.identities.iter().map(|i| &i.username).collect());
    for i in identities::list(tx).await? {
        if i.source == SOURCE && i.status == Status::Active && !keep_ids.contains(&i.username) {
            identities::set_status(tx, actor, now, &i.username, Status::Disabled).await?;
            plan.push(change("disable", format!("identity {}", i.username), ""));
        }
    }
    Ok(())
}

/// Checks a document without a database: it parses, names are unique, every role's spec and
/// Cedar condition are valid, and references inside the file resolve (assignments to roles of
/// the file, group members to identities of the file, SoD rules to roles of the file). References
/// to things only the database knows are reported as warnings.
pub fn check(doc: &Document) -> Result<Vec<String>> {
    check_unique(doc)?;
    let mut warnings = Vec::new();
    let roles: BTreeSet<&String> = doc.roles.iter().map(|r| &r.name).collect();
    let users: BTreeSet<&String> = doc.identities.iter().map(|i| &i.username).collect();
    let groups: BTreeSet<&String> = doc.groups.iter().map(|g| &g.name).collect();
    for i in &doc.identities {
        identities::validate_username(&i.username)?;
        for k in i.ssh_keys.iter().flatten() {
            ssh_keys::parse(k)
                .map_err(|e| Error::invalid(format!("identity {} ssh key: {e}", i.username)))?;
        }
    }
    for t in &doc.targets {
        t.to_new(SOURCE)
            .map_err(|e| Error::invalid(format!("target {}: {e}", t.name)))?;
        if let Some(k) = &t.host_key {
            ssh_keys::parse(k)
                .map_err(|e| Error::invalid(format!("target {} host_key: {e}", t.name)))?;
        }
    }
    for r in &doc.roles {
        r.to_spec()?;
    }
    let subject = |s: &Subject, ctx: String, warnings: &mut Vec<String>| match s {
        Subject::Identity(u) if !users.contains(u) => {
            warnings.push(format!("{ctx}: identity {u} is not in this file"))
        }
        Subject::Group(g) if !groups.contains(g) => {
            warnings.push(format!("{ctx}: group {g} is not in this file"))
        }
        _ => {}
    };
    for g in &doc.groups {
        for m in g.members.iter().flatten() {
            subject(
                &Subject::Identity(m.clone()),
                format!("group {}", g.name),
                &mut warnings,
            );
        }
    }
    for a in &doc.assignments {
        let new = a
            .to_new(SOURCE)
            .map_err(|e| Error::invalid(format!("assignment of role {}: {e}", a.role)))?;
        subject(
            &new.subject,
            format!("assignment of role {}", a.role),
            &mut warnings,
        );
        if !roles.contains(&a.role) {
            warnings.push(format!("assignment: role {} is not in this file", a.role));
        }
    }
    for r in &doc.sod_rules {
        for x in r.left.iter().chain(&r.right) {
            if !roles.contains(x) {
                warnings.push(format!("SoD rule {}: role {x} is not in this file", r.name));
            }
        }
    }
    for r in &doc.reviews {
        let spec = r.to_spec()?;
        for x in &spec.scope.roles {
            if !roles.contains(x) {
                warnings.push(format!("review {}: role {x} is not in this file", r.name));
            }
        }
    }
    Ok(warnings)
}
