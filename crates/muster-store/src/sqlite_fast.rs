//! SQLite statements on the request's own thread.
//!
//! sqlx runs each SQLite connection on a thread of its own: every statement is a message to
//! that thread and a wake-up back, two thread switches around work that SQLite does from its
//! page cache in a few microseconds. Under `GET /Users/{id}` at 32 connections the switches
//! were about 40% of the machine's time, and a POST of a user, seven statements in the single
//! writer, spent most of its time in the writer waiting for them (the profiles in
//! `docs/benchmarks.md`). So Muster opens its SQLite connections with rusqlite as well and runs
//! statements on the thread that asks:
//!
//! - the writer runs every statement this way (it is one connection, held by one request at a
//!   time, and its statements are short: the long work, such as a re-apply or deleting a giant
//!   group, is many short statements, and after each the request spends from Tokio's
//!   cooperative budget, so the runtime gets its turn — see `DbTx::exec` in `common/mod.rs`);
//! - each reader also holds a rusqlite connection for index lookups
//!   ([`super::common::DbTx::lookup`]: a user by id, userName or externalId, a group by id or
//!   name, a user's groups, a listing with a selective filter, and its count). Statements that
//!   may read many rows (scans, pages with an offset, counts over a provider) still go through
//!   the reader's sqlx connection, so a long read never holds up the other requests of a runtime
//!   thread.
//!
//! The statements and their decoding are the ones sqlx runs (a [`Stmt`], a [`Decode`]); values
//! are bound as sqlx binds them on SQLite (UUIDs as 16-byte blobs, booleans as integers).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use muster_core::error::StoreError;
use muster_core::store::StoreResult;
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use rustc_hash::FxHashMap;
use uuid::Uuid;

use super::common::{Arg, Cols, Decode, Stmt};

/// A store error from a rusqlite error, recognising unique violations as sqlx does.
pub fn err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        let unique = f.code == ErrorCode::ConstraintViolation
            && matches!(
                f.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            );
        if unique {
            return StoreError::Conflict(crate::unique::classify(
                msg.as_deref().unwrap_or_default(),
            ));
        }
    }
    StoreError::Database(Box::new(e))
}

/// Whether an error is SQLite's "the database is locked" (another process writes).
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::DatabaseBusy)
}

/// How a connection is opened.
pub struct Open<'a> {
    pub path: &'a Path,
    /// The writer (creates the file; WAL; foreign keys) or a reader (read-only).
    pub write: bool,
    /// `synchronous = FULL` rather than `NORMAL` (the writer).
    pub synchronous_full: bool,
    pub cache_kib: u32,
    /// How long a statement waits for a lock another process holds.
    pub busy: Duration,
}

/// A connection used on the calling thread.
#[derive(Debug)]
pub struct Fast {
    conn: Connection,
    /// What each statement needs to bind and read, by SQL text. Hashed with FxHash: the key is
    /// a statement's whole SQL, hashed on every statement, and std's SipHash of it was about
    /// 1,400 instructions of a GET's 117,000 (callgrind, docs/benchmarks.md).
    shapes: FxHashMap<String, Arc<Shape>>,
}

/// A prepared statement's placeholders and columns, read from SQLite once: asking for a
/// placeholder's name walks a list (a `values` of 1,000 rows made binding quadratic), and
/// asking for every column's name of every row was a few percent of a lookup.
#[derive(Debug)]
struct Shape {
    /// For each placeholder, in SQLite's numbering, the index of its value.
    params: Vec<usize>,
    columns: Arc<[String]>,
}

