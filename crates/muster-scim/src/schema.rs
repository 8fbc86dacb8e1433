//! The schemas Muster serves (RFC 7643 §4, §7, §8.7): attribute definitions as static data,
//! looked up case-insensitively, and rendered for `/Schemas`.

use serde_json::{json, Value};

/// The type of an attribute (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// A sequence of characters.
    String,
    /// `true` or `false`.
    Boolean,
    /// A real number.
    Decimal,
    /// A whole number.
    Integer,
    /// An `xsd:dateTime` (RFC 3339) string.
    DateTime,
    /// Base64-encoded bytes.
    Binary,
    /// A URI for a resource.
    Reference,
    /// A singular or multi-valued set of sub-attributes.
    Complex,
}

impl AttrType {
    /// The type's name in a schema representation.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }

    /// Whether values of this type compare as strings.
    pub fn is_textual(self) -> bool {
        matches!(
            self,
            AttrType::String | AttrType::Reference | AttrType::Binary
        )
    }
}

/// When an attribute may be changed (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Set by the server only.
    ReadOnly,
    /// Set by clients at will.
    ReadWrite,
    /// Set once, then never changed.
    Immutable,
    /// Set by clients, never returned.
    WriteOnly,
}

impl Mutability {
    fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// When an attribute is returned (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// In every response, whatever `attributes` says.
    Always,
    /// Never.
    Never,
    /// Unless excluded.
    Default,
    /// Only when named in `attributes`.
    Request,
}

impl Returned {
    fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// How unique a value must be (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    /// No constraint.
    None,
    /// Unique within the service provider.
    Server,
    /// Globally unique.
    Global,
}

impl Uniqueness {
    fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute definition (RFC 7643 §7).
#[derive(Debug, PartialEq)]
pub struct AttrDef {
    /// The attribute's name, in its canonical case.
    pub name: &'static str,
    /// Its type.
    pub ty: AttrType,
    /// Whether it holds a list.
    pub multi_valued: bool,
    /// What it means.
    pub description: &'static str,
    /// Whether a resource must have it.
    pub required: bool,
    /// Whether string comparison is case-sensitive.
    pub case_exact: bool,
    /// When it may be changed.
    pub mutability: Mutability,
    /// When it is returned.
    pub returned: Returned,
    /// How unique it must be.
    pub uniqueness: Uniqueness,
    /// Suggested values.
    pub canonical_values: &'static [&'static str],
    /// For references: what they may point to.
    pub reference_types: &'static [&'static str],
    /// For complex attributes: their sub-attributes.
    pub sub_attributes: &'static [AttrDef],
}

const STRING: AttrDef = AttrDef {
    name: "",
    ty: AttrType::String,
    multi_valued: false,
    description: "",
    required: false,
    case_exact: false,
    mutability: Mutability::ReadWrite,
    returned: Returned::Default,
    uniqueness: Uniqueness::None,
    canonical_values: &[],
    reference_types: &[],
    sub_attributes: &[],
};
const BOOLEAN: AttrDef = AttrDef {
    ty: AttrType::Boolean,
    ..STRING
};
const REFERENCE: AttrDef = AttrDef {
    ty: AttrType::Reference,
    ..STRING
};
const COMPLEX: AttrDef = AttrDef {
    ty: AttrType::Complex,
    ..STRING
};
const MULTI: AttrDef = AttrDef {
    ty: AttrType::Complex,
    multi_valued: true,
    ..STRING
};

