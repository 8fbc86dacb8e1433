//! Bearer authentication per provider, and isolation between providers.

use axum::http::{Method, StatusCode};
use muster_core::model::Actor;
use serde_json::json;

use crate::on_both;
use crate::scim_users::urlencode;
use crate::support::{assert_scim_error, Backend, TestApp};

on_both!(
    tokens_are_checked,
    providers_are_isolated,
    tokens_rotate_and_expire,
    revocation_reaches_other_servers_within_the_token_cache
);

async fn tokens_are_checked(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let other = app.provider("Entra").await;
    let uri = format!("{}/Users", p.base);
    for (token, label) in [
        (None, "none"),
        (Some("mst_wrong"), "wrong"),
        (Some(other.token.as_str()), "another provider's"),
    ] {
        let r = app.send(Method::GET, &uri, token, None).await;
        assert_scim_error(&r, 401, None);
        let challenges: Vec<&str> = r
            .headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(
            challenges,
            [
                "Bearer realm=\"Muster SCIM\"",
                "Basic realm=\"Muster SCIM\", charset=\"UTF-8\""
            ],
            "{label}"
        );
    }
    // HTTP Basic (RFC 7617), for SCIM clients that offer only it: the token is the password,
    // whatever the user name; the same token checks apply.
    let basic = |credentials: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    };
    for user in ["okta", "", "svc-muster"] {
        let header = basic(&format!("{user}:{}", p.token));
        let r = app
            .send_with(Method::GET, &uri, None, None, &[("authorization", &header)])
            .await;
        assert_eq!(r.status, StatusCode::OK, "user name {user:?}: {:?}", r.body);
    }
    // Refusals on a provider of their own: each counts towards the failed-authentication limit
    // of its address and provider URL.
    let third = app.provider("OneLogin").await;
    let third_uri = format!("{}/Users", third.base);
    for (header, detail) in [
        (
            basic(&format!("okta:{}", p.token)),
            "the provider token is missing, invalid, revoked or expired",
        ),
        (
            basic("okta:mst_wrong"),
            "the provider token is missing, invalid, revoked or expired",
        ),
        (
            format!("Basic {}", third.token),
            "the Basic credentials must be base64 of 'user:token' (the user name is not checked; the password is the provider's token)",
        ),
        (
            basic("okta:"),
            "authentication required: send the provider's token as 'Authorization: Bearer <token>'",
        ),
        (
            format!("Digest {}", third.token),
            "the Authorization header must use the Bearer scheme, or Basic with the provider's token as the password",
        ),
    ] {
        let r = app
            .send_with(
                Method::GET,
                &third_uri,
                None,
                None,
                &[("authorization", &header)],
            )
            .await;
        assert_scim_error(&r, 401, None);
        assert_eq!(r.body["detail"], detail, "{header}");
    }
    // The Bearer scheme with no token (an identity provider whose token field was left empty)
    // is told to send one, not that the scheme is wrong.
    for empty in ["Bearer", "Bearer ", "bearer   "] {
        let r = app
            .send_with(Method::GET, &uri, None, None, &[("authorization", empty)])
            .await;
        assert_scim_error(&r, 401, None);
        assert_eq!(
            r.body["detail"],
            "authentication required: send the provider's token as 'Authorization: Bearer <token>'",
            "{empty:?}"
        );
    }
    // The scheme is case-insensitive.
    let r = app
        .send_with(
            Method::GET,
            &uri,
            None,
            None,
            &[("authorization", &format!("bearer {}", p.token))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Discovery endpoints need the token too; an unknown provider id is 404 before anything else.
    assert_scim_error(
        &app.send(Method::GET, &format!("{}/Schemas", p.base), None, None)
            .await,
        401,
        None,
    );
    let r = app
        .send(
            Method::GET,
            "/scim/v2/not-a-provider/Users",
            Some(&p.token),
            None,
        )
        .await;
    assert_scim_error(&r, 404, None);
    app.finish().await;
}

async fn providers_are_isolated(b: Backend) {
    let app = TestApp::new(b).await;
    let a = app.provider("A").await;
    let bp = app.provider("B").await;
    let ua = app.create_user(&a, "alice@a.example").await;
    let r = app
        .post(
            &a,
            "/Groups",
            json!({"displayName": "A-team", "members": [{"value": ua}]}),
        )
        .await;
    let ga = r.body["id"].as_str().unwrap_or_default().to_string();
    // B cannot read, list, filter, replace or delete A's resources.
    assert_scim_error(&app.get(&bp, &format!("/Users/{ua}")).await, 404, None);
    assert_scim_error(&app.get(&bp, &format!("/Groups/{ga}")).await, 404, None);
    assert_eq!(app.get(&bp, "/Users").await.body["totalResults"], 0);
    assert_eq!(app.get(&bp, "/Groups").await.body["totalResults"], 0);
    assert_eq!(
        app.get(
            &bp,
            &format!("/Users?filter={}", urlencode(&format!("id eq \"{ua}\"")))
        )
        .await
        .body["totalResults"],
        0
    );
    assert_eq!(
        app.get(
            &bp,
            &format!(
                "/Users?filter={}",
                urlencode("userName eq \"alice@a.example\"")
            )
        )
        .await
        .body["totalResults"],
        0
    );
    assert_eq!(
        app.get(
            &bp,
            &format!("/Users?filter={}", urlencode("userName sw \"alice\""))
        )
        .await
        .body["totalResults"],
        0
    );
    assert_eq!(
        app.get(
            &bp,
            &format!("/Groups?filter={}", urlencode("displayName eq \"A-team\""))
        )
        .await
        .body["totalResults"],
        0
    );
    assert_scim_error(
        &app.put(
            &bp,
            &format!("/Users/{ua}"),
            json!({"userName": "stolen@b.example"}),
        )
        .await,
        404,
        None,
    );
    assert_scim_error(
        &app.put(
            &bp,
            &format!("/Groups/{ga}"),
            json!({"displayName": "stolen"}),
        )
        .await,
        404,
        None,
    );
    assert_scim_error(&app.delete(&bp, &format!("/Users/{ua}")).await, 404, None);
    assert_scim_error(&app.delete(&bp, &format!("/Groups/{ga}")).await, 404, None);
    // Nor add A's user to its own group.
    assert_scim_error(
        &app.post(
            &bp,
            "/Groups",
            json!({"displayName": "B-team", "members": [{"value": ua}]}),
        )
        .await,
        400,
        Some("invalidValue"),
    );
    // A's resources are intact.
    let u = app.get(&a, &format!("/Users/{ua}")).await;
    assert_eq!(u.body["userName"], "alice@a.example");
    assert_eq!(
        app.get(&a, &format!("/Groups/{ga}")).await.body["members"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    app.finish().await;
}

async fn tokens_rotate_and_expire(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let admin = Actor::Admin {
        name: "test".into(),
    };
    let second = app
        .muster
        .create_token(app.env.id, p.id, "rotation", None, &admin)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let uri = format!("{}/Users", p.base);
    // Both tokens work at once.
    assert_eq!(
        app.send(Method::GET, &uri, Some(&p.token), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.send(Method::GET, &uri, Some(&second.secret), None)
            .await
            .status,
        StatusCode::OK
    );
    // Revoke the first: it fails at once, the second still works.
    let tokens = app
        .muster
        .list_tokens(app.env.id, p.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tokens.len(), 2);
    assert!(tokens
        .iter()
        .all(|t| t.prefix.len() == 12 && !p.token.eq(&t.prefix)));
    let first = tokens
        .iter()
        .find(|t| t.label == "initial")
        .map(|t| t.id)
        .unwrap_or_default();
    app.muster
        .revoke_token(app.env.id, first, &admin)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_scim_error(
        &app.send(Method::GET, &uri, Some(&p.token), None).await,
        401,
        None,
    );
    assert_eq!(
        app.send(Method::GET, &uri, Some(&second.secret), None)
            .await
            .status,
        StatusCode::OK
    );
    assert!(
        app.muster
            .revoke_token(app.env.id, first, &admin)
            .await
            .is_err(),
        "revoking twice is an error"
    );
    // An expiring token works until its expiry and not after.
    let expiring = app
        .muster
        .create_token(
            app.env.id,
            p.id,
            "short",
            Some(app.clock_now().plus_secs(3600)),
            &admin,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        app.send(Method::GET, &uri, Some(&expiring.secret), None)
            .await
            .status,
        StatusCode::OK
    );
    app.clock.advance_secs(3600);
    assert_scim_error(
        &app.send(Method::GET, &uri, Some(&expiring.secret), None)
            .await,
        401,
        None,
    );
    assert!(app
        .muster
        .create_token(
            app.env.id,
            p.id,
            "past",
            Some(app.clock_now().plus_secs(-1)),
            &admin
        )
        .await
        .is_err());
    // Last use is recorded; the secret is stored only as a hash.
    let tokens = app
        .muster
        .list_tokens(app.env.id, p.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(tokens
        .iter()
        .find(|t| t.label == "rotation")
        .and_then(|t| t.last_used_at)
        .is_some());
    let mut tx = app
        .muster
        .store
        .read()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let found = tx
        .find_token_by_hash(&muster_core::auth::secret::hash(&second.secret))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, stored) = found.unwrap_or_else(|| panic!("token by hash"));
    assert_eq!(stored.len(), 32);
    assert!(!String::from_utf8_lossy(&stored).contains(&second.secret));
    drop(tx);
    app.finish().await;
}

impl TestApp {
    pub fn clock_now(&self) -> muster_core::Timestamp {
        use muster_core::Clock;
        self.clock.now()
    }
}

/// Two servers on one database: the one that revokes a token refuses it at once; the other
/// trusts its last check for at most its token cache's time, then refuses it too; with no
/// cache it refuses at once.
async fn revocation_reaches_other_servers_within_the_token_cache(b: Backend) {
    use muster_core::{Muster, Settings};
    use std::sync::Arc;
    use std::time::Duration;
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let admin = Actor::Admin {
        name: "test".into(),
    };
    let server = |ttl: Duration| {
        Muster::new(
            app.store.shared(),
            Arc::new(app.clock.clone()),
            Settings {
                token_cache_ttl: ttl,
                ..Settings::default()
            },
        )
    };
    let cached = server(Duration::from_millis(400));
    let uncached = server(Duration::ZERO);
    let checked_at = std::time::Instant::now();
    for m in [&app.muster, &cached, &uncached] {
        assert!(m.authenticate_provider(p.id, &p.token).await.is_ok());
    }
    // A valid token of another provider never authenticates this one, cached or not.
    let other = app.provider("Entra").await;
    assert!(cached
        .authenticate_provider(other.id, &other.token)
        .await
        .is_ok());
    assert!(cached
        .authenticate_provider(p.id, &other.token)
        .await
        .is_err());
    let id = app
        .muster
        .list_tokens(app.env.id, p.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))[0]
        .id;
    app.muster
        .revoke_token(app.env.id, id, &admin)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        app.muster
            .authenticate_provider(p.id, &p.token)
            .await
            .is_err(),
        "the server that revoked refuses at once"
    );
    assert!(
        uncached
            .authenticate_provider(p.id, &p.token)
            .await
            .is_err(),
        "a server without a token cache refuses at once"
    );
    // The other server answers from its last check until that check is 400 ms old: this is
    // what the cache saves (no database read), and the bound it keeps.
    if checked_at.elapsed() < Duration::from_millis(300) {
        assert!(cached.authenticate_provider(p.id, &p.token).await.is_ok());
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        cached.authenticate_provider(p.id, &p.token).await.is_err(),
        "refused once the cached check is older than the cache's time"
    );
    app.finish().await;
}
