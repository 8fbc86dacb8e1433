//! PostgreSQL: one pool for reads and writes; transactions at READ COMMITTED, with every
//! read-modify-write guarded by a version check and every insert race by a unique constraint.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use muster_core::error::{StoreError, Unique};
use muster_core::store::{Store, StoreResult, Tx};
use sqlx::postgres::PgConnectOptions;
use sqlx::Row as _;

use crate::pg_pool::Pool;
pub use crate::pg_pool::WriteTx as PooledTx;

/// A connection lent by the pool, outside a transaction.
pub type PooledConn = crate::pg_pool::Conn;

fn pooled_conn(c: &mut PooledConn) -> &mut sqlx::PgConnection {
    c
}

fn pooled_failed(c: &mut PooledConn, e: &sqlx::Error) {
    c.failed(e);
}

/// The result of a statement run on `conn`, noting a failure on the connection.
fn on<T>(conn: &mut PooledConn, r: Result<T, sqlx::Error>) -> StoreResult<T> {
    r.map_err(|e| {
        pooled_failed(conn, &e);
        db_err(e)
    })
}

/// A listed user's groups as a column of its row (`common/listing.rs`, `USERS_WITH_GROUPS`): a
/// JSON array of `[id, displayName]` pairs, as text, each name by primary key as in
/// `groups_of_users`.
macro_rules! member_of_col {
    () => {
        "cast((select coalesce(json_agg(json_build_array(m.group_id, \
         (select g.display_name from scim_group g \
         where g.group_id = m.group_id and g.environment_id = m.environment_id))), '[]') \
         from group_member m where m.user_id = user_account.user_id \
         and m.environment_id = user_account.environment_id) as text) as member_of"
    };
}

/// The token of an environment's organization tree: PostgreSQL keeps none (see
/// `KEEPS_TREE_VERSION`), and reads the tree with the statement of old.
macro_rules! tree_version {
    () => {
        "cast(null as bigint)"
    };
}

// The shared SQL, compiled for this backend (see common/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "common/mod.rs"]
mod common;

use common::{db_err, DbTx};

/// What makes text compare byte-wise in `order by` (SQLite's default already does).
const BYTEWISE: &str = " collate \"C\"";

/// Whether the database keeps a token of each environment's organization tree
/// (`MappingStore::rules_and_org_tree`): not on PostgreSQL (migration 12 says why).
const KEEPS_TREE_VERSION: bool = false;

/// PostgreSQL runs `insert`, `update` and `delete` inside `with`: a user and its email index
/// rows are written in one statement, a round trip less per create and two per update.
const WRITES_IN_WITH: bool = true;

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
    pool: Pool,
    sequencer: Sequencer,
}

/// Which advisory lock the sequencers of every Muster process on the database take, so one
/// numbers events at a time ("muster_s" in ASCII).
const SEQUENCER_LOCK: i64 = 0x6d75_7374_6572_5f73;

/// The store's handle on its sequencer, which numbers committed events (`common/events.rs`). A
/// transaction that wrote events wakes it after COMMIT; readers of the feed settle through it.
#[derive(Debug, Clone)]
pub struct Sequencer {
    wake: tokio::sync::mpsc::Sender<()>,
    steps: Arc<Steps>,
}

/// One step at a time in this process; the advisory lock orders the processes.
#[derive(Debug)]
struct Steps {
    pool: Pool,
    one: tokio::sync::Mutex<()>,
}

impl Sequencer {
    /// Starts the sequencer's task, which runs until the store's last handle is dropped or its
    /// pool closed. It starts with a step, for events a stopped process left pending.
    fn start(pool: Pool) -> Self {
        // One wake-up kept is enough: the step it starts moves everything committed by then.
        let (wake, mut woken) = tokio::sync::mpsc::channel(1);
        let steps = Arc::new(Steps {
            pool,
            one: tokio::sync::Mutex::new(()),
        });
        let weak = Arc::downgrade(&steps);
        // The first step, for events a stopped process left pending, is asked for once the
        // schema is known to be there ([`PgStore::migrate`]): on a new database the tables do
        // not exist until then.
        tokio::spawn(async move {
            while woken.recv().await.is_some() {
                tokio::time::sleep(GATHER).await;
                loop {
                    let Some(steps) = weak.upgrade() else { return };
                    if steps.pool.is_closed() {
                        return;
                    }
                    match steps.settle().await {
                        Ok(()) => break,
                        Err(e) => {
                            // Committed events stay pending, not lost: try again shortly.
                            tracing::warn!(error = %e, "numbering committed events failed; retrying in 1 s");
                            drop(steps);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        });
        Self { wake, steps }
    }

    /// After a COMMIT that wrote events.
    fn wake(&self) {
        // Full: a step is already due, and it will see this transaction's events.
        let _ = self.wake.try_send(());
    }
}

/// One step of the sequencer, sent as one message: the advisory lock, then the move in a
/// statement of its own. PostgreSQL runs the two in one implicit transaction (the lock is held
/// until it commits, and a failure rolls both back) and, at READ COMMITTED, takes the move's
/// snapshot after the lock is granted: it sees whatever the previous holder numbered and every
/// event committed before then. One round trip instead of four (BEGIN, lock, move, COMMIT):
/// besides the background steps, a step runs before reads of the feed that find events pending
/// and before each look of the webhook sender.
static SEQUENCE_STEP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "select pg_advisory_xact_lock({SEQUENCER_LOCK}); {}",
        DbTx::SEQUENCE_PENDING.replace("$1", &DbTx::SEQUENCE_BATCH.to_string())
    )
});

/// How long the sequencer lets commits gather before a step. Nobody waits for the background
/// step: readers of the feed and the webhook sender (woken by the commit itself) number what
/// they need first. It only keeps the pending table short when nobody reads. A step that moves
/// events is a commit of its own, with its own flush of the write-ahead log: after 5 ms, one
/// client's POSTs paid about one extra flush for every two or three (the harness's load at one
/// client 593/s before the sequencer, 491–515/s with it); after 100 ms, one for fifty.
const GATHER: Duration = Duration::from_millis(100);

/// Runs [`SEQUENCE_STEP`] on a connection, through `Executor::fetch_all`: `RawSql::fetch_all`,
/// generic over its executor, made the sequencer's future fail to prove itself `Send` when
/// given a connection rather than the pool.
async fn sequence_step(
    conn: &mut sqlx::PgConnection,
) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    sqlx::Executor::fetch_all(conn, sqlx::raw_sql(&SEQUENCE_STEP)).await
}

