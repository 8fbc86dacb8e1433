//! Notices and the mass-deactivation guard (docs/notifications.md), through the core and the
//! SCIM interface, on both databases: the guard holds a mass deactivation and lets it through on
//! release, restores on request, and stays out of the way below its threshold; the daily report
//! counts what the sync log holds and goes to whom it should; errors go out once per window;
//! the mail queue's messages render as the templates write them. (Sending through a real SMTP
//! server is in `smtp.rs`.)

use muster_core::model::{Actor, AdminRole, Mail, ReportPreference, UserStatus};
use muster_core::notify::kinds;
use muster_core::{Muster, Timestamp};
use serde_json::{json, Value};

use crate::on_both;
use crate::support::{Backend, TestApp, TestProvider};

on_both!(
    the_guard_holds_a_mass_deactivation_until_released,
    the_guard_restores_the_users_it_holds,
    below_the_threshold_the_guard_holds_nothing,
    the_daily_report_counts_the_sync_log_and_follows_preferences,
    a_new_directory_waits_for_the_next_report_time,
    an_error_burst_is_one_email_per_window,
    administrators_hear_of_changes_to_administrators
);

const DELAY: i64 = 900;
const ADMIN: Actor = Actor::System;

async fn app(b: Backend) -> TestApp {
    TestApp::with_settings(b, |s| {
        s.notify.mail_enabled = true;
        s.notify.time_zone = "Europe/Paris".into();
        s.notify.report_at = (7, 0);
    })
    .await
}

