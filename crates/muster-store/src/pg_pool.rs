//! PostgreSQL connections, pooled by deadpool rather than by sqlx's own pool.
//!
//! sqlx's pool sends a Sync message and waits for the server's answer every time a connection
//! comes back to it (sqlx 0.8, `return_to_pool`), whatever state the connection is in: a round
//! trip after every transaction and every read, two for each user created (the check of its
//! userName, then the write). There is no option to leave it out. Without those round trips a
//! POST of a user on PostgreSQL went from 2,408 / 2,361 to 2,700 / 2,600 a second at eight
//! clients, with a tenth less CPU in Muster and in PostgreSQL (docs/benchmarks.md,
//! "PostgreSQL: a round trip each time a connection came back").
//!
//! What the Sync was for is done here where it is needed, not after every use:
//! - a statement abandoned half way (its request cancelled) leaves its answer unread; sqlx reads
//!   what is left before the connection's next statement, whoever runs it;
//! - a transaction dropped without COMMIT is rolled back at once, in a task of its own
//!   ([`WriteTx`]'s `Drop`), so its locks are not held while the connection waits in the pool;
//! - a connection that failed (I/O, protocol) is marked and closed instead of being lent again
//!   ([`PgConn::failed`]), and after such a failure every other connection is pinged before it
//!   is next lent: a database restarted under load costs one request an error, not one per
//!   connection. One idle for a while is pinged too, so a restart in a quiet hour costs none.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Metrics, Object, QueueMode, RecycleError, RecycleResult, Timeouts};
use deadpool::Runtime;
use muster_core::error::StoreError;
use muster_core::store::StoreResult;
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgDatabaseError, PgSeverity, PgTransactionManager,
};
use sqlx::{Connection, TransactionManager};

/// How long a request waits for a free connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection idle longer than this is pinged before it is lent.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// Connections are replaced after this long, so that a server's backends do not grow forever
/// (caches of relations and plans), as sqlx's pool does by default.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Makes and checks the pool's connections.
#[derive(Debug)]
pub struct Manager {
    options: PgConnectOptions,
    /// How many connections have failed so far.
    failures: Arc<AtomicU64>,
}

/// A pooled connection and whether it has failed.
#[derive(Debug)]
pub struct PgConn {
    conn: PgConnection,
    broken: bool,
    /// The pool's count of failed connections when this one was last known good.
    checked: u64,
    failures: Arc<AtomicU64>,
}

