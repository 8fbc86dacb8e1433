//! The second stage of a filter: checked against a resource type's schemas (RFC 7644 §3.4.2.2).
//!
//! [`Query::check`] resolves every attribute path case-insensitively, rejects unknown attributes
//! and comparisons the attribute's type does not allow (`invalidFilter`), and fixes each value to
//! the attribute's type. The result is what storage renders to SQL; [`Query::matches`] evaluates
//! it over a resource's JSON, so any query is answered correctly whatever SQL can express.

use std::cmp::Ordering;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::ScimError;
use crate::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::resource::{container_ref, parse_bool};
use crate::schema::{AttrDef, AttrType, Container, Resolved, ResourceTypeDef};

/// A comparison value fixed to the type of the attribute it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `null`: `eq null` tests absence, `ne null` presence.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number (integer and decimal attributes).
    Number(f64),
    /// A string, lower-cased when the attribute is not case-exact.
    Text(String),
    /// A point in time.
    DateTime(OffsetDateTime),
}

/// A filter checked against a schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// The attribute has a non-empty value.
    Present(Resolved),
    /// The attribute compares with the operand.
    Compare(Resolved, CompareOp, Operand),
    /// Both hold.
    And(Box<Query>, Box<Query>),
    /// Either holds.
    Or(Box<Query>, Box<Query>),
    /// The inner query does not hold.
    Not(Box<Query>),
    /// Some value of a multi-valued (or complex) attribute satisfies the inner query, whose
    /// paths are that attribute's sub-attributes.
    Element(Resolved, Box<Query>),
}

impl Query {
    /// Checks a parsed filter against a resource type.
    pub fn check(filter: &Filter, rt: &'static ResourceTypeDef) -> Result<Query, ScimError> {
        check(filter, rt, None)
    }

    /// Whether the resource (full JSON, with `id` and `meta`) satisfies the query.
    pub fn matches(&self, resource: &Map<String, Value>) -> bool {
        eval(self, Ctx::Resource(resource))
    }

    /// Whether one value of a multi-valued attribute satisfies the inner query of a value
    /// filter (the `type eq "work"` of `emails[type eq "work"]`).
    pub fn matches_element(&self, element: &Value) -> bool {
        eval(self, Ctx::Element(element))
    }
}

fn check(
    filter: &Filter,
    rt: &'static ResourceTypeDef,
    parent: Option<&Resolved>,
) -> Result<Query, ScimError> {
    Ok(match filter {
        Filter::Present(path) => Query::Present(resolve(rt, parent, path)?),
        Filter::Compare(path, op, value) => {
            let mut r = resolve(rt, parent, path)?;
            if r.leaf().ty == AttrType::Complex {
                // RFC 7643 §2.4: a complex attribute compares by its `value` sub-attribute.
                match r.attr.sub("value") {
                    Some(v) if r.sub.is_none() => r.sub = Some(v),
                    _ => {
                        return Err(ScimError::invalid_filter(format!(
                            "'{path}' is a complex attribute: compare one of its sub-attributes"
                        )))
                    }
                }
            }
            let operand = operand(r.leaf(), *op, value, path)?;
            Query::Compare(r, *op, operand)
        }
        Filter::And(a, b) => Query::And(
            Box::new(check(a, rt, parent)?),
            Box::new(check(b, rt, parent)?),
        ),
        Filter::Or(a, b) => Query::Or(
            Box::new(check(a, rt, parent)?),
            Box::new(check(b, rt, parent)?),
        ),
        Filter::Not(inner) => Query::Not(Box::new(check(inner, rt, parent)?)),
        Filter::ValuePath(path, inner) => {
            if parent.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "value filters cannot nest ('{path}[...]')"
                )));
            }
            let r = resolve(rt, None, path)?;
            if r.sub.is_some() || r.attr.ty != AttrType::Complex {
                return Err(ScimError::invalid_filter(format!(
                    "'{path}[...]' needs a complex attribute before the brackets"
                )));
            }
            Query::Element(r, Box::new(check(inner, rt, Some(&r))?))
        }
    })
}

