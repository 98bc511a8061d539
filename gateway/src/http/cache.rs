//! What the app gateway reads from the database for a request, kept between requests: the app
//! (target) by name, the live app session behind a cookie with its identity and groups, the
//! credential vaulted for an app and role, and the decision catalog. An entry is used only
//! while [`Store::generation`] has not moved since it was read (every access event, every
//! browser session ended in this process) and for at most [`FRESH`]; then it is read again.
//! So a revocation, a disabled identity or a sign-out at the web UI of this instance is seen
//! by the very next request, and a change on another instance (its event, or failing that the
//! time limit) within [`FRESH`]. Without this, a request cost seven round trips to the
//! database (the benchmark's profile: most of the gateway's time).

use super::signin::Who;
use gatehouse_broker::access::apps::Injected;
use gatehouse_broker::access::policy::Catalog;
use gatehouse_broker::access::targets::Target;
use gatehouse_broker::{Result, Store};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest time an entry is used without reading it again.
pub const FRESH: Duration = Duration::from_secs(1);

/// Longest time a signed assertion is sent again instead of a new one.
pub const ASSERTION_REUSE: Duration = Duration::from_secs(60);

/// Most entries of each kind; past it the table is emptied (entries are cheap to read again).
const MAX_ENTRIES: usize = 10_000;

/// When an entry was read, and at which generation.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    generation: u64,
    at: Instant,
}

/// A table of entries read at a stamp.
#[derive(Debug)]
struct Table<K, V> {
    map: Mutex<HashMap<K, (Stamp, V)>>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Table<K, V> {
    fn get(&self, key: &K, generation: u64) -> Option<V> {
        self.get_within(key, generation, FRESH)
    }

    fn get_within(&self, key: &K, generation: u64, fresh: Duration) -> Option<V> {
        let mut map = self.map.lock().ok()?;
        match map.get(key) {
            Some((s, v)) if s.generation == generation && s.at.elapsed() < fresh => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&self, key: K, generation: u64, value: V) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(
                key,
                (
                    Stamp {
                        generation,
                        at: Instant::now(),
                    },
                    value,
                ),
            );
        }
    }
}

/// The gateway's read cache (see the module).
#[derive(Debug, Default)]
pub struct Cache {
    apps: Table<String, Option<Arc<Target>>>,
    sessions: Table<(String, String), Option<Who>>,
    credentials: Table<(String, String), Option<Injected>>,
    hosts: Table<(), Arc<HashMap<String, String>>>,
    assertions: Table<(String, String), Arc<str>>,
    catalog: Mutex<Option<Stamp>>,
}

impl Cache {
    /// The target named `name` (any kind), or `None`.
    pub async fn app(&self, store: &Store, name: &str) -> Result<Option<Arc<Target>>> {
        let generation = store.generation();
        let key = name.to_string();
        if let Some(v) = self.apps.get(&key, generation) {
            return Ok(v);
        }
        let mut c = store.pool().acquire().await?;
        let found = gatehouse_broker::access::targets::by_name(&mut c, name)
            .await?
            .map(Arc::new);
        self.apps.put(key, generation, found.clone());
        Ok(found)
    }

    /// The apps served at a host of their own (`host` in their settings): host → app name.
    /// A host claimed by two apps, under the apps domain, or the web UI's own is nobody's
    /// (logged): it gets the 404 of an unknown host.
    pub async fn hosts(
        &self,
        store: &Store,
        domain: &str,
        web_host: &str,
    ) -> Result<Arc<HashMap<String, String>>> {
        let generation = store.generation();
        if let Some(v) = self.hosts.get(&(), generation) {
            return Ok(v);
        }
        let mut c = store.pool().acquire().await?;
        let mut claims: HashMap<String, Vec<String>> = HashMap::new();
        for t in gatehouse_broker::access::targets::list(&mut c).await? {
            if t.kind == gatehouse_broker::access::targets::Kind::Http
                && let Some(h) = &t.app.host
            {
                claims
                    .entry(h.to_ascii_lowercase())
                    .or_default()
                    .push(t.name);
            }
        }
        let mut map = HashMap::new();
        for (host, names) in claims {
            if names.len() > 1 || super::host::under_domain(&host, domain) || host == web_host {
                tracing::warn!(%host, apps = ?names, "app gateway: this app host is served to no app (claimed twice, under the apps domain, or the web UI's)");
                continue;
            }
            if let Some(name) = names.into_iter().next() {
                map.insert(host, name);
            }
        }
        let map = Arc::new(map);
        self.hosts.put((), generation, map.clone());
        Ok(map)
    }

