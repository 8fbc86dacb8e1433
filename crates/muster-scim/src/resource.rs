//! Resource bodies: reading what a client sends into Muster's canonical form, and projecting
//! what is returned (`attributes` / `excludedAttributes`, RFC 7644 §3.4.2.5, §3.9).
//!
//! The canonical form of a resource is its JSON with attribute names in their schema case,
//! extension attributes inside their extension object, values of the declared type, multi-valued
//! attributes as arrays, and no read-only or write-only attributes. It is what Muster stores:
//! the resource as the provider sent it, less what the schemas do not know.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::ScimError;
use crate::schema::{
    AttrDef, AttrType, Container, Mutability, ResourceTypeDef, Returned, MUSTER_USER,
};

/// The longest string value accepted in any attribute, in bytes.
pub const MAX_VALUE_LEN: usize = 16 * 1024;
/// The most values accepted in one multi-valued attribute (group members aside).
pub const MAX_MULTI_VALUES: usize = 1000;

/// What [`normalize`] made of a request body.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    /// The canonical resource, without `id`, `meta` and other read-only attributes.
    pub resource: Map<String, Value>,
    /// Names of attributes that were dropped because no schema defines them.
    pub dropped: Vec<String>,
}

/// Reads a POST or PUT body into canonical form (RFC 7644 §3.3, §3.5.1).
///
/// Unknown attributes are dropped, read-only ones ignored (RFC 7643 §2.2), write-only ones
/// (`password`) accepted and discarded, values coerced to their declared type where the intent is
/// unambiguous (`"True"` for a boolean, a lone object for a multi-valued attribute), and required
/// attributes checked.
pub fn normalize(rt: &'static ResourceTypeDef, input: &Value) -> Result<Normalized, ScimError> {
    let Value::Object(body) = input else {
        return Err(ScimError::invalid_syntax(
            "the request body must be a JSON object",
        ));
    };
    let mut out = Map::new();
    let mut dropped = Vec::new();
    for (key, value) in body {
        if key.eq_ignore_ascii_case("schemas") {
            check_schemas(rt, value)?;
            continue;
        }
        if let Some(ext) = rt.extension(key) {
            // An extension object: `"urn:…:enterprise:2.0:User": { … }`.
            if value.is_null() {
                continue;
            }
            let Value::Object(ext_body) = value else {
                return Err(ScimError::invalid_value(format!(
                    "'{}' must be an object",
                    ext.id
                )));
            };
            for (k, v) in ext_body {
                match ext.attr(k) {
                    Some(def) => set_attr(&mut out, Container::Extension(ext.id), def, v)?,
                    None => dropped.push(format!("{}:{k}", ext.id)),
                }
            }
            continue;
        }
        match rt.resolve_key(key) {
            Some(r) if r.sub.is_none() => set_attr(&mut out, r.container, r.attr, value)?,
            Some(r) => {
                // A dotted key such as `name.givenName` in a body: a path, not a literal name.
                if let Some(sub) = r.sub {
                    set_sub_attr(&mut out, r.container, r.attr, sub, value)?;
                }
            }
            None => match alias(rt, key) {
                Some((container, def)) => set_attr(&mut out, container, def, value)?,
                None => dropped.push(key.clone()),
            },
        }
    }
    check_required(rt, &out)?;
    set_schemas(rt, &mut out);
    Ok(Normalized {
        resource: out,
        dropped,
    })
}

/// Attributes of Muster's extension that providers also send at the top level (Okta puts custom
/// attributes of its default namespace there).
fn alias(rt: &'static ResourceTypeDef, key: &str) -> Option<(Container, &'static AttrDef)> {
    let ext = rt.extension(MUSTER_USER.id)?;
    Some((Container::Extension(ext.id), ext.attr(key)?))
}

