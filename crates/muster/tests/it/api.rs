//! The administration REST API (`/api/v1`): organizations, roles, users, providers, tokens,
//! authentication, errors, and the OpenAPI document.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use muster_core::model::Actor;
use serde_json::{json, Value};

use crate::on_both;
use crate::support::{Api, Backend, Resp, TestApp};

on_both!(
    organizations,
    roles,
    users_and_lifecycle_actions,
    providers_and_tokens,
    authentication_and_errors
);

pub fn assert_api_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{:?}", r.body);
    assert!(!r.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .is_empty());
}

fn id(r: &Resp) -> String {
    r.body["id"].as_str().unwrap_or_default().to_string()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn organizations(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let tree = api.get("/orgs/tree").await;
    assert_eq!(tree.status, StatusCode::OK);
    assert_eq!(tree.body["name"], "Default Organization");
    let root = tree.body["id"].as_str().unwrap_or_default().to_string();
    let sales = api.post("/orgs", json!({"name": "  Sales  "})).await;
    assert_eq!(sales.status, StatusCode::CREATED, "{:?}", sales.body);
    assert_eq!(sales.body["name"], "Sales", "names are trimmed");
    assert_eq!(
        sales.body["parentId"], root,
        "added under the default organization"
    );
    assert_eq!(sales.body["path"], json!(["Default Organization", "Sales"]));
    assert_eq!(
        names(&sales.body["defaultRoles"]),
        vec!["Desktop User", "PROe User"]
    );
    assert_eq!(sales.body["defaultRolesInherited"], true);
    let sales_id = id(&sales);
    assert_api_error(
        &api.post("/orgs", json!({"name": "SALES"})).await,
        409,
        "conflict",
    );
    assert_api_error(
        &api.post("/orgs", json!({"name": "ab"})).await,
        400,
        "invalid",
    );
    assert_api_error(
        &api.post("/orgs", json!({"name": "x".repeat(221)})).await,
        400,
        "invalid",
    );
    let emea = api
        .post("/orgs", json!({"name": "EMEA", "parentId": sales_id}))
        .await;
    let emea_id = id(&emea);
    assert_eq!(
        emea.body["path"],
        json!(["Default Organization", "Sales", "EMEA"])
    );
    // The same name under another parent is fine.
    assert_eq!(
        api.post("/orgs", json!({"name": "EMEA"})).await.status,
        StatusCode::CREATED
    );
    // Rename, and moves: never under itself or a descendant.
    let r = api
        .patch(
            &format!("/orgs/{sales_id}"),
            json!({"name": "Sales & Marketing"}),
        )
        .await;
    assert_eq!(r.body["name"], "Sales & Marketing");
    assert_api_error(
        &api.patch(&format!("/orgs/{sales_id}"), json!({"parentId": emea_id}))
            .await,
        400,
        "invalid",
    );
    assert_api_error(
        &api.patch(&format!("/orgs/{sales_id}"), json!({"parentId": sales_id}))
            .await,
        400,
        "invalid",
    );
    assert_api_error(
        &api.patch(&format!("/orgs/{root}"), json!({"parentId": sales_id}))
            .await,
        400,
        "invalid",
    );
    let ops = api.post("/orgs", json!({"name": "Ops"})).await;
    let r = api
        .patch(&format!("/orgs/{emea_id}"), json!({"parentId": id(&ops)}))
        .await;
    assert_eq!(
        r.body["path"],
        json!(["Default Organization", "Ops", "EMEA"])
    );
    // Deactivation takes the descendants along; reactivation needs an active parent.
    let r = api
        .patch(
            &format!("/orgs/{}", id(&ops)),
            json!({"status": "deactivated"}),
        )
        .await;
    assert_eq!(r.body["status"], "deactivated");
    assert_eq!(
        api.get(&format!("/orgs/{emea_id}")).await.body["status"],
        "deactivated"
    );
    assert_api_error(
        &api.patch(&format!("/orgs/{emea_id}"), json!({"status": "active"}))
            .await,
        400,
        "invalid",
    );
    let listed = api.get("/orgs?status=deactivated").await;
    assert_eq!(listed.body["orgs"].as_array().map(Vec::len), Some(2));
    assert_api_error(
        &api.post("/orgs", json!({"name": "Under", "parentId": id(&ops)}))
            .await,
        400,
        "invalid",
    );
    api.patch(&format!("/orgs/{}", id(&ops)), json!({"status": "active"}))
        .await;
    assert_eq!(
        api.get(&format!("/orgs/{emea_id}")).await.body["status"],
        "deactivated",
        "children stay deactivated"
    );
    assert_eq!(
        api.patch(&format!("/orgs/{emea_id}"), json!({"status": "active"}))
            .await
            .body["status"],
        "active"
    );
    assert_api_error(
        &api.patch(&format!("/orgs/{root}"), json!({"status": "deactivated"}))
            .await,
        400,
        "invalid",
    );
    // Default roles: set on an organization, inherited below it, inheritance restored.
    let roles = api.get("/roles").await;
    let audit = roles.body["roles"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "Audit Log Viewer"))
        .map(|r| r["id"].clone())
        .unwrap_or_default();
    let r = api
        .put(
            &format!("/orgs/{}/default-roles", id(&ops)),
            json!({"roleIds": [audit]}),
        )
        .await;
    assert_eq!(names(&r.body["defaultRoles"]), vec!["Audit Log Viewer"]);
    assert_eq!(r.body["defaultRolesInherited"], false);
    let child = api.get(&format!("/orgs/{emea_id}")).await;
    assert_eq!(names(&child.body["defaultRoles"]), vec!["Audit Log Viewer"]);
    assert_eq!(child.body["defaultRolesFrom"], id(&ops));
    let r = api
        .put(
            &format!("/orgs/{}/default-roles", id(&ops)),
            json!({"roleIds": null}),
        )
        .await;
    assert_eq!(
        names(&r.body["defaultRoles"]),
        vec!["Desktop User", "PROe User"]
    );
    assert_api_error(
        &api.put(
            &format!("/orgs/{root}/default-roles"),
            json!({"roleIds": null}),
        )
        .await,
        400,
        "invalid",
    );
    let tree = api.get("/orgs/tree").await;
    let top: Vec<String> = names(&tree.body["children"]);
    assert_eq!(top, vec!["EMEA", "Ops", "Sales & Marketing"]);
    app.finish().await;
}

