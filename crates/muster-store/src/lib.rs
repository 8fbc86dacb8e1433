//! SQLite and PostgreSQL implementations of Muster's store traits.
//!
//! # Layout
//! - [`sqlite`] holds `SqliteStore`: WAL mode, one writer and a pool of readers.
//! - [`postgres`] holds `PgStore`.
//! - `common/`: the SQL both share, compiled once per backend, one file per aggregate.
//! - `migrations/{sqlite,postgres}`: the schema, with the same version numbers in both.

use std::sync::Arc;

use muster_core::error::StoreError;
use muster_core::store::Store;

mod pg_pool;
pub mod postgres;
mod signal;
pub mod sqlite;
pub mod stats;
mod unique;

pub use postgres::PgStore;
pub use signal::EVENTS_COMMITTED;
pub use sqlite::{SqliteSettings, SqliteStore};

/// A store opened from a URL, ready to use (migrated).
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens `url`: `postgres://` or `postgresql://` for PostgreSQL, `sqlite:` for SQLite.
    pub async fn connect(
        url: &str,
        sqlite: &SqliteSettings,
        pg_max_connections: u32,
    ) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(AnyStore::Postgres(
                PgStore::connect(url, pg_max_connections).await?,
            ))
        } else if url.starts_with("sqlite:") {
            Ok(AnyStore::Sqlite(SqliteStore::connect(url, sqlite).await?))
        } else {
            Err(StoreError::Database(
                "the database URL must start with sqlite: or postgres://".into(),
            ))
        }
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.migrate().await,
            AnyStore::Postgres(p) => p.migrate().await,
        }
    }

    /// The store as a trait object.
    pub fn shared(&self) -> Arc<dyn Store> {
        match self {
            AnyStore::Sqlite(s) => Arc::new(s.clone()),
            AnyStore::Postgres(p) => Arc::new(p.clone()),
        }
    }

    /// Closes the connections.
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(s) => s.close().await,
            AnyStore::Postgres(p) => p.close().await,
        }
    }
}