impl AttrDef {
    /// The sub-attribute with this name, compared case-insensitively.
    pub fn sub(&self, name: &str) -> Option<&'static AttrDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The attribute's schema representation (RFC 7643 §7).
    pub fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("name".into(), json!(self.name));
        o.insert("type".into(), json!(self.ty.as_str()));
        o.insert("multiValued".into(), json!(self.multi_valued));
        o.insert("description".into(), json!(self.description));
        o.insert("required".into(), json!(self.required));
        if self.ty != AttrType::Complex && self.ty != AttrType::Boolean {
            o.insert("caseExact".into(), json!(self.case_exact));
        }
        if !self.canonical_values.is_empty() {
            o.insert("canonicalValues".into(), json!(self.canonical_values));
        }
        if !self.reference_types.is_empty() {
            o.insert("referenceTypes".into(), json!(self.reference_types));
        }
        o.insert("mutability".into(), json!(self.mutability.as_str()));
        o.insert("returned".into(), json!(self.returned.as_str()));
        if self.ty != AttrType::Complex {
            o.insert("uniqueness".into(), json!(self.uniqueness.as_str()));
        }
        if self.ty == AttrType::Complex {
            let subs: Vec<Value> = self.sub_attributes.iter().map(AttrDef::to_json).collect();
            o.insert("subAttributes".into(), Value::Array(subs));
        }
        Value::Object(o)
    }
}

/// A schema: an id (URN), a name and its attributes (RFC 7643 §7).
#[derive(Debug, PartialEq)]
pub struct SchemaDef {
    /// The schema URN.
    pub id: &'static str,
    /// Its short name.
    pub name: &'static str,
    /// What it describes.
    pub description: &'static str,
    /// Its top-level attributes.
    pub attributes: &'static [AttrDef],
}

impl SchemaDef {
    /// The top-level attribute with this name, compared case-insensitively.
    pub fn attr(&'static self, name: &str) -> Option<&'static AttrDef> {
        // Names in stored resources are canonical: the exact match first is the common case,
        // and cheaper than comparing every name without case.
        self.attributes.iter().find(|a| a.name == name).or_else(|| {
            self.attributes
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(name))
        })
    }

    /// The schema representation served at `/Schemas/{id}` (RFC 7643 §7, §8.7.1).
    pub fn to_json(&self, base_url: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(AttrDef::to_json).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "Schema",
                "location": format!("{base_url}/Schemas/{}", self.id),
            }
        })
    }
}

/// The core User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The Enterprise User extension URN.
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Muster's own User extension URN, which carries `c42OrgName`.
pub const MUSTER_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:muster:2.0:User";
/// The ListResponse message URN (RFC 7644 §3.4.2).
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

macro_rules! multi_value_subs {
    ($value_desc:expr, $types:expr) => {
        &[
            AttrDef {
                name: "value",
                description: $value_desc,
                ..STRING
            },
            AttrDef {
                name: "display",
                description: "A human-readable name, primarily used for display purposes.",
                ..STRING
            },
            AttrDef {
                name: "type",
                description: "A label indicating the attribute's function.",
                canonical_values: $types,
                ..STRING
            },
            AttrDef {
                name: "primary",
                description:
                    "Indicates the 'primary' or preferred attribute value for this attribute.",
                ..BOOLEAN
            },
        ]
    };
}

