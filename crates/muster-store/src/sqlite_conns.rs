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
//! [`Conns`] is a fixed set of readers (each a sqlx connection and a `Fast` one for lookups on
//! the caller's thread, see `sqlite_fast.rs`), each behind its own lock, with a semaphore
//! counting the free ones; [`ReadConn`] is one of them, taken until dropped.
//!
//! [`Writer`] is the one write connection, with group commit: a write transaction is a
//! savepoint inside a database transaction that several requests share (each request's nested
//! in the one before). When a request finishes its work while others wait for the writer, it
//! hands the open transaction on; the last one (or the fifth millisecond, or the 64th request) commits,
//! and every request in the batch gets its answer only once that COMMIT, and its fsync, is done.
//! One fsync then makes many requests durable, and the pages they share (the same index leaves,
//! the sync log's last page) are written once. A request that fails or is abandoned rolls back
//! to its savepoint: the others' work stays. A failed COMMIT fails every request of the batch:
//! none of them has been answered yet.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use muster_core::error::StoreError;
use muster_core::store::StoreResult;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{
    watch, Mutex, OwnedMappedMutexGuard, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore,
};

use super::common::db_err;

/// A reader: a sqlx connection, and one for lookups on the caller's thread.
#[derive(Debug)]
pub struct Reader {
    conn: SqliteConnection,
    fast: super::Fast,
}

type Slot = Arc<Mutex<Option<Reader>>>;

fn unavailable(why: &str) -> StoreError {
    StoreError::Database(Box::new(std::io::Error::other(why.to_string())))
}

fn closed() -> StoreError {
    unavailable("the database is closed")
}

thread_local! {
    /// The connection this thread took last, as (its set's idle list, its slot): a thread takes
    /// it again when it is free. A connection's memory (its statements, lookaside buffers and
    /// page cache headers) then stays in the cache of the core the thread runs on; handed
    /// between the runtime's threads, each statement began with cache misses on the other
    /// core's lines (`perf annotate`: 90% of `sqlite3DbMallocRawNN`'s samples on one counter
    /// update; docs/benchmarks.md). Only a preference: any idle connection serves.
    static LAST_TAKEN: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, usize::MAX)) };
}

/// A fixed set of connections to one database.
#[derive(Debug)]
pub struct Conns {
    slots: Vec<Slot>,
    /// The slots no one holds. A slot goes back on this list after it is unlocked and before
    /// its permit is returned, so whoever gets a permit finds an unlocked slot here.
    idle: Arc<std::sync::Mutex<Vec<usize>>>,
    free: Arc<Semaphore>,
}

impl Conns {
    /// Opens `n` readers (at least one) with `options`, their lookup connections with a page
    /// cache of `fast_cache_kib`.
    pub async fn open(
        options: &SqliteConnectOptions,
        n: u32,
        fast_cache_kib: u32,
    ) -> StoreResult<Conns> {
        let mut slots = Vec::new();
        for _ in 0..n.max(1) {
            let conn = options.connect().await.map_err(db_err)?;
            let fast = super::Fast::open(super::Open {
                path: options.get_filename(),
                write: false,
                synchronous_full: false,
                cache_kib: fast_cache_kib,
                // A reader waits only in the rare moments another connection recovers the WAL
                // index; it does so on a runtime thread, so not for long.
                busy: Duration::from_secs(1),
            })?;
            slots.push(Arc::new(Mutex::new(Some(Reader { conn, fast }))));
        }
        Ok(Conns {
            free: Arc::new(Semaphore::new(slots.len())),
            idle: Arc::new(std::sync::Mutex::new((0..slots.len()).collect())),
            slots,
        })
    }

