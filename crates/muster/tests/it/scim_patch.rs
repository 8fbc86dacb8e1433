//! PATCH through HTTP (RFC 7644 §3.5.2), each provider's dialect, versions and search.

use axum::http::{Method, StatusCode};
use muster_core::model::UserStatus;
use serde_json::{json, Value};

use crate::on_both;
use crate::scim_users::urlencode;
use crate::support::{assert_scim_error, Backend, TestApp, TestProvider};

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

on_both!(
    entra_default_mode,
    entra_fixed_mode,
    okta_user_lifecycle_and_push_groups,
    jumpcloud_connection_test,
    ping_filters_and_disable,
    membership_hard_cases,
    failed_patch_changes_nothing,
    large_group_patch_answers_204,
    etags_and_preconditions,
    search_endpoints,
    attribute_names_are_case_insensitive_everywhere,
);

/// PROVIDERS.md hard case 10: attribute names in any case, in bodies, PATCH paths, filters and
/// `attributes=`.
async fn attribute_names_are_case_insensitive_everywhere(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Any").await;
    let r = app.post(&p, "/Users", json!({"USERNAME": "Case@Example.com", "NAME": {"GIVENNAME": "C"}, "Emails": [{"VALUE": "c@example.com", "Type": "work"}]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["name"], json!({"givenName": "C"}));
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    let r = app
        .patch(&p, &format!("/Users/{id}"), ops(json!([
            {"op": "REPLACE", "path": "NAME.FAMILYNAME", "value": "Sensitive"},
            {"op": "Add", "path": "EMAILS[TYPE EQ \"work\"].DISPLAY", "value": "Work"},
            {"op": "replace", "path": "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:DEPARTMENT", "value": "QA"}
        ])))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["name"]["familyName"], "Sensitive");
    assert_eq!(r.body["emails"][0]["display"], "Work");
    assert_eq!(r.body[ENTERPRISE]["department"], "QA");
    let r = app
        .get(
            &p,
            &format!(
                "/Users?attributes=USERNAME,Name.GivenName&filter={}",
                urlencode("EMAILS.VALUE EQ \"C@EXAMPLE.COM\"")
            ),
        )
        .await;
    assert_eq!(r.body["totalResults"], 1);
    let u = &r.body["Resources"][0];
    assert_eq!(u["userName"], "Case@Example.com");
    assert_eq!(u["name"], json!({"givenName": "C"}));
    assert!(u.get("emails").is_none());
    app.finish().await;
}

fn ops(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

async fn status_of(app: &TestApp, id: &str) -> (UserStatus, Option<muster_core::Timestamp>) {
    let mut tx = app
        .muster
        .store
        .read()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let u = tx
        .find_user(app.env.id, id.parse().unwrap_or_default())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("user {id}"));
    (u.status, u.deactivate_at)
}

async fn member_values(app: &TestApp, p: &TestProvider, gid: &str) -> Vec<String> {
    let g = app.get(p, &format!("/Groups/{gid}")).await;
    let mut v: Vec<String> = g.body["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Entra ID without the feature flag: capitalised ops, string booleans, Add for absent values,
/// Entra-style member removal, manager add and clear.
async fn entra_default_mode(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Entra").await;
    let r = app.post(&p, "/Users", json!({"userName": "ada@contoso.com", "active": "True", "emails": [{"type": "home", "value": "ada@home.example"}]})).await;
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    let boss = app.create_user(&p, "boss@contoso.com").await;
    let r = app
        .patch(&p, &format!("/Users/{id}"), ops(json!([
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ada@contoso.com"},
            {"op": "Replace", "path": "displayName", "value": "Ada L"},
            {"op": "Add", "path": "manager", "value": [{"$ref": null, "value": boss}]},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"}
        ])))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["id"], id, "user PATCH answers 200 with the user");
    let emails = r.body["emails"].as_array().cloned().unwrap_or_default();
    assert!(
        emails.contains(&json!({"type": "work", "value": "ada@contoso.com"})),
        "{emails:?}"
    );
    assert!(emails.contains(&json!({"type": "home", "value": "ada@home.example"})));
    assert_eq!(r.body[ENTERPRISE]["manager"]["value"], boss);
    assert_eq!(r.body[ENTERPRISE]["department"], "R&D");
    // Manager removed by replacing with an empty value.
    let r = app
        .patch(
            &p,
            &format!("/Users/{id}"),
            ops(json!([{"op": "Replace", "path": "manager", "value": ""}])),
        )
        .await;
    assert!(r.body[ENTERPRISE].get("manager").is_none(), "{:?}", r.body);
    // Disable with a string boolean: blocked now, deactivation due after the delay.
    let r = app
        .patch(
            &p,
            &format!("/Users/{id}"),
            ops(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await;
    assert_eq!(r.body["active"], false);
    let (status, due) = status_of(&app, &id).await;
    assert_eq!(status, UserStatus::Blocked);
    assert_eq!(due, Some(app.clock_now().plus_secs(900)));
    let r = app
        .patch(
            &p,
            &format!("/Users/{id}"),
            ops(json!([{"op": "Add", "path": "active", "value": "True"}])),
        )
        .await;
    assert_eq!(r.body["active"], true);
    assert_eq!(
        status_of(&app, &id).await,
        (UserStatus::Active, None),
        "turned back on before the due time"
    );

    // Groups: created empty, members added then removed Entra-style.
    let r = app.post(&p, "/Groups", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineers", "members": []})).await;
    let gid = r.body["id"].as_str().unwrap_or_default().to_string();
    let r = app.patch(&p, &format!("/Groups/{gid}"), ops(json!([{"op": "Add", "path": "members", "value": [{"value": id}, {"value": boss}]}]))).await;
    assert!(
        r.status == StatusCode::OK || r.status == StatusCode::NO_CONTENT,
        "{:?}",
        r.body
    );
    assert_eq!(
        member_values(&app, &p, &gid).await,
        sorted(vec![id.clone(), boss.clone()])
    );
    let r = app
        .patch(
            &p,
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "Remove", "path": "members", "value": [{"value": boss}]}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        member_values(&app, &p, &gid).await,
        vec![id.clone()],
        "only the listed member is removed"
    );
    app.finish().await;
}

/// Entra ID with `?aadOptscim062020`: lower-case ops, real booleans, path-less replace with dotted
/// and URN keys, member removal by value filter.
async fn entra_fixed_mode(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Entra").await;
    let id = app.create_user(&p, "grace@contoso.com").await;
    let uri = format!("{}/Users/{id}?aadOptscim062020", p.base);
    let r = app
        .send(Method::PATCH, &uri, Some(&p.token), Some(ops(json!([{"op": "replace", "value": {
            "displayName": "Grace H", "name.givenName": "Grace", "name.familyName": "Hopper",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "7", "active": false}}]))))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["displayName"], "Grace H");
    assert_eq!(
        r.body["name"],
        json!({"givenName": "Grace", "familyName": "Hopper"})
    );
    assert!(r.body.get("name.givenName").is_none());
    assert_eq!(r.body[ENTERPRISE]["employeeNumber"], "7");
    assert!(r
        .body
        .get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber")
        .is_none());
    assert_eq!(status_of(&app, &id).await.0, UserStatus::Blocked);
    // What was stored is what comes back.
    let g = app.get(&p, &format!("/Users/{id}")).await;
    assert_eq!(g.body["name"], r.body["name"]);
    let other = app.create_user(&p, "other@contoso.com").await;
    let r = app
        .post(
            &p,
            "/Groups",
            json!({"displayName": "G", "members": [{"value": id}, {"value": other}]}),
        )
        .await;
    let gid = r.body["id"].as_str().unwrap_or_default().to_string();
    let r = app
        .send(
            Method::PATCH,
            &format!("{}/Groups/{gid}?aadOptscim062020", p.base),
            Some(&p.token),
            Some(ops(
                json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(member_values(&app, &p, &gid).await, vec![other]);
    app.finish().await;
}

/// Okta: deactivation by path-less replace, reactivation, and the Push Groups flows.
async fn okta_user_lifecycle_and_push_groups(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let u1 = app.create_user(&p, "u1@okta.example").await;
    let u2 = app.create_user(&p, "u2@okta.example").await;
    let u3 = app.create_user(&p, "u3@okta.example").await;
    let r = app
        .patch(
            &p,
            &format!("/Users/{u1}"),
            ops(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await;
    assert_eq!(r.body["active"], false);
    assert_eq!(status_of(&app, &u1).await.0, UserStatus::Blocked);
    let r = app
        .patch(
            &p,
            &format!("/Users/{u1}"),
            ops(json!([{"op": "replace", "value": {"active": true}}])),
        )
        .await;
    assert_eq!(r.body["active"], true);
    assert_eq!(status_of(&app, &u1).await.0, UserStatus::Active);

    let r = app.post(&p, "/Groups", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales", "members": []})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let gid = r.body["id"].as_str().unwrap_or_default().to_string();
    // Rename with the id in the value, plus membership, in one request.
    let r = app
        .patch(&p, &format!("/Groups/{gid}"), ops(json!([
            {"op": "replace", "value": {"id": gid, "displayName": "Sales EMEA"}},
            {"op": "add", "path": "members", "value": [{"value": u1, "display": "u1@okta.example"}, {"value": u2}]}
        ])))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["displayName"], "Sales EMEA");
    assert_eq!(
        member_values(&app, &p, &gid).await,
        sorted(vec![u1.clone(), u2.clone()])
    );
    let r = app
        .patch(
            &p,
            &format!("/Groups/{gid}"),
            ops(json!([
                {"op": "remove", "path": format!("members[value eq \"{u1}\"]")},
                {"op": "add", "path": "members", "value": [{"value": u3}]}
            ])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        member_values(&app, &p, &gid).await,
        sorted(vec![u2.clone(), u3.clone()])
    );
    // Replace the whole list, by path and path-less.
    app.patch(
        &p,
        &format!("/Groups/{gid}"),
        ops(json!([{"op": "replace", "path": "members", "value": [{"value": u1}]}])),
    )
    .await;
    assert_eq!(member_values(&app, &p, &gid).await, vec![u1.clone()]);
    app.patch(
        &p,
        &format!("/Groups/{gid}"),
        ops(json!([{"op": "replace", "value": {"members": [{"value": u2}, {"value": u3}]}}])),
    )
    .await;
    assert_eq!(
        member_values(&app, &p, &gid).await,
        sorted(vec![u2.clone(), u3.clone()])
    );
    let u = app.get(&p, &format!("/Users/{u2}")).await;
    assert_eq!(u.body["groups"][0]["display"], "Sales EMEA");
    assert_eq!(
        app.delete(&p, &format!("/Groups/{gid}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&p, &format!("/Users/{u2}")).await.status,
        StatusCode::OK,
        "unlinking a group keeps its users"
    );
    app.finish().await;
}

/// JumpCloud's connection test creates a user and a group, then deletes them; group PATCH is
/// Entra-style.
async fn jumpcloud_connection_test(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("JumpCloud").await;
    let r = app.post(&p, "/Users", json!({"userName": "jctest_user@jumpcloud.example", "name": {"givenName": "JC", "familyName": "Test"}, "emails": [{"value": "jctest_user@jumpcloud.example", "type": "work", "primary": true}], "active": true})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let uid = r.body["id"].as_str().unwrap_or_default().to_string();
    let r = app
        .post(&p, "/Groups", json!({"displayName": "jctest_group"}))
        .await;
    let gid = r.body["id"].as_str().unwrap_or_default().to_string();
    let r = app
        .patch(
            &p,
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": uid}]}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .patch(
            &p,
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "remove", "path": "members", "value": [{"value": uid}]}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.delete(&p, &format!("/Groups/{gid}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&p, &format!("/Users/{uid}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&p, "/Users").await.body["totalResults"], 0);
    assert_eq!(app.get(&p, "/Groups").await.body["totalResults"], 0);
    app.finish().await;
}

/// Ping: `username Eq "x"` filters, and "Disable" as the remove action (active false).
async fn ping_filters_and_disable(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("PingOne").await;
    let id = app.create_user(&p, "Pat@ping.example").await;
    let r = app
        .get(
            &p,
            &format!(
                "/Users?filter={}",
                urlencode("username Eq \"pat@ping.example\"")
            ),
        )
        .await;
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["id"], id);
    let r = app
        .put(
            &p,
            &format!("/Users/{id}"),
            json!({"userName": "Pat@ping.example", "active": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(status_of(&app, &id).await.0, UserStatus::Blocked);
    assert_eq!(
        app.get(&p, &format!("/Users/{id}")).await.status,
        StatusCode::OK,
        "disabled, not deleted"
    );
    app.finish().await;
}

async fn membership_hard_cases(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let a = app.create_user(&p, "a@example.com").await;
    let c = app.create_user(&p, "c@example.com").await;
    let r = app
        .post(
            &p,
            "/Groups",
            json!({"displayName": "H", "members": [{"value": a}]}),
        )
        .await;
    let gid = r.body["id"].as_str().unwrap_or_default().to_string();
    let version = r.body["meta"]["version"].clone();
    // Adding a member already present is a no-op, and does not change the version.
    let r = app
        .patch(
            &p,
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": a}]}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["meta"]["version"], version);
    // Removing a non-member through a value filter is a no-op.
    let r = app
        .patch(
            &p,
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "remove", "path": format!("members[value eq \"{c}\"]")}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(member_values(&app, &p, &gid).await, vec![a.clone()]);
    // An unknown member id is 400 invalidValue, and nothing in the request applies.
    let r = app
        .patch(&p, &format!("/Groups/{gid}"), ops(json!([
            {"op": "add", "path": "members", "value": [{"value": c}]},
            {"op": "add", "path": "members", "value": [{"value": "0191d6a0-0000-7000-8000-000000000000"}]}
        ])))
        .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert_eq!(member_values(&app, &p, &gid).await, vec![a.clone()]);
    // remove path "members" with no value empties the group.
    app.patch(
        &p,
        &format!("/Groups/{gid}"),
        ops(json!([{"op": "add", "path": "members", "value": [{"value": c}]}])),
    )
    .await;
    let r = app
        .patch(
            &p,
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "remove", "path": "members"}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.get("members").is_none());
    assert!(member_values(&app, &p, &gid).await.is_empty());
    // excludedAttributes=members: 200 without the member list.
    app.patch(
        &p,
        &format!("/Groups/{gid}"),
        ops(json!([{"op": "add", "path": "members", "value": [{"value": c}]}])),
    )
    .await;
    let r = app
        .patch(
            &p,
            &format!("/Groups/{gid}?excludedAttributes=members"),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": a}]}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.get("members").is_none());
    assert_eq!(r.body["displayName"], "H");
    // The sync log names who was added.
    let mut tx = app
        .muster
        .store
        .read()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let log = tx
        .recent_log(app.env.id, 5)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let last = log
        .iter()
        .find(|e| e.action == "group.members_added")
        .cloned()
        .unwrap_or_else(|| panic!("members_added"));
    assert_eq!(last.details["members"], json!([a]));
    drop(tx);
    app.finish().await;
}

async fn failed_patch_changes_nothing(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let id = app.create_user(&p, "atomic@example.com").await;
    let before = app.get(&p, &format!("/Users/{id}")).await.body;
    for (bad, scim_type) in [
        (
            json!([{"op": "replace", "path": "title", "value": "Boss"}, {"op": "remove", "path": "userName"}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "Boss"}, {"op": "replace", "path": "id", "value": "x"}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "Boss"}, {"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "Boss"}, {"op": "replace", "path": "nosuch", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "Boss"}, {"op": "remove"}]),
            "noTarget",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "Boss"}, {"op": "replace", "path": "active", "value": "perhaps"}]),
            "invalidValue",
        ),
    ] {
        let r = app
            .patch(&p, &format!("/Users/{id}"), ops(bad.clone()))
            .await;
        assert_scim_error(&r, 400, Some(scim_type));
        assert_eq!(
            app.get(&p, &format!("/Users/{id}")).await.body,
            before,
            "{bad}"
        );
    }
    let r = app
        .patch(&p, &format!("/Users/{id}"), json!({"Operations": "nope"}))
        .await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let r = app.patch(&p, &format!("/Users/{id}"), json!({"schemas": ["urn:wrong"], "Operations": [{"op": "add", "path": "title", "value": "x"}]})).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert_scim_error(
        &app.patch(
            &p,
            "/Users/0191d6a0-0000-7000-8000-000000000000",
            ops(json!([{"op": "add", "path": "title", "value": "x"}])),
        )
        .await,
        404,
        None,
    );
    app.finish().await;
}

async fn large_group_patch_answers_204(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let mut ids = Vec::new();
    for i in 0..1002 {
        ids.push(app.create_user(&p, &format!("big{i:04}@example.com")).await);
    }
    let members: Vec<Value> = ids[..1001].iter().map(|id| json!({"value": id})).collect();
    let r = app
        .post(
            &p,
            "/Groups?excludedAttributes=members",
            json!({"displayName": "Everyone", "members": members}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.body.get("members").is_none());
    let gid = r.body["id"].as_str().unwrap_or_default().to_string();
    let r = app
        .patch(
            &p,
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": ids[1001]}]}])),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "a group over 1,000 members answers 204"
    );
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    let r = app
        .patch(
            &p,
            &format!("/Groups/{gid}?excludedAttributes=members"),
            ops(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["meta"]["version"], "W/\"3\"");
    let g = app.get(&p, &format!("/Groups/{gid}")).await;
    assert_eq!(g.body["members"].as_array().map(Vec::len), Some(1001));
    app.finish().await;
}

async fn etags_and_preconditions(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let id = app.create_user(&p, "etag@example.com").await;
    let uri = format!("{}/Users/{id}", p.base);
    let r = app
        .send_with(
            Method::GET,
            &uri,
            Some(&p.token),
            None,
            &[("if-none-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let r = app
        .send_with(
            Method::GET,
            &uri,
            Some(&p.token),
            None,
            &[("if-none-match", "W/\"0\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = json!({"userName": "etag@example.com", "title": "One"});
    let r = app
        .send_with(
            Method::PUT,
            &uri,
            Some(&p.token),
            Some(body.clone()),
            &[("if-match", "W/\"7\"")],
        )
        .await;
    assert_scim_error(&r, 412, None);
    let r = app
        .send_with(
            Method::PUT,
            &uri,
            Some(&p.token),
            Some(body),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    let r = app
        .send_with(
            Method::PATCH,
            &uri,
            Some(&p.token),
            Some(ops(json!([{"op": "add", "path": "title", "value": "Two"}]))),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_scim_error(&r, 412, None);
    let r = app
        .send_with(
            Method::DELETE,
            &uri,
            Some(&p.token),
            None,
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_scim_error(&r, 412, None);
    let r = app
        .send_with(
            Method::DELETE,
            &uri,
            Some(&p.token),
            None,
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.finish().await;
}

async fn search_endpoints(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    app.create_user(&p, "s1@example.com").await;
    app.create_user(&p, "s2@example.com").await;
    app.post(&p, "/Groups", json!({"displayName": "S-group"}))
        .await;
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName sw \"s1\"", "attributes": ["userName"]});
    let r = app.post(&p, "/Users/.search", body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["totalResults"], 1);
    assert!(r.body["Resources"][0].get("meta").is_none());
    let r = app
        .post(&p, "/.search", json!({"startIndex": 1, "count": 10}))
        .await;
    assert_eq!(r.body["totalResults"], 3);
    assert_eq!(r.body["Resources"][2]["displayName"], "S-group");
    let r = app
        .post(&p, "/.search", json!({"startIndex": 3, "count": 10}))
        .await;
    assert_eq!(r.body["Resources"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["Resources"][0]["displayName"], "S-group");
    let r = app
        .post(
            &p,
            "/.search",
            json!({"filter": "displayName eq \"S-group\""}),
        )
        .await;
    assert_eq!(
        r.body["totalResults"], 1,
        "a filter on a group attribute selects groups: {:?}",
        r.body
    );
    // Each type reads the other's attributes as absent (RFC 7644 §3.4.2.1): a filter naming
    // both finds both, `ne` on an absent value holds, and a sortBy only users have sorts the
    // users and leaves the groups after them.
    let root =
        |filter: &str| json!({"filter": filter, "sortBy": "userName", "sortOrder": "descending"});
    let r = app
        .post(
            &p,
            "/.search",
            root("userName eq \"s1@example.com\" or displayName eq \"S-group\""),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["totalResults"], 2, "{:?}", r.body);
    assert_eq!(r.body["Resources"][0]["userName"], "s1@example.com");
    assert_eq!(r.body["Resources"][1]["displayName"], "S-group");
    let r = app
        .post(&p, "/.search", root("members pr or userName sw \"s2\""))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["totalResults"], 1,
        "the group has no members: {:?}",
        r.body
    );
    assert_eq!(r.body["Resources"][0]["userName"], "s2@example.com");
    let r = app
        .post(&p, "/.search", root("userName ne \"s1@example.com\""))
        .await;
    assert_eq!(r.body["totalResults"], 2, "{:?}", r.body);
    assert_eq!(r.body["Resources"][0]["userName"], "s2@example.com");
    assert_eq!(r.body["Resources"][1]["displayName"], "S-group");
    let r = app
        .post(&p, "/.search", root("userName eq \"s1@example.com\""))
        .await;
    assert_eq!(
        r.body["totalResults"], 1,
        "no group has a userName: {:?}",
        r.body
    );
    assert_scim_error(
        &app.post(&p, "/.search", root("name eq \"x\" or members pr"))
            .await,
        400,
        Some("invalidFilter"),
    );
    let r = app
        .post(
            &p,
            "/Groups/.search",
            json!({"filter": "displayName co \"group\""}),
        )
        .await;
    assert_eq!(r.body["totalResults"], 1);
    assert_scim_error(
        &app.post(&p, "/.search", json!({"filter": "nosuch eq 1"}))
            .await,
        400,
        Some("invalidFilter"),
    );
    // A query at the root (RFC 7644 §3.4.2.1): GET on the base URL, the same page as the root
    // search.
    let r = app.get(&p, "?startIndex=2&count=2").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["totalResults"], 3);
    assert_eq!(r.body["startIndex"], 2);
    assert_eq!(r.body["Resources"][0]["userName"], "s2@example.com");
    assert_eq!(r.body["Resources"][1]["displayName"], "S-group");
    let r = app
        .get(
            &p,
            &format!(
                "?filter={}&attributes=displayName",
                urlencode("displayName eq \"S-group\"")
            ),
        )
        .await;
    assert_eq!(r.body["totalResults"], 1, "{:?}", r.body);
    assert!(r.body["Resources"][0].get("meta").is_none());
    assert_scim_error(
        &app.get(&p, "?filter=nosuch%20eq%201").await,
        400,
        Some("invalidFilter"),
    );
    // The query needs the provider's token, as every SCIM request does.
    let r = app.send(Method::GET, &p.base, None, None).await;
    assert_scim_error(&r, 401, None);
    app.finish().await;
}