static USER_ATTRIBUTES: &[AttrDef] = &[
    AttrDef {
        name: "userName",
        description: "Unique identifier for the User, typically used by the user to directly authenticate to the service provider.",
        required: true,
        uniqueness: Uniqueness::Server,
        ..STRING
    },
    AttrDef {
        name: "name",
        description: "The components of the user's real name.",
        sub_attributes: &[
            AttrDef { name: "formatted", description: "The full name, formatted for display.", ..STRING },
            AttrDef { name: "familyName", description: "The family name of the User.", ..STRING },
            AttrDef { name: "givenName", description: "The given name of the User.", ..STRING },
            AttrDef { name: "middleName", description: "The middle name(s) of the User.", ..STRING },
            AttrDef { name: "honorificPrefix", description: "The honorific prefix(es) of the User.", ..STRING },
            AttrDef { name: "honorificSuffix", description: "The honorific suffix(es) of the User.", ..STRING },
        ],
        ..COMPLEX
    },
    AttrDef { name: "displayName", description: "The name of the User, suitable for display to end-users.", ..STRING },
    AttrDef { name: "nickName", description: "The casual way to address the user in real life.", ..STRING },
    AttrDef {
        name: "profileUrl",
        description: "A fully qualified URL pointing to a page representing the User's online profile.",
        reference_types: &["external"],
        ..REFERENCE
    },
    AttrDef { name: "title", description: "The user's title, such as \"Vice President\".", ..STRING },
    AttrDef { name: "userType", description: "The relationship between the organization and the user.", ..STRING },
    AttrDef { name: "preferredLanguage", description: "The User's preferred written or spoken language.", ..STRING },
    AttrDef { name: "locale", description: "The User's default location for localization.", ..STRING },
    AttrDef { name: "timezone", description: "The User's time zone in the 'Olson' time zone database format.", ..STRING },
    AttrDef { name: "active", description: "A Boolean value indicating the User's administrative status.", ..BOOLEAN },
    AttrDef {
        name: "password",
        description: "The User's cleartext password. Muster accepts it and never stores or returns it.",
        mutability: Mutability::WriteOnly,
        returned: Returned::Never,
        ..STRING
    },
    AttrDef {
        name: "emails",
        description: "Email addresses for the user.",
        sub_attributes: multi_value_subs!("Email addresses for the user.", &["work", "home", "other"]),
        ..MULTI
    },
    AttrDef {
        name: "phoneNumbers",
        description: "Phone numbers for the User.",
        sub_attributes: multi_value_subs!("Phone number of the User.", &["work", "home", "mobile", "fax", "pager", "other"]),
        ..MULTI
    },
    AttrDef {
        name: "ims",
        description: "Instant messaging addresses for the User.",
        sub_attributes: multi_value_subs!(
            "Instant messaging address for the User.",
            &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]
        ),
        ..MULTI
    },
    AttrDef {
        name: "photos",
        description: "URLs of photos of the User.",
        sub_attributes: &[
            AttrDef { name: "value", description: "URL of a photo of the User.", reference_types: &["external"], ..REFERENCE },
            AttrDef { name: "display", description: "A human-readable name, primarily used for display purposes.", ..STRING },
            AttrDef {
                name: "type",
                description: "A label indicating the attribute's function.",
                canonical_values: &["photo", "thumbnail"],
                ..STRING
            },
            AttrDef { name: "primary", description: "Indicates the preferred photo.", ..BOOLEAN },
        ],
        ..MULTI
    },
    AttrDef {
        name: "addresses",
        description: "A physical mailing address for this User.",
        sub_attributes: &[
            AttrDef { name: "formatted", description: "The full mailing address, formatted for display.", ..STRING },
            AttrDef { name: "streetAddress", description: "The full street address component.", ..STRING },
            AttrDef { name: "locality", description: "The city or locality component.", ..STRING },
            AttrDef { name: "region", description: "The state or region component.", ..STRING },
            AttrDef { name: "postalCode", description: "The zip code or postal code component.", ..STRING },
            AttrDef { name: "country", description: "The country name component.", ..STRING },
            AttrDef {
                name: "type",
                description: "A label indicating the attribute's function.",
                canonical_values: &["work", "home", "other"],
                ..STRING
            },
            AttrDef { name: "primary", description: "Indicates the preferred mailing address.", ..BOOLEAN },
        ],
        ..MULTI
    },
    AttrDef {
        name: "groups",
        description: "A list of groups to which the user belongs.",
        mutability: Mutability::ReadOnly,
        sub_attributes: &[
            AttrDef { name: "value", description: "The identifier of the User's group.", mutability: Mutability::ReadOnly, ..STRING },
            AttrDef {
                name: "$ref",
                description: "The URI of the corresponding 'Group' resource.",
                mutability: Mutability::ReadOnly,
                reference_types: &["User", "Group"],
                ..REFERENCE
            },
            AttrDef { name: "display", description: "A human-readable name.", mutability: Mutability::ReadOnly, ..STRING },
            AttrDef {
                name: "type",
                description: "A label indicating the attribute's function.",
                mutability: Mutability::ReadOnly,
                canonical_values: &["direct", "indirect"],
                ..STRING
            },
        ],
        ..MULTI
    },
    AttrDef {
        name: "entitlements",
        description: "A list of entitlements for the User.",
        sub_attributes: multi_value_subs!("The value of an entitlement.", &[]),
        ..MULTI
    },
    AttrDef {
        name: "roles",
        description: "A list of roles for the User, as the provider sends them.",
        sub_attributes: multi_value_subs!("The value of a role.", &[]),
        ..MULTI
    },
    AttrDef {
        name: "x509Certificates",
        description: "A list of certificates issued to the User.",
        sub_attributes: &[
            AttrDef { name: "value", description: "The value of an X.509 certificate.", ty: AttrType::Binary, ..STRING },
            AttrDef { name: "display", description: "A human-readable name.", ..STRING },
            AttrDef { name: "type", description: "A label indicating the attribute's function.", ..STRING },
            AttrDef { name: "primary", description: "Indicates the preferred certificate.", ..BOOLEAN },
        ],
        ..MULTI
    },
];