fn check_schemas(rt: &'static ResourceTypeDef, value: &Value) -> Result<(), ScimError> {
    let Value::Array(items) = value else {
        return Err(ScimError::invalid_value(
            "'schemas' must be an array of schema URIs",
        ));
    };
    for item in items {
        let Some(urn) = item.as_str() else {
            return Err(ScimError::invalid_value(
                "'schemas' must be an array of schema URIs",
            ));
        };
        if !rt.knows_schema(urn) {
            return Err(ScimError::invalid_value(format!(
                "the schema '{urn}' is not supported for {} resources",
                rt.name
            )));
        }
    }
    Ok(())
}

/// Writes `schemas`: the core schema, then each extension the resource carries.
pub fn set_schemas(rt: &'static ResourceTypeDef, out: &mut Map<String, Value>) {
    let mut schemas = vec![Value::String(rt.schema.id.to_string())];
    for ext in rt.extensions {
        if out
            .get(ext.id)
            .is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        {
            schemas.push(Value::String(ext.id.to_string()));
        } else {
            out.remove(ext.id);
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
}

fn check_required(rt: &'static ResourceTypeDef, out: &Map<String, Value>) -> Result<(), ScimError> {
    for def in rt.schema.attributes.iter().filter(|a| a.required) {
        let present = match out.get(def.name) {
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Null) | None => false,
            Some(_) => true,
        };
        if !present {
            return Err(ScimError::invalid_value(format!(
                "the attribute '{}' is required",
                def.name
            )));
        }
    }
    Ok(())
}

/// The object an attribute of `container` lives in, created if need be.
pub fn container_mut(
    out: &mut Map<String, Value>,
    container: Container,
) -> Result<&mut Map<String, Value>, ScimError> {
    match container {
        Container::Core => Ok(out),
        Container::Extension(urn) => {
            let slot = out
                .entry(urn.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            slot.as_object_mut().ok_or_else(ScimError::internal)
        }
    }
}

/// The object an attribute of `container` lives in, if present.
pub fn container_ref(
    resource: &Map<String, Value>,
    container: Container,
) -> Option<&Map<String, Value>> {
    match container {
        Container::Core => Some(resource),
        Container::Extension(urn) => resource.get(urn).and_then(Value::as_object),
    }
}

fn set_attr(
    out: &mut Map<String, Value>,
    container: Container,
    def: &'static AttrDef,
    value: &Value,
) -> Result<(), ScimError> {
    if matches!(def.mutability, Mutability::ReadOnly | Mutability::WriteOnly) {
        // RFC 7643 §2.2: read-only values a client sends are ignored; write-only ones (password)
        // are accepted and, in Muster, never kept.
        return Ok(());
    }
    let target = container_mut(out, container)?;
    match coerce_attr(def, value)? {
        Some(v) => {
            target.insert(def.name.to_string(), v);
        }
        None => {
            target.remove(def.name);
        }
    }
    Ok(())
}

fn set_sub_attr(
    out: &mut Map<String, Value>,
    container: Container,
    def: &'static AttrDef,
    sub: &'static AttrDef,
    value: &Value,
) -> Result<(), ScimError> {
    if def.multi_valued {
        return Err(ScimError::invalid_value(format!(
            "'{}.{}' names a sub-attribute of a multi-valued attribute; send '{}' as a list",
            def.name, sub.name, def.name
        )));
    }
    if matches!(def.mutability, Mutability::ReadOnly)
        || matches!(sub.mutability, Mutability::ReadOnly)
    {
        return Ok(());
    }
    let target = container_mut(out, container)?;
    let coerced = coerce_scalar(sub, value)?;
    let slot = target
        .entry(def.name.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(m) = slot {
        match coerced {
            Some(v) => {
                m.insert(sub.name.to_string(), v);
            }
            None => {
                m.remove(sub.name);
            }
        }
        if m.is_empty() {
            target.remove(def.name);
        }
    }
    Ok(())
}

/// Coerces a whole attribute value to its definition; `None` means "unassigned" (null or empty).
pub fn coerce_attr(def: &'static AttrDef, value: &Value) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    if def.multi_valued {
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            // OneLogin sends `emails` as a single object: one value of the list.
            other => vec![other],
        };
        if items.len() > MAX_MULTI_VALUES && def.name != "members" {
            return Err(ScimError::invalid_value(format!(
                "'{}' has more than {MAX_MULTI_VALUES} values",
                def.name
            )));
        }
        let mut out = Vec::with_capacity(items.len());
        let mut seen_primary = false;
        for item in items {
            if let Some(mut v) = coerce_single(def, item)? {
                // RFC 7643 §2.4: "primary" true appears at most once; keep the first.
                if let Some(Value::Bool(true)) = v.get("primary") {
                    if seen_primary {
                        if let Value::Object(m) = &mut v {
                            m.insert("primary".into(), Value::Bool(false));
                        }
                    }
                    seen_primary = true;
                }
                out.push(v);
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        return Ok(Some(Value::Array(out)));
    }
    if let Value::Array(items) = value {
        // A one-element list for a single-valued attribute: take the element.
        if items.len() == 1 {
            return coerce_single(def, &items[0]);
        }
        return Err(ScimError::invalid_value(format!(
            "'{}' is single-valued, not a list",
            def.name
        )));
    }
    coerce_single(def, value)
}

/// Coerces one value (an element of a multi-valued attribute, or a single value).
pub fn coerce_single(def: &'static AttrDef, value: &Value) -> Result<Option<Value>, ScimError> {
    if def.ty != AttrType::Complex {
        return coerce_scalar(def, value);
    }
    let obj = match value {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        // A bare value for a complex multi-valued attribute: its `value` sub-attribute.
        Value::String(_) | Value::Number(_) | Value::Bool(_) if def.sub("value").is_some() => {
            let mut m = Map::new();
            if let Some(sub) = def.sub("value") {
                if let Some(v) = coerce_scalar(sub, value)? {
                    m.insert(sub.name.to_string(), v);
                }
            }
            return Ok(if m.is_empty() {
                None
            } else {
                Some(Value::Object(m))
            });
        }
        _ => {
            return Err(ScimError::invalid_value(format!(
                "'{}' must be an object",
                def.name
            )))
        }
    };
    let mut m = Map::new();
    for (k, v) in obj {
        let Some(sub) = def.sub(k) else { continue };
        if sub.mutability == Mutability::ReadOnly {
            continue;
        }
        if let Some(v) = coerce_scalar(sub, v)? {
            m.insert(sub.name.to_string(), v);
        }
    }
    if def.name == "members" && !m.contains_key("value") {
        return Err(ScimError::invalid_value(
            "each member needs a 'value': the id of a user",
        ));
    }
    Ok(if m.is_empty() {
        None
    } else {
        Some(Value::Object(m))
    })
}

/// Coerces a scalar to its declared type, or explains why it cannot be.
pub fn coerce_scalar(def: &AttrDef, value: &Value) -> Result<Option<Value>, ScimError> {
    let wrong = |what: &str| {
        ScimError::invalid_value(format!("the attribute '{}' must be {what}", def.name))
    };
    Ok(Some(match (def.ty, value) {
        (_, Value::Null) => return Ok(None),
        (AttrType::Boolean, Value::Bool(b)) => Value::Bool(*b),
        (AttrType::Boolean, Value::String(s)) => match parse_bool(s) {
            Some(b) => Value::Bool(b),
            None => return Err(wrong("a boolean")),
        },
        (AttrType::Boolean, _) => return Err(wrong("a boolean")),
        (AttrType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => {
            Value::Number(n.clone())
        }
        (AttrType::Integer, Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => return Err(wrong("an integer")),
        },
        (AttrType::Integer, _) => return Err(wrong("an integer")),
        (AttrType::Decimal, Value::Number(n)) => Value::Number(n.clone()),
        (AttrType::Decimal, Value::String(s)) => match s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            Some(n) => Value::Number(n),
            None => return Err(wrong("a number")),
        },
        (AttrType::Decimal, _) => return Err(wrong("a number")),
        (AttrType::DateTime, Value::String(s)) => {
            if OffsetDateTime::parse(s, &Rfc3339).is_err() {
                return Err(wrong("a date and time such as 2024-01-31T12:00:00Z"));
            }
            Value::String(s.clone())
        }
        (AttrType::DateTime, _) => return Err(wrong("a date and time string")),
        (AttrType::Complex, _) => return Err(wrong("an object")),
        (_, Value::String(s)) => {
            if s.len() > MAX_VALUE_LEN {
                return Err(ScimError::invalid_value(format!(
                    "the attribute '{}' is longer than {MAX_VALUE_LEN} bytes",
                    def.name
                )));
            }
            Value::String(s.clone())
        }
        // Numbers and booleans where a string is declared: their text, as clients mean it.
        (_, Value::Number(n)) => Value::String(n.to_string()),
        (_, Value::Bool(b)) => Value::String(b.to_string()),
        (_, _) => return Err(wrong("a string")),
    }))
}

/// `true`/`false` in any case, as Entra ID sends booleans (`"True"`, `"False"`).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        t if t.eq_ignore_ascii_case("true") => Some(true),
        t if t.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Which attributes a response carries (RFC 7644 §3.4.2.5).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    /// `attributes`: when non-empty, only these (and `returned: always`) are returned.
    include: Vec<Selector>,
    /// `excludedAttributes`: these are left out (unless `returned: always`).
    exclude: Vec<Selector>,
}

#[derive(Debug, Clone, PartialEq)]
struct Selector {
    container: Container,
    /// Top-level attribute name in canonical case; `None` selects the whole extension.
    attr: Option<&'static str>,
    sub: Option<&'static str>,
}

impl Projection {
    /// Reads the `attributes` and `excludedAttributes` parameters (comma-separated paths).
    /// Names no schema defines select nothing; a value filter (`emails[type eq "work"]`) selects
    /// its attribute.
    pub fn parse(
        rt: &'static ResourceTypeDef,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Projection {
        Projection {
            include: selectors(rt, attributes),
            exclude: selectors(rt, excluded),
        }
    }

    /// Whether neither `attributes` nor `excludedAttributes` selects anything: every attribute
    /// returned by default is returned.
    pub fn is_default(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether a top-level core attribute (such as `members` or `groups`) will be returned.
    pub fn wants(&self, attr: &AttrDef) -> bool {
        self.keeps(Container::Core, attr)
    }

    fn keeps(&self, container: Container, attr: &AttrDef) -> bool {
        match attr.returned {
            Returned::Always => return true,
            Returned::Never => return false,
            _ => {}
        }
        if !self.include.is_empty() {
            return self.include.iter().any(|s| {
                s.container == container && (s.attr.is_none() || s.attr == Some(attr.name))
            });
        }
        if attr.returned == Returned::Request {
            return false;
        }
        !self.exclude.iter().any(|s| {
            s.container == container
                && s.sub.is_none()
                && (s.attr.is_none() || s.attr == Some(attr.name))
        })
    }

    /// Applies the projection to a full resource (with `id`, `meta`, `schemas`), in place and in
    /// order.
    pub fn apply(&self, rt: &'static ResourceTypeDef, resource: &mut Map<String, Value>) {
        resource.retain(|key, value| {
            if key == "schemas" {
                return true;
            }
            if let Some(ext) = rt.extension(key) {
                let container = Container::Extension(ext.id);
                if let Value::Object(inner) = value {
                    inner.retain(|k, v| match ext.attr(k) {
                        Some(def) if self.keeps(container, def) => {
                            self.trim_subs(container, def, Some(v));
                            true
                        }
                        _ => false,
                    });
                    return !inner.is_empty();
                }
                return true;
            }
            match rt.core_attr(key) {
                Some(def) if self.keeps(Container::Core, def) => {
                    self.trim_subs(Container::Core, def, Some(value));
                    true
                }
                _ => false,
            }
        });
    }

    /// Drops sub-attributes that `attributes` does not name or `excludedAttributes` names.
    fn trim_subs(&self, container: Container, def: &AttrDef, value: Option<&mut Value>) {
        if def.ty != AttrType::Complex || def.returned == Returned::Always {
            return;
        }
        // With neither parameter every sub-attribute stays.
        if self.include.is_empty() && self.exclude.is_empty() {
            return;
        }
        let Some(value) = value else { return };
        let named = |list: &Vec<Selector>| -> Vec<&'static str> {
            list.iter()
                .filter(|s| s.container == container && s.attr == Some(def.name))
                .filter_map(|s| s.sub)
                .collect()
        };
        let include_whole = self.include.iter().any(|s| {
            s.container == container
                && (s.attr.is_none() || (s.attr == Some(def.name) && s.sub.is_none()))
        });
        let include_subs = named(&self.include);
        let exclude_subs = named(&self.exclude);
        let keep = |name: &str| -> bool {
            let included = self.include.is_empty() || include_whole || include_subs.contains(&name);
            included && !exclude_subs.contains(&name)
        };
        let trim = |v: &mut Value| {
            if let Value::Object(m) = v {
                m.retain(|k, _| keep(k));
            }
        };
        match value {
            Value::Array(items) => items.iter_mut().for_each(trim),
            other => trim(other),
        }
    }
}

fn selectors(rt: &'static ResourceTypeDef, list: Option<&str>) -> Vec<Selector> {
    let Some(list) = list else { return Vec::new() };
    let mut out = Vec::new();
    for item in list.split(',') {
        let mut item = item.trim();
        if item.is_empty() {
            continue;
        }
        // Entra ID sends `attributes=emails[type eq "work"]`: select the attribute.
        if let Some(bracket) = item.find('[') {
            let after = item.rfind(']').map(|i| &item[i + 1..]).unwrap_or("");
            if after.is_empty() {
                item = &item[..bracket];
            }
        }
        if let Some(ext) = rt.extension(item) {
            out.push(Selector {
                container: Container::Extension(ext.id),
                attr: None,
                sub: None,
            });
            continue;
        }
        if item.eq_ignore_ascii_case(rt.schema.id) {
            continue;
        }
        if let Some(r) = rt.resolve_key(item) {
            out.push(Selector {
                container: r.container,
                attr: Some(r.attr.name),
                sub: r.sub.map(|s| s.name),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{
        ENTERPRISE_USER_SCHEMA, GROUP_RESOURCE, MUSTER_USER_SCHEMA, USER_RESOURCE,
    };
    use serde_json::json;

    fn norm(v: Value) -> Map<String, Value> {
        match normalize(&USER_RESOURCE, &v) {
            Ok(n) => n.resource,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn canonical_names_types_and_extensions() {
        let r = norm(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "USERNAME": "bjensen@example.com",
            "Active": "False",
            "name": {"GivenName": "Barbara", "nosuch": 1},
            "emails": {"value": "b@example.com", "type": "work"},
            "c42OrgName": "Sales",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"Department": "Tour Operations"},
            "id": "client-chosen",
            "meta": {"created": "x"},
            "password": "hunter2",
            "favouriteColour": "blue"
        }));
        assert_eq!(r["userName"], "bjensen@example.com");
        assert_eq!(r["active"], false);
        assert_eq!(r["name"], json!({"givenName": "Barbara"}));
        assert_eq!(
            r["emails"],
            json!([{"value": "b@example.com", "type": "work"}])
        );
        assert_eq!(r[MUSTER_USER_SCHEMA], json!({"c42OrgName": "Sales"}));
        assert_eq!(
            r[ENTERPRISE_USER_SCHEMA],
            json!({"department": "Tour Operations"})
        );
        assert!(r.get("id").is_none() && r.get("meta").is_none() && r.get("password").is_none());
        assert!(r.get("favouriteColour").is_none());
        assert_eq!(
            r["schemas"],
            json!([
                "urn:ietf:params:scim:schemas:core:2.0:User",
                ENTERPRISE_USER_SCHEMA,
                MUSTER_USER_SCHEMA
            ])
        );
    }

    #[test]
    fn required_and_type_errors() {
        let e = normalize(&USER_RESOURCE, &json!({"displayName": "x"})).err();
        assert_eq!(
            e.map(|e| e.detail),
            Some("the attribute 'userName' is required".into())
        );
        let e = normalize(&USER_RESOURCE, &json!({"userName": "  "})).err();
        assert!(e.is_some());
        let e = normalize(&USER_RESOURCE, &json!({"userName": "a", "active": "maybe"})).err();
        assert_eq!(
            e.and_then(|e| e.scim_type),
            Some(crate::ScimType::InvalidValue)
        );
        let e = normalize(&USER_RESOURCE, &json!(["not", "an", "object"])).err();
        assert_eq!(
            e.and_then(|e| e.scim_type),
            Some(crate::ScimType::InvalidSyntax)
        );
        let e = normalize(
            &USER_RESOURCE,
            &json!({"userName": "a", "schemas": ["urn:nope"]}),
        )
        .err();
        assert!(e.is_some());
        let e = normalize(&GROUP_RESOURCE, &json!({"members": []})).err();
        assert_eq!(
            e.map(|e| e.detail),
            Some("the attribute 'displayName' is required".into())
        );
    }

    #[test]
    fn multiple_primaries_keep_the_first() {
        let r = norm(json!({"userName": "a", "emails": [
            {"value": "a@x", "primary": true}, {"value": "b@x", "primary": "true"}]}));
        assert_eq!(r["emails"][0]["primary"], true);
        assert_eq!(r["emails"][1]["primary"], false);
    }

    fn full() -> Map<String, Value> {
        let mut r = norm(json!({
            "userName": "a", "displayName": "A", "title": "T",
            "name": {"givenName": "G", "familyName": "F"},
            "emails": [{"value": "a@x", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D", "division": "V"}
        }));
        r.insert("id".into(), json!("1"));
        r.insert(
            "meta".into(),
            json!({"resourceType": "User", "version": "W/\"1\""}),
        );
        r
    }

    #[test]
    fn attributes_keeps_only_named_and_always() {
        let mut r = full();
        Projection::parse(&USER_RESOURCE, Some("userName,name.givenName,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"), None)
            .apply(&USER_RESOURCE, &mut r);
        assert_eq!(r["userName"], "a");
        assert_eq!(r["id"], "1");
        assert!(r.get("schemas").is_some());
        assert_eq!(r["name"], json!({"givenName": "G"}));
        assert_eq!(r[ENTERPRISE_USER_SCHEMA], json!({"department": "D"}));
        assert!(
            r.get("displayName").is_none() && r.get("meta").is_none() && r.get("emails").is_none()
        );
    }

    #[test]
    fn excluded_attributes_drops_named() {
        let mut r = full();
        Projection::parse(&USER_RESOURCE, None, Some("emails,name.familyName,id,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"))
            .apply(&USER_RESOURCE, &mut r);
        assert!(r.get("emails").is_none());
        assert_eq!(r["name"], json!({"givenName": "G"}));
        assert_eq!(r["id"], "1", "id is returned always");
        assert!(r.get(ENTERPRISE_USER_SCHEMA).is_none());
        assert_eq!(r["title"], "T");
    }

    #[test]
    fn entra_value_filter_in_attributes() {
        let mut r = full();
        Projection::parse(&USER_RESOURCE, Some(r#"emails[type eq "work"]"#), None)
            .apply(&USER_RESOURCE, &mut r);
        assert!(r.get("emails").is_some());
        assert!(r.get("userName").is_none());
    }

    #[test]
    fn wants_members() {
        let members = GROUP_RESOURCE
            .schema
            .attr("members")
            .unwrap_or_else(|| panic!("members"));
        assert!(Projection::parse(&GROUP_RESOURCE, None, None).wants(members));
        assert!(!Projection::parse(&GROUP_RESOURCE, None, Some("members")).wants(members));
        assert!(!Projection::parse(&GROUP_RESOURCE, Some("displayName"), None).wants(members));
        assert!(Projection::parse(&GROUP_RESOURCE, Some("members.value"), None).wants(members));
    }
}
