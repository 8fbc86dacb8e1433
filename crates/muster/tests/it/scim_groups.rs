//! SCIM Groups and membership through the HTTP router.

use axum::http::StatusCode;
use serde_json::json;

use crate::on_both;
use crate::scim_users::urlencode;
use crate::support::{assert_scim_error, Backend, TestApp};

const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

on_both!(
    groups_with_members_and_user_groups,
    group_names_are_unique_per_provider,
    members_must_be_users_of_the_provider,
    put_replaces_membership_by_difference,
    deleting_a_user_or_group_cleans_membership,
    large_groups_are_streamed_whole,
);

async fn groups_with_members_and_user_groups(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let u1 = app.create_user(&p, "one@example.com").await;
    let u2 = app.create_user(&p, "two@example.com").await;
    // Entra and Okta create groups empty, then add members.
    let r = app.post(&p, "/Groups", json!({"schemas": [GROUP], "displayName": "Engineering", "externalId": "eng", "members": []})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert!(r.body.get("members").is_none(), "no members: {:?}", r.body);
    let gid = r.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(r.body["meta"]["resourceType"], "Group");
    let r = app
        .put(&p, &format!("/Groups/{gid}"), json!({"displayName": "Engineering", "externalId": "eng", "members": [{"value": u1}, {"value": u2, "display": "ignored"}]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let members = r.body["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 2);
    assert!(members
        .iter()
        .any(|m| m["value"] == u1 && m["type"] == "User" && m.get("display").is_none()));
    assert!(members[0]["$ref"]
        .as_str()
        .unwrap_or_default()
        .ends_with(&format!(
            "/Users/{}",
            members[0]["value"].as_str().unwrap_or_default()
        )));
    // excludedAttributes=members: no member list.
    let r = app
        .get(&p, &format!("/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert!(r.body.get("members").is_none());
    assert_eq!(r.body["displayName"], "Engineering");
    let r = app
        .get(
            &p,
            &format!(
                "/Groups?excludedAttributes=members&filter={}",
                urlencode("displayName eq \"engineering\"")
            ),
        )
        .await;
    assert_eq!(r.body["totalResults"], 1);
    assert!(r.body["Resources"][0].get("members").is_none());
    // A user shows its groups (read-only).
    let u = app.get(&p, &format!("/Users/{u1}")).await;
    assert_eq!(
        u.body["groups"],
        json!([{"value": gid, "$ref": format!("https://muster.test/scim/v2/{}/Groups/{gid}", p.id), "display": "Engineering", "type": "direct"}])
    );
    // Several groups come sorted by name; a user in none has no `groups`. One name needs
    // escaping, as a list carries names through JSON built by the database.
    const ACCOUNTING: &str = "Accounting \"Ω\"\t\\ ü";
    let r = app
        .post(
            &p,
            "/Groups",
            json!({"schemas": [GROUP], "displayName": ACCOUNTING, "members": [{"value": u1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let acc = r.body["id"].as_str().unwrap_or_default().to_string();
    let u = app.get(&p, &format!("/Users/{u1}")).await;
    let names: Vec<(&str, &str)> = u.body["groups"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|g| {
                    (
                        g["display"].as_str().unwrap_or_default(),
                        g["value"].as_str().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        names,
        [(ACCOUNTING, acc.as_str()), ("Engineering", gid.as_str())]
    );
    // Lists carry the same groups: a filter, and a page in creation order.
    let by_name = app
        .get(
            &p,
            &format!(
                "/Users?filter={}",
                urlencode("userName eq \"one@example.com\"")
            ),
        )
        .await;
    assert_eq!(by_name.body["Resources"][0]["groups"], u.body["groups"]);
    let page = app.get(&p, "/Users?startIndex=1&count=10").await;
    let listed = |id: &str| {
        page.body["Resources"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["id"] == id))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(listed(&u1)["groups"], u.body["groups"]);
    assert_eq!(listed(&u2)["groups"][0]["display"], "Engineering");
    assert_eq!(listed(&u2)["groups"].as_array().map(Vec::len), Some(1));
    let lone = app.create_user(&p, "three@example.com").await;
    let u = app.get(&p, &format!("/Users/{lone}")).await;
    assert_eq!(u.status, StatusCode::OK);
    assert!(u.body.get("groups").is_none(), "{:?}", u.body);
    let u = app
        .get(&p, &format!("/Users/{u1}?attributes=userName"))
        .await;
    assert!(u.body.get("groups").is_none());
    assert_eq!(u.body["id"], u1, "id is always returned");
    // Filters on groups.
    for (f, n) in [
        ("externalId eq \"eng\"", 1),
        (&format!("id eq \"{gid}\"") as &str, 1),
        ("displayName eq \"Sales\"", 0),
        ("displayName sw \"eng\"", 1),
    ] {
        let r = app
            .get(&p, &format!("/Groups?filter={}", urlencode(f)))
            .await;
        assert_eq!(r.body["totalResults"], n, "{f}");
    }
    app.finish().await;
}

async fn group_names_are_unique_per_provider(b: Backend) {
    let app = TestApp::new(b).await;
    let okta = app.provider("Okta").await;
    let entra = app.provider("Entra").await;
    let r = app
        .post(&okta, "/Groups", json!({"displayName": "Sales"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_scim_error(
        &app.post(&okta, "/Groups", json!({"displayName": "SALES"}))
            .await,
        409,
        Some("uniqueness"),
    );
    let r = app
        .post(&entra, "/Groups", json!({"displayName": "Sales"}))
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "another provider may use the same name"
    );
    assert_scim_error(
        &app.post(&okta, "/Groups", json!({"members": []})).await,
        400,
        Some("invalidValue"),
    );
    app.finish().await;
}

async fn members_must_be_users_of_the_provider(b: Backend) {
    let app = TestApp::new(b).await;
    let okta = app.provider("Okta").await;
    let entra = app.provider("Entra").await;
    let theirs = app.create_user(&entra, "theirs@example.com").await;
    let r = app
        .post(
            &okta,
            "/Groups",
            json!({"displayName": "G", "members": [{"value": theirs}]}),
        )
        .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains(&theirs));
    let r = app
        .post(
            &okta,
            "/Groups",
            json!({"displayName": "G", "members": [{"value": "not-an-id"}]}),
        )
        .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = app
        .post(
            &okta,
            "/Groups",
            json!({"displayName": "G", "members": [{"display": "no value"}]}),
        )
        .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert_eq!(
        app.get(&okta, "/Groups").await.body["totalResults"],
        0,
        "refused creates leave nothing"
    );
    app.finish().await;
}

async fn put_replaces_membership_by_difference(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(app.create_user(&p, &format!("m{i}@example.com")).await);
    }
    let members = |ids: &[&String]| {
        json!(ids
            .iter()
            .map(|id| json!({"value": id}))
            .collect::<Vec<_>>())
    };
    let r = app
        .post(
            &p,
            "/Groups",
            json!({"displayName": "Team", "members": members(&[&users[0], &users[1], &users[2]])}),
        )
        .await;
    let gid = r.body["id"].as_str().unwrap_or_default().to_string();
    let r = app
        .put(
            &p,
            &format!("/Groups/{gid}"),
            json!({"displayName": "Team Renamed", "members": members(&[&users[2], &users[3]])}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut now: Vec<String> = r.body["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| m["value"].as_str().unwrap_or_default().to_string())
        .collect();
    now.sort();
    let mut want = vec![users[2].clone(), users[3].clone()];
    want.sort();
    assert_eq!(now, want);
    assert_eq!(r.body["displayName"], "Team Renamed");
    let mut tx = app
        .muster
        .store
        .read()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let log = tx
        .recent_log(app.env.id, 50)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let added = log.iter().find(|e| {
        e.action == "group.members_added" && e.subject_name.as_deref() == Some("Team Renamed")
    });
    assert_eq!(added.map(|e| e.details["count"].clone()), Some(json!(1)));
    let removed = log
        .iter()
        .find(|e| e.action == "group.members_removed")
        .map(|e| e.details["count"].clone());
    assert_eq!(removed, Some(json!(2)));
    assert!(log.iter().any(|e| e.action == "group.renamed"
        && e.details["before"] == "Team"
        && e.details["after"] == "Team Renamed"));
    drop(tx);
    app.finish().await;
}

async fn deleting_a_user_or_group_cleans_membership(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let u1 = app.create_user(&p, "d1@example.com").await;
    let u2 = app.create_user(&p, "d2@example.com").await;
    let r = app
        .post(
            &p,
            "/Groups",
            json!({"displayName": "D", "members": [{"value": u1}, {"value": u2}]}),
        )
        .await;
    let gid = r.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        app.delete(&p, &format!("/Users/{u1}")).await.status,
        StatusCode::NO_CONTENT
    );
    let g = app.get(&p, &format!("/Groups/{gid}")).await;
    assert_eq!(
        g.body["members"].as_array().map(Vec::len),
        Some(1),
        "a deleted user leaves its groups"
    );
    assert_eq!(
        app.delete(&p, &format!("/Groups/{gid}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_scim_error(&app.get(&p, &format!("/Groups/{gid}")).await, 404, None);
    let u = app.get(&p, &format!("/Users/{u2}")).await;
    assert!(u.body.get("groups").is_none(), "{:?}", u.body);
    app.finish().await;
}

/// A group above 1,000 members is streamed page by page: the document is the same valid JSON,
/// every member is there once, and `attributes` applies to each member.
async fn large_groups_are_streamed_whole(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let mut ids = Vec::new();
    for batch in 0..3 {
        let ops: Vec<serde_json::Value> = (0..850)
            .map(|i| {
                json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"),
                            "data": {"userName": format!("big{batch}-{i}@example.com")}})
            })
            .collect();
        let r = app
            .post(&p, "/Bulk", json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        ids.extend(
            r.body["Operations"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| {
                    o["location"]
                        .as_str()
                        .and_then(|l| l.rsplit('/').next())
                        .map(str::to_string)
                }),
        );
    }
    assert_eq!(ids.len(), 2550);
    let g = app
        .post(&p, "/Groups", json!({"displayName": "Everyone"}))
        .await
        .body["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for chunk in ids.chunks(900) {
        let members: Vec<serde_json::Value> = chunk.iter().map(|id| json!({"value": id})).collect();
        let r = app
            .patch(
                &p,
                &format!("/Groups/{g}"),
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": members}]}),
            )
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
    }
    let r = app.get(&p, &format!("/Groups/{g}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("etag").is_some_and(|e| e.starts_with("W/")));
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert_eq!(r.body["displayName"], "Everyone");
    assert_eq!(r.body["meta"]["resourceType"], "Group");
    let members = r.body["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 2550);
    let mut seen: Vec<String> = members
        .iter()
        .filter_map(|m| m["value"].as_str().map(str::to_string))
        .collect();
    seen.sort();
    seen.dedup();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want, "every member exactly once");
    assert!(members[0]["$ref"]
        .as_str()
        .is_some_and(|r| r.ends_with(members[0]["value"].as_str().unwrap_or("?"))));
    // The projection applies to streamed members too.
    let r = app
        .get(&p, &format!("/Groups/{g}?attributes=members.value"))
        .await;
    let members = r.body["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 2550);
    assert!(members
        .iter()
        .all(|m| m.as_object().is_some_and(|o| o.len() == 1)));
    assert!(r.body.get("displayName").is_none());
    // A conditional GET still answers 304.
    let etag = app
        .get(&p, &format!("/Groups/{g}?excludedAttributes=members"))
        .await;
    let etag = etag.header("etag").unwrap_or_default().to_string();
    let r = app
        .send_with(
            axum::http::Method::GET,
            &format!("{}/Groups/{g}", p.base),
            Some(&p.token),
            None,
            &[("if-none-match", etag.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    app.finish().await;
}
