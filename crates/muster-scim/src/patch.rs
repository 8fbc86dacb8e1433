//! PATCH (RFC 7644 §3.5.2): operations parsed from a request and applied to a resource.
//!
//! [`apply`] works on a copy: a request whose operations do not all succeed changes nothing.
//! Group membership is not applied here: `members` operations come back as [`MemberChange`]s,
//! so that storage can add or remove the named members without reading the whole group.
//!
//! Accepted beyond the letter of the RFC, as real providers send it: `op` in any case
//! (`Replace`), booleans as strings, path-less values with dotted keys (`name.givenName`) and
//! schema-qualified keys, `add` on a single-valued attribute that does not exist yet, `add` or
//! `replace` through a value filter that matches nothing (the value is created from the filter's
//! `eq` terms, as Entra ID expects for `emails[type eq "work"].value`), and the resource's own
//! `id` inside a path-less value (Okta sends it).

use serde_json::{Map, Value};

use crate::error::ScimError;
use crate::filter::{AttrPath, CompValue, CompareOp, Filter, PatchPath};
use crate::query::Query;
use crate::resource::{coerce_attr, coerce_scalar, coerce_single, container_mut, normalize};
use crate::schema::{AttrDef, AttrType, Container, Mutability, Resolved, ResourceTypeDef};

/// The PatchOp message schema (RFC 7644 §3.5.2).
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The most operations one PATCH request may carry.
pub const MAX_PATCH_OPS: usize = 1000;

/// `add`, `replace` or `remove`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// RFC 7644 §3.5.2.1.
    Add,
    /// RFC 7644 §3.5.2.3.
    Replace,
    /// RFC 7644 §3.5.2.2.
    Remove,
}

/// One PATCH operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    /// What to do.
    pub kind: OpKind,
    /// Where; `None` means the resource itself.
    pub path: Option<PatchPath>,
    /// The value, if any.
    pub value: Option<Value>,
}

/// A change to a group's membership asked for by a PATCH.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    /// Add these member ids (present ones are left alone).
    Add(Vec<String>),
    /// Remove these member ids (absent ones are ignored).
    Remove(Vec<String>),
    /// Remove the members a value filter selects (`members[display sw "a"]`).
    RemoveWhere(Query),
    /// Remove every member.
    RemoveAll,
    /// Make the membership exactly these ids.
    ReplaceAll(Vec<String>),
}

/// The result of applying a PATCH: the new canonical resource and the membership changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Patched {
    /// The resource after the operations, in canonical form.
    pub resource: Map<String, Value>,
    /// Membership changes, in request order.
    pub members: Vec<MemberChange>,
}

fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Reads a PatchOp request body.
pub fn parse(body: &Value) -> Result<Vec<PatchOp>, ScimError> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body must be a JSON object with 'Operations'",
        ));
    };
    if let Some(schemas) = get_ci(obj, "schemas") {
        let ok = schemas.as_array().is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_SCHEMA))
            })
        });
        if !ok {
            return Err(ScimError::invalid_value(format!(
                "a PATCH body's 'schemas' must be [\"{PATCH_SCHEMA}\"]"
            )));
        }
    }
    let Some(Value::Array(ops)) = get_ci(obj, "Operations") else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body needs an 'Operations' array",
        ));
    };
    if ops.is_empty() {
        return Err(ScimError::invalid_value("'Operations' is empty"));
    }
    if ops.len() > MAX_PATCH_OPS {
        return Err(ScimError::invalid_value(format!(
            "a PATCH may carry at most {MAX_PATCH_OPS} operations"
        )));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let Value::Object(op) = op else {
                return Err(ScimError::invalid_syntax(format!(
                    "operation {} is not an object",
                    i + 1
                )));
            };
            let kind = match get_ci(op, "op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("add") => OpKind::Add,
                Some("replace") => OpKind::Replace,
                Some("remove") => OpKind::Remove,
                other => {
                    return Err(ScimError::invalid_value(format!(
                        "operation {}: 'op' must be add, replace or remove, not {}",
                        i + 1,
                        other.unwrap_or("missing")
                    )))
                }
            };
            let path = match get_ci(op, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.trim().is_empty() => None,
                Some(Value::String(p)) => Some(PatchPath::parse(p).map_err(|e| {
                    ScimError::invalid_path(format!("operation {}: invalid path '{p}': {e}", i + 1))
                })?),
                Some(_) => {
                    return Err(ScimError::invalid_path(format!(
                        "operation {}: 'path' must be a string",
                        i + 1
                    )))
                }
            };
            let value = get_ci(op, "value").cloned();
            if kind != OpKind::Remove && value.is_none() {
                return Err(ScimError::invalid_value(format!(
                    "operation {}: '{}' needs a 'value'",
                    i + 1,
                    op_name(kind)
                )));
            }
            if kind == OpKind::Remove && path.is_none() {
                return Err(ScimError::no_target(format!(
                    "operation {}: 'remove' needs a 'path'",
                    i + 1
                )));
            }
            Ok(PatchOp { kind, path, value })
        })
        .collect()
}