async fn roles(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let r = api.get("/roles").await;
    let all = names(&r.body["roles"]);
    for standard in [
        "Desktop User",
        "PROe User",
        "Customer Cloud Admin",
        "Identity Management Administrator",
        "Org Admin",
        "Org Manager",
        "Security Administrator",
        "Audit Log Viewer",
        "Cross-Org Admin",
        "Legal Hold Administrator",
    ] {
        assert!(all.contains(&standard.to_string()), "{standard}");
    }
    assert!(r.body["roles"].as_array().is_some_and(|a| a
        .iter()
        .all(|r| !r["description"].as_str().unwrap_or_default().is_empty())));
    let custom = api
        .post(
            "/roles",
            json!({"name": "Backup Auditor", "description": "Reads backup reports"}),
        )
        .await;
    assert_eq!(custom.status, StatusCode::CREATED);
    assert_eq!(custom.body["builtin"], false);
    assert_api_error(
        &api.post("/roles", json!({"name": "backup auditor"})).await,
        409,
        "conflict",
    );
    // In use by a user: refused; then freed: deleted.
    let user = api
        .post("/users", json!({"userName": "auditor@example.com"}))
        .await;
    api.patch(
        &format!("/users/{}", id(&user)),
        json!({"roleIds": [id(&custom)]}),
    )
    .await;
    assert_api_error(
        &api.delete(&format!("/roles/{}", id(&custom))).await,
        409,
        "conflict",
    );
    api.patch(&format!("/users/{}", id(&user)), json!({"roleIds": []}))
        .await;
    assert_eq!(
        api.delete(&format!("/roles/{}", id(&custom))).await.status,
        StatusCode::NO_CONTENT
    );
    let builtin = r.body["roles"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_api_error(
        &api.delete(&format!("/roles/{builtin}")).await,
        400,
        "invalid",
    );
    assert_api_error(
        &api.delete(&format!("/roles/{}", id(&custom))).await,
        404,
        "not_found",
    );
    app.finish().await;
}

async fn users_and_lifecycle_actions(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let p = app.provider("Okta").await;
    let local = api.post("/users", json!({"userName": "Local@Example.com", "displayName": "Local Person", "email": "local@example.com"})).await;
    assert_eq!(local.status, StatusCode::CREATED, "{:?}", local.body);
    assert_eq!(local.body["owner"]["kind"], "local");
    assert_eq!(local.body["org"]["name"], "Default Organization");
    assert_eq!(local.body["email"], "local@example.com");
    assert_eq!(local.body["externalId"], Value::Null);
    assert_eq!(local.body["groups"], json!([]));
    assert_eq!(
        local.body["mapping"],
        Value::Null,
        "no mapping applies to a local user"
    );
    assert_eq!(
        local.body["roles"],
        json!([
        {"id": local.body["roles"][0]["id"], "name": "Desktop User", "source": "org"},
        {"id": local.body["roles"][1]["id"], "name": "PROe User", "source": "org"}])
    );
    // A provider cannot take a local user's userName.
    let r = app
        .post(&p, "/Users", json!({"userName": "local@example.com"}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("local user"),
        "{:?}",
        r.body
    );
    assert_api_error(
        &api.post("/users", json!({"userName": "LOCAL@example.com"}))
            .await,
        409,
        "conflict",
    );
    // Provisioned users.
    let mut provisioned = Vec::new();
    for i in 0..5 {
        provisioned.push(app.create_user(&p, &format!("prov{i}@example.com")).await);
    }
    let sales = api.post("/orgs", json!({"name": "Sales"})).await;
    let sales_id = id(&sales);
    // Administrator actions on a provisioned user.
    let u = &provisioned[0];
    // Its SCIM groups, its address and the provider's id for it, as the provider sent them.
    for name in ["Support", "Engineering"] {
        let r = app
            .post(
                &p,
                "/Groups",
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": [{"value": u}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let r = app
        .patch(
            &p,
            &format!("/Users/{u}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "add", "value": {"externalId": "00u-prov0",
                     "emails": [{"value": "p0@home.example"}, {"value": "Prov0@Example.com", "primary": true}]}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let shown = api.get(&format!("/users/{u}")).await.body;
    let groups: Vec<&str> = shown["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(|g| g["displayName"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(groups, ["Engineering", "Support"], "by name: {shown}");
    assert_eq!(
        shown["email"], "Prov0@Example.com",
        "the primary one: {shown}"
    );
    assert_eq!(shown["externalId"], "00u-prov0", "{shown}");
    assert_eq!(
        shown["mapping"],
        json!({"organization": "no organization mapping: the user stays where it is",
               "organizationElsewhere": null, "roles": null}),
        "{shown}"
    );
    let listed = api.get("/users?q=prov0%40").await.body;
    assert_eq!(listed["users"][0]["externalId"], "00u-prov0", "{listed}");
    // Found by exact attributes, as an application looks up the person who signed in: the
    // email (any of them, without case), the provider's externalId (exactly), the userName.
    let found = |body: &Value| -> Vec<String> {
        body["users"]
            .as_array()
            .map(|u| {
                u.iter()
                    .filter_map(|u| u["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    for query in [
        "email=PROV0%40example.com",
        "email=p0%40home.example",
        "externalId=00u-prov0",
        "userName=PROV0%40Example.com",
    ] {
        let r = api.get(&format!("/users?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {:?}", r.body);
        assert_eq!(
            found(&r.body),
            std::slice::from_ref(u),
            "{query}: {:?}",
            r.body
        );
    }
    // A misspelt parameter, or an exact one left empty, is refused rather than ignored: an
    // application looking for one person must not be given everyone, or no one, silently.
    for (query, says) in [
        ("externalid=00u-prov0", "unknown field `externalid`"),
        ("externalId=", "'externalId' is empty"),
        ("email=%20", "'email' is empty"),
        ("userName=", "'userName' is empty"),
    ] {
        let r = api.get(&format!("/users?{query}")).await;
        assert_api_error(&r, 400, "invalid");
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{query}: {message}");
    }
    for path in ["/orgs?stauts=active", "/sync-log?acton=user.created"] {
        assert_api_error(&api.get(path).await, 400, "invalid");
    }
    // Both: the users that have the address and the externalId.
    let both = found(
        &api.get("/users?email=prov0%40example.com&externalId=00u-prov0")
            .await
            .body,
    );
    assert_eq!(both, std::slice::from_ref(u));
    for query in [
        "email=prov0%40example.com&externalId=00u-prov1",
        "externalId=00U-PROV0",
        "email=prov0%40example",
        "userName=prov0",
    ] {
        let r = api.get(&format!("/users?{query}")).await;
        assert_eq!(
            found(&r.body),
            Vec::<String>::new(),
            "{query}: {:?}",
            r.body
        );
    }
    let r = api
        .patch(&format!("/users/{u}"), json!({"orgId": sales_id}))
        .await;
    assert_eq!(r.body["org"]["name"], "Sales");
    assert_eq!(r.body["changedOutsideProvisioning"], true);
    assert_eq!(r.body["owner"]["providerName"], "Okta");
    let r = api
        .patch(&format!("/users/{u}"), json!({"status": "blocked"}))
        .await;
    assert_eq!(r.body["status"], "blocked");
    let r = api
        .patch(&format!("/users/{u}"), json!({"status": "active"}))
        .await;
    assert_eq!(r.body["status"], "active");
    let r = api
        .patch(&format!("/users/{u}"), json!({"status": "deactivated"}))
        .await;
    assert_eq!(r.body["status"], "deactivated", "at once");
    let r = api
        .patch(&format!("/users/{u}"), json!({"status": "active"}))
        .await;
    assert_eq!(r.body["status"], "active");
    let roles = api.get("/roles").await;
    let org_admin = roles.body["roles"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "Org Admin"))
        .map(|r| r["id"].clone())
        .unwrap_or_default();
    let r = api
        .patch(&format!("/users/{u}"), json!({"roleIds": [org_admin]}))
        .await;
    assert_eq!(
        r.body["roles"],
        json!([{"id": org_admin, "name": "Org Admin", "source": "admin"}])
    );
    let r = api
        .patch(&format!("/users/{u}"), json!({"legalHold": true}))
        .await;
    assert_eq!(r.body["legalHold"], true);
    assert_api_error(
        &api.patch(&format!("/users/{u}"), json!({"status": "deactivated"}))
            .await,
        400,
        "invalid",
    );
    // The provider's next update clears the "changed outside provisioning" mark.
    app.put(
        &p,
        &format!("/Users/{u}"),
        json!({"userName": "prov0@example.com", "title": "Updated"}),
    )
    .await;
    assert_eq!(
        api.get(&format!("/users/{u}")).await.body["changedOutsideProvisioning"],
        false
    );
    // A user turned off by the provider shows its pending deactivation.
    let off = &provisioned[1];
    app.put(
        &p,
        &format!("/Users/{off}"),
        json!({"userName": "prov1@example.com", "active": false}),
    )
    .await;
    let r = api.get(&format!("/users/{off}")).await;
    assert_eq!(r.body["status"], "blocked");
    assert!(r.body["pendingDeactivationAt"].is_string());
    // Listing: filters and keyset pages.
    let count = |r: &Resp| r.body["users"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(count(&api.get("/users").await), 6);
    assert_eq!(count(&api.get("/users?provider=local").await), 1);
    assert_eq!(
        count(&api.get(&format!("/users?provider={}", p.id)).await),
        5
    );
    assert_eq!(count(&api.get(&format!("/users?org={sales_id}")).await), 1);
    assert_eq!(count(&api.get("/users?status=blocked").await), 1);
    assert_eq!(
        count(&api.get("/users?q=PERSON").await),
        1,
        "display name search, case-insensitive"
    );
    assert_eq!(count(&api.get("/users?q=prov").await), 5);
    assert_eq!(count(&api.get("/users?q=100%25").await), 0, "% is literal");
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/users?limit=2&cursor={c}"),
            None => "/users?limit=2".to_string(),
        };
        let page = api.get(&path).await;
        for u in page.body["users"].as_array().cloned().unwrap_or_default() {
            assert!(
                seen.insert(u["id"].as_str().unwrap_or_default().to_string()),
                "no user twice"
            );
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    assert_api_error(&api.get("/users?cursor=garbage").await, 400, "invalid");
    assert_api_error(&api.get("/users?status=sleeping").await, 400, "invalid");
    assert_api_error(
        &api.get("/users/0191d6a0-0000-7000-8000-000000000000").await,
        404,
        "not_found",
    );
    // Every administrator action is in the sync log, with the administrator as actor.
    let mut tx = app
        .muster
        .store
        .read()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let log = tx
        .recent_log(app.env.id, 200)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for action in [
        "user.moved",
        "user.blocked",
        "user.unblocked",
        "user.deactivated",
        "user.reactivated",
        "user.roles_changed",
        "user.legal_hold_set",
    ] {
        let e = log
            .iter()
            .find(|e| e.action == action && e.subject_id.as_deref() == Some(u.as_str()));
        assert!(e.is_some_and(|e| matches!(e.actor, Actor::Admin { .. }) && e.provider_id == Some(p.id)), "{action}");
    }
    drop(tx);
    // An externalId is the provider's own: another provider may have given it too.
    assert!(
        found(&api.get("/users?externalId=00u-prov0").await.body).is_empty(),
        "the PUT above sent none"
    );
    let r = app
        .patch(
            &p,
            &format!("/Users/{u}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "add", "path": "externalId", "value": "shared-7"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let entra = app.provider("Entra ID").await;
    let r = app
        .post(
            &entra,
            "/Users",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "other@example.com", "externalId": "shared-7"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let other = r.body["id"].as_str().unwrap_or_default().to_string();
    let both = found(&api.get("/users?externalId=shared-7").await.body);
    assert_eq!(both, [u.to_string(), other], "oldest first");
    let one = found(
        &api.get(&format!("/users?externalId=shared-7&provider={}", p.id))
            .await
            .body,
    );
    assert_eq!(one, [u.to_string()]);
    app.finish().await;
}

async fn providers_and_tokens(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let r = api.post("/providers", json!({"name": "Entra ID"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let pid = id(&r);
    let secret = r.body["token"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(secret.starts_with("mst_"));
    assert_eq!(r.body["deactivationDelaySeconds"], 900);
    assert!(r.body["scimBaseUrl"]
        .as_str()
        .unwrap_or_default()
        .ends_with(&format!("/scim/v2/{pid}")));
    // The token works for SCIM.
    let scim = app
        .send(
            Method::GET,
            &format!("/scim/v2/{pid}/Users"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(scim.status, StatusCode::OK);
    assert_api_error(
        &api.post("/providers", json!({"name": "entra id"})).await,
        409,
        "conflict",
    );
    let r = api
        .patch(
            &format!("/providers/{pid}"),
            json!({"deactivationDelaySeconds": 86400, "name": "Entra"}),
        )
        .await;
    assert_eq!(r.body["deactivationDelaySeconds"], 86400);
    assert_eq!(r.body["name"], "Entra");
    assert_api_error(
        &api.patch(
            &format!("/providers/{pid}"),
            json!({"deactivationDelaySeconds": 7776001}),
        )
        .await,
        400,
        "invalid",
    );
    let listed = api.get("/providers").await;
    assert_eq!(listed.body["providers"].as_array().map(Vec::len), Some(1));
    assert!(
        !listed.body.to_string().contains(&secret),
        "secrets are shown once"
    );
    let t = api
        .post(
            &format!("/providers/{pid}/tokens"),
            json!({"label": "rotation", "expiresAt": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(t.status, StatusCode::CREATED);
    let second = t.body["secret"].as_str().unwrap_or_default().to_string();
    let tokens = api.get(&format!("/providers/{pid}/tokens")).await;
    assert_eq!(tokens.body["tokens"].as_array().map(Vec::len), Some(2));
    assert!(!tokens.body.to_string().contains(&second));
    let first_id = tokens.body["tokens"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["label"] == "initial"))
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    assert_eq!(
        api.delete(&format!("/providers/{pid}/tokens/{first_id}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.send(
            Method::GET,
            &format!("/scim/v2/{pid}/Users"),
            Some(&secret),
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.send(
            Method::GET,
            &format!("/scim/v2/{pid}/Users"),
            Some(&second),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_api_error(
        &api.delete(&format!("/providers/{pid}/tokens/{first_id}"))
            .await,
        404,
        "not_found",
    );
    assert_api_error(
        &api.post(
            &format!("/providers/{pid}/tokens"),
            json!({"expiresAt": "tomorrow"}),
        )
        .await,
        400,
        "invalid",
    );
    app.finish().await;
}

async fn authentication_and_errors(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let p = app.provider("Okta").await;
    let r = app.send(Method::GET, "/api/v1/orgs", None, None).await;
    assert_api_error(&r, 401, "unauthorized");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"Muster API\"")
    );
    // HTTP Basic is for SCIM clients; the API takes its tokens as bearer tokens only.
    let basic = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", api.token))
        )
    };
    let r = app
        .send_with(
            Method::GET,
            "/api/v1/orgs",
            None,
            None,
            &[("authorization", &basic)],
        )
        .await;
    assert_api_error(&r, 401, "unauthorized");
    assert_eq!(
        r.body["error"]["message"],
        "the Authorization header must use the Bearer scheme"
    );
    let r = app
        .send_with(
            Method::GET,
            "/api/v1/orgs",
            None,
            None,
            &[("authorization", "Bearer ")],
        )
        .await;
    assert_api_error(&r, 401, "unauthorized");
    assert_eq!(
        r.body["error"]["message"],
        "send an administrator API token as 'Authorization: Bearer <token>'"
    );
    assert_api_error(
        &app.send(Method::GET, "/api/v1/orgs", Some(&p.token), None)
            .await,
        401,
        "unauthorized",
    );
    assert_api_error(
        &app.send(Method::GET, "/api/v1/orgs", Some("msa_nope"), None)
            .await,
        401,
        "unauthorized",
    );
    let tokens = app
        .muster
        .list_admin_tokens(app.env.id)
        .await
        .unwrap_or_default();
    app.muster
        .revoke_admin_token(app.env.id, tokens[0].id, &Actor::Admin { name: "t".into() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_api_error(&api.get("/orgs").await, 401, "unauthorized");
    let api = Api::new(&app).await;
    let junk = app
        .raw(
            axum::http::Request::builder()
                .method(Method::POST)
                .uri("/api/v1/orgs")
                .header("authorization", format!("Bearer {}", api.token))
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{nope"))
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .await;
    assert_api_error(&junk, 400, "invalid");
    assert_api_error(
        &api.post("/orgs", json!({"name": "Valid", "colour": "red"}))
            .await,
        400,
        "invalid",
    );
    assert_api_error(
        &api.post("/orgs", json!({"name": "Valid", "parentId": "nope"}))
            .await,
        404,
        "not_found",
    );
    assert_api_error(&api.get("/nope").await, 404, "not_found");
    // Query parameters that do not parse are a JSON error too.
    assert_api_error(&api.get("/users?limit=many").await, 400, "invalid");
    assert_api_error(&api.get("/sync-log?limit=-").await, 400, "invalid");
    for path in ["/sync-log", "/sync-log/export.csv"] {
        assert_api_error(
            &api.get(&format!(
                "{path}?since=2027-01-02T00:00:00Z&until=2027-01-01T00:00:00Z"
            ))
            .await,
            400,
            "invalid",
        );
    }
    assert_api_error(
        &api.patch("/orgs/0191d6a0-0000-7000-8000-000000000000", json!({}))
            .await,
        400,
        "invalid",
    );
    app.finish().await;
}

/// Every endpoint the API has, as `(method, path)`: the OpenAPI document lists exactly these.
const ENDPOINTS: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/orgs"),
    ("post", "/api/v1/orgs"),
    ("get", "/api/v1/orgs/tree"),
    ("get", "/api/v1/orgs/{id}"),
    ("patch", "/api/v1/orgs/{id}"),
    ("put", "/api/v1/orgs/{id}/default-roles"),
    ("get", "/api/v1/roles"),
    ("post", "/api/v1/roles"),
    ("delete", "/api/v1/roles/{id}"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users/{id}"),
    ("patch", "/api/v1/users/{id}"),
    ("get", "/api/v1/groups"),
    ("get", "/api/v1/groups/{id}"),
    ("get", "/api/v1/providers"),
    ("post", "/api/v1/providers"),
    ("get", "/api/v1/providers/{id}"),
    ("patch", "/api/v1/providers/{id}"),
    ("get", "/api/v1/providers/{id}/tokens"),
    ("post", "/api/v1/providers/{id}/tokens"),
    ("delete", "/api/v1/providers/{id}/tokens/{tokenId}"),
    ("get", "/api/v1/providers/{id}/mapping"),
    ("put", "/api/v1/providers/{id}/mapping/org"),
    ("post", "/api/v1/providers/{id}/mapping/groups"),
    ("put", "/api/v1/providers/{id}/mapping/groups/{mappingId}"),
    (
        "delete",
        "/api/v1/providers/{id}/mapping/groups/{mappingId}",
    ),
    ("put", "/api/v1/providers/{id}/mapping/group-order"),
    ("put", "/api/v1/providers/{id}/mapping/roles/{groupId}"),
    ("delete", "/api/v1/providers/{id}/mapping/roles/{groupId}"),
    ("get", "/api/v1/providers/{id}/mapping/preview"),
    ("post", "/api/v1/providers/{id}/mapping/apply"),
    ("get", "/api/v1/sync-log"),
    ("get", "/api/v1/sync-log/export.csv"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/events/head"),
    ("get", "/api/v1/apps"),
    ("post", "/api/v1/apps"),
    ("post", "/api/v1/apps/{id}/rotate"),
    ("delete", "/api/v1/apps/{id}"),
    ("get", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks/{id}"),
    ("patch", "/api/v1/webhooks/{id}"),
    ("delete", "/api/v1/webhooks/{id}"),
    ("post", "/api/v1/webhooks/{id}/rotate-secret"),
    ("get", "/api/v1/providers/{id}/guard"),
    ("patch", "/api/v1/providers/{id}/guard"),
    ("post", "/api/v1/providers/{id}/guard/release"),
    ("post", "/api/v1/providers/{id}/guard/restore"),
    ("patch", "/api/v1/roles/{id}"),
    ("get", "/api/v1/admins"),
    ("patch", "/api/v1/admins/{id}"),
    ("post", "/api/v1/webhooks/{id}/replay"),
    ("post", "/api/v1/webhooks/{id}/redeliver"),
    ("post", "/api/v1/webhooks/{id}/test"),
    ("get", "/api/v1/webhooks/{id}/deliveries"),
];

/// The document's paths as `(method, path)`.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().cloned().unwrap_or_default() {
        for method in item
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            out.insert((method, path.clone()));
        }
    }
    out
}

/// The schema `s` with `$ref`s followed.
fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    match s["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => resolve(doc, &doc["components"]["schemas"][name]),
        None => s,
    }
}

/// Every property `schema` declares, through `allOf` (how a flattened struct is described).
fn properties<'a>(doc: &'a Value, schema: &'a Value) -> serde_json::Map<String, Value> {
    let schema = resolve(doc, schema);
    let mut out = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(properties(doc, part));
    }
    out
}

/// Fails on any field of `value` that `schema` does not declare, at any depth: what a handler
/// sends is what the document says.
fn assert_described(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(doc, schema);
    if let Some(options) = schema["oneOf"].as_array() {
        // Option<T>: `null`, or the type.
        if value.is_null() {
            return;
        }
        for o in options.iter().filter(|o| o["type"] != "null") {
            assert_described(doc, o, value, at);
        }
        return;
    }
    match value {
        Value::Object(fields) => {
            let declared = properties(doc, schema);
            if declared.is_empty() {
                return; // a free-form object (`scim`, `details`)
            }
            for (k, v) in fields {
                let Some(s) = declared.get(k) else {
                    panic!("{at}.{k} is sent but not in the OpenAPI document");
                };
                assert_described(doc, s, v, &format!("{at}.{k}"));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                assert_described(doc, &schema["items"], v, &format!("{at}[{i}]"));
            }
        }
        _ => {}
    }
}

/// The OpenAPI document is generated from the routes and the handlers' types: it lists exactly
/// the API's endpoints, each of them is routed, and what the API answers has no field the
/// document leaves out.
#[tokio::test]
async fn openapi_matches_the_router() {
    let app = TestApp::new(Backend::Sqlite).await;
    let doc = app
        .send(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let expected: BTreeSet<(String, String)> = ENDPOINTS
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented(&doc), expected);
    let api = Api::new(&app).await;
    for (method, path) in &expected {
        let concrete = path
            .replace("{id}", "0191d6a0-0000-7000-8000-000000000000")
            .replace("{tokenId}", "0191d6a0-0000-7000-8000-000000000001")
            .replace("{mappingId}", "0191d6a0-0000-7000-8000-000000000002")
            .replace("{groupId}", "0191d6a0-0000-7000-8000-000000000003");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap_or(Method::GET);
        let body = matches!(method.as_str(), "post" | "put" | "patch").then(|| json!({}));
        let r = app.send(m, &concrete, Some(&api.token), body).await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if r.status == StatusCode::NOT_FOUND {
            assert!(
                !r.body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("no such API endpoint"),
                "{method} {path} is not routed"
            );
        }
    }

    // A method an endpoint does not take: the API's JSON error, with what it takes.
    let r = app
        .send(Method::DELETE, "/api/v1/providers", Some(&api.token), None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.body["error"]["code"], "method_not_allowed",
        "{:?}",
        r.body
    );
    assert_eq!(r.header("allow"), Some("GET,HEAD,POST"));

    // Real answers, checked field by field against the document.
    let p = app.provider("Okta").await;
    let user = app.create_user(&p, "ana@example.com").await;
    let pid = p.id.to_string();
    let ok_schema = |method: &str, path: &str, status: &str| {
        doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
            .clone()
    };
    for (path, concrete) in [
        ("/api/v1/orgs", "/orgs".to_string()),
        ("/api/v1/orgs/tree", "/orgs/tree".into()),
        ("/api/v1/roles", "/roles".into()),
        ("/api/v1/users", "/users".into()),
        ("/api/v1/users/{id}", format!("/users/{user}")),
        ("/api/v1/providers", "/providers".into()),
        ("/api/v1/providers/{id}", format!("/providers/{pid}")),
        (
            "/api/v1/providers/{id}/tokens",
            format!("/providers/{pid}/tokens"),
        ),
        (
            "/api/v1/providers/{id}/mapping",
            format!("/providers/{pid}/mapping"),
        ),
        (
            "/api/v1/providers/{id}/mapping/preview",
            format!("/providers/{pid}/mapping/preview"),
        ),
        ("/api/v1/sync-log", "/sync-log".into()),
        ("/api/v1/groups", "/groups".into()),
        ("/api/v1/events", "/events".into()),
        ("/api/v1/events/head", "/events/head".into()),
        ("/api/v1/apps", "/apps".into()),
    ] {
        let r = api.get(&concrete).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
        let schema = ok_schema("get", path, "200");
        assert!(!schema.is_null(), "{path} has no JSON schema");
        assert_described(&doc, &schema, &r.body, path);
    }
    let created = api.post("/providers", json!({"name": "Entra ID"})).await;
    assert_described(
        &doc,
        &ok_schema("post", "/api/v1/providers", "201"),
        &created.body,
        "created provider",
    );
    assert!(created.body["token"]["secret"].is_string());
    let token = api
        .post(&format!("/providers/{pid}/tokens"), json!({"label": "b"}))
        .await;
    assert_described(
        &doc,
        &ok_schema("post", "/api/v1/providers/{id}/tokens", "201"),
        &token.body,
        "created token",
    );
    let bad = api.get("/users?status=nope").await;
    assert_described(
        &doc,
        &doc["paths"]["/api/v1/users"]["get"]["responses"]["400"]["content"]["application/json"]
            ["schema"],
        &bad.body,
        "error",
    );
    // The checker itself: a field the document leaves out is caught.
    let caught = std::panic::catch_unwind(|| {
        assert_described(
            &doc,
            &ok_schema("get", "/api/v1/roles", "200"),
            &json!({"roles": [{"id": "x", "secretField": 1}]}),
            "roles",
        )
    });
    assert!(caught.is_err(), "an undocumented field is reported");
    app.finish().await;
}
