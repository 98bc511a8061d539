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
      method: String,
      path: String,
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
    /// An app request's method and path (empty for SSH).
    pub method: &'a str,
    pub path: &'a str,
}

/// The context attributes, in the order of the bits of [`Condition::reads`].
const CONTEXT_FIELDS: [&str; 13] = [
    "login",
    "protocol",
    "now",
    "hour",
    "weekday",
    "source_ip",
    "has_source_ip",
    "mfa",
    "mfa_age_seconds",
    "reason",
    "ticket",
    "method",
    "path",
];

/// Every context attribute.
pub const READS_ALL: u16 = (1 << CONTEXT_FIELDS.len()) - 1;

fn field_bit(name: &str) -> u16 {
    CONTEXT_FIELDS
        .iter()
        .position(|f| *f == name)
        .map_or(READS_ALL, |i| 1 << i)
}

/// A role's condition, compiled, with the context attributes it reads (a decision builds only
/// those: building the context is most of the cost of a Cedar evaluation, and the `ip` value
/// alone costs more than the evaluation).
#[derive(Debug, Clone)]
pub struct Condition {
    pub policies: PolicySet,
    /// A bit per [`CONTEXT_FIELDS`] entry; [`READS_ALL`] when `context` is used as a whole.
    pub reads: u16,
}

impl Condition {
    pub fn compile(role: &str, condition: &str) -> Result<Self> {
        let policies = compile(role, condition)?;
        let reads = context_reads(&policies);
        Ok(Condition { policies, reads })
    }
}

/// Which context attributes a policy set reads: `context.x`, `context["x"]` and `context has x`
/// name one; any other use of `context` (or a policy that cannot be read back) reads them all.
pub fn context_reads(policies: &PolicySet) -> u16 {
    let mut mask = 0;
    for p in policies.policies() {
        match p.to_json() {
            Ok(json) => walk_context_reads(&json, &mut mask),
            Err(_) => return READS_ALL,
        }
    }
    mask
}

fn walk_context_reads(v: &Value, mask: &mut u16) {
    match v {
        Value::Object(m) => {
            if m.get("Var").and_then(Value::as_str) == Some("context") {
                *mask = READS_ALL;
                return;
            }
            for op in [".", "has"] {
                if let Some(inner) = m.get(op).and_then(Value::as_object) {
                    let on_context = inner
                        .get("left")
                        .and_then(|l| l.get("Var"))
                        .and_then(Value::as_str)
                        == Some("context");
                    if on_context {
                        *mask |= inner
                            .get("attr")
                            .and_then(Value::as_str)
                            .map_or(READS_ALL, field_bit);
                        return;
                    }
                }
            }
            m.values().for_each(|x| walk_context_reads(x, mask));
        }
        Value::Array(a) => a.iter().for_each(|x| walk_context_reads(x, mask)),
        _ => {}
    }
}

fn context(f: &ContextFacts<'_>, reads: u16) -> Result<Context> {
    use chrono::{Datelike, Timelike};
    let now = crate::clock::from_ms(f.now_ms);
    let mfa_age = f.mfa_at_ms.map(|t| (f.now_ms - t).max(0) / 1000);
    let mut pairs: Vec<(String, RestrictedExpression)> = Vec::with_capacity(CONTEXT_FIELDS.len());
    for (i, name) in CONTEXT_FIELDS.iter().enumerate() {
        if reads & (1 << i) == 0 {
            continue;
        }
        let value = match *name {
            "login" => RestrictedExpression::new_string(f.login.into()),
            "protocol" => RestrictedExpression::new_string(f.protocol.into()),
            "now" => RestrictedExpression::new_long(f.now_ms / 1000),
            "hour" => RestrictedExpression::new_long(i64::from(now.hour())),
            "weekday" => {
                RestrictedExpression::new_long(i64::from(now.weekday().number_from_monday()))
            }
            "source_ip" => ip_value(f.source_ip),
            "has_source_ip" => RestrictedExpression::new_bool(f.source_ip.is_some()),
            "mfa" => RestrictedExpression::new_bool(mfa_age.is_some()),
            "mfa_age_seconds" => RestrictedExpression::new_long(mfa_age.unwrap_or(i64::MAX)),
            "reason" => RestrictedExpression::new_string(f.reason.into()),
            "method" => RestrictedExpression::new_string(f.method.into()),
            "path" => RestrictedExpression::new_string(f.path.into()),
            _ => RestrictedExpression::new_string(f.ticket.into()),
        };
        pairs.push(((*name).to_string(), value));
    }
    Context::from_pairs(pairs).map_err(|e| Error::Storage(format!("Cedar context: {e}")))
}

