//! Resources as they are sent (RFC 7643 §3.1, §4): `schemas`, `id`, the stored attributes,
//! references to other resources (`$ref`) and `meta`, with every URL built from the resource
//! type's endpoint under the provider's base URL (RFC 7644 §3.1). The domain keeps resources in
//! canonical form; this is the one place their wire form is put together.

use crate::resource::Projection;
use crate::schema::{ResourceTypeDef, Returned, GROUP_RESOURCE, USER_RESOURCE};
use crate::stored::Attributes;
use crate::version::etag;
use serde_json::{json, Map, Value};

/// A resource's URL: `{base}/Users/{id}` or `{base}/Groups/{id}` (`meta.location`, `$ref`).
pub fn location(base_url: &str, rt: &ResourceTypeDef, id: &str) -> String {
    // By hand rather than with `format!`, which cost three times as much: every resource sent
    // has one, every user's group another.
    let mut url = String::with_capacity(base_url.len() + rt.endpoint.len() + 1 + id.len());
    url.push_str(base_url);
    url.push_str(rt.endpoint);
    url.push('/');
    url.push_str(id);
    url
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
    out.insert("meta".into(), meta_value(rt, base_url, &meta));
    out
}

fn meta_value(rt: &ResourceTypeDef, base_url: &str, meta: &Meta) -> Value {
    // Serialising this struct cannot fail.
    serde_json::to_value(MetaOut::new(rt, base_url, meta)).unwrap_or(Value::Null)
}

/// `meta` on the wire (RFC 7643 §3.1), in its order, as a value into a rendered map;
/// [`write_stored`] writes the same text itself ([`write_meta`]).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct MetaOut<'a> {
    resource_type: &'a str,
    created: &'a str,
    last_modified: &'a str,
    location: String,
    version: String,
}

impl<'a> MetaOut<'a> {
    fn new(rt: &'a ResourceTypeDef, base_url: &str, meta: &'a Meta) -> MetaOut<'a> {
        MetaOut {
            resource_type: rt.name,
            created: &meta.created,
            last_modified: &meta.last_modified,
            location: location(base_url, rt, &meta.id),
            version: etag(meta.version),
        }
    }
}

/// Writes to `out` the JSON of the resource [`resource`] builds, as the default projection
/// (no `attributes`, no `excludedAttributes`) leaves it, byte for byte, but straight from the
/// stored text: each attribute's value is copied, not parsed and written again.
///
/// Returns `false`, having written nothing, when `stored` is not the text it was read as (it
/// changed since) or holds a name the wire form puts elsewhere (`meta`, or `extra`'s); the
/// caller then renders the map.
pub fn write_stored(
    out: &mut Vec<u8>,
    rt: &'static ResourceTypeDef,
    base_url: &str,
    stored: &Attributes,
    extra: Option<(&str, &[Value])>,
    meta: &Meta,
) -> bool {
    if stored.stored_members().is_none() {
        return false;
    }
    let members = || stored.stored_members().into_iter().flatten();
    let elsewhere = |name: &str| name == "meta" || extra.is_some_and(|(n, _)| n == name);
    if members().any(|(name, _)| elsewhere(name)) {
        return false;
    }
    let find = |name: &str| members().find(|(n, _)| *n == name).map(|(_, v)| v);
    let default = Projection::default();
    // Writing JSON into memory cannot fail; the results are ignored for that reason.
    out.extend_from_slice(b"{\"schemas\":");
    match find("schemas") {
        Some(raw) => out.extend_from_slice(raw.as_bytes()),
        None => {
            let _ = serde_json::to_writer(&mut *out, &[rt.schema.id]);
        }
    }
    out.extend_from_slice(b",\"id\":");
    match find("id") {
        Some(raw) => out.extend_from_slice(raw.as_bytes()),
        None => {
            let _ = serde_json::to_writer(&mut *out, &meta.id);
        }
    }
    for (name, raw) in members() {
        if name == "schemas" || name == "id" {
            continue;
        }
        if rt.extension(name).is_some() {
            // An extension's attributes are sent one by one as its schema says: parse just
            // this one and let the projection decide, as for a rendered map.
            let mut one = Map::new();
            let Ok(value) = serde_json::from_str::<Value>(raw) else {
                continue;
            };
            one.insert(name.to_string(), value);
            default.apply(rt, &mut one);
            for (name, value) in &one {
                member(out, name, |out| {
                    let _ = serde_json::to_writer(out, value);
                });
            }
            continue;
        }
        match rt.core_attr(name) {
            Some(def) if matches!(def.returned, Returned::Default | Returned::Always) => {
                member(out, name, |out| out.extend_from_slice(raw.as_bytes()));
            }
            _ => {}
        }
    }
    if let Some((name, items)) = extra {
        if !items.is_empty() {
            member(out, name, |out| {
                let _ = serde_json::to_writer(out, items);
            });
        }
    }
    write_meta(out, rt, base_url, meta);
    out.push(b'}');
    true
}

