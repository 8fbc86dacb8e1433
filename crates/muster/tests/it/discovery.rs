//! `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas` (RFC 7644 §4).

use axum::http::StatusCode;
use serde_json::Value;

use crate::on_both;
use crate::support::{assert_scim_error, Backend, TestApp};

on_both!(discovery_describes_the_server);

async fn discovery_describes_the_server(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let spc = app.get(&p, "/ServiceProviderConfig").await;
    assert_eq!(spc.status, StatusCode::OK);
    assert_eq!(spc.header("content-type"), Some("application/scim+json"));
    assert_eq!(
        spc.body["schemas"][0],
        "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
    );
    assert_eq!(spc.body["filter"]["supported"], true);
    assert_eq!(spc.body["etag"]["supported"], true);
    assert_eq!(
        spc.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );
    assert_eq!(spc.body["authenticationSchemes"][1]["type"], "httpbasic");
    assert_eq!(spc.body["authenticationSchemes"][1]["primary"], false);
    for key in ["patch", "bulk", "changePassword", "sort"] {
        assert!(spc.body[key]["supported"].is_boolean(), "{key}");
    }

    let rts = app.get(&p, "/ResourceTypes").await;
    assert_eq!(rts.body["totalResults"], 2);
    let names: Vec<&str> = rts.body["Resources"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["User", "Group"]);
    let user_rt = app.get(&p, "/ResourceTypes/User").await;
    assert_eq!(user_rt.body["endpoint"], "/Users");
    assert_eq!(
        user_rt.body["schema"],
        "urn:ietf:params:scim:schemas:core:2.0:User"
    );
    let exts: Vec<&str> = user_rt.body["schemaExtensions"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["schema"].as_str()).collect())
        .unwrap_or_default();
    assert!(exts.contains(&"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
    assert!(exts.contains(&"urn:ietf:params:scim:schemas:extension:muster:2.0:User"));
    assert_scim_error(&app.get(&p, "/ResourceTypes/Device").await, 404, None);

    let schemas = app.get(&p, "/Schemas").await;
    assert_eq!(schemas.body["totalResults"], 4);
    let muster = app
        .get(
            &p,
            "/Schemas/urn:ietf:params:scim:schemas:extension:muster:2.0:User",
        )
        .await;
    assert_eq!(muster.status, StatusCode::OK);
    assert_eq!(muster.body["attributes"][0]["name"], "c42OrgName");
    let user = app
        .get(&p, "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await;
    let attrs = user.body["attributes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let find = |n: &str| {
        attrs
            .iter()
            .find(|a| a["name"] == n)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(find("userName")["uniqueness"], "server");
    assert_eq!(find("userName")["caseExact"], false);
    assert_eq!(find("password")["returned"], "never");
    assert_eq!(find("groups")["mutability"], "readOnly");
    assert_eq!(find("emails")["multiValued"], true);
    assert_eq!(user.body["meta"]["resourceType"], "Schema");
    assert_scim_error(&app.get(&p, "/Schemas/urn:nope").await, 404, None);
    assert_scim_error(&app.get(&p, "/NoSuchEndpoint").await, 404, None);
    app.finish().await;
}
