//! Sync-log retention: entries older than the retention period (90 days by default,
//! `sync_log_retention_days`) are deleted by the background task, in batches, and so are
//! webhook delivery attempts.

use crate::clock::Timestamp;
use crate::error::CoreResult;
use crate::muster::Muster;

/// How many entries one retention transaction deletes: small enough never to hold the writer
/// long, so provisioning goes on between batches.
pub const RETENTION_BATCH: u64 = 5_000;

/// The oldest time kept: entries strictly before it are deleted.
pub(crate) fn cutoff(now: Timestamp, retention_days: u32) -> Timestamp {
    now.plus_secs(-(i64::from(retention_days) * 86_400))
}

impl Muster {
    /// Deletes entries older than `retention_days`, and webhook delivery attempts as old (the
    /// delivery log is kept like the sync log), in batches; returns how many.
    pub async fn prune_sync_log(&self, retention_days: u32) -> CoreResult<u64> {
        let cutoff = cutoff(self.now(), retention_days);
        let mut total = 0;
        loop {
            let mut tx = self.store.write().await?;
            let n = tx.delete_log_before(cutoff, RETENTION_BATCH).await?
                + tx.delete_deliveries_before(cutoff, RETENTION_BATCH).await?;
            tx.commit().await?;
            total += n;
            if n < RETENTION_BATCH {
                return Ok(total);
            }
            // Let waiting writers in between batches.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_off_is_exactly_the_retention_period_back() {
        let day = 86_400 * 1_000_000;
        let now = Timestamp(1_000 * day);
        assert_eq!(cutoff(now, 90), Timestamp(910 * day));
        assert_eq!(cutoff(now, 1), Timestamp(999 * day));
        // The largest setting does not overflow.
        assert!(cutoff(now, u32::MAX) < now);
    }
}
