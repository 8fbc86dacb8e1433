//! Test fixtures: a fresh database per test (a SQLite file in a temporary directory, or a new
//! PostgreSQL database), the application over it, and helpers to send requests.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use muster_core::ids::ProviderId;
use muster_core::model::{Actor, Environment};
use muster_core::{ManualClock, Muster, Settings, Timestamp};
use muster_store::{AnyStore, SqliteSettings};
use serde_json::Value;
use sqlx::Connection;
use tower::ServiceExt;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("MUSTER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether the PostgreSQL half of the tests can run. Without `MUSTER_TEST_DATABASE_URL` (plain
/// `cargo test` on a laptop), an unreachable server skips those tests with a message; with it (as
/// `scripts/test` and CI set it), an unreachable server fails them, so nothing is skipped silently.
pub async fn postgres_reachable() -> bool {
    let admin = pg_admin_url();
    let asked = std::env::var_os("MUSTER_TEST_DATABASE_URL").is_some();
    let tried = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        sqlx::PgConnection::connect(&admin),
    )
    .await;
    let why = match tried {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            return true;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 5 seconds".to_string(),
    };
    if asked {
        panic!("PostgreSQL at {admin} (MUSTER_TEST_DATABASE_URL) is not reachable: {why}");
    }
    eprintln!(
        "skipped: no PostgreSQL at {admin} ({why}); set MUSTER_TEST_DATABASE_URL to run the PostgreSQL half"
    );
    false
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rfind('/') {
        Some(i) if i > base.find("://").map(|j| j + 2).unwrap_or(0) => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

/// A database of its own for one test.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    dir: Option<PathBuf>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("muster-test-{tag}"));
                std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("temp dir: {e}"));
                let url = format!("sqlite://{}", dir.join("muster.db").display());
                TestDb {
                    backend,
                    url,
                    dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let name = format!("muster_t_{tag}");
                let admin = pg_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at {admin} (set MUSTER_TEST_DATABASE_URL): {e}")
                    });
                sqlx::query(&format!("create database \"{name}\""))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("create database: {e}"));
                let _ = conn.close().await;
                TestDb {
                    backend,
                    url: with_database(&admin, &name),
                    dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    pub async fn open(&self) -> AnyStore {
        let store = AnyStore::connect(&self.url, &SqliteSettings::default(), 8)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate: {e}"));
        store
    }

    /// Removes the database.
    pub async fn drop_db(&self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(name) = &self.pg_name {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                let _ = sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        }
    }
}

/// The application over a fresh database, with a clock the test controls.
pub struct TestApp {
    pub db: TestDb,
    pub store: AnyStore,
    pub muster: Muster,
    pub clock: ManualClock,
    pub env: Environment,
    pub router: Router,
}

/// A response, with its body parsed as JSON (or `Null`).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A provider made for a test: its id, token and SCIM base path.
#[derive(Debug, Clone)]
pub struct TestProvider {
    pub id: ProviderId,
    pub token: String,
    pub base: String,
}

pub const PUBLIC_URL: &str = "https://muster.test";

impl TestApp {
    pub async fn new(backend: Backend) -> TestApp {
        Self::with_limits(backend, muster_web::limits::LimitSettings::default()).await
    }

    /// The application with these rate limits and timeouts.
    pub async fn with_limits(
        backend: Backend,
        limits: muster_web::limits::LimitSettings,
    ) -> TestApp {
        Self::build(backend, limits, |_| {}).await
    }

    /// The application with its settings changed by `change`.
    pub async fn with_settings(backend: Backend, change: impl FnOnce(&mut Settings)) -> TestApp {
        Self::build(
            backend,
            muster_web::limits::LimitSettings::default(),
            change,
        )
        .await
    }

    async fn build(
        backend: Backend,
        limits: muster_web::limits::LimitSettings,
        change: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let db = TestDb::new(backend).await;
        let store = db.open().await;
        let clock = ManualClock::new(Timestamp(1_800_000_000_000_000));
        let mut settings = Settings {
            public_url: PUBLIC_URL.into(),
            max_page_size: 100,
            ..Settings::default()
        };
        change(&mut settings);
        let muster = Muster::new(store.shared(), Arc::new(clock.clone()), settings);
        let env = muster
            .ensure_environment("default")
            .await
            .unwrap_or_else(|e| panic!("environment: {e}"));
        let router = muster_web::router(muster_web::AppState::with_limits(muster.clone(), limits));
        TestApp {
            db,
            store,
            muster,
            clock,
            env,
            router,
        }
    }

