//! PATCH bodies: parsing and applying never panic; a failed PATCH leaves the resource as it was;
//! a successful one yields a resource that is already in canonical form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muster_scim::patch;
use muster_scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use muster_scim::normalize;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(ops) = patch::parse(&body) else { return };
    let user = json!({"userName": "bjensen", "active": true, "name": {"givenName": "B"},
        "emails": [{"value": "a@b.c", "type": "work"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D"}});
    let group = json!({"displayName": "G"});
    for (rt, resource) in [(&USER_RESOURCE, user), (&GROUP_RESOURCE, group)] {
        let Ok(n) = normalize(rt, &resource) else { return };
        let before = n.resource.clone();
        match patch::apply(rt, &n.resource, "the-id", &ops) {
            Ok(p) => {
                let again = normalize(rt, &Value::Object(p.resource.clone()));
                match again {
                    Ok(a) => assert_eq!(a.resource, p.resource, "patched resource is canonical"),
                    Err(e) => panic!("patched resource does not normalize: {e}"),
                }
            }
            Err(_) => assert_eq!(n.resource, before),
        }
    }
});