fn op_name(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Add => "add",
        OpKind::Replace => "replace",
        OpKind::Remove => "remove",
    }
}

/// Applies operations to a canonical resource whose id is `id`.
pub fn apply(
    rt: &'static ResourceTypeDef,
    resource: &Map<String, Value>,
    id: &str,
    ops: &[PatchOp],
) -> Result<Patched, ScimError> {
    let mut work = resource.clone();
    let mut members = Vec::new();
    for op in ops {
        match &op.path {
            Some(path) => apply_path(
                rt,
                &mut work,
                &mut members,
                id,
                op.kind,
                path,
                op.value.as_ref(),
            )?,
            None => {
                let Some(Value::Object(values)) = &op.value else {
                    return Err(ScimError::invalid_value(format!(
                        "'{}' without a path needs an object of attributes as its value",
                        op_name(op.kind)
                    )));
                };
                for (key, value) in values {
                    apply_key(rt, &mut work, &mut members, id, op.kind, key, value)?;
                }
            }
        }
    }
    let normalized = normalize(rt, &Value::Object(work))?;
    Ok(Patched {
        resource: normalized.resource,
        members,
    })
}

/// A key of a path-less `add`/`replace` value.
fn apply_key(
    rt: &'static ResourceTypeDef,
    work: &mut Map<String, Value>,
    members: &mut Vec<MemberChange>,
    id: &str,
    kind: OpKind,
    key: &str,
    value: &Value,
) -> Result<(), ScimError> {
    if key.eq_ignore_ascii_case("schemas") {
        return Ok(());
    }
    if let Some(ext) = rt.extension(key) {
        let Value::Object(inner) = value else {
            return Err(ScimError::invalid_value(format!(
                "'{}' must be an object",
                ext.id
            )));
        };
        for (k, v) in inner {
            if let Some(def) = ext.attr(k) {
                let r = Resolved {
                    container: Container::Extension(ext.id),
                    attr: def,
                    sub: None,
                };
                set_resolved(work, members, id, kind, r, None, None, Some(v))?;
            }
        }
        return Ok(());
    }
    match resolve(rt, key) {
        Some(r) => set_resolved(work, members, id, kind, r, None, None, Some(value)),
        // Unknown attributes are dropped, as on POST and PUT.
        None => Ok(()),
    }
}

/// Resolves a path: core, schema-qualified, or an unqualified extension attribute (`manager`,
/// `c42OrgName`) when no core attribute has that name.
pub(crate) fn resolve(rt: &'static ResourceTypeDef, key: &str) -> Option<Resolved> {
    if let Some(r) = rt.resolve_key(key) {
        return Some(r);
    }
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        return None;
    }
    let (name, sub) = match key.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (key, None),
    };
    rt.extensions.iter().find_map(|ext| {
        let attr = ext.attr(name)?;
        let sub = match sub {
            Some(s) => Some(attr.sub(s)?),
            None => None,
        };
        Some(Resolved {
            container: Container::Extension(ext.id),
            attr,
            sub,
        })
    })
}