impl Steps {
    /// Moves every event committed before the call into the feed, numbered.
    async fn settle(&self) -> StoreResult<()> {
        let _one = self.one.lock().await;
        loop {
            let mut conn = self.pool.get().await?;
            let rows = sequence_step(&mut conn).await;
            let rows = on(&mut conn, rows)?;
            let moved: i64 = match rows.last() {
                Some(r) => r.try_get("moved").map_err(db_err)?,
                None => 0,
            };
            if moved < DbTx::SEQUENCE_BATCH {
                return Ok(());
            }
        }
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db`) with a pool of `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(db_err)?
            .application_name("muster");
        // Not sqlx's pool: it makes a round trip each time a connection comes back to it
        // (`pg_pool.rs`).
        let pool = Pool::connect(options, max_connections).await?;
        let sequencer = Sequencer::start(pool.clone());
        Ok(Self { pool, sequencer })
    }

    /// Applies pending migrations (serialised across processes by an advisory lock).
    /// Then it numbers, in the background, what a stopped process left pending.
    pub async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
        MIGRATOR
            .run(&mut **conn)
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        self.sequencer.wake();
        Ok(())
    }

    /// Numbers the events this process committed and its sequencer has not reached yet (a CLI
    /// command that wrote some exits at once), then closes the pool.
    pub async fn close(&self) {
        if let Err(e) = self.settle_events().await {
            // They stay pending, not lost: the next sequencer to run numbers them.
            tracing::warn!(error = %e, "numbering committed events before closing failed");
        }
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for PgStore {
    async fn write(&self) -> StoreResult<Box<dyn Tx>> {
        let asked = std::time::Instant::now();
        let tx = self.pool.begin().await?;
        crate::stats::WRITE_WAIT.observe(asked.elapsed());
        Ok(Box::new(DbTx::writing(tx, self.sequencer.clone())))
    }

    async fn read(&self) -> StoreResult<Box<dyn Tx>> {
        let asked = std::time::Instant::now();
        let conn = self.pool.get().await?;
        crate::stats::READ_WAIT.observe(asked.elapsed());
        Ok(Box::new(DbTx::Conn(conn)))
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(crate::stats::DbMetrics::new("postgres", {
            let (size, idle) = self.pool.state();
            vec![("main", size, idle)]
        })));
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
        let r = sqlx::query("select 1").execute(&mut **conn).await;
        on(&mut conn, r)?;
        Ok(())
    }

    async fn settle_events(&self) -> StoreResult<()> {
        // Nothing pending (a feed read after the background step, or an idle feed polled): one
        // index probe.
        let mut conn = self.pool.get().await?;
        let r = sqlx::query_as("select exists (select 1 from event_pending)")
            .fetch_one(&mut **conn)
            .await;
        let (pending,): (bool,) = on(&mut conn, r)?;
        drop(conn);
        if pending {
            self.sequencer.steps.settle().await?;
        }
        Ok(())
    }

    /// Analyzes the tables provisioning reads by index, except those that hold no rows yet.
    ///
    /// An empty table is left alone because ANALYZE would record it as empty (`reltuples` 0),
    /// and from then on the planner sizes it by its pages alone: while it is small, a scan of
    /// the whole table is the cheapest plan for every lookup, and a connection keeps such a
    /// plan as its generic plan of the statement until the next ANALYZE. On a fresh database
    /// that was the userName and externalId check of every POST reading the whole of
    /// `user_account` (845 µs at 1,300 users, growing with each). A table never analyzed is
    /// assumed to be at least ten pages, for which the indexes win.
    async fn maintain(&self) -> StoreResult<u64> {
        const TABLES: [&str; 8] = [
            "user_account",
            "user_email",
            "scim_group",
            "group_member",
            "sync_log",
            "provider_token",
            "org",
            "user_role",
        ];
        let mut conn = self.pool.get().await?;
        let r = sqlx::query_as(
            "select relname::text from pg_class \
             where relname = any($1) and relkind = 'r' \
             and relnamespace = current_schema()::regnamespace and pg_relation_size(oid) > 0",
        )
        .bind(&TABLES[..])
        .fetch_all(&mut **conn)
        .await;
        let held: Vec<(String,)> = on(&mut conn, r)?;
        if !held.is_empty() {
            // The names come from TABLES above, not from input.
            let names: Vec<&str> = held.iter().map(|(name,)| name.as_str()).collect();
            let r = sqlx::query(&format!("analyze {}", names.join(", ")))
                .execute(&mut **conn)
                .await;
            on(&mut conn, r)?;
        }
        let r = sqlx::query_as(
            "select greatest(reltuples, 0)::real from pg_class \
             where relname = 'sync_log' and relnamespace = current_schema()::regnamespace",
        )
        .fetch_one(&mut **conn)
        .await;
        let (entries,): (f32,) = on(&mut conn, r)?;
        Ok(entries as u64)
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
