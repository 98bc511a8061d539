//! The schemas and resource types Gatehouse publishes (RFC 7643 §7 and §6), loaded from the JSON
//! in `scim/schemas/`, and attribute resolution against them (names are case-insensitive).

use crate::filter::{AttrPath, Attributes};
use serde::Deserialize;
use serde_json::{Value, json};

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
pub const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const BULK_REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
pub const SPC_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

const USER_JSON: &str = include_str!("../schemas/user.json");
const GROUP_JSON: &str = include_str!("../schemas/group.json");
const ENTERPRISE_JSON: &str = include_str!("../schemas/enterprise_user.json");

/// RFC 7643 §2.3 data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Type {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    #[default]
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Always,
    Never,
    #[default]
    Default,
    Request,
}

/// One attribute definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Type,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub case_exact: bool,
    #[serde(default)]
    pub mutability: Mutability,
    #[serde(default)]
    pub returned: Returned,
    #[serde(default)]
    pub sub_attributes: Vec<Attribute>,
}

impl Attribute {
    /// A sub-attribute by name (case-insensitive).
    pub fn sub(&self, name: &str) -> Option<&Attribute> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// One schema.
#[derive(Debug, Clone, Deserialize)]
pub struct Schema {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub attributes: Vec<Attribute>,
    #[serde(skip)]
    pub raw: Value,
}

impl Schema {
    fn load(text: &str) -> Option<Self> {
        let raw: Value = serde_json::from_str(text).ok()?;
        let mut s: Schema = serde_json::from_value(raw.clone()).ok()?;
        s.raw = raw;
        Some(s)
    }
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// The resource kinds Gatehouse serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
    pub fn core_urn(self) -> &'static str {
        match self {
            Kind::User => USER_URN,
            Kind::Group => GROUP_URN,
        }
    }
    /// Extension schemas of the kind.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Kind::User => &[ENTERPRISE_URN],
            Kind::Group => &[],
        }
    }
    pub fn from_endpoint(s: &str) -> Option<Self> {
        match s {
            "Users" => Some(Kind::User),
            "Groups" => Some(Kind::Group),
            _ => None,
        }
    }
}

/// The published schemas.
#[derive(Debug, Clone)]
pub struct Registry {
    pub user: Schema,
    pub group: Schema,
    pub enterprise: Schema,
}

impl Registry {
    /// The built-in schemas (compiled in; a parse failure is a build defect caught by the tests).
    pub fn builtin() -> Option<Self> {
        Some(Self {
            user: Schema::load(USER_JSON)?,
            group: Schema::load(GROUP_JSON)?,
            enterprise: Schema::load(ENTERPRISE_JSON)?,
        })
    }

    pub fn schemas(&self) -> [&Schema; 3] {
        [&self.user, &self.group, &self.enterprise]
    }

    pub fn schema(&self, urn: &str) -> Option<&Schema> {
        self.schemas()
            .into_iter()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    pub fn core(&self, kind: Kind) -> &Schema {
        match kind {
            Kind::User => &self.user,
            Kind::Group => &self.group,
        }
    }

    /// The schema an attribute path names for `kind`: the core schema unless the URN names one
    /// of the kind's extensions. `None` for a URN the kind does not have.
    pub fn schema_of(&self, kind: Kind, urn: Option<&str>) -> Option<&Schema> {
        match urn {
            None => Some(self.core(kind)),
            Some(u) if u.eq_ignore_ascii_case(kind.core_urn()) => Some(self.core(kind)),
            Some(u) => kind
                .extensions()
                .iter()
                .find(|e| e.eq_ignore_ascii_case(u))
                .and_then(|e| self.schema(e)),
        }
    }

    /// The definition of a top-level attribute (with its schema URN), following the RFC's rule
    /// that a name without URN is looked up in the core schema. `id`, `externalId` and `meta`
    /// are common attributes, described by [`common`].
    pub fn attribute(&self, kind: Kind, path: &AttrPath) -> Option<&Attribute> {
        self.schema_of(kind, path.urn.as_deref())?
            .attribute(&path.attr)
    }

    /// The definition of the attribute or sub-attribute a path names.
    pub fn resolve(&self, kind: Kind, path: &AttrPath) -> Option<&Attribute> {
        let a = self.attribute(kind, path)?;
        match &path.sub {
            None => Some(a),
            Some(s) => a.sub(s),
        }
    }

    /// `/Schemas` entries: each schema with its `schemas` and `meta`.
    pub fn schema_document(&self, s: &Schema, base: &str) -> Value {
        let mut v = s.raw.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("schemas".into(), json!([SCHEMA_URN]));
            o.insert(
                "meta".into(),
                json!({ "resourceType": "Schema", "location": format!("{base}/Schemas/{}", s.id) }),
            );
        }
        v
    }