/// The Cedar `ip` value of a source address. Building one parses the extension's name with
/// Cedar's grammar each time (more than a whole evaluation costs), so each thread keeps the
/// addresses it saw last (at most 1,024; forgotten all at once when full).
fn ip_value(ip: Option<std::net::IpAddr>) -> RestrictedExpression {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static SEEN: RefCell<HashMap<Option<std::net::IpAddr>, RestrictedExpression>> =
            RefCell::new(HashMap::new());
    }
    SEEN.with_borrow_mut(|seen| {
        if let Some(e) = seen.get(&ip) {
            return e.clone();
        }
        if seen.len() >= 1024 {
            seen.clear();
        }
        let e = RestrictedExpression::new_ip(
            ip.map(|i| i.to_string())
                .unwrap_or_else(|| "0.0.0.0".into()),
        );
        seen.insert(ip, e.clone());
        e
    })
}

fn action() -> Result<&'static EntityUid> {
    static ACTION: OnceLock<std::result::Result<EntityUid, String>> = OnceLock::new();
    ACTION
        .get_or_init(|| uid("Gatehouse::Action", "access").map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Storage(e.clone()))
}

fn request(
    principal: &Entity,
    resource: &Entity,
    facts: &ContextFacts<'_>,
    reads: u16,
) -> Result<Request> {
    Request::new(
        principal.uid(),
        action()?.clone(),
        resource.uid(),
        context(facts, reads)?,
        None,
    )
    .map_err(|e| Error::Storage(format!("Cedar request: {e}")))
}

fn verdict(
    policies: &PolicySet,
    request: &Request,
    entities: &Entities,
) -> std::result::Result<(), String> {
    let response = Authorizer::new().is_authorized(request, policies, entities);
    let errors: Vec<String> = response.diagnostics().errors().map(one_line).collect();
    match response.decision() {
        CedarDecision::Allow => Ok(()),
        CedarDecision::Deny if errors.is_empty() => Err("condition not met".into()),
        CedarDecision::Deny => Err(format!("condition failed: {}", errors.join("; "))),
    }
}

/// The Cedar side of one decision: the principal and the resource are fixed, and each Cedar
/// request (one per set of context attributes read and login) is built once, however many roles'
/// conditions are evaluated.
pub struct Evaluations<'a> {
    principal: &'a Entity,
    resource: &'a Entity,
    entities: &'a Entities,
    built: Vec<(u16, String, Request)>,
}

impl<'a> Evaluations<'a> {
    pub fn new(principal: &'a Entity, resource: &'a Entity, entities: &'a Entities) -> Self {
        Evaluations {
            principal,
            resource,
            entities,
            built: Vec::new(),
        }
    }

    /// `Ok(())` when the condition holds, else why not (an evaluation error is a "no").
    pub fn check(
        &mut self,
        condition: &Condition,
        facts: &ContextFacts<'_>,
    ) -> std::result::Result<(), String> {
        // The login matters only to a condition that reads it.
        let login = if condition.reads & 1 == 0 {
            ""
        } else {
            facts.login
        };
        let found = self
            .built
            .iter()
            .position(|(r, l, _)| *r == condition.reads && l == login);
        let index = match found {
            Some(i) => i,
            None => {
                let req = request(self.principal, self.resource, facts, condition.reads)
                    .map_err(|e| e.to_string())?;
                self.built.push((condition.reads, login.to_string(), req));
                self.built.len() - 1
            }
        };
        let (_, _, req) = &self.built[index];
        verdict(&condition.policies, req, self.entities)
    }
}

