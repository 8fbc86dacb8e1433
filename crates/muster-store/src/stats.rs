//! Database timings and counts for `/metrics`, kept in process-wide atomics (cheap on every
//! transaction, shared by every store of the process).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of durations.
pub struct Timing {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Timing {
    const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            d.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{b}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
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
/// Write transactions made durable by a commit (on SQLite several share one: group commit).
pub static COMMITTED_TRANSACTIONS: AtomicU64 = AtomicU64::new(0);

/// Writes the database metrics, with the pools' current connections.
pub fn render(out: &mut String, backend: &str, pools: &[(&str, u32, usize)]) {
    let b = format!("backend=\"{backend}\"");
    out.push_str("# HELP muster_db_connections Database connections open, by pool and state.\n# TYPE muster_db_connections gauge\n");
    for (pool, size, idle) in pools {
        let used = (*size as usize).saturating_sub(*idle);
        let _ = writeln!(
            out,
            "muster_db_connections{{{b},pool=\"{pool}\",state=\"in_use\"}} {used}"
        );
        let _ = writeln!(
            out,
            "muster_db_connections{{{b},pool=\"{pool}\",state=\"idle\"}} {idle}"
        );
    }
    out.push_str("# HELP muster_db_wait_seconds Time waiting for a connection or the writer.\n# TYPE muster_db_wait_seconds histogram\n");
    WRITE_WAIT.render(
        out,
        "muster_db_wait_seconds",
        &format!("{b},kind=\"write\""),
    );
    READ_WAIT.render(out, "muster_db_wait_seconds", &format!("{b},kind=\"read\""));
    out.push_str("# HELP muster_db_write_transaction_seconds A write transaction, from its start to its commit.\n# TYPE muster_db_write_transaction_seconds histogram\n");
    WRITE_TX.render(out, "muster_db_write_transaction_seconds", &b);
    out.push_str("# HELP muster_db_commit_seconds The commit of a write transaction.\n# TYPE muster_db_commit_seconds histogram\n");
    COMMIT.render(out, "muster_db_commit_seconds", &b);
    out.push_str("# HELP muster_db_committed_transactions_total Write transactions committed; divided by muster_db_commit_seconds_count, the requests one commit covers.\n# TYPE muster_db_committed_transactions_total counter\n");
    let _ = writeln!(
        out,
        "muster_db_committed_transactions_total{{{b}}} {}",
        COMMITTED_TRANSACTIONS.load(Ordering::Relaxed)
    );
    if backend == "sqlite" {
        out.push_str("# HELP muster_db_inline_statement_seconds A statement run on the request's own thread (the writer's, and the readers' index lookups).\n# TYPE muster_db_inline_statement_seconds histogram\n");
        INLINE.render(out, "muster_db_inline_statement_seconds", &b);
    }
    out.push_str("# HELP muster_sync_log_entries_total Sync log entries written.\n# TYPE muster_sync_log_entries_total counter\n");
    let _ = writeln!(
        out,
        "muster_sync_log_entries_total {}",
        SYNC_LOG_ENTRIES.load(Ordering::Relaxed)
    );
}
