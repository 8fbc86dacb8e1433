//! The webhook sender: the background task that asks the core for the next delivery, POSTs it
//! (10 s timeout, no redirects) and reports what came back. One delivery at a time per instance;
//! the core's leases let several instances share the endpoints, each endpoint in order.

use std::time::{Duration, Instant};

use muster_core::webhooks::delivery::{Outgoing, Response, RESPONSE_KEPT};
use muster_core::Muster;

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

async fn send(client: &reqwest::Client, out: &Outgoing) -> Response {
    let started = Instant::now();
    let mut req = client.post(&out.endpoint.url).body(out.body.clone());
    for (k, v) in &out.headers {
        req = req.header(*k, v);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let body: String = text.chars().take(RESPONSE_KEPT).collect();
            let ok = (200..300).contains(&status);
            Response {
                status: Some(status),
                latency: started.elapsed(),
                body,
                error: (!ok).then(|| format!("the receiver answered {status}")),
            }
        }
        Err(e) => Response {
            status: None,
            latency: started.elapsed(),
            body: String::new(),
            error: Some(if e.is_timeout() {
                format!("no answer within {} seconds", TIMEOUT.as_secs())
            } else if e.is_connect() {
                "the connection failed".into()
            } else {
                "the request failed".into()
            }),
        },
    }
}

/// Deliveries in flight at once from one instance, each to a different endpoint (an endpoint's
/// lease keeps its own deliveries one at a time), so one slow receiver does not hold up others.
const PARALLEL: usize = 8;

/// Delivers until `stop` says so: every due delivery at once (up to [`PARALLEL`] in flight), then
/// again when this instance commits events, or every `every` (for other instances' events and
/// due retries). On stop, the deliveries in flight finish and are recorded.
pub async fn run(muster: Muster, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the webhook sender cannot start");
            return;
        }
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut inflight = tokio::task::JoinSet::new();
    // Whether any endpoint is on, as of the last tick: without one, a commit does not make the
    // sender read the database (most installations have no webhook endpoint).
    let mut any_on = true;
    let mut look = true;
    loop {
        while look && inflight.len() < PARALLEL {
            let out = match muster.next_delivery().await {
                Ok(Some(out)) => out,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "reading the next webhook delivery failed");
                    break;
                }
            };
            let (m, c) = (muster.clone(), client.clone());
            inflight.spawn(async move {
                // An endpoint catching up keeps its lease from one delivery to the next.
                let mut next = Some(out);
                while let Some(out) = next.take() {
                    let r = send(&c, &out).await;
                    if let Some(err) = &r.error {
                        tracing::warn!(webhook = %out.endpoint.id, first_seq = out.first_seq, error = %err, "a webhook delivery failed");
                    }
                    match m.delivery_done(&out, &r).await {
                        Ok(more) => next = more,
                        Err(e) => tracing::error!(error = %e, "recording a webhook delivery failed"),
                    }
                }
            });
        }
        tokio::select! {
            Some(_) = inflight.join_next(), if !inflight.is_empty() => look = true,
            _ = muster_store::EVENTS_COMMITTED.notified() => look = any_on,
            _ = ticks.tick() => {
                any_on = muster.webhook_status().await.map_or(true, |(on, _, _)| on > 0);
                look = true;
            }
            _ = stop.changed() => break,
        }
    }
    while inflight.join_next().await.is_some() {}
}
