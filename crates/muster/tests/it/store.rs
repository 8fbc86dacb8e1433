//! The store suite: the same checks on SQLite and on PostgreSQL, through the store traits.

use muster_core::error::{StoreError, Unique};
use muster_core::ids::{EnvironmentId, GroupId, OrgId, ProviderId, UserId};
use muster_core::model::{
    Environment, GroupRecord, Org, OrgStatus, Provider, UserRecord, UserStatus,
};
use muster_core::store::{Cond, Order, OrderKey, Page, UserQuery};
use muster_core::Timestamp;
use serde_json::{json, Map, Value};

use crate::on_both;
use crate::support::{postgres_reachable, Backend, TestDb};
use sqlx::Connection;

on_both!(
    environments_never_mix,
    unique_rules_are_reported,
    versions_guard_updates,
    membership_rows_are_idempotent,
    rollback_leaves_nothing,
    concurrent_transactions_commit_or_roll_back_alone,
    lookups_read_what_the_writer_wrote,
    references_are_enforced,
    moves_in_bulk_skip_users_changed_meanwhile,
    deleting_a_large_group_removes_every_membership,
    the_org_trees_token_moves_with_every_change_and_never_comes_back,
    users_are_searched_by_the_name_they_are_shown_as
);

struct Seed {
    env: EnvironmentId,
    org: OrgId,
    provider: ProviderId,
}

async fn seed(tx: &mut Box<dyn muster_core::store::Tx>, slug: &str) -> Seed {
    let now = Timestamp(1);
    let env = Environment {
        id: EnvironmentId::new(),
        slug: slug.into(),
        name: slug.into(),
        created_at: now,
    };
    tx.insert_environment(&env)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let org = Org {
        environment_id: env.id,
        id: OrgId::new(),
        parent_id: None,
        name: "Root".into(),
        status: OrgStatus::Active,
        own_default_roles: true,
        created_at: now,
        updated_at: now,
    };
    tx.insert_org(&org).await.unwrap_or_else(|e| panic!("{e}"));
    let provider = Provider {
        environment_id: env.id,
        id: ProviderId::new(),
        name: "Okta".into(),
        deactivation_delay_secs: 900,
        created_at: now,
        updated_at: now,
        last_sync_at: None,
    };
    tx.insert_provider(&provider)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Seed {
        env: env.id,
        org: org.id,
        provider: provider.id,
    }
}

fn user(s: &Seed, name: &str) -> UserRecord {
    let mut resource = Map::new();
    resource.insert("userName".into(), json!(name));
    UserRecord {
        environment_id: s.env,
        id: UserId::new(),
        provider_id: Some(s.provider),
        user_name: name.into(),
        external_id: None,
        display_name: None,
        scim_active: true,
        status: UserStatus::Active,
        org_id: s.org,
        legal_hold: false,
        changed_outside: false,
        resource: resource.into(),
        version: 1,
        created_at: Timestamp(10),
        updated_at: Timestamp(10),
        removed_at: None,
        deactivate_at: None,
    }
}

fn group(s: &Seed, name: &str) -> GroupRecord {
    GroupRecord {
        environment_id: s.env,
        id: GroupId::new(),
        provider_id: s.provider,
        display_name: name.into(),
        external_id: None,
        resource: Map::new(),
        version: 1,
        created_at: Timestamp(10),
        updated_at: Timestamp(10),
    }
}

