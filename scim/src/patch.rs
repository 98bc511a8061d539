//! PATCH (RFC 7644 §3.5.2): `add`, `remove` and `replace` (op names in any case) applied to a
//! stored document, with paths that name attributes, sub-attributes, extension attributes by
//! URN, and elements of multi-valued attributes through value filters. The caller validates
//! the result with [`crate::resource::normalize`], as for a PUT.

use crate::error::{Result, ScimError};
use crate::filter::{self, AttrPath, Attributes, CompareOp, Filter, PatchPath};
use crate::schema::{Attribute, Kind, KindAttributes, Mutability, Registry, Returned, Type};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Replace,
}

/// Applies a PatchOp request body to `doc`. Returns the document as a client would send it
/// (the password, when one was set, included under `password` for the caller to take out).
pub fn apply(reg: &Registry, kind: Kind, doc: &Map<String, Value>, body: &Value) -> Result<Value> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the body must be a PatchOp object"))?;
    let ops = filter::get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations: a list of operations is required"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("Operations is empty"));
    }
    let mut out = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        let o = op.as_object().ok_or_else(|| {
            ScimError::invalid_syntax(format!("Operations[{i}] must be an object"))
        })?;
        let name = filter::get_ci(o, "op")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind_of = match name.to_ascii_lowercase().as_str() {
            "add" => Op::Add,
            "remove" => Op::Remove,
            "replace" => Op::Replace,
            _ => {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations[{i}].op must be add, remove or replace, not {name:?}"
                )));
            }
        };
        let value = filter::get_ci(o, "value").cloned();
        let path = match filter::get_ci(o, "path").and_then(Value::as_str) {
            Some(p) if !p.trim().is_empty() => Some(
                filter::parse_patch_path(p.trim())
                    .map_err(|e| ScimError::invalid_path(format!("{p}: {e}")))?,
            ),
            _ => None,
        };
        let cx = Cx { reg, kind };
        match (path, kind_of) {
            (None, Op::Remove) => {
                return Err(ScimError::no_target("remove needs a path"));
            }
            (None, op) => {
                let v = value
                    .ok_or_else(|| ScimError::invalid_syntax("add and replace need a value"))?;
                cx.apply_object(&mut out, op, None, &v)?;
            }
            (Some(p), op) => {
                if op != Op::Remove && value.is_none() {
                    return Err(ScimError::invalid_syntax("add and replace need a value"));
                }
                cx.apply_path(&mut out, op, &p, value.as_ref())?;
            }
        }
    }
    Ok(Value::Object(out))
}

struct Cx<'a> {
    reg: &'a Registry,
    kind: Kind,
}

fn external_id() -> Attribute {
    Attribute {
        name: "externalId".into(),
        kind: Type::String,
        multi_valued: false,
        required: false,
        case_exact: true,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        sub_attributes: Vec::new(),
    }
}

/// Renames the keys of a complex value (or of each element) to the schema's spelling.
fn canon(a: &Attribute, v: &Value) -> Value {
    match v {
        Value::Object(o) if a.kind == Type::Complex => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    (
                        a.sub(k).map(|s| s.name.clone()).unwrap_or(k.clone()),
                        x.clone(),
                    )
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| canon(a, i)).collect()),
        other => other.clone(),
    }
}

/// Element-relative attribute lookups for a value filter inside `urn:attr[...]`.
struct Element<'a> {
    outer: KindAttributes<'a>,
    urn: Option<String>,
    attr: String,
}

impl Attributes for Element<'_> {
    fn case_exact(&self, p: &AttrPath) -> bool {
        self.outer.case_exact(&self.inner(p))
    }
    fn is_date_time(&self, p: &AttrPath) -> bool {
        self.outer.is_date_time(&self.inner(p))
    }
}

impl Element<'_> {
    fn inner(&self, p: &AttrPath) -> AttrPath {
        AttrPath {
            urn: self.urn.clone(),
            attr: self.attr.clone(),
            sub: Some(p.attr.clone()),
        }
    }
}

