//! Cedar: the schema roles' conditions are checked against, compiling a condition into a policy,
//! and the entities and context a decision evaluates. A role's `condition` is the body of a
//! `when { ... }` clause over `principal` (an identity), `resource` (a target) and `context`.

use crate::error::{Error, Result};
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode,
    Validator,
};
use serde_json::{Map, Value};
use std::str::FromStr;
use std::sync::OnceLock;

/// The Cedar schema of Gatehouse decisions. Identity attributes that Gatehouse knows are plain
/// attributes (empty when unknown); every attribute, and every target label, is also a tag
/// (`principal.getTag("cost_center")`, `resource.getTag("env")`).
pub const SCHEMA: &str = r#"
namespace Gatehouse {
  entity Identity {
    username: String,
    department: String,
    title: String,
    employment_type: String,
    manager: String,
    location: String,
    groups: Set<String>,
  } tags String;
  entity Target {
    name: String,
    kind: String,
  } tags String;
  action "access" appliesTo {
    principal: [Identity],
    resource: [Target],
    context: {
      login: String,
      protocol: String,
      now: Long,
      hour: Long,
      weekday: Long,
      source_ip: ipaddr,
      has_source_ip: Bool,
      mfa: Bool,
      mfa_age_seconds: Long,
      reason: String,
      ticket: String,
    }
  };
}
"#;

/// Identity attributes that are also first-class Cedar attributes.
pub const IDENTITY_ATTRIBUTES: [&str; 5] = [
    "department",
    "title",
    "employment_type",
    "manager",
    "location",
];

fn schema() -> Result<&'static Schema> {
    static SCHEMA_CELL: OnceLock<std::result::Result<Schema, String>> = OnceLock::new();
    SCHEMA_CELL
        .get_or_init(|| {
            Schema::from_cedarschema_str(SCHEMA)
                .map(|(s, _warnings)| s)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Storage(format!("built-in Cedar schema: {e}")))
}

/// The Cedar text of a role's condition.
pub fn policy_text(condition: &str) -> String {
    format!("permit(principal, action, resource) when {{ {condition} }};")
}

/// Compiles a condition into a policy set of one policy, without the schema check.
pub fn compile(role: &str, condition: &str) -> Result<PolicySet> {
    let policy = Policy::parse(Some(PolicyId::new(role)), policy_text(condition))
        .map_err(|e| Error::invalid(format!("role {role} condition: {}", one_line(&e))))?;
    let mut set = PolicySet::new();
    set.add(policy)
        .map_err(|e| Error::invalid(format!("role {role} condition: {e}")))?;
    Ok(set)
}

/// Checks a condition: it parses, and it type-checks against [`SCHEMA`] (strict mode, so an
/// unknown attribute or a string compared with a number is caught before it reaches a decision).
pub fn check_condition(role: &str, condition: Option<&str>) -> Result<()> {
    let Some(condition) = condition else {
        return Ok(());
    };
    if condition.trim().is_empty() {
        return Err(Error::invalid(format!("role {role} condition is empty")));
    }
    let set = compile(role, condition)?;
    let result = Validator::new(schema()?.clone()).validate(&set, ValidationMode::Strict);
    if !result.validation_passed() {
        let errors: Vec<String> = result.validation_errors().map(|e| e.to_string()).collect();
        return Err(Error::invalid(format!(
            "role {role} condition: {}",
            errors.join("; ")
        )));
    }
    Ok(())
}

fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn uid(kind: &str, id: &str) -> Result<EntityUid> {
    let t = EntityTypeName::from_str(kind)
        .map_err(|e| Error::Storage(format!("Cedar type {kind}: {e}")))?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

fn string_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One entity store from many entities.
pub fn entity_store(all: impl IntoIterator<Item = Entity>) -> Result<Entities> {
    Entities::from_entities(all, None).map_err(|e| Error::Storage(format!("Cedar entities: {e}")))
}

/// The Cedar entity of an identity.
pub fn identity_entity(
    username: &str,
    attributes: &Map<String, Value>,
    groups: &[String],
) -> Result<Entity> {
    let mut attrs: Vec<(String, RestrictedExpression)> = vec![
        (
            "username".into(),
            RestrictedExpression::new_string(username.into()),
        ),
        (
            "groups".into(),
            RestrictedExpression::new_set(
                groups
                    .iter()
                    .map(|g| RestrictedExpression::new_string(g.clone())),
            ),
        ),
    ];
    for a in IDENTITY_ATTRIBUTES {
        let v = attributes.get(a).map(string_of).unwrap_or_default();
        attrs.push((a.into(), RestrictedExpression::new_string(v)));
    }
    let tags = attributes
        .iter()
        .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(string_of(v))));
    Entity::new_with_tags(uid("Gatehouse::Identity", username)?, attrs, [], tags)
        .map_err(|e| Error::Storage(format!("identity {username} as a Cedar entity: {e}")))
}

/// The Cedar entity of a target.
pub fn target_entity(name: &str, kind: &str, labels: &Map<String, Value>) -> Result<Entity> {
    let attrs = [
        (
            "name".to_string(),
            RestrictedExpression::new_string(name.into()),
        ),
        (
            "kind".to_string(),
            RestrictedExpression::new_string(kind.into()),
        ),
    ];
    let tags = labels
        .iter()
        .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(string_of(v))));
    Entity::new_with_tags(uid("Gatehouse::Target", name)?, attrs, [], tags)
        .map_err(|e| Error::Storage(format!("target {name} as a Cedar entity: {e}")))
}

/// What the context of one decision holds.
#[derive(Debug, Clone, Default)]
pub struct ContextFacts<'a> {
    pub login: &'a str,
    pub protocol: &'a str,
    pub now_ms: i64,
    pub source_ip: Option<std::net::IpAddr>,
    pub mfa_at_ms: Option<i64>,
    pub reason: &'a str,
    pub ticket: &'a str,
}

fn context(f: &ContextFacts<'_>) -> Result<Context> {
    let now = crate::clock::from_ms(f.now_ms);
    use chrono::{Datelike, Timelike};
    let mfa_age = f.mfa_at_ms.map(|t| (f.now_ms - t).max(0) / 1000);
    let ip = f
        .source_ip
        .map(|i| i.to_string())
        .unwrap_or_else(|| "0.0.0.0".into());
    Context::from_pairs([
        (
            "login".into(),
            RestrictedExpression::new_string(f.login.into()),
        ),
        (
            "protocol".into(),
            RestrictedExpression::new_string(f.protocol.into()),
        ),
        (
            "now".into(),
            RestrictedExpression::new_long(f.now_ms / 1000),
        ),
        (
            "hour".into(),
            RestrictedExpression::new_long(i64::from(now.hour())),
        ),
        (
            "weekday".into(),
            RestrictedExpression::new_long(i64::from(now.weekday().number_from_monday())),
        ),
        ("source_ip".into(), RestrictedExpression::new_ip(ip)),
        (
            "has_source_ip".into(),
            RestrictedExpression::new_bool(f.source_ip.is_some()),
        ),
        (
            "mfa".into(),
            RestrictedExpression::new_bool(mfa_age.is_some()),
        ),
        (
            "mfa_age_seconds".into(),
            RestrictedExpression::new_long(mfa_age.unwrap_or(i64::MAX)),
        ),
        (
            "reason".into(),
            RestrictedExpression::new_string(f.reason.into()),
        ),
        (
            "ticket".into(),
            RestrictedExpression::new_string(f.ticket.into()),
        ),
    ])
    .map_err(|e| Error::Storage(format!("Cedar context: {e}")))
}