    /// `/ResourceTypes` entry of a kind.
    pub fn resource_type_document(&self, kind: Kind, base: &str) -> Value {
        let mut v = json!({
            "schemas": [RESOURCE_TYPE_URN],
            "id": kind.name(),
            "name": kind.name(),
            "endpoint": format!("/{}", kind.endpoint()),
            "description": match kind { Kind::User => "User Account", Kind::Group => "Group" },
            "schema": kind.core_urn(),
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", kind.name()) },
        });
        if !kind.extensions().is_empty()
            && let Some(o) = v.as_object_mut()
        {
            o.insert(
                "schemaExtensions".into(),
                Value::Array(
                    kind.extensions()
                        .iter()
                        .map(|e| json!({ "schema": e, "required": false }))
                        .collect(),
                ),
            );
        }
        v
    }
}

/// The common attributes every resource has (RFC 7643 §3.1), which no schema lists.
pub fn common(name: &str) -> Option<(&'static str, Mutability, bool)> {
    // (canonical name, mutability, case exact)
    [
        ("id", Mutability::ReadOnly, true),
        ("externalId", Mutability::ReadWrite, true),
        ("meta", Mutability::ReadOnly, true),
        ("schemas", Mutability::ReadWrite, true),
    ]
    .into_iter()
    .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
}

/// Filter evaluation over one kind's schema.
#[derive(Debug, Clone, Copy)]
pub struct KindAttributes<'a> {
    pub registry: &'a Registry,
    pub kind: Kind,
}

impl Attributes for KindAttributes<'_> {
    fn case_exact(&self, path: &AttrPath) -> bool {
        if path.urn.is_none()
            && let Some((_, _, exact)) = common(&path.attr)
        {
            return exact;
        }
        self.registry
            .resolve(self.kind, path)
            .is_some_and(|a| a.case_exact)
    }
    fn is_date_time(&self, path: &AttrPath) -> bool {
        if path.urn.is_none() && path.attr.eq_ignore_ascii_case("meta") {
            return path.sub.as_deref().is_some_and(|s| {
                s.eq_ignore_ascii_case("created") || s.eq_ignore_ascii_case("lastModified")
            });
        }
        self.registry
            .resolve(self.kind, path)
            .is_some_and(|a| a.kind == Type::DateTime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schemas_load_and_resolve_case_insensitively() {
        let r = Registry::builtin().unwrap();
        assert_eq!(r.user.attributes.len(), 21);
        let p = AttrPath {
            urn: None,
            attr: "EMAILS".into(),
            sub: Some("Value".into()),
        };
        assert_eq!(r.resolve(Kind::User, &p).unwrap().name, "value");
        let m = AttrPath {
            urn: Some(ENTERPRISE_URN.to_lowercase()),
            attr: "manager".into(),
            sub: Some("displayName".into()),
        };
        assert_eq!(
            r.resolve(Kind::User, &m).unwrap().mutability,
            Mutability::ReadOnly
        );
        assert!(r.resolve(Kind::Group, &m).is_none());
        assert_eq!(
            r.user.attribute("password").unwrap().returned,
            Returned::Never
        );
    }
}
