//! Provisioning: a SCIM User is an identity and a SCIM Group a group. Creating, replacing
//! (PUT, and PATCH after it is applied) and deleting a resource carry the change to Gatehouse in
//! the same transaction: username, display name, email and HR attributes; `active: false` is a
//! leaver (cut off everywhere, live sessions included); birthright roles follow the attributes;
//! group members follow `members`. Each call is audited as `scim.<kind>.<action>` under the
//! SCIM client's name.

use super::store::{self, Stored};
use super::to_scim;
use crate::actor::Actor;
use crate::error::Error;
use crate::identity::groups;
use crate::identity::identities::{self, NewIdentity, Status};
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use crate::provisioning::lifecycle::engine;
use gatehouse_scim::error::{Result, ScimError};
use gatehouse_scim::schema::{ENTERPRISE_URN, Kind};
use serde_json::{Map, Value, json};

/// Who is calling and when.
#[derive(Debug, Clone)]
pub struct Call {
    /// `Actor::Scim(client name)`.
    pub actor: Actor,
    pub client: String,
    pub now_ms: i64,
    /// Grace period for birthright access a mover no longer needs.
    pub grace_ms: i64,
    /// Whether a password the client sends is set (`[scim] passwords`); off, it is ignored.
    /// It is never set on an identity that holds a privilege.
    pub passwords: bool,
}

/// What a resource is to be: the checked document and, for a User, an argon2id hash of a
/// password the client set (hashed by the caller, off the async runtime).
#[derive(Debug, Clone)]
pub struct Write {
    pub doc: Map<String, Value>,
    pub password_phc: Option<String>,
    /// The client sent a password and SCIM passwords are off: it was dropped unread.
    pub password_ignored: bool,
}

/// The identity attributes SCIM manages (others, e.g. from HR, are left alone).
const MANAGED: &[&str] = &[
    "first_name",
    "last_name",
    "title",
    "employment_type",
    "employee_number",
    "department",
    "cost_center",
    "organization",
    "division",
    "manager",
];

/// The Gatehouse username for a SCIM userName: lower-cased, the part before any '@' (SSH logins
/// use '@' as the separator). Must then follow the username rules.
pub fn username_of(user_name: &str) -> Result<String> {
    let local = user_name
        .split('@')
        .next()
        .unwrap_or_default()
        .to_lowercase();
    identities::validate_username(&local).map_err(|_| {
        ScimError::invalid_value(format!(
            "userName {user_name:?} gives the Gatehouse username {local:?}: use 1-64 lower-case \
             letters, digits, '.', '_' or '-' before any '@'"
        ))
    })?;
    Ok(local)
}

/// The Gatehouse group name for a SCIM displayName: lower-cased, spaces as '-'.
pub fn group_name_of(display_name: &str) -> Result<String> {
    let name: String = display_name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_whitespace() { '-' } else { c })
        .collect();
    groups::validate_name(&name).map_err(|_| {
        ScimError::invalid_value(format!(
            "displayName {display_name:?} gives the Gatehouse group name {name:?}: use 1-64 \
             lower-case letters, digits, '.', '_', '-' or spaces"
        ))
    })?;
    Ok(name)
}

fn s<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str).filter(|v| !v.is_empty())
}

/// What a User document means for the identity.
struct UserView {
    username: String,
    display_name: String,
    email: Option<String>,
    active: bool,
    attributes: Map<String, Value>,
    manager_id: Option<String>,
}

fn user_view(doc: &Map<String, Value>) -> Result<UserView> {
    let user_name =
        s(doc, "userName").ok_or_else(|| ScimError::invalid_value("userName is required"))?;
    let username = username_of(user_name)?;
    let empty = Map::new();
    let name = doc.get("name").and_then(Value::as_object).unwrap_or(&empty);
    let ent = doc
        .get(ENTERPRISE_URN)
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let display_name = s(doc, "displayName")
        .map(str::to_owned)
        .or_else(|| s(name, "formatted").map(str::to_owned))
        .or_else(|| {
            let full = format!(
                "{} {}",
                s(name, "givenName").unwrap_or_default(),
                s(name, "familyName").unwrap_or_default()
            );
            let full = full.trim();
            (!full.is_empty()).then(|| full.to_string())
        })
        .unwrap_or_else(|| user_name.to_string());
    let emails: Vec<&Map<String, Value>> = doc
        .get("emails")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let email = emails
        .iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .or(emails.first())
        .and_then(|e| s(e, "value"))
        .map(str::to_owned);
    let mut attributes = Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            attributes.insert(k.into(), Value::String(v.into()));
        }
    };
    put("first_name", s(name, "givenName"));
    put("last_name", s(name, "familyName"));
    put("title", s(doc, "title"));
    put(
        "employment_type",
        s(doc, "userType").map(|t| t.to_lowercase()).as_deref(),
    );
    put("employee_number", s(ent, "employeeNumber"));
    put("department", s(ent, "department"));
    put("cost_center", s(ent, "costCenter"));
    put("organization", s(ent, "organization"));
    put("division", s(ent, "division"));
    let manager_id = ent
        .get("manager")
        .and_then(Value::as_object)
        .and_then(|m| s(m, "value"))
        .map(str::to_owned);
    Ok(UserView {
        username,
        display_name,
        email,
        active: doc.get("active").and_then(Value::as_bool).unwrap_or(true),
        attributes,
        manager_id,
    })
}