static GROUP_ATTRIBUTES: &[AttrDef] = &[
    AttrDef {
        name: "displayName",
        description: "A human-readable name for the Group.",
        required: true,
        uniqueness: Uniqueness::Server,
        ..STRING
    },
    AttrDef {
        name: "members",
        description: "A list of members of the Group.",
        sub_attributes: &[
            AttrDef {
                name: "value",
                description: "Identifier of the member of this Group.",
                mutability: Mutability::Immutable,
                ..STRING
            },
            AttrDef {
                name: "$ref",
                description: "The URI of the member resource.",
                mutability: Mutability::Immutable,
                reference_types: &["User"],
                ..REFERENCE
            },
            AttrDef {
                name: "type",
                description: "A label indicating the type of resource.",
                mutability: Mutability::Immutable,
                canonical_values: &["User"],
                ..STRING
            },
        ],
        ..MULTI
    },
];

static ENTERPRISE_ATTRIBUTES: &[AttrDef] = &[
    AttrDef {
        name: "employeeNumber",
        description: "Numeric or alphanumeric identifier assigned to a person.",
        ..STRING
    },
    AttrDef {
        name: "costCenter",
        description: "Identifies the name of a cost center.",
        ..STRING
    },
    AttrDef {
        name: "organization",
        description: "Identifies the name of an organization.",
        ..STRING
    },
    AttrDef {
        name: "division",
        description: "Identifies the name of a division.",
        ..STRING
    },
    AttrDef {
        name: "department",
        description: "Identifies the name of a department.",
        ..STRING
    },
    AttrDef {
        name: "manager",
        description: "The User's manager.",
        sub_attributes: &[
            AttrDef {
                name: "value",
                description: "The id of the SCIM resource representing the User's manager.",
                ..STRING
            },
            AttrDef {
                name: "$ref",
                description: "The URI of the SCIM resource representing the User's manager.",
                reference_types: &["User"],
                ..REFERENCE
            },
            AttrDef {
                name: "displayName",
                description: "The displayName of the User's manager.",
                mutability: Mutability::ReadOnly,
                ..STRING
            },
        ],
        ..COMPLEX
    },
];

static MUSTER_ATTRIBUTES: &[AttrDef] = &[AttrDef {
    name: "c42OrgName",
    description: "The name of the organization Muster places this user in, when the provider's organization mapping reads it.",
    ..STRING
}];

/// The core User schema (RFC 7643 §4.1).
pub static USER: SchemaDef = SchemaDef {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: USER_ATTRIBUTES,
};
/// The core Group schema (RFC 7643 §4.2).
pub static GROUP: SchemaDef = SchemaDef {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: GROUP_ATTRIBUTES,
};
/// The Enterprise User extension (RFC 7643 §4.3).
pub static ENTERPRISE_USER: SchemaDef = SchemaDef {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: ENTERPRISE_ATTRIBUTES,
};
/// Muster's User extension.
pub static MUSTER_USER: SchemaDef = SchemaDef {
    id: MUSTER_USER_SCHEMA,
    name: "MusterUser",
    description: "Attributes Muster reads to place a user in an organization",
    attributes: MUSTER_ATTRIBUTES,
};

