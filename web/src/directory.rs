//! LDAP / Active Directory sign-in (ldap3): the user's entry is found with a service bind (or
//! anonymously), the password is checked by binding as that entry, and the user's groups are
//! read for the group mapping. Only the directory says whether a password is right; Gatehouse
//! never sees or stores it beyond the bind. [`Ldap::list_users`] reads the whole directory for a
//! sync (`gatehouse_broker::identity::directory_sync`).

use gatehouse_broker::identity::directory_sync::{Entry, Listing};
use gatehouse_broker::secrets::Secret;
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use std::collections::BTreeMap;
use std::time::Duration;

/// How to reach and read the directory (`[ldap]` in the configuration).
#[derive(Debug, Clone)]
pub struct Ldap {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// The service account that looks users up (anonymous when `None`).
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    /// Where users are, e.g. `ou=people,dc=example,dc=org`.
    pub base_dn: String,
    /// `{username}` is replaced by the escaped username, e.g. `(&(objectClass=inetOrgPerson)(uid={username}))`.
    pub user_filter: String,
    /// Where groups are; group sync is off without it (and without `memberOf`).
    pub group_base_dn: Option<String>,
    /// `{dn}` is replaced by the escaped user DN, e.g. `(&(objectClass=groupOfNames)(member={dn}))`.
    pub group_filter: String,
    /// Directory group (its `cn` or full DN, any case) → Gatehouse group.
    pub group_mapping: BTreeMap<String, String>,
    /// Create the identity at its first sign-in, and at a sync (else only existing identities
    /// may sign in).
    pub create_identities: bool,
    pub timeout: Duration,
    /// The attribute holding the username, for a sync (`uid`; Active Directory:
    /// `sAMAccountName`).
    pub username_attribute: String,
    /// Users matching this filter are disabled in the directory (a sync makes them leavers),
    /// e.g. `(pwdAccountLockedTime=*)`; Active Directory:
    /// `(userAccountControl:1.2.840.113556.1.4.803:=2)`.
    pub disabled_filter: Option<String>,
}

/// A user the directory vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub dn: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// The Gatehouse groups the user's directory groups map to.
    pub groups: Vec<String>,
}

fn first(e: &SearchEntry, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        e.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .and_then(|(_, v)| v.first().cloned())
    })
}

/// The `cn` of a DN's first RDN (`cn=dbas,ou=groups,…` → `dbas`).
fn cn_of(dn: &str) -> Option<&str> {
    let rdn = dn.split(',').next()?;
    let (k, v) = rdn.split_once('=')?;
    k.trim().eq_ignore_ascii_case("cn").then(|| v.trim())
}