fn conflict(e: Error) -> ScimError {
    to_scim(e)
}

async fn audit_call(
    tx: &mut Tx,
    call: &Call,
    action: &str,
    object: String,
    details: Value,
) -> Result<()> {
    audit::append(
        tx,
        call.now_ms,
        NewEvent::new(call.actor.to_string(), action, object).details(details),
    )
    .await
    .map_err(to_scim)?;
    Ok(())
}

/// Creates a resource (POST).
pub async fn create(tx: &mut Tx, call: &Call, kind: Kind, w: Write) -> Result<Stored> {
    let key = store::name_key(kind, &w.doc);
    // Users: one query answers both "is the userName taken" and "is there an identity to
    // re-hire"; most creates are new people and need no more look-ups than that.
    let (taken, identity_exists) = match kind {
        Kind::User => {
            let username = username_of(s(&w.doc, "userName").unwrap_or_default())?;
            store::probe_user(tx, &key, &username)
                .await
                .map_err(to_scim)?
        }
        Kind::Group => (
            store::by_name(tx, kind, &key)
                .await
                .map_err(to_scim)?
                .is_some(),
            false,
        ),
    };
    if taken {
        return Err(ScimError::uniqueness(match kind {
            Kind::User => format!("userName {key:?} is already taken"),
            Kind::Group => format!("displayName {key:?} is already taken"),
        }));
    }
    let mut stored = Stored {
        id: crate::ids::new_id(),
        kind,
        doc: w.doc,
        version: 1,
        created_ms: call.now_ms,
        modified_ms: call.now_ms,
        identity_id: None,
        group_id: None,
    };
    match kind {
        Kind::User => {
            let (identity_id, username) = create_identity(
                tx,
                call,
                &stored.doc,
                identity_exists,
                w.password_phc.is_none() || !call.passwords,
            )
            .await?;
            stored.identity_id = Some(identity_id.clone());
            let mut details = json!({ "client": call.client, "scim_id": stored.id,
                "external_id": stored.doc.get("externalId") });
            if let Some(phc) = &w.password_phc {
                set_password(tx, call, &identity_id, &username, phc, &mut details).await?;
            } else if w.password_ignored {
                details["password"] = json!(IGNORED);
            }
            store::insert(tx, &stored, &call.client, true)
                .await
                .map_err(conflict)?;
            audit_call(
                tx,
                call,
                "scim.user.create",
                format!("identity:{username}"),
                details,
            )
            .await?;
        }
        Kind::Group => {
            let name = group_name_of(s(&stored.doc, "displayName").unwrap_or_default())?;
            let g = match groups::by_name(tx, &name).await.map_err(to_scim)? {
                Some(g)
                    if g.source == "scim"
                        && store::by_group(tx, &g.id).await.map_err(to_scim)?.is_none() =>
                {
                    g
                }
                Some(_) => {
                    return Err(ScimError::uniqueness(format!(
                        "the Gatehouse group {name} exists and is not managed by SCIM"
                    )));
                }
                None => groups::create_with_source(tx, &call.actor, call.now_ms, &name, "", "scim")
                    .await
                    .map_err(to_scim)?,
            };
            stored.group_id = Some(g.id);
            sync_members(tx, call, &name, &stored.doc).await?;
            store::insert(tx, &stored, &call.client, true)
                .await
                .map_err(conflict)?;
            audit_call(
                tx,
                call,
                "scim.group.create",
                format!("group:{name}"),
                json!({ "client": call.client, "scim_id": stored.id }),
            )
            .await?;
        }
    }
    Ok(stored)
}

