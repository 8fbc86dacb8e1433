//! SQLite: a file in WAL mode, one writer connection and a pool of read-only readers.
//!
//! Writes go through a single connection and start with `BEGIN IMMEDIATE`, so they queue for
//! it rather than failing with "database is locked"; other processes (the CLI while the server
//! runs) wait on the busy timeout. With `synchronous = FULL` (the default) every commit is
//! fsynced before it returns, and concurrent writes share commits (see `sqlite_conns.rs`), so an
//! acknowledged write survives a power loss without an fsync per request. `NORMAL` (the
//! `sqlite_synchronous_full = false` setting) keeps commits across a crash of the process only.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use muster_core::error::{StoreError, Unique};
use muster_core::store::{Store, StoreResult, Tx};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

/// A listed user's groups as a column of its row (`common/listing.rs`, `USERS_WITH_GROUPS`): a
/// JSON array of `[id, displayName]` pairs, the id in hex, each name by primary key as in
/// `groups_of_users`.
///
/// The memberships are found by user id alone, which is the user's primary key, so they are
/// its environment's; the group must be in the same environment. Naming no other column of
/// `group_member` lets SQLite read them from the index `group_member_user_idx` alone: asking for
/// `m.environment_id` opened the table as well, and sought each membership's row in it.
macro_rules! member_of_col {
    () => {
        "(select json_group_array(json_array(hex(m.group_id), \
         (select g.display_name from scim_group g \
         where g.group_id = m.group_id and g.environment_id = user_account.environment_id))) \
         from group_member m where m.user_id = user_account.user_id) as member_of"
    };
}

/// The token of an environment's organization tree (`$1`): set to a new random value by triggers
/// whenever its organizations, their default roles or its roles change (migration 12).
macro_rules! tree_version {
    () => {
        "(select tree_version from environment where environment_id = $1)"
    };
}

// The shared SQL, compiled for this backend (see common/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "common/mod.rs"]
mod common;

use common::{db_err, DbTx};

#[path = "sqlite_conns.rs"]
mod conns;

use conns::{Conns, ReadConn, WriteTx, Writer};

#[path = "sqlite_fast.rs"]
mod fast;

use fast::{Fast, Open};

/// A row read on the request's thread.
type HeldRow = fast::OwnedRow;

/// SQLite lends no connection from a pool and begins no transaction through sqlx: its
/// connections are [`Held`].
pub enum PooledConn {}

fn pooled_conn(c: &mut PooledConn) -> &mut sqlx::SqliteConnection {
    match *c {}
}

fn pooled_failed(c: &mut PooledConn, _: &sqlx::Error) {
    match *c {}
}

/// See [`PooledConn`].
pub enum PooledTx {}

impl PooledTx {
    fn conn(&mut self) -> StoreResult<&mut sqlx::SqliteConnection> {
        match *self {}
    }
    fn failed(&mut self, _: &sqlx::Error) {
        match *self {}
    }
    async fn commit(self) -> Result<(), sqlx::Error> {
        match self {}
    }
}

/// A connection held for a request: a reader, or the writer in a transaction.
#[derive(Debug)]
pub enum Held {
    /// A read connection.
    Read(ReadConn),
    /// The writer, in this request's transaction.
    Write(WriteTx),
}

impl Held {
    /// The sqlx connection: a reader's (the writer has none).
    fn conn(&mut self) -> Option<&mut sqlx::SqliteConnection> {
        match self {
            Held::Read(r) => Some(r.conn()),
            Held::Write(_) => None,
        }
    }

    /// The connection for statements on this thread: the writer's for all of them, a reader's
    /// for index lookups.
    fn fast(&mut self, lookup: bool) -> Option<&mut Fast> {
        match self {
            Held::Read(r) if lookup => Some(r.fast()),
            Held::Read(_) => None,
            Held::Write(w) => Some(w.fast()),
        }
    }

    /// Notes that this transaction wrote events.
    fn wrote_events(&mut self) {
        if let Held::Write(w) = self {
            w.wrote_events = true;
        }
    }

    /// Whether this is the writer.
    fn is_write(&self) -> bool {
        matches!(self, Held::Write(_))
    }

    async fn commit(self) -> StoreResult<()> {
        match self {
            Held::Read(_) => Ok(()),
            Held::Write(w) => {
                let events = w.wrote_events;
                w.commit().await?;
                if events {
                    crate::signal::EVENTS_COMMITTED.notify_one();
                }
                Ok(())
            }
        }
    }
}

/// What makes text compare byte-wise in `order by` (SQLite's default already does).
const BYTEWISE: &str = "";

/// Whether the database keeps a token of each environment's organization tree
/// (`MappingStore::rules_and_org_tree`).
const KEEPS_TREE_VERSION: bool = true;

/// SQLite's `with` holds only queries: a user and its email index rows are separate statements
/// (on the writer's own thread, where a statement costs no round trip).
const WRITES_IN_WITH: bool = false;

/// Makes a statement read a table through the named index (SQLite's `indexed by`).
fn index_hint(index: &str) -> String {
    format!(" indexed by {index}")
}

/// SQLite numbers events inside the transaction (`common/events.rs`): no sequencer.
pub enum Sequencer {}

impl Sequencer {
    fn wake(&self) {
        match *self {}
    }
}

