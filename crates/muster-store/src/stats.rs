//! Database timings and counts for `/metrics`, shared by every store of the process, exposed
//! through `prometheus-client`: [`DbMetrics`] is the collector a scrape registers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// A histogram of durations, recorded per thread ([`muster_core::shards`]).
pub struct Timing(LazyLock<muster_core::shards::Timing>);

impl Timing {
    const fn new() -> Self {
        Self(LazyLock::new(Default::default))
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        self.0.observe(d);
    }

    fn encode(
        &self,
        encoder: prometheus_client::encoding::MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        self.0.total().encode(encoder)
    }
}

/// Waiting for a write transaction (on SQLite: for the one writer).
pub static WRITE_WAIT: Timing = Timing::new();
/// Waiting for a read connection.
pub static READ_WAIT: Timing = Timing::new();
/// A write transaction from its start to its commit.
pub static WRITE_TX: Timing = Timing::new();
/// The commit itself (the durable write).
pub static COMMIT: Timing = Timing::new();
/// A statement run on the request's own thread (SQLite).
pub static INLINE: Timing = Timing::new();
/// Sync log entries written.
pub static SYNC_LOG_ENTRIES: AtomicU64 = AtomicU64::new(0);
/// Event feed events written.
pub static EVENTS_WRITTEN: AtomicU64 = AtomicU64::new(0);
/// Write transactions made durable by a commit (on SQLite several share one: group commit).
pub static COMMITTED_TRANSACTIONS: AtomicU64 = AtomicU64::new(0);

/// A pool's connections at scrape time: its name, its size, and how many are idle.
pub type PoolState = (&'static str, u32, usize);

/// The database metrics of one scrape: the process-wide timings and counts, and the pools'
/// connections as they are now.
#[derive(Debug)]
pub struct DbMetrics {
    backend: &'static str,
    pools: Vec<PoolState>,
}

impl DbMetrics {
    /// The metrics of a store of this backend with these pools.
    pub fn new(backend: &'static str, pools: Vec<PoolState>) -> Self {
        Self { backend, pools }
    }
}

impl Collector for DbMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let b = ("backend", self.backend);
        {
            let mut m = encoder.encode_descriptor(
                "muster_db_connections",
                "Database connections open, by pool and state.",
                None,
                MetricType::Gauge,
            )?;
            for (pool, size, idle) in &self.pools {
                let used = (*size as usize).saturating_sub(*idle);
                for (state, n) in [("in_use", used), ("idle", *idle)] {
                    let labels = [b, ("pool", pool), ("state", state)];
                    ConstGauge::new(n as i64).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "muster_db_wait_seconds",
                "Time waiting for a connection or the writer.",
                None,
                MetricType::Histogram,
            )?;
            for (kind, t) in [("write", &WRITE_WAIT), ("read", &READ_WAIT)] {
                t.encode(m.encode_family(&[b, ("kind", kind)])?)?;
            }
        }
        let mut one = |name: &str, help: &str, t: &Timing| -> Result<(), std::fmt::Error> {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            t.encode(m.encode_family(&[b])?)
        };
        one(
            "muster_db_write_transaction_seconds",
            "A write transaction, from its start to its commit.",
            &WRITE_TX,
        )?;
        one(
            "muster_db_commit_seconds",
            "The commit of a write transaction.",
            &COMMIT,
        )?;
        if self.backend == "sqlite" {
            one(
                "muster_db_inline_statement_seconds",
                "A statement run on the request's own thread (the writer's, and the readers' index lookups).",
                &INLINE,
            )?;
        }
        {
            let mut m = encoder.encode_descriptor(
                "muster_db_committed_transactions",
                "Write transactions committed; divided by muster_db_commit_seconds_count, the requests one commit covers.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(COMMITTED_TRANSACTIONS.load(Ordering::Relaxed))
                .encode(m.encode_family(&[b])?)?;
        }
        let m = encoder.encode_descriptor(
            "muster_sync_log_entries",
            "Sync log entries written.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(SYNC_LOG_ENTRIES.load(Ordering::Relaxed)).encode(m)?;
        let m = encoder.encode_descriptor(
            "muster_events",
            "Event feed events written.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(EVENTS_WRITTEN.load(Ordering::Relaxed)).encode(m)?;
        Ok(())
    }
}