async fn environments_never_mix(b: Backend) {
    let db = TestDb::new(b).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let one = seed(&mut tx, "one").await;
    let two = seed(&mut tx, "two").await;
    let u1 = user(&one, "same@example.com");
    let u2 = user(&two, "same@example.com");
    tx.insert_user(&u1).await.unwrap_or_else(|e| panic!("{e}"));
    tx.insert_user(&u2)
        .await
        .unwrap_or_else(|e| panic!("the same userName in another environment: {e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let mut r = store.read().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        r.find_user(one.env, u2.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "by id across environments"
    );
    assert_eq!(
        r.find_user_by_name(one.env, "same@example.com")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|u| u.id),
        Some(u1.id)
    );
    assert_eq!(
        r.find_user_by_name(two.env, "same@example.com")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|u| u.id),
        Some(u2.id)
    );
    assert!(r
        .find_provider(one.env, two.provider)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    assert_eq!(
        r.count_users(one.env, one.provider, None)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        1
    );
    assert_eq!(
        r.count_users(one.env, two.provider, None)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        0
    );
    assert!(r
        .existing_user_ids(one.env, one.provider, &[u2.id])
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
    let cond = Cond::Or(Box::new(Cond::Id(u1.id.0)), Box::new(Cond::Id(u2.id.0)));
    let listed = r
        .list_users(
            one.env,
            one.provider,
            Some(&cond),
            muster_core::store::Order::CREATED,
            Page {
                offset: 0,
                limit: 10,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.iter().map(|u| u.id).collect::<Vec<_>>(), vec![u1.id]);
    drop(r);
    db.drop_db().await;
}

async fn unique_rules_are_reported(b: Backend) {
    let db = TestDb::new(b).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "u").await;
    tx.insert_user(&user(&s, "Case@Example.com"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.insert_group(&group(&s, "Sales"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let e = tx.insert_user(&user(&s, "case@example.COM")).await.err();
    assert!(
        matches!(e, Some(StoreError::Conflict(Unique::UserName))),
        "{e:?}"
    );
    drop(tx);
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let e = tx.insert_group(&group(&s, "SALES")).await.err();
    assert!(
        matches!(e, Some(StoreError::Conflict(Unique::GroupName))),
        "{e:?}"
    );
    drop(tx);
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let dup = Provider {
        id: ProviderId::new(),
        ..tx.find_provider(s.env, s.provider)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("provider"))
    };
    let e = tx.insert_provider(&dup).await.err();
    assert!(
        matches!(e, Some(StoreError::Conflict(Unique::ProviderName))),
        "{e:?}"
    );
    drop(tx);
    db.drop_db().await;
}

async fn versions_guard_updates(b: Backend) {
    let db = TestDb::new(b).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "v").await;
    let mut u = user(&s, "v@example.com");
    tx.insert_user(&u).await.unwrap_or_else(|e| panic!("{e}"));
    u.version = 2;
    u.display_name = Some("Second".into());
    assert!(tx
        .update_user(&u, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}")));
    u.version = 3;
    u.display_name = Some("Stale".into());
    assert!(
        !tx.update_user(&u, 1)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        "a stale version is refused"
    );
    let stored = tx
        .find_user(s.env, u.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("user"));
    assert_eq!(stored.display_name.as_deref(), Some("Second"));
    assert_eq!(stored.version, 2);
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    db.drop_db().await;
}

async fn membership_rows_are_idempotent(b: Backend) {
    let db = TestDb::new(b).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "m").await;
    let users: Vec<UserRecord> = (0..3)
        .map(|i| user(&s, &format!("m{i}@example.com")))
        .collect();
    for u in &users {
        tx.insert_user(u).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let g = group(&s, "G");
    tx.insert_group(&g).await.unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
    let added = tx
        .add_members(s.env, g.id, &ids[..2], Timestamp(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(added.len(), 2);
    let added = tx
        .add_members(s.env, g.id, &ids, Timestamp(6))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        added,
        vec![ids[2]],
        "members already present are left alone"
    );
    let removed = tx
        .remove_members(s.env, g.id, &[ids[0], UserId::new()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(removed, vec![ids[0]]);
    let mut now = tx
        .member_ids(s.env, g.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    now.sort();
    let mut want = vec![ids[1], ids[2]];
    want.sort();
    assert_eq!(now, want);
    let groups = tx
        .groups_of_users(s.env, &ids)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(groups.len(), 2);
    assert!(tx
        .delete_group(s.env, g.id)
        .await
        .unwrap_or_else(|e| panic!("{e}")));
    assert!(tx
        .groups_of_users(s.env, &ids)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    db.drop_db().await;
}

async fn rollback_leaves_nothing(b: Backend) {
    let db = TestDb::new(b).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "r").await;
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    tx.insert_user(&user(&s, "ghost@example.com"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(tx); // no commit
    let mut r = store.read().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(r
        .find_user_by_name(s.env, "ghost@example.com")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    drop(r);
    db.drop_db().await;
}

/// Both migration folders hold the same versions, so the schemas cannot drift apart.
#[test]
fn migration_versions_match() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../muster-store/migrations");
    let versions = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(|e| e.ok())
            .map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .split('_')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    let sqlite = versions("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, versions("postgres"));
}

/// Many write transactions at once (on SQLite several share one COMMIT): each committed one is
/// readable as soon as its commit returns, and one that is dropped, or whose request is
/// cancelled halfway, leaves nothing while the others' work stays.
async fn concurrent_transactions_commit_or_roll_back_alone(b: Backend) {
    let db = TestDb::new(b).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = std::sync::Arc::new(seed(&mut tx, "g").await);
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for k in 0..90usize {
        let (store, s) = (store.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("batch{k}@example.com");
            let work = async {
                let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
                tx.insert_user(&user(&s, &name))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                match k % 3 {
                    0 => tx.commit().await.unwrap_or_else(|e| panic!("{e}")),
                    1 => drop(tx),
                    _ => {
                        // Still working when the request goes away (below).
                        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
                    }
                }
            };
            if k % 3 == 2 {
                // Cancelled while it holds the transaction, or still waits for it.
                let cut = tokio::time::timeout(std::time::Duration::from_millis(20), work).await;
                assert!(cut.is_err(), "task {k} should have been cut off");
                return;
            }
            work.await;
            if k % 3 == 0 {
                // Acknowledged means committed: a reader sees it now.
                let mut r = store.read().await.unwrap_or_else(|e| panic!("{e}"));
                let seen = r
                    .find_user_by_name(s.env, &name)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(seen.is_some(), "{name} committed but not readable");
            }
        }));
    }
    for (k, task) in tasks.into_iter().enumerate() {
        task.await.unwrap_or_else(|e| panic!("task {k}: {e}"));
    }
    let mut r = store.read().await.unwrap_or_else(|e| panic!("{e}"));
    for k in 0..90usize {
        let found = r
            .find_user_by_name(s.env, &format!("batch{k}@example.com"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.is_some(), k % 3 == 0, "user {k}");
    }
    drop(r);
    if b == Backend::Sqlite {
        // Requests waiting together shared commits.
        let mut text = String::new();
        store.render_metrics(&mut text);
        let value = |name: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        let commits = value("muster_db_commit_seconds_count");
        let committed = value("muster_db_committed_transactions_total");
        assert!(committed >= 31.0, "{committed} transactions committed");
        assert!(
            commits < committed,
            "{commits} commits for {committed} transactions: no commit was shared"
        );
    }
    // The writer still works after all that.
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    tx.insert_user(&user(&s, "after@example.com"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    db.drop_db().await;
}

/// Index lookups on a read connection (on SQLite, run on the caller's thread by a second
/// connection, not through sqlx) return exactly what the write connection reads back: every
/// column type, nulls and non-nulls, for each lookup the read paths use.
async fn lookups_read_what_the_writer_wrote(b: Backend) {
    let db = TestDb::new(b).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "lookups").await;
    let plain = user(&s, "plain@example.com");
    let mut full = user(&s, "Full@Example.com");
    full.external_id = Some("00u-full".into());
    full.display_name = Some("Full Name \u{e9}\u{4e16}".into());
    full.scim_active = false;
    full.status = UserStatus::Blocked;
    full.legal_hold = true;
    full.changed_outside = true;
    full.version = 7;
    full.created_at = Timestamp(1_700_000_000_123_456);
    full.updated_at = Timestamp(1_700_000_000_654_321);
    full.deactivate_at = Some(Timestamp(1_800_000_000_000_000));
    let mut resource = std::mem::take(&mut full.resource).into_map();
    resource.insert(
        "emails".into(),
        json!([{"value": "Shared@Example.com", "primary": true}]),
    );
    resource.insert("nested".into(), json!({"a": [1, 2.5, null, true, "x"]}));
    full.resource = resource.into();
    for u in [&plain, &full] {
        tx.insert_user(u).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let (g1, mut g2) = (group(&s, "Beta"), group(&s, "Alpha"));
    g2.external_id = Some("grp-2".into());
    for g in [&g1, &g2] {
        tx.insert_group(g).await.unwrap_or_else(|e| panic!("{e}"));
        tx.add_members(s.env, g.id, &[full.id], Timestamp(20))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));

    let by_name = Cond::UserNameKey("full@example.com".into());
    let by_email = Cond::EmailKey("shared@example.com".into());
    let order = Order {
        key: OrderKey::Created,
        descending: false,
    };
    let page = Page {
        offset: 0,
        limit: 100,
    };
    let inline_reads = |store: &std::sync::Arc<dyn muster_core::store::Store>| {
        let mut text = String::new();
        store.render_metrics(&mut text);
        text.lines()
            .find(|l| l.starts_with("muster_db_inline_statement_seconds_count"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = inline_reads(&store);
    // The same lookups through the writer (sqlx on both databases) and through a reader.
    let mut answers = Vec::new();
    for read in [false, true] {
        let mut tx = match read {
            true => store.read().await,
            false => store.write().await,
        }
        .unwrap_or_else(|e| panic!("{e}"));
        let found = (
            tx.find_user(s.env, full.id).await,
            tx.find_user(s.env, plain.id).await,
            tx.find_user(s.env, UserId::new()).await,
            tx.find_user_by_name(s.env, "full@example.com").await,
            tx.find_user_by_external_id(s.env, s.provider, "00u-full")
                .await,
            tx.list_users(s.env, s.provider, Some(&by_name), order, page)
                .await,
            tx.list_users(s.env, s.provider, Some(&by_email), order, page)
                .await,
            tx.count_users(s.env, s.provider, Some(&by_name)).await,
            tx.groups_of_users(s.env, &[full.id]).await,
            tx.find_group(s.env, g2.id).await,
            tx.find_group_by_name(s.env, s.provider, "beta").await,
        );
        answers.push(format!("{found:?}"));
        if !read {
            let (one, other, none, named, external, listed, emailed, counted, groups, g, gn) =
                found;
            let one = one.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(one.as_ref(), Some(&full));
            assert_eq!(other.unwrap_or_else(|e| panic!("{e}")), Some(plain.clone()));
            assert_eq!(none.unwrap_or_else(|e| panic!("{e}")), None);
            assert_eq!(named.unwrap_or_else(|e| panic!("{e}")), one);
            assert_eq!(external.unwrap_or_else(|e| panic!("{e}")), one);
            assert_eq!(listed.unwrap_or_else(|e| panic!("{e}")), vec![full.clone()]);
            assert_eq!(
                emailed.unwrap_or_else(|e| panic!("{e}")),
                vec![full.clone()]
            );
            assert_eq!(counted.unwrap_or_else(|e| panic!("{e}")), 1);
            let groups = groups.unwrap_or_else(|e| panic!("{e}"));
            let names: Vec<&str> = groups.iter().map(|(_, g)| g.display.as_str()).collect();
            assert_eq!(names, ["Alpha", "Beta"]);
            assert_eq!(g.unwrap_or_else(|e| panic!("{e}")), Some(g2.clone()));
            assert_eq!(gn.unwrap_or_else(|e| panic!("{e}")), Some(g1.clone()));
        }
        drop(tx);
    }
    assert_eq!(
        answers[0], answers[1],
        "a reader's lookups differ from the writer's"
    );
    if b == Backend::Sqlite {
        // The writer runs every statement on the caller's thread, and the reader its lookups
        // (eleven calls, twelve statements each time): none went through sqlx.
        let ran = inline_reads(&store) - before;
        assert!(ran >= 24, "{ran} statements ran on the caller's thread");
    } else {
        assert_eq!(inline_reads(&store), 0);
    }
    db.drop_db().await;
}

/// SQLite's writer never waits for a lock on a runtime thread: a write that finds the database
/// held by another connection (another process, such as the CLI) waits off the thread and
/// proceeds when the lock is released. On a single-threaded runtime, waiting on the thread
/// would keep the holder from ever committing.
#[tokio::test]
async fn a_write_waits_for_another_process_without_blocking_the_runtime() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (one, other) = (db.open().await.shared(), db.open().await.shared());
    let mut tx = one.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "locks").await;
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));

    let mut holder = one.write().await.unwrap_or_else(|e| panic!("{e}"));
    holder
        .insert_user(&user(&s, "first@example.com"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = user(&s, "second@example.com");
    let waiter = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut tx = other.write().await?;
        let waited = started.elapsed();
        tx.insert_user(&second).await?;
        tx.commit().await?;
        Ok::<_, muster_core::error::StoreError>(waited)
    });
    // The waiter is parked, not spinning on this (only) thread: the holder carries on.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the second writer did not wait");
    holder.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let waited = waiter
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("the waiting write failed: {e}"));
    assert!(
        waited >= std::time::Duration::from_millis(250),
        "{waited:?}"
    );
    let mut r = one.read().await.unwrap_or_else(|e| panic!("{e}"));
    for name in ["first@example.com", "second@example.com"] {
        assert!(r
            .find_user_by_name(s.env, name)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some());
    }
    drop(r);
    db.drop_db().await;
}

/// PostgreSQL's planner statistics are refreshed only for tables that hold rows: an empty table
/// analyzed would be planned as empty (a scan of the whole table for every lookup, kept as the
/// connections' generic plans while it fills), where one never analyzed is planned through its
/// indexes. Once it holds rows, a refresh counts them.
#[tokio::test]
async fn statistics_leave_empty_tables_unanalyzed() {
    if !postgres_reachable().await {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.open().await.shared();
    let reltuples = |table: &'static str| {
        let url = db.url.clone();
        async move {
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let (n,): (f32,) = sqlx::query_as("select reltuples from pg_class where relname = $1")
                .bind(table)
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            n
        }
    };
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "stats").await;
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(store.maintain().await.unwrap_or_else(|e| panic!("{e}")), 0);
    assert_eq!(
        reltuples("user_account").await,
        -1.0,
        "an empty table was analyzed"
    );
    assert_eq!(
        reltuples("org").await,
        1.0,
        "a table with rows was not analyzed"
    );

    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    for i in 0..300 {
        tx.insert_user(&user(&s, &format!("u{i}@example.com")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    store.maintain().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reltuples("user_account").await, 300.0);
    db.drop_db().await;
}

/// The token of an environment's organization tree (SQLite): the tree is read with it, left out
/// when the caller holds the current one, and every change to an organization, a default role or
/// a role moves it (the triggers of migration 12). A token seen inside a transaction that rolled back
/// is not given to the next change; another environment's changes leave it alone.
async fn the_org_trees_token_moves_with_every_change_and_never_comes_back(b: Backend) {
    let db = TestDb::new(b).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "tree").await;
    let other = seed(&mut tx, "elsewhere").await;
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let token = |known: Option<i64>| {
        let store = store.clone();
        async move {
            let mut r = store.write().await.unwrap_or_else(|e| panic!("{e}"));
            let (_, read) = r
                .rules_and_org_tree(s.env, s.provider, known)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            drop(r);
            read
        }
    };
    let first = token(None).await;
    if b == Backend::Postgres {
        // PostgreSQL keeps no token: the tree is read every time.
        assert_eq!(first.version, None);
        assert_eq!(first.tree.map(|t| t.orgs.len()), Some(1));
        db.drop_db().await;
        return;
    }
    let v1 = first.version.unwrap_or_else(|| panic!("no token"));
    assert_eq!(
        first.tree.map(|t| t.orgs.len()),
        Some(1),
        "the tree is read"
    );
    assert!(
        token(Some(v1)).await.tree.is_none(),
        "the tree is left out for its own token"
    );
    assert!(
        token(Some(v1 ^ 1)).await.tree.is_some(),
        "another token reads the tree"
    );

    let now = Timestamp(2);
    let role = muster_core::model::Role {
        environment_id: s.env,
        id: muster_core::ids::RoleId::new(),
        name: "Auditor".into(),
        description: String::new(),
        builtin: false,
        created_at: now,
    };
    let mut seen = vec![v1];
    let mut changed = |read: muster_core::store::OrgTreeRead, what: &str| {
        let v = read
            .version
            .unwrap_or_else(|| panic!("no token after {what}"));
        assert!(!seen.contains(&v), "{what}: the token did not move");
        assert!(read.tree.is_some(), "{what}: the tree was not read again");
        seen.push(v);
        v
    };
    // Each change in a transaction of its own.
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    tx.insert_role(&role)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let v = changed(token(Some(v1)).await, "a role added");
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    tx.set_org_default_roles(s.env, s.org, &[role.id])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let v = changed(token(Some(v)).await, "default roles set");
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let mut renamed = role.clone();
    renamed.name = "Auditor (read-only)".into();
    tx.update_role(&renamed)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let v = changed(token(Some(v)).await, "a role renamed");

    // Another environment's change leaves this token alone.
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let mut org = muster_core::model::Org {
        environment_id: other.env,
        id: OrgId::new(),
        parent_id: Some(other.org),
        name: "Sales".into(),
        status: OrgStatus::Active,
        own_default_roles: false,
        created_at: now,
        updated_at: now,
    };
    tx.insert_org(&org).await.unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        token(Some(v)).await.tree.is_none(),
        "moved by another environment"
    );

    // A change rolled back: the token seen inside it is never the token of a later tree.
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    org.environment_id = s.env;
    org.parent_id = Some(s.org);
    org.id = OrgId::new();
    tx.insert_org(&org).await.unwrap_or_else(|e| panic!("{e}"));
    let (_, inside) = tx
        .rules_and_org_tree(s.env, s.provider, Some(v))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rolled_back = inside.version.unwrap_or_else(|| panic!("no token"));
    assert_ne!(rolled_back, v);
    drop(tx);
    assert!(
        token(Some(v)).await.tree.is_none(),
        "the rolled-back change moved the token"
    );
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    org.id = OrgId::new();
    org.name = "Support".into();
    tx.insert_org(&org).await.unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let after = token(Some(rolled_back)).await;
    assert_ne!(
        after.version,
        Some(rolled_back),
        "a rolled-back token was given again"
    );
    assert_eq!(after.tree.map(|t| t.orgs.len()), Some(2));
    db.drop_db().await;
}

/// The database refuses a row that points at nothing (on SQLite, foreign keys are a setting of
/// each connection: the writer must have it on).
async fn references_are_enforced(b: Backend) {
    let db = TestDb::new(b).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "refs").await;
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let mut orphan = user(&s, "orphan@example.com");
    orphan.org_id = OrgId::new();
    assert!(
        tx.insert_user(&orphan).await.is_err(),
        "a user in an organization that does not exist was saved"
    );
    drop(tx);
    let mut r = store.read().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(r
        .find_user_by_name(s.env, "orphan@example.com")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    drop(r);
    db.drop_db().await;
}

/// A re-apply's round moves its users in one statement, each only if its version is still the
/// one the round read: a user changed meanwhile stays where its own change put it.
async fn moves_in_bulk_skip_users_changed_meanwhile(b: Backend) {
    let db = TestDb::new(b).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "moves").await;
    let target = Org {
        environment_id: s.env,
        id: OrgId::new(),
        parent_id: Some(s.org),
        name: "Target".into(),
        status: OrgStatus::Active,
        own_default_roles: false,
        created_at: Timestamp(1),
        updated_at: Timestamp(1),
    };
    tx.insert_org(&target)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let users: Vec<UserRecord> = (0..5)
        .map(|i| user(&s, &format!("move{i}@example.com")))
        .collect();
    for u in &users {
        tx.insert_user(u).await.unwrap_or_else(|e| panic!("{e}"));
    }
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    // User 2 was read at version 1 but has changed since (version 2 stands for that).
    let moves: Vec<(UserId, OrgId, i64)> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.id, target.id, if i == 2 { 2 } else { 1 }))
        .collect();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let mut moved = tx
        .move_users(s.env, &moves, Timestamp(50))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    moved.sort();
    let mut want: Vec<UserId> = users
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, u)| u.id)
        .collect();
    want.sort();
    assert_eq!(moved, want);
    let mut r = store.read().await.unwrap_or_else(|e| panic!("{e}"));
    for (i, u) in users.iter().enumerate() {
        let now = r
            .find_user(s.env, u.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("user {i} vanished"));
        match i {
            2 => assert_eq!((now.org_id, now.version), (s.org, 1), "user {i}"),
            _ => assert_eq!(
                (now.org_id, now.version, now.updated_at),
                (target.id, 2, Timestamp(50)),
                "user {i}"
            ),
        }
    }
    drop(r);
    db.drop_db().await;
}

/// A group's memberships are deleted in rounds of 10,000: a group one past a round loses all.
async fn deleting_a_large_group_removes_every_membership(b: Backend) {
    let db = TestDb::new(b).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "large").await;
    let mut ids = Vec::new();
    for i in 0..10_001 {
        let u = user(&s, &format!("large{i}@example.com"));
        tx.insert_user(&u).await.unwrap_or_else(|e| panic!("{e}"));
        ids.push(u.id);
    }
    let (big, other) = (group(&s, "Big"), group(&s, "Other"));
    for g in [&big, &other] {
        tx.insert_group(g).await.unwrap_or_else(|e| panic!("{e}"));
    }
    for chunk in ids.chunks(1000) {
        tx.add_members(s.env, big.id, chunk, Timestamp(5))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    tx.add_members(s.env, other.id, &ids[..3], Timestamp(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(tx
        .delete_group(s.env, big.id)
        .await
        .unwrap_or_else(|e| panic!("{e}")));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let mut r = store.read().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(r
        .member_ids(s.env, big.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
    assert_eq!(
        r.member_ids(s.env, other.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        3,
        "another group's members stay"
    );
    drop(r);
    db.drop_db().await;
}

/// PostgreSQL: a write transaction dropped without COMMIT (its request failed or was cancelled)
/// is rolled back at once, not when its connection is next lent, so its locks do not outlive
/// it. The connection that comes back to the pool first is held here while another
/// transaction writes the same userName: that write would wait on the first transaction's row
/// for as long as it stayed open.
#[tokio::test]
async fn a_dropped_transaction_is_rolled_back_at_once() {
    if !postgres_reachable().await {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "dropped").await;
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));

    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    tx.insert_user(&user(&s, "held@example.com"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(tx);
    let held = store.read().await.unwrap_or_else(|e| panic!("{e}"));
    let again = async {
        let mut tx = store.write().await?;
        tx.insert_user(&user(&s, "held@example.com")).await?;
        tx.commit().await
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), again)
        .await
        .unwrap_or_else(|_| panic!("the dropped transaction still held its row after 10 s"))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(held);
    let mut r = store.read().await.unwrap_or_else(|e| panic!("{e}"));
    let found = r
        .find_user_by_name(s.env, "held@example.com")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(found.is_some(), "the second write committed");
    drop(r);
    db.drop_db().await;
}

/// PostgreSQL: connections the server closed (a restart, an administrator's
/// `pg_terminate_backend`) are replaced. The request that finds the first of them closed fails;
/// the pool then checks its other connections before lending them, so the requests after it
/// succeed, rather than one failing for each connection the pool held.
#[tokio::test]
async fn connections_the_server_closed_are_replaced() {
    if !postgres_reachable().await {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.open().await.shared();
    let env = EnvironmentId::new();
    // Three connections, each used once, then idle in the pool.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut r = store.read().await.unwrap_or_else(|e| panic!("{e}"));
        r.find_user_by_name(env, "nobody@example.com")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        held.push(r);
    }
    drop(held);
    let mut admin = sqlx::PgConnection::connect(&db.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let muster_backends = "from pg_stat_activity where datname = current_database() \
                           and application_name = 'muster' and pid <> pg_backend_pid()";
    // With a timeout, pg_terminate_backend returns once the backend has exited.
    let (killed,): (i64,) = sqlx::query_as(&format!(
        "select count(*) filter (where pg_terminate_backend(pid, 10000)) {muster_backends}"
    ))
    .fetch_one(&mut admin)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(killed >= 3, "terminated {killed} of Muster's connections");

    for attempt in 0..5 {
        let read = async {
            let mut r = store.read().await?;
            r.find_user_by_name(env, "nobody@example.com").await
        };
        if let Err(e) = read.await {
            assert_eq!(
                attempt, 0,
                "request {attempt} after the restart failed: {e}"
            );
        }
    }
    let _ = admin.close().await;
    db.drop_db().await;
}

/// Administrators' user searches match the userName and the name a user is shown as (its
/// `displayName`, else `name.formatted`, else the given and family names), written with each
/// user; migration 13 computes the same for the users stored before it.
async fn users_are_searched_by_the_name_they_are_shown_as(b: Backend) {
    let db = TestDb::new(b).await;
    let store = db.open().await.shared();
    let mut tx = store.write().await.unwrap_or_else(|e| panic!("{e}"));
    let s = seed(&mut tx, "search").await;
    let named = |name: &str, display: Option<&str>, resource: Value| {
        let mut u = user(&s, name);
        u.display_name = display.map(str::to_string);
        if let Value::Object(mut m) = resource {
            m.insert("userName".into(), json!(name));
            u.resource = m.into();
        }
        u
    };
    let users = [
        named(
            "ana@example.com",
            None,
            json!({"name": {"givenName": "Ana", "familyName": "Lima"}}),
        ),
        named(
            "bo@example.com",
            Some("Bo Smith"),
            json!({"name": {"givenName": "Robert", "familyName": "Smith"}}),
        ),
        named(
            "cy@example.com",
            None,
            json!({"name": {"formatted": "Dr. Cy Young", "givenName": "Cy"}}),
        ),
        named(
            "di@example.com",
            None,
            json!({"name": {"familyName": "Dane"}}),
        ),
        named("ed@example.com", None, json!({})),
        named(
            "asa@example.com",
            None,
            json!({"name": {"givenName": "Åsa", "familyName": "Öberg"}}),
        ),
    ];
    for u in &users {
        tx.insert_user(u).await.unwrap_or_else(|e| panic!("{e}"));
    }
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let search = |text: &'static str| {
        let store = store.clone();
        async move {
            let mut tx = store.read().await.unwrap_or_else(|e| panic!("{e}"));
            let q = UserQuery {
                text: Some(text.into()),
                ..UserQuery::default()
            };
            let mut found: Vec<String> = tx
                .query_users(s.env, &q, None, 100)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|u| u.user_name)
                .collect();
            found.sort();
            found
        }
    };
    assert_eq!(search("lima").await, ["ana@example.com"]);
    assert_eq!(search("ANA LIMA").await, ["ana@example.com"]);
    assert_eq!(search("bo smith").await, ["bo@example.com"]);
    // The displayName is the name shown: the given name behind it is not searched.
    assert!(search("robert").await.is_empty());
    assert_eq!(search("dr. cy").await, ["cy@example.com"]);
    assert_eq!(search("dane").await, ["di@example.com"]);
    assert_eq!(search("öberg").await, ["asa@example.com"]);
    // The userName still matches, and `%` is a character, not a wildcard.
    assert_eq!(search("ed@").await, ["ed@example.com"]);
    assert!(search("%").await.is_empty());
    // The migration's backfill computes the same key as Muster writes (ASCII names: SQLite's
    // lower() folds ASCII only).
    let backfill = {
        let text = match b {
            Backend::Sqlite => {
                include_str!("../../../muster-store/migrations/sqlite/0013_user_shown_name.sql")
            }
            Backend::Postgres => {
                include_str!("../../../muster-store/migrations/postgres/0013_user_shown_name.sql")
            }
        };
        let at = text.find("update user_account").unwrap_or_default();
        text[at..].to_string()
    };
    // The same statements through either backend's own connection.
    macro_rules! keys_through {
        ($conn:ty, $url:expr, $sql:expr) => {{
            let mut c = <$conn>::connect($url)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if let Some(sql) = $sql {
                for statement in ["update user_account set shown_name_key = ''", sql] {
                    sqlx::query(statement)
                        .execute(&mut c)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            }
            let rows: Vec<(String, String)> = sqlx::query_as(
                "select user_name, shown_name_key from user_account order by user_name",
            )
            .fetch_all(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            rows
        }};
    }
    let keys = |sql: Option<String>| {
        let url = db.url.clone();
        async move {
            let rows = match b {
                Backend::Sqlite => keys_through!(sqlx::SqliteConnection, &url, sql.as_deref()),
                Backend::Postgres => keys_through!(sqlx::PgConnection, &url, sql.as_deref()),
            };
            rows.into_iter()
                .filter(|(name, _)| name != "asa@example.com")
                .collect::<Vec<_>>()
        }
    };
    let written = keys(None).await;
    assert_eq!(
        written.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>(),
        ["ana lima", "bo smith", "dr. cy young", "dane", ""]
    );
    assert_eq!(keys(Some(backfill)).await, written);
    drop(store);
    db.drop_db().await;
}