    /// A connection, waiting for one to be free.
    pub async fn take(&self) -> StoreResult<ReadConn> {
        let permit = self
            .free
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let key = Arc::as_ptr(&self.idle) as usize;
        let id = {
            let mut idle = self
                .idle
                .lock()
                .map_err(|_| unavailable("the connection list is poisoned"))?;
            let last = LAST_TAKEN.with(|l| l.get());
            let mine = (last.0 == key)
                .then(|| idle.iter().position(|&i| i == last.1))
                .flatten();
            match mine {
                Some(at) => Some(idle.swap_remove(at)),
                None => idle.pop(),
            }
        };
        if let Some(id) = id {
            LAST_TAKEN.with(|l| l.set((key, id)));
        }
        let back = Back {
            id: id.ok_or_else(|| unavailable("no idle database connection"))?,
            idle: self.idle.clone(),
        };
        let guard = self.slots[back.id]
            .clone()
            .try_lock_owned()
            .map_err(|_| unavailable("an idle database connection is in use"))?;
        let conn = OwnedMutexGuard::try_map(guard, Option::as_mut).map_err(|_| closed())?;
        Ok(ReadConn {
            conn,
            one_statement: false,
            _back: back,
            _permit: permit,
        })
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
            if let Some(r) = taken {
                let _ = r.conn.close().await;
            }
        }
    }
}

/// Puts a slot back on the idle list when dropped.
#[derive(Debug)]
struct Back {
    id: usize,
    idle: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl Drop for Back {
    fn drop(&mut self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(self.id);
        }
    }
}

/// One connection of a [`Conns`], exclusively, until dropped.
#[derive(Debug)]
pub struct ReadConn {
    // Fields drop in this order: the slot is unlocked, then listed as idle, then its permit
    // returned.
    conn: OwnedMappedMutexGuard<Option<Reader>, Reader>,
    /// The caller runs one statement ([`muster_core::store::Store::read_one`]): no read
    /// transaction around it.
    one_statement: bool,
    _back: Back,
    _permit: OwnedSemaphorePermit,
}

impl ReadConn {
    /// The sqlx connection.
    pub fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn.conn
    }

    /// Marks the connection as used for one statement: its lookups run without the read
    /// transaction [`ReadConn::fast`] otherwise opens. A statement on its own takes SQLite's read
    /// locks once anyway, and `begin` and `commit` were 3,600 of a GET's 108,000 instructions
    /// (callgrind, docs/benchmarks.md).
    pub fn one_statement(mut self) -> Self {
        self.one_statement = true;
        self
    }

    /// The connection for lookups on this thread, in a read transaction that lasts until the
    /// connection is given back (unless [`ReadConn::one_statement`]).
    pub fn fast(&mut self) -> &mut super::Fast {
        let fast = &mut self.conn.fast;
        if !self.one_statement {
            fast.begin_read();
        }
        fast
    }
}

impl Drop for ReadConn {
    fn drop(&mut self) {
        // Before the slot is unlocked: an idle reader holds no snapshot (it would keep the
        // WAL from being checkpointed past it).
        self.conn.fast.end_read();
    }
}

/// The most requests one COMMIT covers.
const BATCH_MEMBERS: usize = 64;
/// The longest a batch stays open while requests keep arriving.
const BATCH_AGE: Duration = Duration::from_millis(5);

/// How long a write waits for another process (the CLI) to release the database.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// The write connection and its shared transaction.
#[derive(Debug)]
struct WriterState {
    conn: super::Fast,
    /// The open database transaction, if any.
    batch: Option<Batch>,
    /// A request left without finishing: its savepoint is open and must be rolled back before
    /// anything else runs.
    abandoned: bool,
    closed: bool,
}

#[derive(Debug)]
struct Batch {
    /// Requests whose work is in it, waiting for its COMMIT.
    members: usize,
    started: Instant,
    /// Whether the COMMIT succeeded, once it ran.
    done: watch::Sender<Option<bool>>,
}

/// The single write connection, with group commit.
#[derive(Debug)]
pub struct Writer {
    state: Arc<Mutex<WriterState>>,
    /// Requests waiting for the connection.
    waiting: Arc<AtomicUsize>,
}

