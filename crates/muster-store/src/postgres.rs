//! PostgreSQL: one pool for reads and writes; transactions at READ COMMITTED, with every
//! read-modify-write guarded by a version check and every insert race by a unique constraint.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use muster_core::error::{StoreError, Unique};
use muster_core::store::{Store, StoreResult, Tx};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

// The shared SQL, compiled for this backend (see common/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "common/mod.rs"]
mod common;

use common::{db_err, DbTx};

/// What makes text compare byte-wise in `order by` (SQLite's default already does).
const BYTEWISE: &str = " collate \"C\"";

/// PostgreSQL has no index hints; its planner keeps statistics.
fn index_hint(_index: &str) -> String {
    String::new()
}

type Db = sqlx::Postgres;
type DbRow = sqlx::postgres::PgRow;

/// PostgreSQL connections all come from the pool: no connection is held outside it.
pub enum Held {}

impl Held {
    fn conn(&mut self) -> Option<&mut sqlx::PgConnection> {
        match *self {}
    }
    fn fast(&mut self, _lookup: bool) -> Option<&mut Fast> {
        match *self {}
    }
    fn is_write(&self) -> bool {
        match *self {}
    }
    fn wrote_events(&mut self) {
        match *self {}
    }
    async fn commit(self) -> StoreResult<()> {
        match self {}
    }
}

/// PostgreSQL runs every statement through sqlx: there is no connection on the caller's thread.
pub enum Fast {}

impl Fast {
    fn exec(&mut self, _: &common::Stmt) -> StoreResult<u64> {
        match *self {}
    }
    fn rows(&mut self, _: &common::Stmt, _: Option<usize>) -> StoreResult<Vec<HeldRow>> {
        match *self {}
    }
    fn lookup<T>(&mut self, _: &common::Stmt, _: common::Decode<T>) -> StoreResult<Vec<T>> {
        match *self {}
    }
}

/// No row comes from anywhere but sqlx.
pub enum HeldRow {}

impl common::Cols for HeldRow {
    fn uuid(&self, _: &str) -> StoreResult<Option<uuid::Uuid>> {
        match *self {}
    }
    fn text(&self, _: &str) -> StoreResult<Option<String>> {
        match *self {}
    }
    fn int(&self, _: &str) -> StoreResult<Option<i64>> {
        match *self {}
    }
    fn flag(&self, _: &str) -> StoreResult<bool> {
        match *self {}
    }
    fn bytes(&self, _: &str) -> StoreResult<Vec<u8>> {
        match *self {}
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

fn classify_unique(message: &str, constraint: Option<&str>) -> Unique {
    crate::unique::classify(constraint.unwrap_or(message))
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db`) with a pool of `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(db_err)?
            .application_name("muster");
        // sqlx pings a connection when it comes back to the pool, so a broken one is dropped
        // there; its default ping before lending one out as well was a round trip per
        // transaction (two per user created), for nothing the first ping had not checked.
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(db_err)?;
        Ok(Self { pool })
    }

    /// Applies pending migrations (serialised across processes by an advisory lock).
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for PgStore {
    async fn write(&self) -> StoreResult<Box<dyn Tx>> {
        let asked = std::time::Instant::now();
        let tx = self.pool.begin().await.map_err(db_err)?;
        crate::stats::WRITE_WAIT.observe(asked.elapsed());
        Ok(Box::new(DbTx::Tx(
            tx,
            std::time::Instant::now(),
            Vec::new(),
        )))
    }

    async fn read(&self) -> StoreResult<Box<dyn Tx>> {
        let asked = std::time::Instant::now();
        let conn = self.pool.acquire().await.map_err(db_err)?;
        crate::stats::READ_WAIT.observe(asked.elapsed());
        Ok(Box::new(DbTx::Conn(conn)))
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(crate::stats::DbMetrics::new(
            "postgres",
            vec![("main", self.pool.size(), self.pool.num_idle())],
        )));
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn maintain(&self) -> StoreResult<()> {
        sqlx::query("analyze user_account, user_email, scim_group, group_member, sync_log, provider_token, org, user_role")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
