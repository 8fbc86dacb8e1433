//! Hostile clients: rate limits, failed-authentication limits, slow requests, and providers
//! reaching for what is not theirs.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures_util::StreamExt;
use muster_core::model::Actor;
use muster_web::limits::LimitSettings;
use serde_json::json;

use crate::on_both;
use crate::support::{assert_scim_error, Api, Backend, TestApp};

on_both!(
    provider_rate_limit_answers_429_with_retry_after,
    an_api_credential_has_its_own_rate_limit,
    a_flood_of_429s_is_counted_not_logged_one_by_one,
    failed_authentications_are_limited_and_logged,
    isolation_through_patch_bulk_search_and_local_users,
    secrets_never_reach_the_sync_log_or_error_bodies
);

async fn provider_rate_limit_answers_429_with_retry_after(b: Backend) {
    let limits = LimitSettings {
        per_second: 1,
        burst: 3,
        ..LimitSettings::default()
    };
    let app = TestApp::with_limits(b, limits).await;
    let p = app.provider("Okta").await;
    let other = app.provider("Entra").await;
    for _ in 0..3 {
        assert_eq!(app.get(&p, "/Users").await.status, StatusCode::OK);
    }
    let r = app.get(&p, "/Users").await;
    assert_scim_error(&r, 429, None);
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    // Nothing was done: a limited POST creates nothing.
    let r = app
        .post(&p, "/Users", json!({"userName": "late@example.com"}))
        .await;
    assert_eq!(r.status.as_u16(), 429);
    // Another provider has its own budget.
    assert_eq!(app.get(&other, "/Users").await.status, StatusCode::OK);
    // The budget refills, and the refused POST created nothing.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = app
        .get(&p, "/Users?filter=userName%20eq%20%22late%40example.com%22")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["totalResults"], 0);
    app.finish().await;
}

/// Each API credential has a budget of its own: an application reading in a loop gets 429 with
/// `Retry-After` in the API's JSON, and neither the administrators' token nor another
/// application is held up by it.
async fn an_api_credential_has_its_own_rate_limit(b: Backend) {
    let limits = LimitSettings {
        api_per_second: 1,
        api_burst: 3,
        ..LimitSettings::default()
    };
    let app = TestApp::with_limits(b, limits).await;
    let admin = Api::new(&app).await;
    let made = admin
        .post(
            "/apps",
            json!({"name": "HR portal", "scopes": "directory:read"}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let hr = made.body["secret"].as_str().unwrap_or_default().to_string();
    let other = admin
        .post("/apps", json!({"name": "Wiki", "scopes": "directory:read"}))
        .await;
    let wiki = other.body["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let get = |token: &str| {
        let token = token.to_string();
        let app = &app;
        async move {
            app.send(Method::GET, "/api/v1/users", Some(&token), None)
                .await
        }
    };
    for _ in 0..3 {
        assert_eq!(get(&hr).await.status, StatusCode::OK);
    }
    let r = get(&hr).await;
    crate::api::assert_api_error(&r, 429, "rate_limited");
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("over its request rate limit")),
        "{:?}",
        r.body
    );
    // Other credentials have budgets of their own.
    assert_eq!(get(&wiki).await.status, StatusCode::OK);
    assert_eq!(admin.get("/orgs").await.status, StatusCode::OK);
    // The budget refills.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&hr).await.status, StatusCode::OK);
    app.finish().await;
}