impl Fast {
    /// Opens a connection.
    pub fn open(o: Open<'_>) -> StoreResult<Fast> {
        let flags = match o.write {
            true => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            false => OpenFlags::SQLITE_OPEN_READ_ONLY,
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(o.path, flags).map_err(err)?;
        conn.busy_timeout(o.busy).map_err(err)?;
        let mut pragmas = format!("pragma cache_size = -{}; ", o.cache_kib);
        if o.write {
            let sync = if o.synchronous_full { "full" } else { "normal" };
            pragmas.push_str(&format!(
                "pragma journal_mode = wal; pragma synchronous = {sync}; pragma foreign_keys = on; pragma temp_store = memory;"
            ));
        }
        conn.execute_batch(&pragmas).map_err(err)?;
        if o.write {
            // A pragma SQLite cannot honour is ignored without an error (WAL needs shared
            // memory, which some network file systems lack): read each back.
            let read = |name: &str| -> StoreResult<String> {
                conn.query_row(&format!("pragma {name}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| match v {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t.to_lowercase(),
                    _ => String::new(),
                })
                .map_err(err)
            };
            let want = [
                ("journal_mode", "wal"),
                ("synchronous", if o.synchronous_full { "2" } else { "1" }),
                ("foreign_keys", "1"),
            ];
            for (name, value) in want {
                let got = read(name)?;
                if got != value {
                    return Err(StoreError::Database(Box::new(std::io::Error::other(
                        format!(
                            "SQLite refused {name} = {value} (it is {got}) for this database file"
                        ),
                    ))));
                }
            }
        }
        // Every statement shape the store has, with room for the `in (…)` lists of a few sizes.
        conn.set_prepared_statement_cache_capacity(if o.write { 256 } else { 64 });
        Ok(Fast {
            conn,
            shapes: FxHashMap::default(),
        })
    }

    /// Opens a read transaction unless one is open, so that a request's lookups share one
    /// snapshot and take SQLite's read locks once. Starting and ending a read transaction (the
    /// database file's lock, the WAL index's read mark, the file size) was most of SQLite's time
    /// in `GET /Users/{id}` (`docs/benchmarks.md`), and a GET is two lookups. Should `begin`
    /// fail, the lookups run in autocommit mode as before.
    pub fn begin_read(&mut self) {
        if self.conn.is_autocommit() {
            if let Err(e) = self.control("begin") {
                tracing::debug!(error = %e, "a read transaction did not begin");
            }
        }
    }

    /// Runs a transaction-control statement, prepared once.
    fn control(&mut self, sql: &str) -> Result<usize, rusqlite::Error> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.raw_execute())
    }

    /// Ends the read transaction [`Fast::begin_read`] opened, if any.
    pub fn end_read(&mut self) {
        if !self.conn.is_autocommit() {
            if let Err(e) = self.control("commit") {
                tracing::debug!(error = %e, "a read transaction did not commit; rolling back");
                let _ = self.conn.execute_batch("rollback");
            }
        }
    }

    /// Runs SQL without values (transaction control, pragmas).
    pub fn batch(&mut self, sql: &str) -> Result<(), rusqlite::Error> {
        self.conn.execute_batch(sql)
    }

    /// Prepares `stmt` (from the connection's statement cache) and binds its values; with the
    /// statement's columns.
    fn prepare(
        &mut self,
        stmt: &Stmt,
    ) -> StoreResult<(rusqlite::CachedStatement<'_>, Arc<[String]>)> {
        let mut st = self.conn.prepare_cached(&stmt.sql).map_err(err)?;
        let shape = match self.shapes.get(&*stmt.sql) {
            Some(s) => s.clone(),
            None => {
                let shape = Arc::new(shape_of(&st, stmt.args.len())?);
                if self.shapes.len() >= 512 {
                    self.shapes.clear();
                }
                self.shapes.insert(stmt.sql.to_string(), shape.clone());
                shape
            }
        };
        for (i, n) in shape.params.iter().enumerate() {
            let at = i + 1;
            match stmt.args.get(*n) {
                Some(Arg::Uuid(v)) => st.raw_bind_parameter(at, v),
                Some(Arg::Int(v)) => st.raw_bind_parameter(at, v),
                Some(Arg::Text(v)) => st.raw_bind_parameter(at, v.as_deref()),
                Some(Arg::Bool(v)) => st.raw_bind_parameter(at, v),
                Some(Arg::Bytes(v)) => st.raw_bind_parameter(at, v.as_slice()),
                None => Err(rusqlite::Error::InvalidParameterCount(
                    n + 1,
                    stmt.args.len(),
                )),
            }
            .map_err(err)?;
        }
        Ok((st, shape.columns.clone()))
    }

    /// Runs a statement that returns no rows; how many rows it changed.
    pub fn exec(&mut self, stmt: &Stmt) -> StoreResult<u64> {
        let started = Instant::now();
        let (mut st, _) = self.prepare(stmt)?;
        let changed = st.raw_execute().map_err(err)?;
        crate::stats::INLINE.observe(started.elapsed());
        Ok(changed as u64)
    }

    /// Runs a statement; its rows (at most `limit`), with their values.
    pub fn rows(&mut self, stmt: &Stmt, limit: Option<usize>) -> StoreResult<Vec<OwnedRow>> {
        let started = Instant::now();
        let (mut st, columns) = self.prepare(stmt)?;
        let mut out = Vec::new();
        let mut rows = st.raw_query();
        while let Some(row) = rows.next().map_err(err)? {
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(row.get::<_, Value>(i).map_err(err)?);
            }
            out.push(OwnedRow {
                columns: columns.clone(),
                values,
            });
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        crate::stats::INLINE.observe(started.elapsed());
        Ok(out)
    }

    /// Runs a statement and decodes its rows in place.
    pub fn lookup<T>(&mut self, stmt: &Stmt, decode: Decode<T>) -> StoreResult<Vec<T>> {
        let started = Instant::now();
        let (mut st, columns) = self.prepare(stmt)?;
        let mut out = Vec::new();
        let mut rows = st.raw_query();
        while let Some(row) = rows.next().map_err(err)? {
            out.push(decode(&Borrowed {
                row,
                columns: &columns,
                next: std::cell::Cell::new(0),
            })?);
        }
        crate::stats::INLINE.observe(started.elapsed());
        Ok(out)
    }
}

