//! The deactivation lifecycle with a controlled clock: block now, deactivate at exactly the due
//! time, cancel, reactivate, legal hold, restart, and several processes at once.

use std::sync::Arc;

use muster_core::model::{Actor, UserStatus};
use muster_core::{Muster, Settings};
use serde_json::json;

use crate::on_both;
use crate::support::{Backend, TestApp};

on_both!(
    deactivation_runs_at_the_due_time,
    delay_zero_and_legal_hold,
    every_path_logs_blocked_before_deactivated,
    clearing_legal_hold_schedules_the_postponed_deactivation,
    several_processes_deactivate_each_user_once
);

async fn user(app: &TestApp, id: &str) -> muster_core::model::UserRecord {
    let mut tx = app
        .muster
        .store
        .read()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.find_user(app.env.id, id.parse().unwrap_or_default())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("user {id}"))
}

async fn actions(app: &TestApp, id: &str) -> Vec<String> {
    let mut tx = app
        .muster
        .store
        .read()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut log = tx
        .recent_log(app.env.id, 10_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    log.reverse();
    log.into_iter()
        .filter(|e| e.subject_id.as_deref() == Some(id))
        .map(|e| e.action.to_string())
        .collect()
}

fn patch_active(active: bool) -> serde_json::Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": active}]})
}

