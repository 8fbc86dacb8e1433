//! Delivering the feed to endpoints. An instance takes an endpoint's lease in the database
//! (so one instance at a time delivers to it), builds the next batch after the endpoint's
//! cursor, signs it, and after sending records the attempt: on success the cursor moves past
//! the batch; on failure the same batch is retried with exponential backoff and jitter, until the
//! endpoint has failed for longer than `give_up_after_secs` and is marked failing. Events reach
//! each endpoint in `seq` order, at least once; `webhook-id` is stable across retries, so
//! receivers deduplicate by it.
//!
//! An administrator may also ask for one kept event to be sent again, or for a test event
//! (`webhook.test`, `seq` 0, never in the feed). Those wait in a queue of their own and go out
//! once each, ahead of the endpoint's next batch and under the same lease (so still one request
//! in flight per endpoint); their attempt is logged and changes neither the cursor nor the retry
//! schedule.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::{CoreResult, StoreError};
use crate::events::feed::{EventActor, EventView};
use crate::model::{
    Actor, DeliveryKind, ManualDelivery, Outcome as LogOutcome, WebhookDelivery, WebhookEndpoint,
};
use crate::muster::Muster;
use crate::muster::WebhookSettings;
use crate::synclog::admin_entry;
use crate::synclog::event::Event;
use crate::webhooks::signing::sign;
use rand::Rng;
use serde_json::json;

/// The most of a receiver's answer the delivery log keeps.
pub const RESPONSE_KEPT: usize = 1024;

/// A delivery to make.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The endpoint, as leased.
    pub endpoint: WebhookEndpoint,
    /// The headers: content type and the three Standard Webhooks headers.
    pub headers: Vec<(&'static str, String)>,
    /// `{"events": [...]}`.
    pub body: Vec<u8>,
    /// The batch's first `seq`.
    pub first_seq: i64,
    /// The batch's last `seq`.
    pub last_seq: i64,
    /// What is sent.
    pub kind: DeliveryKind,
    /// The queued request, for a redelivery or a test event.
    pub manual: Option<ManualDelivery>,
}

/// What a receiver did with a delivery.
#[derive(Debug, Clone)]
pub struct Response {
    /// Its HTTP status, when it answered.
    pub status: Option<u16>,
    /// How long it took.
    pub latency: Duration,
    /// The start of its answer.
    pub body: String,
    /// Why there was no 2xx.
    pub error: Option<String>,
}

