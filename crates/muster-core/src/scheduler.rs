//! Due deactivations: the work the background scheduler does on every tick.
//!
//! Deactivation times live in the database (`deactivate_at`), so they survive restarts and an
//! overdue one runs at the next tick. Each user is deactivated in its own transaction guarded by
//! the version it was read at: when several Muster processes share a database, the first to
//! commit wins and the others find the version moved, so each deactivation, and its sync log
//! entry, happens exactly once.

use serde_json::json;

use crate::clock::Timestamp;
use crate::error::CoreResult;
use crate::lifecycle;
use crate::model::{Actor, Outcome, SyncLogEntry};
use crate::service::Muster;

/// How many due users one pass reads at a time.
const BATCH: u64 = 200;

/// Scheduled deactivations, as `/metrics` reports them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Users blocked and waiting for their deactivation.
    pub pending: u64,
    /// Of them, those whose time has passed.
    pub overdue: u64,
    /// How long the oldest overdue one has been due, in seconds (0 when none).
    pub lag_secs: f64,
}

impl Muster {
    /// Scheduled deactivations at `now`: pending, overdue, and the scheduler's lag.
    pub async fn deactivation_backlog(&self, now: Timestamp) -> CoreResult<Backlog> {
        let mut tx = self.store.read().await?;
        let (pending, overdue, oldest) = tx.deactivation_backlog(now).await?;
        let lag_secs = oldest
            .filter(|t| *t <= now)
            .map(|t| (now.0 - t.0) as f64 / 1e6)
            .unwrap_or(0.0);
        Ok(Backlog {
            pending,
            overdue,
            lag_secs,
        })
    }

    /// Deactivates every user whose deactivation is due at `now`; returns how many this call
    /// deactivated. Safe to run concurrently, in one process or several.
    pub async fn run_due_deactivations(&self, now: Timestamp) -> CoreResult<usize> {
        let mut done = 0;
        loop {
            let due = {
                let mut tx = self.store.read().await?;
                tx.due_deactivations(now, BATCH).await?
            };
            if due.is_empty() {
                return Ok(done);
            }
            let mut progressed = false;
            for candidate in due {
                let mut tx = self.store.write().await?;
                // Read again inside the write: another process may have got there first.
                let Some(mut u) = tx.find_user(candidate.environment_id, candidate.id).await?
                else {
                    continue;
                };
                let expected = u.version;
                let Some(t) = lifecycle::deactivate_if_due(&mut u, now) else {
                    if u.deactivate_at.is_some_and(|d| d <= now) {
                        // A schedule that no longer applies (the user is on legal hold, or was
                        // deactivated by other means): drop it so it does not come back.
                        u.deactivate_at = None;
                        u.version += 1;
                        if tx.update_user(&u, expected).await? {
                            tx.commit().await?;
                            progressed = true;
                        }
                    }
                    continue;
                };
                u.version += 1;
                u.updated_at = now;
                if !tx.update_user(&u, expected).await? {
                    continue;
                }
                tx.append_log(&[SyncLogEntry {
                    environment_id: u.environment_id,
                    at: now,
                    provider_id: u.provider_id,
                    actor: Actor::System,
                    action: t.action().into(),
                    subject_kind: Some("user".into()),
                    subject_id: Some(u.id.to_string()),
                    subject_name: Some(u.user_name.clone()),
                    details: json!({"reason": "the provider's deactivation delay has passed"}),
                    outcome: Outcome::Success,
                    message: None,
                }])
                .await?;
                tx.commit().await?;
                done += 1;
                progressed = true;
            }
            if !progressed {
                // Everything read was handled elsewhere; the next tick will look again.
                return Ok(done);
            }
        }
    }
}
