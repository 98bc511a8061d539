//! The policy-as-code document (`gatehouse apply FILE`): identities, groups, targets, roles,
//! assignments and SoD rules as TOML. The same shapes are the API's request bodies. The format
//! is documented, with a complete example, in docs/policy-as-code.md.

use crate::access::assignments::{Kind as AssignmentKind, NewAssignment, Subject};
use crate::access::requests::parse_duration;
use crate::access::role_spec::{ApproverSet, RoleSpec, TargetSelector};
use crate::access::targets::{Kind as TargetKind, NewTarget};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[serde(default)]
    pub identities: Vec<IdentityDoc>,
    #[serde(default)]
    pub groups: Vec<GroupDoc>,
    #[serde(default)]
    pub targets: Vec<TargetDoc>,
    #[serde(default)]
    pub roles: Vec<RoleDoc>,
    #[serde(default)]
    pub assignments: Vec<AssignmentDoc>,
    #[serde(default)]
    pub sod_rules: Vec<SodRuleDoc>,
    /// Access review campaign definitions (`[[reviews]]`).
    #[serde(default)]
    pub reviews: Vec<crate::governance::campaigns::ReviewDoc>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityDoc {
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// When present, the identity's keys are exactly these.
    #[serde(default)]
    pub ssh_keys: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDoc {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// When present, the members are exactly these usernames.
    #[serde(default)]
    pub members: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDoc {
    pub name: String,
    #[serde(default = "ssh")]
    pub kind: String,
    pub address: String,
    #[serde(default)]
    pub host_key: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub description: String,
    /// App gateway settings of an `http` target (`app = { user_header = "X-WEBAUTH-USER" }`).
    #[serde(default)]
    pub app: crate::access::targets::AppSettings,
}

fn ssh() -> String {
    "ssh".into()
}

impl TargetDoc {
    /// As the repository takes it.
    pub fn to_new(&self, source: &str) -> Result<NewTarget> {
        Ok(NewTarget {
            name: self.name.clone(),
            kind: TargetKind::parse(&self.kind)?,
            address: self.address.clone(),
            labels: self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
            host_key: self.host_key.clone(),
            description: self.description.clone(),
            owner: self.owner.clone(),
            source: source.into(),
            app: self.app.clone(),
        })
    }
}

/// A role as written by people: durations as text (`4h`), everything optional but the name.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDoc {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub targets: TargetSelector,
    #[serde(default)]
    pub logins: Vec<String>,
    #[serde(default)]
    pub protocols: Vec<String>,
    #[serde(default)]
    pub max_duration: Option<String>,
    #[serde(default)]
    pub requestable_by: Vec<String>,
    #[serde(default)]
    pub approvals: Vec<ApproverSet>,
    #[serde(default)]
    pub require_reason: bool,
    #[serde(default)]
    pub require_ticket: bool,
    #[serde(default)]
    pub approval_requires_mfa: bool,
    #[serde(default)]
    pub approval_mfa_max_age: Option<String>,
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub break_glass: bool,
    #[serde(default)]
    pub request_ttl: Option<String>,
    #[serde(default)]
    pub port_forwarding: bool,
    #[serde(default)]
    pub session_mfa: bool,
    /// Birthright rule: attribute → accepted values (see `RoleSpec::birthright`).
    #[serde(default)]
    pub birthright: std::collections::BTreeMap<String, Vec<String>>,
    /// Who answers for the role in access reviews: a username or `group:NAME`.
    #[serde(default)]
    pub owner: Option<String>,
}

impl RoleDoc {
    /// The stored spec.
    pub fn to_spec(&self) -> Result<RoleSpec> {
        let d = RoleSpec::default();
        let dur = |s: &Option<String>, default: i64, what: &str| match s {
            Some(s) => parse_duration(s)
                .map_err(|e| Error::invalid(format!("role {} {what}: {e}", self.name))),
            None => Ok(default),
        };
        let spec = RoleSpec {
            targets: self.targets.clone(),
            logins: self.logins.clone(),
            protocols: self.protocols.clone(),
            max_duration_ms: dur(&self.max_duration, d.max_duration_ms, "max_duration")?,
            requestable_by: self.requestable_by.clone(),
            approvals: self.approvals.clone(),
            require_reason: self.require_reason,
            require_ticket: self.require_ticket,
            approval_requires_mfa: self.approval_requires_mfa,
            approval_mfa_max_age_ms: dur(
                &self.approval_mfa_max_age,
                d.approval_mfa_max_age_ms,
                "approval_mfa_max_age",
            )?,
            condition: self.condition.clone().filter(|c| !c.trim().is_empty()),
            break_glass: self.break_glass,
            request_ttl_ms: dur(&self.request_ttl, d.request_ttl_ms, "request_ttl")?,
            port_forwarding: self.port_forwarding,
            session_mfa: self.session_mfa,
            birthright: self.birthright.clone(),
            owner: self.owner.clone().filter(|o| !o.trim().is_empty()),
        };
        crate::access::roles::validate_name(&self.name)?;
        spec.check(&self.name)?;
        crate::access::policy::cedar::check_condition(&self.name, spec.condition.as_deref())?;
        Ok(spec)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentDoc {
    pub role: String,
    /// `group:NAME` or a username.
    pub to: String,
    /// `standing` or `eligible`.
    #[serde(default = "eligible")]
    pub kind: String,
    /// RFC 3339 or a date (`2027-01-01`).
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
}

fn eligible() -> String {
    "eligible".into()
}

/// Parses RFC 3339 or a plain date (midnight UTC).
pub fn parse_instant(s: &str) -> Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| {
            Error::invalid(format!(
                "time {s:?}: use RFC 3339 (2027-01-01T00:00:00Z) or a date (2027-01-01)"
            ))
        })
}

impl AssignmentDoc {
    /// As the repository takes it.
    pub fn to_new(&self, source: &str) -> Result<NewAssignment> {
        Ok(NewAssignment {
            role: self.role.clone(),
            subject: Subject::parse(&self.to)?,
            kind: AssignmentKind::parse(&self.kind)?,
            not_before_ms: self.from.as_deref().map(parse_instant).transpose()?,
            not_after_ms: self.until.as_deref().map(parse_instant).transpose()?,
            source: source.into(),
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SodRuleDoc {
    pub name: String,
    pub left: Vec<String>,
    pub right: Vec<String>,
    #[serde(default)]
    pub description: String,
}

/// Parses the TOML text; errors name the line and column (`FILE:LINE:COL: message`).
pub fn parse(file: &str, text: &str) -> Result<Document> {
    toml::from_str::<Document>(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                format!("{file}:{line}:{col}")
            })
            .unwrap_or_else(|| file.to_string());
        Error::invalid(format!("{at}: {}", e.message()))
    })
}