async fn manager_username(tx: &mut Tx, manager_id: Option<&str>) -> Result<Option<String>> {
    let Some(id) = manager_id else {
        return Ok(None);
    };
    let Some(m) = store::get(tx, Kind::User, id).await.map_err(to_scim)? else {
        return Ok(None);
    };
    let Some(iid) = m.identity_id else {
        return Ok(None);
    };
    Ok(identities::by_id(tx, &iid)
        .await
        .map_err(to_scim)?
        .map(|i| i.username))
}

/// The identity for a new User: a re-hire of the SCIM identity left behind by a deleted User
/// (`exists`, found by the caller's probe), or a new identity with its birthright roles.
/// `quiet`: the caller reads nothing of a new identity back in this transaction.
async fn create_identity(
    tx: &mut Tx,
    call: &Call,
    doc: &Map<String, Value>,
    exists: bool,
    quiet: bool,
) -> Result<(String, String)> {
    let mut v = user_view(doc)?;
    if let Some(m) = manager_username(tx, v.manager_id.as_deref()).await? {
        v.attributes.insert("manager".into(), Value::String(m));
    }
    let mut status = if v.active {
        Status::Active
    } else {
        Status::Prehire
    };
    if !exists {
        return new_identity(tx, call, v, status, quiet).await;
    }
    let identity = match identities::by_username(tx, &v.username)
        .await
        .map_err(to_scim)?
    {
        // A SCIM-made identity whose resource was deleted (a leaver) comes back: a rehire.
        Some(i)
            if i.source == "scim"
                && store::by_identity(tx, &i.id)
                    .await
                    .map_err(to_scim)?
                    .is_none() =>
        {
            identities::update(
                tx,
                &call.actor,
                call.now_ms,
                &i.username,
                &v.display_name,
                v.email.as_deref(),
                &v.attributes,
            )
            .await
            .map_err(to_scim)?;
            // Only a leaver SCIM made (or a pre-hire) comes back active or as a pre-hire; a
            // status an administrator set stays. Privileges, tokens and factors left with the
            // leaver (`engine::terminate`) and are not restored.
            let set_by = identities::status_set_by(tx, &i.id)
                .await
                .map_err(to_scim)?;
            let scim_may = i.status == Status::Prehire
                || (i.status == Status::Terminated && set_by.starts_with("scim:"));
            if !scim_may {
                status = i.status;
            } else if i.status != status {
                identities::set_status(tx, &call.actor, call.now_ms, &i.username, status)
                    .await
                    .map_err(to_scim)?;
            }
            i
        }
        Some(_) => {
            return Err(ScimError::uniqueness(format!(
                "the Gatehouse username {} is taken by an identity SCIM does not manage",
                v.username
            )));
        }
        None => return new_identity(tx, call, v, status, quiet).await,
    };
    engine::reconcile_birthright(
        tx,
        &call.actor,
        call.now_ms,
        &identity.username,
        &identity.id,
        &v.attributes,
        status,
        call.grace_ms,
    )
    .await
    .map_err(to_scim)?;
    Ok((identity.id, identity.username))
}

/// A new identity (no assignments yet) and the birthright roles its attributes imply.
async fn new_identity(
    tx: &mut Tx,
    call: &Call,
    v: UserView,
    status: Status,
    quiet: bool,
) -> Result<(String, String)> {
    let new = NewIdentity {
        username: v.username,
        display_name: v.display_name,
        email: v.email,
        attributes: v.attributes,
        source: "scim".into(),
    };
    // The caller's probe found the username free under the write lock. An active joiner's rows
    // go with the commit, unless something reads them back first: a pre-hire's status or a
    // password is set on the identity row.
    let later = quiet && status == Status::Active;
    let i = if later {
        identities::create_later(tx, &call.actor, call.now_ms, new).await
    } else {
        identities::create(tx, &call.actor, call.now_ms, new).await
    }
    .map_err(to_scim)?;
    if status != Status::Active {
        identities::set_status(tx, &call.actor, call.now_ms, &i.username, status)
            .await
            .map_err(to_scim)?;
    }
    engine::birthright_for_joiner(tx, &call.actor, call.now_ms, &i, status, later)
        .await
        .map_err(to_scim)?;
    Ok((i.id, i.username))
}

