//! Sync-log retention: entries older than the retention period (90 days by default,
//! `sync_log_retention_days`) are deleted by the background task, in batches.

use crate::error::CoreResult;
use crate::muster::Muster;

/// How many entries one retention transaction deletes: small enough never to hold the writer
/// long, so provisioning goes on between batches.
pub const RETENTION_BATCH: u64 = 5_000;

/// Yields to the scheduler once (no runtime dependency in the domain crate).
pub(crate) async fn tokio_yield() {
    struct Yield(bool);
    impl std::future::Future for Yield {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if self.0 {
                std::task::Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
    }
    Yield(false).await
}

impl Muster {
    /// Deletes entries older than `retention_days`, in batches; returns how many.
    pub async fn prune_sync_log(&self, retention_days: u32) -> CoreResult<u64> {
        let cutoff = self.now().plus_secs(-(i64::from(retention_days) * 86_400));
        let mut total = 0;
        loop {
            let mut tx = self.store.write().await?;
            let n = tx.delete_log_before(cutoff, RETENTION_BATCH).await?;
            tx.commit().await?;
            total += n;
            if n < RETENTION_BATCH {
                return Ok(total);
            }
            // Let waiting writers in between batches.
            tokio_yield().await;
        }
    }
}
