//! The event feed (`/api/v1/events`): an event for every change, written with it; `seq` in
//! commit order with no late gap, also with several instances writing to one PostgreSQL; the
//! cursor, its filters, long polling and retention.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use muster_core::events::feed::EventQuery;
use muster_core::{Muster, Settings};
use serde_json::{json, Value};

use crate::api::assert_api_error;
use crate::on_both;
use crate::support::{postgres_reachable, Api, Backend, TestApp};

on_both!(
    every_change_yields_its_event,
    a_large_membership_change_is_one_event_per_member_in_one_commit,
    the_cursor_pages_filters_waits_and_refuses_bad_reads,
    retention_prunes_the_oldest_and_an_older_cursor_gets_410,
    a_created_users_event_names_the_organization_it_was_placed_in,
    a_created_user_sees_the_organizations_and_roles_as_they_are_now,
    a_changed_users_event_has_the_roles_and_organization_it_holds,
    many_waiting_reads_share_one_look_at_the_head
);

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Every event after `after`, through the API.
async fn events(api: &Api<'_>, after: i64) -> Vec<Value> {
    let r = api.get(&format!("/events?after={after}&limit=1000")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["events"].as_array().cloned().unwrap_or_default()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e["type"].as_str().map(str::to_string))
        .collect()
}

async fn head(api: &Api<'_>) -> i64 {
    api.get("/events/head").await.body["seq"]
        .as_i64()
        .unwrap_or(-1)
}

