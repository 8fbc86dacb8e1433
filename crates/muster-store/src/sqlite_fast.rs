//! SQLite index lookups on the request's own thread.
//!
//! sqlx runs each SQLite connection on a thread of its own: every statement is a message to
//! that thread and a wake-up back, two thread switches around a read that SQLite answers from
//! its page cache in a few microseconds. Under `GET /Users/{id}` at 32 connections the
//! switches were about 40% of the machine's time (the profile in `docs/benchmarks.md`). So
//! each reader also holds a second connection to the same file, opened with rusqlite, and the
//! store's index lookups run on it directly, on the thread that asked: a user by id, userName
//! or externalId, a group by id or name, a user's groups, a listing with a selective filter
//! and a short page, and its count ([`super::common::DbTx::lookup`]). Statements that may read
//! many rows (scans, pages with an offset, counts over a provider) still go through sqlx, so a
//! long read never holds up the other requests of a runtime thread.
//!
//! The statements and their decoding are the ones sqlx runs (a [`Stmt`] and a [`Decode`]);
//! the values are bound as sqlx binds them on SQLite (UUIDs as 16-byte blobs, booleans as
//! integers), and `$n` placeholders are bound by name, as sqlx does.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use muster_core::error::StoreError;
use muster_core::store::StoreResult;
use rusqlite::{Connection, OpenFlags};
use uuid::Uuid;

use super::common::{Arg, Cols, Decode, Stmt};

fn err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(Box::new(e))
}

/// A read-only connection used on the calling thread.
#[derive(Debug)]
pub struct Fast {
    conn: Connection,
    /// Each statement's column names, by SQL text: rows are read by name, and asking SQLite
    /// for every name of every row was a few percent of a lookup.
    columns: HashMap<String, Arc<[String]>>,
}

impl Fast {
    /// Opens the database file read-only with a page cache of `cache_kib`.
    pub fn open(path: &Path, cache_kib: u32) -> StoreResult<Fast> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "cache_size", -i64::from(cache_kib))
            .map_err(err)?;
        // Every lookup shape the store has, with room to spare: none is prepared twice.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Fast {
            conn,
            columns: HashMap::new(),
        })
    }

    /// Runs `stmt` and decodes its rows.
    pub fn lookup<T>(&mut self, stmt: &Stmt, decode: Decode<T>) -> StoreResult<Vec<T>> {
        let started = Instant::now();
        let mut st = self.conn.prepare_cached(&stmt.sql).map_err(err)?;
        let columns = match self.columns.get(&stmt.sql) {
            Some(c) => c.clone(),
            None => {
                let c: Arc<[String]> = st.column_names().into_iter().map(String::from).collect();
                if self.columns.len() >= 256 {
                    self.columns.clear();
                }
                self.columns.insert(stmt.sql.clone(), c.clone());
                c
            }
        };
        for (i, arg) in stmt.args.iter().enumerate() {
            let name = format!("${}", i + 1);
            let Some(at) = st.parameter_index(&name).map_err(err)? else {
                return Err(StoreError::Database(Box::new(std::io::Error::other(
                    format!("a statement binds {name} but does not use it"),
                ))));
            };
            match arg {
                Arg::Uuid(v) => st.raw_bind_parameter(at, v),
                Arg::Int(v) => st.raw_bind_parameter(at, v),
                Arg::Text(v) => st.raw_bind_parameter(at, v.as_str()),
                Arg::Bool(v) => st.raw_bind_parameter(at, v),
            }
            .map_err(err)?;
        }
        let mut out = Vec::new();
        let mut rows = st.raw_query();
        while let Some(row) = rows.next().map_err(err)? {
            out.push(decode(&Row {
                row,
                columns: &columns,
            })?);
        }
        crate::stats::INLINE_READ.observe(started.elapsed());
        Ok(out)
    }
}

struct Row<'a, 'b> {
    row: &'a rusqlite::Row<'b>,
    columns: &'a [String],
}

impl Row<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, col: &str) -> StoreResult<T> {
        let at = self
            .columns
            .iter()
            .position(|c| c == col)
            .ok_or_else(|| err(rusqlite::Error::InvalidColumnName(col.to_string())))?;
        self.row.get(at).map_err(err)
    }
}

impl Cols for Row<'_, '_> {
    fn uuid(&self, col: &str) -> StoreResult<Uuid> {
        self.get(col)
    }
    fn uuid_opt(&self, col: &str) -> StoreResult<Option<Uuid>> {
        self.get(col)
    }
    fn text(&self, col: &str) -> StoreResult<String> {
        self.get(col)
    }
    fn text_opt(&self, col: &str) -> StoreResult<Option<String>> {
        self.get(col)
    }
    fn int(&self, col: &str) -> StoreResult<i64> {
        self.get(col)
    }
    fn int_opt(&self, col: &str) -> StoreResult<Option<i64>> {
        self.get(col)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        self.get(col)
    }
}