type Db = sqlx::Sqlite;
type DbRow = sqlx::sqlite::SqliteRow;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

fn classify_unique(message: &str, _constraint: Option<&str>) -> Unique {
    crate::unique::classify(message)
}

/// Options for opening a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteSettings {
    /// Read connections.
    pub readers: u32,
    /// Fsync every commit (`FULL`) rather than at checkpoints (`NORMAL`).
    pub synchronous_full: bool,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        Self {
            readers: 4,
            synchronous_full: true,
        }
    }
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Arc<Writer>,
    reader: Arc<Conns>,
    /// For migrations, which run through sqlx.
    options: Arc<SqliteConnectOptions>,
}

impl SqliteStore {
    /// Opens (creating if need be) the database at `url` (`sqlite://path/to/muster.db`).
    pub async fn connect(url: &str, settings: &SqliteSettings) -> StoreResult<Self> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(db_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if settings.synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        if url.contains(":memory:") || url.contains("mode=memory") {
            // Readers and the writer are separate connections: they must share a file.
            return Err(StoreError::Database(Box::new(std::io::Error::other(
                "an in-memory SQLite database is not supported: give a file (sqlite://muster.db)",
            ))));
        }
        // The writer's page cache: 16 MiB. It waits for another process's write lock without
        // holding up a runtime thread (see `Writer::begin`).
        let writer = Arc::new(Writer::open(Open {
            path: base.get_filename(),
            write: true,
            synchronous_full: settings.synchronous_full,
            cache_kib: 16_000,
            busy: Duration::ZERO,
        })?);
        // Readers share the operating system's file cache. Each has two connections: the one
        // for lookups on the request's thread keeps the hot index pages (2 MiB), the sqlx one
        // runs scans and pages (2 MiB), so memory does not grow with the number of readers.
        let reader = Arc::new(
            Conns::open(
                &base.clone().read_only(true).pragma("cache_size", "-2000"),
                settings.readers,
                2000,
            )
            .await?,
        );
        Ok(Self {
            writer,
            reader,
            options: Arc::new(base),
        })
    }

    /// Applies pending migrations, through a sqlx connection of their own while no write
    /// transaction is open.
    pub async fn migrate(&self) -> StoreResult<()> {
        let _writer = self.writer.exclusive().await?;
        let mut conn = self.options.connect().await.map_err(db_err)?;
        let done = MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|e| StoreError::Database(Box::new(e)));
        let _ = conn.close().await;
        done
    }

    /// Writes a consistent copy of the database to `path` while it is in use: `VACUUM INTO` a
    /// temporary file beside it (a read transaction: writers carry on), `PRAGMA quick_check` on
    /// the copy, then a rename, so `path` only ever holds a complete, checked database. Returns
    /// how many users the copy holds.
    pub async fn backup_to(&self, path: &std::path::Path) -> StoreResult<u64> {
        let partial = path.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        let target = partial.to_string_lossy().to_string();
        let mut r = self.reader.take().await?;
        sqlx::query("vacuum into $1")
            .bind(&target)
            .execute(r.conn())
            .await
            .map_err(db_err)?;
        let opts = SqliteConnectOptions::new()
            .filename(&partial)
            .read_only(true);
        let copy = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(db_err)?;
        let check: (String,) = sqlx::query_as("pragma quick_check")
            .fetch_one(&copy)
            .await
            .map_err(db_err)?;
        let users: (i64,) = sqlx::query_as("select count(*) from user_account")
            .fetch_one(&copy)
            .await
            .map_err(db_err)?;
        copy.close().await;
        if check.0 != "ok" {
            let _ = std::fs::remove_file(&partial);
            return Err(StoreError::Corrupt(format!(
                "the backup failed its integrity check: {}",
                check.0
            )));
        }
        std::fs::rename(&partial, path).map_err(|e| StoreError::Database(Box::new(e)))?;
        Ok(users.0.max(0) as u64)
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self) -> StoreResult<Box<dyn Tx>> {
        let asked = std::time::Instant::now();
        let tx = self.writer.begin().await?;
        crate::stats::WRITE_WAIT.observe(asked.elapsed());
        Ok(Box::new(DbTx::Held(Held::Write(tx))))
    }

    async fn read(&self) -> StoreResult<Box<dyn Tx>> {
        let asked = std::time::Instant::now();
        let held = self.reader.take().await?;
        crate::stats::READ_WAIT.observe(asked.elapsed());
        Ok(Box::new(DbTx::Held(Held::Read(held))))
    }

    async fn read_one(&self) -> StoreResult<Box<dyn Tx>> {
        let asked = std::time::Instant::now();
        let held = self.reader.take().await?;
        crate::stats::READ_WAIT.observe(asked.elapsed());
        Ok(Box::new(DbTx::Held(Held::Read(held.one_statement()))))
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(crate::stats::DbMetrics::new(
            "sqlite",
            vec![
                ("writer", 1, usize::from(self.writer.is_free())),
                ("reader", self.reader.size(), self.reader.free()),
            ],
        )));
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut r = self.reader.take().await?;
        sqlx::query("select 1")
            .execute(r.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn maintain(&self) -> StoreResult<u64> {
        let mut w = self.writer.exclusive().await?;
        w.conn().batch("pragma optimize").map_err(fast::err)?;
        Ok(0)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
