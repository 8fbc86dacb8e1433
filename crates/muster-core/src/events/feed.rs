//! Reading the event feed: a page of events after a cursor (`seq`), optionally waiting for the
//! next commit (long poll), the head, and retention.
//!
//! `nextAfter` is where the next read starts. When a page is not full it is the head as read
//! *before* the page: every event up to that head had committed by then (the store hands out
//! `seq`s in commit order), so skipping to it drops nothing, and a filtered reader does not scan
//! the same unrelated events again.

use std::time::Duration;

use crate::error::{CoreError, CoreResult};
use crate::events::kind::EventType;
use crate::ids::{EnvironmentId, ProviderId};
use crate::model::{Actor, FeedEvent};
use crate::muster::Muster;
use crate::synclog::retention::{cutoff, RETENTION_BATCH};
use serde::Serialize;
use serde_json::Value;

/// The most events one page holds.
pub const MAX_LIMIT: u64 = 1000;
/// The longest a read waits for a new event.
pub const MAX_WAIT_SECS: u64 = 30;
/// How often the feed's head is read while reads wait (other instances' commits are seen this
/// way too).
const POLL: Duration = Duration::from_millis(100);

/// Who made a change, as events show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventActor {
    /// `provider`, `admin` or `system`.
    pub kind: &'static str,
    /// An administrator's name (`console:ada`, `api-token:deploy`, `cli:root`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A provider actor's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<ProviderId>,
}

/// One event as applications read it (docs/events.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    /// Its place in the feed: increasing in commit order.
    pub seq: i64,
    /// Stable across deliveries: deduplicate by it.
    pub id: String,
    /// What happened, such as `user.created`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When (RFC 3339).
    pub occurred_at: String,
    /// The environment's id.
    pub environment: String,
    /// The provider whose resource changed, if any.
    pub provider: Option<ProviderId>,
    /// Who made the change.
    pub actor: EventActor,
    /// The resource as the API shows it after the change.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
}

impl EventView {
    /// The view of a stored event.
    pub fn new(seq: i64, e: FeedEvent) -> EventView {
        let actor = match e.actor {
            Actor::Provider { id } => EventActor {
                kind: "provider",
                name: None,
                provider_id: Some(id),
            },
            Actor::Admin { name } => EventActor {
                kind: "admin",
                name: Some(name),
                provider_id: None,
            },
            Actor::System => EventActor {
                kind: "system",
                name: None,
                provider_id: None,
            },
        };
        EventView {
            seq,
            id: e.id.to_string(),
            kind: e.kind,
            occurred_at: e.occurred_at.to_rfc3339(),
            environment: e.environment_id.to_string(),
            provider: e.provider_id,
            actor,
            data: e.data,
        }
    }
}

/// A page of events.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    /// In `seq` order.
    pub events: Vec<EventView>,
    /// Pass back as `after` for the next page.
    pub next_after: i64,
}

/// What a read asks for.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Events after this `seq`; from the oldest kept when `None`.
    pub after: Option<i64>,
    /// At most this many (1 to [`MAX_LIMIT`]).
    pub limit: u64,
    /// Only these types or families (`user.`); every type when empty.
    pub types: Vec<String>,
    /// Wait up to this long for an event when there is none yet.
    pub wait: Duration,
}

/// Why a read was refused.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Events after the cursor were deleted by retention.
    #[error("events after {after} are no longer kept (kept through retention from {horizon} on): read the directory again, then follow the feed from its asOf")]
    Gone { after: i64, horizon: i64 },
    /// Anything else.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl<E: Into<CoreError>> From<E> for Box<FeedError> {
    fn from(e: E) -> Self {
        Box::new(FeedError::Core(e.into()))
    }
}