impl Ldap {
    /// Every Gatehouse group the mapping can give.
    pub fn mapped_groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self.group_mapping.values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    fn map_group(&self, dn_or_cn: &str) -> Option<String> {
        let cn = cn_of(dn_or_cn).unwrap_or(dn_or_cn);
        self.group_mapping
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(dn_or_cn) || k.eq_ignore_ascii_case(cn))
            .map(|(_, v)| v.clone())
    }

    /// Checks `username` / `password` against the directory. `Ok(None)`: unknown user or wrong
    /// password (the caller says the same thing for both); `Err`: the directory could not be
    /// asked (unreachable, service bind refused).
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<DirectoryUser>, String> {
        // An empty password is an unauthenticated bind (RFC 4513 §5.1.2): it "succeeds" on many
        // servers. Never send one.
        if password.is_empty() || username.is_empty() {
            return Ok(None);
        }
        let run = async {
            let settings = LdapConnSettings::new()
                .set_starttls(self.starttls)
                .set_conn_timeout(self.timeout);
            let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
                .await
                .map_err(|e| format!("cannot reach {}: {e}", self.url))?;
            ldap3::drive!(conn);
            if let (Some(dn), Some(pw)) = (&self.bind_dn, &self.bind_password) {
                ldap.simple_bind(dn, pw.expose())
                    .await
                    .and_then(|r| r.success())
                    .map_err(|e| format!("the service bind as {dn} was refused: {e}"))?;
            }
            let filter = self
                .user_filter
                .replace("{username}", &ldap_escape(username));
            let (found, _) = ldap
                .search(
                    &self.base_dn,
                    Scope::Subtree,
                    &filter,
                    vec!["cn", "displayName", "mail", "memberOf"],
                )
                .await
                .and_then(|r| r.success())
                .map_err(|e| format!("user search failed: {e}"))?;
            let mut entries: Vec<SearchEntry> =
                found.into_iter().map(SearchEntry::construct).collect();
            if entries.len() != 1 {
                let _ = ldap.unbind().await;
                return Ok(None);
            }
            let Some(entry) = entries.pop() else {
                return Ok(None);
            };
            let bound = ldap
                .simple_bind(&entry.dn, password)
                .await
                .map_err(|e| format!("bind: {e}"))?;
            if bound.rc != 0 {
                let _ = ldap.unbind().await;
                return Ok(None);
            }
            let mut groups: Vec<String> = entry
                .attrs
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("memberOf"))
                .flat_map(|(_, v)| v.iter())
                .filter_map(|g| self.map_group(g))
                .collect();
            if let Some(base) = &self.group_base_dn {
                // Read groups as the service account when there is one (users may not see them).
                if let (Some(dn), Some(pw)) = (&self.bind_dn, &self.bind_password) {
                    ldap.simple_bind(dn, pw.expose())
                        .await
                        .and_then(|r| r.success())
                        .map_err(|e| format!("the service bind as {dn} was refused: {e}"))?;
                }
                let filter = self.group_filter.replace("{dn}", &ldap_escape(&entry.dn));
                let (found, _) = ldap
                    .search(base, Scope::Subtree, &filter, vec!["cn"])
                    .await
                    .and_then(|r| r.success())
                    .map_err(|e| format!("group search failed: {e}"))?;
                for g in found.into_iter().map(SearchEntry::construct) {
                    if let Some(m) = self.map_group(&g.dn) {
                        groups.push(m);
                    }
                }
            }
            groups.sort();
            groups.dedup();
            let _ = ldap.unbind().await;
            Ok(Some(DirectoryUser {
                display_name: first(&entry, &["displayName", "cn"]),
                email: first(&entry, &["mail"]),
                dn: entry.dn,
                groups,
            }))
        };
        match tokio::time::timeout(self.timeout * 3, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("{} did not answer in time", self.url)),
        }
    }
}

impl Ldap {
    /// Everyone the directory lists, for a sync: one paged search for the users (the user
    /// filter with `{username}` as `*`), one for the groups under `group_base_dn` (their
    /// `member` / `uniqueMember`, plus each user's `memberOf`), one for the disabled. Entries
    /// whose username is not a valid Gatehouse username are left out.
    pub async fn list_users(&self) -> Result<Listing, String> {
        let run = async {
            let settings = LdapConnSettings::new()
                .set_starttls(self.starttls)
                .set_conn_timeout(self.timeout);
            let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
                .await
                .map_err(|e| format!("cannot reach {}: {e}", self.url))?;
            ldap3::drive!(conn);
            if let (Some(dn), Some(pw)) = (&self.bind_dn, &self.bind_password) {
                ldap.simple_bind(dn, pw.expose())
                    .await
                    .and_then(|r| r.success())
                    .map_err(|e| format!("the service bind as {dn} was refused: {e}"))?;
            }
            let everyone = self.user_filter.replace("{username}", "*");
            let attr = self.username_attribute.as_str();
            let users = paged(
                &mut ldap,
                &self.base_dn,
                &everyone,
                vec![attr, "cn", "displayName", "mail", "memberOf"],
            )
            .await?;
            let mut by_dn: BTreeMap<String, usize> = BTreeMap::new();
            let mut entries: Vec<Entry> = Vec::new();
            for u in users {
                let Some(name) = first(&u, &[attr])
                    .and_then(|v| gatehouse_broker::identity::directory::username_from(&v).ok())
                else {
                    continue;
                };
                let groups = u
                    .attrs
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("memberOf"))
                    .flat_map(|(_, v)| v.iter())
                    .filter_map(|g| self.map_group(g))
                    .collect();
                by_dn.insert(u.dn.to_ascii_lowercase(), entries.len());
                entries.push(Entry {
                    username: name,
                    display_name: first(&u, &["displayName", "cn"]),
                    email: first(&u, &["mail"]),
                    dn: u.dn,
                    groups,
                    disabled: false,
                });
            }
            if let Some(base) = &self.group_base_dn {
                let groups = paged(
                    &mut ldap,
                    base,
                    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))",
                    vec!["cn", "member", "uniqueMember"],
                )
                .await?;
                for g in groups {
                    let Some(mapped) = self.map_group(&g.dn) else {
                        continue;
                    };
                    for (k, members) in &g.attrs {
                        if !(k.eq_ignore_ascii_case("member")
                            || k.eq_ignore_ascii_case("uniqueMember"))
                        {
                            continue;
                        }
                        for m in members {
                            if let Some(i) = by_dn.get(&m.to_ascii_lowercase()) {
                                entries[*i].groups.push(mapped.clone());
                            }
                        }
                    }
                }
            }
            if let Some(disabled) = &self.disabled_filter {
                let filter = format!("(&{everyone}{disabled})");
                for u in paged(&mut ldap, &self.base_dn, &filter, vec![attr]).await? {
                    if let Some(i) = by_dn.get(&u.dn.to_ascii_lowercase()) {
                        entries[*i].disabled = true;
                    }
                }
            }
            for e in &mut entries {
                e.groups.sort();
                e.groups.dedup();
            }
            let _ = ldap.unbind().await;
            Ok(Listing {
                source: "ldap".into(),
                entries,
                mapped: self.mapped_groups(),
                create: self.create_identities,
            })
        };
        match tokio::time::timeout(self.timeout * 12, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("{} did not answer the sync in time", self.url)),
        }
    }
}

