//! Request bodies: reading a User or Group body never panics, and its canonical form reads back
//! unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muster_scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use muster_scim::{normalize, Projection};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    for rt in [&USER_RESOURCE, &GROUP_RESOURCE] {
        if let Ok(n) = normalize(rt, &body) {
            match normalize(rt, &Value::Object(n.resource.clone())) {
                Ok(again) => assert_eq!(again.resource, n.resource),
                Err(e) => panic!("canonical form does not read back: {e}"),
            }
            let mut out = n.resource.clone();
            Projection::parse(rt, Some("userName,emails.value,members"), Some("name")).apply(rt, &mut out);
        }
    }
});