/// A provider past its rate limit is refused as fast as it sends; its 429s do not become a
/// sync log entry (a durable write) each: the first of a minute is written, the rest counted and
/// written as one entry when the minute has passed, or when the server stops.
async fn a_flood_of_429s_is_counted_not_logged_one_by_one(b: Backend) {
    let limits = LimitSettings {
        per_second: 1,
        burst: 2,
        ..LimitSettings::default()
    };
    let app = TestApp::with_limits(b, limits).await;
    let p = app.provider("Okta").await;
    let other = app.provider("Entra").await;
    let api = Api::new(&app).await;
    let rejected = |pid: String| {
        let api = &api;
        async move {
            let log = api
                .get(&format!("/sync-log?provider={pid}&action=request.rejected"))
                .await;
            log.body["entries"].as_array().cloned().unwrap_or_default()
        }
    };
    let mut refused = 0;
    for i in 0..21 {
        let r = app.get(&p, &format!("/Users?startIndex={i}")).await;
        if r.status.as_u16() == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 10, "{refused} refused");
    let entries = rejected(p.id.to_string()).await;
    assert_eq!(
        entries.len(),
        1,
        "only the first 429 is written: {entries:?}"
    );
    assert_eq!(entries[0]["details"]["status"], 429);
    assert!(entries[0]["details"].get("repeated").is_none());
    // Each provider has its own window.
    for _ in 0..2 {
        assert_eq!(app.get(&other, "/Users").await.status, StatusCode::OK);
    }
    assert_scim_error(&app.get(&other, "/Users").await, 429, None);
    assert_eq!(rejected(other.id.to_string()).await.len(), 1);
    // Refusals of other kinds are still written one by one (a provider with its budget whole).
    let third = app.provider("OneLogin").await;
    for _ in 0..2 {
        assert_scim_error(
            &app.get(&third, "/Users?filter=nosuch%20eq%201").await,
            400,
            Some("invalidFilter"),
        );
    }
    assert_eq!(rejected(third.id.to_string()).await.len(), 2);
    // Before the minute is over nothing more is written; after it, one entry counts the rest.
    app.clock.advance_secs(59);
    assert_eq!(
        app.muster.write_counted_rejections(false).await.ok(),
        Some(0)
    );
    app.clock.advance_secs(1);
    assert_eq!(
        app.muster.write_counted_rejections(false).await.ok(),
        Some(1)
    );
    let entries = rejected(p.id.to_string()).await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    let count = &entries[0];
    assert_eq!(count["details"]["repeated"], refused - 1, "{count}");
    assert_eq!(count["details"]["status"], 429);
    assert!(count["details"]["path"]
        .as_str()
        .is_some_and(|path| path.ends_with("/Users")));
    assert!(
        count["message"].as_str().is_some_and(
            |m| m.starts_with(&format!("{} more requests refused with 429", refused - 1))
        )
    );
    assert_eq!(
        rejected(other.id.to_string()).await.len(),
        1,
        "one refusal: no count"
    );
    // A window still open when the server stops is written then.
    for _ in 0..5 {
        app.get(&p, "/Users").await;
    }
    let before = rejected(p.id.to_string()).await.len();
    assert_eq!(
        app.muster.write_counted_rejections(true).await.ok(),
        Some(1)
    );
    let entries = rejected(p.id.to_string()).await;
    assert_eq!(entries.len(), before + 1);
    assert!(entries[0]["details"]["repeated"]
        .as_u64()
        .is_some_and(|n| n >= 1));
    app.finish().await;
}

async fn failed_authentications_are_limited_and_logged(b: Backend) {
    let limits = LimitSettings {
        auth_failures_per_minute: 3,
        ..LimitSettings::default()
    };
    let app = TestApp::with_limits(b, limits).await;
    let p = app.provider("Okta").await;
    let q = app.provider("Other").await;
    let bad = format!("mst_{}", "0".repeat(64));
    for _ in 0..3 {
        let r = app
            .send(Method::GET, &format!("{}/Users", p.base), Some(&bad), None)
            .await;
        assert_scim_error(&r, 401, None);
    }
    // Past the budget, this address gets 429 at this provider's URL, token or not.
    let r = app
        .send(Method::GET, &format!("{}/Users", p.base), Some(&bad), None)
        .await;
    assert_scim_error(&r, 429, None);
    assert!(r.header("retry-after").is_some());
    let r = app.get(&p, "/Users").await;
    assert_eq!(r.status.as_u16(), 429, "{:?}", r.body);
    // Another provider's URL is a separate budget.
    assert_eq!(app.get(&q, "/Users").await.status, StatusCode::OK);
    // The failures are in the sync log, against the provider the URL names, without the token.
    let api = Api::new(&app).await;
    let log = api
        .get(&format!(
            "/sync-log?provider={}&action=request.rejected",
            p.id
        ))
        .await;
    let entries = log.body["entries"].as_array().cloned().unwrap_or_default();
    assert!(entries.len() >= 3, "{entries:?}");
    assert!(!log.body.to_string().contains(&bad));
    // The API counts its own failures.
    for _ in 0..3 {
        let r = app
            .send(Method::GET, "/api/v1/orgs", Some("msa_wrong"), None)
            .await;
        assert_eq!(r.status.as_u16(), 401);
    }
    let r = app
        .send(Method::GET, "/api/v1/orgs", Some("msa_wrong"), None)
        .await;
    assert_eq!(r.status.as_u16(), 429);
    assert_eq!(r.body["error"]["code"], "rate_limited");
    assert!(r.header("retry-after").is_some());
    app.finish().await;
}

