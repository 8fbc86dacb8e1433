//! Sorting (RFC 7644 §3.4.2.3): the value a resource sorts by, compared by the attribute's type.

use std::cmp::Ordering;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::ScimError;
use crate::filter::AttrPath;
use crate::resource::container_ref;
use crate::schema::{AttrType, Resolved, ResourceTypeDef};

/// A `sortBy` resolved against a schema, with its direction.
#[derive(Debug, Clone, PartialEq)]
pub struct SortSpec {
    /// The attribute sorted by (a sub-attribute for complex attributes; `value` by default).
    pub by: Resolved,
    /// `sortOrder=descending`.
    pub descending: bool,
}

impl SortSpec {
    /// Resolves `sortBy`. A complex attribute sorts by its `value` sub-attribute.
    pub fn parse(
        rt: &'static ResourceTypeDef,
        sort_by: &str,
        descending: bool,
    ) -> Result<SortSpec, ScimError> {
        let bad = || {
            ScimError::invalid_value(format!(
                "sortBy: '{sort_by}' is not an attribute of {} resources",
                rt.name
            ))
        };
        let path = AttrPath::parse(sort_by).map_err(|_| bad())?;
        let mut by = rt
            .resolve(path.urn.as_deref(), &path.name, path.sub.as_deref())
            .ok_or_else(bad)?;
        if by.leaf().ty == AttrType::Complex {
            by.sub = Some(by.attr.sub("value").ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "sortBy: '{sort_by}' is complex; name one of its sub-attributes"
                ))
            })?);
        }
        Ok(SortSpec { by, descending })
    }

    /// Compares two resources: missing values last when ascending, first when descending.
    pub fn compare(&self, a: &Map<String, Value>, b: &Map<String, Value>) -> Ordering {
        let (ka, kb) = (sort_value(a, &self.by), sort_value(b, &self.by));
        let ord = match (&ka, &kb) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => {
                let o = x.cmp(y);
                if self.descending {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        match (&ka, &kb, self.descending) {
            // Descending puts missing values first.
            (None, Some(_), true) | (Some(_), None, true) => ord.reverse(),
            _ => ord,
        }
    }
}

/// A value to sort by.
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    /// `false < true`.
    Bool(bool),
    /// Numbers.
    Number(f64),
    /// Times.
    Time(OffsetDateTime),
    /// Strings, lower-cased unless case-exact.
    Text(String),
}

impl Eq for SortValue {}

impl SortValue {
    fn rank(&self) -> u8 {
        match self {
            SortValue::Bool(_) => 0,
            SortValue::Number(_) => 1,
            SortValue::Time(_) => 2,
            SortValue::Text(_) => 3,
        }
    }
}

impl Ord for SortValue {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (SortValue::Bool(a), SortValue::Bool(b)) => a.cmp(b),
            (SortValue::Number(a), SortValue::Number(b)) => a.total_cmp(b),
            (SortValue::Time(a), SortValue::Time(b)) => a.cmp(b),
            (SortValue::Text(a), SortValue::Text(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for SortValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The value a resource sorts by: for multi-valued attributes the primary value, else the first.
pub fn sort_value(resource: &Map<String, Value>, by: &Resolved) -> Option<SortValue> {
    let value = container_ref(resource, by.container)?.get(by.attr.name)?;
    let item = match value {
        Value::Array(items) => items
            .iter()
            .find(|i| i.get("primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| items.first())?,
        other => other,
    };
    let leaf = match by.sub {
        Some(sub) => item.get(sub.name)?,
        None => item,
    };
    let def = by.leaf();
    match (def.ty, leaf) {
        (_, Value::Null) => None,
        (AttrType::Boolean, Value::Bool(b)) => Some(SortValue::Bool(*b)),
        (AttrType::Integer | AttrType::Decimal, Value::Number(n)) => {
            n.as_f64().map(SortValue::Number)
        }
        (AttrType::DateTime, Value::String(s)) => {
            OffsetDateTime::parse(s, &Rfc3339).ok().map(SortValue::Time)
        }
        (_, Value::String(s)) => Some(SortValue::Text(if def.case_exact {
            s.clone()
        } else {
            s.to_lowercase()
        })),
        (_, other) => Some(SortValue::Text(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::USER_RESOURCE;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn sorts_by_type_with_missing_values_last_ascending() {
        let mut rows = [
            m(
                json!({"userName": "b", "emails": [{"value": "z@x"}, {"value": "a@x", "primary": true}]}),
            ),
            m(json!({"userName": "A"})),
            m(json!({"userName": "c", "emails": [{"value": "m@x"}]})),
        ];
        let by_name =
            SortSpec::parse(&USER_RESOURCE, "userName", false).unwrap_or_else(|e| panic!("{e}"));
        rows.sort_by(|a, b| by_name.compare(a, b));
        let names: Vec<&str> = rows.iter().filter_map(|r| r["userName"].as_str()).collect();
        assert_eq!(names, vec!["A", "b", "c"], "case-insensitive");
        let by_email =
            SortSpec::parse(&USER_RESOURCE, "emails", false).unwrap_or_else(|e| panic!("{e}"));
        rows.sort_by(|a, b| by_email.compare(a, b));
        let names: Vec<&str> = rows.iter().filter_map(|r| r["userName"].as_str()).collect();
        assert_eq!(
            names,
            vec!["b", "c", "A"],
            "primary email first, missing last"
        );
        let desc =
            SortSpec::parse(&USER_RESOURCE, "emails.value", true).unwrap_or_else(|e| panic!("{e}"));
        rows.sort_by(|a, b| desc.compare(a, b));
        let names: Vec<&str> = rows.iter().filter_map(|r| r["userName"].as_str()).collect();
        assert_eq!(names, vec!["A", "c", "b"], "descending: missing first");
        assert!(SortSpec::parse(&USER_RESOURCE, "nosuch", false).is_err());
        assert!(SortSpec::parse(&USER_RESOURCE, "name", false).is_err());
    }
}
