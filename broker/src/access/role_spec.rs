//! What a role grants and how it is obtained: the target selector, logins, protocols, the
//! request rules (who may ask, how long, reason, ticket), the approval policy, the Cedar condition
//! and the break-glass flag. Stored as JSON in `roles.spec`; plain data, checked by [`RoleSpec::check`].

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The default longest grant a role gives when it names none.
pub const DEFAULT_MAX_DURATION_MS: i64 = 60 * 60 * 1000;
/// How long a request may stay pending before it expires, unless the role says otherwise.
pub const DEFAULT_REQUEST_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// How recent a multi-factor check must be when a role requires MFA for approval.
pub const DEFAULT_APPROVAL_MFA_MAX_AGE_MS: i64 = 5 * 60 * 1000;
/// Break-glass grants never last longer than this, whatever the role says.
pub const BREAK_GLASS_CEILING_MS: i64 = 4 * 60 * 60 * 1000;

/// Which targets a role reaches: by name, or every target whose labels include all of `labels`.
/// Both may be given (either matches). An empty selector matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSelector {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl TargetSelector {
    /// Whether a target with this name and these labels is selected.
    pub fn matches(&self, name: &str, labels: &serde_json::Map<String, serde_json::Value>) -> bool {
        if self.names.iter().any(|n| n == name) {
            return true;
        }
        !self.labels.is_empty()
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).and_then(|l| l.as_str()) == Some(v.as_str()))
    }
}

/// One approver set of a role's approval policy: `count` distinct approvers from `from`.
/// `from` is `group:NAME`, `manager` (the requester's manager), `target_owner`, or a username.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverSet {
    pub from: String,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// Who may be an approver of a set, once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproverSource {
    Group(String),
    Manager,
    TargetOwner,
    Identity(String),
}

impl ApproverSet {
    /// Parses `from`.
    pub fn source(&self) -> Result<ApproverSource> {
        parse_approver(&self.from)
    }
}

/// Parses an approver set's `from`.
pub fn parse_approver(from: &str) -> Result<ApproverSource> {
    Ok(match from {
        "manager" => ApproverSource::Manager,
        "target_owner" => ApproverSource::TargetOwner,
        other => match other.strip_prefix("group:") {
            Some(g) => ApproverSource::Group(g.to_owned()),
            None => match other.strip_prefix("user:") {
                Some(u) => ApproverSource::Identity(u.to_owned()),
                None if crate::identity::identities::validate_username(other).is_ok() => {
                    ApproverSource::Identity(other.to_owned())
                }
                None => {
                    return Err(Error::invalid(format!(
                        "approver {other:?}: use \"group:NAME\", \"manager\", \"target_owner\" or a username"
                    )));
                }
            },
        },
    })
}

/// Everything a role says beyond its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleSpec {
    pub targets: TargetSelector,
    /// Accounts on the targets (`root`, `postgres`, ...). Empty: none (the role grants nothing).
    pub logins: Vec<String>,
    /// `ssh`, `http`. Empty means both.
    pub protocols: Vec<String>,
    /// Longest grant a request may ask for (ms).
    pub max_duration_ms: i64,
    /// Subjects (`group:NAME` or a username) who may request the role without holding an
    /// eligible assignment.
    pub requestable_by: Vec<String>,
    /// Approver sets, all of which must be satisfied (AND). Empty: self-activation (PIM-style).
    pub approvals: Vec<ApproverSet>,
    pub require_reason: bool,
    pub require_ticket: bool,
    /// Whether approvers must have passed a multi-factor check within the last
    /// `approval_mfa_max_age_ms`.
    pub approval_requires_mfa: bool,
    pub approval_mfa_max_age_ms: i64,
    /// A Cedar condition (the body of a `when { ... }` clause) over principal, resource, context.
    pub condition: Option<String>,
    /// Granted at once without approval, for at most `max_duration_ms` (capped at 4 h), with a
    /// mandatory reason, an alert and a post-review item.
    pub break_glass: bool,
    /// How long a request may stay pending (ms).
    pub request_ttl_ms: i64,
    /// Whether SSH local port forwarding is allowed.
    pub port_forwarding: bool,
    /// Sessions through this role need a second factor at login (SSH: a TOTP prompt).
    pub session_mfa: bool,
    /// Birthright: identities whose attributes match every entry (attribute → accepted values)
    /// hold this role as a standing assignment, kept in step by the lifecycle engine. Empty:
    /// not a birthright role.
    pub birthright: std::collections::BTreeMap<String, Vec<String>>,
    /// Who answers for the role in access reviews (`role_owner` reviewers): a username or
    /// `group:NAME`. None: reviews fall back to their fallback reviewer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl RoleSpec {
    /// Whether attributes match the birthright rule (never for a role without one).
    pub fn birthright_matches(
        &self,
        attributes: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        !self.birthright.is_empty()
            && self.birthright.iter().all(|(k, accepted)| {
                attributes
                    .get(k)
                    .and_then(|v| v.as_str())
                    .is_some_and(|v| accepted.iter().any(|a| a == v))
            })
    }
}