/// Counts a request waiting for the writer, also when it gives up waiting.
struct Waiting {
    count: Arc<AtomicUsize>,
    state: Arc<Mutex<WriterState>>,
    took_it: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let left = self.count.fetch_sub(1, Ordering::SeqCst) - 1;
        if !self.took_it && left == 0 {
            // The last waiter gave up: a batch left open for it has nobody to end it.
            spawn_ender(self.state.clone(), self.count.clone());
        }
    }
}

impl Writer {
    /// Opens the write connection.
    pub fn open(options: super::Open<'_>) -> StoreResult<Writer> {
        let conn = super::Fast::open(options)?;
        Ok(Writer {
            state: Arc::new(Mutex::new(WriterState {
                conn,
                batch: None,
                abandoned: false,
                closed: false,
            })),
            waiting: Arc::new(AtomicUsize::new(0)),
        })
    }

    async fn lock(&self) -> StoreResult<OwnedMutexGuard<WriterState>> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut waiting = Waiting {
            count: self.waiting.clone(),
            state: self.state.clone(),
            took_it: false,
        };
        let mut g = self.state.clone().lock_owned().await;
        waiting.took_it = true;
        drop(waiting);
        if g.closed {
            return Err(closed());
        }
        g.recover().await;
        Ok(g)
    }

    /// The write connection outside any transaction (migrations, maintenance).
    pub async fn exclusive(&self) -> StoreResult<Exclusive> {
        let mut g = self.lock().await?;
        if g.batch.is_some() {
            g.end_batch().await?;
        }
        Ok(Exclusive(g))
    }

    /// Starts a write transaction: a savepoint in the shared transaction, opened with
    /// `BEGIN IMMEDIATE` when none is open.
    pub async fn begin(&self) -> StoreResult<WriteTx> {
        let mut g = self.lock().await?;
        if g.batch.is_none() {
            // `BEGIN IMMEDIATE` takes the write lock at once. Another process (the CLI) may
            // hold it: the connection does not wait (that would hold up a runtime thread), so
            // this request waits here, off the thread, and tries again.
            let deadline = Instant::now() + BUSY_WAIT;
            let mut pause = Duration::from_millis(1);
            loop {
                match g.conn.batch("BEGIN IMMEDIATE") {
                    Ok(()) => break,
                    Err(e) if super::fast::is_busy(&e) && Instant::now() < deadline => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(50));
                    }
                    Err(e) => return Err(super::fast::err(e)),
                }
            }
            let (done, _) = watch::channel(None);
            g.batch = Some(Batch {
                members: 0,
                started: Instant::now(),
                done,
            });
        }
        if let Err(e) = g.conn.batch("SAVEPOINT request") {
            // The shared transaction may be gone with it: end it for everyone.
            let _ = g.end_batch().await;
            return Err(super::fast::err(e));
        }
        Ok(WriteTx {
            g,
            state: self.state.clone(),
            waiting: self.waiting.clone(),
            started: Instant::now(),
            finished: false,
            wrote_events: false,
        })
    }

    /// Whether no request holds the writer now.
    pub fn is_free(&self) -> bool {
        self.state.try_lock().is_ok()
    }

    /// Waits for the open batch to end, then refuses new transactions.
    pub async fn close(&self) {
        let mut g = self.state.lock().await;
        g.recover().await;
        if g.batch.is_some() {
            let _ = g.end_batch().await;
        }
        g.closed = true;
    }
}

impl WriterState {
    /// Rolls back an abandoned request's savepoint.
    async fn recover(&mut self) {
        if !self.abandoned {
            return;
        }
        self.abandoned = false;
        let undone = self.conn.batch("ROLLBACK TO request; RELEASE request");
        if undone.is_err() {
            // The shared transaction went with the failure: nothing of it can commit.
            let _ = self.conn.batch("ROLLBACK");
            if let Some(b) = self.batch.take() {
                b.done.send_replace(Some(false));
            }
        }
    }

