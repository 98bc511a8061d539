//! Directory sync: the whole directory read on a schedule, not only at sign-in. People removed
//! from the directory, or disabled there, become leavers (cut off everywhere, live sessions
//! included); mapped group memberships follow the directory; new directory users get an
//! identity when creating is on. [`plan`] is a plain function over what the store and the
//! directory say; [`sync`] applies it in one transaction, audited as `directory.sync`.
//!
//! Only identities the directory manages are touched: a leaver is only ever an identity the
//! directory created (source `ldap`); memberships follow for identities from the directory, HR
//! or SCIM (as at sign-in); local accounts are never taken. An answer with no user at all, or one
//! that would make more than half of the directory's people leavers, changes nothing
//! (`directory.sync.refused`): a wrong filter or a half-broken server must not empty Gatehouse.

use super::directory::DIRECTORY_SOURCES;
use super::groups;
use super::identities::{self, NewIdentity, Status};
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ledger::audit::{self, NewEvent, Outcome};
use crate::ledger::store::Store;
use serde::Serialize;
use serde_json::Map;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};

/// A user as the directory lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub username: String,
    pub dn: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// The Gatehouse groups the user's directory groups map to.
    pub groups: Vec<String>,
    /// Disabled in the directory (the configured `disabled_filter` matched).
    pub disabled: bool,
}

/// The whole answer of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// `ldap`.
    pub source: String,
    pub entries: Vec<Entry>,
    /// Every Gatehouse group the mapping can give.
    pub mapped: Vec<String>,
    /// Create identities for directory users Gatehouse does not know.
    pub create: bool,
}

/// An identity as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub username: String,
    pub source: String,
    pub status: Status,
    pub display_name: String,
    pub email: Option<String>,
    pub groups: BTreeSet<String>,
}

/// One change of a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    Create {
        username: String,
    },
    /// `why`: `removed from the directory` or `disabled in the directory`.
    Leaver {
        username: String,
        why: String,
    },
    Update {
        username: String,
    },
    Join {
        username: String,
        group: String,
    },
    Leave {
        username: String,
        group: String,
    },
    /// Several directory entries give this username (`alice@corp` and `alice@partner`): the
    /// identity is left as it is.
    Ambiguous {
        username: String,
    },
}

/// What a sync changes. Refuses an empty listing, and a listing that would make leavers of more
/// than half (and more than 3) of the identities the directory manages.
pub fn plan(current: &[Current], listing: &Listing) -> Result<Vec<Change>> {
    if listing.entries.is_empty() {
        return Err(Error::refused(
            "empty_directory",
            "the directory listed no users: nothing changed (check base_dn and user_filter)",
        ));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &listing.entries {
        *seen.entry(e.username.as_str()).or_default() += 1;
    }
    let ambiguous: BTreeSet<&str> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(u, _)| u)
        .collect();
    let listed: BTreeMap<&str, &Entry> = listing
        .entries
        .iter()
        .filter(|e| !ambiguous.contains(e.username.as_str()))
        .map(|e| (e.username.as_str(), e))
        .collect();
    let known: BTreeMap<&str, &Current> =
        current.iter().map(|c| (c.username.as_str(), c)).collect();
    let mut out: Vec<Change> = ambiguous
        .iter()
        .map(|u| Change::Ambiguous {
            username: u.to_string(),
        })
        .collect();
    let managed: Vec<&Current> = current
        .iter()
        .filter(|c| {
            c.source == listing.source && matches!(c.status, Status::Active | Status::Suspended)
        })
        .collect();
    for c in managed
        .iter()
        .filter(|c| !ambiguous.contains(c.username.as_str()))
    {
        match listed.get(c.username.as_str()) {
            None => out.push(Change::Leaver {
                username: c.username.clone(),
                why: "removed from the directory".into(),
            }),
            Some(e) if e.disabled => out.push(Change::Leaver {
                username: c.username.clone(),
                why: "disabled in the directory".into(),
            }),
            _ => {}
        }
    }
    let leavers = out
        .iter()
        .filter(|c| matches!(c, Change::Leaver { .. }))
        .count();
    if leavers > 3 && leavers * 2 > managed.len() {
        return Err(Error::refused(
            "mass_leavers",
            format!(
                "the directory's answer would make {leavers} of {} people leavers: nothing changed (a wrong filter or a partial answer?)",
                managed.len()
            ),
        ));
    }
    let mapped: BTreeSet<&String> = listing.mapped.iter().collect();
    for e in listing
        .entries
        .iter()
        .filter(|e| !e.disabled && !ambiguous.contains(e.username.as_str()))
    {
        let has: BTreeSet<String> = match known.get(e.username.as_str()) {
            None if listing.create => {
                out.push(Change::Create {
                    username: e.username.clone(),
                });
                BTreeSet::new()
            }
            Some(c)
                if c.status == Status::Active && DIRECTORY_SOURCES.contains(&c.source.as_str()) =>
            {
                let name = e.display_name.clone().unwrap_or_else(|| e.username.clone());
                if c.source == listing.source && (c.display_name != name || c.email != e.email) {
                    out.push(Change::Update {
                        username: e.username.clone(),
                    });
                }
                c.groups.clone()
            }
            // Unknown with creating off, a local account of that name, or an identity that is
            // not active (a leaver stays out whatever the directory says).
            _ => continue,
        };
        for g in &mapped {
            let want = e.groups.contains(g);
            if want && !has.contains(*g) {
                out.push(Change::Join {
                    username: e.username.clone(),
                    group: (*g).clone(),
                });
            } else if !want && has.contains(*g) {
                out.push(Change::Leave {
                    username: e.username.clone(),
                    group: (*g).clone(),
                });
            }
        }
    }
    Ok(out)
}

