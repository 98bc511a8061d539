//! Resource documents in and out: input checked and normalised against the schema (names in
//! their canonical case, types checked, read-only attributes dropped, the password taken out so
//! it is never stored), and output projected by `returned`, `attributes` and
//! `excludedAttributes` (RFC 7643 §7, RFC 7644 §3.4.2.5 and §3.9).

use crate::error::{Result, ScimError};
use crate::filter::{AttrPath, get_ci};
use crate::schema::{Attribute, Kind, Mutability, Registry, Returned, Type, common};
use serde_json::{Map, Value};

/// A checked input document.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// The attributes to store: core at the top level, extensions under their URN, `externalId`.
    pub doc: Map<String, Value>,
    /// A write-only password, to be hashed by the caller and never stored here.
    pub password: Option<String>,
}

/// Checks and normalises a resource sent by a client (POST, PUT, or the result of a PATCH).
/// Unknown attributes are ignored (RFC 7644 §3.3 lets the service provider drop them);
/// read-only ones (`id`, `meta`, `groups`, …) are dropped; missing required ones are an error.
pub fn normalize(reg: &Registry, kind: Kind, input: &Value) -> Result<Input> {
    let obj = input
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the resource must be a JSON object"))?;
    let mut doc = Map::new();
    let mut password = None;
    for (key, value) in obj {
        if let Some((name, _, _)) = common(key) {
            if name == "externalId" && !value.is_null() {
                let s = value
                    .as_str()
                    .ok_or_else(|| ScimError::invalid_value("externalId must be a string"))?;
                doc.insert("externalId".into(), Value::String(s.into()));
            }
            continue;
        }
        if let Some(ext) = kind
            .extensions()
            .iter()
            .find(|u| u.eq_ignore_ascii_case(key))
        {
            if value.is_null() {
                continue;
            }
            let Some(schema) = reg.schema(ext) else {
                continue;
            };
            let inner = value.as_object().ok_or_else(|| {
                ScimError::invalid_syntax(format!("{ext} must be an object of attributes"))
            })?;
            let mut out = Map::new();
            for (k, v) in inner {
                if let Some(a) = schema.attribute(k)
                    && let Some(v) = attribute_value(a, v, ext)?
                {
                    out.insert(a.name.clone(), v);
                }
            }
            if !out.is_empty() {
                doc.insert((*ext).to_string(), Value::Object(out));
            }
            continue;
        }
        let Some(a) = reg.core(kind).attribute(key) else {
            continue;
        };
        if a.name == "password" {
            match value {
                Value::Null => {}
                Value::String(s) => password = Some(s.clone()),
                _ => return Err(ScimError::invalid_value("password must be a string")),
            }
            continue;
        }
        if let Some(v) = attribute_value(a, value, "")? {
            doc.insert(a.name.clone(), v);
        }
    }
    for a in &reg.core(kind).attributes {
        if a.required && a.mutability != Mutability::ReadOnly && !doc.contains_key(&a.name) {
            return Err(ScimError::invalid_value(format!("{} is required", a.name)));
        }
    }
    Ok(Input { doc, password })
}

/// One attribute's value, checked and normalised; `None` when it holds nothing to store.
fn attribute_value(a: &Attribute, v: &Value, urn: &str) -> Result<Option<Value>> {
    if v.is_null() || a.mutability == Mutability::ReadOnly {
        return Ok(None);
    }
    let name = if urn.is_empty() {
        a.name.clone()
    } else {
        format!("{urn}:{}", a.name)
    };
    if a.multi_valued {
        let items: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(x) = single_value(a, item, &name)? {
                out.push(x);
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    if v.is_array() {
        return Err(ScimError::invalid_value(format!(
            "{name} takes a single value, not a list"
        )));
    }
    single_value(a, v, &name)
}

fn single_value(a: &Attribute, v: &Value, name: &str) -> Result<Option<Value>> {
    if v.is_null() {
        return Ok(None);
    }
    let wrong = |what: &str| ScimError::invalid_value(format!("{name} must be {what}"));
    let out = match a.kind {
        Type::String | Type::Reference | Type::Binary => match v {
            Value::String(_) => v.clone(),
            _ => return Err(wrong("a string")),
        },
        Type::DateTime => match v {
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => v.clone(),
            _ => return Err(wrong("an RFC 3339 date and time")),
        },
        // Some clients (Microsoft Entra) send booleans as "True"/"False".
        Type::Boolean => match v {
            Value::Bool(_) => v.clone(),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(wrong("true or false")),
        },
        Type::Integer => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => v.clone(),
            _ => return Err(wrong("an integer")),
        },
        Type::Decimal => match v {
            Value::Number(_) => v.clone(),
            _ => return Err(wrong("a number")),
        },
        Type::Complex => {
            let obj = v.as_object().ok_or_else(|| wrong("an object"))?;
            let mut out = Map::new();
            for (k, sv) in obj {
                let Some(sa) = a.sub(k) else { continue };
                if sa.mutability == Mutability::ReadOnly {
                    continue;
                }
                if let Some(x) = single_value(sa, sv, &format!("{name}.{}", sa.name))? {
                    out.insert(sa.name.clone(), x);
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            Value::Object(out)
        }
    };
    Ok(Some(out))
}

/// Which attributes a response carries.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    pub attributes: Vec<AttrPath>,
    pub excluded: Vec<AttrPath>,
}

impl Projection {
    /// From the comma-separated `attributes` / `excludedAttributes` parameters.
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self> {
        let list = |s: Option<&str>| -> Result<Vec<AttrPath>> {
            s.unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    crate::filter::parse_attr_path(p)
                        .map_err(|e| ScimError::invalid_path(format!("{p}: {e}")))
                })
                .collect()
        };
        Ok(Self {
            attributes: list(attributes)?,
            excluded: list(excluded)?,
        })
    }
}