impl PgConn {
    /// Notes the error a statement on this connection returned: a connection that failed below
    /// SQL (the socket, the protocol) is not lent again.
    pub fn failed(&mut self, e: &sqlx::Error) {
        // The server ends a session with a FATAL error (an administrator's
        // `pg_terminate_backend`, a shutdown), then closes the socket.
        let fatal =
            |d: &PgDatabaseError| matches!(d.severity(), PgSeverity::Fatal | PgSeverity::Panic);
        let ended = match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(d) => d.try_downcast_ref::<PgDatabaseError>().is_some_and(fatal),
            _ => false,
        };
        if ended && !self.broken {
            self.broken = true;
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Deref for PgConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

impl deadpool::managed::Manager for Manager {
    type Type = PgConn;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PgConn, sqlx::Error> {
        let conn = PgConnection::connect_with(&self.options).await?;
        Ok(PgConn {
            conn,
            broken: false,
            checked: self.failures.load(Ordering::Relaxed),
            failures: self.failures.clone(),
        })
    }

    async fn recycle(&self, c: &mut PgConn, m: &Metrics) -> RecycleResult<sqlx::Error> {
        if c.broken {
            return Err(RecycleError::message("the connection failed"));
        }
        if m.age() > MAX_LIFETIME {
            return Err(RecycleError::message("the connection reached its lifetime"));
        }
        let failures = self.failures.load(Ordering::Relaxed);
        if failures != c.checked || m.last_used() > IDLE_CHECK {
            c.conn.ping().await.map_err(RecycleError::Backend)?;
            c.checked = failures;
        }
        Ok(())
    }
}

/// A connection lent by the pool; back to it when dropped.
pub type Conn = Object<Manager>;

/// The pool.
#[derive(Debug, Clone)]
pub struct Pool(deadpool::managed::Pool<Manager>);

impl Pool {
    /// A pool of at most `max` connections, made as they are needed. Connects once first, so that
    /// a wrong URL or an unreachable server is reported at start-up.
    pub async fn connect(options: PgConnectOptions, max: u32) -> StoreResult<Pool> {
        let max = usize::try_from(max.max(1)).unwrap_or(1);
        let manager = Manager {
            options,
            failures: Arc::default(),
        };
        let pool = deadpool::managed::Pool::builder(manager)
            .max_size(max)
            // The connection used last is lent first: the fewest backends stay busy, each with
            // its statements prepared and its caches warm.
            .queue_mode(QueueMode::Lifo)
            .timeouts(Timeouts {
                wait: Some(ACQUIRE_TIMEOUT),
                create: Some(ACQUIRE_TIMEOUT),
                recycle: Some(ACQUIRE_TIMEOUT),
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        let pool = Pool(pool);
        drop(pool.get().await?);
        Ok(pool)
    }

    /// A connection.
    pub async fn get(&self) -> StoreResult<Conn> {
        self.0.get().await.map_err(|e| match e {
            deadpool::managed::PoolError::Backend(e) => StoreError::Database(Box::new(e)),
            other => StoreError::Database(Box::new(other)),
        })
    }

    /// A connection in a transaction.
    pub async fn begin(&self) -> StoreResult<WriteTx> {
        let mut conn = self.get().await?;
        if let Err(e) = PgTransactionManager::begin(&mut conn, None).await {
            conn.failed(&e);
            return Err(StoreError::Database(Box::new(e)));
        }
        Ok(WriteTx { conn: Some(conn) })
    }

    /// Connections in the pool, and how many of them are idle.
    pub fn state(&self) -> (u32, usize) {
        let s = self.0.status();
        (u32::try_from(s.size).unwrap_or(u32::MAX), s.available)
    }

    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Closes the pool: the idle connections say goodbye to the server (so it does not log an
    /// unexpected end of each), those in use are closed when they come back.
    pub async fn close(&self) {
        let idle = self.0.retain(|_, _| false).removed;
        self.0.close();
        for c in idle {
            let _ = c.conn.close().await;
        }
    }
}

/// A connection in a transaction: COMMIT ends it ([`WriteTx::commit`]); dropped before that,
/// it is rolled back.
#[derive(Debug)]
pub struct WriteTx {
    /// Taken out only by `Drop`.
    conn: Option<Conn>,
}

impl WriteTx {
    /// The connection, for the transaction's statements.
    pub fn conn(&mut self) -> StoreResult<&mut PgConnection> {
        match &mut self.conn {
            Some(c) => Ok(c),
            None => Err(StoreError::Database(Box::new(std::io::Error::other(
                "the transaction has ended",
            )))),
        }
    }

    /// Notes a failed statement ([`PgConn::failed`]).
    pub fn failed(&mut self, e: &sqlx::Error) {
        if let Some(c) = &mut self.conn {
            c.failed(e);
        }
    }

    /// Commits. Should COMMIT fail, the transaction is rolled back as if dropped.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let done = PgTransactionManager::commit(conn).await;
        if let Err(e) = &done {
            conn.failed(e);
        }
        done
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if !conn.is_in_transaction() {
            return;
        }
        // Queues the ROLLBACK; the ping sends it and reads every answer still due, after which
        // the connection goes back to the pool clean. Without a runtime (the process is
        // ending), the connection is dropped instead, and the server rolls back on its own.
        PgTransactionManager::start_rollback(&mut conn);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = conn.ping().await {
                        conn.failed(&e);
                    }
                });
            }
            Err(_) => {
                let _ = Object::take(conn);
            }
        }
    }
}
