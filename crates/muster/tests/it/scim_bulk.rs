//! `POST /Bulk` (RFC 7644 §3.7).

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::on_both;
use crate::support::{assert_scim_error, Backend, TestApp};

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

on_both!(
    bulk_resolves_references_in_any_order,
    bulk_stops_after_fail_on_errors,
    bulk_limits_and_isolation
);

fn op_by<'a>(ops: &'a [Value], bulk_id: &str) -> &'a Value {
    ops.iter()
        .find(|o| o["bulkId"] == bulk_id)
        .unwrap_or_else(|| panic!("no result for {bulk_id}: {ops:?}"))
}

async fn bulk_resolves_references_in_any_order(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let existing = app.create_user(&p, "existing@example.com").await;
    let r = app
        .post(&p, "/Bulk", json!({"schemas": [BULK], "Operations": [
            // The group comes first and refers to users created later in the request.
            {"method": "POST", "path": "/Groups", "bulkId": "team", "data": {"displayName": "Team", "members": [{"value": "bulkId:alice"}, {"value": existing}]}},
            {"method": "POST", "path": "/Users", "bulkId": "alice", "data": {"userName": "alice@example.com"}},
            {"method": "PATCH", "path": "/Groups/bulkId:team", "data": {"Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:bob"}]}]}},
            {"method": "POST", "path": "/Users", "bulkId": "bob", "data": {"userName": "bob@example.com", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "bulkId:alice"}}}},
            {"method": "PUT", "path": format!("/Users/{existing}"), "version": "W/\"1\"", "data": {"userName": "existing@example.com", "title": "Lead"}},
            {"method": "DELETE", "path": "/Users/bulkId:alice"}
        ]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    let ops = r.body["Operations"].as_array().cloned().unwrap_or_default();
    assert_eq!(ops.len(), 6, "{ops:?}");
    let alice = op_by(&ops, "alice");
    assert_eq!(alice["status"], "201");
    let alice_id = alice["location"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let team = op_by(&ops, "team");
    assert_eq!(team["status"], "201");
    assert_eq!(team["version"], "W/\"1\"");
    let gid = team["location"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    for o in &ops {
        assert!(
            o["status"] == "201" || o["status"] == "200" || o["status"] == "204",
            "{o}"
        );
    }
    let bob = app
        .get(
            &p,
            &format!(
                "/Users/{}",
                op_by(&ops, "bob")["location"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
            ),
        )
        .await;
    assert_eq!(
        bob.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
        alice_id,
        "bulkId in data resolved"
    );
    let g = app.get(&p, &format!("/Groups/{gid}")).await;
    let mut members: Vec<&str> = g.body["members"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["value"].as_str()).collect())
        .unwrap_or_default();
    members.sort();
    let mut want = vec![
        existing.as_str(),
        bob.body["id"].as_str().unwrap_or_default(),
    ];
    want.sort();
    assert_eq!(
        members, want,
        "alice was deleted (leaving the group), bob added"
    );
    assert_eq!(
        app.get(&p, &format!("/Users/{existing}")).await.body["title"],
        "Lead"
    );
    app.finish().await;
}

async fn bulk_stops_after_fail_on_errors(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    app.create_user(&p, "taken@example.com").await;
    let r = app
        .post(&p, "/Bulk", json!({"schemas": [BULK], "failOnErrors": 1, "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "taken@example.com"}},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"userName": "never@example.com"}}
        ]}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let ops = r.body["Operations"].as_array().cloned().unwrap_or_default();
    assert_eq!(ops.len(), 1, "processing stopped after one error: {ops:?}");
    assert_eq!(ops[0]["status"], "409");
    assert_eq!(ops[0]["response"]["scimType"], "uniqueness");
    assert!(
        ops[0].get("location").is_none(),
        "a failed POST has no location"
    );
    assert_eq!(app.get(&p, "/Users").await.body["totalResults"], 1);
    // Without failOnErrors every operation runs; errors are per operation.
    let r = app
        .post(&p, "/Bulk", json!({"schemas": [BULK], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "taken@example.com"}},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"userName": "fine@example.com"}},
            {"method": "POST", "path": "/Groups", "bulkId": "c", "data": {"displayName": "C", "members": [{"value": "bulkId:zzz"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "x", "data": {"displayName": "X", "members": [{"value": "bulkId:y"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "y", "data": {"displayName": "Y", "members": [{"value": "bulkId:x"}]}},
            {"method": "PATCH", "path": "/Devices/1", "data": {"Operations": []}}
        ]}))
        .await;
    let ops = r.body["Operations"].as_array().cloned().unwrap_or_default();
    assert_eq!(ops.len(), 6);
    assert_eq!(op_by(&ops, "b")["status"], "201");
    assert_eq!(op_by(&ops, "c")["status"], "400");
    assert_eq!(op_by(&ops, "x")["status"], "409");
    assert_eq!(op_by(&ops, "y")["status"], "409");
    assert_eq!(ops[5]["status"], "404");
    app.finish().await;
}

async fn bulk_limits_and_isolation(b: Backend) {
    let app = TestApp::new(b).await;
    let a = app.provider("A").await;
    let other = app.provider("B").await;
    let theirs = app.create_user(&other, "theirs@example.com").await;
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/{i}")}))
        .collect();
    let r = app
        .post(&a, "/Bulk", json!({"schemas": [BULK], "Operations": many}))
        .await;
    assert_scim_error(&r, 413, None);
    assert_scim_error(
        &app.post(&a, "/Bulk", json!({"Operations": "x"})).await,
        400,
        Some("invalidSyntax"),
    );
    // A bulk request cannot reach another provider's users.
    let r = app
        .post(&a, "/Bulk", json!({"schemas": [BULK], "Operations": [
            {"method": "DELETE", "path": format!("/Users/{theirs}")},
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"displayName": "G", "members": [{"value": theirs}]}}
        ]}))
        .await;
    let ops = r.body["Operations"].as_array().cloned().unwrap_or_default();
    assert_eq!(ops[0]["status"], "404");
    assert_eq!(ops[1]["status"], "400");
    assert_eq!(
        app.get(&other, &format!("/Users/{theirs}")).await.status,
        StatusCode::OK
    );
    app.finish().await;
}
