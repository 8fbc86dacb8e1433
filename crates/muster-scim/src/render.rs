//! Resources as they are sent (RFC 7643 §3.1, §4): `schemas`, `id`, the stored attributes,
//! references to other resources (`$ref`) and `meta`, with every URL built from the resource
//! type's endpoint under the provider's base URL (RFC 7644 §3.1). The domain keeps resources in
//! canonical form; this is the one place their wire form is put together.

use crate::schema::{ResourceTypeDef, GROUP_RESOURCE, USER_RESOURCE};
use crate::version::etag;
use serde_json::{json, Map, Value};

/// A resource's URL: `{base}/Users/{id}` or `{base}/Groups/{id}` (`meta.location`, `$ref`).
pub fn location(base_url: &str, rt: &ResourceTypeDef, id: &str) -> String {
    format!("{base_url}{}/{id}", rt.endpoint)
}

/// What a resource's `meta` says (RFC 7643 §3.1).
pub struct Meta {
    /// Its `id`.
    pub id: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// When it last changed (RFC 3339).
    pub last_modified: String,
    /// Its version, sent as a weak ETag.
    pub version: i64,
}

/// The wire form of a resource of type `rt` stored as `stored` (canonical form, without `id`
/// and `meta`): `schemas` first (the stored ones, or the core schema), then `id`, the stored
/// attributes except `skip`, then `extra` (attributes kept elsewhere, such as `groups`), then
/// `meta`.
pub fn resource(
    rt: &ResourceTypeDef,
    base_url: &str,
    stored: Map<String, Value>,
    skip: &[&str],
    extra: Option<(&str, Vec<Value>)>,
    meta: Meta,
) -> Map<String, Value> {
    // The stored attributes stay where they are, in their order: the map is reused rather than
    // rebuilt, which would hash every key again. `schemas` and `id` move to the front.
    let mut out = stored;
    for k in skip {
        out.shift_remove(*k);
    }
    let schemas = out
        .shift_remove("schemas")
        .unwrap_or_else(|| json!([rt.schema.id]));
    out.shift_insert(0, "schemas".into(), schemas);
    let id = out
        .shift_remove("id")
        .unwrap_or_else(|| Value::String(meta.id.clone()));
    out.shift_insert(1, "id".into(), id);
    if let Some((name, items)) = extra {
        if !items.is_empty() {
            out.insert(name.into(), Value::Array(items));
        }
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": rt.name,
            "created": meta.created,
            "lastModified": meta.last_modified,
            "location": location(base_url, rt, &meta.id),
            "version": etag(meta.version),
        }),
    );
    out
}

/// A user's `groups` value: a group it is a direct member of (RFC 7643 §4.1.2).
pub fn group_of_user(base_url: &str, group_id: &str, display: &str) -> Value {
    json!({
        "value": group_id,
        "$ref": location(base_url, &GROUP_RESOURCE, group_id),
        "display": display,
        "type": "direct",
    })
}

/// A group's `members` value for a user (RFC 7643 §4.2).
pub fn user_member(base_url: &str, user_id: &str) -> Value {
    json!({
        "value": user_id,
        "$ref": location(base_url, &USER_RESOURCE, user_id),
        "type": "User",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_come_from_the_resource_type_endpoint() {
        let base = "https://m.example.com/scim/v2/p1";
        assert_eq!(
            location(base, &USER_RESOURCE, "u1"),
            "https://m.example.com/scim/v2/p1/Users/u1"
        );
        assert_eq!(
            group_of_user(base, "g1", "Ops")["$ref"],
            "https://m.example.com/scim/v2/p1/Groups/g1"
        );
        assert_eq!(user_member(base, "u1")["type"], "User");
    }

    #[test]
    fn a_resource_has_schemas_id_attributes_extra_then_meta() {
        let stored = json!({"displayName": "Ops", "members": [1], "schemas": ["x"]});
        let out = resource(
            &GROUP_RESOURCE,
            "https://b",
            stored.as_object().cloned().unwrap_or_default(),
            &["members"],
            Some(("members", vec![user_member("https://b", "u1")])),
            Meta {
                id: "g1".into(),
                created: "c".into(),
                last_modified: "m".into(),
                version: 3,
            },
        );
        let keys: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(keys, ["schemas", "id", "displayName", "members", "meta"]);
        assert_eq!(out["schemas"], json!(["x"]));
        assert_eq!(out["members"][0]["$ref"], "https://b/Users/u1");
        assert_eq!(out["meta"]["location"], "https://b/Groups/g1");
        assert_eq!(out["meta"]["version"], "W/\"3\"");
        let empty = resource(
            &USER_RESOURCE,
            "https://b",
            Map::new(),
            &[],
            Some(("groups", Vec::new())),
            Meta {
                id: "u1".into(),
                created: "c".into(),
                last_modified: "m".into(),
                version: 1,
            },
        );
        assert!(!empty.contains_key("groups"), "an empty list is left out");
        assert_eq!(empty["schemas"], json!([USER_RESOURCE.schema.id]));
    }
}
