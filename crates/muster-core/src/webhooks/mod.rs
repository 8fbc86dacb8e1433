//! Webhooks (docs/webhooks.md): endpoints that receive the event feed, each following it with a
//! cursor of its own, in `seq` order, signed the Standard Webhooks way ([`signing`]), retried
//! with backoff when they fail ([`delivery`]).

pub mod delivery;
pub mod signing;

use std::net::{IpAddr, Ipv4Addr};

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

/// Whether `ip` is an address inside the network Muster runs in, or one no receiver on the
/// internet has: loopback, private (RFC 1918, IPv6 unique local), link-local (where cloud
/// metadata services answer), shared (RFC 6598, carrier NAT and some clouds' metadata),
/// unspecified, multicast, broadcast and reserved. IPv6 forms that carry an IPv4 address
/// (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are
/// judged by the address they carry, so `[::ffff:127.0.0.1]` is loopback too.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => internal_v4(a),
        IpAddr::V6(a) => {
            let s = a.segments();
            let embedded = |hi: u16, lo: u16| {
                Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            if let Some(v4) = a.to_ipv4() {
                // `::ffff:a.b.c.d` and the deprecated `::a.b.c.d` (`::1` is loopback either way).
                return internal_v4(v4);
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return internal_v4(embedded(s[6], s[7]));
            }
            if s[0] == 0x2002 {
                return internal_v4(embedded(s[1], s[2]));
            }
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        }
    }
}

fn internal_v4(a: Ipv4Addr) -> bool {
    let [b0, b1, b2, _] = a.octets();
    a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || b0 == 0 // "this network", 0.0.0.0/8
        || (b0 == 100 && (b1 & 0xc0) == 64) // shared address space, 100.64.0.0/10
        || (b0 == 192 && b1 == 0 && b2 == 0) // IETF protocol assignments, 192.0.0.0/24
        || (b0 == 198 && (b1 & 0xfe) == 18) // benchmarking, 198.18.0.0/15
        || b0 >= 240 // reserved, 240.0.0.0/4
}

/// Checks a URL: http or https, a host, and (unless allowed) not a loopback, link-local or
/// private address, so Muster cannot be made to call into the network it runs in.
///
/// The URL is read by the same WHATWG parser the sender's HTTP client uses (`url`), so every
/// way of writing an address it accepts is judged as the address it is: `http://2130706433/`
/// and `http://0x7f.1/` are `127.0.0.1`. A host name is judged where the sender connects, by
/// the addresses it resolves to at that moment (`muster serve`'s resolver, with
/// [`is_internal`]), so a name cannot be pointed at an inside address after it was checked.
pub fn check_url(url: &str, allow_private: bool) -> CoreResult<String> {
    let bad =
        |why: &str| CoreError::Invalid(format!("webhook URL '{}': {why}", without_password(url)));
    let url = url.trim();
    if url.len() > 2000 {
        return Err(bad("it is longer than 2,000 characters"));
    }
    let parsed = url::Url::parse(url).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("use http:// or https://"));
    }
    let internal = match parsed.host() {
        None => return Err(bad("it needs a host")),
        Some(url::Host::Ipv4(a)) => internal_v4(a),
        Some(url::Host::Ipv6(a)) => is_internal(IpAddr::V6(a)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() {
                return Err(bad("it needs a host"));
            }
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    if internal && !allow_private {
        return Err(bad(
            "loopback, link-local and private addresses are refused (see allow_private_webhook_urls)",
        ));
    }
    Ok(url.to_string())
}

/// The URL as the sync log and the server's log show it: a password in it (`https://user:secret@host/`,
/// a receiver's basic authentication) replaced by `***`. The endpoint keeps the URL as given; the
/// administrators who manage endpoints see it whole, the sync log's readers and the log do not.
pub fn without_password(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only a URL that cannot have a password refuses one; this one has one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        // Not a URL: whatever comes before an `@` in what would be its authority goes.
        Err(_) => {
            let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) if scheme.is_empty() => format!("***{}", &rest[at..]),
                Some(at) => format!("{scheme}://***{}", &rest[at..]),
                None => url.to_string(),
            }
        }
    }
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
            ("webhook", w.id.to_string(), &without_password(&w.url)),
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
            "http://",
            "not a url",
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://LOCALHOST./hook",
            "http://api.localhost/hook",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.0.5/",
            "http://169.254.169.254/latest",
            "http://100.100.100.200/latest/meta-data", // a cloud's metadata, in 100.64.0.0/10
            "http://[::1]:8080/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
            // Other spellings of 127.0.0.1 that the HTTP client would connect to.
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/", // 169.254.169.254
            "http://[64:ff9b::a00:1]/",   // NAT64 of 10.0.0.1
            "http://[2002:c0a8:1::]/",    // 6to4 of 192.168.0.1
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        for good in [
            "https://hooks.example.com/muster?x=1",
            "http://93.184.215.14:8080/hook",
            "https://[2606:4700::1111]/hook",
            "https://user@hooks.example.com/",
            // The last `@` ends the user information: the host is example.com, as the client reads it.
            "http://user:pass@127.0.0.1@example.com/",
        ] {
            assert!(check_url(good, false).is_ok(), "{good}");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url("ftp://x", true).is_err());
    }

    #[test]
    fn addresses_inside_are_known_in_every_form() {
        for inside in [
            "127.0.0.1",
            "10.0.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.170",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            let ip: IpAddr = inside
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)));
            assert!(is_internal(ip), "{inside}");
        }
        for outside in [
            "8.8.8.8",
            "93.184.215.14",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.1.1",
            "198.20.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            let ip: IpAddr = outside.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert!(!is_internal(ip), "{outside}");
        }
    }

    #[test]
    fn a_password_in_a_url_is_not_shown() {
        for (given, shown) in [
            (
                "https://muster:s3cret@hooks.example.com/in?x=1",
                "https://muster:***@hooks.example.com/in?x=1",
            ),
            (
                "https://token@hooks.example.com/",
                "https://token@hooks.example.com/",
            ),
            ("https://hooks.example.com/a", "https://hooks.example.com/a"),
            ("http://u:s3cret@[::1/x", "http://***@[::1/x"),
        ] {
            assert_eq!(without_password(given), shown, "{given}");
        }
        let refused = check_url("http://u:s3cret@127.0.0.1/", false)
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default();
        assert!(
            !refused.contains("s3cret") && refused.contains("u:***@127.0.0.1"),
            "{refused}"
        );
    }
}
