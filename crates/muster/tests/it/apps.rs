//! Application credentials: read-only API tokens with scopes. They read the directory and the
//! event feed and nothing else; every other route, enumerated from the router's own OpenAPI
//! document, answers 403.

use std::process::Command;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api::assert_api_error;
use crate::on_both;
use crate::support::{Api, Backend, Resp, TestApp};

on_both!(
    an_application_reads_and_nothing_else,
    rotation_and_revocation_apply_at_once
);

const ID: &str = "0191d6a0-0000-7000-8000-000000000000";

async fn as_app(app: &TestApp, token: &str, method: Method, path: &str) -> Resp {
    let body = matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
    app.send(method, path, Some(token), body).await
}

fn secret(r: &Resp) -> String {
    r.body["secret"].as_str().unwrap_or_default().to_string()
}

async fn an_application_reads_and_nothing_else(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let p = app.provider("Okta").await;
    let user = app.create_user(&p, "ana@example.com").await;
    let created = api
        .post(
            "/apps",
            json!({"name": "HR portal", "scopes": "directory:read,events:read"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let token = secret(&created);
    assert!(token.starts_with("mapp_") && token.len() > 60, "{token}");
    assert_eq!(
        created.body["scopes"],
        json!(["directory:read", "events:read"])
    );

    // Every route the API has, from the document the router itself produces.
    let doc = app
        .send(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .body;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().cloned().unwrap_or_default() {
        if path == "/api/v1/openapi.json" {
            continue; // public
        }
        for method in item
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let concrete = path
                .replace("{id}", &user)
                .replace("{tokenId}", ID)
                .replace("{mappingId}", ID)
                .replace("{groupId}", ID);
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap_or(Method::GET);
            let family = path
                .trim_start_matches("/api/v1/")
                .split('/')
                .next()
                .unwrap_or("");
            let readable = m == Method::GET
                && matches!(family, "users" | "groups" | "orgs" | "roles" | "events");
            let r = as_app(&app, &token, m, &concrete).await;
            if readable {
                assert_ne!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path}: {:?}",
                    r.body
                );
                assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            } else {
                assert_api_error(&r, 403, "forbidden");
            }
            checked += 1;
        }
    }
    assert!(checked >= 35, "{checked} routes");
    // What it reads is real.
    let users = as_app(&app, &token, Method::GET, "/api/v1/users").await;
    assert_eq!(users.body["users"][0]["userName"], "ana@example.com");
    let events = as_app(&app, &token, Method::GET, "/api/v1/events?after=0").await;
    assert!(events.body["events"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));
    // The listing shows its last use.
    let list = api.get("/apps").await;
    assert!(
        list.body["apps"][0]["lastUsedAt"].is_string(),
        "{:?}",
        list.body
    );
    // One scope only: the other part is closed.
    let feed_only = api
        .post("/apps", json!({"name": "Sync", "scopes": "events:read"}))
        .await;
    let feed_token = secret(&feed_only);
    assert_eq!(
        as_app(&app, &feed_token, Method::GET, "/api/v1/events")
            .await
            .status,
        StatusCode::OK
    );
    assert_api_error(
        &as_app(&app, &feed_token, Method::GET, "/api/v1/users").await,
        403,
        "forbidden",
    );
    // Bad requests to create one.
    for bad in [
        json!({"name": "x", "scopes": "directory:write"}),
        json!({"name": "x", "scopes": ""}),
        json!({"name": "", "scopes": "events:read"}),
        json!({"name": "x"}),
    ] {
        assert_api_error(&api.post("/apps", bad).await, 400, "invalid");
    }
    app.finish().await;
}

async fn rotation_and_revocation_apply_at_once(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let created = api
        .post(
            "/apps",
            json!({"name": "Portal", "scopes": "directory:read"}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap_or_default().to_string();
    let old = secret(&created);
    assert_eq!(
        as_app(&app, &old, Method::GET, "/api/v1/roles")
            .await
            .status,
        StatusCode::OK
    );
    let rotated = api.post(&format!("/apps/{id}/rotate"), json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let new = secret(&rotated);
    assert_ne!(new, old);
    assert_api_error(
        &as_app(&app, &old, Method::GET, "/api/v1/roles").await,
        401,
        "unauthorized",
    );
    assert_eq!(
        as_app(&app, &new, Method::GET, "/api/v1/roles")
            .await
            .status,
        StatusCode::OK
    );
    let r = api.delete(&format!("/apps/{id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_api_error(
        &as_app(&app, &new, Method::GET, "/api/v1/roles").await,
        401,
        "unauthorized",
    );
    assert_api_error(&api.delete(&format!("/apps/{id}")).await, 404, "not_found");
    // Each step is in the sync log, never with the secret.
    let log = api.get("/sync-log?action=app.").await;
    let actions: Vec<&str> = log.body["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["app.revoked", "app.rotated", "app.created"]);
    assert!(!log.body.to_string().contains(&new[5..]));
    app.finish().await;
}

/// `muster app add` prints a token the API accepts for reads.
#[tokio::test]
async fn the_cli_adds_lists_and_revokes_credentials() {
    let dir = std::env::temp_dir().join(format!("muster-app-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let run = |args: &[&str]| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_muster"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MUSTER_DATA_DIR", &dir)
            .current_dir(&dir)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run muster: {e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let added = run(&[
        "app",
        "add",
        "--name",
        "Portal",
        "--scopes",
        "events:read",
        "--json",
    ]);
    assert!(
        added["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("mapp_")),
        "{added}"
    );
    assert_eq!(added["scopes"], json!(["events:read"]));
    let listed = run(&["app", "list", "--json"]);
    assert_eq!(listed[0]["name"], "Portal");
    assert!(
        listed[0].get("secret").is_none(),
        "never listed with its secret"
    );
    let id = added["id"].as_str().unwrap_or_default().to_string();
    // Named by its name (without case) or by the prefix its list shows, as well as its id.
    let rotated = run(&["app", "rotate", "portal", "--json"]);
    assert_eq!(rotated["id"], added["id"], "{rotated}");
    assert_ne!(rotated["secret"], added["secret"]);
    let prefix = rotated["prefix"].as_str().unwrap_or_default().to_string();
    assert!(prefix.starts_with("mapp_"), "{rotated}");
    run(&["app", "revoke", &prefix]);
    let listed = run(&["app", "list", "--json"]);
    assert!(listed[0]["revokedAt"].is_string());
    // A new credential under the name of a revoked one: the name means the one in use.
    let again = run(&["app", "add", "--name", "Portal", "--json"]);
    let rotated = run(&["app", "rotate", "Portal", "--json"]);
    assert_eq!(rotated["id"], again["id"], "{rotated}");
    assert_ne!(again["id"].as_str(), Some(id.as_str()));
    run(&["app", "revoke", again["id"].as_str().unwrap_or_default()]);
    let listed = run(&["app", "list", "--json"]);
    assert!(
        listed
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["revokedAt"].is_string())),
        "{listed}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_muster"))
        .env_clear()
        .env("MUSTER_DATA_DIR", &dir)
        .current_dir(&dir)
        .args(["app", "add", "--name", "x", "--scopes", "admin"])
        .output()
        .unwrap_or_else(|e| panic!("run muster: {e}"));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a scope"));
    let _ = std::fs::remove_dir_all(&dir);
}