/// Reads the store, plans and applies (or, with `dry_run`, only plans) in one transaction.
/// Returns the changes; a refusal is audited as `directory.sync.refused` when
/// `audit_refusal` (a scheduler repeating the same refusal every minute records it once).
pub async fn sync(
    store: &Store,
    now_ms: i64,
    listing: &Listing,
    dry_run: bool,
    audit_refusal: bool,
) -> Result<Vec<Change>> {
    let mut tx = store.begin().await?;
    let mut current: BTreeMap<String, Current> = BTreeMap::new();
    for r in sqlx::query("SELECT username, source, status, display_name, email FROM identities")
        .fetch_all(&mut *tx)
        .await?
    {
        let username: String = r.try_get(0)?;
        current.insert(
            username.clone(),
            Current {
                username,
                source: r.try_get(1)?,
                status: Status::parse(&r.try_get::<String, _>(2)?)?,
                display_name: r.try_get(3)?,
                email: r.try_get(4)?,
                groups: BTreeSet::new(),
            },
        );
    }
    for r in sqlx::query(
        "SELECT i.username, g.name FROM group_members m JOIN groups g ON g.id = m.group_id \
         JOIN identities i ON i.id = m.identity_id",
    )
    .fetch_all(&mut *tx)
    .await?
    {
        let u: String = r.try_get(0)?;
        if let Some(c) = current.get_mut(&u) {
            c.groups.insert(r.try_get(1)?);
        }
    }
    let current: Vec<Current> = current.into_values().collect();
    let changes = match plan(&current, listing) {
        Ok(c) => c,
        Err(e) if !audit_refusal || dry_run => {
            tx.rollback().await?;
            return Err(e);
        }
        Err(e) => {
            audit::append(
                &mut tx,
                now_ms,
                NewEvent::new(
                    "system",
                    "directory.sync.refused",
                    format!("directory:{}", listing.source),
                )
                .outcome(Outcome::Failure)
                .details(
                    serde_json::json!({ "code": e.code(), "reason": e.to_string(),
                        "listed": listing.entries.len() }),
                ),
            )
            .await?;
            tx.commit().await?;
            return Err(e);
        }
    };
    let actor = Actor::System;
    let entries: BTreeMap<&str, &Entry> = listing
        .entries
        .iter()
        .map(|e| (e.username.as_str(), e))
        .collect();
    for c in &changes {
        match c {
            Change::Create { username } => {
                let e = entries[username.as_str()];
                identities::create(
                    &mut tx,
                    &actor,
                    now_ms,
                    NewIdentity {
                        username: username.clone(),
                        display_name: e.display_name.clone().unwrap_or_else(|| username.clone()),
                        email: e.email.clone(),
                        attributes: Map::new(),
                        source: listing.source.clone(),
                    },
                )
                .await?;
            }
            Change::Update { username } => {
                let e = entries[username.as_str()];
                let i = identities::by_username(&mut tx, username)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
                identities::update(
                    &mut tx,
                    &actor,
                    now_ms,
                    username,
                    &e.display_name.clone().unwrap_or_else(|| username.clone()),
                    e.email.as_deref(),
                    &i.attributes,
                )
                .await?;
            }
            Change::Leaver { username, why } => {
                let i = identities::by_username(&mut tx, username)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("identity {username}")))?;
                let done = crate::provisioning::lifecycle::terminate(
                    &mut tx,
                    &actor,
                    now_ms,
                    username,
                    &i.attributes,
                )
                .await?;
                audit::append(
                    &mut tx,
                    now_ms,
                    NewEvent::new(
                        format!("{}:sync", listing.source),
                        "directory.leaver",
                        format!("identity:{username}"),
                    )
                    .details(serde_json::json!({ "why": why, "leaver": done })),
                )
                .await?;
            }
            Change::Join { username, group } => {
                if groups::by_name(&mut tx, group).await?.is_none() {
                    groups::create_with_source(&mut tx, &actor, now_ms, group, "", &listing.source)
                        .await?;
                }
                groups::add_member(&mut tx, &actor, now_ms, group, username).await?;
            }
            Change::Leave { username, group } => {
                groups::remove_member(&mut tx, &actor, now_ms, group, username).await?;
            }
            Change::Ambiguous { .. } => {}
        }
    }
    let count = |f: fn(&Change) -> bool| changes.iter().filter(|c| f(c)).count();
    audit::append(
        &mut tx,
        now_ms,
        NewEvent::new(
            format!("{}:sync", listing.source),
            "directory.sync",
            format!("directory:{}", listing.source),
        )
        .details(serde_json::json!({
            "listed": listing.entries.len(),
            "created": count(|c| matches!(c, Change::Create { .. })),
            "leavers": count(|c| matches!(c, Change::Leaver { .. })),
            "updated": count(|c| matches!(c, Change::Update { .. })),
            "joined": count(|c| matches!(c, Change::Join { .. })),
            "left": count(|c| matches!(c, Change::Leave { .. })),
            "ambiguous": count(|c| matches!(c, Change::Ambiguous { .. })),
        })),
    )
    .await?;
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(name: &str, source: &str, status: Status, groups: &[&str]) -> Current {
        Current {
            username: name.into(),
            source: source.into(),
            status,
            display_name: name.into(),
            email: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn entry(name: &str, groups: &[&str], disabled: bool) -> Entry {
        Entry {
            username: name.into(),
            dn: format!("uid={name},ou=people"),
            display_name: Some(name.into()),
            email: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            disabled,
        }
    }

    fn listing(entries: Vec<Entry>) -> Listing {
        Listing {
            source: "ldap".into(),
            entries,
            mapped: vec!["db-admins".into(), "ops".into()],
            create: true,
        }
    }

    #[test]
    fn removed_and_disabled_people_leave_groups_follow_new_people_arrive() {
        let current = vec![
            cur("lea", "ldap", Status::Active, &["db-admins"]),
            cur("max", "ldap", Status::Active, &["db-admins"]),
            cur("ned", "ldap", Status::Active, &[]),
            cur("hr-person", "hr", Status::Active, &["ops"]),
            cur("admin", "local", Status::Active, &[]),
            cur("old", "ldap", Status::Terminated, &[]),
            cur("a", "ldap", Status::Active, &[]),
            cur("b", "ldap", Status::Active, &[]),
            cur("c", "ldap", Status::Active, &[]),
        ];
        let got = plan(
            &current,
            &listing(vec![
                entry("lea", &[], false),
                entry("ned", &["ops"], true),
                entry("hr-person", &["db-admins"], false),
                entry("admin", &["db-admins"], false),
                entry("old", &["ops"], false),
                entry("new", &["ops"], false),
                entry("a", &[], false),
                entry("b", &[], false),
                entry("c", &[], false),
            ]),
        )
        .unwrap();
        let want = vec![
            Change::Leaver {
                username: "max".into(),
                why: "removed from the directory".into(),
            },
            Change::Leaver {
                username: "ned".into(),
                why: "disabled in the directory".into(),
            },
            Change::Leave {
                username: "lea".into(),
                group: "db-admins".into(),
            },
            Change::Join {
                username: "hr-person".into(),
                group: "db-admins".into(),
            },
            Change::Leave {
                username: "hr-person".into(),
                group: "ops".into(),
            },
            Change::Create {
                username: "new".into(),
            },
            Change::Join {
                username: "new".into(),
                group: "ops".into(),
            },
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_username_two_entries_give_is_left_alone() {
        let current = vec![cur("alice", "ldap", Status::Active, &["ops"])];
        // alice@corp and alice@partner both become "alice"; one of them is disabled.
        let got = plan(
            &current,
            &listing(vec![entry("alice", &[], false), entry("alice", &[], true)]),
        )
        .unwrap();
        assert_eq!(
            got,
            [Change::Ambiguous {
                username: "alice".into()
            }]
        );
    }

    #[test]
    fn an_empty_or_mostly_missing_answer_changes_nothing() {
        let current: Vec<Current> = (0..10)
            .map(|i| cur(&format!("u{i}"), "ldap", Status::Active, &[]))
            .collect();
        assert_eq!(
            plan(&current, &listing(vec![])).unwrap_err().code(),
            "empty_directory"
        );
        let few = listing(vec![entry("u0", &[], false), entry("u1", &[], false)]);
        assert_eq!(plan(&current, &few).unwrap_err().code(), "mass_leavers");
        // More than half gone is refused; half is applied.
        let half = listing(
            (0..5)
                .map(|i| entry(&format!("u{i}"), &[], false))
                .collect(),
        );
        assert_eq!(plan(&current, &half).unwrap().len(), 5);
    }
}
