//! Webhooks (docs/webhooks.md): endpoints that receive the event feed, each following it with a
//! cursor of its own, in `seq` order, signed the Standard Webhooks way ([`signing`]), retried
//! with backoff when they fail ([`delivery`]).

pub mod delivery;
pub mod signing;

use std::net::IpAddr;

use crate::error::{CoreError, CoreResult};
use crate::events::kind::EventType;
use crate::ids::{EnvironmentId, WebhookId};
use crate::model::{Actor, WebhookDelivery, WebhookEndpoint};
use crate::muster::Muster;
use crate::synclog::admin_entry;
use crate::synclog::event::Event;
use serde_json::json;

/// An endpoint just made or given a new secret, with its secret (shown once).
#[derive(Debug)]
pub struct WithSecret {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// Its signing secret.
    pub secret: String,
}

/// What an administrator sets on an endpoint.
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    /// Where deliveries go.
    pub url: Option<String>,
    /// For people.
    pub description: Option<String>,
    /// Types and families (`user.`); every type when empty.
    pub event_types: Option<Vec<String>>,
    /// On or off; turning a failing endpoint on resumes from where it stopped.
    pub enabled: Option<bool>,
}

/// Checks a URL: http or https, a host, and (unless allowed) not a loopback, link-local or
/// private address, so Muster cannot be made to call into the network it runs in.
pub fn check_url(url: &str, allow_private: bool) -> CoreResult<String> {
    let bad = |why: &str| CoreError::Invalid(format!("webhook URL '{url}': {why}"));
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("use http:// or https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    if host.is_empty() || url.len() > 2000 {
        return Err(bad("it needs a host"));
    }
    if !allow_private {
        let lower = host.to_ascii_lowercase();
        let private = match lower.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => {
                a.is_loopback() || a.is_private() || a.is_link_local() || a.is_unspecified()
            }
            Ok(IpAddr::V6(a)) => {
                a.is_loopback()
                    || a.is_unspecified()
                    || (a.segments()[0] & 0xfe00) == 0xfc00
                    || (a.segments()[0] & 0xffc0) == 0xfe80
            }
            Err(_) => lower == "localhost" || lower.ends_with(".localhost"),
        };
        if private {
            return Err(bad(
                "loopback, link-local and private addresses are refused (see allow_private_webhook_urls)",
            ));
        }
    }
    Ok(url.to_string())
}