fn resolve(
    rt: &'static ResourceTypeDef,
    parent: Option<&Resolved>,
    path: &AttrPath,
) -> Result<Resolved, ScimError> {
    let unknown = || {
        ScimError::invalid_filter(format!(
            "the attribute '{path}' is not defined for {} resources",
            rt.name
        ))
    };
    match parent {
        None => rt
            .resolve(path.urn.as_deref(), &path.name, path.sub.as_deref())
            .ok_or_else(unknown),
        Some(p) => {
            // Inside `emails[...]`, `type` means `emails.type`; `emails.type` is accepted too.
            let sub_name = match (&path.urn, &path.sub) {
                (None, None) => path.name.as_str(),
                (None, Some(sub)) if path.name.eq_ignore_ascii_case(p.attr.name) => sub.as_str(),
                _ => return Err(unknown()),
            };
            let sub = p.attr.sub(sub_name).ok_or_else(unknown)?;
            Ok(Resolved {
                container: p.container,
                attr: p.attr,
                sub: Some(sub),
            })
        }
    }
}

fn operand(
    def: &AttrDef,
    op: CompareOp,
    value: &CompValue,
    path: &AttrPath,
) -> Result<Operand, ScimError> {
    let ordering = matches!(
        op,
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
    );
    let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    if let CompValue::Null = value {
        if matches!(op, CompareOp::Eq | CompareOp::Ne) {
            return Ok(Operand::Null);
        }
        return Err(ScimError::invalid_filter(format!(
            "'{path} {}' cannot compare with null",
            op.as_str()
        )));
    }
    let bad = |what: &str| {
        ScimError::invalid_filter(format!(
            "'{path}' is {what}: {value} cannot be compared with it"
        ))
    };
    Ok(match def.ty {
        AttrType::Boolean => {
            // RFC 7644 §3.4.2.2: gt/ge/lt/le on booleans fail with invalidFilter.
            if ordering || substring {
                return Err(ScimError::invalid_filter(format!(
                    "the operator '{}' does not apply to the boolean attribute '{path}'",
                    op.as_str()
                )));
            }
            match value {
                CompValue::Bool(b) => Operand::Bool(*b),
                CompValue::String(s) => {
                    Operand::Bool(parse_bool(s).ok_or_else(|| bad("a boolean"))?)
                }
                _ => return Err(bad("a boolean")),
            }
        }
        AttrType::Binary if ordering => {
            return Err(ScimError::invalid_filter(format!(
                "the operator '{}' does not apply to the binary attribute '{path}'",
                op.as_str()
            )))
        }
        AttrType::Integer | AttrType::Decimal => {
            if substring {
                return Err(ScimError::invalid_filter(format!(
                    "the operator '{}' does not apply to the numeric attribute '{path}'",
                    op.as_str()
                )));
            }
            match value {
                CompValue::Number(n) => Operand::Number(n.as_f64().ok_or_else(|| bad("a number"))?),
                CompValue::String(s) => {
                    Operand::Number(s.trim().parse().map_err(|_| bad("a number"))?)
                }
                _ => return Err(bad("a number")),
            }
        }
        AttrType::DateTime if !substring => match value {
            CompValue::String(s) => {
                Operand::DateTime(OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
                    ScimError::invalid_filter(format!(
                        "'{s}' is not a date and time such as 2024-01-31T12:00:00Z"
                    ))
                })?)
            }
            _ => return Err(bad("a date and time")),
        },
        _ => {
            let text = match value {
                CompValue::String(s) => s.clone(),
                CompValue::Number(n) => n.to_string(),
                CompValue::Bool(b) => b.to_string(),
                CompValue::Null => String::new(),
            };
            Operand::Text(if def.case_exact {
                text
            } else {
                text.to_lowercase()
            })
        }
    })
}

