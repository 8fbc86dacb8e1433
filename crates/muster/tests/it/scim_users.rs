//! SCIM Users (RFC 7644 §3.3-§3.6) through the HTTP router.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::on_both;
use crate::support::{assert_scim_error, Backend, TestApp, PUBLIC_URL};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

on_both!(
    create_returns_the_resource_with_meta,
    get_list_and_filters,
    pagination_is_stable_and_count_zero_counts,
    uniqueness_is_case_insensitive_across_the_environment,
    bad_input_is_rejected_and_changes_nothing,
    unknown_attributes_are_dropped,
    put_replaces_and_delete_hides,
    full_core_and_enterprise_attributes_round_trip,
    filters_beyond_sql_are_answered_correctly,
    page_size_is_capped,
);

async fn create_returns_the_resource_with_meta(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let r = app
        .post(&p, "/Users", json!({"schemas": [USER], "userName": "bjensen@example.com", "externalId": "00u1", "name": {"givenName": "Barbara"}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let id = r.body["id"].as_str().unwrap_or_default();
    let location = format!("{PUBLIC_URL}/scim/v2/{}/Users/{id}", p.id);
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert_eq!(r.body["meta"]["location"], location);
    assert_eq!(r.body["meta"]["resourceType"], "User");
    assert_eq!(r.body["meta"]["version"], "W/\"1\"");
    assert_eq!(r.body["meta"]["created"], "2027-01-15T08:00:00.000Z");
    assert_eq!(r.body["meta"]["lastModified"], r.body["meta"]["created"]);
    assert_eq!(r.body["externalId"], "00u1");
    assert_eq!(r.body["name"]["givenName"], "Barbara");
    assert_eq!(r.body["schemas"], json!([USER]));
    // The same resource comes back from GET.
    let g = app.get(&p, &format!("/Users/{id}")).await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(g.body, r.body);
    // One sync log entry for the creation.
    let mut tx = app
        .muster
        .store
        .read()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let log = tx
        .recent_log(app.env.id, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let created: Vec<_> = log.iter().filter(|e| e.action == "user.created").collect();
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0].subject_name.as_deref(),
        Some("bjensen@example.com")
    );
    drop(tx);
    app.finish().await;
}

async fn get_list_and_filters(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Entra").await;
    let a = app.create_user(&p, "alice@example.com").await;
    let r = app
        .post(
            &p,
            "/Users",
            json!({"userName": "Bob@Example.com", "externalId": "ext-bob", "active": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let bob = r.body["id"].as_str().unwrap_or_default().to_string();

    let list = app.get(&p, "/Users").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(
        list.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert_eq!(list.body["totalResults"], 2);
    assert_eq!(list.body["itemsPerPage"], 2);
    assert_eq!(list.body["startIndex"], 1);
    assert_eq!(list.body["Resources"][0]["id"], a);

    for (filter, expected) in [
        (
            "userName eq \"bob@example.com\"".to_string(),
            vec![bob.clone()],
        ),
        (
            "USERNAME EQ \"BOB@EXAMPLE.COM\"".to_string(),
            vec![bob.clone()],
        ),
        ("externalId eq \"ext-bob\"".to_string(), vec![bob.clone()]),
        ("externalId eq \"EXT-BOB\"".to_string(), vec![]),
        (format!("id eq \"{a}\""), vec![a.clone()]),
        ("id eq \"not-a-uuid\"".to_string(), vec![]),
        (
            "userName eq \"alice@example.com\" or userName eq \"bob@example.com\"".to_string(),
            vec![a.clone(), bob.clone()],
        ),
        (
            "userName eq \"alice@example.com\" and active eq true".to_string(),
            vec![a.clone()],
        ),
        ("active eq false".to_string(), vec![bob.clone()]),
    ] {
        let uri = format!("/Users?filter={}", urlencode(&filter));
        let r = app.get(&p, &uri).await;
        assert_eq!(r.status, StatusCode::OK, "{filter}: {:?}", r.body);
        let ids: Vec<String> = r.body["Resources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|u| u["id"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(ids, expected, "{filter}");
        assert_eq!(r.body["totalResults"], expected.len(), "{filter}");
    }
    // Unknown id: 404 with a SCIM body; a malformed id too.
    assert_scim_error(
        &app.get(&p, "/Users/0191d6a0-0000-7000-8000-000000000000")
            .await,
        404,
        None,
    );
    assert_scim_error(&app.get(&p, "/Users/nope").await, 404, None);
    // Paths under the base URL that name no endpoint are SCIM 404s; a method an endpoint does
    // not take is a SCIM 405 that says which it takes.
    for path in ["/", "/Nope", "/Users/", "/Users/x/y"] {
        assert_scim_error(&app.get(&p, path).await, 404, None);
    }
    // `/Me` is not implemented (RFC 7644 §3.11: 501), whatever the method, and changes nothing.
    for (method, path) in [
        (Method::GET, "/Me"),
        (Method::POST, "/Me"),
        (Method::PATCH, "/Me/x"),
    ] {
        let uri = format!("{}{path}", p.base);
        let body = (method != Method::GET).then(|| json!({"userName": "me@example.com"}));
        let r = app.send(method, &uri, Some(&p.token), body).await;
        assert_scim_error(&r, 501, None);
    }
    let r = app
        .get(&p, "/Users?filter=userName%20eq%20%22me@example.com%22")
        .await;
    assert_eq!(r.body["totalResults"], 0);
    for (method, path, allow) in [
        (Method::DELETE, "/Users", "GET,HEAD,POST"),
        (Method::GET, "/Users/.search", "POST"),
        (Method::POST, "", "GET,HEAD"),
    ] {
        let uri = format!("{}{path}", p.base);
        let r = app.send(method, &uri, Some(&p.token), None).await;
        assert_scim_error(&r, 405, None);
        assert_eq!(r.header("allow"), Some(allow), "{path}");
    }
    // A base URL entered without its provider's id: a SCIM 404 that says what a base URL is.
    for uri in [
        "/scim/v2",
        "/scim/v2/",
        "/scim/v2/Users",
        "/scim/v2/ServiceProviderConfig",
    ] {
        let r = app.send(Method::GET, uri, Some(&p.token), None).await;
        assert_scim_error(&r, 404, None);
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("/scim/v2/<provider id>"), "{uri}: {detail}");
    }
    // Bad filters are 400 invalidFilter.
    assert_scim_error(
        &app.get(&p, &format!("/Users?filter={}", urlencode("userName eq")))
            .await,
        400,
        Some("invalidFilter"),
    );
    assert_scim_error(
        &app.get(
            &p,
            &format!("/Users?filter={}", urlencode("nosuch eq \"x\"")),
        )
        .await,
        400,
        Some("invalidFilter"),
    );
    app.finish().await;
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn pagination_is_stable_and_count_zero_counts(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(app.create_user(&p, &format!("user{i}@example.com")).await);
        // Several users within the same microsecond must still page stably: do not advance.
        if i % 3 == 0 {
            app.clock.advance_secs(1);
        }
    }
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let r = app
            .get(&p, &format!("/Users?startIndex={start}&count=3"))
            .await;
        assert_eq!(r.body["totalResults"], 7);
        assert_eq!(r.body["startIndex"], start);
        let page: Vec<String> = r.body["Resources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|u| u["id"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        assert_eq!(r.body["itemsPerPage"], page.len());
        seen.extend(page);
        start += 3;
    }
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    let mut sorted_ids = ids.clone();
    sorted_ids.sort();
    assert_eq!(
        sorted_seen, sorted_ids,
        "every user exactly once across pages"
    );
    let r = app.get(&p, "/Users?count=0").await;
    assert_eq!(r.body["totalResults"], 7);
    assert_eq!(r.body["Resources"], json!([]));
    let r = app.get(&p, "/Users?startIndex=0&count=2").await;
    assert_eq!(r.body["startIndex"], 1, "startIndex below 1 reads as 1");
    assert_eq!(r.body["itemsPerPage"], 2);
    let r = app.get(&p, "/Users?startIndex=100").await;
    assert_eq!(r.body["totalResults"], 7);
    assert_eq!(r.body["Resources"], json!([]));
    assert_scim_error(
        &app.get(&p, "/Users?count=many").await,
        400,
        Some("invalidValue"),
    );
    app.finish().await;
}

async fn uniqueness_is_case_insensitive_across_the_environment(b: Backend) {
    let app = TestApp::new(b).await;
    let okta = app.provider("Okta").await;
    let entra = app.provider("Entra").await;
    app.create_user(&okta, "dup@example.com").await;
    let r = app
        .post(&okta, "/Users", json!({"userName": "DUP@example.com"}))
        .await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    assert!(r.body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("DUP@example.com"));
    let r = app
        .post(&entra, "/Users", json!({"userName": "dup@EXAMPLE.com"}))
        .await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    assert!(r.body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("another provisioning provider"));
    // PUT cannot take a userName that is in use either.
    let other = app.create_user(&okta, "other@example.com").await;
    let r = app
        .put(
            &okta,
            &format!("/Users/{other}"),
            json!({"userName": "Dup@Example.com"}),
        )
        .await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    let g = app.get(&okta, &format!("/Users/{other}")).await;
    assert_eq!(
        g.body["userName"], "other@example.com",
        "a refused PUT changes nothing"
    );
    app.finish().await;
}

async fn bad_input_is_rejected_and_changes_nothing(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let junk = app
        .raw(
            axum::http::Request::builder()
                .method(Method::POST)
                .uri(format!("{}/Users", p.base))
                .header("authorization", format!("Bearer {}", p.token))
                .header("content-type", "application/scim+json")
                .body(axum::body::Body::from("{\"userName\": \"x\",,}"))
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .await;
    assert_scim_error(&junk, 400, Some("invalidSyntax"));
    assert_scim_error(
        &app.post(&p, "/Users", json!({"displayName": "No Name"}))
            .await,
        400,
        Some("invalidValue"),
    );
    assert_scim_error(
        &app.post(&p, "/Users", json!({"userName": ""})).await,
        400,
        Some("invalidValue"),
    );
    assert_scim_error(
        &app.post(&p, "/Users", json!({"userName": "x", "active": "perhaps"}))
            .await,
        400,
        Some("invalidValue"),
    );
    assert_scim_error(
        &app.post(
            &p,
            "/Users",
            json!({"userName": "x", "name": "not an object"}),
        )
        .await,
        400,
        Some("invalidValue"),
    );
    assert_scim_error(
        &app.post(&p, "/Users", json!(["an", "array"])).await,
        400,
        Some("invalidSyntax"),
    );
    assert_scim_error(
        &app.post(
            &p,
            "/Users",
            json!({"userName": "x", "schemas": ["urn:example:unknown"]}),
        )
        .await,
        400,
        Some("invalidValue"),
    );
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let r = app
        .raw(
            axum::http::Request::builder()
                .method(Method::POST)
                .uri(format!("{}/Users", p.base))
                .header("authorization", format!("Bearer {}", p.token))
                .body(axum::body::Body::from(deep))
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let big = json!({"userName": "big", "title": "x".repeat(2 * 1024 * 1024)});
    assert_scim_error(&app.post(&p, "/Users", big).await, 413, None);
    let list = app.get(&p, "/Users").await;
    assert_eq!(
        list.body["totalResults"], 0,
        "nothing was created: {:?}",
        list.body
    );
    app.finish().await;
}

async fn unknown_attributes_are_dropped(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Entra").await;
    let r = app.post(&p, "/Users", json!({"userName": "u@example.com", "favouriteColour": "blue", "name": {"givenName": "U", "shoeSize": 44}})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.body.get("favouriteColour").is_none());
    assert_eq!(r.body["name"], json!({"givenName": "U"}));
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    let r = app
        .put(
            &p,
            &format!("/Users/{id}"),
            json!({"userName": "u@example.com", "hobby": "chess"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.get("hobby").is_none());
    app.finish().await;
}

async fn put_replaces_and_delete_hides(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let r = app
        .post(
            &p,
            "/Users",
            json!({"userName": "put@example.com", "title": "Engineer", "nickName": "P"}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    app.clock.advance_secs(60);
    let r = app.put(&p, &format!("/Users/{id}"), json!({"schemas": [USER], "id": "ignored", "userName": "put@example.com", "title": "Manager"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["id"], id, "a client cannot change the id");
    assert_eq!(r.body["title"], "Manager");
    assert!(
        r.body.get("nickName").is_none(),
        "PUT replaces: attributes left out are cleared"
    );
    assert_eq!(r.body["meta"]["version"], "W/\"2\"");
    assert_ne!(r.body["meta"]["lastModified"], r.body["meta"]["created"]);
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    // The same PUT again changes nothing and keeps the version.
    let again = app
        .put(
            &p,
            &format!("/Users/{id}"),
            json!({"userName": "put@example.com", "title": "Manager"}),
        )
        .await;
    assert_eq!(again.body["meta"]["version"], "W/\"2\"");
    assert_scim_error(
        &app.put(
            &p,
            "/Users/0191d6a0-0000-7000-8000-000000000000",
            json!({"userName": "x"}),
        )
        .await,
        404,
        None,
    );
    let d = app.delete(&p, &format!("/Users/{id}")).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    assert_scim_error(&app.get(&p, &format!("/Users/{id}")).await, 404, None);
    assert_scim_error(&app.delete(&p, &format!("/Users/{id}")).await, 404, None);
    assert_eq!(app.get(&p, "/Users").await.body["totalResults"], 0);
    // Administrators still see the user: the store keeps it, blocked.
    let mut tx = app
        .muster
        .store
        .read()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let kept = tx
        .find_user(app.env.id, id.parse().unwrap_or_default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let kept = kept.unwrap_or_else(|| panic!("the deleted user is kept"));
    assert!(kept.removed_at.is_some());
    assert_eq!(kept.status, muster_core::model::UserStatus::Blocked);
    drop(tx);
    app.finish().await;
}

async fn full_core_and_enterprise_attributes_round_trip(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let body = json!({
        "schemas": [USER, ENTERPRISE],
        "userName": "full@example.com",
        "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara", "middleName": "Jane", "honorificPrefix": "Ms.", "honorificSuffix": "III"},
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "region": "CA", "postalCode": "91608", "country": "USA", "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA", "primary": true}],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "photos": [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}],
        "userType": "Employee",
        "title": "Tour Guide",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": true,
        "password": "t1meMa$heen",
        "entitlements": [{"value": "backup"}],
        "roles": [{"value": "student"}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}],
        ENTERPRISE: {"employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios", "division": "Theme Park", "department": "Tour Operations", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}}
    });
    let r = app.post(&p, "/Users", body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    for key in [
        "name",
        "displayName",
        "emails",
        "addresses",
        "phoneNumbers",
        "ims",
        "photos",
        "entitlements",
        "roles",
        "x509Certificates",
        ENTERPRISE,
    ] {
        assert_eq!(r.body[key], body[key], "{key}");
    }
    assert!(
        r.body.get("password").is_none(),
        "passwords are never returned"
    );
    assert_eq!(r.body["schemas"], json!([USER, ENTERPRISE]));
    app.finish().await;
}

async fn filters_beyond_sql_are_answered_correctly(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    for (name, title, dept) in [
        ("a@x.com", "Engineer", "R&D"),
        ("b@x.com", "Manager", "Sales"),
        ("c@y.com", "Engineer", "Sales"),
    ] {
        let r = app.post(&p, "/Users", json!({"userName": name, "title": title, "emails": [{"value": name, "type": "work"}], ENTERPRISE: {"department": dept}})).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    for (filter, expected) in [
        ("title eq \"engineer\"", 2),
        ("title eq \"Engineer\" and urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"sales\"", 1),
        ("emails[type eq \"work\" and value ew \"@x.com\"]", 2),
        ("emails[type eq \"work\"].value eq \"c@y.com\"", 1),
        ("userName sw \"a\" or userName sw \"b\"", 2),
        ("not (title eq \"Engineer\")", 1),
        ("userName eq \"a@x.com\" and title eq \"Manager\"", 0),
        ("meta.created gt \"2020-01-01T00:00:00Z\"", 3),
        ("title pr", 3),
    ] {
        let r = app.get(&p, &format!("/Users?filter={}", urlencode(filter))).await;
        assert_eq!(r.status, StatusCode::OK, "{filter}: {:?}", r.body);
        assert_eq!(r.body["totalResults"], expected, "{filter}");
        assert_eq!(r.body["Resources"].as_array().map(Vec::len), Some(expected), "{filter}");
    }
    // Paging over a filter evaluated outside SQL.
    let r = app
        .get(
            &p,
            &format!(
                "/Users?count=1&startIndex=2&filter={}",
                urlencode("title pr")
            ),
        )
        .await;
    assert_eq!(r.body["totalResults"], 3);
    assert_eq!(r.body["Resources"][0]["userName"], "b@x.com");
    app.finish().await;
}

async fn page_size_is_capped(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    for i in 0..105 {
        app.create_user(&p, &format!("p{i:03}@example.com")).await;
    }
    let r = app.get(&p, "/Users?count=500").await;
    assert_eq!(r.body["totalResults"], 105);
    assert_eq!(
        r.body["itemsPerPage"], 100,
        "the test server's maximum page is 100"
    );
    let spc = app.get(&p, "/ServiceProviderConfig").await;
    assert_eq!(spc.body["filter"]["maxResults"], 100);
    app.finish().await;
}

on_both!(sorting);

async fn sorting(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    for (name, ext, title) in [
        ("bravo", Some("x2"), Some("Zed")),
        ("Alpha", None, None),
        ("charlie", Some("x1"), Some("amy")),
        ("Émile", Some("x3"), Some("Bob")),
    ] {
        let mut body = json!({"userName": name});
        if let Some(e) = ext {
            body["externalId"] = json!(e);
        }
        if let Some(t) = title {
            body["title"] = json!(t);
        }
        assert_eq!(
            app.post(&p, "/Users", body).await.status,
            StatusCode::CREATED
        );
        app.clock.advance_secs(1);
    }
    let names = |r: &crate::support::Resp| -> Vec<String> {
        r.body["Resources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|u| u["userName"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    for (query, expected) in [
        (
            "sortBy=userName",
            vec!["Alpha", "bravo", "charlie", "Émile"],
        ),
        (
            "sortBy=userName&sortOrder=descending",
            vec!["Émile", "charlie", "bravo", "Alpha"],
        ),
        (
            "sortBy=externalId",
            vec!["charlie", "bravo", "Émile", "Alpha"],
        ),
        (
            "sortBy=externalId&sortOrder=descending",
            vec!["Alpha", "Émile", "bravo", "charlie"],
        ),
        ("sortBy=title", vec!["charlie", "Émile", "bravo", "Alpha"]),
        (
            "sortBy=title&sortOrder=descending",
            vec!["Alpha", "bravo", "Émile", "charlie"],
        ),
        (
            "sortBy=meta.created&sortOrder=descending",
            vec!["Émile", "charlie", "Alpha", "bravo"],
        ),
        (
            "sortBy=userName&startIndex=2&count=2",
            vec!["bravo", "charlie"],
        ),
        ("sortBy=title&startIndex=2&count=2", vec!["Émile", "bravo"]),
        (
            "sortBy=userName&filter=title%20pr",
            vec!["bravo", "charlie", "Émile"],
        ),
    ] {
        let r = app.get(&p, &format!("/Users?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {:?}", r.body);
        assert_eq!(names(&r), expected, "{query}");
    }
    assert_scim_error(
        &app.get(&p, "/Users?sortBy=nosuch").await,
        400,
        Some("invalidValue"),
    );
    app.finish().await;
}

on_both!(indexed_filters_match_evaluated_filters);

/// Filters SQL answers (emails.value, meta times) give the same results as the same filters
/// evaluated in memory: each is checked against a variant SQL cannot render.
async fn indexed_filters_match_evaluated_filters(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Entra").await;
    let mut created = Vec::new();
    for (i, email) in ["Ann@Work.example", "bob@work.example", "cy@home.example"]
        .iter()
        .enumerate()
    {
        let r = app
            .post(
                &p,
                "/Users",
                json!({"userName": format!("u{i}"), "emails": [{"value": email, "type": "work"}]}),
            )
            .await;
        created.push(
            r.body["meta"]["created"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        // Times 600 µs apart: the first two fall in the same millisecond.
        app.clock
            .set(muster_core::Timestamp(app.clock_now().micros() + 600));
    }
    app.clock.advance_secs(10);
    let count = |r: &crate::support::Resp| r.body["totalResults"].as_u64().unwrap_or(999);
    for (indexed, evaluated) in [
        (
            "emails.value eq \"ann@work.example\"".to_string(),
            "emails.value eq \"ann@work.example\" or title pr".to_string(),
        ),
        (
            "emails[type eq \"work\" and value eq \"BOB@work.example\"]".to_string(),
            "emails[value eq \"BOB@work.example\" or value eq \"nobody\"]".to_string(),
        ),
        (
            format!("meta.created gt \"{}\"", created[0]),
            format!("meta.created gt \"{}\" or title pr", created[0]),
        ),
        (
            format!("meta.created ge \"{}\"", created[1]),
            format!("meta.created ge \"{}\" or title pr", created[1]),
        ),
        (
            format!("meta.lastModified lt \"{}\"", created[1]),
            format!("meta.lastModified lt \"{}\" or title pr", created[1]),
        ),
        (
            format!("meta.lastModified le \"{}\"", created[0]),
            format!("meta.lastModified le \"{}\" or title pr", created[0]),
        ),
        (
            format!("meta.created eq \"{}\"", created[2]),
            format!("meta.created eq \"{}\" or title pr", created[2]),
        ),
        (
            "meta.lastModified gt \"2000-01-01T00:00:00.0005Z\"".to_string(),
            "meta.lastModified gt \"2000-01-01T00:00:00.0005Z\" or title pr".to_string(),
        ),
    ] {
        let a = app
            .get(&p, &format!("/Users?filter={}", urlencode(&indexed)))
            .await;
        let b2 = app
            .get(&p, &format!("/Users?filter={}", urlencode(&evaluated)))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{indexed}: {:?}", a.body);
        assert_eq!(count(&a), count(&b2), "{indexed} vs {evaluated}");
    }
    // And the counts themselves.
    assert_eq!(
        count(
            &app.get(
                &p,
                &format!(
                    "/Users?filter={}",
                    urlencode("emails.value eq \"ANN@work.example\"")
                )
            )
            .await
        ),
        1
    );
    assert_eq!(
        count(
            &app.get(
                &p,
                &format!(
                    "/Users?filter={}",
                    urlencode(&format!("meta.created gt \"{}\"", created[0]))
                )
            )
            .await
        ),
        1
    );
    assert_eq!(
        count(
            &app.get(
                &p,
                &format!(
                    "/Users?filter={}",
                    urlencode(&format!("meta.created eq \"{}\"", created[0]))
                )
            )
            .await
        ),
        2
    );
    // A PUT that changes the address moves the index with it.
    let id = app
        .get(
            &p,
            &format!("/Users?filter={}", urlencode("userName eq \"u0\"")),
        )
        .await
        .body["Resources"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    app.put(
        &p,
        &format!("/Users/{id}"),
        json!({"userName": "u0", "emails": [{"value": "ann@new.example"}]}),
    )
    .await;
    assert_eq!(
        count(
            &app.get(
                &p,
                &format!(
                    "/Users?filter={}",
                    urlencode("emails.value eq \"ann@work.example\"")
                )
            )
            .await
        ),
        0
    );
    assert_eq!(
        count(
            &app.get(
                &p,
                &format!(
                    "/Users?filter={}",
                    urlencode("emails.value eq \"ann@new.example\"")
                )
            )
            .await
        ),
        1
    );
    // One address kept and one added, then none: the index follows each time.
    let by_email = |v: &str| {
        format!(
            "/Users?filter={}",
            urlencode(&format!("emails.value eq \"{v}\""))
        )
    };
    app.put(
        &p,
        &format!("/Users/{id}"),
        json!({"userName": "u0", "emails": [{"value": "ANN@new.example"}, {"value": "ann@second.example"}]}),
    )
    .await;
    for v in ["ann@new.example", "ann@second.example"] {
        assert_eq!(count(&app.get(&p, &by_email(v)).await), 1, "{v}");
    }
    app.put(&p, &format!("/Users/{id}"), json!({"userName": "u0"}))
        .await;
    for v in ["ann@new.example", "ann@second.example"] {
        assert_eq!(count(&app.get(&p, &by_email(v)).await), 0, "{v}");
    }
    app.finish().await;
}
