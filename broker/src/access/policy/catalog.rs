//! The decision cache: everything `decide` reads — identities with their groups, standing
//! assignments and live grants, targets, roles with compiled conditions, and the Cedar entities —
//! loaded from the database in one pass and kept fresh by comparing `access_version`.

use crate::access::assignments::{self, Kind as AssignmentKind, Subject};
use crate::access::grants::Grant;
use crate::access::role_spec::RoleSpec;
use crate::error::Result;
use crate::ledger::store::Store;
use cedar_policy::Entity;
use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

/// The catalog's maps: keyed by names, read on every decision, so hashed with foldhash (seeded per
/// process) rather than SipHash.
pub type FastMap<V> = HashMap<String, V, foldhash::fast::RandomState>;
use std::sync::Arc;

/// A role as decisions need it.
#[derive(Debug, Clone)]
pub struct RoleFacts {
    pub id: String,
    pub name: String,
    pub spec: RoleSpec,
    /// The compiled condition; `Err` if it no longer compiles (the role then allows nothing).
    pub condition: Option<std::result::Result<super::cedar::Condition, String>>,
}

/// A standing or eligible assignment reaching an identity (directly or through a group).
#[derive(Debug, Clone)]
pub struct Held {
    pub assignment_id: String,
    pub role_id: String,
    pub kind: AssignmentKind,
    pub not_before_ms: Option<i64>,
    pub not_after_ms: Option<i64>,
    /// The group it came through, if any.
    pub via_group: Option<String>,
}

/// An identity as decisions need it.
#[derive(Debug, Clone)]
pub struct IdentityFacts {
    pub id: String,
    pub username: String,
    pub active: bool,
    pub attributes: Map<String, Value>,
    pub groups: Vec<String>,
    pub held: Vec<Held>,
    pub grants: Vec<Grant>,
    pub entity: Entity,
}

/// A target as decisions need it.
#[derive(Debug, Clone)]
pub struct TargetFacts {
    pub name: String,
    pub kind: String,
    pub labels: Map<String, Value>,
    pub owner: Option<String>,
    pub entity: Entity,
}

/// An identity row: id, username, active, attributes.
pub type IdentityRow = (String, String, bool, Map<String, Value>);
/// A membership row: identity id, group id, group name.
pub type MembershipRow = (String, String, String);
/// A target row: name, kind, labels, owner.
pub type TargetRow = (String, String, Map<String, Value>, Option<String>);
/// A role row: id, name, spec.
pub type RoleRow = (String, String, RoleSpec);

/// One consistent picture of who may reach what.
#[derive(Debug)]
pub struct Catalog {
    /// The `access_version` this picture was loaded at.
    pub version: i64,
    pub identities: FastMap<IdentityFacts>,
    pub targets: FastMap<TargetFacts>,
    pub roles: FastMap<RoleFacts>,
    /// Every identity and target as one Cedar entity store, built once per load.
    pub entities: cedar_policy::Entities,
}