    /// The live app session behind `cookie` for the app `target_id`, with its identity and groups
    /// (see [`gatehouse_broker::access::apps::lookup`]).
    pub async fn session(
        &self,
        store: &Store,
        cookie: &str,
        target_id: &str,
        now_ms: i64,
    ) -> Result<Option<Who>> {
        let generation = store.generation();
        let key = (
            gatehouse_broker::secrets::hash(cookie),
            target_id.to_string(),
        );
        if let Some(v) = self.sessions.get(&key, generation) {
            // An app session's own end is a time: kept exact without reading it again.
            return Ok(v.filter(|w| now_ms < w.session.expires_at_ms));
        }
        let mut c = store.pool().acquire().await?;
        let found = match gatehouse_broker::access::apps::lookup(&mut c, cookie, target_id, now_ms)
            .await?
        {
            Some((session, identity)) => {
                let groups =
                    gatehouse_broker::identity::groups::of_identity(&mut c, &identity.username)
                        .await?;
                Some(Who {
                    session,
                    identity,
                    groups: Arc::new(groups),
                    generation,
                })
            }
            None => None,
        };
        self.sessions.put(key, generation, found.clone());
        Ok(found)
    }

    /// The credential vaulted for `role` on app `target` (see
    /// [`gatehouse_broker::access::apps::credential`]).
    pub async fn credential(
        &self,
        store: &Store,
        target: &str,
        role: &str,
        key: &gatehouse_broker::sealing::SealingKey,
    ) -> Result<Option<Injected>> {
        let generation = store.generation();
        let k = (target.to_string(), role.to_string());
        if let Some(v) = self.credentials.get(&k, generation) {
            return Ok(v);
        }
        let mut c = store.pool().acquire().await?;
        let found = gatehouse_broker::access::apps::credential(&mut c, target, role, key).await?;
        self.credentials.put(k, generation, found.clone());
        Ok(found)
    }

    /// The signed assertion for `who`'s app session under `role`: one made within
    /// [`ASSERTION_REUSE`] while nothing changed, else a new one from `make` (signing is the
    /// largest cost of a request otherwise; an assertion lives 5 minutes, so a reused one has
    /// at least 4 left). An empty one (signing failed) is not kept.
    ///
    /// `who` is what the claims are made from: a new assertion is kept at the generation `who`
    /// was read at, not the current one, so claims read before a change are never reused after
    /// it.
    pub fn assertion(
        &self,
        store: &Store,
        who: &Who,
        role: &str,
        make: impl FnOnce() -> String,
    ) -> Arc<str> {
        let key = (who.session.id.clone(), role.to_string());
        if let Some(a) = self
            .assertions
            .get_within(&key, store.generation(), ASSERTION_REUSE)
        {
            return a;
        }
        let made: Arc<str> = make().into();
        if !made.is_empty() {
            self.assertions.put(key, who.generation, made.clone());
        }
        made
    }

    /// The decision catalog: the broker's cached one while nothing changed and it was checked
    /// within [`FRESH`], else checked against the database (and reloaded if it moved).
    pub async fn catalog(
        &self,
        store: &Store,
        catalogs: &gatehouse_broker::access::policy::CatalogCache,
        now_ms: i64,
    ) -> Result<Arc<Catalog>> {
        let generation = store.generation();
        let checked = self.catalog.lock().ok().and_then(|s| *s);
        if let Some(s) = checked
            && s.generation == generation
            && s.at.elapsed() < FRESH
            && let Some(c) = catalogs.cached().await
        {
            return Ok(c);
        }
        let mut c = store.pool().acquire().await?;
        let catalog = catalogs.current(&mut c, now_ms).await?;
        if let Ok(mut s) = self.catalog.lock() {
            *s = Some(Stamp {
                generation,
                at: Instant::now(),
            });
        }
        Ok(catalog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_broker::access::apps::AppSession;
    use gatehouse_broker::events::AccessEvent;
    use gatehouse_broker::identity::identities::{Identity, Status};

    fn who(groups: &[&str], generation: u64) -> Who {
        Who {
            session: AppSession {
                id: "s1".into(),
                target_id: "t1".into(),
                identity_id: "i1".into(),
                web_session_id: "w1".into(),
                created_at_ms: 0,
                expires_at_ms: i64::MAX,
                mfa_at_ms: None,
            },
            identity: Identity {
                id: "i1".into(),
                username: "alice".into(),
                display_name: String::new(),
                email: None,
                status: Status::Active,
                attributes: Default::default(),
                source: "api".into(),
                created_at_ms: 0,
                updated_at_ms: 0,
            },
            groups: Arc::new(groups.iter().map(|g| g.to_string()).collect()),
            generation,
        }
    }

    /// Claims read before a change are never reused after it: an assertion made from a `who`
    /// read at the old generation is kept at that generation, so the next request (with `who`
    /// read again) signs a new one.
    #[tokio::test]
    async fn security_an_assertion_made_from_stale_claims_is_not_reused_after_the_change() {
        let db = gatehouse_broker::testkit::TestDb::sqlite().await;
        let store = &db.store;
        let cache = Cache::default();
        let before = store.generation();
        let stale = who(&["admins"], before);
        // The change (a group membership removed) lands while the request is in flight.
        store.publish_local(AccessEvent::AccessChanged);
        let a = cache.assertion(store, &stale, "r", || "with-admins".into());
        assert_eq!(&*a, "with-admins");
        let fresh = who(&[], store.generation());
        let b = cache.assertion(store, &fresh, "r", || "without-admins".into());
        assert_eq!(&*b, "without-admins");
        // And then it is reused while nothing changes.
        let c = cache.assertion(store, &fresh, "r", || "signed-again".into());
        assert_eq!(&*c, "without-admins");
    }
}
