//! One value read out of a resource by an attribute path: what attribute-based organization
//! mapping reads (`title`, `urn:…:enterprise:2.0:User:department`, `addresses[type eq "work"].locality`).
//!
//! The path uses the PATCH path grammar of RFC 7644 §3.5.2 (`attrPath` or `valuePath [subAttr]`),
//! resolved against the resource type's schemas when it is made, so that a path that can never
//! hold a value is refused at once rather than silently never matching.

use serde_json::{Map, Value};

use crate::error::ScimError;
use crate::filter::{AttrPath, Filter, PatchPath};
use crate::query::Query;
use crate::resource::container_ref;
use crate::schema::{AttrDef, AttrType, Resolved, ResourceTypeDef};

/// A checked path to one simple value of a resource.
#[derive(Debug, Clone)]
pub struct Selector {
    text: String,
    attr: Resolved,
    filter: Option<Query>,
    sub: Option<&'static AttrDef>,
}

impl Selector {
    /// Parses and checks a path against `rt`. Errors say what is wrong with the path.
    pub fn parse(rt: &'static ResourceTypeDef, text: &str) -> Result<Selector, ScimError> {
        let text = text.trim();
        let bad = |why: String| ScimError::invalid_path(format!("'{text}': {why}"));
        if text.is_empty() {
            return Err(ScimError::invalid_path("the attribute path is empty"));
        }
        let path = PatchPath::parse(text).map_err(|e| bad(e.message))?;
        let attr_text = path.attr.to_string();
        let r = crate::patch::resolve(rt, &attr_text)
            .ok_or_else(|| bad(format!("no such attribute in {} resources", rt.name)))?;
        let filter = match &path.filter {
            None => None,
            Some(f) => {
                if r.sub.is_some() || !r.attr.multi_valued || r.attr.ty != AttrType::Complex {
                    return Err(bad(
                        "a value filter needs a multi-valued complex attribute".into()
                    ));
                }
                let whole = Filter::ValuePath(
                    AttrPath {
                        urn: path.attr.urn.clone(),
                        name: path.attr.name.clone(),
                        sub: None,
                    },
                    Box::new(f.clone()),
                );
                match Query::check(&whole, rt).map_err(|e| bad(e.detail))? {
                    Query::Element(_, inner) => Some(*inner),
                    _ => return Err(bad("the value filter cannot be used".into())),
                }
            }
        };
        let mut sub = match &path.sub_after_filter {
            Some(s) => Some(
                r.attr
                    .sub(s)
                    .ok_or_else(|| bad(format!("'{}' has no sub-attribute '{s}'", r.attr.name)))?,
            ),
            None => r.sub,
        };
        let attr = Resolved { sub: None, ..r };
        if sub.is_none() && attr.attr.ty == AttrType::Complex {
            // RFC 7643 §2.4: a complex attribute's value is its `value` sub-attribute.
            sub = Some(attr.attr.sub("value").ok_or_else(|| {
                bad(format!(
                    "'{}' is a complex attribute: name one of its sub-attributes",
                    attr.attr.name
                ))
            })?);
        }
        let leaf = sub.unwrap_or(attr.attr);
        if matches!(leaf.ty, AttrType::Complex | AttrType::Binary) {
            return Err(bad(format!(
                "'{}' holds {} values, not text",
                leaf.name,
                leaf.ty.as_str()
            )));
        }
        Ok(Selector {
            text: text.to_string(),
            attr,
            filter,
            sub,
        })
    }

    /// The path as the administrator wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value the path selects in `resource`, as text. In a multi-valued attribute, the
    /// elements the value filter keeps are considered, the `primary` one first, then in order;
    /// the first that has the value wins. Empty text counts as no value.
    pub fn select(&self, resource: &Map<String, Value>) -> Option<String> {
        let value = container_ref(resource, self.attr.container)?.get(self.attr.attr.name)?;
        let elements: Vec<&Value> = match value {
            Value::Array(items) => {
                let mut kept: Vec<&Value> = items
                    .iter()
                    .filter(|e| self.filter.as_ref().is_none_or(|q| q.matches_element(e)))
                    .collect();
                // Stable: the primary element first, the rest in the order sent.
                kept.sort_by_key(|e| e.get("primary").and_then(Value::as_bool) != Some(true));
                kept
            }
            other => vec![other],
        };
        elements.into_iter().find_map(|e| {
            let v = match self.sub {
                Some(sub) => e.as_object()?.get(sub.name)?,
                None => e,
            };
            text_of(v)
        })
    }
}

fn text_of(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::USER_RESOURCE;

    fn user() -> Map<String, Value> {
        let v = json!({
            "userName": "ada",
            "title": "  Engineer ",
            "addresses": [
                {"type": "home", "locality": "Paris"},
                {"type": "work", "locality": "London"},
                {"type": "work", "locality": "Leeds", "primary": true}
            ],
            "emails": [{"value": "a@x.io"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "R&D", "manager": {"value": "m1"}
            },
            "urn:ietf:params:scim:schemas:extension:muster:2.0:User": {"c42OrgName": "Sales"}
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn sel(p: &str) -> Option<String> {
        Selector::parse(&USER_RESOURCE, p)
            .map_err(|e| e.detail)
            .map(|s| s.select(&user()))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn simple_qualified_and_extension_paths() {
        assert_eq!(sel("title").as_deref(), Some("Engineer"));
        assert_eq!(sel("TITLE").as_deref(), Some("Engineer"));
        assert_eq!(
            sel("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department").as_deref(),
            Some("R&D")
        );
        assert_eq!(sel("department").as_deref(), Some("R&D"));
        assert_eq!(sel("c42OrgName").as_deref(), Some("Sales"));
        assert_eq!(
            sel("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager").as_deref(),
            Some("m1")
        );
        assert_eq!(sel("nickName"), None);
    }

    #[test]
    fn value_filters_pick_the_primary_match_first() {
        assert_eq!(
            sel(r#"addresses[type eq "work"].locality"#).as_deref(),
            Some("Leeds")
        );
        assert_eq!(
            sel(r#"addresses[type eq "home"].locality"#).as_deref(),
            Some("Paris")
        );
        assert_eq!(sel(r#"addresses[type eq "other"].locality"#), None);
        assert_eq!(sel("emails").as_deref(), Some("a@x.io"));
        assert_eq!(sel("addresses.locality").as_deref(), Some("Leeds"));
    }

    #[test]
    fn bad_paths_are_refused_with_a_reason() {
        for (p, why) in [
            ("", "empty"),
            ("nosuch", "no such attribute"),
            ("title[type eq \"x\"]", "value filter"),
            ("addresses[nosuch eq \"x\"].locality", "not defined"),
            ("addresses[type eq \"work\"].nosuch", "no sub-attribute"),
            ("name", "complex attribute"),
            ("addresses[type eq", "("),
        ] {
            let err = Selector::parse(&USER_RESOURCE, p).err();
            let detail = err.map(|e| e.detail).unwrap_or_default();
            assert!(
                detail.contains(why) || (why == "(" && !detail.is_empty()),
                "{p}: {detail}"
            );
        }
    }
}