impl Default for RoleSpec {
    fn default() -> Self {
        Self {
            targets: TargetSelector::default(),
            logins: Vec::new(),
            protocols: Vec::new(),
            max_duration_ms: DEFAULT_MAX_DURATION_MS,
            requestable_by: Vec::new(),
            approvals: Vec::new(),
            require_reason: false,
            require_ticket: false,
            approval_requires_mfa: false,
            approval_mfa_max_age_ms: DEFAULT_APPROVAL_MFA_MAX_AGE_MS,
            condition: None,
            break_glass: false,
            request_ttl_ms: DEFAULT_REQUEST_TTL_MS,
            port_forwarding: false,
            session_mfa: false,
            birthright: Default::default(),
            owner: None,
        }
    }
}

impl RoleSpec {
    /// Checks the spec's own consistency (the condition is compiled separately, by the policy
    /// module, against the Cedar schema).
    pub fn check(&self, role: &str) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(format!("role {role}: {m}")));
        if self.max_duration_ms <= 0 {
            return bad("max_duration must be positive".into());
        }
        if self.request_ttl_ms <= 0 {
            return bad("request_ttl must be positive".into());
        }
        for p in &self.protocols {
            if p != "ssh" && p != "http" {
                return bad(format!("protocol {p:?}: use \"ssh\" or \"http\""));
            }
        }
        for l in &self.logins {
            if l.is_empty() || l.contains(['@', ' ', '/']) {
                return bad(format!("login {l:?} is not a valid account name"));
            }
        }
        for a in &self.approvals {
            if a.count == 0 {
                return bad(format!(
                    "approver set {:?} needs a count of at least 1",
                    a.from
                ));
            }
            if let Err(e) = a.source() {
                return bad(e.to_string().replace("invalid input: ", ""));
            }
        }
        for s in &self.requestable_by {
            if let Err(e) = crate::access::assignments::Subject::parse(s) {
                return bad(e.to_string().replace("invalid input: ", ""));
            }
        }
        Ok(())
    }

    /// Whether the role serves `protocol` (`ssh` / `http`).
    pub fn allows_protocol(&self, protocol: &str) -> bool {
        self.protocols.is_empty() || self.protocols.iter().any(|p| p == protocol)
    }

    /// The longest grant this role gives by the route named.
    pub fn ceiling_ms(&self) -> i64 {
        if self.break_glass {
            self.max_duration_ms.min(BREAK_GLASS_CEILING_MS)
        } else {
            self.max_duration_ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selector_matches_by_name_or_every_label() {
        let s = TargetSelector {
            names: vec!["web-01".into()],
            labels: [("env".into(), "prod".into()), ("tier".into(), "db".into())].into(),
        };
        let labels = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
        assert!(s.matches("web-01", &labels(json!({}))));
        assert!(s.matches(
            "db-01",
            &labels(json!({"env": "prod", "tier": "db", "x": "y"}))
        ));
        assert!(!s.matches("db-02", &labels(json!({"env": "prod"}))));
        assert!(!TargetSelector::default().matches("db-01", &labels(json!({}))));
    }

    #[test]
    fn approvers_parse() {
        assert_eq!(
            parse_approver("group:db-owners").unwrap(),
            ApproverSource::Group("db-owners".into())
        );
        assert_eq!(parse_approver("manager").unwrap(), ApproverSource::Manager);
        assert_eq!(
            parse_approver("bob").unwrap(),
            ApproverSource::Identity("bob".into())
        );
        assert!(parse_approver("Group:X Y").is_err());
    }
}