/// Replaces a resource (PUT, or the result of a PATCH). `if_match` is the request's `If-Match`.
pub async fn replace(
    tx: &mut Tx,
    call: &Call,
    kind: Kind,
    id: &str,
    w: Write,
    if_match: Option<&str>,
    action: &str,
) -> Result<Stored> {
    let before = store::require(tx, kind, id).await?;
    before.check_if_match(if_match)?;
    let key = store::name_key(kind, &w.doc);
    if key != store::name_key(kind, &before.doc)
        && store::by_name(tx, kind, &key)
            .await
            .map_err(to_scim)?
            .is_some()
    {
        return Err(ScimError::uniqueness(format!("{key:?} is already taken")));
    }
    let mut details = json!({ "client": call.client, "scim_id": id });
    // A password for a privileged identity is refused before anything else changes, so the
    // refusal's audit record is all the transaction holds.
    if let (Some(_), Some(iid), true) = (&w.password_phc, &before.identity_id, call.passwords) {
        refuse_privileged_password(tx, call, iid).await?;
    }
    let mut after = Stored {
        doc: w.doc,
        version: before.version + 1,
        modified_ms: call.now_ms,
        ..before.clone()
    };
    let object = match kind {
        Kind::User => {
            let (username, kept) = update_identity(tx, call, &before, &after).await?;
            if let Some(k) = kept {
                details["status_kept"] = Value::String(k);
            }
            if let (Some(phc), Some(iid)) = (&w.password_phc, &before.identity_id) {
                set_password(tx, call, iid, &username, phc, &mut details).await?;
            } else if w.password_ignored {
                details["password"] = json!(IGNORED);
            }
            format!("identity:{username}")
        }
        Kind::Group => {
            let name = update_group(tx, call, &before, &after).await?;
            after.group_id = before.group_id.clone();
            format!("group:{name}")
        }
    };
    store::update(tx, &after).await.map_err(conflict)?;
    details["version"] = json!(after.version);
    audit_call(
        tx,
        call,
        &format!("scim.{}.{action}", kind.name().to_lowercase()),
        object,
        details,
    )
    .await?;
    Ok(after)
}

const IGNORED: &str = "ignored: SCIM passwords are off ([scim] passwords)";

/// Refuses (403, audited as `scim.password.refused`, the transaction marked to keep only that
/// record) a password for an identity that holds a privilege: a provisioning client must never
/// hold the credential of an administrator or reviewer.
async fn refuse_privileged_password(tx: &mut Tx, call: &Call, identity_id: &str) -> Result<()> {
    let held = crate::access::privileges::of(tx, identity_id)
        .await
        .map_err(to_scim)?;
    if held.is_empty() {
        return Ok(());
    }
    let username = identities::by_id(tx, identity_id)
        .await
        .map_err(to_scim)?
        .map(|i| i.username)
        .unwrap_or_default();
    audit::append(
        tx,
        call.now_ms,
        NewEvent::new(
            call.actor.to_string(),
            "scim.password.refused",
            format!("identity:{username}"),
        )
        .outcome(audit::Outcome::Failure)
        .details(json!({ "client": call.client, "privileges": held,
            "reason": "SCIM never sets the password of an identity that holds a privilege" })),
    )
    .await
    .map_err(to_scim)?;
    tx.mark_refusal();
    Err(ScimError::new(
        403,
        None,
        format!(
            "{username} holds the {} privilege: SCIM never sets its password; an administrator does",
            held.join(" and ")
        ),
    ))
}

/// Sets a password a client sent, when `[scim] passwords` is on and the identity holds no
/// privilege (checked again here, for a create that re-hires); notes what happened in the
/// call's audit details.
async fn set_password(
    tx: &mut Tx,
    call: &Call,
    identity_id: &str,
    username: &str,
    phc: &str,
    details: &mut Value,
) -> Result<()> {
    if !call.passwords {
        details["password"] = json!(IGNORED);
        return Ok(());
    }
    if !crate::access::privileges::of(tx, identity_id)
        .await
        .map_err(to_scim)?
        .is_empty()
    {
        details["password"] = json!("ignored: the identity holds a privilege");
        return Ok(());
    }
    crate::identity::passwords::set_hash(tx, &call.actor, call.now_ms, username, phc, None)
        .await
        .map_err(to_scim)?;
    details["password"] = json!("set");
    Ok(())
}

