//! SQLite connections Muster holds itself, rather than in a `sqlx::Pool`.
//!
//! A sqlx SQLite connection runs on a thread of its own; every statement is a message to that
//! thread and back. A pool adds two more such trips per use: a `ping` before handing a
//! connection out and another before taking it back, and only after that ping does the next
//! request get the connection. For the single writer that second ping sat on the critical path
//! of every write, and for reads the two pings were as many trips as the query itself (the
//! profile in `docs/benchmarks.md`). These connections are files on the same machine: nothing
//! can hang up on them, so there is nothing for a ping to find.
//!
//! [`Conns`] is a fixed set of connections, each behind its own lock, with a semaphore counting
//! the free ones. [`Held`] is one of them, taken until dropped; for the writer it carries the
//! open transaction, rolled back if it is dropped uncommitted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use muster_core::error::StoreError;
use muster_core::store::StoreResult;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Database, Sqlite, TransactionManager};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use super::common::db_err;

type Manager = <Sqlite as Database>::TransactionManager;
type Slot = Arc<Mutex<Option<SqliteConnection>>>;

fn unavailable(why: &str) -> StoreError {
    StoreError::Database(Box::new(std::io::Error::other(why.to_string())))
}

fn closed() -> StoreError {
    unavailable("the database is closed")
}

/// A fixed set of connections to one database.
#[derive(Debug)]
pub struct Conns {
    slots: Vec<Slot>,
    free: Arc<Semaphore>,
    next: AtomicUsize,
}

impl Conns {
    /// Opens `n` connections (at least one) with `options`.
    pub async fn open(options: &SqliteConnectOptions, n: u32) -> StoreResult<Conns> {
        let mut slots = Vec::new();
        for _ in 0..n.max(1) {
            let conn = options.connect().await.map_err(db_err)?;
            slots.push(Arc::new(Mutex::new(Some(conn))));
        }
        Ok(Conns {
            free: Arc::new(Semaphore::new(slots.len())),
            slots,
            next: AtomicUsize::new(0),
        })
    }

    /// A connection, waiting for one to be free.
    pub async fn take(&self) -> StoreResult<Held> {
        let permit = self
            .free
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        // Holding a permit, at least one slot is unlocked: each holder of a permit locks one
        // slot at most, and a holder unlocks its slot before giving its permit back.
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        for k in 0..n {
            if let Ok(guard) = self.slots[(start + k) % n].clone().try_lock_owned() {
                let conn = OwnedMutexGuard::try_map(guard, Option::as_mut).map_err(|_| closed())?;
                return Ok(Held {
                    conn,
                    _permit: permit,
                    open: None,
                });
            }
        }
        Err(unavailable("no free database connection"))
    }

    /// How many connections there are.
    pub fn size(&self) -> u32 {
        self.slots.len() as u32
    }

    /// How many are free.
    pub fn free(&self) -> usize {
        self.free.available_permits()
    }

    /// Closes every connection once it is free; taking one afterwards fails.
    pub async fn close(&self) {
        self.free.close();
        for slot in &self.slots {
            let taken = slot.lock().await.take();
            if let Some(conn) = taken {
                let _ = conn.close().await;
            }
        }
    }
}

/// One connection of a [`Conns`], exclusively, until dropped.
#[derive(Debug)]
pub struct Held {
    // Dropped before the permit: the slot is unlocked before another may look for it.
    conn: OwnedMappedMutexGuard<Option<SqliteConnection>, SqliteConnection>,
    _permit: OwnedSemaphorePermit,
    /// When the open write transaction began, if one is open.
    open: Option<Instant>,
}

impl Held {
    /// The connection.
    pub fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// Opens a write transaction with `statement` (`BEGIN IMMEDIATE`).
    pub async fn begin(&mut self, statement: &'static str) -> StoreResult<()> {
        Manager::begin(&mut self.conn, Some(statement.into()))
            .await
            .map_err(db_err)?;
        self.open = Some(Instant::now());
        Ok(())
    }

    /// Commits the open transaction, if any.
    pub async fn commit(mut self) -> StoreResult<()> {
        let Some(started) = self.open.take() else {
            return Ok(());
        };
        let at = Instant::now();
        let done = Manager::commit(&mut self.conn).await.map_err(db_err);
        crate::stats::COMMIT.observe(at.elapsed());
        crate::stats::WRITE_TX.observe(started.elapsed());
        if done.is_err() && Manager::get_transaction_depth(&self.conn) > 0 {
            // A failed COMMIT leaves the transaction open: end it before the next user.
            Manager::start_rollback(&mut self.conn);
        }
        done
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.open.is_some() {
            // Queued on the connection's thread ahead of anything the next user sends.
            Manager::start_rollback(&mut self.conn);
        }
    }
}