/// A subtree search in pages of 500 (directories cap unpaged answers, Active Directory at
/// 1000 entries).
async fn paged(
    ldap: &mut ldap3::Ldap,
    base: &str,
    filter: &str,
    attrs: Vec<&str>,
) -> Result<Vec<SearchEntry>, String> {
    use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(500)),
    ];
    let mut search = ldap
        .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs)
        .await
        .map_err(|e| format!("search {filter} under {base} failed: {e}"))?;
    let mut out = Vec::new();
    while let Some(e) = search
        .next()
        .await
        .map_err(|e| format!("search {filter} under {base} failed: {e}"))?
    {
        out.push(SearchEntry::construct(e));
    }
    search
        .finish()
        .await
        .success()
        .map_err(|e| format!("search {filter} under {base} failed: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn security_ldap_never_binds_with_an_empty_password() {
        // An empty password would be an unauthenticated bind that many servers accept. The
        // URL is unreachable: answering at all proves nothing was sent.
        let l = Ldap {
            url: "ldap://127.0.0.1:1".into(),
            starttls: false,
            bind_dn: None,
            bind_password: None,
            base_dn: "dc=x".into(),
            user_filter: "(uid={username})".into(),
            group_base_dn: None,
            group_filter: String::new(),
            group_mapping: BTreeMap::new(),
            create_identities: true,
            timeout: Duration::from_secs(1),
            username_attribute: "uid".into(),
            disabled_filter: None,
        };
        assert_eq!(l.authenticate("lea", "").await, Ok(None));
        assert!(
            l.authenticate("lea", "x").await.is_err(),
            "unreachable: an error, not a yes"
        );
    }

    #[test]
    fn groups_map_by_cn_or_dn_in_any_case() {
        let l = Ldap {
            url: String::new(),
            starttls: false,
            bind_dn: None,
            bind_password: None,
            base_dn: String::new(),
            user_filter: String::new(),
            group_base_dn: None,
            group_filter: String::new(),
            group_mapping: [
                ("DBAs".to_string(), "dbas".to_string()),
                ("cn=ops,ou=groups,dc=x".to_string(), "ops".to_string()),
            ]
            .into(),
            create_identities: true,
            timeout: Duration::from_secs(1),
            username_attribute: "uid".into(),
            disabled_filter: None,
        };
        assert_eq!(
            l.map_group("cn=dbas,ou=groups,dc=x").as_deref(),
            Some("dbas")
        );
        assert_eq!(l.map_group("CN=Ops,OU=Groups,DC=x").as_deref(), Some("ops"));
        assert_eq!(l.map_group("cn=ops,ou=groups,dc=x").as_deref(), Some("ops"));
        assert_eq!(l.map_group("cn=other,dc=x"), None);
    }
}
