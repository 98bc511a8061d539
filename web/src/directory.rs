//! LDAP / Active Directory sign-in (ldap3): the user's entry is found with a service bind (or
//! anonymously), the password is checked by binding as that entry, and the user's groups are
//! read for the group mapping. Only the directory says whether a password is right; Gatehouse
//! never sees or stores it beyond the bind.

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
    /// Create the identity at its first sign-in (else only existing identities may sign in).
    pub create_identities: bool,
    pub timeout: Duration,
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