/// The endpoint `id` of the environment, or `NotFound`.
async fn found(
    tx: &mut Box<dyn crate::store::Tx>,
    env: EnvironmentId,
    id: WebhookId,
) -> CoreResult<WebhookEndpoint> {
    tx.find_webhook(env, id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no webhook endpoint {id}")))
}

fn check_types(types: &[String]) -> CoreResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in types.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        if !EventType::valid_filter(t) {
            return Err(CoreError::Invalid(format!(
                "'{t}' is not an event type or family (docs/events.md lists them)"
            )));
        }
        if !out.iter().any(|x| x == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

impl Muster {
    /// Records an administrator's change to an endpoint in the sync log, and commits.
    async fn log_and_commit(
        &self,
        mut tx: Box<dyn crate::store::Tx>,
        w: &WebhookEndpoint,
        actor: &Actor,
        now: crate::clock::Timestamp,
        event: Event,
        details: serde_json::Value,
    ) -> CoreResult<()> {
        let entry = admin_entry(
            w.environment_id,
            now,
            actor,
            event,
            ("webhook", w.id.to_string(), &w.url),
            details,
        );
        self.record(&mut tx, &[entry]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds an endpoint; it receives the events that commit from now on.
    pub async fn create_webhook(
        &self,
        env: EnvironmentId,
        input: &WebhookInput,
        actor: &Actor,
    ) -> CoreResult<WithSecret> {
        let url = check_url(
            input.url.as_deref().unwrap_or_default(),
            self.settings.webhooks.allow_private_urls,
        )?;
        let event_types = check_types(input.event_types.as_deref().unwrap_or_default())?;
        let now = self.now();
        let secret = signing::new_secret();
        // The endpoint starts after every event committed before it was created.
        self.store.settle_events().await?;
        let mut tx = self.store.write().await?;
        let w = WebhookEndpoint {
            environment_id: env,
            id: WebhookId::new(),
            url,
            description: input.description.clone().unwrap_or_default(),
            event_types,
            secret: secret.clone(),
            enabled: input.enabled.unwrap_or(true),
            failing: false,
            after_seq: tx.event_head().await?,
            attempts: 0,
            first_failure_at: None,
            next_attempt_at: now,
            lease_until: None,
            created_at: now,
            updated_at: now,
        };
        tx.insert_webhook(&w).await?;
        self.log_and_commit(
            tx,
            &w,
            actor,
            now,
            Event::WebhookCreated,
            json!({"eventTypes": w.event_types}),
        )
        .await?;
        Ok(WithSecret {
            endpoint: w,
            secret,
        })
    }

    /// The environment's endpoints.
    pub async fn list_webhooks(&self, env: EnvironmentId) -> CoreResult<Vec<WebhookEndpoint>> {
        let mut tx = self.store.read().await?;
        Ok(tx.list_webhooks(env).await?)
    }

    /// One endpoint.
    pub async fn get_webhook(
        &self,
        env: EnvironmentId,
        id: WebhookId,
    ) -> CoreResult<WebhookEndpoint> {
        let mut tx = self.store.read().await?;
        found(&mut tx, env, id).await
    }

    /// Changes an endpoint's URL, description, types, or turns it on or off. Turning a failing
    /// endpoint back on resumes from the first event it has not received.
    pub async fn update_webhook(
        &self,
        env: EnvironmentId,
        id: WebhookId,
        input: &WebhookInput,
        actor: &Actor,
    ) -> CoreResult<WebhookEndpoint> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut w = found(&mut tx, env, id).await?;
        if let Some(url) = &input.url {
            w.url = check_url(url, self.settings.webhooks.allow_private_urls)?;
        }
        if let Some(d) = &input.description {
            w.description = d.clone();
        }
        if let Some(t) = &input.event_types {
            w.event_types = check_types(t)?;
        }
        if let Some(on) = input.enabled {
            if on && (!w.enabled || w.failing) {
                w.failing = false;
                w.attempts = 0;
                w.first_failure_at = None;
                w.next_attempt_at = now;
            }
            w.enabled = on;
        }
        w.updated_at = now;
        tx.update_webhook(&w).await?;
        self.log_and_commit(
            tx,
            &w,
            actor,
            now,
            Event::WebhookUpdated,
            json!({"enabled": w.enabled, "eventTypes": w.event_types}),
        )
        .await?;
        Ok(w)
    }

    /// Gives an endpoint a new signing secret (shown once); deliveries are signed with it from
    /// now on.
    pub async fn rotate_webhook_secret(
        &self,
        env: EnvironmentId,
        id: WebhookId,
        actor: &Actor,
    ) -> CoreResult<WithSecret> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut w = found(&mut tx, env, id).await?;
        w.secret = signing::new_secret();
        w.updated_at = now;
        tx.update_webhook(&w).await?;
        self.log_and_commit(tx, &w, actor, now, Event::WebhookSecretRotated, json!({}))
            .await?;
        let secret = w.secret.clone();
        Ok(WithSecret {
            endpoint: w,
            secret,
        })
    }

    /// Sets an endpoint to deliver again every event after `after` (a replay), from now on, in
    /// order. `after` must still be kept (retention) and not beyond the newest event.
    pub async fn replay_webhook(
        &self,
        env: EnvironmentId,
        id: WebhookId,
        after: i64,
        actor: &Actor,
    ) -> CoreResult<WebhookEndpoint> {
        let now = self.now();
        self.store.settle_events().await?;
        let mut tx = self.store.write().await?;
        let (head, horizon) = (tx.event_head().await?, tx.event_horizon().await?);
        if after < horizon || after > head {
            return Err(CoreError::Invalid(format!(
                "replay after a seq from {horizon} (the oldest kept) to {head} (the newest)"
            )));
        }
        let mut w = found(&mut tx, env, id).await?;
        let before = w.after_seq;
        w.after_seq = after;
        w.attempts = 0;
        w.first_failure_at = None;
        w.next_attempt_at = now;
        w.updated_at = now;
        tx.update_webhook(&w).await?;
        self.log_and_commit(
            tx,
            &w,
            actor,
            now,
            Event::WebhookReplayed,
            json!({"before": before, "after": after}),
        )
        .await?;
        Ok(w)
    }

    /// Queues event `seq` to be sent to the endpoint once more, out of its order, under the
    /// event's own `webhook-id` (docs/webhooks.md). The event must still be kept and be of the
    /// endpoint's environment. Returns the queued request's id.
    pub async fn redeliver_webhook_event(
        &self,
        env: EnvironmentId,
        id: WebhookId,
        seq: i64,
        actor: &Actor,
    ) -> CoreResult<i64> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let w = found(&mut tx, env, id).await?;
        let kept = tx.events_after(env, seq - 1, 1, &[]).await?;
        if seq < 1 || kept.first().map(|(s, _)| *s) != Some(seq) {
            let horizon = tx.event_horizon().await?;
            return Err(CoreError::NotFound(if seq >= 1 && seq <= horizon {
                format!(
                    "event {seq} is no longer kept (retention removed events through {horizon})"
                )
            } else {
                format!("no event {seq} in this environment")
            }));
        }
        let queued = tx.insert_manual_delivery(env, id, Some(seq), now).await?;
        self.log_and_commit(
            tx,
            &w,
            actor,
            now,
            Event::WebhookRedelivered,
            json!({"seq": seq}),
        )
        .await?;
        Ok(queued)
    }

    /// Queues a test event (`webhook.test`) for the endpoint, sent even while it is turned off,
    /// so a receiver can be checked before it is turned on. Returns the queued request's id.
    pub async fn send_test_webhook(
        &self,
        env: EnvironmentId,
        id: WebhookId,
        actor: &Actor,
    ) -> CoreResult<i64> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let w = found(&mut tx, env, id).await?;
        let queued = tx.insert_manual_delivery(env, id, None, now).await?;
        self.log_and_commit(tx, &w, actor, now, Event::WebhookTestSent, json!({}))
            .await?;
        Ok(queued)
    }

    /// Deletes an endpoint and its delivery log.
    pub async fn delete_webhook(
        &self,
        env: EnvironmentId,
        id: WebhookId,
        actor: &Actor,
    ) -> CoreResult<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let w = found(&mut tx, env, id).await?;
        tx.delete_webhook(env, id).await?;
        self.log_and_commit(tx, &w, actor, now, Event::WebhookDeleted, json!({}))
            .await?;
        Ok(())
    }

    /// For `/metrics`: endpoints on, endpoints failing, and the most events an endpoint that is
    /// on has yet to receive.
    pub async fn webhook_status(&self) -> CoreResult<(u64, u64, i64)> {
        let mut tx = self.store.read().await?;
        Ok(tx.webhook_status().await?)
    }

    /// An endpoint's delivery attempts, newest first.
    pub async fn webhook_deliveries(
        &self,
        env: EnvironmentId,
        id: WebhookId,
        limit: u64,
    ) -> CoreResult<Vec<WebhookDelivery>> {
        let mut tx = self.store.read().await?;
        found(&mut tx, env, id).await?;
        Ok(tx.list_deliveries(env, id, limit.clamp(1, 1000)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_to_the_inside_are_refused_unless_allowed() {
        for bad in [
            "ftp://x.example.com",
            "https://",
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://10.1.2.3/",
            "http://192.168.0.5/",
            "http://169.254.169.254/latest",
            "http://[::1]:8080/",
            "http://[fd00::1]/",
            "http://0.0.0.0/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("https://hooks.example.com/muster?x=1", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url("ftp://x", true).is_err());
    }
}