impl Cx<'_> {
    /// `value` is an object of attributes (no path, or a bare extension URN as the path).
    fn apply_object(
        &self,
        doc: &mut Map<String, Value>,
        op: Op,
        urn: Option<&str>,
        value: &Value,
    ) -> Result<()> {
        let obj = value.as_object().ok_or_else(|| {
            ScimError::invalid_syntax("without a path the value must be an object")
        })?;
        for (k, v) in obj {
            if ["schemas", "id", "meta"]
                .iter()
                .any(|n| k.eq_ignore_ascii_case(n))
            {
                continue;
            }
            if urn.is_none() {
                if let Some(ext) = self
                    .kind
                    .extensions()
                    .iter()
                    .find(|e| e.eq_ignore_ascii_case(k))
                {
                    self.apply_object(doc, op, Some(ext), v)?;
                    continue;
                }
                if k.to_ascii_lowercase().starts_with("urn:") {
                    let p = filter::parse_patch_path(k)
                        .map_err(|e| ScimError::invalid_path(format!("{k}: {e}")))?;
                    self.apply_path(doc, op, &p, Some(v))?;
                    continue;
                }
            }
            let p = PatchPath {
                attr: AttrPath {
                    urn: urn.map(str::to_owned),
                    attr: k.clone(),
                    sub: None,
                },
                filter: None,
                sub: None,
            };
            match self.apply_path(doc, op, &p, Some(v)) {
                // Attributes the schema does not have are ignored here, as in a POST.
                Err(e) if e.scim_type == Some("invalidPath") => {}
                other => other?,
            }
        }
        Ok(())
    }

    fn apply_path(
        &self,
        doc: &mut Map<String, Value>,
        op: Op,
        p: &PatchPath,
        value: Option<&Value>,
    ) -> Result<()> {
        let ext: Option<String> = match p.attr.urn.as_deref() {
            None => None,
            Some(u) if u.eq_ignore_ascii_case(self.kind.core_urn()) => None,
            Some(u) => Some(
                self.kind
                    .extensions()
                    .iter()
                    .find(|e| e.eq_ignore_ascii_case(u))
                    .map(|e| (*e).to_string())
                    .ok_or_else(|| ScimError::invalid_path(format!("unknown schema {u}")))?,
            ),
        };
        if p.attr.attr.is_empty() {
            let Some(ext) = ext else {
                return Err(ScimError::invalid_path("the path names no attribute"));
            };
            if op == Op::Remove {
                doc.remove(&ext);
                return Ok(());
            }
            return self.apply_object(doc, op, Some(&ext), value.unwrap_or(&Value::Null));
        }
        if ext.is_none()
            && ["id", "meta", "schemas"]
                .iter()
                .any(|n| p.attr.attr.eq_ignore_ascii_case(n))
        {
            return Err(ScimError::mutability(format!(
                "{} is read-only",
                p.attr.attr
            )));
        }
        let a: Attribute = if ext.is_none() && p.attr.attr.eq_ignore_ascii_case("externalId") {
            external_id()
        } else {
            self.reg
                .attribute(
                    self.kind,
                    &AttrPath {
                        urn: ext.clone(),
                        attr: p.attr.attr.clone(),
                        sub: None,
                    },
                )
                .cloned()
                .ok_or_else(|| ScimError::invalid_path(format!("no attribute {}", p.attr.attr)))?
        };
        if p.attr.attr.eq_ignore_ascii_case("id")
            || p.attr.attr.eq_ignore_ascii_case("meta")
            || a.mutability == Mutability::ReadOnly
        {
            return Err(ScimError::mutability(format!("{} is read-only", a.name)));
        }
        let sub: Option<Attribute> =
            match &p.sub {
                None => None,
                Some(s) => Some(a.sub(s).cloned().ok_or_else(|| {
                    ScimError::invalid_path(format!("no attribute {}.{s}", a.name))
                })?),
            };
        if let Some(s) = &sub
            && s.mutability == Mutability::ReadOnly
        {
            return Err(ScimError::mutability(format!(
                "{}.{} is read-only",
                a.name, s.name
            )));
        }
        let container: &mut Map<String, Value> = match &ext {
            None => doc,
            Some(e) => {
                let slot = doc
                    .entry(e.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                match slot {
                    Value::Object(o) => o,
                    _ => return Err(ScimError::invalid_path("extension is not an object")),
                }
            }
        };
        let value = value.map(|v| canon(&a, v));
        match (&p.filter, &sub) {
            (None, None) => whole(container, op, &a, value.as_ref())?,
            (None, Some(s)) => {
                if a.kind != Type::Complex {
                    return Err(ScimError::invalid_path(format!(
                        "{} has no sub-attributes",
                        a.name
                    )));
                }
                let set = |o: &mut Map<String, Value>| match (op, &value) {
                    (Op::Remove, _) => {
                        o.remove(&s.name);
                    }
                    (_, Some(v)) => {
                        o.insert(s.name.clone(), v.clone());
                    }
                    (_, None) => {}
                };
                match container.get_mut(&a.name) {
                    Some(Value::Array(items)) => items
                        .iter_mut()
                        .filter_map(Value::as_object_mut)
                        .for_each(set),
                    Some(Value::Object(o)) => set(o),
                    _ if op == Op::Remove => {}
                    _ => {
                        let mut o = Map::new();
                        set(&mut o);
                        let v = if a.multi_valued {
                            Value::Array(vec![Value::Object(o)])
                        } else {
                            Value::Object(o)
                        };
                        container.insert(a.name.clone(), v);
                    }
                }
            }
            (Some(f), sub) => {
                if !a.multi_valued {
                    return Err(ScimError::invalid_path(format!(
                        "{} is not multi-valued: no filter",
                        a.name
                    )));
                }
                let attrs = Element {
                    outer: KindAttributes {
                        registry: self.reg,
                        kind: self.kind,
                    },
                    urn: ext.clone(),
                    attr: a.name.clone(),
                };
                let items: Vec<Value> = match container.get(&a.name) {
                    Some(Value::Array(items)) => items.clone(),
                    _ => Vec::new(),
                };
                let hit: Vec<bool> = items
                    .iter()
                    .map(|i| filter::matches(f, i, "", &attrs))
                    .collect();
                let mut items = items;
                if op == Op::Remove {
                    match sub {
                        None => {
                            let mut k = hit.iter();
                            items.retain(|_| !k.next().copied().unwrap_or(false));
                        }
                        Some(s) => {
                            for (i, h) in items.iter_mut().zip(&hit) {
                                if *h && let Some(o) = i.as_object_mut() {
                                    o.remove(&s.name);
                                }
                            }
                        }
                    }
                } else if hit.iter().any(|h| *h) {
                    for (i, h) in items.iter_mut().zip(&hit) {
                        if !*h {
                            continue;
                        }
                        if let Some(o) = i.as_object_mut() {
                            match (sub, &value) {
                                (Some(s), Some(v)) => {
                                    o.insert(s.name.clone(), v.clone());
                                }
                                (None, Some(Value::Object(v))) => {
                                    for (k, x) in v {
                                        o.insert(k.clone(), x.clone());
                                    }
                                }
                                _ => {
                                    return Err(ScimError::invalid_value(
                                        "the value must be an object",
                                    ));
                                }
                            }
                        }
                    }
                } else if let Filter::Compare(fp, CompareOp::Eq, fv) = f {
                    // `emails[type eq "work"].value` on a user without a work email: the element
                    // is created (what Microsoft Entra and Okta expect).
                    let mut o = Map::new();
                    let key = a
                        .sub(&fp.attr)
                        .map(|s| s.name.clone())
                        .unwrap_or(fp.attr.clone());
                    o.insert(key, fv.clone());
                    match (sub, &value) {
                        (Some(s), Some(v)) => {
                            o.insert(s.name.clone(), v.clone());
                        }
                        (None, Some(Value::Object(v))) => {
                            for (k, x) in v {
                                o.insert(k.clone(), x.clone());
                            }
                        }
                        _ => return Err(ScimError::invalid_value("the value must be an object")),
                    }
                    items.push(Value::Object(o));
                } else {
                    return Err(ScimError::no_target(format!(
                        "no value of {} matches the filter",
                        a.name
                    )));
                }
                if items.is_empty() {
                    container.remove(&a.name);
                } else {
                    container.insert(a.name.clone(), Value::Array(items));
                }
            }
        }
        if let Some(e) = &ext
            && doc
                .get(e)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
        {
            doc.remove(e);
        }
        Ok(())
    }
}