/// Writes `,"meta":{…}` as [`MetaOut`] serialises, without the serialiser: its names are
/// known, the version's quotes are escaped as written, and the other values are strings.
fn write_meta(out: &mut Vec<u8>, rt: &ResourceTypeDef, base_url: &str, meta: &Meta) {
    out.extend_from_slice(b",\"meta\":{\"resourceType\":");
    json_str(out, rt.name);
    out.extend_from_slice(b",\"created\":");
    json_str(out, &meta.created);
    out.extend_from_slice(b",\"lastModified\":");
    json_str(out, &meta.last_modified);
    out.extend_from_slice(b",\"location\":");
    json_str(out, &location(base_url, rt, &meta.id));
    out.extend_from_slice(b",\"version\":\"W/\\\"");
    out.extend_from_slice(itoa::Buffer::new().format(meta.version).as_bytes());
    out.extend_from_slice(b"\\\"\"}");
}

/// Writes `,"name":` and then the value.
fn member(out: &mut Vec<u8>, name: &str, value: impl FnOnce(&mut Vec<u8>)) {
    out.push(b',');
    json_str(out, name);
    out.push(b':');
    value(out);
}

/// Writes `s` as a JSON string, as serde_json does: a string with nothing to escape (no `"`,
/// no `\`, no control character) is copied between quotes; any other goes through serde_json.
/// Every name and `meta` value of a response is written this way, and serde_json's writer cost
/// about 2,000 of a GET's instructions on strings that never need escaping.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if is_plain(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Whether JSON writes `b` between quotes as it is: no `"`, no `\\`, no control character.
///
/// Eight bytes at a time, with the word tricks of "Bit Twiddling Hacks" (a byte below `n`, a
/// zero byte after an exclusive or): checking byte by byte was 1,700 of a GET's 73,000
/// instructions under callgrind, most of it on the `location` URL and the two dates of `meta`
/// (docs/benchmarks.md, "Strings checked eight bytes at a time").
fn is_plain(b: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `v` is zero: exact for the word as a whole (no false positives).
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let mut chunks = b.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(word);
        // A byte below 0x20 (bytes of 0x80 and above are UTF-8 and plain), a `"`, a `\\`.
        let control = v.wrapping_sub(ONES * 0x20) & !v & HIGH != 0;
        if control
            || has_zero(v ^ (ONES * u64::from(b'"')))
            || has_zero(v ^ (ONES * u64::from(b'\\')))
        {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&c| c >= 0x20 && c != b'"' && c != b'\\')
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
    use crate::resource::normalize;
    use crate::schema::{ENTERPRISE_USER_SCHEMA, MUSTER_USER_SCHEMA};

    /// The word-at-a-time check against the byte-at-a-time rule, for every byte value at every
    /// position of strings of every length up to three words, and the written text against
    /// serde_json's.
    #[test]
    fn plain_strings_are_found_a_word_at_a_time() {
        let byte_rule = |b: &[u8]| b.iter().all(|&c| c >= 0x20 && c != b'"' && c != b'\\');
        for len in 1..=24usize {
            for at in 0..len {
                for c in 0..=255u8 {
                    let mut b = vec![b'a'; len];
                    b[at] = c;
                    assert_eq!(is_plain(&b), byte_rule(&b), "{c:#04x} at {at} of {len}");
                }
            }
        }
        assert!(is_plain(b""));
        // Several such bytes in one word (a borrow from one byte reaching the next).
        let edges = [
            0x00, 0x1f, 0x20, 0x21, b'"', 0x23, b'\\', 0x5b, 0x7f, 0x80, 0xa2, 0xdc, 0xff, b'a',
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 20) as usize;
            let b: Vec<u8> = (0..len)
                .map(|i| edges[((seed >> (i * 3 % 60)) % edges.len() as u64) as usize])
                .collect();
            assert_eq!(is_plain(&b), byte_rule(&b), "{b:?}");
        }
        for s in [
            "",
            "plain",
            "2026-12-07T09:34:01.123456Z",
            "caf\u{e9} \u{1F600}",
            "a\"b",
            "tab\there",
            "back\\slash",
            "\u{7f}del",
            "http://h/Users/8f1c",
        ] {
            let mut mine = Vec::new();
            json_str(&mut mine, s);
            assert_eq!(mine, serde_json::to_vec(s).unwrap_or_default(), "{s:?}");
        }
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let cases = [
            "",
            "userName",
            "https://muster.example/scim/v2/p",
            "caf\u{e9} \u{1f600}",
            "quote \" inside",
            "back\\slash",
            "line\nbreak\ttab\u{1}\u{1f}",
            "del \u{7f} kept",
        ];
        for case in cases {
            let mut ours = Vec::new();
            json_str(&mut ours, case);
            let theirs = serde_json::to_vec(case).unwrap_or_default();
            assert!(theirs.len() >= 2);
            assert_eq!(ours, theirs, "{case:?}");
        }
    }

    #[test]
    fn meta_is_written_as_serialised() {
        let mut ours = Vec::new();
        write_meta(
            &mut ours,
            &USER_RESOURCE,
            "https://m.example/scim/v2/\"p\"",
            &meta("u1"),
        );
        let theirs = serde_json::to_vec(&MetaOut::new(
            &USER_RESOURCE,
            "https://m.example/scim/v2/\"p\"",
            &meta("u1"),
        ))
        .unwrap_or_default();
        assert!(theirs.len() > 2);
        assert_eq!(ours, [&b",\"meta\":"[..], &theirs].concat());
    }

    fn meta(id: &str) -> Meta {
        Meta {
            id: id.into(),
            created: "2026-01-02T03:04:05.123Z".into(),
            last_modified: "2026-02-03T04:05:06Z".into(),
            version: 7,
        }
    }

    /// What the parsed path sends: the map rendered, then the default projection.
    fn rendered(stored: Map<String, Value>, extra: Option<(&str, Vec<Value>)>) -> Vec<u8> {
        let mut r = resource(
            &USER_RESOURCE,
            "https://m/scim/v2/p",
            stored,
            &[],
            extra,
            meta("u\"1"),
        );
        Projection::default().apply(&USER_RESOURCE, &mut r);
        serde_json::to_vec(&r).unwrap_or_default()
    }

    fn written(text: &str, extra: Option<(&str, &[Value])>) -> Option<Vec<u8>> {
        let stored = Attributes::from_text(text.to_string()).ok()?;
        let mut out = Vec::new();
        write_stored(
            &mut out,
            &USER_RESOURCE,
            "https://m/scim/v2/p",
            &stored,
            extra,
            &meta("u\"1"),
        )
        .then_some(out)
    }

    #[test]
    fn a_stored_user_is_written_as_the_rendered_map_would_be() {
        let bodies = [
            json!({"userName": "a@example.com"}),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA, MUSTER_USER_SCHEMA],
                "userName": "Ünïcødé \"quoted\" \\ back\u{1}slash\n",
                "externalId": "00u\u{2028}x",
                "name": {"givenName": "Bä", "familyName": "O'Brien", "formatted": "Bä O'Brien"},
                "displayName": "日本語 🎉",
                "active": false,
                "emails": [{"value": "a@example.com", "type": "work", "primary": true}, {"value": "b@example.com"}],
                "phoneNumbers": [{"value": "+1 555", "type": "mobile"}],
                "addresses": [{"streetAddress": "1 Main\tSt", "postalCode": "12345", "country": "US"}],
                "title": "Engineer",
                "password": "never sent",
                ENTERPRISE_USER_SCHEMA: {"department": "R&D", "employeeNumber": "0042", "manager": {"value": "m1", "displayName": "Boss"}},
                MUSTER_USER_SCHEMA: {"c42OrgName": "Sales"},
            }),
            json!({"userName": "n", "x509Certificates": [{"value": "MIIB"}], "entitlements": [{"value": "e", "display": "E"}], "roles": [{"value": "r"}]}),
        ];
        let groups = vec![group_of_user("https://m/scim/v2/p", "g1", "Ops \"A\"")];
        for body in bodies {
            let stored = match normalize(&USER_RESOURCE, &body) {
                Ok(n) => n.resource,
                Err(e) => panic!("{e}"),
            };
            let text = serde_json::to_string(&stored).unwrap_or_default();
            for extra in [None, Some(Vec::new()), Some(groups.clone())] {
                let want = rendered(stored.clone(), extra.clone().map(|g| ("groups", g)));
                let got = written(&text, extra.as_ref().map(|g| ("groups", g.as_slice())));
                assert_eq!(
                    got.as_deref().map(String::from_utf8_lossy),
                    Some(String::from_utf8_lossy(&want)),
                    "for {text}"
                );
            }
        }
    }

    #[test]
    fn stored_text_that_cannot_be_copied_is_left_to_the_map() {
        let groups = [json!({"value": "g"})];
        assert!(written(r#"{"userName":"a","meta":{"x":1}}"#, None).is_none());
        assert!(written(r#"{"userName":"a","groups":[]}"#, Some(("groups", &groups))).is_none());
        let read = Attributes::from_text(r#"{"userName":"a"}"#.into()).unwrap_or_default();
        let mut map = read.into_map();
        map.insert("title".into(), json!("t"));
        let changed = Attributes::from(map);
        let mut out = Vec::new();
        assert!(!write_stored(
            &mut out,
            &USER_RESOURCE,
            "b",
            &changed,
            None,
            &meta("1")
        ));
        assert!(out.is_empty());
    }

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