impl Response {
    fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The delay before retry number `attempts` (1 for the first retry): doubling from the base up
/// to the maximum, then a random point in its upper half, so failing endpoints do not retry in
/// step.
pub fn backoff(attempts: i64, s: &WebhookSettings, random: f64) -> i64 {
    let exp = attempts.clamp(1, 30) - 1;
    let full = s
        .retry_base_secs
        .max(1)
        .saturating_mul(1_i64 << exp)
        .min(s.retry_max_secs.max(1));
    let half = full / 2;
    half + ((full - half) as f64 * random.clamp(0.0, 1.0)) as i64
}

/// A signed delivery of `events` to `w`, under message id `id`.
fn outgoing(
    w: WebhookEndpoint,
    id: String,
    events: Vec<EventView>,
    now: Timestamp,
    kind: DeliveryKind,
    manual: Option<ManualDelivery>,
) -> CoreResult<Outgoing> {
    let body = serde_json::to_vec(&json!({ "events": events }))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let timestamp = now.micros() / 1_000_000;
    let signature = sign(&w.secret, &id, timestamp, &body)
        .ok_or_else(|| StoreError::Corrupt("a webhook secret that does not decode".into()))?;
    Ok(Outgoing {
        endpoint: w,
        headers: vec![
            ("content-type", "application/json".into()),
            ("webhook-id", id),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ],
        body,
        first_seq: 0,
        last_seq: 0,
        kind,
        manual,
    })
}

impl Outgoing {
    fn at(mut self, seq: i64) -> Outgoing {
        (self.first_seq, self.last_seq) = (seq, seq);
        self
    }
}

/// The test event: `webhook.test`, `seq` 0 (it is not in the feed), a fresh id.
fn test_event(w: &WebhookEndpoint, now: Timestamp) -> EventView {
    EventView {
        seq: 0,
        id: uuid::Uuid::new_v4().to_string(),
        kind: "webhook.test".into(),
        occurred_at: now.to_rfc3339(),
        environment: w.environment_id.to_string(),
        provider: None,
        actor: EventActor {
            kind: "system",
            name: None,
            provider_id: None,
        },
        data: json!({
            "webhook": w.id.to_string(),
            "message": "A test event from Muster: this endpoint is reachable and can verify its signature.",
        }),
    }
}

/// The endpoint's next batch of the feed, signed; or, when it has nothing newer, the head it can
/// skip to.
async fn feed_batch(
    tx: &mut Box<dyn crate::store::Tx>,
    w: &WebhookEndpoint,
    batch_size: u64,
    now: Timestamp,
) -> CoreResult<Result<Outgoing, i64>> {
    // The head before the events: every event up to it is visible to the read below, so when
    // none of them is for this endpoint its cursor can skip to it.
    let head = tx.event_head().await?;
    let rows = tx
        .events_after(
            w.environment_id,
            w.after_seq,
            batch_size.max(1),
            &w.event_types,
        )
        .await?;
    let (Some((first, _)), Some((last, _))) = (rows.first(), rows.last()) else {
        return Ok(Err(head));
    };
    let (first, last) = (*first, *last);
    let id = if rows.len() == 1 {
        rows[0].1.id.to_string()
    } else {
        format!("msg_{}_{first}_{last}", w.id.0.simple())
    };
    let events: Vec<EventView> = rows
        .into_iter()
        .map(|(seq, e)| EventView::new(seq, e))
        .collect();
    let mut out = outgoing(w.clone(), id, events, now, DeliveryKind::Feed, None)?;
    (out.first_seq, out.last_seq) = (first, last);
    Ok(Ok(out))
}

/// Gives an endpoint's lease back without touching its schedule.
async fn release(tx: &mut Box<dyn crate::store::Tx>, w: &WebhookEndpoint) -> CoreResult<()> {
    if let Some(mut fresh) = tx.find_webhook(w.environment_id, w.id).await? {
        fresh.lease_until = None;
        tx.update_webhook(&fresh).await?;
    }
    Ok(())
}

impl Muster {
    /// Takes an endpoint that is due and builds its next delivery; `None` when no endpoint has
    /// anything to send now.
    pub async fn next_delivery(&self) -> CoreResult<Option<Outgoing>> {
        let s = &self.settings.webhooks;
        // Everything committed so far is numbered and can go out.
        self.store.settle_events().await?;
        // A few endpoints may have nothing new: look at others before giving up.
        for _ in 0..20 {
            let now = self.now();
            // Looked at on a reader first: the writer is taken only when there is work, not on
            // every look (each commit of an event wakes the sender).
            if !self.store.read().await?.any_webhook_due(now).await? {
                return Ok(None);
            }
            let mut tx = self.store.write().await?;
            let lease_until = now.plus_secs(s.lease_secs.max(1));
            let Some(mut w) = tx.claim_due_webhook(now, lease_until).await? else {
                return Ok(None);
            };
            tx.commit().await?;
            w.lease_until = Some(lease_until);
            let mut rx = self.store.read().await?;
            if let Some(manual) = rx.next_manual_delivery(w.id).await? {
                let rows = match manual.seq {
                    Some(seq) => rx.events_after(w.environment_id, seq - 1, 1, &[]).await?,
                    None => Vec::new(),
                };
                drop(rx);
                let event = match (manual.seq, rows.into_iter().next()) {
                    (None, _) => test_event(&w, now),
                    (Some(seq), Some((found, e))) if found == seq => EventView::new(seq, e),
                    (Some(_), _) => {
                        // Pruned since it was asked for: nothing to send.
                        let mut tx = self.store.write().await?;
                        tx.delete_manual_delivery(manual.id).await?;
                        release(&mut tx, &w).await?;
                        tx.commit().await?;
                        continue;
                    }
                };
                let kind = match manual.seq {
                    Some(_) => DeliveryKind::Redeliver,
                    None => DeliveryKind::Test,
                };
                let (seq, id) = (event.seq, event.id.clone());
                return Ok(Some(
                    outgoing(w, id, vec![event], now, kind, Some(manual))?.at(seq),
                ));
            }
            if !w.enabled || w.next_attempt_at > now {
                // Taken for a manual delivery another instance has sent meanwhile.
                drop(rx);
                let mut tx = self.store.write().await?;
                release(&mut tx, &w).await?;
                tx.commit().await?;
                continue;
            }
            let batch = feed_batch(&mut rx, &w, s.batch_size, now).await?;
            drop(rx);
            match batch {
                Ok(out) => return Ok(Some(out)),
                Err(head) => {
                    // Nothing for this endpoint: skip what it does not subscribe to (or what is
                    // of another environment); it is due again when a newer event commits.
                    let mut tx = self.store.write().await?;
                    if let Some(mut fresh) = tx.find_webhook(w.environment_id, w.id).await? {
                        fresh.after_seq = fresh.after_seq.max(head);
                        fresh.lease_until = None;
                        tx.update_webhook(&fresh).await?;
                        tx.commit().await?;
                    }
                }
            }
        }
        Ok(None)
    }

