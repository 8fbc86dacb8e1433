//! Filters: parsing never panics; what parses prints and parses back to the same tree; checking
//! against the schemas and evaluating never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muster_scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use muster_scim::{Filter, Query};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(filter) = Filter::parse(text) else { return };
    let printed = filter.to_string();
    match Filter::parse(&printed) {
        Ok(again) => assert_eq!(again, filter, "{printed}"),
        Err(e) => panic!("printed filter does not parse: {printed}: {e}"),
    }
    let user = json!({"id": "1", "userName": "Bjensen", "active": true, "title": "x",
        "emails": [{"value": "a@b.c", "type": "work", "primary": true}],
        "name": {"givenName": "B"},
        "meta": {"created": "2024-01-01T00:00:00Z", "lastModified": "2024-01-02T00:00:00.123Z"}});
    for rt in [&USER_RESOURCE, &GROUP_RESOURCE] {
        if let Ok(q) = Query::check(&filter, rt) {
            if let Some(m) = user.as_object() {
                let _ = q.matches(m);
            }
        }
    }
});