/// A prepared statement's shape, for a statement given `values` values.
fn shape_of(st: &rusqlite::Statement<'_>, values: usize) -> StoreResult<Shape> {
    // Placeholders are `$n`: SQLite numbers them in order of first appearance, so each is
    // matched to its value by name.
    let mut params = Vec::with_capacity(st.parameter_count());
    for at in 1..=st.parameter_count() {
        let n = st
            .parameter_name(at)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=values).contains(n))
            .ok_or_else(|| {
                StoreError::Database(Box::new(std::io::Error::other(
                    "a statement has a placeholder with no value",
                )))
            })?;
        params.push(n - 1);
    }
    let columns = st.column_names().into_iter().map(String::from).collect();
    Ok(Shape { params, columns })
}

fn position(columns: &[String], col: &str) -> StoreResult<usize> {
    columns
        .iter()
        .position(|c| c == col)
        .ok_or_else(|| err(rusqlite::Error::InvalidColumnName(col.to_string())))
}

fn mismatch(col: &str) -> StoreError {
    StoreError::Corrupt(format!("the column {col} holds a value of another type"))
}

/// A row read on the calling thread, decoded where it stands.
struct Borrowed<'a, 'b> {
    row: &'a rusqlite::Row<'b>,
    columns: &'a [String],
    /// The column after the one last asked for. Decoders mostly ask for the columns in the
    /// order the statement names them, so this is checked first: finding each of a user's 17
    /// columns by searching from the first was 1,500 of a GET's instructions.
    next: std::cell::Cell<usize>,
}

impl Borrowed<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, col: &str) -> StoreResult<T> {
        let at = match self.columns.get(self.next.get()) {
            Some(c) if c == col => self.next.get(),
            _ => position(self.columns, col)?,
        };
        self.next.set(at + 1);
        self.row.get(at).map_err(|_| mismatch(col))
    }
}

impl Cols for Borrowed<'_, '_> {
    fn uuid(&self, col: &str) -> StoreResult<Option<Uuid>> {
        self.get(col)
    }
    fn text(&self, col: &str) -> StoreResult<Option<String>> {
        self.get(col)
    }
    fn int(&self, col: &str) -> StoreResult<Option<i64>> {
        self.get(col)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        self.get(col)
    }
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>> {
        self.get(col)
    }
}

/// A row read on the calling thread, with its values.
#[derive(Debug)]
pub struct OwnedRow {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl OwnedRow {
    fn value(&self, col: &str) -> StoreResult<&Value> {
        Ok(&self.values[position(&self.columns, col)?])
    }
}

impl Cols for OwnedRow {
    fn uuid(&self, col: &str) -> StoreResult<Option<Uuid>> {
        match self.value(col)? {
            Value::Null => Ok(None),
            Value::Blob(b) => Uuid::from_slice(b).map(Some).map_err(|_| mismatch(col)),
            _ => Err(mismatch(col)),
        }
    }
    fn text(&self, col: &str) -> StoreResult<Option<String>> {
        match self.value(col)? {
            Value::Null => Ok(None),
            Value::Text(t) => Ok(Some(t.clone())),
            _ => Err(mismatch(col)),
        }
    }
    fn int(&self, col: &str) -> StoreResult<Option<i64>> {
        match self.value(col)? {
            Value::Null => Ok(None),
            Value::Integer(i) => Ok(Some(*i)),
            _ => Err(mismatch(col)),
        }
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        match self.value(col)? {
            Value::Integer(i) => Ok(*i != 0),
            _ => Err(mismatch(col)),
        }
    }
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>> {
        match self.value(col)? {
            Value::Blob(b) => Ok(b.clone()),
            _ => Err(mismatch(col)),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The SQLite Muster links is built as `.cargo/config.toml` asks: without the page cache
    /// every connection shares behind one mutex, and without allocation statistics
    /// (docs/benchmarks.md, "SQLite's shared page cache"). A build that lost the setting (a
    /// libsqlite3-sys that ignores `LIBSQLITE3_FLAGS`, a build outside the workspace) fails here.
    #[test]
    fn sqlite_is_built_without_the_shared_page_cache() -> rusqlite::Result<()> {
        let conn = rusqlite::Connection::open_in_memory()?;
        let mut st = conn.prepare("pragma compile_options")?;
        let options = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        assert!(
            options.iter().any(|o| o == "THREADSAFE=1"),
            "the options were read: {options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "SQLite shares one page cache between connections: {options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "SQLite keeps allocation statistics: {options:?}"
        );
        Ok(())
    }
}
