//! What an identity may reach right now, and what it could request: the list the SSH gateway
//! prints to `ssh gatehouse` with no target. Plain functions over the catalog, like `decide`.

use super::catalog::Catalog;
use super::decide::{AccessRequest, decide};
use crate::access::assignments::Kind as AssignmentKind;
use std::collections::BTreeSet;

/// One target the identity may reach now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub target: String,
    pub logins: Vec<String>,
    /// When the longest-lasting access to it ends; None when standing without an end.
    pub until_ms: Option<i64>,
}

/// Every target of `protocol` that `identity` may reach now, with the logins each allows (every
/// login of every role held is decided, Cedar conditions included, from `template`'s context).
pub fn reachable(cat: &Catalog, template: &AccessRequest, now_ms: i64) -> Vec<Reach> {
    let Some(who) = cat.identities.get(&template.identity) else {
        return Vec::new();
    };
    let mut logins: BTreeSet<&str> = BTreeSet::new();
    for h in who
        .held
        .iter()
        .filter(|h| h.kind == AssignmentKind::Standing)
    {
        if let Some(r) = cat.roles.get(&h.role_id) {
            logins.extend(r.spec.logins.iter().map(String::as_str));
        }
    }
    for g in &who.grants {
        if let Some(r) = cat.roles.get(&g.role_id) {
            logins.extend(r.spec.logins.iter().map(String::as_str));
        }
    }
    let mut out = Vec::new();
    let mut names: Vec<&String> = cat.targets.keys().collect();
    names.sort();
    for name in names {
        let mut reach = Reach {
            target: name.clone(),
            logins: Vec::new(),
            until_ms: None,
        };
        // The latest end over the logins allowed; None once one has no end.
        let mut latest = Some(i64::MIN);
        for login in &logins {
            let d = decide(
                cat,
                &AccessRequest {
                    target: name.clone(),
                    login: Some((*login).to_string()),
                    ..template.clone()
                },
                now_ms,
            );
            if d.allow {
                reach.logins.push((*login).to_string());
                match d.grant.and_then(|g| g.not_after_ms) {
                    Some(end) => latest = latest.map(|l: i64| l.max(end)),
                    None => latest = None,
                }
            }
        }
        if !reach.logins.is_empty() {
            reach.until_ms = latest;
            out.push(reach);
        }
    }
    out
}

/// Every app (target of kind `http`) `template.identity` may open now (a `GET /` decided with
/// `template`'s context), with when its access ends (None: standing, no end), by name.
pub fn apps(cat: &Catalog, template: &AccessRequest, now_ms: i64) -> Vec<(String, Option<i64>)> {
    let mut names: Vec<&String> = cat
        .targets
        .iter()
        .filter(|(_, t)| t.kind == "http")
        .map(|(n, _)| n)
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let d = decide(
                cat,
                &AccessRequest {
                    protocol: "http".into(),
                    target: name.clone(),
                    login: None,
                    http: Some(super::decide::HttpFacts {
                        method: "GET".into(),
                        path: "/".into(),
                    }),
                    ..template.clone()
                },
                now_ms,
            );
            d.allow
                .then(|| (name.clone(), d.grant.and_then(|g| g.not_after_ms)))
        })
        .collect()
}

/// Roles the identity may request, by name: those it holds as eligible, and those whose
/// `requestable_by` names it or one of its groups (as `requests::may_request` decides).
pub fn requestable(cat: &Catalog, identity: &str) -> Vec<String> {
    let Some(who) = cat.identities.get(identity) else {
        return Vec::new();
    };
    let mut names: BTreeSet<String> = BTreeSet::new();
    for h in who
        .held
        .iter()
        .filter(|h| h.kind == AssignmentKind::Eligible)
    {
        if let Some(r) = cat.roles.get(&h.role_id) {
            names.insert(r.name.clone());
        }
    }
    for r in cat.roles.values() {
        let named =
            r.spec.requestable_by.iter().any(
                |s| match crate::access::assignments::Subject::parse(s) {
                    Ok(crate::access::assignments::Subject::Identity(u)) => u == who.username,
                    Ok(crate::access::assignments::Subject::Group(g)) => who.groups.contains(&g),
                    Err(_) => false,
                },
            );
        if named {
            names.insert(r.name.clone());
        }
    }
    names.into_iter().collect()
}
