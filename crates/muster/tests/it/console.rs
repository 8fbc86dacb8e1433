//! The console's sign-in, sessions, CSRF, permissions and security headers.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use muster_core::model::{Actor, AdminRole};

use crate::on_both;
use crate::support::{Backend, Resp, TestApp};

on_both!(
    sign_in_session_and_sign_out,
    sessions_end_after_inactivity,
    pages_follow_the_administrators_role,
    repeated_failed_sign_ins_are_slowed_down,
    organizations_are_managed_through_forms,
    providers_are_added_and_their_token_shown_once,
    users_are_searched_shown_and_acted_on,
    the_sync_log_is_filtered_paged_and_exported,
    applications_are_added_rotated_and_revoked,
    roles_and_local_users_are_added_in_the_console,
    administrators_and_their_sessions_are_managed,
    webhooks_are_managed_in_the_console,
    a_held_mass_deactivation_is_bannered_and_restored_in_the_console,
    administrators_set_their_own_notifications,
    mappings_are_configured_through_forms,
    the_overview_shows_each_providers_last_day
);

const PASSWORD: &str = "a long enough passphrase";

async fn admin(app: &TestApp, name: &str, role: AdminRole) {
    app.muster
        .create_admin(app.env.id, name, PASSWORD, role, &Actor::System)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> Resp {
    let mut b = Request::builder().method(Method::GET).uri(path);
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    app.raw(b.body(Body::empty()).unwrap_or_else(|e| panic!("{e}")))
        .await
}

async fn post_form(app: &TestApp, path: &str, cookie: Option<&str>, form: &str) -> Resp {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    app.raw(
        b.body(Body::from(form.to_string()))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .await
}

async fn sign_in(app: &TestApp, user: &str, password: &str) -> Resp {
    post_form(
        app,
        "/console/login",
        None,
        &format!("username={user}&password={}", password.replace(' ', "+")),
    )
    .await
}

/// Signs in and returns the `name=value` cookie pair.
async fn session(app: &TestApp, user: &str) -> String {
    let r = sign_in(app, user, PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    r.header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_string()
}

fn html(r: &Resp) -> String {
    r.body.as_str().unwrap_or_default().to_string()
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string()
}

fn assert_security_headers(r: &Resp) {
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

async fn sign_in_session_and_sign_out(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ada", AdminRole::CustomerCloudAdmin).await;
    let r = get(&app, "/console", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/console/login"));
    let r = get(&app, "/console/login", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_security_headers(&r);
    let page = html(&r);
    assert!(
        page.contains("<label>Username <input name=\"username\""),
        "{page}"
    );
    assert!(page.contains("type=\"password\""));

    // A wrong password: the form again, with the error, and no session.
    let r = sign_in(&app, "ada", "not the password at all").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(html(&r).contains("The username or password is not right."));
    assert!(html(&r).contains("value=\"ada\""), "the username is kept");
    assert!(r.header("set-cookie").is_none());
    // An unknown user gets the same answer.
    let r = sign_in(&app, "nobody", PASSWORD).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(html(&r).contains("The username or password is not right."));

    let r = sign_in(&app, "ADA", PASSWORD).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "usernames are case-insensitive"
    );
    let set = r.header("set-cookie").unwrap_or_default().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console", "Secure"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains(PASSWORD));
    let cookie = set.split(';').next().unwrap_or_default().to_string();
    let r = get(&app, "/console", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_security_headers(&r);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let page = html(&r);
    assert!(page.contains("Signed in as <strong>ada</strong>"), "{page}");
    let csrf = csrf_of(&page);
    assert_eq!(csrf.len(), 64);

    // Sign-out needs the CSRF token.
    let r = post_form(&app, "/console/logout", Some(&cookie), "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(html(&r).contains("did not come from this console"));
    let r = post_form(&app, "/console/logout", Some(&cookie), "csrf=0000").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&app, "/console", Some(&cookie)).await.status,
        StatusCode::OK,
        "still signed in"
    );
    let r = post_form(
        &app,
        "/console/logout",
        Some(&cookie),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r
        .header("set-cookie")
        .is_some_and(|c| c.contains("Max-Age=0")));
    let r = get(&app, "/console", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the session is over");
    // A made-up cookie is no session.
    let r = get(&app, "/console", Some("muster_session=mss_0000")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    app.finish().await;
}

async fn sessions_end_after_inactivity(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ada", AdminRole::CustomerCloudAdmin).await;
    let cookie = session(&app, "ada").await;
    // Activity keeps it alive.
    for _ in 0..3 {
        app.clock.advance_secs(20 * 60);
        assert_eq!(
            get(&app, "/console", Some(&cookie)).await.status,
            StatusCode::OK
        );
    }
    // 31 minutes idle ends it.
    app.clock.advance_secs(31 * 60);
    let r = get(&app, "/console", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/console/login?expired=1"));
    let r = get(&app, "/console/login?expired=1", None).await;
    assert!(html(&r).contains("Your session has ended"));
    // And no session lives past 12 hours, however busy.
    let cookie = session(&app, "ada").await;
    for _ in 0..25 {
        app.clock.advance_secs(29 * 60);
        let _ = get(&app, "/console", Some(&cookie)).await;
    }
    assert_eq!(
        get(&app, "/console", Some(&cookie)).await.status,
        StatusCode::SEE_OTHER
    );
    app.finish().await;
}

async fn pages_follow_the_administrators_role(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "cca", AdminRole::CustomerCloudAdmin).await;
    admin(&app, "ima", AdminRole::IdentityManagementAdmin).await;
    admin(&app, "alv", AdminRole::AuditLogViewer).await;
    let p = app.provider("Okta").await;
    for (user, allowed, denied) in [
        (
            "cca",
            vec!["/console/providers", "/console/orgs", "/console/sync-log"],
            vec![],
        ),
        (
            "ima",
            vec!["/console/providers"],
            vec!["/console/orgs", "/console/sync-log"],
        ),
        (
            "alv",
            vec!["/console/sync-log"],
            vec!["/console/providers", "/console/orgs"],
        ),
    ] {
        let cookie = session(&app, user).await;
        let home = html(&get(&app, "/console", Some(&cookie)).await);
        for path in &allowed {
            let r = get(&app, path, Some(&cookie)).await;
            assert_eq!(r.status, StatusCode::OK, "{user} {path}");
            assert!(
                home.contains(&format!("href=\"{path}\"")),
                "{user} sees a link to {path}"
            );
        }
        for path in &denied {
            let r = get(&app, path, Some(&cookie)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{user} {path}");
            assert!(html(&r).contains("does not give access"));
            assert!(
                !home.contains(&format!("href=\"{path}\"")),
                "{user} has no link to {path}"
            );
        }
    }
    // A SCIM group's page is the providers' section's: its members are names an Identity
    // Management Administrator reads, not links to users' pages it may not open.
    let ana = app.create_user(&p, "ana@example.com").await;
    let r = app
        .post(
            &p,
            "/Groups",
            serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Staff", "members": [{"value": ana}]}),
        )
        .await;
    let group = format!(
        "/console/groups/{}",
        r.body["id"].as_str().unwrap_or_default()
    );
    for (user, status, link) in [
        ("cca", StatusCode::OK, true),
        ("ima", StatusCode::OK, false),
        ("alv", StatusCode::FORBIDDEN, false),
    ] {
        let cookie = session(&app, user).await;
        let r = get(&app, &group, Some(&cookie)).await;
        assert_eq!(r.status, status, "{user}");
        let page = html(&r);
        assert_eq!(
            page.contains(&format!("href=\"/console/users/{ana}\"")),
            link,
            "{user}: {page}"
        );
    }
    // What the pages show is real and escaped.
    let cookie = session(&app, "cca").await;
    let page = html(&get(&app, "/console/providers", Some(&cookie)).await);
    assert!(
        page.contains("Okta") && page.contains("/scim/v2/"),
        "{page}"
    );
    let log = html(&get(&app, "/console/sync-log", Some(&cookie)).await);
    assert!(log.contains("provider.created"), "{log}");
    app.finish().await;
}

async fn repeated_failed_sign_ins_are_slowed_down(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ada", AdminRole::CustomerCloudAdmin).await;
    for _ in 0..5 {
        let r = sign_in(&app, "ada", "wrong wrong wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password must wait, and the page says how long.
    let r = sign_in(&app, "ada", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(html(&r).contains("try again in 30 seconds"), "{}", html(&r));
    app.clock.advance_secs(31);
    let r = sign_in(&app, "ada", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    // Success resets the count; failures are in the sync log.
    let r = sign_in(&app, "ada", "wrong wrong wrong").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (entries, _) = app
        .muster
        .query_sync_log(
            app.env.id,
            &muster_core::store::LogQuery {
                action: Some("admin.sign_in_failed".into()),
                ..Default::default()
            },
            None,
            100,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(entries.len(), 6);
    assert!(
        !format!("{entries:?}").contains("wrong wrong"),
        "no password in the log"
    );
    app.finish().await;
}

/// `muster admin create` reads the password from standard input; the administrator can then sign
/// in. Weak passwords are refused.
#[tokio::test]
async fn admin_create_from_the_command_line() {
    use std::io::Write;
    let app = TestApp::new(Backend::Sqlite).await;
    let dir = std::env::temp_dir().join(format!("muster-adm-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let run = |args: &[&str], stdin: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_muster"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MUSTER_DATA_DIR", &dir)
            .env("MUSTER_DATABASE_URL", &app.db.url)
            .env("MUSTER_PUBLIC_URL", "https://muster.example.com")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(stdin.as_bytes());
        }
        child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
    };
    let weak = run(&["admin", "create", "--username", "root"], "short\n");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12"));
    let ok = run(
        &[
            "admin",
            "create",
            "--username",
            "root",
            "--role",
            "audit-log-viewer",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(said.contains("Audit Log Viewer"), "{said}");
    // Where to sign in, as the browser reaches it.
    assert!(
        said.contains("Sign in at https://muster.example.com/console."),
        "{said}"
    );
    let dup = run(
        &["admin", "create", "--username", "ROOT"],
        &format!("{PASSWORD}\n"),
    );
    assert!(!dup.status.success());
    let listed = run(&["admin", "list", "--json"], "");
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap_or_default();
    assert_eq!(v[0]["username"], "root");
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("argon2"),
        "no hash is shown"
    );
    let r = sign_in(&app, "root", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // The only administrator is not a Customer Cloud Admin here, so the last-one rule does not
    // stand in the way: a new role, then removal.
    let set = run(
        &[
            "admin",
            "set-role",
            "--username",
            "Root",
            "--role",
            "identity-management-admin",
        ],
        "",
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert!(String::from_utf8_lossy(&set.stdout).contains("Identity Management Administrator"));
    let gone = run(&["admin", "remove", "--username", "root"], "");
    assert!(
        gone.status.success(),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    let missing = run(&["admin", "remove", "--username", "root"], "");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no administrator named"));
    let _ = std::fs::remove_dir_all(&dir);
    app.finish().await;
}

async fn organizations_are_managed_through_forms(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ada", AdminRole::CustomerCloudAdmin).await;
    admin(&app, "ima", AdminRole::IdentityManagementAdmin).await;
    let cookie = session(&app, "ada").await;
    let page = html(&get(&app, "/console/orgs", Some(&cookie)).await);
    let csrf = csrf_of(&page);
    assert!(
        page.contains("<label>Name <input name=\"name\""),
        "labelled fields"
    );
    let root = app
        .muster
        .org_tree(app.env.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .org
        .id;
    let post = |form: String| {
        let cookie = cookie.clone();
        let app = &app;
        async move { post_form(app, "/console/orgs", Some(&cookie), &form).await }
    };
    // Without the CSRF token nothing is created.
    let r = post(format!("action=create&name=Forged&parent={root}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Add, add a child, rename, refuse a duplicate with the error on the page, move, deactivate.
    let r = post(format!(
        "csrf={csrf}&action=create&name=Engineering&parent={root}"
    ))
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let orgs = app
        .muster
        .list_orgs(app.env.id, None)
        .await
        .unwrap_or_default();
    let eng = orgs
        .iter()
        .find(|o| o.org.name == "Engineering")
        .map(|o| o.org.id);
    let eng = eng.unwrap_or_else(|| panic!("Engineering was not created"));
    let r = post(format!("csrf={csrf}&action=child&org={eng}&name=Platform")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = post(format!("csrf={csrf}&action=child&org={eng}&name=platform")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let page = html(&r);
    assert!(
        page.contains("role=\"alert\"") && page.contains("already has an organization named"),
        "{page}"
    );
    let r = post(format!("csrf={csrf}&action=create&name=ab&parent={root}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("3 to 220"));
    let r = post(format!("csrf={csrf}&action=rename&org={eng}&name=R%26D")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = html(&get(&app, "/console/orgs", Some(&cookie)).await);
    assert!(
        page.contains("R&#38;D") && page.contains("Platform"),
        "{page}"
    );
    let orgs = app
        .muster
        .list_orgs(app.env.id, None)
        .await
        .unwrap_or_default();
    let platform = orgs
        .iter()
        .find(|o| o.org.name == "Platform")
        .map(|o| o.org.id);
    let platform = platform.unwrap_or_else(|| panic!("Platform was not created"));
    let r = post(format!(
        "csrf={csrf}&action=move&org={platform}&parent={root}"
    ))
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = post(format!("csrf={csrf}&action=deactivate&org={eng}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = html(&get(&app, "/console/orgs?status=deactivated", Some(&cookie)).await);
    assert!(page.contains("Reactivate R&#38;D"), "{page}");
    let r = post(format!("csrf={csrf}&action=reactivate&org={eng}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Default roles: R&D sets its own, then inherits again.
    let roles = app.muster.list_roles(app.env.id).await.unwrap_or_default();
    let org_admin = roles
        .iter()
        .find(|r| r.name == "Org Admin")
        .map(|r| r.id.to_string())
        .unwrap_or_default();
    let r = post(format!(
        "csrf={csrf}&action=roles&org={eng}&role={org_admin}"
    ))
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let view = app
        .muster
        .get_org(app.env.id, eng)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = view
        .effective_default_roles
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, vec!["Org Admin"]);
    let r = post(format!("csrf={csrf}&action=roles&org={eng}&inherit=1")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let view = app
        .muster
        .get_org(app.env.id, eng)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(view.default_roles_from, Some(eng), "inherited again");
    let orgs = app
        .muster
        .list_orgs(app.env.id, None)
        .await
        .unwrap_or_default();
    assert!(orgs.iter().all(|o| o.org.status.as_str() == "active"));
    assert!(orgs
        .iter()
        .any(|o| o.org.name == "Platform" && o.org.parent_id == Some(root)));
    // Every change is in the sync log with the console administrator as actor.
    let (entries, _) = app
        .muster
        .query_sync_log(
            app.env.id,
            &muster_core::store::LogQuery::default(),
            None,
            100,
        )
        .await
        .unwrap_or_default();
    assert!(entries.iter().any(|(_, e)| e.action == "org.renamed"
        && matches!(&e.actor, Actor::Admin { name } if name == "console:ada")));
    // An Identity Management Administrator may not change organizations.
    let ima = session(&app, "ima").await;
    let ima_csrf = csrf_of(&html(&get(&app, "/console", Some(&ima)).await));
    let r = post_form(
        &app,
        "/console/orgs",
        Some(&ima),
        &format!("csrf={ima_csrf}&action=create&name=Nope&parent={root}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    app.finish().await;
}

async fn providers_are_added_and_their_token_shown_once(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ima", AdminRole::IdentityManagementAdmin).await;
    admin(&app, "alv", AdminRole::AuditLogViewer).await;
    let cookie = session(&app, "ima").await;
    let page = html(&get(&app, "/console/providers", Some(&cookie)).await);
    assert!(page.contains("Add Provisioning Provider"));
    let csrf = csrf_of(&page);
    let r = post_form(
        &app,
        "/console/providers",
        Some(&cookie),
        &format!("csrf={csrf}&name=Okta"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", html(&r));
    let page = html(&r);
    assert!(page.contains("Add SCIM Provisioning") && page.contains("shows it only once"));
    let token = page
        .split("id=\"token\" readonly value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    assert!(token.starts_with("mst_"), "{page}");
    let base = page
        .split("id=\"base-url\" readonly value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    let path = base
        .trim_start_matches(crate::support::PUBLIC_URL)
        .to_string();
    assert!(path.starts_with("/scim/v2/"));
    // The token works for SCIM.
    let r = app
        .send(Method::GET, &format!("{path}/Users"), Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // The details page never shows it again.
    let pid = path.trim_start_matches("/scim/v2/").to_string();
    let details = html(&get(&app, &format!("/console/providers/{pid}"), Some(&cookie)).await);
    assert!(!details.contains(&token));
    assert!(details.contains("15 minutes"));
    assert!(details.contains("There are no SCIM groups available"));
    assert!(details.contains("Wait to assign people or groups"));
    // The delay is edited; a new token is shown once; revoking the first stops it at once.
    let r = post_form(
        &app,
        &format!("/console/providers/{pid}"),
        Some(&cookie),
        &format!("csrf={csrf}&action=delay&amount=2&unit=3600"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let details = html(&get(&app, &format!("/console/providers/{pid}"), Some(&cookie)).await);
    assert!(details.contains("2 hours"), "{details}");
    let r = post_form(
        &app,
        &format!("/console/providers/{pid}"),
        Some(&cookie),
        &format!("csrf={csrf}&action=delay&amount=-1&unit=60"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("whole number"));
    let r = post_form(
        &app,
        &format!("/console/providers/{pid}"),
        Some(&cookie),
        &format!("csrf={csrf}&action=token&label=rotation&days=30"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("New token"));
    let tokens = app
        .muster
        .list_tokens(app.env.id, pid.parse().unwrap_or_else(|e| panic!("{e}")))
        .await
        .unwrap_or_default();
    assert_eq!(tokens.len(), 2);
    let first = tokens
        .iter()
        .find(|t| token.starts_with(&t.prefix))
        .map(|t| t.id.to_string())
        .unwrap_or_default();
    let r = post_form(
        &app,
        &format!("/console/providers/{pid}"),
        Some(&cookie),
        &format!("csrf={csrf}&action=revoke&token={first}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = app
        .send(Method::GET, &format!("{path}/Users"), Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "revoked at once");
    // Without the CSRF token, or as an Audit Log Viewer: refused.
    let r = post_form(&app, "/console/providers", Some(&cookie), "name=Forged").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let alv = session(&app, "alv").await;
    let alv_csrf = csrf_of(&html(&get(&app, "/console", Some(&alv)).await));
    let r = post_form(
        &app,
        "/console/providers",
        Some(&alv),
        &format!("csrf={alv_csrf}&name=Nope"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.muster
            .list_providers(app.env.id)
            .await
            .unwrap_or_default()
            .len(),
        1
    );
    app.finish().await;
}

async fn users_are_searched_shown_and_acted_on(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ada", AdminRole::CustomerCloudAdmin).await;
    let p = app.provider("Okta").await;
    let ana = app.create_user(&p, "ana@example.com").await;
    let ben = app.create_user(&p, "ben@example.com").await;
    // The provider turns Ana off: blocked, deactivation pending.
    let r = app
        .patch(
            &p,
            &format!("/Users/{ana}"),
            serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // A name sent only as name.givenName and name.familyName, and a changed title.
    let r = app
        .patch(
            &p,
            &format!("/Users/{ana}"),
            serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "name", "value": {"givenName": "Ana", "familyName": "Lima"}},
                           {"op": "add", "path": "title", "value": "Lead"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Her address, the provider's id for her, and a group.
    let r = app
        .patch(
            &p,
            &format!("/Users/{ana}"),
            serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "externalId", "value": "00u-ana"},
                           {"op": "add", "path": "emails", "value": [{"value": "ana.lima@example.com", "type": "work", "primary": true}]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .post(
            &p,
            "/Groups",
            serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Field Engineering", "members": [{"value": ana}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let cookie = session(&app, "ada").await;
    let page = html(&get(&app, "/console/users?q=ana", Some(&cookie)).await);
    assert!(
        page.contains("<div class=\"muted\">Ana Lima</div>"),
        "{page}"
    );
    assert!(
        page.contains("ana@example.com") && !page.contains("ben@example.com"),
        "{page}"
    );
    let page = html(&get(&app, "/console/users?status=blocked", Some(&cookie)).await);
    assert!(page.contains("ana@example.com") && !page.contains("ben@example.com"));
    let page = html(
        &get(
            &app,
            &format!("/console/users?provider={}", p.id),
            Some(&cookie),
        )
        .await,
    );
    assert!(page.contains("ben@example.com"));
    let page = html(&get(&app, "/console/users?provider=local", Some(&cookie)).await);
    assert!(page.contains("No user matches"));
    // A user the provider sent no name for says so, rather than showing an empty cell.
    let page = html(&get(&app, &format!("/console/users/{ben}"), Some(&cookie)).await);
    assert!(
        page.contains("<th scope=\"row\">Name</th><td><span class=\"muted\">not given</span></td>"),
        "{page}"
    );
    let user_page = format!("/console/users/{ana}");
    let page = html(&get(&app, &user_page, Some(&cookie)).await);
    assert!(
        page.contains("blocked") && page.contains("Pending deactivation"),
        "{page}"
    );
    assert!(page.contains("provisioned by Okta"));
    assert!(page.contains("Desktop User (organization default)"));
    assert!(page.contains("user.blocked"), "the user's sync log");
    // Times (the pending deactivation, each entry's) in the reader's time zone, by console.js.
    assert!(page.contains("<td>due <time datetime=\"20"), "{page}");
    assert!(page.contains("<tr><td><time datetime=\"20"), "{page}");
    assert!(
        page.contains("<th scope=\"row\">Name</th><td>Ana Lima</td>"),
        "{page}"
    );
    // What the mappings want for her, by the rules that place users: none chosen yet.
    assert!(
        page.contains("<th scope=\"row\">Mapping</th><td><div>Organization: no organization mapping: the user stays where it is</div><div>Roles: role mapping has no say for this provider.</div></td>"),
        "{page}"
    );
    // What the provider sent: her address, its id for her, her groups, the attributes.
    for row in [
        "<th scope=\"row\">Email</th><td>ana.lima@example.com</td>",
        "<th scope=\"row\">External ID</th><td><code>00u-ana</code></td>",
        "<th scope=\"row\">SCIM groups</th><td><a href=\"/console/groups/",
        "<th scope=\"row\">Created</th><td><time datetime=\"20",
    ] {
        assert!(page.contains(row), "{row} in {page}");
    }
    assert!(
        page.contains("<summary>SCIM attributes, as the provider sent them</summary><pre>{"),
        "{page}"
    );
    assert!(page.contains("&#34;title&#34;: &#34;Lead&#34;"), "{page}");
    // Searched by what an administrator has in hand: the address or the provider's id. The
    // list shows the address under the name, as it is not her userName.
    for search in ["ANA.LIMA%40example.com", "00u-ana"] {
        let found = html(&get(&app, &format!("/console/users?q={search}"), Some(&cookie)).await);
        assert!(
            found.contains("ana@example.com") && !found.contains("ben@example.com"),
            "{search}: {found}"
        );
        assert!(
            found.contains(
                "<div class=\"muted\">Ana Lima</div><div class=\"muted\">ana.lima@example.com</div>"
            ),
            "{found}"
        );
    }
    let found = html(&get(&app, "/console/users?q=00u-an", Some(&cookie)).await);
    assert!(
        found.contains("No user matches"),
        "externalId only whole: {found}"
    );
    // The group's page, from her page: its members, and where the mappings put them.
    let group_href = page
        .split("<th scope=\"row\">SCIM groups</th><td><a href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string();
    let group_page = html(&get(&app, &group_href, Some(&cookie)).await);
    for part in [
        "<h1>Field Engineering</h1>",
        "<th scope=\"row\">Members</th><td>1</td>",
        &format!("<a href=\"/console/users/{ana}\">ana@example.com</a>"),
        "Organization mapping: none chosen for this provider yet.",
        "Role mapping: none for this group.",
    ] {
        assert!(group_page.contains(part), "{part} in {group_page}");
    }
    let r = get(&app, &format!("/console/groups/{ana}"), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "a user's id is no group's");
    // Ben, in no group and with no address, has neither row.
    let ben_page = html(&get(&app, &format!("/console/users/{ben}"), Some(&cookie)).await);
    assert!(
        !ben_page.contains(">SCIM groups<") && !ben_page.contains(">Email<"),
        "{ben_page}"
    );
    // Details in words: each changed attribute before and after, no raw JSON.
    assert!(
        page.contains("<dt>title</dt><dd>none → Lead</dd>"),
        "{page}"
    );
    assert!(!page.contains("&#34;changes&#34;"), "{page}");
    let csrf = csrf_of(&page);
    // Actions: without CSRF refused; legal hold; roles; move; a refused action says why.
    let r = post_form(&app, &user_page, Some(&cookie), "action=deactivate").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post_form(
        &app,
        &user_page,
        Some(&cookie),
        &format!("csrf={csrf}&action=hold_on"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = post_form(
        &app,
        &user_page,
        Some(&cookie),
        &format!("csrf={csrf}&action=deactivate"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("legal hold"));
    let roles = app.muster.list_roles(app.env.id).await.unwrap_or_default();
    let ids: Vec<String> = roles
        .iter()
        .filter(|r| r.name == "Org Admin" || r.name == "PROe User")
        .map(|r| r.id.to_string())
        .collect();
    let r = post_form(
        &app,
        &user_page,
        Some(&cookie),
        &format!("csrf={csrf}&action=roles&role={}&role={}", ids[0], ids[1]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = html(&get(&app, &user_page, Some(&cookie)).await);
    assert!(
        page.contains("Org Admin (set by an administrator)"),
        "{page}"
    );
    assert!(page.contains("Changed outside provisioning</th><td>yes"));
    app.finish().await;
}

async fn the_sync_log_is_filtered_paged_and_exported(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "alv", AdminRole::AuditLogViewer).await;
    let p = app.provider("Okta").await;
    for i in 0..120 {
        app.create_user(&p, &format!("u{i}@example.com")).await;
    }
    let cookie = session(&app, "alv").await;
    let page = html(&get(&app, "/console/sync-log?action=user.created", Some(&cookie)).await);
    assert_eq!(
        page.matches("<td>user.created</td>").count(),
        100,
        "a page of 100"
    );
    assert!(page.contains("Older entries"));
    let older = page
        .split("href=\"/console/sync-log?")
        .filter_map(|s| s.split('"').next())
        .find(|s| s.contains("before="))
        .unwrap_or_default()
        .replace("&#38;", "&");
    let page2 = html(&get(&app, &format!("/console/sync-log?{older}"), Some(&cookie)).await);
    assert_eq!(page2.matches("<td>user.created</td>").count(), 20);
    assert!(page2.contains("<details><summary>Details</summary>"));
    let r = get(&app, "/console/sync-log?since=yesterday", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("must be a date"));
    let r = get(&app, "/console/sync-log?result=error", Some(&cookie)).await;
    assert!(html(&r).contains("No entry matches"));
    // The export: CSV with the same filters.
    let r = get(
        &app,
        "/console/sync-log/export.csv?action=user.created&since=2020-01-01",
        Some(&cookie),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/csv")));
    let csv = r.body.as_str().unwrap_or_default().to_string();
    assert_eq!(csv.lines().count(), 121, "a header and 120 entries");
    assert!(csv.lines().skip(1).all(|l| l.contains("user.created")));
    // Not for an unsigned visitor.
    let r = get(&app, "/console/sync-log/export.csv", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    app.finish().await;
}

async fn mappings_are_configured_through_forms(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ima", AdminRole::IdentityManagementAdmin).await;
    let p = app.provider("Okta").await;
    let g = app
        .post(&p, "/Groups", serde_json::json!({"displayName": "Sellers"}))
        .await
        .body["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let cookie = session(&app, "ima").await;
    let path = format!("/console/providers/{}", p.id);
    let page = html(&get(&app, &path, Some(&cookie)).await);
    assert!(page.contains("Add Organization Mapping"));
    assert!(page.contains("1 SCIM group is not mapped: Sellers"));
    assert!(page.contains("1 group pushed by this provider"), "{page}");
    let csrf = csrf_of(&page);
    // An attribute path that cannot hold a value is refused on the page, and nothing is saved.
    let r = post_form(
        &app,
        &path,
        Some(&cookie),
        &format!("csrf={csrf}&action=method&method=attribute&attribute=nosuch"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("nosuch") && html(&r).contains("role=\"alert\""));
    // Without the CSRF token: refused.
    let r = post_form(&app, &path, Some(&cookie), "action=method&method=groups").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(app
        .muster
        .mapping_view(app.env.id, p.id)
        .await
        .map(|v| v.org_mapping.is_none())
        .unwrap_or(false));
    // The groups method, an entry, a role mapping.
    let r = post_form(
        &app,
        &path,
        Some(&cookie),
        &format!("csrf={csrf}&action=method&method=groups"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let root = app
        .muster
        .org_tree(app.env.id)
        .await
        .map(|t| t.org.id.to_string())
        .unwrap_or_default();
    let r = post_form(
        &app,
        &path,
        Some(&cookie),
        &format!("csrf={csrf}&action=map&group={g}&org={root}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let roles = app.muster.list_roles(app.env.id).await.unwrap_or_default();
    let desktop = roles
        .iter()
        .find(|r| r.name == "Desktop User")
        .map(|r| r.id.to_string())
        .unwrap_or_default();
    let r = post_form(
        &app,
        &path,
        Some(&cookie),
        &format!("csrf={csrf}&action=role&group={g}"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a role mapping needs roles"
    );
    let r = post_form(
        &app,
        &path,
        Some(&cookie),
        &format!("csrf={csrf}&action=role&group={g}&role={desktop}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = html(&get(&app, &path, Some(&cookie)).await);
    assert_eq!(
        page.matches("All SCIM groups are mapped").count(),
        2,
        "{page}"
    );
    // Counts read as sentences: a second group, and the preview of a re-apply.
    app.post(&p, "/Groups", serde_json::json!({"displayName": "Buyers"}))
        .await;
    let page = html(&get(&app, &path, Some(&cookie)).await);
    assert!(page.contains("2 groups pushed by this provider"), "{page}");
    assert_eq!(
        page.matches("1 SCIM group is not mapped: Buyers").count(),
        2,
        "{page}"
    );
    let page = html(&get(&app, &format!("{path}?preview=1"), Some(&cookie)).await);
    assert!(
        page.contains("0 of 0 users would change: 0 moves, 0 role changes."),
        "{page}"
    );
    assert!(!page.contains("(s)"), "{page}");
    app.finish().await;
}

async fn applications_are_added_rotated_and_revoked(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ada", AdminRole::CustomerCloudAdmin).await;
    admin(&app, "ian", AdminRole::IdentityManagementAdmin).await;
    let cookie = session(&app, "ada").await;
    let page = html(&get(&app, "/console/apps", Some(&cookie)).await);
    assert!(page.contains("No application credential yet"), "{page}");
    let csrf = csrf_of(&page);
    let r = post_form(
        &app,
        "/console/apps",
        Some(&cookie),
        &format!("csrf={csrf}&action=create&name=HR+portal&scope=directory%3Aread"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(page.contains("shows it only once"), "{page}");
    let token = page
        .split("id=\"token\" readonly value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string();
    assert!(token.starts_with("mapp_"), "{token}");
    // The token reads the directory, and its use shows.
    let users = app
        .send(Method::GET, "/api/v1/users", Some(&token), None)
        .await;
    assert_eq!(users.status, StatusCode::OK);
    let page = html(&get(&app, "/console/apps", Some(&cookie)).await);
    assert!(!page.contains(&token), "shown once");
    assert!(page.contains("HR portal") && page.contains("directory:read"));
    assert!(!page.contains("<td>never</td>"), "last use shown: {page}");
    // A name is required; the reason is on the page.
    let r = post_form(
        &app,
        "/console/apps",
        Some(&cookie),
        &format!("csrf={csrf}&action=create&name=&scope=events%3Aread"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("1 to 100 characters"));
    // Revoke: the token stops at once.
    let id = page
        .split("name=\"app\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string();
    let r = post_form(
        &app,
        "/console/apps",
        Some(&cookie),
        &format!("csrf={csrf}&action=revoke&app={id}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let users = app
        .send(Method::GET, "/api/v1/users", Some(&token), None)
        .await;
    assert_eq!(users.status, StatusCode::UNAUTHORIZED);
    // An administrator API token: shown once, works for writes, revoked at once.
    let r = post_form(
        &app,
        "/console/apps",
        Some(&cookie),
        &format!("csrf={csrf}&action=token_create&label=deploy&expires_days=0"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "an expiry of 0 days");
    let r = post_form(
        &app,
        "/console/apps",
        Some(&cookie),
        &format!("csrf={csrf}&action=token_create&label=deploy&expires_days=30"),
    )
    .await;
    let page = html(&r);
    let admin_token = page
        .split("id=\"token\" readonly value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string();
    assert!(admin_token.starts_with("msa_"), "{page}");
    let write = app
        .send(
            Method::POST,
            "/api/v1/orgs",
            Some(&admin_token),
            Some(serde_json::json!({"name": "Made by a script"})),
        )
        .await;
    assert_eq!(write.status, StatusCode::CREATED, "{:?}", write.body);
    let listed = html(&get(&app, "/console/apps", Some(&cookie)).await);
    assert!(
        listed.contains("<td>deploy</td>") && !listed.contains(&admin_token),
        "shown once"
    );
    let token_id = listed
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string();
    let r = post_form(
        &app,
        "/console/apps",
        Some(&cookie),
        &format!("csrf={csrf}&action=token_revoke&token={token_id}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let after = app
        .send(Method::GET, "/api/v1/orgs", Some(&admin_token), None)
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    // Only a Customer Cloud Admin manages them.
    let ian = session(&app, "ian").await;
    assert_eq!(
        get(&app, "/console/apps", Some(&ian)).await.status,
        StatusCode::FORBIDDEN
    );
    app.finish().await;
}

async fn roles_and_local_users_are_added_in_the_console(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ada", AdminRole::CustomerCloudAdmin).await;
    let cookie = session(&app, "ada").await;
    let page = html(&get(&app, "/console/roles", Some(&cookie)).await);
    assert!(page.contains("<td>Desktop User</td>"), "{page}");
    assert!(
        !page.contains("aria-label=\"Delete Desktop User\""),
        "standard roles stay"
    );
    let csrf = csrf_of(&page);
    let post = |form: String| {
        let (app, cookie) = (&app, &cookie);
        async move { post_form(app, "/console/roles", Some(cookie), &form).await }
    };
    let r = post(format!(
        "csrf={csrf}&action=create&name=Reviewer&description=Reads+reports"
    ))
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = html(&get(&app, "/console/roles", Some(&cookie)).await);
    assert!(
        page.contains("<td>Reviewer</td><td>Reads reports</td>"),
        "{page}"
    );
    let r = post(format!("csrf={csrf}&action=create&name=reviewer")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(html(&r).contains("role=\"alert\""));
    let roles = app.muster.list_roles(app.env.id).await.unwrap_or_default();
    let id = |name: &str| {
        roles
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.id.to_string())
            .unwrap_or_default()
    };
    // A role in use (a default of the root organization) cannot go.
    let r = post(format!(
        "csrf={csrf}&action=delete&role={}",
        id("Desktop User")
    ))
    .await;
    assert_ne!(r.status, StatusCode::SEE_OTHER);
    assert!(html(&r).contains("role=\"alert\""));
    // Renamed; a standard role keeps its name; a name in use is refused.
    let r = post(format!(
        "csrf={csrf}&action=rename&role={}&new_name=Auditor&new_description=Reads+every+report",
        id("Reviewer")
    ))
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = html(&get(&app, "/console/roles", Some(&cookie)).await);
    assert!(
        page.contains("<td>Auditor</td><td>Reads every report</td>")
            && !page.contains("<td>Reviewer</td>"),
        "{page}"
    );
    let r = post(format!(
        "csrf={csrf}&action=rename&role={}&new_name=Desktop+Users",
        id("Desktop User")
    ))
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("keeps its name"));
    let r = post(format!(
        "csrf={csrf}&action=rename&role={}&new_name=desktop+user",
        id("Reviewer")
    ))
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = post(format!("csrf={csrf}&action=delete&role={}", id("Reviewer"))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!html(&get(&app, "/console/roles", Some(&cookie)).await).contains("Auditor"));

    // A local user, from the Users page.
    let r = post_form(
        &app,
        "/console/users/new",
        Some(&cookie),
        &format!(
            "csrf={csrf}&userName=loc%40example.com&displayName=Lo+Cal&email=loc%40example.com"
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    let to = r.header("location").unwrap_or_default().to_string();
    let page = html(&get(&app, &to, Some(&cookie)).await);
    assert!(page.contains("local (made by an administrator)"), "{page}");
    assert!(page.contains("<td>Lo Cal</td>"));
    // Edited from its page.
    let r = post_form(
        &app,
        &to,
        Some(&cookie),
        &format!("csrf={csrf}&action=edit&displayName=Lou+Cal&email=lou%40example.com"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = html(&get(&app, &to, Some(&cookie)).await);
    assert!(
        page.contains("<td>Lou Cal</td>") && page.contains("lou@example.com"),
        "{page}"
    );
    let r = post_form(
        &app,
        "/console/users/new",
        Some(&cookie),
        &format!("csrf={csrf}&userName=LOC%40example.com"),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let page = html(&r);
    assert!(
        page.contains("role=\"alert\"") && page.contains("value=\"LOC@example.com\""),
        "{page}"
    );
    app.finish().await;
}

async fn administrators_and_their_sessions_are_managed(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ada", AdminRole::CustomerCloudAdmin).await;
    let cookie = session(&app, "ada").await;
    let page = html(&get(&app, "/console/admins", Some(&cookie)).await);
    let csrf = csrf_of(&page);
    let post = |form: String| {
        let (app, cookie) = (&app, &cookie);
        async move { post_form(app, "/console/admins", Some(cookie), &form).await }
    };
    // Add an administrator; the passwords must match.
    let r = post(format!("csrf={csrf}&action=create&username=ian&role=identity_management_admin&password={PASSWORD}&password2=other-password-x")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("the two passwords differ"));
    assert!(html(&r).contains("value=\"ian\""), "the username is kept");
    let r = post(format!("csrf={csrf}&action=create&username=ian&role=identity_management_admin&password={PASSWORD}&password2={PASSWORD}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    let ian_cookie = session(&app, "ian").await;
    assert_eq!(
        get(&app, "/console/providers", Some(&ian_cookie))
            .await
            .status,
        StatusCode::OK
    );
    let admins = app.muster.list_admins(app.env.id).await.unwrap_or_default();
    let id_of = |name: &str| {
        admins
            .iter()
            .find(|a| a.username == name)
            .map(|a| a.id.to_string())
            .unwrap_or_default()
    };
    // Ada sees Ian's session and ends it.
    let page = html(&get(&app, "/console/admins", Some(&cookie)).await);
    assert!(
        page.contains("<td>ian</td><td>Identity Management Administrator</td>"),
        "{page}"
    );
    assert!(page.contains("ada (you)"));
    let sessions = app
        .muster
        .live_sessions(app.env.id)
        .await
        .unwrap_or_default();
    let ian_session = sessions
        .iter()
        .find(|(_, a)| a.username == "ian")
        .map(|(s, _)| s.id.to_string())
        .unwrap_or_default();
    let r = post(format!("csrf={csrf}&action=end&session={ian_session}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = get(&app, "/console/providers", Some(&ian_cookie)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the session is over");
    // A new role ends Ian's sessions at once, and applies at the next sign-in.
    let ian_cookie = session(&app, "ian").await;
    let r = post(format!(
        "csrf={csrf}&action=role&admin={}&role=audit_log_viewer",
        id_of("ian")
    ))
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        get(&app, "/console/providers", Some(&ian_cookie))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let ian_cookie = session(&app, "ian").await;
    assert_eq!(
        get(&app, "/console/providers", Some(&ian_cookie))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // The last Customer Cloud Admin stays one.
    let r = post(format!(
        "csrf={csrf}&action=role&admin={}&role=audit_log_viewer",
        id_of("ada")
    ))
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("last Customer Cloud Admin"));
    let r = post(format!("csrf={csrf}&action=remove&admin={}", id_of("ada"))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Removing Ian ends his session and his sign-in.
    let r = post(format!("csrf={csrf}&action=remove&admin={}", id_of("ian"))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        get(&app, "/console/sync-log", Some(&ian_cookie))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        sign_in(&app, "ian", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Each step is in the sync log, by Ada.
    let log = app
        .muster
        .query_sync_log(
            app.env.id,
            &muster_core::store::LogQuery {
                action: Some("admin.".into()),
                ..Default::default()
            },
            None,
            50,
        )
        .await
        .unwrap_or_default()
        .0;
    let actions: Vec<&str> = log.iter().map(|(_, e)| e.action.as_str()).collect();
    for a in [
        "admin.created",
        "admin.session_ended",
        "admin.role_changed",
        "admin.removed",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    app.finish().await;
}

async fn webhooks_are_managed_in_the_console(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ada", AdminRole::CustomerCloudAdmin).await;
    let cookie = session(&app, "ada").await;
    let page = html(&get(&app, "/console/webhooks", Some(&cookie)).await);
    assert!(page.contains("No webhook endpoint yet"), "{page}");
    let csrf = csrf_of(&page);
    let post = |form: String| {
        let (app, cookie) = (&app, &cookie);
        async move { post_form(app, "/console/webhooks", Some(cookie), &form).await }
    };
    // Into the local network: refused, with the reason, the form kept.
    let r = post(format!(
        "csrf={csrf}&action=create&url=http%3A%2F%2F127.0.0.1%3A9000%2Fhook&types=user."
    ))
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("private addresses are refused"));
    let r = post(format!("csrf={csrf}&action=create&url=https%3A%2F%2Fhooks.example.com%2Fmuster&types=user.%2Cgroup.")).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(
        page.contains("shows it only once") && page.contains("whsec_"),
        "{page}"
    );
    let page = html(&get(&app, "/console/webhooks", Some(&cookie)).await);
    assert!(!page.contains("whsec_"), "shown once");
    assert!(page.contains("https://hooks.example.com/muster") && page.contains("user., group."));
    let id = page
        .split("name=\"webhook\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string();
    let r = post(format!("csrf={csrf}&action=toggle&webhook={id}&on=0")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(html(&get(&app, "/console/webhooks", Some(&cookie)).await).contains("<td>off</td>"));
    let r = post(format!("csrf={csrf}&action=replay&webhook={id}&after=999")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("replay after a seq from"));
    let r = post(format!("csrf={csrf}&action=replay&webhook={id}&after=0")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let details = html(&get(&app, &format!("/console/webhooks/{id}"), Some(&cookie)).await);
    assert!(
        details.contains("No delivery yet") && details.contains("seq 0"),
        "{details}"
    );
    // From the endpoint's page: a test event, and one event again (which must exist).
    let at = format!("/console/webhooks/{id}");
    let r = post_form(
        &app,
        &at,
        Some(&cookie),
        &format!("csrf={csrf}&action=test"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("A test event is queued"), "{}", html(&r));
    let r = post_form(
        &app,
        &at,
        Some(&cookie),
        &format!("csrf={csrf}&action=redeliver&seq=4242"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(html(&r).contains("no event 4242"), "{}", html(&r));
    let r = post_form(&app, &at, Some(&cookie), "csrf=forged&action=test").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let log = app
        .muster
        .query_sync_log(
            app.env.id,
            &muster_core::store::LogQuery {
                action: Some("webhook.test_sent".into()),
                ..Default::default()
            },
            None,
            50,
        )
        .await
        .unwrap_or_default()
        .0;
    assert_eq!(log.len(), 1, "one test event, the forged post refused");
    let r = post(format!("csrf={csrf}&action=delete&webhook={id}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        get(&app, &format!("/console/webhooks/{id}"), Some(&cookie))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    app.finish().await;
}

/// A provider turns off 3 of its 10 users with the guard at "more than 10% and 2 users": every
/// page carries the banner; the guard page lists the held users; Restore brings them back and
/// the banner goes. An Audit Log Viewer sees the banner without the link.
async fn a_held_mass_deactivation_is_bannered_and_restored_in_the_console(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ada", AdminRole::CustomerCloudAdmin).await;
    admin(&app, "aud", AdminRole::AuditLogViewer).await;
    let cookie = session(&app, "ada").await;
    let p = app.provider("Okta").await;
    app.muster
        .set_provider_guard(
            app.env.id,
            p.id,
            &muster_core::notify::guard::GuardInput {
                min_users: Some(2),
                ..Default::default()
            },
            &Actor::System,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(app.create_user(&p, &format!("h{i}@example.com")).await);
    }
    for id in &ids[..3] {
        app.patch(
            &p,
            &format!("/Users/{id}"),
            serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    }
    let overview = html(&get(&app, "/console", Some(&cookie)).await);
    assert!(
        overview.contains("Deactivations from Okta are held"),
        "{overview}"
    );
    let guard = format!("/console/providers/{}/guard", p.id);
    assert!(overview.contains(&guard));
    let viewer = session(&app, "aud").await;
    let seen = html(&get(&app, "/console/sync-log", Some(&viewer)).await);
    assert!(seen.contains("Deactivations from Okta are held") && !seen.contains(&guard));
    let providers = html(&get(&app, "/console/providers", Some(&cookie)).await);
    assert!(providers.contains(">held</a>"), "{providers}");

    let page = html(&get(&app, &guard, Some(&cookie)).await);
    assert!(page.contains("Deactivations are held") && page.contains("Deactivations pending (3)"));
    assert!(page.contains("h0@example.com") && page.contains("h2@example.com"));
    let csrf = csrf_of(&page);
    let r = post_form(
        &app,
        &guard,
        Some(&cookie),
        &format!("csrf={csrf}&action=settings&enabled=on&percent=0"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("the percentage is 1 to 100"));
    let r = post_form(
        &app,
        &guard,
        Some(&cookie),
        &format!("csrf={csrf}&action=restore"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = html(
        &get(
            &app,
            &format!("{guard}?done=restore&restored=3"),
            Some(&cookie),
        )
        .await,
    );
    assert!(
        page.contains("Restored 3 users") && page.contains("Not holding"),
        "{page}"
    );
    assert!(
        !page.contains("Deactivations from Okta are held"),
        "the banner is gone"
    );
    let r = post_form(
        &app,
        &guard,
        Some(&cookie),
        &format!("csrf={csrf}&action=release"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "nothing to release");
    app.finish().await;
}

/// Any administrator sets their own address and report preference; a bad address is refused
/// with the reason and nothing changes.
async fn administrators_set_their_own_notifications(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "aud", AdminRole::AuditLogViewer).await;
    let cookie = session(&app, "aud").await;
    let page = html(&get(&app, "/console/notifications", Some(&cookie)).await);
    assert!(page.contains("No SMTP server is configured"));
    assert!(
        page.contains(r#"value="never" checked"#),
        "audit log viewers start at Never"
    );
    let csrf = csrf_of(&page);
    let r = post_form(
        &app,
        "/console/notifications",
        Some(&cookie),
        &format!("csrf={csrf}&action=save&email=not+an+address&report=daily"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("is not an email address"));
    let r = post_form(
        &app,
        "/console/notifications",
        Some(&cookie),
        &format!("csrf={csrf}&action=save&email=aud%40example.com&report=errors"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("Saved."));
    let a = app
        .muster
        .list_admins(app.env.id)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.username == "aud")
        .unwrap_or_else(|| panic!("aud"));
    assert_eq!(a.email.as_deref(), Some("aud@example.com"));
    assert_eq!(a.report, muster_core::model::ReportPreference::Errors);
    let r = post_form(
        &app,
        "/console/notifications",
        Some(&cookie),
        "csrf=forged&action=save&email=x%40y.z&report=daily",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    app.finish().await;
}

/// The overview: each provider's last 24 hours (users created, changed, turned off, errors with
/// the most frequent, pending deactivations), for the roles that open Identity Management only.
async fn the_overview_shows_each_providers_last_day(b: Backend) {
    let app = TestApp::new(b).await;
    admin(&app, "ada", AdminRole::CustomerCloudAdmin).await;
    admin(&app, "alv", AdminRole::AuditLogViewer).await;
    let cookie = session(&app, "ada").await;
    let empty = html(&get(&app, "/console", Some(&cookie)).await);
    assert!(empty.contains("No provisioning provider yet"), "{empty}");
    let p = app.provider("Okta").await;
    app.provider("Entra").await;
    let ana = app.create_user(&p, "ana@example.com").await;
    app.create_user(&p, "ben@example.com").await;
    let r = app
        .patch(
            &p,
            &format!("/Users/{ana}"),
            serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for _ in 0..2 {
        let r = app.get(&p, "/Users?filter=nosuch%20eq%201").await;
        assert_eq!(r.status.as_u16(), 400);
    }
    let page = html(&get(&app, "/console", Some(&cookie)).await);
    let row = |name: &str| {
        let start = page
            .find(&format!(">{name}</a></td>"))
            .unwrap_or_else(|| panic!("{name}: {page}"));
        let end = page[start..]
            .find("</tr>")
            .map(|e| start + e)
            .unwrap_or(page.len());
        page[start..end].to_string()
    };
    let okta = row("Okta");
    let cells: Vec<&str> = okta.split("<td>").skip(1).collect();
    // Last request, created, updated, turned off, errors, pending, state.
    // The last request's time, in a <time> element that console.js shows in the reader's zone.
    assert!(cells[0].starts_with("<time datetime=\"20"), "{okta}");
    assert_eq!(&cells[1][..1], "2", "two users created: {okta}");
    assert!(cells[3].starts_with('1'), "Ana blocked: {okta}");
    assert!(
        cells[4].contains(&format!(
            "/console/sync-log?provider={}&amp;result=error\">2</a>",
            p.id
        )),
        "{okta}"
    );
    assert!(
        cells[4].contains("invalidFilter") || cells[4].contains("(2)"),
        "{okta}"
    );
    assert!(
        cells[5].contains(">1</a>"),
        "Ana's deactivation pending: {okta}"
    );
    assert!(cells[6].starts_with("OK"), "{okta}");
    let entra = row("Entra").replace('\n', "");
    assert!(
        entra.contains("<td>never</td><td>0</td><td>0</td><td>0</td><td>0</td><td>0</td>"),
        "{entra}"
    );
    // An audit log viewer does not open Identity Management, so sees no provider figures.
    let alv = session(&app, "alv").await;
    let page = html(&get(&app, "/console", Some(&alv)).await);
    assert!(!page.contains("Provisioning, the last 24 hours"), "{page}");
    app.finish().await;
}

/// Addresses no route answers: Muster's root leads to the console, a console page typed with a
/// trailing slash to the page without it (its query kept), anything else is the console's 404
/// page; under `/api/v1` the answer is the API's JSON error, `/api/v1/` included.
#[tokio::test]
async fn unrouted_addresses_lead_somewhere_or_say_not_found() {
    let app = TestApp::new(Backend::Sqlite).await;
    let r = get(&app, "/", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/console"));
    for (from, to) in [
        ("/console/", "/console"),
        ("/console/users/", "/console/users"),
        (
            "/console/sync-log/?result=error",
            "/console/sync-log?result=error",
        ),
    ] {
        let r = get(&app, from, None).await;
        assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT, "{from}");
        assert_eq!(r.header("location"), Some(to), "{from}");
    }
    // Only what reads: a POST to a trailing slash is not redirected.
    let r = app.send(Method::POST, "/console/users/", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for path in ["/nope", "/console/nope", "/api"] {
        let r = get(&app, path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{path}"
        );
        let page = r.body.as_str().unwrap_or_default();
        assert!(page.contains("There is no such page."), "{path}: {page}");
    }
    for path in ["/api/v1/", "/api/v1/nope"] {
        let r = get(&app, path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        assert_eq!(r.body["error"]["code"], "not_found", "{path}");
    }
    app.finish().await;
}
