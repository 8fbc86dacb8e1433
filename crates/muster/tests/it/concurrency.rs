//! Concurrent requests: uniqueness, membership and conditional updates hold under races.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::on_both;
use crate::support::{Backend, TestApp, TestProvider};

on_both!(
    fifty_creates_of_one_user_name_make_one_user,
    twenty_clients_change_one_group,
    if_match_lets_exactly_one_writer_win
);

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn finish(app: Arc<TestApp>) {
    match Arc::try_unwrap(app) {
        Ok(app) => app.finish().await,
        Err(_) => panic!("the app is still shared"),
    }
}

async fn fifty_creates_of_one_user_name_make_one_user(b: Backend) {
    let app = Arc::new(TestApp::new(b).await);
    let p = app.provider("Okta").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (app, p) = (app.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            // Different case and spacing: one userName all the same.
            let name = if i % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@example.com "
            };
            let r = app.post(&p, "/Users", json!({"userName": name})).await;
            (r.status, r.body)
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap_or_else(|e| panic!("{e}"));
        match status.as_u16() {
            201 => created += 1,
            409 => assert_eq!(body["scimType"], "uniqueness", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 1);
    let list = app.get(&p, "/Users").await;
    assert_eq!(list.body["totalResults"], 1);
    finish(app).await;
}

async fn twenty_clients_change_one_group(b: Backend) {
    let app = Arc::new(TestApp::new(b).await);
    let p = app.provider("Okta").await;
    let mut users = Vec::new();
    for i in 0..100 {
        users.push(app.create_user(&p, &format!("m{i}@example.com")).await);
    }
    let g = app
        .post(&p, "/Groups", json!({"displayName": "Busy", "members": []}))
        .await
        .body["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut tasks = Vec::new();
    for k in 0..20 {
        let mine: Vec<String> = users[k * 5..k * 5 + 5].to_vec();
        let (app, p, g) = (app.clone(), p.clone(), g.clone());
        tasks.push(tokio::spawn(async move {
            let path = format!("/Groups/{g}");
            for u in &mine {
                let r = app
                    .patch(&p, &path, json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": u}]}]}))
                    .await;
                assert!(r.status.is_success(), "{:?}", r.body);
            }
            for u in &mine[..2] {
                let r = app
                    .patch(&p, &path, json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": format!("members[value eq \"{u}\"]")}]}))
                    .await;
                assert!(r.status.is_success(), "{:?}", r.body);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("{e}"));
    }
    let expected: BTreeSet<String> = (0..20)
        .flat_map(|k| users[k * 5 + 2..k * 5 + 5].to_vec())
        .collect();
    let got: BTreeSet<String> = app.get(&p, &format!("/Groups/{g}")).await.body["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["value"].as_str().map(str::to_string))
        .collect();
    assert_eq!(got.len(), 60);
    assert_eq!(got, expected);
    finish(app).await;
}

async fn racing_writes(
    app: &Arc<TestApp>,
    p: &TestProvider,
    id: &str,
    etag: &str,
    method: Method,
) -> (usize, usize) {
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (app, p, id, etag, method) = (
            app.clone(),
            p.clone(),
            id.to_string(),
            etag.to_string(),
            method.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let body: Value = if method == Method::PATCH {
                json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": format!("t{i}")}]})
            } else {
                json!({"userName": "cond@example.com", "title": format!("p{i}")})
            };
            app.send_with(
                method,
                &format!("{}/Users/{id}", p.base),
                Some(&p.token),
                Some(body),
                &[("if-match", etag.as_str())],
            )
            .await
            .status
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("{e}")) {
            StatusCode::OK => ok += 1,
            StatusCode::PRECONDITION_FAILED => failed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    (ok, failed)
}

async fn if_match_lets_exactly_one_writer_win(b: Backend) {
    let app = Arc::new(TestApp::new(b).await);
    let p = app.provider("Okta").await;
    let id = app.create_user(&p, "cond@example.com").await;
    for method in [Method::PATCH, Method::PUT] {
        let etag = app
            .get(&p, &format!("/Users/{id}"))
            .await
            .header("etag")
            .unwrap_or_default()
            .to_string();
        assert!(etag.starts_with("W/\""), "{etag}");
        let (ok, failed) = racing_writes(&app, &p, &id, &etag, method.clone()).await;
        assert_eq!((ok, failed), (1, 9), "{method}");
    }
    finish(app).await;
}