/// The attributes every resource has (RFC 7643 §3.1), described for filters and projection.
static COMMON_ATTRIBUTES: &[AttrDef] = &[
    AttrDef {
        name: "id",
        description: "A unique identifier for a SCIM resource as defined by the service provider.",
        case_exact: true,
        mutability: Mutability::ReadOnly,
        returned: Returned::Always,
        uniqueness: Uniqueness::Server,
        ..STRING
    },
    AttrDef {
        name: "externalId",
        description:
            "A String that is an identifier for the resource as defined by the provisioning client.",
        case_exact: true,
        ..STRING
    },
    AttrDef {
        name: "meta",
        description: "A complex attribute containing resource metadata.",
        mutability: Mutability::ReadOnly,
        sub_attributes: &[
            AttrDef {
                name: "resourceType",
                description: "The name of the resource type of the resource.",
                case_exact: true,
                mutability: Mutability::ReadOnly,
                ..STRING
            },
            AttrDef {
                name: "created",
                description: "The DateTime that the resource was added to the service provider.",
                ty: AttrType::DateTime,
                mutability: Mutability::ReadOnly,
                ..STRING
            },
            AttrDef {
                name: "lastModified",
                description:
                    "The most recent DateTime that the details of this resource were updated.",
                ty: AttrType::DateTime,
                mutability: Mutability::ReadOnly,
                ..STRING
            },
            AttrDef {
                name: "location",
                description: "The URI of the resource being returned.",
                case_exact: true,
                mutability: Mutability::ReadOnly,
                ..REFERENCE
            },
            AttrDef {
                name: "version",
                description: "The version of the resource being returned.",
                case_exact: true,
                mutability: Mutability::ReadOnly,
                ..STRING
            },
        ],
        ..COMPLEX
    },
    AttrDef {
        name: "schemas",
        description: "The schema URIs the resource conforms to.",
        multi_valued: true,
        mutability: Mutability::ReadOnly,
        returned: Returned::Always,
        ..REFERENCE
    },
];

/// A resource type: its core schema and its extensions (RFC 7643 §6).
#[derive(Debug, PartialEq)]
pub struct ResourceTypeDef {
    /// `User` or `Group`.
    pub name: &'static str,
    /// The endpoint, relative to the base URL.
    pub endpoint: &'static str,
    /// What it is.
    pub description: &'static str,
    /// The core schema.
    pub schema: &'static SchemaDef,
    /// Extension schemas, none of them required.
    pub extensions: &'static [&'static SchemaDef],
}

/// The User resource type.
pub static USER_RESOURCE: ResourceTypeDef = ResourceTypeDef {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER,
    extensions: &[&ENTERPRISE_USER, &MUSTER_USER],
};
/// The Group resource type.
pub static GROUP_RESOURCE: ResourceTypeDef = ResourceTypeDef {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP,
    extensions: &[],
};

/// Every schema served at `/Schemas`.
pub static ALL_SCHEMAS: &[&SchemaDef] = &[&USER, &GROUP, &ENTERPRISE_USER, &MUSTER_USER];

/// Where a resolved attribute lives in a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// At the top level of the resource (core and common attributes).
    Core,
    /// Inside the extension object keyed by this URN.
    Extension(&'static str),
}

/// An attribute path resolved against a resource type's schemas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved {
    /// Where the top-level attribute lives.
    pub container: Container,
    /// The top-level attribute.
    pub attr: &'static AttrDef,
    /// The sub-attribute, if the path names one.
    pub sub: Option<&'static AttrDef>,
}

impl Resolved {
    /// The definition of the innermost attribute the path names.
    pub fn leaf(&self) -> &'static AttrDef {
        self.sub.unwrap_or(self.attr)
    }

    /// The canonical dotted name (`name.givenName`, `urn:…:User:manager.value`).
    pub fn canonical(&self) -> String {
        let mut s = String::new();
        if let Container::Extension(urn) = self.container {
            s.push_str(urn);
            s.push(':');
        }
        s.push_str(self.attr.name);
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(sub.name);
        }
        s
    }
}

