//! Evaluating a parsed filter against a SCIM resource document: attribute lookup (names are
//! case-insensitive, multi-valued attributes match on any element), comparison by the
//! attribute's schema (caseExact, dateTime), and value paths.

use super::{AttrPath, CompareOp, Filter};
use std::borrow::Cow;
use std::cmp::Ordering;

use chrono::DateTime;
use serde_json::{Map, Value};

/// What evaluation needs to know of an attribute (from the schema).
pub trait Attributes {
    /// Whether string comparisons on this attribute are case-exact (RFC 7643 caseExact). `path`
    /// has urn/attr/sub as written in the filter; the implementor resolves case-insensitively.
    fn case_exact(&self, path: &AttrPath) -> bool;
    /// Whether the attribute is of type dateTime (compare as instants, RFC 3339).
    fn is_date_time(&self, path: &AttrPath) -> bool;
}

/// Inside a value path: inner paths become sub-attributes of the outer attribute.
struct Scoped<'a> {
    outer: &'a AttrPath,
    attrs: &'a dyn Attributes,
}

impl Scoped<'_> {
    fn full(&self, inner: &AttrPath) -> AttrPath {
        AttrPath {
            urn: self.outer.urn.clone(),
            attr: self.outer.attr.clone(),
            sub: Some(inner.attr.clone()),
        }
    }
}

impl Attributes for Scoped<'_> {
    fn case_exact(&self, path: &AttrPath) -> bool {
        self.attrs.case_exact(&self.full(path))
    }
    fn is_date_time(&self, path: &AttrPath) -> bool {
        self.attrs.is_date_time(&self.full(path))
    }
}

/// Case-insensitive key lookup in a JSON object (SCIM attribute names are case-insensitive).
pub fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The value of the attribute `path` names, ignoring its sub-attribute. With an empty `attr`
/// (bare URN) this is the extension object (or the resource, for the core URN).
fn attr_value<'a>(resource: &'a Value, path: &AttrPath, core_urn: &str) -> Option<&'a Value> {
    let obj = resource.as_object()?;
    let base = match &path.urn {
        Some(u) if !u.eq_ignore_ascii_case(core_urn) => get_ci(obj, u)?,
        _ => resource,
    };
    if path.attr.is_empty() {
        return Some(base);
    }
    get_ci(base.as_object()?, &path.attr)
}

fn elements(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        _ => std::slice::from_ref(v),
    }
}

/// Looks an attribute up in a resource: returns the value(s) it names, for `matches`, sorting
/// and projections. Multi-valued attributes are flattened (one entry per element; a
/// sub-attribute of a multi-valued complex attribute gives each element's sub-attribute);
/// nulls are left out. A bare URN path gives the extension object.
pub fn lookup<'a>(resource: &'a Value, path: &AttrPath, core_urn: &str) -> Vec<&'a Value> {
    let v = attr_value(resource, path, core_urn);
    let named: Vec<&Value> = match &path.sub {
        None => v.into_iter().collect(),
        Some(sub) => v
            .map_or(&[][..], elements)
            .iter()
            .filter_map(|e| get_ci(e.as_object()?, sub))
            .collect(),
    };
    named
        .into_iter()
        .flat_map(elements)
        .filter(|x| !x.is_null())
        .collect()
}

/// The values a comparison looks at: a complex multi-valued attribute without sub-attribute
/// compares each element's `value`; a complex single-valued one compares nothing.
fn compare_candidates<'a>(resource: &'a Value, path: &AttrPath, core_urn: &str) -> Vec<&'a Value> {
    if path.sub.is_some() {
        return lookup(resource, path, core_urn);
    }
    match attr_value(resource, path, core_urn) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::Object(o) => get_ci(o, "value"),
                _ => Some(i),
            })
            .filter(|x| !x.is_null())
            .collect(),
        Some(Value::Object(_)) | Some(Value::Null) | None => Vec::new(),
        Some(v) => vec![v],
    }
}

fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(is_present),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// The string as compared: lowercased unless the attribute is case-exact.
fn fold(s: &str, case_exact: bool) -> Cow<'_, str> {
    if case_exact {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

fn ordering(a: &Value, b: &Value, case_exact: bool, date_time: bool) -> Option<Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            let instant = |s: &str| DateTime::parse_from_rfc3339(s).ok();
            if date_time && let (Some(dx), Some(dy)) = (instant(x), instant(y)) {
                return Some(dx.cmp(&dy));
            }
            Some(fold(x, case_exact).cmp(&fold(y, case_exact)))
        }
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => Some(i.cmp(&j)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        _ => None,
    }
}

fn equal(a: &Value, b: &Value, case_exact: bool, date_time: bool) -> bool {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        _ => ordering(a, b, case_exact, date_time) == Some(Ordering::Equal),
    }
}

fn compare_one(a: &Value, op: CompareOp, b: &Value, case_exact: bool, date_time: bool) -> bool {
    use CompareOp::*;
    match op {
        Eq => equal(a, b, case_exact, date_time),
        Ne => !equal(a, b, case_exact, date_time),
        Co | Sw | Ew => {
            let (Some(x), Some(y)) = (a.as_str(), b.as_str()) else {
                return false;
            };
            let (x, y) = (fold(x, case_exact), fold(y, case_exact));
            match op {
                Co => x.contains(y.as_ref()),
                Sw => x.starts_with(y.as_ref()),
                _ => x.ends_with(y.as_ref()),
            }
        }
        Gt | Ge | Lt | Le => ordering(a, b, case_exact, date_time).is_some_and(|o| match op {
            Gt => o.is_gt(),
            Ge => o.is_ge(),
            Lt => o.is_lt(),
            _ => o.is_le(),
        }),
    }
}

/// Does `resource` (a SCIM resource JSON object) match? `core_urn` is the resource's core
/// schema URN (e.g. "urn:ietf:params:scim:schemas:core:2.0:User").
///
/// Multi-valued attributes match when any element does (so `ne` is true when some element
/// differs, or when the attribute is absent).
pub fn matches(filter: &Filter, resource: &Value, core_urn: &str, attrs: &dyn Attributes) -> bool {
    match filter {
        Filter::And(a, b) => {
            matches(a, resource, core_urn, attrs) && matches(b, resource, core_urn, attrs)
        }
        Filter::Or(a, b) => {
            matches(a, resource, core_urn, attrs) || matches(b, resource, core_urn, attrs)
        }
        Filter::Not(f) => !matches(f, resource, core_urn, attrs),
        Filter::Present(p) => lookup(resource, p, core_urn).into_iter().any(is_present),
        Filter::Compare(p, op, value) => {
            let cands = compare_candidates(resource, p, core_urn);
            match op {
                CompareOp::Eq if value.is_null() => cands.is_empty(),
                CompareOp::Ne if value.is_null() => !cands.is_empty(),
                _ => {
                    let exact = attrs.case_exact(p);
                    let dt = attrs.is_date_time(p);
                    (*op == CompareOp::Ne && cands.is_empty())
                        || cands.iter().any(|c| compare_one(c, *op, value, exact, dt))
                }
            }
        }
        Filter::ValuePath(p, inner) => {
            let scoped = Scoped { outer: p, attrs };
            attr_value(resource, p, core_urn).is_some_and(|v| {
                elements(v)
                    .iter()
                    .any(|e| e.is_object() && matches(inner, e, core_urn, &scoped))
            })
        }
    }
}