async fn isolation_through_patch_bulk_search_and_local_users(b: Backend) {
    let app = TestApp::new(b).await;
    let a = app.provider("A").await;
    let bp = app.provider("B").await;
    let ua = app.create_user(&a, "alice@a.example").await;
    let ga = app
        .post(
            &a,
            "/Groups",
            json!({"displayName": "A-team", "members": [{"value": ua}]}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let local = app
        .muster
        .create_local_user(
            app.env.id,
            "local@example.com",
            None,
            None,
            None,
            &Actor::Admin { name: "t".into() },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .user
        .id
        .to_string();
    let patch = |ops: serde_json::Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    // PATCH of another provider's user or group, or of a local user: 404.
    for path in [format!("/Users/{ua}"), format!("/Users/{local}")] {
        let r = app
            .patch(
                &bp,
                &path,
                patch(json!([{"op": "replace", "path": "active", "value": false}])),
            )
            .await;
        assert_scim_error(&r, 404, None);
    }
    let r = app
        .patch(
            &bp,
            &format!("/Groups/{ga}"),
            patch(json!([{"op": "remove", "path": "members"}])),
        )
        .await;
    assert_scim_error(&r, 404, None);
    // Adding another provider's user, or a local user, to one's own group: refused.
    let gb = app
        .post(&bp, "/Groups", json!({"displayName": "B-team"}))
        .await
        .body["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for member in [&ua, &local] {
        let r = app
            .patch(
                &bp,
                &format!("/Groups/{gb}"),
                patch(json!([{"op": "add", "path": "members", "value": [{"value": member}]}])),
            )
            .await;
        assert_scim_error(&r, 400, Some("invalidValue"));
    }
    // Bulk cannot reach them either.
    let r = app
        .post(&bp, "/Bulk", json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
            {"method": "DELETE", "path": format!("/Users/{ua}")},
            {"method": "PUT", "path": format!("/Users/{local}"), "data": {"userName": "x@b.example"}},
            {"method": "PATCH", "path": format!("/Groups/{gb}"), "data": {"Operations": [{"op": "add", "path": "members", "value": [{"value": ua}]}]}}
        ]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let statuses: Vec<&str> = r.body["Operations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["status"].as_str())
        .collect();
    assert_eq!(statuses, vec!["404", "404", "400"], "{:?}", r.body);
    // Searches see nothing of theirs.
    let r = app
        .post(&bp, "/.search", json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName pr"}))
        .await;
    assert_eq!(r.body["totalResults"], 0, "{:?}", r.body);
    let r = app
        .post(&bp, "/Users/.search", json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName eq \"local@example.com\""}))
        .await;
    assert_eq!(r.body["totalResults"], 0);
    // Taking over a local user's userName by POST: 409, the local user unchanged.
    let r = app
        .post(&bp, "/Users", json!({"userName": "LOCAL@example.com"}))
        .await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    // Everything of A's is intact.
    let g = app.get(&a, &format!("/Groups/{ga}")).await;
    assert_eq!(g.body["members"].as_array().map(Vec::len), Some(1));
    let u = app.get(&a, &format!("/Users/{ua}")).await;
    assert_eq!(u.body["active"], true);
    app.finish().await;
}

async fn secrets_never_reach_the_sync_log_or_error_bodies(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let api = Api::new(&app).await;
    // A token sent where it does not belong, in the body, query and header, and a password.
    let r = app
        .send(
            Method::POST,
            &format!("{}/Users?token={}", p.base, p.token),
            Some(&p.token),
            Some(json!({"userName": "pw@example.com", "password": "hunter2-Secret!"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(
        r.body.get("password").is_none(),
        "password is never returned"
    );
    let wrong = format!("{}x", p.token);
    let r = app
        .send(
            Method::GET,
            &format!("{}/Users", p.base),
            Some(&wrong),
            None,
        )
        .await;
    assert!(!r.body.to_string().contains(&wrong));
    let r = app
        .send(
            Method::GET,
            &format!("{}/Users/nope", p.base),
            Some(&p.token),
            None,
        )
        .await;
    assert!(!r.body.to_string().contains(&p.token));
    let log = api.get("/sync-log?limit=1000").await.body.to_string();
    assert!(!log.contains(&p.token), "a token reached the sync log");
    assert!(!log.contains("hunter2"), "a password reached the sync log");
    let csv = app
        .raw(
            Request::builder()
                .uri("/api/v1/sync-log/export.csv")
                .header("authorization", format!("Bearer {}", api.token))
                .body(Body::empty())
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .await;
    let text = csv.body.as_str().unwrap_or_default().to_string();
    assert!(text.contains("user.created"), "{text}");
    assert!(!text.contains(&p.token) && !text.contains("hunter2"));
    app.finish().await;
}

/// A client that sends its body too slowly gets 408 when the request timeout passes.
#[tokio::test]
async fn a_slow_body_times_out_with_408() {
    let limits = LimitSettings {
        request_timeout: Duration::from_millis(300),
        ..LimitSettings::default()
    };
    let app = TestApp::with_limits(Backend::Sqlite, limits).await;
    let p = app.provider("Okta").await;
    let stream = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"userName\": "))
    })
    .chain(futures_util::stream::pending());
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/Users", p.base))
        .header("authorization", format!("Bearer {}", p.token))
        .header("content-type", "application/scim+json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let r = app.raw(req).await;
    assert_scim_error(&r, 408, None);
    assert!(started.elapsed() < Duration::from_secs(5));
    app.finish().await;
}