/// An administrator with an email address and a report preference.
async fn admin(app: &TestApp, name: &str, role: AdminRole, report: ReportPreference) {
    let a = app
        .muster
        .create_admin(app.env.id, name, "correct horse battery", role, &ADMIN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    app.muster
        .set_admin_notifications(
            app.env.id,
            a.id,
            Some(Some(format!("{name}@example.com"))),
            Some(report),
            &ADMIN,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Every message queued now, taken off the queue (as the mail task would) and marked sent.
async fn drain(m: &Muster) -> Vec<Mail> {
    let mut out = Vec::new();
    while let Some(mail) = m.next_mail().await.unwrap_or_else(|e| panic!("{e}")) {
        m.mail_done(&mail, Ok("250 test".into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        out.push(mail);
    }
    out
}

fn of_kind<'a>(mails: &'a [Mail], kind: &str) -> Vec<&'a Mail> {
    mails.iter().filter(|m| m.kind == kind).collect()
}

/// A provider with `n` users and the deactivation delay; returns their ids.
async fn company(app: &TestApp, n: usize) -> (TestProvider, Vec<String>) {
    let p = app.provider("Okta").await;
    app.muster
        .update_provider(app.env.id, p.id, None, Some(DELAY), &ADMIN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(app.create_user(&p, &format!("u{i}@example.com")).await);
    }
    (p, ids)
}

async fn turn_off(app: &TestApp, p: &TestProvider, ids: &[String]) {
    for id in ids {
        let r = app
            .patch(
                p,
                &format!("/Users/{id}"),
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "path": "active", "value": false}]}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    }
}

async fn statuses(app: &TestApp, ids: &[String]) -> Vec<UserStatus> {
    let mut out = Vec::new();
    for id in ids {
        let uid = id.parse().unwrap_or_else(|e| panic!("{e:?}"));
        out.push(
            app.muster
                .user_detail(app.env.id, uid)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .user
                .status,
        );
    }
    out
}

fn count(s: &[UserStatus], want: UserStatus) -> usize {
    s.iter().filter(|x| **x == want).count()
}

/// 100 users; the provider turns off 30 within the window (more than 10% and 25): all 30 are
/// blocked, none deactivated after the delay, the administrators are told at once; release,
/// and all 30 are deactivated.
async fn the_guard_holds_a_mass_deactivation_until_released(b: Backend) {
    let app = app(b).await;
    admin(
        &app,
        "ada",
        AdminRole::CustomerCloudAdmin,
        ReportPreference::Daily,
    )
    .await;
    admin(
        &app,
        "ian",
        AdminRole::IdentityManagementAdmin,
        ReportPreference::Never,
    )
    .await;
    admin(
        &app,
        "aud",
        AdminRole::AuditLogViewer,
        ReportPreference::Daily,
    )
    .await;
    let (p, ids) = company(&app, 100).await;
    drain(&app.muster).await;
    turn_off(&app, &p, &ids[..30]).await;
    let s = statuses(&app, &ids[..30]).await;
    assert_eq!(
        count(&s, UserStatus::Blocked),
        30,
        "blocked as the delay rule says"
    );

    let g = app
        .muster
        .provider_guard(app.env.id, p.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(g.held_since.is_some(), "tripped");
    assert_eq!(g.held_turned_off, 26, "by the 26th turn-off (more than 25)");
    let mails = drain(&app.muster).await;
    let told: Vec<&str> = of_kind(&mails, kinds::GUARD_TRIPPED)
        .iter()
        .map(|m| m.recipient.as_str())
        .collect();
    assert_eq!(
        told,
        ["ada@example.com", "ian@example.com"],
        "those who manage providers, at once"
    );
    let r = muster_web::mail::render(
        of_kind(&mails, kinds::GUARD_TRIPPED)[0],
        "https://muster.test",
    )
    .unwrap_or_else(|| panic!("renders"));
    assert_eq!(r.subject, "Muster: deactivations from Okta are held");
    assert!(
        r.text
            .contains("turned off 26 of its about 100 active users"),
        "{}",
        r.text
    );
    assert!(r
        .html
        .contains(&format!("https://muster.test/console/providers/{}", p.id)));

    // The delay passes: nothing is deactivated.
    app.clock.advance_secs(DELAY + 60);
    let done = app
        .muster
        .run_due_deactivations(app.muster.now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done, 0);
    let s = statuses(&app, &ids[..30]).await;
    assert_eq!(count(&s, UserStatus::Deactivated), 0);
    let pending = app
        .muster
        .pending_deactivations(app.env.id, p.id, 100)
        .await
        .unwrap_or_default();
    assert_eq!(pending.len(), 30, "the held users");
    let banner = app.muster.held_guards(app.env.id).await.unwrap_or_default();
    assert_eq!(banner.len(), 1);
    let health = app
        .muster
        .provider_health(
            app.env.id,
            &app.muster
                .get_provider(app.env.id, p.id)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(health.health.as_str(), "held");

    // Release: every held deactivation is due, and runs.
    app.muster
        .release_guard(
            app.env.id,
            p.id,
            &Actor::Admin {
                name: "console:ada".into(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let done = app
        .muster
        .run_due_deactivations(app.muster.now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done, 30);
    let s = statuses(&app, &ids).await;
    assert_eq!(count(&s, UserStatus::Deactivated), 30);
    assert_eq!(count(&s, UserStatus::Active), 70);
    // In the sync log, with who released it; and in the event feed.
    let (log, _) = app
        .muster
        .query_sync_log(
            app.env.id,
            &muster_core::store::LogQuery {
                action: Some("provider.".into()),
                ..Default::default()
            },
            None,
            50,
        )
        .await
        .unwrap_or_default();
    let actions: Vec<String> = log.iter().map(|(_, e)| e.action.to_string()).collect();
    assert!(
        actions.contains(&"provider.deactivations_held".to_string()),
        "{actions:?}"
    );
    let released = log
        .iter()
        .find(|(_, e)| e.action == "provider.hold_released")
        .unwrap_or_else(|| panic!("{actions:?}"));
    assert_eq!(
        released.1.actor,
        Actor::Admin {
            name: "console:ada".into()
        }
    );
    let feed = app
        .muster
        .read_events(
            app.env.id,
            &muster_core::events::feed::EventQuery {
                after: Some(0),
                limit: 1000,
                types: vec!["provider.".into()],
                wait: std::time::Duration::ZERO,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let types: Vec<&str> = feed.events.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        types.contains(&"provider.deactivations_held") && types.contains(&"provider.hold_released"),
        "{types:?}"
    );
    // Releasing again is refused with a reason.
    assert!(app
        .muster
        .release_guard(app.env.id, p.id, &ADMIN)
        .await
        .is_err_and(|e| e.to_string().contains("no deactivations held")));
    app.finish().await;
}

/// Restore: the held users are unblocked and their deactivations cancelled; the hold ends.
async fn the_guard_restores_the_users_it_holds(b: Backend) {
    let app = app(b).await;
    let (p, ids) = company(&app, 100).await;
    turn_off(&app, &p, &ids[..30]).await;
    let n = app
        .muster
        .restore_held_users(app.env.id, p.id, &ADMIN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 30);
    let s = statuses(&app, &ids).await;
    assert_eq!(count(&s, UserStatus::Active), 100, "all active again");
    let g = app
        .muster
        .provider_guard(app.env.id, p.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(g.held_since.is_none());
    app.clock.advance_secs(DELAY + 60);
    assert_eq!(
        app.muster
            .run_due_deactivations(app.muster.now())
            .await
            .unwrap_or(99),
        0,
        "nothing left to deactivate"
    );
    // The API shows the guard, and changes it.
    let api = crate::support::Api::new(&app).await;
    let r = api.get(&format!("/providers/{}/guard", p.id)).await;
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["percent"], 10);
    assert_eq!(r.body["minUsers"], 25);
    assert_eq!(r.body["windowMinutes"], 60);
    let r = api
        .patch(&format!("/providers/{}/guard", p.id), json!({"percent": 0}))
        .await;
    crate::api::assert_api_error(&r, 400, "invalid");
    let r = api
        .patch(
            &format!("/providers/{}/guard", p.id),
            json!({"minUsers": 5, "windowMinutes": 30}),
        )
        .await;
    assert_eq!(
        (r.body["minUsers"].clone(), r.body["windowMinutes"].clone()),
        (json!(5), json!(30))
    );
    let r = api
        .post(&format!("/providers/{}/guard/release", p.id), json!({}))
        .await;
    crate::api::assert_api_error(&r, 400, "invalid");
    let r = api.get(&format!("/providers/{}", p.id)).await;
    assert_eq!(r.body["health"]["health"], "healthy", "{:?}", r.body);
    app.finish().await;
}

/// 20 of 100 turned off (more than 10%, not more than 25): nothing held; turned off, the guard
/// does not count at all.
async fn below_the_threshold_the_guard_holds_nothing(b: Backend) {
    let app = app(b).await;
    let (p, ids) = company(&app, 100).await;
    turn_off(&app, &p, &ids[..20]).await;
    app.clock.advance_secs(DELAY + 60);
    let done = app
        .muster
        .run_due_deactivations(app.muster.now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done, 20);
    app.muster
        .set_provider_guard(
            app.env.id,
            p.id,
            &muster_core::notify::guard::GuardInput {
                enabled: Some(false),
                ..Default::default()
            },
            &ADMIN,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    turn_off(&app, &p, &ids[20..60]).await;
    let g = app
        .muster
        .provider_guard(app.env.id, p.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        g.held_since.is_none(),
        "off: 40 more turned off, nothing held"
    );
    app.clock.advance_secs(DELAY + 60);
    assert_eq!(
        app.muster
            .run_due_deactivations(app.muster.now())
            .await
            .unwrap_or(0),
        40
    );
    app.finish().await;
}

/// Counts of the report's period, straight from the sync log.
async fn log_count(app: &TestApp, action: &str, from: Timestamp, to: Timestamp) -> u64 {
    let (rows, _) = app
        .muster
        .query_sync_log(
            app.env.id,
            &muster_core::store::LogQuery {
                action: Some(action.into()),
                outcome: Some(muster_core::model::Outcome::Success),
                since: Some(from),
                until: Some(to),
                ..Default::default()
            },
            None,
            1000,
        )
        .await
        .unwrap_or_default();
    rows.iter().filter(|(_, e)| e.action == action).count() as u64
}

/// The report goes out once at 07:00 Paris time with the day's figures, as the sync log counts
/// them; Daily always, Only on errors when there were errors, Never not at all.
async fn the_daily_report_counts_the_sync_log_and_follows_preferences(b: Backend) {
    let app = app(b).await;
    // 2027-01-15 05:00 UTC, 06:00 in Paris.
    app.clock.set(Timestamp(1_800_000_000_000_000));
    let start =
        jiff::Timestamp::from_microsecond(1_800_000_000_000_000).unwrap_or_else(|e| panic!("{e}"));
    let paris = start
        .in_tz("Europe/Paris")
        .unwrap_or_else(|e| panic!("{e}"));
    let seven = paris
        .date()
        .at(7, 0, 0, 0)
        .in_tz("Europe/Paris")
        .unwrap_or_else(|e| panic!("{e}"))
        .timestamp()
        .as_microsecond();
    let seven = if seven <= 1_800_000_000_000_000 {
        seven + 86_400_000_000
    } else {
        seven
    };
    app.clock.set(Timestamp(seven - 3_600_000_000));
    admin(
        &app,
        "daily",
        AdminRole::CustomerCloudAdmin,
        ReportPreference::Daily,
    )
    .await;
    admin(
        &app,
        "errs",
        AdminRole::CustomerCloudAdmin,
        ReportPreference::Errors,
    )
    .await;
    admin(
        &app,
        "never",
        AdminRole::CustomerCloudAdmin,
        ReportPreference::Never,
    )
    .await;
    let (p, ids) = company(&app, 12).await;
    turn_off(&app, &p, &ids[..3]).await;
    app.post(&p, "/Groups", json!({"displayName": "Sales"}))
        .await;
    let bad = app
        .post(&p, "/Users", json!({"displayName": "no userName"}))
        .await;
    assert_eq!(bad.status.as_u16(), 400);
    drain(&app.muster).await;

    assert!(
        !app.muster
            .run_daily_report(app.env.id)
            .await
            .unwrap_or(true),
        "not 07:00 yet"
    );
    app.clock.set(Timestamp(seven + 1));
    assert!(app
        .muster
        .run_daily_report(app.env.id)
        .await
        .unwrap_or(false));
    assert!(
        !app.muster
            .run_daily_report(app.env.id)
            .await
            .unwrap_or(true),
        "once a day"
    );
    let mails = drain(&app.muster).await;
    let reports = of_kind(&mails, kinds::REPORT);
    let to: Vec<&str> = reports.iter().map(|m| m.recipient.as_str()).collect();
    assert_eq!(
        to,
        ["daily@example.com", "errs@example.com"],
        "errors today: both; never: not"
    );
    let data: &Value = &reports[0].payload;
    let (from, until) = (Timestamp(seven - 86_400_000_000), Timestamp(seven));
    let okta = &data["providers"][0];
    for action in ["user.created", "user.blocked", "group.created"] {
        assert_eq!(
            okta["counts"][action].as_u64().unwrap_or(0),
            log_count(&app, action, from, until).await,
            "{action}"
        );
    }
    assert_eq!(okta["counts"]["user.created"], 12);
    assert_eq!(okta["counts"]["user.blocked"], 3);
    assert_eq!(okta["errors"], 1);
    assert_eq!(okta["pendingTotal"], 3);
    assert_eq!(okta["topErrors"][0][1], 1);
    let r = muster_web::mail::render(reports[0], "https://muster.test")
        .unwrap_or_else(|| panic!("renders"));
    assert_eq!(r.subject, "Muster directory sync report: 1 error");
    assert!(
        r.text.contains("users created: 12") && r.text.contains("users blocked: 3"),
        "{}",
        r.text
    );
    assert!(r.text.contains("deactivations pending: 3"));

    // The next day has no errors: Only on errors hears nothing.
    app.clock.set(Timestamp(seven + 86_400_000_000 + 1));
    assert!(app
        .muster
        .run_daily_report(app.env.id)
        .await
        .unwrap_or(false));
    let mails = drain(&app.muster).await;
    let to: Vec<&str> = of_kind(&mails, kinds::REPORT)
        .iter()
        .map(|m| m.recipient.as_str())
        .collect();
    assert_eq!(to, ["daily@example.com"]);
    app.finish().await;
}

/// A directory set up after the day's report time (the test clock starts at 09:00 in Paris, two
/// hours after it) sends nothing late for that morning; its first report is the next day's.
async fn a_new_directory_waits_for_the_next_report_time(b: Backend) {
    let app = app(b).await;
    admin(
        &app,
        "daily",
        AdminRole::CustomerCloudAdmin,
        ReportPreference::Daily,
    )
    .await;
    let start = 1_800_000_000_000_000; // 2027-01-15 08:00 UTC, 09:00 in Paris
    app.clock.set(Timestamp(start + 3_600_000_000));
    assert!(
        !app.muster
            .run_daily_report(app.env.id)
            .await
            .unwrap_or(true),
        "no report for a morning before the directory existed"
    );
    // 2027-01-16 07:00 in Paris.
    app.clock.set(Timestamp(start + 22 * 3_600_000_000 + 1));
    assert!(app
        .muster
        .run_daily_report(app.env.id)
        .await
        .unwrap_or(false));
    let mails = drain(&app.muster).await;
    assert_eq!(of_kind(&mails, kinds::REPORT).len(), 1);
    app.finish().await;
}

/// Ten errors: one email listing the error once with its count; more errors within the
/// interval wait for it to pass, then go out as one more email.
async fn an_error_burst_is_one_email_per_window(b: Backend) {
    let app = app(b).await;
    admin(
        &app,
        "ada",
        AdminRole::CustomerCloudAdmin,
        ReportPreference::Errors,
    )
    .await;
    admin(
        &app,
        "ned",
        AdminRole::CustomerCloudAdmin,
        ReportPreference::Never,
    )
    .await;
    let p = app.provider("Okta").await;
    for _ in 0..10 {
        app.post(&p, "/Users", json!({"displayName": "no userName"}))
            .await;
    }
    drain(&app.muster).await;
    assert_eq!(
        app.muster.run_error_emails(app.env.id).await.unwrap_or(0),
        1
    );
    assert_eq!(
        app.muster.run_error_emails(app.env.id).await.unwrap_or(9),
        0
    );
    let mails = drain(&app.muster).await;
    let errors = of_kind(&mails, kinds::ERRORS);
    assert_eq!(errors.len(), 1, "one email, to ada only");
    assert_eq!(errors[0].recipient, "ada@example.com");
    assert_eq!(errors[0].payload["total"], 10);
    assert_eq!(
        errors[0].payload["errors"].as_array().map(Vec::len),
        Some(1),
        "listed once"
    );
    let r = muster_web::mail::render(errors[0], "https://muster.test")
        .unwrap_or_else(|| panic!("renders"));
    assert!(r.text.contains("(10 times)"), "{}", r.text);
    assert!(r
        .subject
        .starts_with("Muster: 10 provisioning errors from Okta"));
    // Three more errors, five minutes later: held back until the interval has passed.
    app.clock.advance_secs(300);
    for _ in 0..3 {
        app.post(&p, "/Users", json!({"displayName": "no userName"}))
            .await;
    }
    assert_eq!(
        app.muster.run_error_emails(app.env.id).await.unwrap_or(9),
        0
    );
    app.clock.advance_secs(601);
    assert_eq!(
        app.muster.run_error_emails(app.env.id).await.unwrap_or(0),
        1
    );
    let mails = drain(&app.muster).await;
    assert_eq!(
        of_kind(&mails, kinds::ERRORS)[0].payload["total"],
        3,
        "only the new ones"
    );
    app.finish().await;
}

/// Creating an administrator, changing a role, removing one: every Customer Cloud Admin with an
/// address hears of it, with who did it.
async fn administrators_hear_of_changes_to_administrators(b: Backend) {
    let app = app(b).await;
    admin(
        &app,
        "ada",
        AdminRole::CustomerCloudAdmin,
        ReportPreference::Never,
    )
    .await;
    admin(
        &app,
        "ian",
        AdminRole::IdentityManagementAdmin,
        ReportPreference::Daily,
    )
    .await;
    drain(&app.muster).await;
    let by = Actor::Admin {
        name: "console:ada".into(),
    };
    let eve = app
        .muster
        .create_admin(
            app.env.id,
            "eve",
            "correct horse battery",
            AdminRole::AuditLogViewer,
            &by,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    app.muster
        .set_admin_role(app.env.id, eve.id, AdminRole::CustomerCloudAdmin, &by)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    app.muster
        .remove_admin(app.env.id, eve.id, &by)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mails = drain(&app.muster).await;
    let notices = of_kind(&mails, kinds::ADMIN_CHANGED);
    assert_eq!(
        notices.len(),
        3,
        "to ada (the one Customer Cloud Admin with an address), thrice"
    );
    assert!(notices.iter().all(|m| m.recipient == "ada@example.com"));
    let subjects: Vec<String> = notices
        .iter()
        .filter_map(|m| muster_web::mail::render(m, "https://muster.test"))
        .map(|r| r.subject)
        .collect();
    assert_eq!(
        subjects,
        [
            "Muster: administrator eve was added as Audit Log Viewer",
            "Muster: administrator eve was given the role Customer Cloud Admin (was Audit Log Viewer)",
            "Muster: administrator eve was removed (had the role Customer Cloud Admin)",
        ]
    );
    let r = muster_web::mail::render(notices[0], "https://muster.test")
        .unwrap_or_else(|| panic!("renders"));
    assert!(r.text.contains("by console:ada"), "{}", r.text);
    // A bad address is refused.
    let ada = app
        .muster
        .list_admins(app.env.id)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.username == "ada")
        .unwrap_or_else(|| panic!("ada"));
    assert!(app
        .muster
        .set_admin_notifications(
            app.env.id,
            ada.id,
            Some(Some("not an address".into())),
            None,
            &ADMIN
        )
        .await
        .is_err());
    // The API lists administrators with their address and preference, and sets them.
    let api = crate::support::Api::new(&app).await;
    let r = api.get("/admins").await;
    let listed = r.body["admins"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["username"] == "ada").cloned())
        .unwrap_or_default();
    assert_eq!(listed["email"], "ada@example.com");
    assert_eq!(listed["reportPreference"], "never");
    assert!(
        !r.body.to_string().contains("argon2"),
        "never a password hash"
    );
    let path = format!("/admins/{}", ada.id);
    let r = api
        .patch(&path, json!({"reportPreference": "weekly"}))
        .await;
    crate::api::assert_api_error(&r, 400, "invalid");
    let r = api.patch(&path, json!({"email": "not an address"})).await;
    crate::api::assert_api_error(&r, 400, "invalid");
    let r = api
        .patch(&path, json!({"reportPreference": "errors"}))
        .await;
    assert_eq!(
        (r.body["email"].clone(), r.body["reportPreference"].clone()),
        (json!("ada@example.com"), json!("errors")),
        "the address is kept"
    );
    let r = api.patch(&path, json!({"email": null})).await;
    assert_eq!(r.body["email"], Value::Null, "removed");
    app.finish().await;
}