#[derive(Clone, Copy)]
enum Ctx<'a> {
    Resource(&'a Map<String, Value>),
    Element(&'a Value),
}

fn eval(q: &Query, ctx: Ctx<'_>) -> bool {
    match q {
        Query::And(a, b) => eval(a, ctx) && eval(b, ctx),
        Query::Or(a, b) => eval(a, ctx) || eval(b, ctx),
        Query::Not(inner) => !eval(inner, ctx),
        Query::Present(r) => values(r, ctx).iter().any(|v| present(v)),
        Query::Compare(r, op, operand) => {
            let vals = values(r, ctx);
            match (op, operand) {
                (CompareOp::Eq, Operand::Null) => !vals.iter().any(|v| present(v)),
                (CompareOp::Ne, Operand::Null) => vals.iter().any(|v| present(v)),
                (CompareOp::Ne, _) => !vals
                    .iter()
                    .any(|v| compare(r.leaf(), v, CompareOp::Eq, operand)),
                _ => vals.iter().any(|v| compare(r.leaf(), v, *op, operand)),
            }
        }
        Query::Element(r, inner) => {
            let Ctx::Resource(resource) = ctx else {
                return false;
            };
            let Some(value) = container_ref(resource, r.container).and_then(|c| c.get(r.attr.name))
            else {
                return false;
            };
            match value {
                Value::Array(items) => items.iter().any(|item| eval(inner, Ctx::Element(item))),
                other => eval(inner, Ctx::Element(other)),
            }
        }
    }
}

/// The values a path points at, flattened over multi-valued attributes.
fn values<'a>(r: &Resolved, ctx: Ctx<'a>) -> Vec<&'a Value> {
    let mut out = Vec::new();
    match ctx {
        Ctx::Element(element) => {
            if let Some(sub) = r.sub {
                if let Some(v) = element.get(sub.name) {
                    out.push(v);
                }
            }
        }
        Ctx::Resource(resource) => {
            let Some(value) = container_ref(resource, r.container).and_then(|c| c.get(r.attr.name))
            else {
                return out;
            };
            let items: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for item in items {
                match r.sub {
                    Some(sub) => {
                        if let Some(v) = item.get(sub.name) {
                            out.push(v);
                        }
                    }
                    None => out.push(item),
                }
            }
        }
    }
    out
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn compare(def: &AttrDef, v: &Value, op: CompareOp, operand: &Operand) -> bool {
    let ordering = match (operand, v) {
        (Operand::Bool(b), Value::Bool(x)) => return matches!(op, CompareOp::Eq) && x == b,
        (Operand::Bool(b), Value::String(s)) => {
            return matches!(op, CompareOp::Eq) && parse_bool(s) == Some(*b)
        }
        (Operand::Number(n), Value::Number(x)) => match x.as_f64().and_then(|x| x.partial_cmp(n)) {
            Some(o) => o,
            None => return false,
        },
        (Operand::DateTime(t), Value::String(s)) => match OffsetDateTime::parse(s, &Rfc3339) {
            Ok(x) => x.cmp(t),
            Err(_) => return false,
        },
        (Operand::Text(t), Value::String(s)) => {
            let owned;
            let s: &str = if def.case_exact {
                s
            } else {
                owned = s.to_lowercase();
                &owned
            };
            match op {
                CompareOp::Co => return s.contains(t.as_str()),
                CompareOp::Sw => return s.starts_with(t.as_str()),
                CompareOp::Ew => return s.ends_with(t.as_str()),
                _ => s.cmp(t.as_str()),
            }
        }
        _ => return false,
    };
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

/// What a filter asks of one resource type when a query spans several (RFC 7644 §3.4.2.1: a
/// query at the server root).
#[derive(Debug, Clone, PartialEq)]
pub enum Restricted {
    /// No resource of the type can match: skip it.
    Never,
    /// Every resource of the type matches: list it unfiltered.
    Always,
    /// The filter, with the terms on attributes the type does not have folded away.
    Only(Filter),
}

/// The filter as it applies to `rt` when the query spans resource types: "for filtered
/// attributes that are not part of a particular resource type, the service provider SHALL treat
/// the attribute as if there is no attribute value" (RFC 7644 §3.4.2.1). A term on such an
/// attribute is what it is on an absent value of an attribute the type has (see `eval`): `pr`,
/// `eq "x"` and the ordering operators are false, `eq null` is true, `ne null` false, `ne "x"`
/// true, and a value filter on it (`x[...]`) false. The rest of the filter is left as written, so
/// [`Query::check`] still refuses what the type's own attributes do not allow.
pub fn restrict(filter: &Filter, rt: &ResourceTypeDef) -> Restricted {
    let defined = |p: &AttrPath| {
        rt.resolve(p.urn.as_deref(), &p.name, p.sub.as_deref())
            .is_some()
    };
    let of = |b: bool| {
        if b {
            Restricted::Always
        } else {
            Restricted::Never
        }
    };
    match filter {
        Filter::Present(p) | Filter::ValuePath(p, _) if !defined(p) => Restricted::Never,
        Filter::Compare(p, op, value) if !defined(p) => match (op, value) {
            (CompareOp::Eq, CompValue::Null) => Restricted::Always,
            (CompareOp::Ne, CompValue::Null) => Restricted::Never,
            (CompareOp::Ne, _) => Restricted::Always,
            _ => Restricted::Never,
        },
        Filter::Present(_) | Filter::Compare(..) | Filter::ValuePath(..) => {
            Restricted::Only(filter.clone())
        }
        Filter::Not(inner) => match restrict(inner, rt) {
            Restricted::Only(f) => Restricted::Only(Filter::Not(Box::new(f))),
            other => of(other == Restricted::Never),
        },
        Filter::And(a, b) => match (restrict(a, rt), restrict(b, rt)) {
            (Restricted::Never, _) | (_, Restricted::Never) => Restricted::Never,
            (Restricted::Always, x) | (x, Restricted::Always) => x,
            (Restricted::Only(a), Restricted::Only(b)) => {
                Restricted::Only(Filter::And(Box::new(a), Box::new(b)))
            }
        },
        Filter::Or(a, b) => match (restrict(a, rt), restrict(b, rt)) {
            (Restricted::Always, _) | (_, Restricted::Always) => Restricted::Always,
            (Restricted::Never, x) | (x, Restricted::Never) => x,
            (Restricted::Only(a), Restricted::Only(b)) => {
                Restricted::Only(Filter::Or(Box::new(a), Box::new(b)))
            }
        },
    }
}

/// Whether the resolved path is exactly this top-level core attribute.
pub fn is_core(r: &Resolved, name: &str) -> bool {
    r.container == Container::Core && r.sub.is_none() && r.attr.name == name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{GROUP_RESOURCE, USER_RESOURCE};
    use serde_json::json;

    fn user() -> Map<String, Value> {
        match json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "BJ-1",
            "userName": "Bjensen@Example.com",
            "name": {"familyName": "O'Malley", "givenName": "Barbara"},
            "title": "Tour Guide",
            "userType": "Employee",
            "active": true,
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                       {"value": "babs@jensen.org", "type": "home"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Tour Operations", "manager": {"value": "26118915"}},
            "meta": {"resourceType": "User", "created": "2011-08-01T18:29:49.793Z", "lastModified": "2011-08-01T18:29:49.793Z"}
        }) {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn q(text: &str) -> Result<bool, ScimError> {
        let f = Filter::parse(text).map_err(|e| ScimError::invalid_filter(e.to_string()))?;
        Ok(Query::check(&f, &USER_RESOURCE)?.matches(&user()))
    }

    #[test]
    fn table_of_filters() {
        let cases: &[(&str, bool)] = &[
            (r#"userName eq "bjensen@example.com""#, true),
            (r#"USERNAME EQ "BJENSEN@EXAMPLE.COM""#, true),
            (r#"username Eq "bjensen@example.com""#, true),
            (r#"userName ne "bjensen@example.com""#, false),
            (r#"externalId eq "bj-1""#, false),
            (r#"externalId eq "BJ-1""#, true),
            (r#"name.familyName co "O'Malley""#, true),
            (r#"name.familyName co "malley""#, true),
            (r#"userName sw "bj""#, true),
            (r#"userName ew ".COM""#, true),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "B""#,
                true,
            ),
            (r#"title pr"#, true),
            (r#"nickName pr"#, false),
            (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, true),
            (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.created ge "2011-08-01T18:29:49.793Z""#, true),
            (r#"meta.created le "2011-08-01T20:29:49.793+02:00""#, true),
            (r#"title pr and userType eq "Employee""#, true),
            (r#"title pr or userType eq "Intern""#, true),
            (
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                true,
            ),
            (
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                false,
            ),
            (
                r#"userType eq "Employee" and (emails.type eq "work")"#,
                true,
            ),
            (
                r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
                true,
            ),
            (
                r#"emails[type eq "home" and value co "@example.com"]"#,
                false,
            ),
            (
                r#"emails[type eq "work"].value eq "bjensen@example.com""#,
                true,
            ),
            (
                r#"emails[type eq "home"].value eq "bjensen@example.com""#,
                false,
            ),
            (r#"active eq true"#, true),
            (r#"active eq "True""#, true),
            (r#"active eq false"#, false),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#,
                true,
            ),
            (r#"nickName eq null"#, true),
            (r#"title eq null"#, false),
            (r#"a1 pr or userName eq "x""#, false),
            (
                r#"name.givenName eq "and" or userName eq "bjensen@example.com" and title eq "Tour Guide""#,
                true,
            ),
            (
                r#"name.FamilyName eq x and (emails.Value co a or emails.Value co b)"#,
                false,
            ),
            (
                r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
                true,
            ),
            (r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true),
        ];
        for (text, expected) in cases {
            match q(text) {
                Ok(got) => assert_eq!(got, *expected, "{text}"),
                Err(e) if text.starts_with("a1") => {
                    assert_eq!(e.scim_type, Some(crate::ScimType::InvalidFilter))
                }
                Err(e) => panic!("{text}: {e}"),
            }
        }
    }

    #[test]
    fn invalid_filters() {
        for text in [
            r#"nosuch eq "x""#,
            r#"name.nosuch eq "x""#,
            r#"active gt true"#,
            r#"active co "t""#,
            r#"meta.created gt "yesterday""#,
            r#"name eq "x""#,
            r#"emails[nosuch eq "x"]"#,
            r#"userName[value eq "x"]"#,
            r#"userName gt null"#,
        ] {
            let err = q(text)
                .err()
                .unwrap_or_else(|| panic!("{text} was accepted"));
            assert_eq!(
                err.scim_type,
                Some(crate::ScimType::InvalidFilter),
                "{text}"
            );
            assert_eq!(err.status, 400);
        }
    }

    #[test]
    fn group_display_name_is_checked_against_the_group_schema() {
        let f = Filter::parse(r#"displayName eq "Sales""#).unwrap_or_else(|e| panic!("{e}"));
        assert!(Query::check(&f, &GROUP_RESOURCE).is_ok());
        let f = Filter::parse(r#"userName eq "Sales""#).unwrap_or_else(|e| panic!("{e}"));
        assert!(Query::check(&f, &GROUP_RESOURCE).is_err());
    }

    #[test]
    fn a_query_across_types_treats_another_types_attributes_as_absent() {
        let r = |text: &str, rt: &ResourceTypeDef| match Filter::parse(text) {
            Ok(f) => match restrict(&f, rt) {
                Restricted::Only(f) => f.to_string(),
                Restricted::Always => "ALL".into(),
                Restricted::Never => "NONE".into(),
            },
            Err(e) => panic!("{e}"),
        };
        let (u, g) = (&USER_RESOURCE, &GROUP_RESOURCE);
        assert_eq!(r("userName eq \"a\"", u), "userName eq \"a\"");
        assert_eq!(r("userName eq \"a\"", g), "NONE");
        assert_eq!(r("members pr or userName pr", u), "userName pr");
        assert_eq!(r("members pr or userName pr", g), "members pr");
        assert_eq!(
            r("userName eq \"a\" or displayName eq \"G\"", g),
            "displayName eq \"G\""
        );
        assert_eq!(r("userName ne \"a\"", g), "ALL");
        assert_eq!(r("userName eq null", g), "ALL");
        assert_eq!(r("userName ne null", g), "NONE");
        assert_eq!(r("not (userName pr)", g), "ALL");
        assert_eq!(
            r("not (userName pr) and displayName sw \"x\"", g),
            "displayName sw \"x\""
        );
        assert_eq!(
            r("emails[type eq \"work\"] or displayName pr", g),
            "displayName pr"
        );
        assert_eq!(r("userName gt \"m\" and members pr", u), "NONE");
        assert_eq!(
            r(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"x\"",
                g
            ),
            "NONE"
        );
        // A type's own attributes are left for the check, which still refuses what they do not allow.
        match Filter::parse("displayName pr and meta.created gt \"x\"") {
            Ok(f) => assert!(matches!(restrict(&f, g), Restricted::Only(_))),
            Err(e) => panic!("{e}"),
        }
    }
}