/// Evaluates a compiled condition: `Ok(())` when it holds, else the reason it does not (an
/// evaluation error counts as "does not hold": fail closed).
pub fn evaluate(
    policies: &PolicySet,
    principal: &Entity,
    resource: &Entity,
    facts: &ContextFacts<'_>,
) -> std::result::Result<(), String> {
    let entities = Entities::from_entities([principal.clone(), resource.clone()], None)
        .map_err(|e| format!("Cedar entities: {e}"))?;
    evaluate_in(policies, principal, resource, &entities, facts)
}

/// Evaluates a compiled condition against a prebuilt entity store holding both entities (the
/// decision cache keeps one for every identity and target, so nothing is copied per decision).
pub fn evaluate_in(
    policies: &PolicySet,
    principal: &Entity,
    resource: &Entity,
    entities: &Entities,
    facts: &ContextFacts<'_>,
) -> std::result::Result<(), String> {
    let request = (|| -> Result<Request> {
        Request::new(
            principal.uid(),
            uid("Gatehouse::Action", "access")?,
            resource.uid(),
            context(facts)?,
            None,
        )
        .map_err(|e| Error::Storage(format!("Cedar request: {e}")))
    })()
    .map_err(|e| e.to_string())?;
    let response = Authorizer::new().is_authorized(&request, policies, entities);
    let errors: Vec<String> = response.diagnostics().errors().map(one_line).collect();
    match response.decision() {
        CedarDecision::Allow => Ok(()),
        CedarDecision::Deny if errors.is_empty() => Err("condition not met".into()),
        CedarDecision::Deny => Err(format!("condition failed: {}", errors.join("; "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn schema_parses_and_conditions_are_type_checked() {
        schema().unwrap();
        check_condition("r", Some(r#"principal.employment_type == "employee""#)).unwrap();
        check_condition(
            "r",
            Some(r#"resource.hasTag("env") && resource.getTag("env") == "prod" && context.mfa_age_seconds < 300"#),
        )
        .unwrap();
        let e = check_condition("r", Some("principal.shoe_size == 42")).unwrap_err();
        assert!(e.to_string().contains("role r condition"), "{e}");
        let e = check_condition("r", Some("principal.department ==")).unwrap_err();
        assert!(e.to_string().contains("role r condition"), "{e}");
        assert!(check_condition("r", Some("  ")).is_err());
    }

    #[test]
    fn conditions_decide_over_attributes_labels_and_context() {
        let alice = identity_entity(
            "alice",
            &obj(json!({"department": "engineering", "employment_type": "employee", "cost_center": 42})),
            &["engineering".into()],
        )
        .unwrap();
        let db = target_entity("db-01", "ssh", &obj(json!({"env": "prod"}))).unwrap();
        let facts = ContextFacts {
            login: "postgres",
            protocol: "ssh",
            now_ms: 1_700_000_000_000,
            source_ip: Some("10.1.2.3".parse().unwrap()),
            mfa_at_ms: Some(1_700_000_000_000 - 60_000),
            reason: "INC-1",
            ticket: "",
        };
        let ok = |c: &str| evaluate(&compile("r", c).unwrap(), &alice, &db, &facts);
        assert!(ok(r#"principal.employment_type == "employee""#).is_ok());
        assert!(ok(r#"principal.employment_type == "contractor""#).is_err());
        assert!(ok(r#"principal.getTag("cost_center") == "42""#).is_ok());
        assert!(
            ok(r#"resource.getTag("env") == "prod" && principal.groups.contains("engineering")"#)
                .is_ok()
        );
        assert!(ok(r#"context.source_ip.isInRange(ip("10.0.0.0/8"))"#).is_ok());
        assert!(ok(r#"context.mfa && context.mfa_age_seconds < 300"#).is_ok());
        assert!(ok(r#"context.mfa_age_seconds < 30"#).is_err());
        // A runtime error (missing tag) is a deny that says why.
        let e = ok(r#"resource.getTag("missing") == "x""#).unwrap_err();
        assert!(e.contains("condition failed"), "{e}");
    }
}
