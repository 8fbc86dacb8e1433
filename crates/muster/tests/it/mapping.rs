//! Organization mapping (the four methods) and role mapping: when they apply, what they do,
//! preview and re-apply, and the administrator guide's Steps 1 to 8 end to end.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::api::assert_api_error;
use crate::on_both;
use crate::support::{Api, Backend, Resp, TestApp, TestProvider};

on_both!(
    single_organization_applies_at_creation_only,
    c42_org_name_creates_and_moves,
    custom_attribute_paths,
    group_mapping_priorities_and_status,
    role_mapping_union_fallback_and_removal,
    group_deletion_and_rename_reevaluate_members,
    concurrent_creates_share_one_new_org,
    preview_and_apply,
    bulk_operations_apply_mappings,
    cli_preview_and_apply,
    seed_walkthrough_as_okta_would
);

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const MUSTER_EXT: &str = "urn:ietf:params:scim:schemas:extension:muster:2.0:User";

struct Fx<'a> {
    app: &'a TestApp,
    api: Api<'a>,
    p: TestProvider,
}

impl<'a> Fx<'a> {
    async fn new(app: &'a TestApp) -> Fx<'a> {
        let api = Api::new(app).await;
        let p = app.provider("Okta").await;
        Fx { app, api, p }
    }

    fn mapping(&self, rest: &str) -> String {
        format!("/providers/{}/mapping{rest}", self.p.id)
    }

    async fn org(&self, name: &str, parent: Option<&str>) -> String {
        let r = self
            .api
            .post("/orgs", json!({"name": name, "parentId": parent}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().unwrap_or_default().to_string()
    }

    async fn role_id(&self, name: &str) -> String {
        let r = self.api.get("/roles").await;
        r.body["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["name"] == name)
            .and_then(|x| x["id"].as_str())
            .unwrap_or_else(|| panic!("no role {name}"))
            .to_string()
    }

    async fn set_method(&self, body: Value) -> Resp {
        self.api.put(&self.mapping("/org"), body).await
    }

    async fn user(&self, name: &str, extra: Value) -> String {
        let mut body = json!({"schemas": [USER], "userName": name, "active": true});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        let r = self.app.post(&self.p, "/Users", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().unwrap_or_default().to_string()
    }

    async fn group(&self, name: &str) -> String {
        let r = self
            .app
            .post(
                &self.p,
                "/Groups",
                json!({"schemas": [GROUP], "displayName": name, "members": []}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().unwrap_or_default().to_string()
    }

    async fn members(&self, group: &str, op: &str, users: &[&str]) {
        let value: Vec<Value> = users.iter().map(|u| json!({"value": u})).collect();
        let operation = if op == "remove" {
            let filter = users
                .iter()
                .map(|u| format!("value eq \"{u}\""))
                .collect::<Vec<_>>()
                .join(" or ");
            json!({"op": "remove", "path": format!("members[{filter}]")})
        } else {
            json!({"op": "add", "path": "members", "value": value})
        };
        let r = self
            .app
            .patch(
                &self.p,
                &format!("/Groups/{group}"),
                json!({"schemas": [PATCH], "Operations": [operation]}),
            )
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
    }

    /// The user's organization name and its roles as (name, source).
    async fn placed(&self, user: &str) -> (String, BTreeSet<(String, String)>) {
        let r = self.api.get(&format!("/users/{user}")).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let roles = r.body["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| {
                (
                    x["name"].as_str().unwrap_or_default().to_string(),
                    x["source"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        (
            r.body["org"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            roles,
        )
    }

    async fn org_of(&self, user: &str) -> String {
        self.placed(user).await.0
    }

    async fn role_names(&self, user: &str) -> BTreeSet<String> {
        self.placed(user)
            .await
            .1
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    async fn log(&self, query: &str) -> Vec<Value> {
        let r = self.api.get(&format!("/sync-log?{query}&limit=1000")).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["entries"].as_array().cloned().unwrap_or_default()
    }
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn single_organization_applies_at_creation_only(backend: Backend) {
    let app = TestApp::new(backend).await;
    let fx = Fx::new(&app).await;
    let sales = fx.org("Sales", None).await;
    let other = fx.org("Other", None).await;
    let r = fx
        .set_method(json!({"method": "single", "orgId": sales}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["orgMapping"]["method"], "single");
    assert_eq!(r.body["orgMapping"]["org"]["name"], "Sales");
    // Without an organization the method is refused, and nothing changes.
    let bad = fx.set_method(json!({"method": "single"})).await;
    assert_api_error(&bad, 400, "invalid");
    let bad = fx.set_method(json!({"method": "nonsense"})).await;
    assert_api_error(&bad, 400, "invalid");

    let ada = fx.user("ada", json!({})).await;
    assert_eq!(fx.org_of(&ada).await, "Sales");
    // An administrator moves her; the provider's next update leaves her there.
    let r = fx
        .api
        .patch(&format!("/users/{ada}"), json!({"orgId": other}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = fx
        .app
        .put(
            &fx.p,
            &format!("/Users/{ada}"),
            json!({"schemas": [USER], "userName": "ada", "title": "CTO", "active": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(fx.org_of(&ada).await, "Other");
    let detail = fx.api.get(&format!("/users/{ada}")).await;
    assert_eq!(detail.body["changedOutsideProvisioning"], false);
    // New users still go to Sales.
    let bob = fx.user("bob", json!({})).await;
    assert_eq!(fx.org_of(&bob).await, "Sales");
    app.finish().await;
}

async fn c42_org_name_creates_and_moves(backend: Backend) {
    let app = TestApp::new(backend).await;
    let fx = Fx::new(&app).await;
    let regions = fx.org("Regions", None).await;
    let unmapped = fx.org("Unmapped", None).await;
    let r = fx
        .set_method(
            json!({"method": "c42_org_name", "parentOrgId": regions, "unmappedOrgId": unmapped}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // Top level, in the extension, in another case with spaces: one organization per name.
    let a = fx.user("a", json!({"c42OrgName": "Sales"})).await;
    let b = fx
        .user("b", json!({MUSTER_EXT: {"c42OrgName": "  SALES "}}))
        .await;
    let c = fx
        .user("c", json!({MUSTER_EXT: {"c42OrgName": "Engineering"}}))
        .await;
    let d = fx.user("d", json!({})).await;
    let e = fx.user("e", json!({"c42OrgName": "ab"})).await;
    assert_eq!(fx.org_of(&a).await, "Sales");
    assert_eq!(fx.org_of(&b).await, "Sales");
    assert_eq!(fx.org_of(&c).await, "Engineering");
    assert_eq!(fx.org_of(&d).await, "Unmapped");
    assert_eq!(fx.org_of(&e).await, "Unmapped");
    let orgs = fx.api.get("/orgs").await;
    let sales: Vec<&Value> = orgs.body["orgs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| {
            o["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case("sales"))
        })
        .collect();
    assert_eq!(sales.len(), 1, "one organization for 'Sales' and ' SALES '");
    assert_eq!(
        sales[0]["parentId"],
        regions.as_str(),
        "created under the chosen parent"
    );
    // Creating the organization is logged, by the provider, as mapping's doing.
    let created = fx.log("action=org.created").await;
    let by_mapping: Vec<&Value> = created
        .iter()
        .filter(|x| x["details"]["by"] == "organization mapping")
        .collect();
    assert_eq!(by_mapping.len(), 2, "{created:?}");
    assert!(by_mapping.iter().all(|x| x["actor"]["kind"] == "provider"));
    // The invalid value is logged as an error that says why.
    let failed = fx.log("action=user.mapping_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["result"], "error");
    assert!(failed[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("3 to 220")));

    // A changed value moves the user, and says so.
    let r = fx
        .app
        .patch(
            &fx.p,
            &format!("/Users/{a}"),
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "c42OrgName", "value": "Engineering"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(fx.org_of(&a).await, "Engineering");
    let moved = fx.log(&format!("action=user.moved&user={a}")).await;
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0]["details"]["before"], "Sales");
    assert_eq!(moved[0]["details"]["after"], "Engineering");

    // An administrator's move is overridden by the provider's next update.
    let r = fx
        .api
        .patch(&format!("/users/{c}"), json!({"orgId": unmapped}))
        .await;
    assert_eq!(r.body["changedOutsideProvisioning"], true);
    let r = fx
        .app
        .patch(
            &fx.p,
            &format!("/Users/{c}"),
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Dev"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let detail = fx.api.get(&format!("/users/{c}")).await;
    assert_eq!(detail.body["org"]["name"], "Engineering");
    assert_eq!(detail.body["changedOutsideProvisioning"], false);
    app.finish().await;
}

async fn custom_attribute_paths(backend: Backend) {
    let app = TestApp::new(backend).await;
    let fx = Fx::new(&app).await;
    // Paths that can never hold a value are refused when saved, with the reason.
    for bad in [
        "nosuch",
        "addresses[type eq",
        "title[type eq \"x\"]",
        "name",
        "",
    ] {
        let r = fx
            .set_method(json!({"method": "attribute", "attribute": bad}))
            .await;
        assert_api_error(&r, 400, "invalid");
    }
    let view = fx.api.get(&fx.mapping("")).await;
    assert!(
        view.body["orgMapping"].is_null(),
        "a refused method is not saved"
    );

    let r = fx
        .set_method(
            json!({"method": "attribute", "attribute": "addresses[type eq \"work\"].locality"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let u = fx
        .user(
            "lon",
            json!({"addresses": [{"type": "home", "locality": "Bath"}, {"type": "work", "locality": "London"}]}),
        )
        .await;
    assert_eq!(fx.org_of(&u).await, "London");
    let nowork = fx
        .user(
            "nowork",
            json!({"addresses": [{"type": "home", "locality": "Bath"}]}),
        )
        .await;
    // No work address: the unmapped-users organization (the root by default).
    let root = fx.api.get("/orgs/tree").await.body["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(fx.org_of(&nowork).await, root);

    let r = fx
        .set_method(json!({"method": "attribute", "attribute": format!("{ENTERPRISE}:department")}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let dep = fx
        .user("dep", json!({ENTERPRISE: {"department": "Research"}}))
        .await;
    assert_eq!(fx.org_of(&dep).await, "Research");
    let r = fx
        .set_method(json!({"method": "attribute", "attribute": "title"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let t = fx.user("t", json!({"title": "Field Sales"})).await;
    assert_eq!(fx.org_of(&t).await, "Field Sales");
    app.finish().await;
}

async fn group_mapping_priorities_and_status(backend: Backend) {
    let app = TestApp::new(backend).await;
    let fx = Fx::new(&app).await;
    let eng = fx.org("Engineering", None).await;
    let sales = fx.org("Sales", None).await;
    let unmapped = fx.org("Unmapped", None).await;
    let r = fx
        .set_method(json!({"method": "groups", "unmappedOrgId": unmapped}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["groupMappingStatus"]["message"],
        "There are no SCIM groups available"
    );
    let g_dev = fx.group("Developers").await;
    let g_ops = fx.group("Ops").await;
    let g_sales = fx.group("Sellers").await;
    let view = fx.api.get(&fx.mapping("")).await;
    assert_eq!(view.body["groupMappingStatus"]["state"], "unmapped_groups");
    assert_eq!(
        view.body["groupMappingStatus"]["unmappedGroups"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );

    let r = fx
        .api
        .post(
            &fx.mapping("/groups"),
            json!({"groupIds": [g_dev, g_ops], "orgId": eng}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = fx
        .api
        .post(
            &fx.mapping("/groups"),
            json!({"groupIds": [g_sales], "orgId": sales}),
        )
        .await;
    assert_eq!(
        r.body["groupMappingStatus"]["message"],
        "All SCIM groups are mapped"
    );
    let entries = r.body["groupMappings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["priority"], 1);
    assert_eq!(entries[0]["org"]["name"], "Engineering");
    let (e_eng, e_sales) = (
        entries[0]["id"].as_str().unwrap_or_default().to_string(),
        entries[1]["id"].as_str().unwrap_or_default().to_string(),
    );
    // A group is in one entry at most; unknown groups and orgs are refused.
    let r = fx
        .api
        .post(
            &fx.mapping("/groups"),
            json!({"groupIds": [g_dev], "orgId": sales}),
        )
        .await;
    assert_api_error(&r, 409, "conflict");
    let r = fx
        .api
        .post(
            &fx.mapping("/groups"),
            json!({"groupIds": [uuid::Uuid::now_v7()], "orgId": sales}),
        )
        .await;
    assert_api_error(&r, 404, "not_found");

    let u = fx.user("u", json!({})).await;
    assert_eq!(fx.org_of(&u).await, "Unmapped", "in no group yet");
    fx.members(&g_sales, "add", &[&u]).await;
    assert_eq!(
        fx.org_of(&u).await,
        "Sales",
        "membership change re-evaluates at once"
    );
    fx.members(&g_ops, "add", &[&u]).await;
    assert_eq!(fx.org_of(&u).await, "Engineering", "priority 1 wins");
    // The move's reason names the winning group, not its id.
    let moved = fx.log(&format!("action=user.moved&user={u}")).await;
    assert_eq!(
        moved[0]["details"]["reason"], "SCIM group 'Ops' (priority 1)",
        "{moved:?}"
    );

    // Reordering moves nobody by itself; the preview shows it, the apply does it.
    let r = fx
        .api
        .put(
            &fx.mapping("/group-order"),
            json!({"order": [e_sales, e_eng]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["groupMappings"][0]["org"]["name"], "Sales");
    assert_eq!(fx.org_of(&u).await, "Engineering");
    let bad = fx
        .api
        .put(&fx.mapping("/group-order"), json!({"order": [e_sales]}))
        .await;
    assert_api_error(&bad, 400, "invalid");
    let preview = fx.api.get(&fx.mapping("/preview")).await;
    assert_eq!(preview.body["changed"], 1, "{:?}", preview.body);
    assert_eq!(preview.body["changes"][0]["orgTo"]["name"], "Sales");
    let r = fx.api.post(&fx.mapping("/apply"), json!({})).await;
    assert_eq!(r.body["applied"]["moved"], 1, "{:?}", r.body);
    assert_eq!(fx.org_of(&u).await, "Sales");

    // Leaving groups re-evaluates: next mapped group, then unmapped users.
    fx.members(&g_sales, "remove", &[&u]).await;
    assert_eq!(fx.org_of(&u).await, "Engineering");
    fx.members(&g_ops, "remove", &[&u]).await;
    assert_eq!(fx.org_of(&u).await, "Unmapped");

    // Deleting an entry renumbers the rest.
    let r = fx
        .api
        .delete(&fx.mapping(&format!("/groups/{e_sales}")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["groupMappings"][0]["priority"], 1);
    assert_eq!(r.body["groupMappingStatus"]["state"], "unmapped_groups");
    app.finish().await;
}

async fn role_mapping_union_fallback_and_removal(backend: Backend) {
    let app = TestApp::new(backend).await;
    let fx = Fx::new(&app).await;
    let desktop = fx.role_id("Desktop User").await;
    let proe = fx.role_id("PROe User").await;
    let org_admin = fx.role_id("Org Admin").await;
    let g1 = fx.group("Backup users").await;
    let g2 = fx.group("Org admins").await;
    let g3 = fx.group("Outside counsel").await;
    let r = fx
        .api
        .put(
            &fx.mapping(&format!("/roles/{g1}")),
            json!({"roleIds": [desktop, proe]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let offered: Vec<String> = r.body["groupsWithoutRoleMapping"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| g["displayName"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        offered,
        vec!["Org admins", "Outside counsel"],
        "only unmapped groups are offered"
    );
    let r = fx
        .api
        .put(
            &fx.mapping(&format!("/roles/{g2}")),
            json!({"roleIds": [org_admin]}),
        )
        .await;
    assert_eq!(r.body["roleMappingStatus"]["state"], "unmapped_groups");
    let r = fx
        .api
        .put(&fx.mapping(&format!("/roles/{g3}")), json!({"roleIds": []}))
        .await;
    assert_api_error(&r, 400, "invalid");

    let both = fx.user("both", json!({})).await;
    let none = fx.user("none", json!({})).await;
    fx.members(&g1, "add", &[&both]).await;
    fx.members(&g2, "add", &[&both]).await;
    let (_, roles) = fx.placed(&both).await;
    assert_eq!(
        roles,
        [
            ("Desktop User", "mapping"),
            ("Org Admin", "mapping"),
            ("PROe User", "mapping")
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect::<BTreeSet<_>>(),
        "the union over role-mapped groups"
    );
    let (_, roles) = fx.placed(&none).await;
    assert!(
        roles.iter().all(|(_, s)| s == "org"),
        "in no role-mapped group: the organization's defaults {roles:?}"
    );
    // Leaving a group takes its roles at once.
    fx.members(&g2, "remove", &[&both]).await;
    assert_eq!(
        fx.role_names(&both).await,
        names(&["Desktop User", "PROe User"])
    );

    // Removing a role from a mapping takes it from members at once; adding one waits for the
    // next update or a re-apply.
    fx.api
        .put(
            &fx.mapping(&format!("/roles/{g1}")),
            json!({"roleIds": [desktop]}),
        )
        .await;
    assert_eq!(fx.role_names(&both).await, names(&["Desktop User"]));
    fx.api
        .put(
            &fx.mapping(&format!("/roles/{g1}")),
            json!({"roleIds": [desktop, proe]}),
        )
        .await;
    assert_eq!(fx.role_names(&both).await, names(&["Desktop User"]));
    let r = fx
        .app
        .patch(
            &fx.p,
            &format!("/Users/{both}"),
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "x"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        fx.role_names(&both).await,
        names(&["Desktop User", "PROe User"]),
        "the provider's update applies the current mapping"
    );
    let changed = fx
        .log(&format!("action=user.roles_changed&user={both}"))
        .await;
    assert!(changed.len() >= 3, "{changed:?}");

    // An administrator's roles are overridden by the provider's next update.
    let r = fx
        .api
        .patch(&format!("/users/{both}"), json!({"roleIds": [org_admin]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    fx.app
        .patch(
            &fx.p,
            &format!("/Users/{both}"),
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "y"}]}),
        )
        .await;
    assert_eq!(
        fx.role_names(&both).await,
        names(&["Desktop User", "PROe User"])
    );

    // A role a mapping gives cannot be deleted.
    let custom = fx
        .api
        .post("/roles", json!({"name": "Auditor", "description": "reads"}))
        .await;
    let custom = custom.body["id"].as_str().unwrap_or_default().to_string();
    fx.api
        .put(
            &fx.mapping(&format!("/roles/{g3}")),
            json!({"roleIds": [custom]}),
        )
        .await;
    let r = fx.api.delete(&format!("/roles/{custom}")).await;
    assert_api_error(&r, 409, "conflict");
    assert!(r.body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("Outside counsel")));
    // Deleting the role mapping lets it go.
    let r = fx.api.delete(&fx.mapping(&format!("/roles/{g3}"))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = fx.api.delete(&format!("/roles/{custom}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    app.finish().await;
}

async fn group_deletion_and_rename_reevaluate_members(backend: Backend) {
    let app = TestApp::new(backend).await;
    let fx = Fx::new(&app).await;
    let eng = fx.org("Engineering", None).await;
    let desktop = fx.role_id("Desktop User").await;
    fx.set_method(json!({"method": "groups"})).await;
    let g = fx.group("Developers").await;
    fx.api
        .post(
            &fx.mapping("/groups"),
            json!({"groupIds": [g], "orgId": eng}),
        )
        .await;
    fx.api
        .put(
            &fx.mapping(&format!("/roles/{g}")),
            json!({"roleIds": [desktop]}),
        )
        .await;
    let u = fx.user("dev", json!({})).await;
    fx.members(&g, "add", &[&u]).await;
    assert_eq!(fx.org_of(&u).await, "Engineering");
    assert_eq!(fx.role_names(&u).await, names(&["Desktop User"]));

    // Renaming keeps the mappings (they follow the group, not its name).
    let r = fx
        .app
        .patch(
            &fx.p,
            &format!("/Groups/{g}"),
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "Engineers"}]}),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    assert_eq!(fx.org_of(&u).await, "Engineering");
    let view = fx.api.get(&fx.mapping("")).await;
    assert_eq!(
        view.body["roleMappings"][0]["group"]["displayName"],
        "Engineers"
    );

    // Deleting the group re-evaluates its members: unmapped users, the org's default roles.
    let r = fx.app.delete(&fx.p, &format!("/Groups/{g}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (org, roles) = fx.placed(&u).await;
    let root = fx.api.get("/orgs/tree").await.body["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(org, root);
    assert!(roles.iter().all(|(_, s)| s == "org"), "{roles:?}");
    let view = fx.api.get(&fx.mapping("")).await;
    assert_eq!(
        view.body["groupMappings"],
        json!([]),
        "the emptied entry is gone"
    );
    assert_eq!(view.body["roleMappings"], json!([]));
    assert_eq!(
        view.body["groupMappingStatus"]["message"],
        "There are no SCIM groups available"
    );
    app.finish().await;
}

async fn concurrent_creates_share_one_new_org(backend: Backend) {
    let app = Arc::new(TestApp::new(backend).await);
    let p = app.provider("Okta").await;
    {
        let api = Api::new(&app).await;
        let r = api
            .put(
                &format!("/providers/{}/mapping/org", p.id),
                json!({"method": "c42_org_name"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = app.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                &p,
                "/Users",
                json!({"schemas": [USER], "userName": format!("u{i}"), "c42OrgName": "NewCo"}),
            )
            .await
            .status
        }));
    }
    for t in tasks {
        let status = t.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, StatusCode::CREATED);
    }
    let api = Api::new(&app).await;
    let orgs = api.get("/orgs").await;
    let newco: Vec<&Value> = orgs.body["orgs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["name"] == "NewCo")
        .collect();
    assert_eq!(newco.len(), 1, "exactly one organization");
    let id = newco[0]["id"].as_str().unwrap_or_default();
    let users = api.get(&format!("/users?org={id}&limit=1000")).await;
    assert_eq!(users.body["users"].as_array().map(Vec::len), Some(50));
    let created = api.get("/sync-log?action=org.created&limit=100").await;
    assert_eq!(created.body["entries"].as_array().map(Vec::len), Some(1));
    drop(api);
    match Arc::try_unwrap(app) {
        Ok(app) => app.finish().await,
        Err(_) => panic!("the app is still shared"),
    }
}

async fn preview_and_apply(backend: Backend) {
    let app = TestApp::new(backend).await;
    let fx = Fx::new(&app).await;
    // Users arrive before any mapping (what the guide warns against).
    let a = fx.user("a", json!({"c42OrgName": "Alpha"})).await;
    let b = fx.user("b", json!({"c42OrgName": "Beta"})).await;
    let c = fx.user("c", json!({})).await;
    let root = fx.org_of(&a).await;
    assert_eq!(fx.org_of(&b).await, root);
    let unmapped = fx.org("Nowhere", None).await;
    fx.set_method(json!({"method": "c42_org_name", "unmappedOrgId": unmapped}))
        .await;
    assert_eq!(
        fx.org_of(&a).await,
        root,
        "changing the method moves nobody"
    );

    let p = fx.api.get(&fx.mapping("/preview")).await;
    assert_eq!(p.status, StatusCode::OK, "{:?}", p.body);
    assert_eq!(p.body["users"], 3);
    assert_eq!(p.body["changed"], 3);
    assert_eq!(p.body["orgChanges"], 3);
    assert_eq!(p.body["orgsToCreate"], json!(["Alpha", "Beta"]));
    let first = &p.body["changes"][0];
    assert_eq!(first["userName"], "a");
    assert_eq!(first["orgFrom"]["name"], root.as_str());
    assert_eq!(
        first["orgTo"],
        json!({"id": null, "name": "Alpha", "new": true})
    );
    let limited = fx.api.get(&fx.mapping("/preview?limit=1")).await;
    assert_eq!(limited.body["changes"].as_array().map(Vec::len), Some(1));
    assert_eq!(limited.body["changed"], 3, "totals count every change");
    let digest = p.body["digest"].as_str().unwrap_or_default().to_string();
    // Previewing changes nothing.
    assert_eq!(fx.org_of(&a).await, root);
    assert!(fx
        .log("action=org.created")
        .await
        .iter()
        .all(|e| e["details"]["by"] != "organization mapping"));

    // The list changes (a user updates); the old digest is refused, nothing applied.
    fx.app
        .patch(
            &fx.p,
            &format!("/Users/{c}"),
            json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "c42OrgName", "value": "Gamma"}]}),
        )
        .await;
    assert_eq!(fx.org_of(&c).await, "Gamma");
    let r = fx
        .api
        .post(&fx.mapping("/apply"), json!({"digest": digest}))
        .await;
    assert_api_error(&r, 409, "conflict");
    assert_eq!(fx.org_of(&a).await, root);

    let p = fx.api.get(&fx.mapping("/preview")).await;
    assert_eq!(p.body["changed"], 2);
    let r = fx
        .api
        .post(&fx.mapping("/apply"), json!({"digest": p.body["digest"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["applied"]["moved"], 2);
    assert_eq!(r.body["applied"]["orgsCreated"], 2);
    assert_eq!(fx.org_of(&a).await, "Alpha");
    assert_eq!(fx.org_of(&b).await, "Beta");
    let again = fx.api.get(&fx.mapping("/preview")).await;
    assert_eq!(
        again.body["changed"], 0,
        "applied means nothing left to change"
    );
    let logged = fx.log("action=mappings.reapplied").await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["details"]["moved"], 2);
    assert_eq!(logged[0]["actor"]["kind"], "admin");
    let moved = fx.log(&format!("action=user.moved&user={a}")).await;
    assert_eq!(moved[0]["details"]["cause"], "re-apply");
    // An empty body applies without a digest check.
    let r = fx
        .app
        .send(
            axum::http::Method::POST,
            &format!("/api/v1{}", fx.mapping("/apply")),
            Some(&fx.api.token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["applied"]["moved"], 0);
    app.finish().await;
}

/// The administrator guide in order: organizations, provider, groups pushed, organization mapping
/// by groups with priorities, role mapping, then users provisioned the way Okta does it.
async fn seed_walkthrough_as_okta_would(backend: Backend) {
    let app = TestApp::new(backend).await;
    let api = Api::new(&app).await;
    // Step 1: organizations, one of them a child.
    let mk = |name: &'static str, parent: Option<String>| {
        let api = &api;
        async move {
            let r = api
                .post("/orgs", json!({"name": name, "parentId": parent}))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            r.body["id"].as_str().unwrap_or_default().to_string()
        }
    };
    let eng = mk("Engineering", None).await;
    let platform = mk("Platform", Some(eng.clone())).await;
    let sales = mk("Sales", None).await;
    let unassigned = mk("Unassigned", None).await;
    // Steps 2-4: the provider, its token, a deactivation delay.
    let r = api.post("/providers", json!({"name": "Okta"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let pid = r.body["id"].as_str().unwrap_or_default().to_string();
    let token = r.body["token"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let p = TestProvider {
        id: pid.parse().unwrap_or_else(|e| panic!("{e}")),
        token,
        base: format!("/scim/v2/{pid}"),
    };
    api.patch(
        &format!("/providers/{pid}"),
        json!({"deactivationDelaySeconds": 3600}),
    )
    .await;
    let fx = Fx {
        app: &app,
        api: Api::new(&app).await,
        p,
    };
    // Step 5: Okta pushes groups (POST with no members, as Okta does).
    let g_eng = fx.group("Engineering").await;
    let g_platform = fx.group("Platform team").await;
    let g_sales = fx.group("Sales").await;
    let g_counsel = fx.group("Outside counsel").await;
    // Step 6: organization mapping by SCIM groups, Platform above Engineering.
    fx.set_method(json!({"method": "groups", "unmappedOrgId": unassigned}))
        .await;
    for (groups, org) in [
        (vec![&g_eng], &eng),
        (vec![&g_sales], &sales),
        (vec![&g_platform], &platform),
    ] {
        let r = fx
            .api
            .post(
                &fx.mapping("/groups"),
                json!({"groupIds": groups, "orgId": org}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let view = fx.api.get(&fx.mapping("")).await;
    let ids: Vec<String> = view.body["groupMappings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let r = fx
        .api
        .put(
            &fx.mapping("/group-order"),
            json!({"order": [ids[2], ids[0], ids[1]]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["groupMappingStatus"]["unmappedGroups"][0]["displayName"],
        "Outside counsel"
    );
    // Step 7: role mapping; counsel gets no backup roles.
    let desktop = fx.role_id("Desktop User").await;
    let proe = fx.role_id("PROe User").await;
    let legal = fx.role_id("Legal Hold Administrator").await;
    let sec = fx.role_id("Security Administrator").await;
    for (g, roles) in [
        (&g_eng, vec![&desktop, &proe]),
        (&g_platform, vec![&desktop, &proe, &sec]),
        (&g_sales, vec![&desktop, &proe]),
        (&g_counsel, vec![&legal]),
    ] {
        let r = fx
            .api
            .put(
                &fx.mapping(&format!("/roles/{g}")),
                json!({"roleIds": roles}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let view = fx.api.get(&fx.mapping("")).await;
    assert_eq!(
        view.body["roleMappingStatus"]["message"],
        "All SCIM groups are mapped"
    );
    assert_eq!(view.body["groupsWithoutRoleMapping"], json!([]));

    // Step 8: Okta assigns the app: for each user, a filter check, a POST, then group PATCHes.
    let people = [
        ("ana@example.com", vec![&g_eng]),
        ("ben@example.com", vec![&g_eng, &g_platform]),
        ("cy@example.com", vec![&g_sales]),
        ("dee@example.com", vec![&g_counsel]),
        ("eve@example.com", vec![]),
    ];
    let mut ids = Vec::new();
    for (name, _) in &people {
        let r = fx
            .app
            .get(
                &fx.p,
                &format!("/Users?filter=userName%20eq%20%22{name}%22&startIndex=1&count=100"),
            )
            .await;
        assert_eq!(r.body["totalResults"], 0);
        let id = fx
            .user(
                name,
                json!({"externalId": format!("00u{name}"), "name": {"givenName": "G", "familyName": "F"},
                       "emails": [{"value": name, "primary": true, "type": "work"}]}),
            )
            .await;
        ids.push(id);
    }
    for ((_, groups), id) in people.iter().zip(&ids) {
        for g in groups {
            fx.members(g, "add", &[id]).await;
        }
    }
    let expect = [
        ("Engineering", names(&["Desktop User", "PROe User"])),
        (
            "Platform",
            names(&["Desktop User", "PROe User", "Security Administrator"]),
        ),
        ("Sales", names(&["Desktop User", "PROe User"])),
        ("Unassigned", names(&["Legal Hold Administrator"])),
        ("Unassigned", BTreeSet::new()),
    ];
    for (id, (org, roles)) in ids.iter().zip(expect) {
        let (got_org, got_roles) = fx.placed(id).await;
        assert_eq!(got_org, org, "{id}");
        if roles.is_empty() {
            assert!(got_roles.iter().all(|(_, s)| s == "org"), "{got_roles:?}");
        } else {
            let got: BTreeSet<String> = got_roles.iter().map(|(n, _)| n.clone()).collect();
            assert_eq!(got, roles, "{id}");
            assert!(got_roles.iter().all(|(_, s)| s == "mapping"));
        }
    }
    // Nothing left for a re-apply to do.
    let p = fx.api.get(&fx.mapping("/preview")).await;
    assert_eq!(p.body["changed"], 0, "{:?}", p.body);
    app.finish().await;
}

async fn bulk_operations_apply_mappings(backend: Backend) {
    let app = TestApp::new(backend).await;
    let fx = Fx::new(&app).await;
    let eng = fx.org("Engineering", None).await;
    let desktop = fx.role_id("Desktop User").await;
    fx.set_method(json!({"method": "groups"})).await;
    let g = fx.group("Developers").await;
    fx.api
        .post(
            &fx.mapping("/groups"),
            json!({"groupIds": [g], "orgId": eng}),
        )
        .await;
    fx.api
        .put(
            &fx.mapping(&format!("/roles/{g}")),
            json!({"roleIds": [desktop]}),
        )
        .await;
    let r = app
        .post(&fx.p, "/Bulk", json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"userName": "bulk@example.com"}},
            {"method": "PATCH", "path": format!("/Groups/{g}"), "data": {"Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:u"}]}]}}
        ]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let location = r.body["Operations"][0]["location"]
        .as_str()
        .unwrap_or_default();
    let id = location.rsplit('/').next().unwrap_or_default().to_string();
    let (org, roles) = fx.placed(&id).await;
    assert_eq!(org, "Engineering");
    assert_eq!(
        roles,
        [("Desktop User".to_string(), "mapping".to_string())]
            .into_iter()
            .collect()
    );
    app.finish().await;
}

/// `muster mapping preview` and `apply`, run as a binary against the same database.
async fn cli_preview_and_apply(backend: Backend) {
    let app = TestApp::new(backend).await;
    let fx = Fx::new(&app).await;
    fx.user("cli-a", json!({"c42OrgName": "Oslo"})).await;
    fx.user("cli-b", json!({"title": "x"})).await;
    let dir = std::env::temp_dir().join(format!("muster-map-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_muster"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MUSTER_DATA_DIR", &dir)
            .env("MUSTER_DATABASE_URL", &app.db.url)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run muster: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let pid = fx.p.id.to_string();
    let (ok, _, err) = run(&[
        "mapping",
        "set-org",
        "--provider",
        &pid,
        "--method",
        "attribute",
        "--attribute",
        "nosuch",
    ]);
    assert!(!ok, "an invalid path is refused");
    assert!(err.contains("nosuch"), "{err}");
    let (ok, out, err) = run(&[
        "mapping",
        "set-org",
        "--provider",
        &pid,
        "--method",
        "c42-org-name",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("c42_org_name"), "{out}");
    let (ok, out, err) = run(&["mapping", "preview", "--provider", &pid, "--json"]);
    assert!(ok, "{err}");
    let preview: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(preview["changed"], 1, "{preview}");
    assert_eq!(preview["orgsToCreate"], json!(["Oslo"]));
    let (ok, out, err) = run(&["mapping", "preview", "--provider", &pid]);
    assert!(ok, "{err}");
    assert!(
        out.contains("cli-a: org") && out.contains("Oslo (new)"),
        "{out}"
    );
    let digest = preview["digest"].as_str().unwrap_or_default();
    let (ok, out, err) = run(&[
        "mapping",
        "apply",
        "--provider",
        &pid,
        "--digest",
        digest,
        "--json",
    ]);
    assert!(ok, "{err}");
    let applied: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(applied["moved"], 1);
    assert_eq!(applied["orgsCreated"], 1);
    let (ok, _, err) = run(&["mapping", "apply", "--provider", &pid, "--digest", digest]);
    assert!(!ok, "a stale digest is refused");
    assert!(err.contains("preview again"), "{err}");

    // Groups, organizations and roles named by name: the provider's by its name, a group by
    // its displayName (without case), the organization and the role by theirs.
    let eng = fx.group("Engineering").await;
    fx.org("Platform", None).await;
    let (ok, _, err) = run(&[
        "mapping",
        "set-org",
        "--provider",
        "okta",
        "--method",
        "groups",
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&[
        "mapping",
        "add-groups",
        "--provider",
        "Okta",
        "--group",
        "engineering",
        "--org",
        "platform",
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&[
        "mapping",
        "set-roles",
        "--provider",
        "Okta",
        "--group",
        "Engineering",
        "--role",
        "desktop user",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["mapping", "show", "--provider", &pid, "--json"]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        shown["groupMappings"][0]["groups"][0]["id"],
        eng.as_str(),
        "{shown}"
    );
    assert_eq!(
        shown["groupMappings"][0]["org"]["name"], "Platform",
        "{shown}"
    );
    assert_eq!(
        shown["roleMappings"][0]["group"]["id"],
        eng.as_str(),
        "{shown}"
    );
    assert_eq!(
        shown["roleMappings"][0]["roles"][0]["name"], "Desktop User",
        "{shown}"
    );
    // `muster group`: the provider's groups with their member counts, and what the two
    // mappings now do with one's members.
    let member = fx.user("cli-c", json!({})).await;
    fx.members(&eng, "add", &[&member]).await;
    let (ok, out, err) = run(&["group", "list"]);
    assert!(ok, "{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert!(
        rows[0].starts_with("ID ") && rows[0].ends_with("DISPLAY NAME"),
        "{out}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with(eng.as_str()) && r.ends_with("  1  Engineering")),
        "{out}"
    );
    let (ok, out, err) = run(&["group", "show", "ENGINEERING"]);
    assert!(ok, "{err}");
    for line in [
        "  Provider:      Okta",
        "  Placement:     Organization mapping: Platform, priority 1 of 1: its members go there.",
        "  Roles:         Role mapping: Desktop User",
        &format!("{member}  cli-c"),
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    // The member's own account of it, by the rules that placed it.
    let (ok, out, err) = run(&["user", "show", "cli-c"]);
    assert!(ok, "{err}");
    for line in [
        "  Mapping:       Organization: Platform: SCIM group 'Engineering' (priority 1)",
        "                 Roles: Desktop User",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    assert!(!out.contains("is not in Platform now"), "{out}");
    let (ok, out, err) = run(&["user", "show", "cli-c", "--json"]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        shown["mapping"],
        json!({"organization": "Platform: SCIM group 'Engineering' (priority 1)",
               "organizationElsewhere": null, "roles": ["Desktop User"]}),
        "{shown}"
    );
    // Moved by an administrator, the user hears where the mapping would put it back.
    let (ok, _, err) = run(&["user", "move", "cli-c", "--org", "Default Organization"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["user", "show", "cli-c"]);
    assert!(ok, "{err}");
    assert!(out.contains("The user is not in Platform now"), "{out}");
    let (_, out, _) = run(&["user", "show", "cli-c", "--json"]);
    let shown: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        shown["mapping"]["organizationElsewhere"], "Platform",
        "{shown}"
    );
    let (ok, out, err) = run(&["group", "show", &eng, "--json"]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(shown["displayName"], "Engineering", "{shown}");
    assert_eq!(shown["providerName"], "Okta", "{shown}");
    assert_eq!(
        shown["placement"]["roles"],
        json!(["Desktop User"]),
        "{shown}"
    );
    let (ok, _, err) = run(&["group", "show", "Design"]);
    assert!(!ok);
    assert!(
        err.contains("no SCIM group has the id or displayName \"Design\""),
        "{err}"
    );
    let (ok, _, err) = run(&[
        "mapping",
        "set-roles",
        "--provider",
        "Okta",
        "--group",
        "Design",
        "--role",
        "PROe User",
    ]);
    assert!(!ok, "an unknown group is refused");
    assert!(
        err.contains(
            "no SCIM group with the id or displayName \"Design\" (its groups: Engineering)"
        ),
        "{err}"
    );
    let (ok, _, err) = run(&[
        "mapping",
        "delete-roles",
        "--provider",
        "Okta",
        "--group",
        "ENGINEERING",
    ]);
    assert!(ok, "{err}");
    let (_, out, _) = run(&["mapping", "show", "--provider", &pid, "--json"]);
    let shown: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(shown["roleMappings"], json!([]), "{shown}");
    let _ = std::fs::remove_dir_all(&dir);
    app.finish().await;
}