/// Carries a replaced User to its identity; returns the username and, when `active: true`
/// did not activate it, why (for the audit event).
async fn update_identity(
    tx: &mut Tx,
    call: &Call,
    before: &Stored,
    after: &Stored,
) -> Result<(String, Option<String>)> {
    let mut v = user_view(&after.doc)?;
    let iid = before.identity_id.clone().unwrap_or_default();
    let current = identities::by_id(tx, &iid)
        .await
        .map_err(to_scim)?
        .ok_or_else(|| ScimError::not_found("the identity of this User is gone"))?;
    if let Some(m) = manager_username(tx, v.manager_id.as_deref()).await? {
        v.attributes.insert("manager".into(), Value::String(m));
    }
    let mut username = current.username.clone();
    if v.username != current.username {
        identities::rename(tx, &call.actor, call.now_ms, &current.username, &v.username)
            .await
            .map_err(to_scim)?;
        username = v.username.clone();
    }
    let mut attributes = current.attributes.clone();
    for k in MANAGED {
        attributes.remove(*k);
    }
    attributes.extend(v.attributes);
    identities::update(
        tx,
        &call.actor,
        call.now_ms,
        &username,
        &v.display_name,
        v.email.as_deref(),
        &attributes,
    )
    .await
    .map_err(to_scim)?;
    let set_by = identities::status_set_by(tx, &iid).await.map_err(to_scim)?;
    let mut kept = None;
    let status = match status_change(current.status, &set_by, v.active) {
        StatusChange::Activate => {
            identities::set_status(tx, &call.actor, call.now_ms, &username, Status::Active)
                .await
                .map_err(to_scim)?;
            Status::Active
        }
        StatusChange::Leave => {
            leaver(tx, call, &username, &attributes).await?;
            // A leaver made of an identity an administrator had suspended or disabled stays
            // theirs to lift: SCIM cannot turn "suspended" into active by leaving and rejoining.
            if matches!(current.status, Status::Suspended | Status::Disabled)
                && !set_by.is_empty()
                && !set_by.starts_with("scim:")
            {
                identities::hold_status_for(tx, &iid, &set_by)
                    .await
                    .map_err(to_scim)?;
            }
            Status::Terminated
        }
        StatusChange::Keep => {
            if v.active && current.status != Status::Active {
                kept = Some(format!(
                    "{} (set by {}): SCIM activates only pre-hires and identities SCIM \
                     terminated",
                    current.status.as_str(),
                    if set_by.is_empty() {
                        "creation"
                    } else {
                        &set_by
                    }
                ));
            }
            current.status
        }
    };
    if status != Status::Terminated {
        engine::reconcile_birthright(
            tx,
            &call.actor,
            call.now_ms,
            &username,
            &iid,
            &attributes,
            status,
            call.grace_ms,
        )
        .await
        .map_err(to_scim)?;
        if crate::governance::campaigns::mover::moved(&current.attributes, &attributes) {
            crate::governance::campaigns::mover::open(
                tx,
                &call.actor,
                call.now_ms,
                &username,
                call.grace_ms,
            )
            .await
            .map_err(to_scim)?;
        }
    }
    Ok((username, kept))
}

/// What a User's `active` does to its identity's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusChange {
    Activate,
    Leave,
    Keep,
}

/// SCIM activates only a pre-hire or an identity a SCIM client terminated: a suspension or a
/// disable an administrator (or the CLI, HR, an `apply`) set stays until they lift it, however
/// often an identity provider resends `active: true`. `active: false` is a leaver whatever the
/// identity's status, unless it is a pre-hire or has left already.
fn status_change(current: Status, set_by: &str, active: bool) -> StatusChange {
    match (current, active) {
        (Status::Prehire, true) => StatusChange::Activate,
        (Status::Terminated, true) if set_by.starts_with("scim:") => StatusChange::Activate,
        (Status::Active | Status::Suspended | Status::Disabled, false) => StatusChange::Leave,
        _ => StatusChange::Keep,
    }
}

/// `active: false` or a DELETE: the lifecycle engine's leaver (terminated, grants revoked,
/// live sessions ended, tokens and keys disabled, birthright removed).
async fn leaver(
    tx: &mut Tx,
    call: &Call,
    username: &str,
    attributes: &Map<String, Value>,
) -> Result<()> {
    let done = engine::terminate(tx, &call.actor, call.now_ms, username, attributes)
        .await
        .map_err(to_scim)?;
    audit_call(
        tx,
        call,
        "scim.leaver",
        format!("identity:{username}"),
        json!({ "client": call.client, "leaver": done }),
    )
    .await
}