    /// Records a delivery's outcome: the cursor moves past the batch on success; on failure the
    /// endpoint is retried later, or marked failing once it has failed for too long. After a
    /// success, when the endpoint has more to receive, its lease is kept and its next delivery
    /// returned, built in the same transaction (one write per delivery while it catches up).
    pub async fn delivery_done(
        &self,
        out: &Outgoing,
        r: &Response,
    ) -> CoreResult<Option<Outgoing>> {
        let s = &self.settings.webhooks;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let w = &out.endpoint;
        let Some(mut fresh) = tx.find_webhook(w.environment_id, w.id).await? else {
            return Ok(None); // deleted meanwhile
        };
        let body: String = r.body.chars().take(RESPONSE_KEPT).collect();
        tx.insert_delivery(&WebhookDelivery {
            id: 0,
            webhook_id: w.id,
            environment_id: w.environment_id,
            attempted_at: now,
            first_seq: out.first_seq,
            last_seq: out.last_seq,
            status_code: r.status.map(i64::from),
            latency_ms: r.latency.as_millis() as i64,
            response: body,
            error: r.error.clone(),
            kind: out.kind,
        })
        .await?;
        fresh.lease_until = None;
        if let Some(manual) = out.manual {
            // Sent once, whatever came back; the endpoint's own schedule is left as it was.
            tx.delete_manual_delivery(manual.id).await?;
        } else if r.succeeded() {
            fresh.after_seq = fresh.after_seq.max(out.last_seq);
            fresh.attempts = 0;
            fresh.first_failure_at = None;
            fresh.next_attempt_at = now;
            fresh.updated_at = now;
            if fresh.enabled && tx.next_manual_delivery(w.id).await?.is_none() {
                let next = feed_batch(&mut tx, &fresh, s.batch_size, now).await?;
                let next = match next {
                    Ok(mut next) => {
                        let until = now.plus_secs(s.lease_secs.max(1));
                        fresh.lease_until = Some(until);
                        next.endpoint.lease_until = Some(until);
                        Some(next)
                    }
                    Err(head) => {
                        fresh.after_seq = fresh.after_seq.max(head);
                        None
                    }
                };
                tx.update_webhook(&fresh).await?;
                tx.commit().await?;
                return Ok(next);
            }
        } else {
            fresh.attempts += 1;
            let since = *fresh.first_failure_at.get_or_insert(now);
            if now.micros() - since.micros() >= s.give_up_after_secs * 1_000_000 {
                fresh.failing = true;
                fresh.enabled = false;
                self.record(
                    &mut tx,
                    &[crate::model::SyncLogEntry {
                        outcome: LogOutcome::Error,
                        message: Some(format!(
                            "deliveries failed for {} seconds: turned off until re-enabled",
                            (now.micros() - since.micros()) / 1_000_000
                        )),
                        ..admin_entry(
                            w.environment_id,
                            now,
                            &Actor::System,
                            Event::WebhookFailing,
                            (
                                "webhook",
                                w.id.to_string(),
                                &super::without_password(&w.url),
                            ),
                            json!({"attempts": fresh.attempts, "after": fresh.after_seq}),
                        )
                    }],
                )
                .await?;
            } else {
                let wait = backoff(fresh.attempts, s, rand::thread_rng().gen::<f64>());
                fresh.next_attempt_at = now.plus_secs(wait);
            }
        }
        fresh.updated_at = now;
        tx.update_webhook(&fresh).await?;
        tx.commit().await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_with_jitter_up_to_the_maximum() {
        let s = WebhookSettings {
            retry_base_secs: 5,
            retry_max_secs: 3600,
            ..WebhookSettings::default()
        };
        assert_eq!(backoff(1, &s, 1.0), 5);
        assert_eq!(backoff(1, &s, 0.0), 2);
        assert_eq!(backoff(3, &s, 1.0), 20);
        assert_eq!(backoff(3, &s, 0.0), 10);
        assert_eq!(backoff(40, &s, 1.0), 3600, "capped");
        assert!((1800..=3600).contains(&backoff(12, &s, 0.5)));
    }
}