/// Checks a read's parameters.
pub fn check_query(q: &EventQuery) -> CoreResult<()> {
    if q.limit == 0 || q.limit > MAX_LIMIT {
        return Err(CoreError::Invalid(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    if q.after.is_some_and(|a| a < 0) {
        return Err(CoreError::Invalid("after must be 0 or more".into()));
    }
    if q.wait > Duration::from_secs(MAX_WAIT_SECS) {
        return Err(CoreError::Invalid(format!(
            "wait is at most {MAX_WAIT_SECS} seconds"
        )));
    }
    if let Some(bad) = q.types.iter().find(|t| !EventType::valid_filter(t)) {
        return Err(CoreError::Invalid(format!(
            "'{bad}' is not an event type or family (docs/events.md lists them)"
        )));
    }
    Ok(())
}

impl Muster {
    /// The newest `seq` committed: where an application that has just read the directory starts
    /// following the feed.
    pub async fn event_head(&self) -> CoreResult<i64> {
        self.store.settle_events().await?;
        let mut tx = self.store.read().await?;
        Ok(tx.event_head().await?)
    }

    /// A page of the environment's events after the cursor; with `wait`, waits until one
    /// commits or the time is up.
    pub async fn read_events(
        &self,
        env: EnvironmentId,
        q: &EventQuery,
    ) -> Result<EventPage, Box<FeedError>> {
        check_query(q)?;
        let deadline = tokio::time::Instant::now() + q.wait;
        loop {
            self.store.settle_events().await?;
            let mut tx = self.store.read().await?;
            let horizon = tx.event_horizon().await?;
            let head = tx.event_head().await?;
            let after = match q.after {
                Some(a) if a < horizon => {
                    return Err(Box::new(FeedError::Gone { after: a, horizon }))
                }
                Some(a) if a > head => {
                    return Err(Box::new(FeedError::Core(CoreError::Invalid(format!(
                        "after is {a}, but the newest event is {head}"
                    )))))
                }
                Some(a) => a,
                None => horizon,
            };
            let rows = tx.events_after(env, after, q.limit, &q.types).await?;
            drop(tx);
            let full = rows.len() as u64 == q.limit;
            let last = rows.last().map(|(seq, _)| *seq);
            if !rows.is_empty() || tokio::time::Instant::now() >= deadline {
                let next_after = match (full, last) {
                    (true, Some(l)) => l,
                    (_, l) => l.unwrap_or(after).max(head),
                };
                return Ok(EventPage {
                    events: rows
                        .into_iter()
                        .map(|(s, e)| EventView::new(s, e))
                        .collect(),
                    next_after,
                });
            }
            // Wait for the head to move past the one just read. One task reads the head for
            // every waiting read, so a thousand waiting applications cost the database what one
            // does; each reads its page again only when something committed.
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let mut moved = self.feed_head();
            let waited = tokio::time::timeout(left, async move {
                moved.wait_for(|h| *h > head).await.map(|_| ())
            })
            .await;
            if let Ok(Err(_)) = waited {
                // The head's reader stopped (no one was waiting a moment ago): look again soon.
                tokio::time::sleep(left.min(POLL)).await;
            }
        }
    }

    /// The feed's head, kept current (every [`POLL`]) by one task while any read waits on it;
    /// the task starts with the first waiting read and ends when none is left.
    fn feed_head(&self) -> tokio::sync::watch::Receiver<i64> {
        let mut slot = match self.memo.feed_head.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(rx) = slot.as_ref().filter(|rx| rx.has_changed().is_ok()) {
            return rx.clone();
        }
        let (tx, rx) = tokio::sync::watch::channel(-1);
        let muster = self.clone();
        tokio::spawn(async move {
            // The slot keeps one receiver; past it, someone is waiting.
            while tx.receiver_count() > 1 {
                if let Ok(h) = muster.event_head().await {
                    tx.send_if_modified(|v| std::mem::replace(v, h) != h);
                }
                tokio::time::sleep(POLL).await;
            }
        });
        *slot = Some(rx.clone());
        rx
    }

    /// Deletes events older than `retention_days`, oldest first and in batches; how many. A
    /// cursor from before what is left gets [`FeedError::Gone`].
    pub async fn prune_events(&self, retention_days: u32) -> CoreResult<u64> {
        let cutoff = cutoff(self.now(), retention_days);
        let batch = RETENTION_BATCH;
        let mut total = 0;
        loop {
            let mut tx = self.store.write().await?;
            let n = tx.prune_events(cutoff, batch).await?;
            tx.commit().await?;
            total += n;
            if n < batch {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> EventQuery {
        EventQuery {
            after: Some(0),
            limit: 100,
            types: vec![],
            wait: Duration::ZERO,
        }
    }

    #[test]
    fn reads_are_checked() {
        assert!(check_query(&q()).is_ok());
        for bad in [
            EventQuery { limit: 0, ..q() },
            EventQuery { limit: 1001, ..q() },
            EventQuery {
                after: Some(-1),
                ..q()
            },
            EventQuery {
                wait: Duration::from_secs(31),
                ..q()
            },
            EventQuery {
                types: vec!["user.nope".into()],
                ..q()
            },
        ] {
            assert!(
                matches!(check_query(&bad), Err(CoreError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(check_query(&EventQuery {
            types: vec!["group.".into(), "user.created".into()],
            ..q()
        })
        .is_ok());
    }
}