async fn update_group(tx: &mut Tx, call: &Call, before: &Stored, after: &Stored) -> Result<String> {
    let old = group_name_of(s(&before.doc, "displayName").unwrap_or_default())?;
    let new = group_name_of(s(&after.doc, "displayName").unwrap_or_default())?;
    if old != new {
        groups::rename(tx, &call.actor, call.now_ms, &old, &new)
            .await
            .map_err(to_scim)?;
    }
    sync_members(tx, call, &new, &after.doc).await?;
    Ok(new)
}

/// Makes the group's identity members those the document lists (members that are Groups are
/// kept in the document; Gatehouse groups do not nest).
async fn sync_members(
    tx: &mut Tx,
    call: &Call,
    group: &str,
    doc: &Map<String, Value>,
) -> Result<()> {
    let mut want = Vec::new();
    for m in doc
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = m.get("value").and_then(Value::as_str) else {
            continue;
        };
        if let Some(u) = store::get(tx, Kind::User, id).await.map_err(to_scim)? {
            if let Some(iid) = u.identity_id
                && let Some(i) = identities::by_id(tx, &iid).await.map_err(to_scim)?
            {
                want.push(i.username);
            }
        } else if store::get(tx, Kind::Group, id)
            .await
            .map_err(to_scim)?
            .is_none()
        {
            return Err(ScimError::invalid_value(format!(
                "members: no User or Group has the id {id}"
            )));
        }
    }
    let have = groups::members(tx, group).await.map_err(to_scim)?;
    for u in &want {
        if !have.contains(u) {
            groups::add_member(tx, &call.actor, call.now_ms, group, u)
                .await
                .map_err(to_scim)?;
        }
    }
    for u in &have {
        if !want.contains(u) {
            groups::remove_member(tx, &call.actor, call.now_ms, group, u)
                .await
                .map_err(to_scim)?;
        }
    }
    Ok(())
}

/// Deletes a resource. A User's identity is not deleted (the audit trail names it): it leaves.
pub async fn delete(
    tx: &mut Tx,
    call: &Call,
    kind: Kind,
    id: &str,
    if_match: Option<&str>,
) -> Result<()> {
    let before = store::require(tx, kind, id).await?;
    before.check_if_match(if_match)?;
    let object = match kind {
        Kind::User => {
            let iid = before.identity_id.clone().unwrap_or_default();
            match identities::by_id(tx, &iid).await.map_err(to_scim)? {
                Some(i) => {
                    if i.status != Status::Terminated {
                        let set_by = identities::status_set_by(tx, &i.id)
                            .await
                            .map_err(to_scim)?;
                        leaver(tx, call, &i.username, &i.attributes).await?;
                        // As for active: false (`update_identity`): a suspension or disable an
                        // administrator set stays theirs to lift, also through a re-create.
                        if matches!(i.status, Status::Suspended | Status::Disabled)
                            && !set_by.is_empty()
                            && !set_by.starts_with("scim:")
                        {
                            identities::hold_status_for(tx, &i.id, &set_by)
                                .await
                                .map_err(to_scim)?;
                        }
                    }
                    format!("identity:{}", i.username)
                }
                None => format!("scim:{id}"),
            }
        }
        Kind::Group => {
            let name = group_name_of(s(&before.doc, "displayName").unwrap_or_default())?;
            if groups::by_name(tx, &name).await.map_err(to_scim)?.is_some() {
                groups::delete(tx, &call.actor, call.now_ms, &name)
                    .await
                    .map_err(to_scim)?;
            }
            format!("group:{name}")
        }
    };
    store::delete(tx, id).await.map_err(to_scim)?;
    audit_call(
        tx,
        call,
        &format!("scim.{}.delete", kind.name().to_lowercase()),
        object,
        json!({ "client": call.client, "scim_id": id }),
    )
    .await
}

/// The groups a User belongs to, as its read-only `groups` attribute.
pub async fn user_groups(
    conn: &mut sqlx::AnyConnection,
    identity_id: &str,
    base: &str,
) -> Result<Vec<Value>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT r.id, r.document FROM group_members m JOIN scim_resources r ON r.group_id = m.group_id \
         WHERE m.identity_id = $1 ORDER BY r.id",
    )
    .bind(identity_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| to_scim(Error::from(e)))?;
    Ok(rows
        .into_iter()
        .map(|(id, doc)| {
            let name = serde_json::from_str::<Value>(&doc)
                .ok()
                .and_then(|d| d.get("displayName").cloned())
                .unwrap_or(Value::Null);
            json!({ "value": id, "$ref": format!("{base}/Groups/{id}"), "display": name, "type": "direct" })
        })
        .collect())
}
