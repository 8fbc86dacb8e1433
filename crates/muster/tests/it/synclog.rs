//! The sync log: one entry per change, none for a change that did not happen, rejections
//! without secrets, queries, CSV export, retention, provider status.

use axum::http::{Method, StatusCode};
use muster_core::model::{Actor, Outcome};
use muster_core::store::LogQuery;
use serde_json::{json, Value};

use crate::on_both;
use crate::support::{Backend, TestApp};

on_both!(
    entries_match_changes_exactly,
    rejections_are_logged_without_secrets,
    query_export_and_retention
);

async fn actions_for(app: &TestApp, subject: &str) -> Vec<(String, Value)> {
    let q = LogQuery {
        subject: Some(subject.to_string()),
        ..Default::default()
    };
    let (rows, _) = app
        .muster
        .query_sync_log(app.env.id, &q, None, 1000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    rows.into_iter()
        .rev()
        .map(|(_, e)| (e.action.to_string(), e.details))
        .collect()
}

async fn entries_match_changes_exactly(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let id = app.create_user(&p, "log@example.com").await;
    app.put(
        &p,
        &format!("/Users/{id}"),
        json!({"userName": "log@example.com", "active": true, "title": "Engineer"}),
    )
    .await;
    let entries = actions_for(&app, &id).await;
    assert_eq!(
        entries.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        vec!["user.created", "user.updated"]
    );
    assert_eq!(
        entries[1].1["changes"],
        json!([{"attribute": "title", "before": null, "after": "Engineer"}]),
        "before and after"
    );
    // A refused change (a PATCH that fails, a duplicate) leaves no success entry.
    let bad = json!({"Operations": [{"op": "replace", "path": "title", "value": "Boss"}, {"op": "remove", "path": "userName"}]});
    assert_eq!(
        app.patch(&p, &format!("/Users/{id}"), bad).await.status,
        StatusCode::BAD_REQUEST
    );
    app.post(&p, "/Users", json!({"userName": "LOG@example.com"}))
        .await;
    assert_eq!(
        actions_for(&app, &id).await.len(),
        2,
        "nothing logged about the user for refused changes"
    );
    // Group entries name who was added and removed, and keep the name after the group is gone.
    let r = app
        .post(
            &p,
            "/Groups",
            json!({"displayName": "Logged", "members": [{"value": id}]}),
        )
        .await;
    let gid = r.body["id"].as_str().unwrap_or_default().to_string();
    app.patch(
        &p,
        &format!("/Groups/{gid}"),
        json!({"Operations": [{"op": "remove", "path": "members"}]}),
    )
    .await;
    app.delete(&p, &format!("/Groups/{gid}")).await;
    let g = actions_for(&app, &gid).await;
    assert_eq!(
        g.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        vec![
            "group.created",
            "group.members_added",
            "group.members_removed",
            "group.deleted"
        ]
    );
    assert_eq!(g[1].1["members"], json!([id]));
    let q = LogQuery {
        subject: Some(gid.clone()),
        action: Some("group.deleted".into()),
        ..Default::default()
    };
    let (rows, _) = app
        .muster
        .query_sync_log(app.env.id, &q, None, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows[0].1.subject_name.as_deref(), Some("Logged"));
    app.finish().await;
}

async fn rejections_are_logged_without_secrets(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Entra").await;
    app.create_user(&p, "dup@example.com").await;
    let r = app
        .post(&p, "/Users", json!({"userName": "dup@example.com"}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    app.get(&p, "/Users?filter=nosuch%20eq%201").await;
    app.send(
        Method::GET,
        &format!("{}/Users", p.base),
        Some("mst_wrong_secret_value"),
        None,
    )
    .await;
    let q = LogQuery {
        provider: Some(p.id),
        outcome: Some(Outcome::Error),
        ..Default::default()
    };
    let (rows, _) = app
        .muster
        .query_sync_log(app.env.id, &q, None, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 3, "{rows:?}");
    let conflict = rows
        .iter()
        .find(|(_, e)| e.details["status"] == 409)
        .map(|(_, e)| e.clone())
        .unwrap_or_else(|| panic!("409 logged"));
    assert_eq!(conflict.action, "request.rejected");
    assert_eq!(conflict.details["method"], "POST");
    assert_eq!(conflict.details["scimType"], "uniqueness");
    assert!(conflict.details["path"]
        .as_str()
        .unwrap_or_default()
        .ends_with("/Users"));
    assert!(conflict
        .message
        .as_deref()
        .unwrap_or_default()
        .contains("already in use"));
    assert!(rows
        .iter()
        .any(|(_, e)| e.details["scimType"] == "invalidFilter"));
    assert!(
        rows.iter().any(|(_, e)| e.details["status"] == 401),
        "failed authentication is logged"
    );
    let everything =
        serde_json::to_string(&rows.iter().map(|(_, e)| e).collect::<Vec<_>>()).unwrap_or_default();
    assert!(
        !everything.contains(&p.token) && !everything.contains("mst_wrong_secret_value"),
        "no token in the log"
    );
    // The provider's status counts them.
    assert_eq!(
        app.muster
            .provider_errors_last_day(app.env.id, p.id)
            .await
            .unwrap_or(0),
        3
    );
    // The API shows the same count, in the list and for the one provider.
    {
        let api = crate::support::Api::new(&app).await;
        let listed = api.get("/providers").await;
        let mine = listed.body["providers"]
            .as_array()
            .and_then(|ps| ps.iter().find(|x| x["id"] == p.id.to_string()))
            .cloned()
            .unwrap_or_default();
        assert_eq!(mine["errorsLast24h"], 3, "{}", listed.body);
        let one = api.get(&format!("/providers/{}", p.id)).await;
        assert_eq!(one.body["errorsLast24h"], 3, "{}", one.body);
    }
    app.clock.advance_secs(86_401);
    assert_eq!(
        app.muster
            .provider_errors_last_day(app.env.id, p.id)
            .await
            .unwrap_or(99),
        0
    );
    app.finish().await;
}

async fn query_export_and_retention(b: Backend) {
    let app = TestApp::new(b).await;
    let okta = app.provider("Okta").await;
    let entra = app.provider("Entra").await;
    let start = app.clock_now();
    let mut okta_users = Vec::new();
    for i in 0..25 {
        okta_users.push(app.create_user(&okta, &format!("o{i}@example.com")).await);
        app.create_user(&entra, &format!("e{i}@example.com")).await;
        app.clock.advance_secs(60);
    }
    let admin = app
        .muster
        .create_admin_token(
            app.env.id,
            "exporter",
            None,
            &Actor::Admin { name: "t".into() },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let get = |path: String| {
        let token = admin.secret.clone();
        let app = &app;
        async move { app.send(Method::GET, &path, Some(&token), None).await }
    };
    // Filter by provider and action, newest first, in pages.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/api/v1/sync-log?provider={}&action=user.created&limit=10&cursor={c}",
                okta.id
            ),
            None => format!(
                "/api/v1/sync-log?provider={}&action=user.created&limit=10",
                okta.id
            ),
        };
        let r = get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        for e in r.body["entries"].as_array().cloned().unwrap_or_default() {
            assert_eq!(e["provider"], "Okta");
            assert_eq!(e["action"], "user.created");
            seen.push(e["subject"]["id"].as_str().unwrap_or_default().to_string());
        }
        match r.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut expected = okta_users.clone();
    expected.reverse();
    assert_eq!(seen, expected, "newest first, every entry once");
    // A time range, a user, an action family, results.
    let since = start.plus_secs(10 * 60).to_rfc3339();
    let until = start.plus_secs(20 * 60).to_rfc3339();
    let r = get(format!(
        "/api/v1/sync-log?since={since}&until={until}&action=user."
    ))
    .await;
    assert_eq!(
        r.body["entries"].as_array().map(Vec::len),
        Some(20),
        "10 minutes, two providers"
    );
    let r = get(format!("/api/v1/sync-log?user={}", okta_users[3])).await;
    assert_eq!(r.body["entries"].as_array().map(Vec::len), Some(1));
    let r = get("/api/v1/sync-log?result=error".to_string()).await;
    assert_eq!(r.body["entries"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        get("/api/v1/sync-log?since=yesterday".to_string())
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // CSV export of a range.
    let r = app
        .raw(
            axum::http::Request::builder()
                .uri(format!(
                    "/api/v1/sync-log/export.csv?since={since}&until={until}&provider={}",
                    okta.id
                ))
                .header("authorization", format!("Bearer {}", admin.secret))
                .body(axum::body::Body::empty())
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/csv"));
    let text = r.body.as_str().unwrap_or_default().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,time,provider_id,provider,actor_kind,actor,action,subject_kind,subject_id,subject_name,result,message,details");
    assert_eq!(lines.len(), 11, "a header and ten entries: {text}");
    assert!(lines[1].contains(",Okta,provider,") && lines[1].contains(",user.created,user,"));
    assert!(
        lines[1].contains("\"{\"\"org\"\":"),
        "details are quoted JSON: {}",
        lines[1]
    );
    // Retention removes only entries older than the period.
    let all_before = app
        .muster
        .query_sync_log(app.env.id, &LogQuery::default(), None, 1000)
        .await
        .map(|r| r.0.len())
        .unwrap_or(0);
    app.clock.set(start.plus_secs(90 * 86_400 + 12 * 60 + 30));
    let deleted = app
        .muster
        .prune_sync_log(90)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let remaining = app
        .muster
        .query_sync_log(app.env.id, &LogQuery::default(), None, 1000)
        .await
        .map(|r| r.0)
        .unwrap_or_default();
    assert_eq!(deleted as usize + remaining.len(), all_before);
    assert!(remaining
        .iter()
        .all(|(_, e)| e.at >= start.plus_secs(12 * 60 + 30)));
    assert!(
        deleted >= 26,
        "the first 13 minutes of entries and the providers' creation: {deleted}"
    );
    app.finish().await;
}