impl Catalog {
    /// Builds a catalog from plain data (the loader and the benchmark both come through here).
    pub fn build(
        version: i64,
        identities: Vec<IdentityRow>,
        memberships: Vec<MembershipRow>,
        targets: Vec<TargetRow>,
        roles: Vec<RoleRow>,
        assignments: Vec<assignments::Assignment>,
        grants: Vec<Grant>,
    ) -> Result<Self> {
        let mut groups_of: HashMap<String, Vec<String>> = HashMap::new();
        let mut members_of: HashMap<String, Vec<String>> = HashMap::new();
        for (identity_id, group_id, group_name) in memberships {
            groups_of
                .entry(identity_id.clone())
                .or_default()
                .push(group_name);
            members_of.entry(group_id).or_default().push(identity_id);
        }
        let mut held: HashMap<String, Vec<Held>> = HashMap::new();
        for a in assignments {
            let h = |via_group| Held {
                assignment_id: a.id.clone(),
                role_id: a.role_id.clone(),
                kind: a.kind,
                not_before_ms: a.not_before_ms,
                not_after_ms: a.not_after_ms,
                via_group,
            };
            match &a.subject {
                Subject::Identity(_) => held.entry(a.subject_id.clone()).or_default().push(h(None)),
                Subject::Group(g) => {
                    for m in members_of.get(&a.subject_id).into_iter().flatten() {
                        held.entry(m.clone()).or_default().push(h(Some(g.clone())));
                    }
                }
            }
        }
        let mut grants_of: HashMap<String, Vec<Grant>> = HashMap::new();
        for g in grants {
            grants_of.entry(g.identity_id.clone()).or_default().push(g);
        }
        let mut out = Catalog {
            version,
            identities: FastMap::default(),
            targets: FastMap::default(),
            roles: FastMap::default(),
            entities: cedar_policy::Entities::empty(),
        };
        for (id, username, active, attributes) in identities {
            let groups = groups_of.remove(&id).unwrap_or_default();
            let entity = super::cedar::identity_entity(&username, &attributes, &groups)?;
            out.identities.insert(
                username.clone(),
                IdentityFacts {
                    held: held.remove(&id).unwrap_or_default(),
                    grants: grants_of.remove(&id).unwrap_or_default(),
                    id,
                    username,
                    active,
                    attributes,
                    groups,
                    entity,
                },
            );
        }
        for (name, kind, labels, owner) in targets {
            let entity = super::cedar::target_entity(&name, &kind, &labels)?;
            out.targets.insert(
                name.clone(),
                TargetFacts {
                    name,
                    kind,
                    labels,
                    owner,
                    entity,
                },
            );
        }
        out.entities = super::cedar::entity_store(
            out.identities
                .values()
                .map(|i| i.entity.clone())
                .chain(out.targets.values().map(|t| t.entity.clone())),
        )?;
        for (id, name, spec) in roles {
            let condition = spec
                .condition
                .as_deref()
                .map(|c| super::cedar::Condition::compile(&name, c).map_err(|e| e.to_string()));
            out.roles.insert(
                id.clone(),
                RoleFacts {
                    id,
                    name,
                    spec,
                    condition,
                },
            );
        }
        Ok(out)
    }

    /// Loads the whole picture. The version is read first, so a change committed during the
    /// load leaves the catalog looking older than it is (and it is reloaded), never newer.
    pub async fn load(conn: &mut AnyConnection, now_ms: i64) -> Result<Self> {
        let version = Store::access_version(conn).await?;
        let mut identities = Vec::new();
        for r in sqlx::query("SELECT id, username, status, attributes FROM identities")
            .fetch_all(&mut *conn)
            .await?
        {
            let attrs: String = r.try_get(3)?;
            identities.push((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get::<String, _>(2)? == "active",
                serde_json::from_str(&attrs).unwrap_or_default(),
            ));
        }
        let mut memberships = Vec::new();
        for r in sqlx::query(
            "SELECT m.identity_id, g.id, g.name FROM group_members m JOIN groups g ON g.id = m.group_id",
        )
        .fetch_all(&mut *conn)
        .await?
        {
            memberships.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
        let targets = crate::access::targets::list(conn)
            .await?
            .into_iter()
            .map(|t| (t.name, t.kind.as_str().to_owned(), t.labels, t.owner))
            .collect();
        let roles = crate::access::roles::list(conn)
            .await?
            .into_iter()
            .map(|r| (r.id, r.name, r.spec))
            .collect();
        let assignments = assignments::list(conn).await?;
        let grants = crate::access::grants::all_active(conn, now_ms).await?;
        Self::build(
            version,
            identities,
            memberships,
            targets,
            roles,
            assignments,
            grants,
        )
    }
}

/// The shared, self-refreshing catalog.
#[derive(Debug, Clone, Default)]
pub struct CatalogCache {
    inner: Arc<tokio::sync::RwLock<Option<Arc<Catalog>>>>,
}

impl CatalogCache {
    /// The current catalog, reloaded first if `access_version` moved since it was loaded. The
    /// version check is one single-row read; the reload happens once per change.
    pub async fn current(&self, conn: &mut AnyConnection, now_ms: i64) -> Result<Arc<Catalog>> {
        let version = Store::access_version(conn).await?;
        if let Some(c) = self.inner.read().await.as_ref()
            && c.version == version
        // Grants were loaded as "not yet ended" at load time; they carry their own times,
        // so a stale-but-same-version catalog is still exact.
        {
            return Ok(c.clone());
        }
        let mut slot = self.inner.write().await;
        if let Some(c) = slot.as_ref()
            && c.version == version
        {
            return Ok(c.clone());
        }
        let fresh = Arc::new(Catalog::load(conn, now_ms).await?);
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// The catalog as last loaded, without checking the database (the benchmark's hot path and
    /// the gateway between events). `None` before the first load.
    pub async fn cached(&self) -> Option<Arc<Catalog>> {
        self.inner.read().await.clone()
    }
}