    /// Commits the open batch (or rolls back an empty one) and tells its members.
    async fn end_batch(&mut self) -> StoreResult<()> {
        let Some(batch) = self.batch.take() else {
            return Ok(());
        };
        if batch.members == 0 {
            return self.conn.batch("ROLLBACK").map_err(super::fast::err);
        }
        let at = Instant::now();
        let done = self.conn.batch("COMMIT");
        crate::stats::COMMIT.observe(at.elapsed());
        let ok = done.is_ok();
        if ok {
            crate::stats::COMMITTED_TRANSACTIONS.fetch_add(batch.members as u64, Ordering::Relaxed);
        }
        if !ok {
            let _ = self.conn.batch("ROLLBACK");
        }
        batch.done.send_replace(Some(ok));
        done.map_err(super::fast::err)
    }
}

/// The write connection, alone, outside any transaction.
#[derive(Debug)]
pub struct Exclusive(OwnedMutexGuard<WriterState>);

impl Exclusive {
    /// The connection.
    pub fn conn(&mut self) -> &mut super::Fast {
        &mut self.0.conn
    }
}

/// One request's write transaction: a savepoint in the shared transaction.
#[derive(Debug)]
pub struct WriteTx {
    g: OwnedMutexGuard<WriterState>,
    state: Arc<Mutex<WriterState>>,
    waiting: Arc<AtomicUsize>,
    started: Instant,
    finished: bool,
    /// Whether this transaction wrote events (to signal [`crate::signal::EVENTS_COMMITTED`]).
    pub wrote_events: bool,
}

impl WriteTx {
    /// The connection.
    pub fn fast(&mut self) -> &mut super::Fast {
        &mut self.g.conn
    }

    /// Makes this request's work part of the shared transaction and returns once that is
    /// committed: at once if no other request waits for the writer, else when the batch ends.
    pub async fn commit(mut self) -> StoreResult<()> {
        crate::stats::WRITE_TX.observe(self.started.elapsed());
        // The savepoint stays: the next request's nests inside it, and the COMMIT ends them
        // all. A RELEASE would cost a round trip to the connection's thread and change nothing.
        self.finished = true;
        let Some(batch) = self.g.batch.as_mut() else {
            return Err(StoreError::Corrupt(
                "the write transaction ended early".into(),
            ));
        };
        batch.members += 1;
        let mut done = batch.done.subscribe();
        let full = batch.members >= BATCH_MEMBERS || batch.started.elapsed() >= BATCH_AGE;
        if full || self.waiting.load(Ordering::SeqCst) == 0 {
            return self.g.end_batch().await;
        }
        // Others wait: leave the batch open for them. The next one ends it or hands it on; if
        // they all give up before taking the writer, the last to go starts an ender.
        drop(self);
        let committed = done
            .wait_for(Option::is_some)
            .await
            .is_ok_and(|v| *v == Some(true));
        match committed {
            true => Ok(()),
            false => Err(StoreError::Database(Box::new(std::io::Error::other(
                "the transaction this change was part of failed to commit",
            )))),
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Left without commit (an error, or the request went away): roll this request back
        // before anything else runs, and end the batch if nobody waits to carry it on.
        self.g.abandoned = true;
        if self.g.batch.is_some() {
            spawn_ender(self.state.clone(), self.waiting.clone());
        }
    }
}

/// Ends the open batch, unless a request waits to carry it on (that request will end it, hand
/// it on, or, giving up, start another ender). Outside a runtime (shutdown) nothing is started:
/// the next writer finds the batch and carries it on.
fn spawn_ender(state: Arc<Mutex<WriterState>>, waiting: Arc<AtomicUsize>) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::spawn(async move {
        let mut g = state.lock().await;
        g.recover().await;
        if g.batch.is_some() && waiting.load(Ordering::SeqCst) == 0 {
            let _ = g.end_batch().await;
        }
    });
}