/// Evaluates a compiled condition on its own, entities and the whole context built for the call
/// (the benchmark's "Cedar alone" anchor and the tests use it; decisions go through
/// [`Evaluations`]). `Ok(())` when it holds, else the reason it does not (an evaluation error
/// counts as "does not hold": fail closed).
pub fn evaluate(
    policies: &PolicySet,
    principal: &Entity,
    resource: &Entity,
    facts: &ContextFacts<'_>,
) -> std::result::Result<(), String> {
    let entities = Entities::from_entities([principal.clone(), resource.clone()], None)
        .map_err(|e| format!("Cedar entities: {e}"))?;
    let req = request(principal, resource, facts, READS_ALL).map_err(|e| e.to_string())?;
    verdict(policies, &req, &entities)
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
            method: "",
            path: "",
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

    #[test]
    fn app_conditions_read_the_method_and_path() {
        let alice = identity_entity("alice", &Map::new(), &[]).unwrap();
        let app = target_entity("grafana", "http", &Map::new()).unwrap();
        let read_only = Condition::compile(
            "r",
            r#"context.method == "GET" && !(context.path like "/admin*")"#,
        )
        .unwrap();
        let at = |method: &'static str, path: &'static str| {
            let facts = ContextFacts {
                login: "",
                protocol: "http",
                now_ms: 1_700_000_000_000,
                source_ip: None,
                mfa_at_ms: None,
                reason: "",
                ticket: "",
                method,
                path,
            };
            let entities = Entities::empty();
            let mut ev = Evaluations::new(&alice, &app, &entities);
            ev.check(&read_only, &facts).is_ok()
        };
        assert!(at("GET", "/d/home"));
        assert!(!at("POST", "/d/home"));
        assert!(!at("GET", "/admin/users"));
    }

    #[test]
    fn a_condition_reads_only_the_context_it_names() {
        let reads = |c: &str| Condition::compile("r", c).unwrap().reads;
        assert_eq!(reads(r#"principal.employment_type == "employee""#), 0);
        assert_eq!(
            reads("context.hour >= 6 && context.hour < 22"),
            field_bit("hour")
        );
        assert_eq!(
            reads(r#"context.source_ip.isInRange(ip("10.0.0.0/8")) || context has ticket"#),
            field_bit("source_ip") | field_bit("ticket")
        );
        assert_eq!(reads(r#"context["mfa"]"#), field_bit("mfa"));
        assert_eq!(reads(r#"context == {"login": "x"}"#), READS_ALL);
        assert_eq!(reads("context.shoe_size == 1"), READS_ALL);
    }

    #[test]
    fn evaluating_with_only_the_context_read_gives_the_same_answer() {
        let alice = identity_entity(
            "alice",
            &obj(json!({"department": "engineering", "location": "paris"})),
            &["g1".into()],
        )
        .unwrap();
        let db = target_entity("db-01", "ssh", &obj(json!({"env": "prod"}))).unwrap();
        let entities = entity_store([alice.clone(), db.clone()]).unwrap();
        for (login, ip) in [("root", "10.1.2.3"), ("svc", "192.168.1.1")] {
            let facts = ContextFacts {
                login,
                protocol: "ssh",
                now_ms: 1_700_000_000_000,
                source_ip: Some(ip.parse().unwrap()),
                mfa_at_ms: Some(1_700_000_000_000 - 60_000),
                reason: "",
                ticket: "T-1",
                method: "",
                path: "",
            };
            let mut ev = Evaluations::new(&alice, &db, &entities);
            for c in [
                r#"principal.location == "paris""#,
                r#"context.login == "root""#,
                r#"context.source_ip.isInRange(ip("10.0.0.0/8")) && principal.groups.contains("g1")"#,
                "context.mfa && context.mfa_age_seconds < 300 && context.hour >= 0",
                r#"context.ticket != "" && resource.getTag("env") == "prod""#,
                r#"context.reason == "x""#,
            ] {
                let cond = Condition::compile("r", c).unwrap();
                let whole = evaluate(&cond.policies, &alice, &db, &facts).is_ok();
                assert_eq!(ev.check(&cond, &facts).is_ok(), whole, "{c} with {login}");
            }
        }
    }
}