async fn deactivation_runs_at_the_due_time(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let id = app.create_user(&p, "leaver@example.com").await;
    let t0 = app.clock_now();
    app.patch(&p, &format!("/Users/{id}"), patch_active(false))
        .await;
    let u = user(&app, &id).await;
    assert_eq!(u.status, UserStatus::Blocked, "blocked at once");
    assert_eq!(
        u.deactivate_at,
        Some(t0.plus_secs(900)),
        "default delay: 15 minutes"
    );
    app.clock.advance_secs(899);
    assert_eq!(
        app.muster
            .run_due_deactivations(app.clock_now())
            .await
            .unwrap_or(99),
        0,
        "not before the due time"
    );
    assert_eq!(user(&app, &id).await.status, UserStatus::Blocked);
    app.clock.advance_secs(1);
    assert_eq!(
        app.muster
            .run_due_deactivations(app.clock_now())
            .await
            .unwrap_or(99),
        1,
        "at exactly the due time"
    );
    let u = user(&app, &id).await;
    assert_eq!(u.status, UserStatus::Deactivated);
    assert_eq!(u.deactivate_at, None);
    assert_eq!(
        app.muster
            .run_due_deactivations(app.clock_now())
            .await
            .unwrap_or(99),
        0,
        "once"
    );
    // Turned back on after the due time: reactivated.
    app.patch(&p, &format!("/Users/{id}"), patch_active(true))
        .await;
    assert_eq!(user(&app, &id).await.status, UserStatus::Active);
    assert_eq!(
        actions(&app, &id).await,
        vec![
            "user.created",
            "user.updated",
            "user.blocked",
            "user.deactivated",
            "user.updated",
            "user.reactivated"
        ]
    );

    // Turned back on before the due time: unblocked, the deactivation cancelled.
    let other = app.create_user(&p, "wobbly@example.com").await;
    app.patch(&p, &format!("/Users/{other}"), patch_active(false))
        .await;
    app.clock.advance_secs(300);
    app.patch(&p, &format!("/Users/{other}"), patch_active(true))
        .await;
    app.clock.advance_secs(3600);
    assert_eq!(
        app.muster
            .run_due_deactivations(app.clock_now())
            .await
            .unwrap_or(99),
        0
    );
    assert_eq!(user(&app, &other).await.status, UserStatus::Active);

    // A changed delay applies to deactivations scheduled afterwards; the schedule survives a
    // restart (a new service over the same database) and runs when overdue.
    app.muster
        .update_provider(
            app.env.id,
            p.id,
            None,
            Some(7 * 86_400),
            &Actor::Admin { name: "t".into() },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let later = app.create_user(&p, "later@example.com").await;
    let t1 = app.clock_now();
    assert_eq!(
        app.delete(&p, &format!("/Users/{later}"))
            .await
            .status
            .as_u16(),
        204
    );
    assert_eq!(
        user(&app, &later).await.deactivate_at,
        Some(t1.plus_secs(7 * 86_400))
    );
    let restarted = Muster::new(
        app.store.shared(),
        Arc::new(app.clock.clone()),
        Settings::default(),
    );
    app.clock.advance_secs(30 * 86_400);
    assert_eq!(
        restarted
            .run_due_deactivations(app.clock_now())
            .await
            .unwrap_or(99),
        1
    );
    assert_eq!(user(&app, &later).await.status, UserStatus::Deactivated);
    assert!(actions(&app, &later)
        .await
        .contains(&"user.removed".to_string()));
    app.finish().await;
}

async fn delay_zero_and_legal_hold(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Entra").await;
    let admin = Actor::Admin { name: "t".into() };
    app.muster
        .update_provider(app.env.id, p.id, None, Some(0), &admin)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = app.create_user(&p, "now@example.com").await;
    app.patch(&p, &format!("/Users/{id}"), patch_active(false))
        .await;
    assert_eq!(
        user(&app, &id).await.status,
        UserStatus::Deactivated,
        "a delay of 0 deactivates at once"
    );
    assert_eq!(
        actions(&app, &id).await,
        [
            "user.created",
            "user.updated",
            "user.blocked",
            "user.deactivated"
        ],
        "blocked, then deactivated, as with any delay"
    );
    assert!(
        app.muster
            .update_provider(app.env.id, p.id, None, Some(91 * 86_400), &admin)
            .await
            .is_err(),
        "at most 90 days"
    );
    assert!(app
        .muster
        .update_provider(app.env.id, p.id, None, Some(-1), &admin)
        .await
        .is_err());

    // Legal hold: blocked, never deactivated, and the log says why.
    app.muster
        .update_provider(app.env.id, p.id, None, Some(60), &admin)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let held = app.create_user(&p, "held@example.com").await;
    {
        let mut u = user(&app, &held).await;
        let v = u.version;
        u.legal_hold = true;
        u.version += 1;
        let mut tx = app
            .muster
            .store
            .write()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(tx.update_user(&u, v).await.unwrap_or(false));
        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    }
    app.patch(&p, &format!("/Users/{held}"), patch_active(false))
        .await;
    app.clock.advance_secs(365 * 86_400);
    app.muster
        .run_due_deactivations(app.clock_now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let u = user(&app, &held).await;
    assert_eq!(u.status, UserStatus::Blocked);
    assert_eq!(u.deactivate_at, None);
    let mut tx = app
        .muster
        .store
        .read()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let log = tx
        .recent_log(app.env.id, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let why = log.iter().find(|e| {
        e.action == "user.deactivation_held" && e.subject_id.as_deref() == Some(held.as_str())
    });
    assert!(why.is_some_and(|e| e.details["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("legal hold")));
    drop(tx);
    app.finish().await;
}

/// Three services, each with its own connections to one database (as three `muster serve`
/// processes would have), run the scheduler at the same moment over 200 due users: each user is
/// deactivated exactly once, with one log entry.
async fn several_processes_deactivate_each_user_once(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.unguarded_provider("Okta").await;
    let mut ids = Vec::new();
    for i in 0..200 {
        let id = app.create_user(&p, &format!("due{i}@example.com")).await;
        app.patch(&p, &format!("/Users/{id}"), patch_active(false))
            .await;
        ids.push(id);
    }
    app.clock.advance_secs(901);
    let mut stores = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let store = app.db.open().await;
        let m = Muster::new(
            store.shared(),
            Arc::new(app.clock.clone()),
            Settings::default(),
        );
        let now = app.clock_now();
        handles.push(tokio::spawn(
            async move { m.run_due_deactivations(now).await },
        ));
        stores.push(store);
    }
    let mut total = 0;
    for h in handles {
        total += h
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        total, 200,
        "every user deactivated, by exactly one of the processes"
    );
    let mut tx = app
        .muster
        .store
        .read()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let log = tx
        .recent_log(app.env.id, 100_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for id in &ids {
        let n = log
            .iter()
            .filter(|e| {
                e.action == "user.deactivated" && e.subject_id.as_deref() == Some(id.as_str())
            })
            .count();
        assert_eq!(n, 1, "{id}");
    }
    drop(tx);
    for s in stores {
        s.close().await;
    }
    app.finish().await;
}

/// The provider's delay decides only when the deactivation comes: with a delay of 0, of 60
/// seconds, and by DELETE, the sync log records the user blocked and then deactivated.
async fn every_path_logs_blocked_before_deactivated(b: Backend) {
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let admin = Actor::Admin { name: "t".into() };
    for (delay, by_delete) in [(0, false), (60, false), (0, true), (60, true)] {
        app.muster
            .update_provider(app.env.id, p.id, None, Some(delay), &admin)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let id = app
            .create_user(&p, &format!("leaver-{delay}-{by_delete}@example.com"))
            .await;
        if by_delete {
            app.delete(&p, &format!("/Users/{id}")).await;
        } else {
            app.patch(&p, &format!("/Users/{id}"), patch_active(false))
                .await;
        }
        app.clock.advance_secs(61);
        app.muster
            .run_due_deactivations(app.clock_now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(user(&app, &id).await.status, UserStatus::Deactivated);
        let seen: Vec<String> = actions(&app, &id)
            .await
            .into_iter()
            .filter(|a| a == "user.blocked" || a == "user.deactivated")
            .collect();
        assert_eq!(
            seen,
            ["user.blocked", "user.deactivated"],
            "delay {delay}, delete {by_delete}"
        );
    }
    app.finish().await;
}

/// A user on legal hold whom the provider turns off stays blocked; when the hold is cleared,
/// the provider's delay runs from that moment, and the scheduler deactivates them when it ends.
async fn clearing_legal_hold_schedules_the_postponed_deactivation(b: Backend) {
    use muster_core::users::directory::UserAction;
    let app = TestApp::new(b).await;
    let p = app.provider("Okta").await;
    let admin = Actor::Admin { name: "t".into() };
    app.muster
        .update_provider(app.env.id, p.id, None, Some(600), &admin)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let held = app.create_user(&p, "held@example.com").await;
    let kept = app.create_user(&p, "kept@example.com").await;
    for id in [&held, &kept] {
        let id = id.parse().unwrap_or_else(|e| panic!("{e}"));
        app.muster
            .act_on_user(app.env.id, id, UserAction::LegalHold(true), &admin)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    app.patch(&p, &format!("/Users/{held}"), patch_active(false))
        .await;
    // `kept` is blocked by an administrator, not turned off by the provider.
    let kept_id = kept.parse().unwrap_or_else(|e| panic!("{e}"));
    app.muster
        .act_on_user(app.env.id, kept_id, UserAction::Block, &admin)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    app.clock.advance_secs(86_400);
    for id in [&held, &kept] {
        let id = id.parse().unwrap_or_else(|e| panic!("{e}"));
        app.muster
            .act_on_user(app.env.id, id, UserAction::LegalHold(false), &admin)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let cleared_at = app.clock_now();
    let u = user(&app, &held).await;
    assert_eq!(u.status, UserStatus::Blocked);
    assert_eq!(
        u.deactivate_at,
        Some(cleared_at.plus_secs(600)),
        "the provider's delay, from the moment the hold is cleared"
    );
    assert_eq!(user(&app, &kept).await.deactivate_at, None);
    app.clock.advance_secs(599);
    assert_eq!(
        app.muster
            .run_due_deactivations(app.clock_now())
            .await
            .unwrap_or(99),
        0
    );
    app.clock.advance_secs(1);
    assert_eq!(
        app.muster
            .run_due_deactivations(app.clock_now())
            .await
            .unwrap_or(99),
        1
    );
    assert_eq!(user(&app, &held).await.status, UserStatus::Deactivated);
    assert_eq!(user(&app, &kept).await.status, UserStatus::Blocked);
    let log = actions(&app, &held).await;
    let tail: Vec<&str> = log.iter().rev().take(2).rev().map(String::as_str).collect();
    assert_eq!(tail, ["user.legal_hold_cleared", "user.deactivated"]);
    app.finish().await;
}
