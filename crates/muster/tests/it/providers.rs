//! Replays of what real identity providers send (PROVIDERS.md).

use axum::http::StatusCode;
use serde_json::json;

use crate::on_both;
use crate::scim_users::urlencode;
use crate::support::{assert_scim_error, Backend, TestApp};

on_both!(
    entra_test_connection_then_create,
    okta_existence_check_then_create,
    okta_reactivates_by_post,
    onelogin_loose_payloads,
    entra_string_booleans_on_post,
    entra_reference_requests
);

/// Entra ID's "Test connection" queries a random GUID and expects an empty 200; provisioning
/// then looks the user up by userName and creates it.
async fn entra_test_connection_then_create(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Microsoft Entra ID").await;
    let guid = uuid::Uuid::new_v4();
    let r = app
        .get(
            &p,
            &format!(
                "/Users?filter={}",
                urlencode(&format!("userName eq \"{guid}\""))
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["Resources"], json!([]));
    let r = app
        .get(
            &p,
            &format!(
                "/Users?filter={}",
                urlencode(&format!("externalId eq \"{guid}\""))
            ),
        )
        .await;
    assert_eq!(r.body["totalResults"], 0);
    let r = app
        .post(&p, "/Users", json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
            "active": true,
            "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": []
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = app
        .get(
            &p,
            &format!(
                "/Users?filter={}",
                urlencode("userName eq \"test_user_ab6490ee-1e48-479e-a20b-2d77186b5dd1\"")
            ),
        )
        .await;
    assert_eq!(
        r.body["totalResults"], 1,
        "userName lookups are case-insensitive"
    );
    // Entra's duplicate: 409 with a detail.
    let dup = app
        .post(
            &p,
            "/Users",
            json!({"userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"}),
        )
        .await;
    assert_scim_error(&dup, 409, Some("uniqueness"));
    app.finish().await;
}

/// Okta checks existence with `startIndex=1&count=100`, then creates and expects the user back.
async fn okta_existence_check_then_create(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let r = app
        .get(
            &p,
            &format!(
                "/Users?filter={}&startIndex=1&count=100",
                urlencode("userName eq \"isabella@example.com\"")
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["startIndex"], 1);
    let r = app
        .post(
            &p,
            "/Users",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "isabella@example.com",
                "name": {"givenName": "Isabella", "familyName": "Rossi"},
                "emails": [{"primary": true, "value": "isabella@example.com", "type": "work"}],
                "displayName": "Isabella Rossi",
                "locale": "en-US",
                "externalId": "00u1abcd",
                "groups": [],
                "password": "1mP0ssible!",
                "active": true,
                "c42OrgName": "Sales"
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["userName"], "isabella@example.com");
    assert_eq!(r.body["displayName"], "Isabella Rossi");
    assert_eq!(
        r.body["urn:ietf:params:scim:schemas:extension:muster:2.0:User"]["c42OrgName"], "Sales",
        "Okta's top-level custom attribute"
    );
    assert!(r.body.get("password").is_none());
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    let r = app
        .get(
            &p,
            &format!(
                "/Users?filter={}&startIndex=1&count=100",
                urlencode("userName eq \"isabella@example.com\"")
            ),
        )
        .await;
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["id"], id);
    // Custom apps update with PUT of the whole object after a GET.
    let mut got = app.get(&p, &format!("/Users/{id}")).await.body;
    got["name"]["familyName"] = json!("Rossi-Bianchi");
    let r = app.put(&p, &format!("/Users/{id}"), got).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["name"]["familyName"], "Rossi-Bianchi");
    assert_eq!(r.body["meta"]["version"], "W/\"2\"");
    app.finish().await;
}

/// Okta may bring back a user it turned off with a POST of the same userName: the existing user
/// comes back (201, same id), not a 409.
async fn okta_reactivates_by_post(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let id = app.create_user(&p, "back@example.com").await;
    let r = app
        .put(
            &p,
            &format!("/Users/{id}"),
            json!({"userName": "back@example.com", "active": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post(
            &p,
            "/Users",
            json!({"userName": "back@example.com", "active": true, "title": "Returned"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["title"], "Returned");
    // A deleted user comes back the same way, by externalId too.
    let r = app
        .post(
            &p,
            "/Users",
            json!({"userName": "gone@example.com", "externalId": "ext-gone"}),
        )
        .await;
    let gone = r.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        app.delete(&p, &format!("/Users/{gone}")).await.status,
        StatusCode::NO_CONTENT
    );
    let r = app
        .post(
            &p,
            "/Users",
            json!({"userName": "renamed@example.com", "externalId": "ext-gone"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["id"], gone);
    assert_eq!(r.body["userName"], "renamed@example.com");
    assert_eq!(
        app.get(&p, &format!("/Users/{gone}")).await.status,
        StatusCode::OK
    );
    app.finish().await;
}

/// OneLogin's templates can send a single object where a list is expected.
async fn onelogin_loose_payloads(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("OneLogin").await;
    let r = app.post(&p, "/Users", json!({"userName": "loose@example.com", "emails": {"value": "loose@example.com", "type": "work", "primary": true}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        r.body["emails"],
        json!([{"value": "loose@example.com", "type": "work", "primary": true}])
    );
    app.finish().await;
}

/// Entra ID's default mode sends booleans as strings.
async fn entra_string_booleans_on_post(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Entra").await;
    let r = app
        .post(
            &p,
            "/Users",
            json!({"userName": "str@example.com", "active": "True"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["active"], true);
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    let r = app
        .put(
            &p,
            &format!("/Users/{id}"),
            json!({"userName": "str@example.com", "active": "False"}),
        )
        .await;
    assert_eq!(r.body["active"], false);
    app.finish().await;
}

/// Requests from Microsoft's reference tests: unquoted, mixed-case filters, `attributes` with a
/// value filter, group lookups without members.
async fn entra_reference_requests(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Entra").await;
    let r = app.post(&p, "/Users", json!({"userName": "ref@example.com", "displayName": "Ref", "name": {"familyName": "x"}, "emails": [{"type": "work", "value": "ref@example.com"}]})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .post(
            &p,
            "/Groups",
            json!({"displayName": "RefGroup", "members": []}),
        )
        .await;
    let gid = r.body["id"].as_str().unwrap_or_default().to_string();
    for (filter, n) in [
        ("DisplayName eq \"Ref\"", 1),
        (
            "name.FamilyName eq x and (emails.Value co zz or emails.Value co qq)",
            0,
        ),
        (
            "name.FamilyName eq x and (emails.Value co ref or emails.Value co b)",
            1,
        ),
        ("emails[type eq \"work\"].value eq \"ref@example.com\"", 1),
    ] {
        let r = app
            .get(&p, &format!("/Users?filter={}", urlencode(filter)))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{filter}: {:?}", r.body);
        assert_eq!(r.body["totalResults"], n, "{filter}");
    }
    let r = app
        .get(
            &p,
            &format!(
                "/Users?attributes={}",
                urlencode("emails[type eq \"work\"]")
            ),
        )
        .await;
    assert!(r.body["Resources"][0].get("emails").is_some());
    assert!(r.body["Resources"][0].get("displayName").is_none());
    let r = app
        .get(
            &p,
            &format!(
                "/Groups?excludedAttributes=members&filter={}",
                urlencode("displayName eq \"RefGroup\"")
            ),
        )
        .await;
    assert_eq!(r.body["Resources"][0]["id"], gid);
    let r = app
        .get(&p, &format!("/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // A PUT with an unknown attribute: dropped, 200.
    let uid = app.get(&p, "/Users").await.body["Resources"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = app.put(&p, &format!("/Users/{uid}"), json!({"userName": "ref@example.com", "urn:example:unknown:attr": "x", "unknownThing": 1})).await;
    assert_eq!(r.status, StatusCode::OK);
    app.finish().await;
}