fn names(path: &AttrPath, kind: Kind, urn: &str, name: &str) -> bool {
    let path_urn = path.urn.as_deref().unwrap_or(kind.core_urn());
    path_urn.eq_ignore_ascii_case(if urn.is_empty() { kind.core_urn() } else { urn })
        && (path.attr.eq_ignore_ascii_case(name) || path.attr.is_empty())
}

/// A stored document as the client sees it: `schemas`, `id`, `meta` added; attributes
/// `returned: never` left out, `request` ones only when asked for; then the projection.
pub fn render(
    reg: &Registry,
    kind: Kind,
    id: &str,
    doc: &Map<String, Value>,
    meta: Value,
    p: &Projection,
) -> Value {
    let mut out = Map::new();
    let mut schemas = vec![Value::String(kind.core_urn().into())];
    for ext in kind.extensions() {
        if doc.contains_key(*ext) {
            schemas.push(Value::String((*ext).into()));
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), Value::String(id.into()));
    let keep = |urn: &str, name: &str, returned: Returned| -> Option<Vec<String>> {
        // Some(list of sub-attributes to keep; empty = all)
        if returned == Returned::Never {
            return None;
        }
        if returned == Returned::Always {
            return Some(Vec::new());
        }
        let asked: Vec<&AttrPath> = p
            .attributes
            .iter()
            .filter(|a| names(a, kind, urn, name))
            .collect();
        if !p.attributes.is_empty() || returned == Returned::Request {
            if asked.is_empty() {
                return None;
            }
            if asked.iter().any(|a| a.sub.is_none()) {
                return Some(Vec::new());
            }
            return Some(asked.iter().filter_map(|a| a.sub.clone()).collect());
        }
        let excluded: Vec<&AttrPath> = p
            .excluded
            .iter()
            .filter(|a| names(a, kind, urn, name))
            .collect();
        if excluded.iter().any(|a| a.sub.is_none()) {
            return None;
        }
        if !excluded.is_empty() {
            // Sub-attributes excluded: marked with a leading '-'.
            return Some(
                excluded
                    .iter()
                    .filter_map(|a| a.sub.as_ref().map(|s| format!("-{s}")))
                    .collect(),
            );
        }
        Some(Vec::new())
    };
    let project = |v: &Value, subs: &[String]| -> Value {
        if subs.is_empty() {
            return v.clone();
        }
        let pick = |o: &Map<String, Value>| -> Value {
            let negative = subs.iter().all(|s| s.starts_with('-'));
            Value::Object(
                o.iter()
                    .filter(|(k, _)| {
                        let listed = subs
                            .iter()
                            .any(|s| s.trim_start_matches('-').eq_ignore_ascii_case(k));
                        if negative { !listed } else { listed }
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        };
        match v {
            Value::Object(o) => pick(o),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.as_object().map(pick).unwrap_or_else(|| i.clone()))
                    .collect(),
            ),
            other => other.clone(),
        }
    };
    if let Some(ext) = doc.get("externalId")
        && keep("", "externalId", Returned::Default).is_some()
    {
        out.insert("externalId".into(), ext.clone());
    }
    for a in &reg.core(kind).attributes {
        if let Some(v) = doc.get(&a.name)
            && let Some(subs) = keep("", &a.name, a.returned)
        {
            out.insert(a.name.clone(), project(v, &subs));
        }
    }
    for ext in kind.extensions() {
        let (Some(Value::Object(inner)), Some(schema)) = (doc.get(*ext), reg.schema(ext)) else {
            continue;
        };
        let mut o = Map::new();
        for a in &schema.attributes {
            if let Some(v) = inner.get(&a.name)
                && let Some(subs) = keep(ext, &a.name, a.returned)
            {
                o.insert(a.name.clone(), project(v, &subs));
            }
        }
        if !o.is_empty() {
            out.insert((*ext).to_string(), Value::Object(o));
        }
    }
    if keep("", "meta", Returned::Default).is_some() {
        out.insert("meta".into(), meta);
    }
    Value::Object(out)
}

/// The value of a path in a stored document (for sorting).
pub fn sort_key(doc: &Value, path: &AttrPath, kind: Kind) -> Option<Value> {
    let found = crate::filter::lookup(doc, path, kind.core_urn());
    let first = found.first()?;
    match first {
        Value::Array(items) => {
            // Multi-valued: the primary value, else the first.
            let pick = items
                .iter()
                .find(|i| i.get("primary").and_then(Value::as_bool) == Some(true))
                .or_else(|| items.first())?;
            match pick {
                Value::Object(o) => get_ci(o, "value").cloned(),
                other => Some(other.clone()),
            }
        }
        Value::Object(o) => get_ci(o, "value").cloned(),
        other => Some((*other).clone()),
    }
}