#[allow(clippy::too_many_arguments)]
fn apply_path(
    rt: &'static ResourceTypeDef,
    work: &mut Map<String, Value>,
    members: &mut Vec<MemberChange>,
    id: &str,
    kind: OpKind,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let attr_text = path.attr.to_string();
    if let (Some(ext), None) = (rt.extension(&attr_text), &path.filter) {
        // The whole extension: `"path": "urn:…:enterprise:2.0:User"`.
        if kind == OpKind::Remove {
            work.remove(ext.id);
            return Ok(());
        }
        return match value {
            Some(v) => apply_key(rt, work, members, id, kind, ext.id, v),
            None => Ok(()),
        };
    }
    let r = resolve(rt, &attr_text).ok_or_else(|| {
        ScimError::invalid_path(format!(
            "'{path}' does not name an attribute of {} resources",
            rt.name
        ))
    })?;
    let filter = match &path.filter {
        Some(f) => {
            if r.sub.is_some() || !r.attr.multi_valued || r.attr.ty != AttrType::Complex {
                return Err(ScimError::invalid_path(format!(
                    "'{path}': a value filter needs a multi-valued complex attribute"
                )));
            }
            let whole = Filter::ValuePath(
                AttrPath {
                    urn: path.attr.urn.clone(),
                    name: path.attr.name.clone(),
                    sub: None,
                },
                Box::new(f.clone()),
            );
            match Query::check(&whole, rt)
                .map_err(|e| ScimError::invalid_path(format!("'{path}': {}", e.detail)))?
            {
                Query::Element(_, inner) => Some((f, *inner)),
                _ => None,
            }
        }
        None => None,
    };
    let sub_after =
        match &path.sub_after_filter {
            Some(s) => Some(r.attr.sub(s).ok_or_else(|| {
                ScimError::invalid_path(format!("'{path}': no sub-attribute '{s}'"))
            })?),
            None => None,
        };
    set_resolved(
        work,
        members,
        id,
        kind,
        r,
        filter.as_ref().map(|(f, q)| (*f, q)),
        sub_after,
        value,
    )
}

/// Applies one operation at a resolved attribute, optionally through a value filter.
#[allow(clippy::too_many_arguments)]
fn set_resolved(
    work: &mut Map<String, Value>,
    members: &mut Vec<MemberChange>,
    id: &str,
    kind: OpKind,
    r: Resolved,
    filter: Option<(&Filter, &Query)>,
    sub_after: Option<&'static AttrDef>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let name = r.canonical();
    if r.container == Container::Core && r.attr.name == "members" {
        return member_change(members, kind, r, filter, value);
    }
    if r.container == Container::Core && r.attr.name == "id" {
        // Okta's path-less replace carries the resource's own id: harmless if unchanged.
        if kind != OpKind::Remove && value.and_then(Value::as_str) == Some(id) {
            return Ok(());
        }
        return Err(ScimError::mutability("'id' is read-only"));
    }
    let leaf_mutability = r.sub.map(|s| s.mutability).unwrap_or(r.attr.mutability);
    if r.attr.mutability == Mutability::ReadOnly || leaf_mutability == Mutability::ReadOnly {
        return Err(ScimError::mutability(format!("'{name}' is read-only")));
    }
    if r.attr.mutability == Mutability::WriteOnly {
        // `password`: accepted, never stored.
        return Ok(());
    }
    if kind == OpKind::Remove && r.attr.required && r.sub.is_none() && filter.is_none() {
        return Err(ScimError::mutability(format!(
            "'{name}' is required and cannot be removed"
        )));
    }
    let target = container_mut(work, r.container)?;
    match filter {
        None => apply_plain(target, kind, r, value),
        Some((f, q)) => apply_filtered(target, kind, r, f, q, sub_after, value),
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty_value),
        _ => false,
    }
}