    pub async fn finish(self) {
        self.store.close().await;
        self.db.drop_db().await;
    }

    /// A provider whose mass-deactivation guard is off, for tests that turn most users off on
    /// purpose.
    pub async fn unguarded_provider(&self, name: &str) -> TestProvider {
        let p = self.provider(name).await;
        self.muster
            .set_provider_guard(
                self.env.id,
                p.id,
                &muster_core::notify::guard::GuardInput {
                    enabled: Some(false),
                    ..Default::default()
                },
                &Actor::System,
            )
            .await
            .unwrap_or_else(|e| panic!("guard: {e}"));
        p
    }

    pub async fn provider(&self, name: &str) -> TestProvider {
        let created = self
            .muster
            .create_provider(
                self.env.id,
                name,
                &Actor::Admin {
                    name: "test".into(),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("provider: {e}"));
        TestProvider {
            id: created.provider.id,
            token: created.secret,
            base: format!("/scim/v2/{}", created.provider.id),
        }
    }

    /// Sends a request; `token` is sent as a bearer token.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.send_with(method, uri, token, body, &[]).await
    }

    pub async fn send_with(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = match body {
            Some(b) => builder
                .header("content-type", "application/scim+json")
                .body(Body::from(b.to_string())),
            None => builder.body(Body::empty()),
        }
        .unwrap_or_else(|e| panic!("request: {e}"));
        self.raw(req).await
    }

    pub async fn raw(&self, req: Request<Body>) -> Resp {
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e| panic!("router: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("body: {e}"))
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, p: &TestProvider, path: &str) -> Resp {
        self.send(
            Method::GET,
            &format!("{}{path}", p.base),
            Some(&p.token),
            None,
        )
        .await
    }

    pub async fn post(&self, p: &TestProvider, path: &str, body: Value) -> Resp {
        self.send(
            Method::POST,
            &format!("{}{path}", p.base),
            Some(&p.token),
            Some(body),
        )
        .await
    }

    pub async fn put(&self, p: &TestProvider, path: &str, body: Value) -> Resp {
        self.send(
            Method::PUT,
            &format!("{}{path}", p.base),
            Some(&p.token),
            Some(body),
        )
        .await
    }

    pub async fn patch(&self, p: &TestProvider, path: &str, body: Value) -> Resp {
        self.send(
            Method::PATCH,
            &format!("{}{path}", p.base),
            Some(&p.token),
            Some(body),
        )
        .await
    }

    pub async fn delete(&self, p: &TestProvider, path: &str) -> Resp {
        self.send(
            Method::DELETE,
            &format!("{}{path}", p.base),
            Some(&p.token),
            None,
        )
        .await
    }

    /// Creates a user and returns its id.
    pub async fn create_user(&self, p: &TestProvider, user_name: &str) -> String {
        let r = self.post(p, "/Users", serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, "active": true})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().unwrap_or_default().to_string()
    }
}

/// The administration API, called with an administrator token of its own.
pub struct Api<'a> {
    pub app: &'a TestApp,
    pub token: String,
}

impl Api<'_> {
    pub async fn new(app: &TestApp) -> Api<'_> {
        let c = app
            .muster
            .create_admin_token(
                app.env.id,
                "tests",
                None,
                &Actor::Admin { name: "t".into() },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Api {
            app,
            token: c.secret,
        }
    }
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.app
            .send(method, &format!("/api/v1{path}"), Some(&self.token), body)
            .await
    }
    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }
}

/// Asserts a SCIM error response: status, `scimType` (if any), and the error schema.
pub fn assert_scim_error(r: &Resp, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/scim+json"),
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{:?}",
        r.body
    );
    assert_eq!(r.body["status"], status.to_string());
    match scim_type {
        Some(t) => assert_eq!(r.body["scimType"], t, "{:?}", r.body),
        None => assert!(r.body.get("scimType").is_none(), "{:?}", r.body),
    }
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(!detail.is_empty(), "an error needs a detail");
    for leak in [
        "sqlx",
        "SQLITE",
        "syntax error at",
        "constraint failed",
        "panicked",
    ] {
        assert!(!detail.contains(leak), "internal detail leaked: {detail}");
    }
}

/// Runs an async test function on SQLite and on PostgreSQL, as `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                if !$crate::support::postgres_reachable().await {
                    return;
                }
                super::$name($crate::support::Backend::Postgres).await
            }
        }
    )*};
}