impl ResourceTypeDef {
    /// The extension with this URN, compared case-insensitively.
    pub fn extension(&self, urn: &str) -> Option<&'static SchemaDef> {
        self.extensions
            .iter()
            .copied()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Whether `urn` names this type's core schema or one of its extensions.
    pub fn knows_schema(&self, urn: &str) -> bool {
        self.schema.id.eq_ignore_ascii_case(urn) || self.extension(urn).is_some()
    }

    /// A top-level attribute by name (core schema, then the common attributes).
    pub fn core_attr(&self, name: &str) -> Option<&'static AttrDef> {
        self.schema.attr(name).or_else(|| {
            COMMON_ATTRIBUTES
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(name))
        })
    }

    /// Resolves `[urn:]name[.sub]` against this type's schemas, case-insensitively.
    pub fn resolve(&self, urn: Option<&str>, name: &str, sub: Option<&str>) -> Option<Resolved> {
        let (container, attr) = match urn {
            None => (Container::Core, self.core_attr(name)?),
            Some(u) if u.eq_ignore_ascii_case(self.schema.id) => {
                (Container::Core, self.core_attr(name)?)
            }
            Some(u) => {
                let ext = self.extension(u)?;
                (Container::Extension(ext.id), ext.attr(name)?)
            }
        };
        let sub = match sub {
            None => None,
            Some(s) => Some(attr.sub(s)?),
        };
        Some(Resolved {
            container,
            attr,
            sub,
        })
    }

    /// Resolves a top-level JSON key of a resource body: a core attribute name, or a fully
    /// qualified `urn:…:attr` of the core schema or an extension.
    pub fn resolve_key(&self, key: &str) -> Option<Resolved> {
        if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
            let colon = key.rfind(':')?;
            let (urn, rest) = (&key[..colon], &key[colon + 1..]);
            let (name, sub) = match rest.split_once('.') {
                Some((n, s)) => (n, Some(s)),
                None => (rest, None),
            };
            return self.resolve(Some(urn), name, sub);
        }
        let (name, sub) = match key.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (key, None),
        };
        self.resolve(None, name, sub)
    }

    /// The ResourceType representation served at `/ResourceTypes/{name}` (RFC 7643 §6).
    pub fn to_json(&self, base_url: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema.id,
            "schemaExtensions": self.extensions.iter().map(|s| json!({"schema": s.id, "required": false})).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{base_url}/ResourceTypes/{}", self.name),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_case_insensitively_with_and_without_urns() {
        let r = USER_RESOURCE
            .resolve(None, "USERNAME", None)
            .unwrap_or_else(|| panic!("userName"));
        assert_eq!(r.attr.name, "userName");
        let r = USER_RESOURCE
            .resolve(None, "name", Some("FamilyName"))
            .unwrap_or_else(|| panic!("name"));
        assert_eq!(r.canonical(), "name.familyName");
        let r = USER_RESOURCE
            .resolve_key("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:Department")
            .unwrap_or_else(|| panic!("department"));
        assert_eq!(r.container, Container::Extension(ENTERPRISE_USER_SCHEMA));
        assert_eq!(r.attr.name, "department");
        let r = USER_RESOURCE.resolve_key("urn:ietf:params:scim:schemas:core:2.0:User:userName");
        assert_eq!(r.map(|r| r.attr.name), Some("userName"));
        assert!(USER_RESOURCE.resolve(None, "nosuch", None).is_none());
        assert!(USER_RESOURCE
            .resolve(None, "name", Some("nosuch"))
            .is_none());
        assert_eq!(
            USER_RESOURCE
                .resolve(None, "meta", Some("lastModified"))
                .map(|r| r.leaf().ty),
            Some(AttrType::DateTime)
        );
    }

    #[test]
    fn schema_json_follows_rfc7643_section_7() {
        let s = USER.to_json("http://x");
        assert_eq!(s["id"], USER_SCHEMA);
        let user_name = &s["attributes"][0];
        assert_eq!(user_name["name"], "userName");
        assert_eq!(user_name["uniqueness"], "server");
        assert_eq!(user_name["required"], true);
        let emails = s["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == "emails"))
            .cloned();
        let emails = emails.unwrap_or_default();
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["subAttributes"].as_array().map(Vec::len), Some(4));
    }
}