async fn every_change_yields_its_event(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let start = head(&api).await;
    let p = app.provider("Okta").await;
    let created = app
        .post(
            &p,
            "/Users",
            json!({"userName": "ana@example.com", "name": {"givenName": "Ana", "familyName": "Lima"},
                   "emails": [{"value": "ana@example.com", "primary": true}], "active": true}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let ana = created.body["id"].as_str().unwrap_or_default().to_string();
    let r = app
        .patch(
            &p,
            &format!("/Users/{ana}"),
            json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "title", "value": "Lead"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let ben = app.create_user(&p, "ben@example.com").await;
    let group = app
        .post(
            &p,
            "/Groups",
            json!({"displayName": "Ops", "members": [{"value": ana}, {"value": ben}]}),
        )
        .await;
    let gid = group.body["id"].as_str().unwrap_or_default().to_string();
    app.patch(
        &p,
        &format!("/Groups/{gid}"),
        json!({"schemas": [PATCH], "Operations": [
            {"op": "remove", "path": format!("members[value eq \"{ben}\"]")},
            {"op": "replace", "path": "displayName", "value": "Operations"}]}),
    )
    .await;
    let org = api.post("/orgs", json!({"name": "Sales"})).await;
    let org_id = org.body["id"].as_str().unwrap_or_default().to_string();
    api.patch(&format!("/orgs/{org_id}"), json!({"name": "Sales EMEA"}))
        .await;
    let r = api
        .patch(
            &format!("/users/{ana}"),
            json!({"orgId": org_id, "legalHold": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    app.patch(
        &p,
        &format!("/Users/{ana}"),
        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]}),
    )
    .await;
    let role = api.post("/roles", json!({"name": "Reviewer"})).await;
    let role_id = role.body["id"].as_str().unwrap_or_default().to_string();
    api.delete(&format!("/roles/{role_id}")).await;
    app.delete(&p, &format!("/Groups/{gid}")).await;
    app.delete(&p, &format!("/Users/{ben}")).await;

    let all = events(&api, start).await;
    let seqs: Vec<i64> = all.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq increases: {seqs:?}"
    );
    let kinds = types(&all);
    for expected in [
        "provider.created",
        "user.created",
        "user.updated",
        "group.created",
        "group.member_added",
        "group.member_removed",
        "group.renamed",
        "org.created",
        "org.renamed",
        "user.moved",
        "user.legal_hold_set",
        "user.blocked",
        "role.created",
        "role.deleted",
        "group.deleted",
        "user.removed",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "{expected} in {kinds:?}"
        );
    }
    // Order within one change: the group, then its members.
    let g = kinds.iter().position(|k| k == "group.created").unwrap_or(0);
    assert_eq!(
        &kinds[g..g + 3],
        ["group.created", "group.member_added", "group.member_added"]
    );
    // A user's data is the user as the API shows it after the change.
    let first = |t: &str| {
        all.iter()
            .find(|e| e["type"] == t)
            .cloned()
            .unwrap_or_default()
    };
    let c = first("user.created");
    assert_eq!(c["data"]["userName"], "ana@example.com");
    assert_eq!(c["data"]["displayName"], "Ana Lima");
    // The API names the user as the feed does (she has no SCIM displayName, only a name).
    let listed = api.get("/users?q=ana%40example.com").await;
    assert_eq!(listed.body["users"][0]["id"], ana, "{:?}", listed.body);
    assert_eq!(listed.body["users"][0]["displayName"], "Ana Lima");
    // And finds her by that name.
    let by_name = api.get("/users?q=LIMA").await;
    assert_eq!(by_name.body["users"][0]["id"], ana, "{:?}", by_name.body);
    assert_eq!(c["data"]["emails"], json!(["ana@example.com"]));
    assert_eq!(c["data"]["status"], "active");
    assert!(c["data"]["organization"]["name"].is_string(), "{c}");
    assert!(
        c["data"]["roles"].as_array().is_some_and(|r| !r.is_empty()),
        "the organization's default roles: {c}"
    );
    assert_eq!(c["actor"]["kind"], "provider");
    assert_eq!(c["provider"], p.id.to_string());
    assert!(c["id"].as_str().is_some_and(|id| id.len() == 36));
    let u = first("user.updated");
    assert_eq!(u["data"]["changedFields"], json!(["title"]));
    let moved = first("user.moved");
    assert_eq!(moved["data"]["organization"]["name"], "Sales EMEA");
    assert_eq!(moved["actor"]["kind"], "admin");
    let blocked = first("user.blocked");
    assert_eq!(blocked["data"]["status"], "blocked");
    let added = first("group.member_added");
    assert_eq!(added["data"]["group"]["displayName"], "Ops");
    assert_eq!(added["data"]["user"]["id"], ana);
    let renamed = first("group.renamed");
    assert_eq!(renamed["data"]["displayName"], "Operations");
    // Settings that are not directory changes make no event.
    api.put(
        &format!("/providers/{}/mapping/org", p.id),
        json!({"method": "single", "orgId": org_id}),
    )
    .await;
    assert!(events(&api, *seqs.last().unwrap_or(&0)).await.is_empty());
    app.finish().await;
}

/// A new user's `user.created` names its organization and that organization's default roles,
/// both when the placement finds the organization and when it creates it in the same change.
async fn a_created_users_event_names_the_organization_it_was_placed_in(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let p = app.provider("Okta").await;
    let regions = api.post("/orgs", json!({"name": "Regions"})).await;
    let regions = regions.body["id"].as_str().unwrap_or_default().to_string();
    let r = api
        .put(
            &format!("/providers/{}/mapping/org", p.id),
            json!({"method": "c42_org_name", "parentOrgId": regions, "unmappedOrgId": regions}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let start = head(&api).await;
    for name in ["first", "second"] {
        let r = app
            .post(
                &p,
                "/Users",
                json!({"userName": format!("{name}@example.com"), "c42OrgName": "Brand New"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let all = events(&api, start).await;
    assert_eq!(
        types(&all),
        ["org.created", "user.created", "user.created"],
        "the first user's placement creates the organization"
    );
    let org_id = all[0]["data"]["id"].clone();
    let detail = api
        .get(&format!("/orgs/{}", org_id.as_str().unwrap_or_default()))
        .await;
    // A list of roles by name, sorted.
    let names = |roles: &Value| {
        let mut names: Vec<String> = roles
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["name"].to_string())
            .collect();
        names.sort();
        names
    };
    let defaults = names(&detail.body["defaultRoles"]);
    assert!(!defaults.is_empty(), "inherited from the root: {detail:?}");
    for created in &all[1..] {
        let data = &created["data"];
        assert_eq!(data["organization"]["id"], org_id, "{created}");
        assert_eq!(data["organization"]["name"], "Brand New", "{created}");
        assert_eq!(names(&data["roles"]), defaults, "{created}");
    }
    app.finish().await;
}

/// POSTs a user and gives the data of its `user.created` event.
async fn created_event(
    app: &TestApp,
    api: &Api<'_>,
    p: &crate::support::TestProvider,
    name: &str,
) -> Value {
    let start = head(api).await;
    let r = app.post(p, "/Users", json!({"userName": name})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    events(api, start)
        .await
        .into_iter()
        .find(|e| e["type"] == "user.created")
        .map(|e| e["data"].clone())
        .unwrap_or_else(|| panic!("no user.created event"))
}

/// Creating a user keeps the environment's organizations and roles between requests and reads
/// them again when they change: each change below (an organization renamed, its default roles
/// set, a role renamed, another organization added and chosen by the mapping) shows in the next
/// created user's event.
async fn a_created_user_sees_the_organizations_and_roles_as_they_are_now(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let p = app.provider("Okta").await;
    let orgs = api.get("/orgs").await;
    let root = orgs.body["orgs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["parentId"].is_null())
        .map(|o| o["id"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no root organization: {:?}", orgs.body));
    let role = api.post("/roles", json!({"name": "Auditor"})).await;
    assert_eq!(role.status, StatusCode::CREATED, "{:?}", role.body);
    let role = role.body["id"].as_str().unwrap_or_default().to_string();
    let role_names = |data: &Value| -> Vec<String> {
        let mut v: Vec<String> = data["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["name"].as_str().unwrap_or_default().to_string())
            .collect();
        v.sort();
        v
    };

    let first = created_event(&app, &api, &p, "u1@example.com").await;
    assert_eq!(first["organization"]["id"].as_str(), Some(root.as_str()));
    assert!(
        !role_names(&first).contains(&"Auditor".to_string()),
        "{first}"
    );

    let r = api
        .patch(&format!("/orgs/{root}"), json!({"name": "Renamed"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let second = created_event(&app, &api, &p, "u2@example.com").await;
    assert_eq!(second["organization"]["name"], "Renamed", "{second}");

    let r = api
        .put(
            &format!("/orgs/{root}/default-roles"),
            json!({"roleIds": [role]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let third = created_event(&app, &api, &p, "u3@example.com").await;
    assert_eq!(role_names(&third), ["Auditor"], "{third}");

    let r = api
        .patch(
            &format!("/roles/{role}"),
            json!({"name": "Auditor (read-only)"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let fourth = created_event(&app, &api, &p, "u4@example.com").await;
    assert_eq!(role_names(&fourth), ["Auditor (read-only)"], "{fourth}");

    let other = api.post("/orgs", json!({"name": "Other"})).await;
    assert_eq!(other.status, StatusCode::CREATED, "{:?}", other.body);
    let other = other.body["id"].as_str().unwrap_or_default().to_string();
    let r = api
        .put(
            &format!("/providers/{}/mapping/org", p.id),
            json!({"method": "single", "orgId": other}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let fifth = created_event(&app, &api, &p, "u5@example.com").await;
    assert_eq!(
        fifth["organization"]["id"].as_str(),
        Some(other.as_str()),
        "{fifth}"
    );
    assert_eq!(fifth["organization"]["name"], "Other", "{fifth}");
    assert_eq!(
        role_names(&fifth),
        ["Auditor (read-only)"],
        "inherited from the root: {fifth}"
    );
    app.finish().await;
}

async fn a_large_membership_change_is_one_event_per_member_in_one_commit(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let p = app.provider("Okta").await;
    let mut members = Vec::new();
    for i in 0..300 {
        members.push(json!({"value": app.create_user(&p, &format!("m{i}@example.com")).await}));
    }
    let g = app
        .post(&p, "/Groups", json!({"displayName": "All", "members": []}))
        .await;
    let gid = g.body["id"].as_str().unwrap_or_default().to_string();
    let before = head(&api).await;
    let r = app
        .patch(
            &p,
            &format!("/Groups/{gid}"),
            json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": members}]}),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let after = events(&api, before).await;
    assert_eq!(after.len(), 300);
    assert!(after.iter().all(|e| e["type"] == "group.member_added"));
    let seqs: Vec<i64> = after.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert_eq!(
        seqs,
        (before + 1..=before + 300).collect::<Vec<_>>(),
        "one commit, consecutive seqs"
    );
    let ids: BTreeSet<&str> = after
        .iter()
        .filter_map(|e| e["data"]["user"]["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 300, "each member once");
    app.finish().await;
}

async fn the_cursor_pages_filters_waits_and_refuses_bad_reads(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let p = app.provider("Okta").await;
    for i in 0..5 {
        app.create_user(&p, &format!("u{i}@example.com")).await;
    }
    app.post(&p, "/Groups", json!({"displayName": "G"})).await;
    // Pages: nextAfter continues exactly.
    let r = api.get("/events?after=0&limit=2").await;
    assert_eq!(r.body["events"].as_array().map(Vec::len), Some(2));
    let next = r.body["nextAfter"].as_i64().unwrap_or(-1);
    assert_eq!(Some(next), r.body["events"][1]["seq"].as_i64());
    let rest = api.get(&format!("/events?after={next}")).await;
    let rest_seqs: Vec<i64> = rest.body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["seq"].as_i64())
        .collect();
    assert!(rest_seqs.iter().all(|s| *s > next));
    assert_eq!(rest_seqs.len(), 5, "provider, 5 users, a group: 7 in all");
    // Filters: a type, a family.
    let users = api.get("/events?after=0&types=user.created").await;
    assert_eq!(users.body["events"].as_array().map(Vec::len), Some(5));
    let groups = api.get("/events?after=0&types=group.,provider.").await;
    assert_eq!(
        types(
            groups.body["events"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
        ),
        ["provider.created", "group.created"]
    );
    // A filtered page that is not full moves the cursor to the head.
    let h = head(&api).await;
    assert_eq!(groups.body["nextAfter"], h);
    // The user list says where to follow from.
    let list = api.get("/users").await;
    assert_eq!(list.body["asOf"], h);
    let groups_list = api.get("/groups").await;
    assert_eq!(groups_list.body["asOf"], h);
    assert_eq!(groups_list.body["groups"][0]["displayName"], "G");
    let gid = groups_list.body["groups"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let one = api.get(&format!("/groups/{gid}")).await;
    assert_eq!(one.status, StatusCode::OK, "{:?}", one.body);
    assert_eq!(one.body["members"], json!([]));
    assert_api_error(&api.get("/groups?limit=0").await, 400, "invalid");
    // Bad reads.
    for bad in [
        "/events?limit=0",
        "/events?limit=1001",
        "/events?types=user.nope",
        "/events?types=users.",
        "/events?after=-1",
        "/events?wait=31",
        "/events?after=x",
        "/events?bogus=1",
    ] {
        let r = api.get(bad).await;
        assert_api_error(&r, 400, "invalid");
    }
    // A value that does not parse is named.
    let r = api.get("/events?after=x").await;
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("invalid query parameter 'after': "),
        "{message}"
    );
    let r = api.get("/users?limit=ten").await;
    assert_api_error(&r, 400, "invalid");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("invalid query parameter 'limit': "),
        "{message}"
    );
    let future = api.get(&format!("/events?after={}", h + 10)).await;
    assert_api_error(&future, 400, "invalid");
    // Long poll: answers as soon as something newer commits.
    let app = Arc::new(app);
    let writer = {
        let (app, p) = (app.clone(), p.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            app.create_user(&p, "late@example.com").await
        })
    };
    let started = Instant::now();
    let page = page_after(&app, h, 10, Duration::from_secs(10)).await;
    let waited = started.elapsed();
    assert_eq!(page.events.len(), 1, "{page:?}");
    assert_eq!(page.events[0].kind, "user.created");
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    writer.await.unwrap_or_else(|e| panic!("{e}"));
    // Nothing newer: the wait ends empty, the cursor where it was.
    let started = Instant::now();
    let api = Api::new(&app).await;
    let h2 = head(&api).await;
    let r = api.get(&format!("/events?after={h2}&wait=1")).await;
    assert_eq!(r.body["events"], json!([]));
    assert_eq!(r.body["nextAfter"], h2);
    assert!(started.elapsed() >= Duration::from_millis(900));
    match Arc::try_unwrap(app) {
        Ok(app) => app.finish().await,
        Err(_) => panic!("the app is still shared"),
    }
}

async fn retention_prunes_the_oldest_and_an_older_cursor_gets_410(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let p = app.provider("Okta").await;
    app.create_user(&p, "old@example.com").await;
    let old_head = head(&api).await;
    app.clock.advance_secs(3 * 86_400);
    app.create_user(&p, "new@example.com").await;
    let deleted = app
        .muster
        .prune_events(2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deleted as i64, old_head, "everything older than 2 days");
    let r = api.get("/events?after=0").await;
    assert_api_error(&r, 410, "gone");
    assert!(r.body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("read the directory again")));
    // From the horizon on, nothing is missing.
    let r = api.get(&format!("/events?after={old_head}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        types(
            r.body["events"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
        ),
        ["user.created"]
    );
    // Without a cursor: from the oldest kept.
    let r = api.get("/events").await;
    assert_eq!(r.body["events"][0]["data"]["userName"], "new@example.com");
    assert_eq!(app.muster.prune_events(2).await.unwrap_or(99), 0);
    app.finish().await;
}

/// Three instances on one PostgreSQL database, twenty writers, and a reader following the
/// cursor all along: the reader ends with exactly the events the database holds, each seen
/// once, in increasing `seq` (no event committed late behind the cursor).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_twenty_writers_and_a_reader_see_no_late_gap() {
    if !postgres_reachable().await {
        return;
    }
    let app = Arc::new(TestApp::new(Backend::Postgres).await);
    let p = app.provider("Okta").await;
    let mut instances = vec![app.router.clone()];
    let mut stores = Vec::new();
    for _ in 0..2 {
        let store = app.db.open().await;
        let settings = Settings {
            public_url: crate::support::PUBLIC_URL.into(),
            ..Settings::default()
        };
        let m = Muster::new(store.shared(), Arc::new(app.clock.clone()), settings);
        instances.push(muster_web::router(muster_web::AppState::new(m)));
        stores.push(store);
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (app, done) = (app.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen: Vec<i64> = Vec::new();
            let mut after = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = page_after(&app, after, 50, Duration::ZERO).await;
                for e in &page.events {
                    assert!(e.seq > after, "seq {} after {after}", e.seq);
                    seen.push(e.seq);
                }
                after = page.next_after;
                if finished && page.events.is_empty() {
                    return seen;
                }
            }
        })
    };
    let mut writers = Vec::new();
    for w in 0..20 {
        let router = instances[w % 3].clone();
        let token = p.token.clone();
        let base = p.base.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..10 {
                let body = json!({"userName": format!("w{w}-{i}@example.com"), "title": "t"});
                let req = axum::http::Request::post(format!("{base}/Users"))
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/scim+json")
                    .body(axum::body::Body::from(body.to_string()))
                    .unwrap_or_default();
                let resp = tower::ServiceExt::oneshot(router.clone(), req)
                    .await
                    .unwrap_or_else(|e| match e {});
                assert_eq!(resp.status(), StatusCode::CREATED);
            }
        }));
    }
    for w in writers {
        w.await.unwrap_or_else(|e| panic!("{e}"));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap_or_else(|e| panic!("{e}"));
    let everything: Vec<i64> = feed_after(&app, 0)
        .await
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(everything.len(), 201, "a provider and 200 users");
    assert_eq!(seen, everything, "the reader missed or repeated none");
    for s in stores {
        s.close().await;
    }
    match Arc::try_unwrap(app) {
        Ok(app) => app.finish().await,
        Err(_) => panic!("the app is still shared"),
    }
}

/// Every event read after `after`, in the library's order.
async fn feed_after(app: &TestApp, after: i64) -> Vec<(i64, Value)> {
    page_after(app, after, 1000, Duration::ZERO)
        .await
        .events
        .into_iter()
        .map(|e| (e.seq, e.data))
        .collect()
}

/// Adds a pending event the way a PostgreSQL write transaction does, on `conn`.
async fn insert_pending(conn: &mut sqlx::PgConnection, env: uuid::Uuid, marker: &str) {
    sqlx::query(
        "insert into event_pending (event_id, environment_id, type, occurred_at, provider_id, actor, data) \
         values ($1, $2, 'user.updated', 0, null, '{\"kind\":\"system\"}', $3)",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(env)
    .bind(json!({ "marker": marker }).to_string())
    .execute(conn)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// PostgreSQL: a transaction that wrote an event and commits after later ones have been read
/// does not put its event behind the reader's cursor. It is numbered when it commits, after
/// everything already read; and a writer sees its own event in the feed at once.
#[tokio::test]
async fn an_event_committed_late_is_numbered_after_what_readers_have_seen() {
    use sqlx::Connection as _;
    if !postgres_reachable().await {
        return;
    }
    let app = TestApp::new(Backend::Postgres).await;
    let p = app.provider("Okta").await;
    let mut slow = sqlx::PgConnection::connect(&app.db.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("begin")
        .execute(&mut slow)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    insert_pending(&mut slow, app.env.id.0, "late").await;

    // Written and committed while the slow transaction is open: in the feed at once.
    app.create_user(&p, "early@example.com").await;
    let first = feed_after(&app, 0).await;
    let read_up_to = first.last().map(|(s, _)| *s).unwrap_or_default();
    assert_eq!(
        first.last().map(|(_, d)| d["userName"].clone()),
        Some(json!("early@example.com")),
        "{first:?}"
    );
    assert!(first.iter().all(|(_, d)| d.get("marker").is_none()));

    sqlx::query("commit")
        .execute(&mut slow)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let later = feed_after(&app, read_up_to).await;
    assert_eq!(later.len(), 1, "{later:?}");
    assert_eq!(later[0].0, read_up_to + 1);
    assert_eq!(later[0].1["marker"], "late");
    app.finish().await;
}

/// PostgreSQL: the last `seq` given and how many events wait for one.
async fn numbered_and_pending(c: &mut sqlx::PgConnection) -> (i64, i64) {
    sqlx::query_as::<_, (i64, i64)>(
        "select (select last_seq from event_seq), (select count(*) from event_pending)",
    )
    .fetch_one(c)
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A PostgreSQL app, a connection of the test's own to its database, and the last `seq`
/// given; `None` where PostgreSQL is not reachable.
async fn app_on_postgres() -> Option<(TestApp, sqlx::PgConnection, i64)> {
    use sqlx::Connection as _;
    if !postgres_reachable().await {
        return None;
    }
    let app = TestApp::new(Backend::Postgres).await;
    let mut conn = sqlx::PgConnection::connect(&app.db.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (before, _) = numbered_and_pending(&mut conn).await;
    Some((app, conn, before))
}

/// PostgreSQL: events a stopped process committed but had not numbered are numbered by the next
/// store to start on the database, before anyone reads the feed.
#[tokio::test]
async fn events_left_pending_by_a_stopped_process_are_numbered_at_start() {
    let Some((app, mut conn, before)) = app_on_postgres().await else {
        return;
    };
    for m in ["a", "b", "c"] {
        insert_pending(&mut conn, app.env.id.0, m).await;
    }
    assert_eq!(numbered_and_pending(&mut conn).await, (before, 3));

    let second = app.db.open().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while numbered_and_pending(&mut conn).await != (before + 3, 0) {
        assert!(Instant::now() < deadline, "the new store numbered nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let markers: Vec<Value> = feed_after(&app, before)
        .await
        .into_iter()
        .map(|(_, d)| d["marker"].clone())
        .collect();
    assert_eq!(
        markers,
        [json!("a"), json!("b"), json!("c")],
        "in the order written"
    );
    second.close().await;
    app.finish().await;
}

/// PostgreSQL: a process that writes events and stops at once (a CLI command) numbers them as
/// it closes its store, rather than leaving them for the next process.
#[tokio::test]
async fn a_store_closing_numbers_the_events_it_wrote() {
    let Some((app, mut conn, before)) = app_on_postgres().await else {
        return;
    };
    let cli = app.db.open().await;
    let mut tx = cli.shared().write().await.unwrap_or_else(|e| panic!("{e}"));
    tx.queue_events(vec![muster_core::model::FeedEvent {
        id: uuid::Uuid::new_v4(),
        environment_id: app.env.id,
        kind: "user.updated".into(),
        occurred_at: app.muster.now(),
        provider_id: None,
        actor: muster_core::model::Actor::System,
        data: json!({"marker": "cli"}),
    }])
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    cli.close().await;
    // No reader has asked, and the sequencer's own step waits longer than this took.
    assert_eq!(numbered_and_pending(&mut conn).await, (before + 1, 0));
    app.finish().await;
}

/// A user changed by PUT or PATCH: its `user.updated` is built from the record in hand, with
/// the roles it held (its own as well as its organization's defaults) and its organization, the
/// same as the API shows after the change.
async fn a_changed_users_event_has_the_roles_and_organization_it_holds(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    let p = app.provider("Okta").await;
    let ana = app.create_user(&p, "ana@example.com").await;
    let role = api.post("/roles", json!({"name": "Reviewer"})).await;
    let role_id = role.body["id"].as_str().unwrap_or_default().to_string();
    let r = api
        .patch(&format!("/users/{ana}"), json!({"roleIds": [role_id]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let ids = |roles: &Value| {
        let mut ids: Vec<String> = roles
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    };
    let shown = api.get(&format!("/users/{ana}")).await;
    let expected = ids(&shown.body["roles"]);
    assert!(expected.contains(&role_id), "{:?}", shown.body);
    for change in ["put", "patch"] {
        let start = head(&api).await;
        let r = if change == "put" {
            app.put(
                &p,
                &format!("/Users/{ana}"),
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                       "userName": "ana@example.com", "title": "Lead", "active": true}),
            )
            .await
        } else {
            app.patch(
                &p,
                &format!("/Users/{ana}"),
                json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Chief"}]}),
            )
            .await
        };
        assert_eq!(r.status, StatusCode::OK, "{change}: {:?}", r.body);
        let all = events(&api, start).await;
        let updated = all
            .iter()
            .find(|e| e["type"] == "user.updated")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            updated["data"]["changedFields"],
            json!(["title"]),
            "{change}: {all:?}"
        );
        assert_eq!(
            ids(&updated["data"]["roles"]),
            expected,
            "{change}: {updated}"
        );
        assert_eq!(
            updated["data"]["organization"]["id"], shown.body["orgId"],
            "{change}: {updated}"
        );
        assert!(
            updated["data"]["organization"]["name"].is_string(),
            "{updated}"
        );
    }
    app.finish().await;
}

/// A long poll waits on the server's side: a `wait` as long as the request timeout (30 s each by
/// default) ends with the empty page, not with 408. Here the timeout is 1 s and the wait 2 s.
#[tokio::test]
async fn a_long_poll_outlasts_the_request_timeout() {
    let limits = muster_web::limits::LimitSettings {
        request_timeout: Duration::from_secs(1),
        ..muster_web::limits::LimitSettings::default()
    };
    let app = TestApp::with_limits(Backend::Sqlite, limits).await;
    let api = Api::new(&app).await;
    let h = head(&api).await;
    let started = Instant::now();
    let r = api.get(&format!("/events?after={h}&wait=2")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["events"], json!([]));
    assert!(started.elapsed() >= Duration::from_millis(1900));
    app.finish().await;
}

/// Many applications waiting at once: each gets the event that commits, promptly, and the one
/// task that watches the feed's head for them ends when none waits any more.
async fn many_waiting_reads_share_one_look_at_the_head(b: Backend) {
    let app = Arc::new(TestApp::new(b).await);
    let p = app.provider("Okta").await;
    let api = Api::new(&app).await;
    let h = head(&api).await;
    let mut waiting = Vec::new();
    for _ in 0..25 {
        let app = app.clone();
        waiting.push(tokio::spawn(async move {
            let started = Instant::now();
            let page = page_after(&app, h, 10, Duration::from_secs(20)).await;
            (page.events.len(), started.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.create_user(&p, "everyone@example.com").await;
    for w in waiting {
        let (n, waited) = w.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 1);
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }
    // With no one waiting, a new wait still sees a commit (the head is watched again).
    let h2 = head(&api).await;
    let writer = {
        let (app, p) = (app.clone(), p.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            app.create_user(&p, "again@example.com").await
        })
    };
    let page = page_after(&app, h2, 10, Duration::from_secs(20)).await;
    assert_eq!(page.events.len(), 1);
    writer.await.unwrap_or_else(|e| panic!("{e}"));
    match Arc::try_unwrap(app) {
        Ok(app) => app.finish().await,
        Err(_) => panic!("the app is still shared"),
    }
}

/// A page of every type after `after`, read directly from the core, waiting up to `wait`.
async fn page_after(
    app: &TestApp,
    after: i64,
    limit: u64,
    wait: Duration,
) -> muster_core::events::feed::EventPage {
    app.muster
        .read_events(
            app.env.id,
            &EventQuery {
                after: Some(after),
                limit,
                types: vec![],
                wait,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