/// `add`/`replace`/`remove` at `attr` or `attr.sub`, no filter.
fn apply_plain(
    target: &mut Map<String, Value>,
    kind: OpKind,
    r: Resolved,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let attr = r.attr;
    if let Some(sub) = r.sub {
        let slot = target.entry(attr.name.to_string()).or_insert_with(|| {
            if attr.multi_valued {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            }
        });
        let coerced = match (kind, value) {
            (OpKind::Remove, _) | (_, None) => None,
            (_, Some(v)) => coerce_scalar(sub, v)?,
        };
        let mut edit = |obj: &mut Map<String, Value>| match &coerced {
            Some(v) => {
                obj.insert(sub.name.to_string(), v.clone());
            }
            None => {
                obj.remove(sub.name);
            }
        };
        match slot {
            Value::Array(items) => {
                if items.is_empty() && coerced.is_some() {
                    items.push(Value::Object(Map::new()));
                }
                items
                    .iter_mut()
                    .filter_map(Value::as_object_mut)
                    .for_each(&mut edit);
            }
            Value::Object(obj) => edit(obj),
            other => {
                let mut obj = Map::new();
                edit(&mut obj);
                *other = Value::Object(obj);
            }
        }
        if target.get(attr.name).is_some_and(is_empty_value) {
            target.remove(attr.name);
        }
        return Ok(());
    }
    let value = match (kind, value) {
        (OpKind::Remove, Some(v)) if attr.multi_valued && attr.ty == AttrType::Complex => {
            // Remove the listed values (`{"op":"remove","path":"emails","value":[{"value":"x"}]}`).
            let listed = coerce_attr(attr, v)?.unwrap_or(Value::Array(Vec::new()));
            let listed = listed.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = target.get_mut(attr.name) {
                items.retain(|item| !listed.iter().any(|l| same_value(item, l)));
                if items.is_empty() {
                    target.remove(attr.name);
                }
            }
            return Ok(());
        }
        (OpKind::Remove, _) => {
            target.remove(attr.name);
            return Ok(());
        }
        (_, None) => return Ok(()),
        (_, Some(v)) => v,
    };
    if is_empty_value(value) && !attr.multi_valued {
        // Entra ID clears an attribute (its manager) by replacing it with an empty value.
        target.remove(attr.name);
        return Ok(());
    }
    let Some(coerced) = coerce_attr(attr, value)? else {
        if kind == OpKind::Replace {
            target.remove(attr.name);
        }
        return Ok(());
    };
    match (kind, attr.multi_valued, attr.ty) {
        (OpKind::Add, true, _) => {
            let slot = target
                .entry(attr.name.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            if let (Value::Array(items), Value::Array(new)) = (slot, coerced) {
                for v in new {
                    if !items.iter().any(|i| i == &v) {
                        items.push(v);
                    }
                }
            }
        }
        (_, false, AttrType::Complex) => {
            // RFC 7644 §3.5.2.3: sub-attributes not given are left unchanged.
            let slot = target
                .entry(attr.name.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let (Value::Object(obj), Value::Object(new)) = (slot, coerced) {
                for (k, v) in new {
                    obj.insert(k, v);
                }
            }
        }
        _ => {
            target.insert(attr.name.to_string(), coerced);
        }
    }
    Ok(())
}

/// Whether a stored value is the one a remove names: same `value` if both have one, else equal.
fn same_value(item: &Value, listed: &Value) -> bool {
    match (item.get("value"), listed.get("value")) {
        (Some(a), Some(b)) => a == b,
        _ => item == listed,
    }
}

/// The `sub eq value` terms of an `and`-only filter: what a new value must look like to match it.
fn eq_terms(f: &Filter, out: &mut Vec<(String, Value)>) -> bool {
    match f {
        Filter::And(a, b) => eq_terms(a, out) && eq_terms(b, out),
        Filter::Compare(p, CompareOp::Eq, v) if p.urn.is_none() && p.sub.is_none() => {
            let v = match v {
                CompValue::String(s) => Value::String(s.clone()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Number(n) => Value::Number(n.clone()),
                CompValue::Null => return false,
            };
            out.push((p.name.clone(), v));
            true
        }
        _ => false,
    }
}

fn apply_filtered(
    target: &mut Map<String, Value>,
    kind: OpKind,
    r: Resolved,
    f: &Filter,
    q: &Query,
    sub_after: Option<&'static AttrDef>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let attr = r.attr;
    let mut items = match target.remove(attr.name) {
        Some(Value::Array(items)) => items,
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let matched: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, v)| q.matches_element(v))
        .map(|(i, _)| i)
        .collect();
    match kind {
        OpKind::Remove => match sub_after {
            None => {
                let mut i = 0;
                items.retain(|_| {
                    let keep = !matched.contains(&i);
                    i += 1;
                    keep
                });
            }
            Some(sub) => {
                for i in &matched {
                    if let Some(obj) = items[*i].as_object_mut() {
                        obj.remove(sub.name);
                    }
                }
            }
        },
        OpKind::Add | OpKind::Replace => {
            let value =
                value.ok_or_else(|| ScimError::invalid_value("the operation needs a value"))?;
            let patch: Map<String, Value> = match sub_after {
                Some(sub) => {
                    let mut m = Map::new();
                    if let Some(v) = coerce_scalar(sub, value)? {
                        m.insert(sub.name.to_string(), v);
                    }
                    m
                }
                None => match coerce_single(attr, value)? {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                },
            };
            if matched.is_empty() {
                let mut terms = Vec::new();
                if !eq_terms(f, &mut terms) {
                    return Err(ScimError::no_target(format!(
                        "no value of '{}' matches the filter '{f}'",
                        r.canonical()
                    )));
                }
                let mut fresh = Map::new();
                for (k, v) in terms {
                    if let Some(sub) = attr.sub(&k) {
                        if let Some(v) = coerce_scalar(sub, &v)? {
                            fresh.insert(sub.name.to_string(), v);
                        }
                    }
                }
                fresh.extend(patch);
                items.push(Value::Object(fresh));
            } else {
                for i in &matched {
                    if let Some(obj) = items[*i].as_object_mut() {
                        if kind == OpKind::Replace && sub_after.is_none() {
                            obj.clear();
                        }
                        for (k, v) in &patch {
                            obj.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        }
    }
    items.retain(|v| !is_empty_value(v));
    if !items.is_empty() {
        target.insert(attr.name.to_string(), Value::Array(items));
    }
    Ok(())
}

fn member_ids(value: Option<&Value>) -> Result<Vec<String>, ScimError> {
    let items: Vec<&Value> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(other) => vec![other],
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(o) => get_ci(o, "value")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    ScimError::invalid_value("each member needs a 'value': the id of a user")
                }),
            Value::String(s) => Ok(s.clone()),
            _ => Err(ScimError::invalid_value(
                "each member needs a 'value': the id of a user",
            )),
        })
        .collect()
}

/// The `value eq "id"` terms of an `or`-only filter over members.
fn or_value_ids(q: &Query, out: &mut Vec<String>) -> bool {
    match q {
        Query::Or(a, b) => or_value_ids(a, out) && or_value_ids(b, out),
        Query::Compare(r, CompareOp::Eq, crate::query::Operand::Text(t))
            if r.sub.is_some_and(|s| s.name == "value") =>
        {
            out.push(t.clone());
            true
        }
        _ => false,
    }
}

fn member_change(
    members: &mut Vec<MemberChange>,
    kind: OpKind,
    r: Resolved,
    filter: Option<(&Filter, &Query)>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if r.sub.is_some() {
        return Err(ScimError::mutability(
            "members' sub-attributes cannot be changed; add or remove members",
        ));
    }
    let change = match (kind, filter) {
        (OpKind::Add, None) => MemberChange::Add(member_ids(value)?),
        (OpKind::Replace, None) => MemberChange::ReplaceAll(member_ids(value)?),
        (OpKind::Remove, None) => match value {
            // Entra ID: remove only the members listed in the value.
            Some(v) if !v.is_null() => MemberChange::Remove(member_ids(Some(v))?),
            _ => MemberChange::RemoveAll,
        },
        (OpKind::Remove, Some((_, q))) => {
            let mut ids = Vec::new();
            if or_value_ids(q, &mut ids) {
                MemberChange::Remove(ids)
            } else {
                MemberChange::RemoveWhere(q.clone())
            }
        }
        (_, Some(_)) => {
            return Err(ScimError::invalid_path(
                "members can be added with path 'members', not through a value filter",
            ))
        }
    };
    members.push(change);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ENTERPRISE_USER_SCHEMA, GROUP_RESOURCE, USER_RESOURCE};
    use serde_json::json;

    fn user() -> Map<String, Value> {
        match normalize(
            &USER_RESOURCE,
            &json!({
                "userName": "bjensen", "active": true, "displayName": "Babs",
                "name": {"givenName": "Barbara", "familyName": "Jensen"},
                "emails": [{"value": "b@work.example", "type": "work", "primary": true}, {"value": "b@home.example", "type": "home"}],
                ENTERPRISE_USER_SCHEMA: {"department": "Tours"}
            }),
        ) {
            Ok(n) => n.resource,
            Err(e) => panic!("{e}"),
        }
    }

    fn run(ops: Value) -> Result<Patched, ScimError> {
        let ops = parse(&json!({"schemas": [PATCH_SCHEMA], "Operations": ops}))?;
        apply(&USER_RESOURCE, &user(), "the-id", &ops)
    }

    fn ok(ops: Value) -> Map<String, Value> {
        match run(ops) {
            Ok(p) => p.resource,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn rfc_examples() {
        // RFC 7644 §3.5.2.1: add emails; §3.5.2.2: remove; §3.5.2.3: replace.
        let r = ok(
            json!([{"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org", "type": "other"}]}]),
        );
        assert_eq!(r["emails"].as_array().map(Vec::len), Some(3));
        let r = ok(
            json!([{"op": "add", "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}], "nickName": "Babs"}}]),
        );
        assert_eq!(r["nickName"], "Babs");
        let r = ok(
            json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example\"]"}]),
        );
        assert_eq!(
            r["emails"],
            json!([{"value": "b@home.example", "type": "home"}])
        );
        let r = ok(
            json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"type": "work", "value": "new@work.example"}}]),
        );
        assert_eq!(
            r["emails"][0],
            json!({"type": "work", "value": "new@work.example"})
        );
        let r = ok(
            json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "x@home.example"}]),
        );
        assert_eq!(r["emails"][1]["value"], "x@home.example");
        let r = ok(
            json!([{"op": "replace", "value": {"emails": [{"value": "only@example.com", "type": "work"}], "userName": "newname"}}]),
        );
        assert_eq!(
            r["emails"],
            json!([{"value": "only@example.com", "type": "work"}])
        );
        assert_eq!(r["userName"], "newname");
        let r = ok(json!([{"op": "remove", "path": "name.familyName"}]));
        assert_eq!(r["name"], json!({"givenName": "Barbara"}));
    }

    #[test]
    fn provider_dialects() {
        // Entra ID default mode: capitalised ops, string booleans, Add on an absent value.
        let r = ok(json!([{"op": "Replace", "path": "active", "value": "False"}]));
        assert_eq!(r["active"], false);
        let r = ok(json!([{"op": "Add", "path": "title", "value": "Lead"}]));
        assert_eq!(r["title"], "Lead");
        let r = ok(
            json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}]),
        );
        assert_eq!(
            r["phoneNumbers"],
            json!([{"type": "mobile", "value": "+1 555"}])
        );
        let r = ok(
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "moved@work.example"}]),
        );
        assert_eq!(r["emails"][0]["value"], "moved@work.example");
        assert_eq!(
            r["emails"][0]["primary"], true,
            "other sub-attributes are kept"
        );
        // Entra manager: added as a one-element list, removed by an empty replace.
        let r = ok(
            json!([{"op": "Add", "path": "manager", "value": [{"$ref": null, "value": "m-1"}]}]),
        );
        assert_eq!(
            r[ENTERPRISE_USER_SCHEMA]["manager"],
            json!({"value": "m-1"})
        );
        let r = ok(
            json!([{"op": "Add", "path": "manager", "value": [{"value": "m-1"}]}, {"op": "Replace", "path": "manager", "value": ""}]),
        );
        assert!(r[ENTERPRISE_USER_SCHEMA].get("manager").is_none());
        // aadOptscim062020: path-less replace with dotted and URN keys.
        let r = ok(
            json!([{"op": "replace", "value": {"displayName": "x", "name.givenName": "y",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "7"}}]),
        );
        assert_eq!(r["displayName"], "x");
        assert_eq!(r["name"], json!({"givenName": "y", "familyName": "Jensen"}));
        assert!(
            r.get("name.givenName").is_none(),
            "a dotted key is a path, not a literal key"
        );
        assert_eq!(r[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "7");
        assert!(r
            .get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber")
            .is_none());
        // Okta: path-less replace of active.
        let r = ok(json!([{"op": "replace", "value": {"active": false}}]));
        assert_eq!(r["active"], false);
        // Okta custom attribute at the top level in a path-less value.
        let r = ok(json!([{"op": "replace", "value": {"c42OrgName": "Sales"}}]));
        assert_eq!(
            r["urn:ietf:params:scim:schemas:extension:muster:2.0:User"]["c42OrgName"],
            "Sales"
        );
    }

    #[test]
    fn errors() {
        let cases = [
            (
                json!([{"op": "replace", "path": "id", "value": "other"}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}]),
                "mutability",
            ),
            (
                json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
                "mutability",
            ),
            (json!([{"op": "remove", "path": "userName"}]), "mutability"),
            (json!([{"op": "remove"}]), "noTarget"),
            (
                json!([{"op": "replace", "path": "nosuch", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq \"work\" or type eq \"x\"].value", "value": "z"}, {"op": "replace", "path": "emails[value sw \"zzz\"].value", "value": "z"}]),
                "noTarget",
            ),
            (
                json!([{"op": "move", "path": "title", "value": "x"}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "path": "active", "value": "maybe"}]),
                "invalidValue",
            ),
            (json!([{"op": "replace", "path": "title"}]), "invalidValue"),
            (
                json!([{"op": "replace", "value": "not an object"}]),
                "invalidValue",
            ),
        ];
        for (ops, scim_type) in cases {
            let err = run(ops.clone())
                .err()
                .unwrap_or_else(|| panic!("{ops} succeeded"));
            assert_eq!(
                err.scim_type.map(|t| t.as_str()),
                Some(scim_type),
                "{ops}: {err}"
            );
        }
        assert!(parse(&json!({"schemas": ["urn:wrong"], "Operations": [{"op": "add", "path": "title", "value": "x"}]})).is_err());
        assert!(parse(&json!({"Operations": []})).is_err());
        // Okta's own id in a path-less replace is fine.
        assert!(
            run(json!([{"op": "replace", "value": {"id": "the-id", "displayName": "Okta"}}]))
                .is_ok()
        );
    }

    #[test]
    fn whole_extension_paths() {
        let r = ok(
            json!([{"op": "add", "path": ENTERPRISE_USER_SCHEMA, "value": {"employeeNumber": "42"}}]),
        );
        assert_eq!(
            r[ENTERPRISE_USER_SCHEMA],
            json!({"department": "Tours", "employeeNumber": "42"})
        );
        let r = ok(json!([{"op": "remove", "path": ENTERPRISE_USER_SCHEMA}]));
        assert!(r.get(ENTERPRISE_USER_SCHEMA).is_none());
        assert_eq!(
            r["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
        );
    }

    #[test]
    fn a_failing_patch_changes_nothing() {
        let before = user();
        let ops = parse(
            &json!({"Operations": [{"op": "replace", "path": "title", "value": "x"}, {"op": "remove", "path": "userName"}]}),
        );
        let ops = ops.unwrap_or_else(|e| panic!("{e}"));
        assert!(apply(&USER_RESOURCE, &before, "id", &ops).is_err());
        assert_eq!(before, user());
    }

    #[test]
    fn member_operations() {
        let group = match normalize(&GROUP_RESOURCE, &json!({"displayName": "G"})) {
            Ok(n) => n.resource,
            Err(e) => panic!("{e}"),
        };
        let run_g = |ops: Value| -> Patched {
            let ops = parse(&json!({"Operations": ops})).unwrap_or_else(|e| panic!("{e}"));
            apply(&GROUP_RESOURCE, &group, "gid", &ops).unwrap_or_else(|e| panic!("{e}"))
        };
        let p = run_g(
            json!([{"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}]),
        );
        assert!(
            p.resource.get("members").is_none(),
            "members are not part of the stored resource"
        );
        assert_eq!(
            p.members,
            vec![MemberChange::Add(vec!["u1".into(), "u2".into()])]
        );
        let p = run_g(json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}]}]));
        assert_eq!(p.members, vec![MemberChange::Remove(vec!["u1".into()])]);
        let p = run_g(json!([{"op": "remove", "path": "members[value eq \"u2\"]"}]));
        assert_eq!(p.members, vec![MemberChange::Remove(vec!["u2".into()])]);
        let p = run_g(json!([{"op": "remove", "path": "members"}]));
        assert_eq!(p.members, vec![MemberChange::RemoveAll]);
        let p = run_g(json!([{"op": "replace", "path": "members", "value": [{"value": "u3"}]}]));
        assert_eq!(p.members, vec![MemberChange::ReplaceAll(vec!["u3".into()])]);
        // Okta: rename with the id, path-less members replace.
        let p = run_g(
            json!([{"op": "replace", "value": {"id": "gid", "displayName": "Renamed"}}, {"op": "replace", "value": {"members": [{"value": "u9"}]}}]),
        );
        assert_eq!(p.resource["displayName"], "Renamed");
        assert_eq!(p.members, vec![MemberChange::ReplaceAll(vec!["u9".into()])]);
        assert!(p.resource.get("members").is_none());
    }
}
