//! Operating Muster: online backups of the SQLite database.

use std::process::Command;

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{Backend, TestApp};

fn muster_with_db(url: &str, dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_muster"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUSTER_DATA_DIR", dir)
        .env("MUSTER_DATABASE_URL", url);
    c
}

/// `muster backup` copies the database while provisioning writes to it; the copy opens, holds
/// every user committed before the backup started, and passes an integrity check.
#[tokio::test]
async fn backup_while_provisioning_runs() {
    let app = TestApp::new(Backend::Sqlite).await;
    let p = app.provider("Okta").await;
    for i in 0..200 {
        app.create_user(&p, &format!("before{i}@example.com")).await;
    }
    let dir = std::env::temp_dir().join(format!("muster-bk-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let copy = dir.join("copy.db");
    // Writers keep going while the backup runs.
    let writer = {
        let (router, token, base) = (app.router.clone(), p.token.clone(), p.base.clone());
        tokio::spawn(async move {
            use tower::ServiceExt;
            let mut ok = 0;
            for i in 0..300 {
                let req = axum::http::Request::builder()
                    .method("POST")
                    .uri(format!("{base}/Users"))
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/scim+json")
                    .body(axum::body::Body::from(
                        json!({"userName": format!("during{i}@example.com")}).to_string(),
                    ))
                    .unwrap_or_else(|e| panic!("{e}"));
                let Ok(r) = router.clone().oneshot(req).await;
                if r.status() == StatusCode::CREATED {
                    ok += 1;
                }
            }
            ok
        })
    };
    let url = app.db.url.clone();
    let (d, c) = (dir.clone(), copy.clone());
    let out = tokio::task::spawn_blocking(move || {
        muster_with_db(&url, &d)
            .args(["backup", "--to"])
            .arg(&c)
            .output()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("integrity check"));
    assert_eq!(
        writer.await.unwrap_or_default(),
        300,
        "writers were not stopped"
    );

    // The copy is a working Muster database.
    let copy_url = format!("sqlite://{}", copy.display());
    let listed = muster_with_db(&copy_url, &dir)
        .args(["user", "list", "--json", "--limit", "1000"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let users: serde_json::Value =
        serde_json::from_slice(&listed.stdout).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = users
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["userName"].as_str())
        .collect();
    assert!(
        (0..200).all(|i| names.contains(&format!("before{i}@example.com").as_str())),
        "every user committed before the backup is in it"
    );
    // It refuses to overwrite, and says so (the file named without `--to` as well).
    let again = muster_with_db(&app.db.url, &dir)
        .args(["backup"])
        .arg(&copy)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    // A directory that is not there is named, in words rather than the database's.
    let nowhere = dir.join("no-such-dir").join("muster.db");
    let out = muster_with_db(&app.db.url, &dir)
        .args(["backup", "--to"])
        .arg(&nowhere)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-dir does not exist") && !err.contains("code: 14"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    app.finish().await;
}

/// On PostgreSQL the command points to pg_dump instead of pretending.
#[tokio::test]
async fn backup_on_postgres_points_to_pg_dump() {
    let app = TestApp::new(Backend::Postgres).await;
    let dir = std::env::temp_dir().join(format!("muster-bk-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let out = muster_with_db(&app.db.url, &dir)
        .args(["backup", "--to"])
        .arg(dir.join("x.db"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    let _ = std::fs::remove_dir_all(&dir);
    app.finish().await;
}