/// An operation on a whole attribute.
fn whole(
    container: &mut Map<String, Value>,
    op: Op,
    a: &Attribute,
    value: Option<&Value>,
) -> Result<()> {
    match op {
        Op::Remove => {
            // `{"op":"remove","path":"members","value":[{"value":"id"}]}` (Microsoft Entra)
            // removes just those values.
            if let (true, Some(Value::Array(gone)), Some(Value::Array(items))) =
                (a.multi_valued, value, container.get_mut(&a.name))
            {
                let key = |v: &Value| v.get("value").cloned().unwrap_or_else(|| v.clone());
                let gone: Vec<Value> = gone.iter().map(key).collect();
                items.retain(|i| !gone.contains(&key(i)));
                if items.is_empty() {
                    container.remove(&a.name);
                }
            } else {
                container.remove(&a.name);
            }
        }
        Op::Add | Op::Replace => {
            let Some(v) = value else { return Ok(()) };
            if v.is_null() {
                container.remove(&a.name);
                return Ok(());
            }
            if a.multi_valued {
                let new: Vec<Value> = match v {
                    Value::Array(items) => items.clone(),
                    other => vec![other.clone()],
                };
                if op == Op::Replace {
                    container.insert(a.name.clone(), Value::Array(new));
                    return Ok(());
                }
                let mut items = match container.remove(&a.name) {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                let makes_primary = new
                    .iter()
                    .any(|n| n.get("primary") == Some(&Value::Bool(true)));
                if makes_primary {
                    for i in items.iter_mut() {
                        if let Some(o) = i.as_object_mut()
                            && o.get("primary") == Some(&Value::Bool(true))
                        {
                            o.insert("primary".into(), Value::Bool(false));
                        }
                    }
                }
                for n in new {
                    if !items.contains(&n) {
                        items.push(n);
                    }
                }
                container.insert(a.name.clone(), Value::Array(items));
            } else if a.kind == Type::Complex {
                let v = v.as_object().ok_or_else(|| {
                    ScimError::invalid_value(format!("{} takes an object", a.name))
                })?;
                let slot = container
                    .entry(a.name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(o) = slot {
                    for (k, x) in v {
                        o.insert(k.clone(), x.clone());
                    }
                }
            } else {
                container.insert(a.name.clone(), v.clone());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ENTERPRISE_URN;
    use serde_json::json;

    fn run(doc: Value, ops: Value) -> Result<Value> {
        let reg = Registry::builtin().unwrap();
        apply(
            &reg,
            Kind::User,
            doc.as_object().unwrap(),
            &json!({ "Operations": ops }),
        )
    }

    #[test]
    fn add_replace_remove_with_value_filters_and_extension_paths() {
        let doc = json!({ "userName": "ann", "emails": [
            { "value": "a@x.io", "type": "work", "primary": true },
            { "value": "a@home.io", "type": "home" } ] });
        let out = run(doc.clone(), json!([
            { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ann@x.io" },
            { "op": "add", "path": "emails", "value": [{ "value": "new@x.io", "primary": true }] },
            { "op": "REMOVE", "path": "emails[type eq \"home\"]" },
            { "op": "add", "path": format!("{ENTERPRISE_URN}:manager.value"), "value": "m1" },
            { "op": "replace", "value": { "NAME": { "GIVENNAME": "Ann" }, "title": "Eng" } },
        ])).unwrap();
        assert_eq!(
            out["emails"],
            json!([
            { "value": "ann@x.io", "type": "work", "primary": false },
            { "value": "new@x.io", "primary": true } ])
        );
        assert_eq!(out[ENTERPRISE_URN]["manager"]["value"], "m1");
        assert_eq!(out["name"]["givenName"], "Ann");
        assert_eq!(out["title"], "Eng");
        // An eq filter that matches nothing creates the element (Entra's way of adding).
        let out = run(
            doc.clone(),
            json!([
            { "op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "555" } ]),
        )
        .unwrap();
        assert_eq!(
            out["phoneNumbers"],
            json!([{ "type": "work", "value": "555" }])
        );
        // Errors carry their scimType.
        let e = |ops: Value| run(doc.clone(), ops).unwrap_err().scim_type;
        assert_eq!(e(json!([{ "op": "remove" }])), Some("noTarget"));
        assert_eq!(
            e(json!([{ "op": "move", "path": "title" }])),
            Some("invalidSyntax")
        );
        assert_eq!(
            e(json!([{ "op": "add", "path": "nope", "value": 1 }])),
            Some("invalidPath")
        );
        assert_eq!(
            e(json!([{ "op": "replace", "path": "groups", "value": [] }])),
            Some("mutability")
        );
        assert_eq!(
            e(json!([{ "op": "replace", "path": "emails[value sw \"zz\"]", "value": {} }])),
            Some("noTarget")
        );
    }
}
