//! The webhook scenario: what one subscribed endpoint costs provisioning, and how long a change
//! takes to reach a receiver.
//!
//! 1. `POST /Users` at the run's concurrency with no webhook endpoint (every change still writes
//!    its event: the outbox is always on);
//! 2. the same with one endpoint subscribed to every event, its receiver a local HTTP server that
//!    answers 204 at once (the deliveries run beside the load, as in production);
//! 3. the time the sender needs to catch up after that burst;
//! 4. one client creating users one after the other: for each, the time from the SCIM response
//!    to the `user.created` webhook arriving at the receiver (p50, p99).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};

use crate::harness::{run, user_body, Server, Stats};

/// Sequential writes whose delivery latency is measured.
const LATENCY_SAMPLES: usize = 200;

/// When each `userName` arrived at the receiver in a `user.created` event, and how many events
/// arrived in all.
#[derive(Default)]
struct Arrivals {
    created: HashMap<String, Instant>,
    events: usize,
}

/// Starts the receiver on loopback; returns its URL.
async fn receiver(arrivals: Arc<Mutex<Arrivals>>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let arrivals = arrivals.clone();
            async move {
                let now = Instant::now();
                let parsed: Value = serde_json::from_slice(&body).unwrap_or_default();
                let mut a = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                for e in parsed["events"].as_array().into_iter().flatten() {
                    a.events += 1;
                    if e["type"] == "user.created" {
                        if let Some(name) = e["data"]["userName"].as_str() {
                            a.created.insert(name.to_string(), now);
                        }
                    }
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://127.0.0.1:{port}/hook"))
}

/// Runs the scenario; users are numbered from `first`.
pub(super) async fn scenario(
    server: &Server,
    first: usize,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Stats>> {
    let Some(admin) = &server.admin_token else {
        bail!("the webhook scenario needs an administrator API token (--admin-token)");
    };
    let api = match server.base.split_once("/scim/v2/") {
        Some((root, _)) => format!("{root}/api/v1"),
        None => bail!("cannot tell the API address from {}", server.base),
    };
    let mut report = Vec::new();
    let post = move |offset: usize| {
        move |i: usize| {
            (
                reqwest::Method::POST,
                "/Users".to_string(),
                Some(user_body(offset + i)),
            )
        }
    };
    let without = run(
        server,
        "webhook: POST /Users, no endpoint",
        n,
        concurrency,
        post(first),
    )
    .await;
    let without_rps = without.rps();
    report.push(without);

    let arrivals: Arc<Mutex<Arrivals>> = Arc::default();
    let url = receiver(arrivals.clone()).await?;
    let client = reqwest::Client::new();
    let made = client
        .post(format!("{api}/webhooks"))
        .bearer_auth(admin)
        .json(&json!({"url": url, "description": "muster-bench receiver"}))
        .send()
        .await?;
    if made.status().as_u16() != 201 {
        bail!(
            "creating the webhook endpoint failed: {} (a started server allows loopback URLs; \
             with --url, set allow_private_webhook_urls = true)",
            made.text().await.unwrap_or_default()
        );
    }
    let endpoint: Value = made.json().await?;
    let head = |client: reqwest::Client| {
        let api = api.clone();
        async move {
            let v: Value = client
                .get(format!("{api}/events/head"))
                .bearer_auth(admin)
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok(v["seq"].as_i64().unwrap_or(0))
        }
    };
    let with = run(
        server,
        "webhook: POST /Users, one endpoint",
        n,
        concurrency,
        post(first + n),
    )
    .await;
    let with_rps = with.rps();
    report.push(with);

    // The sender catches up: the endpoint's cursor reaches the head.
    let target = head(client.clone()).await?;
    let started = Instant::now();
    let id = endpoint["id"].as_str().unwrap_or_default().to_string();
    loop {
        let w: Value = client
            .get(format!("{api}/webhooks/{id}"))
            .bearer_auth(admin)
            .send()
            .await?
            .json()
            .await?;
        if w["afterSeq"].as_i64().unwrap_or(0) >= target {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the webhook sender did not catch up within 5 minutes: {w}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let caught_up = started.elapsed();
    let delivered = arrivals.lock().map(|a| a.events).unwrap_or(0);
    report.push(Stats {
        name: format!("webhook: catch-up after the burst ({delivered} events)"),
        requests: delivered,
        errors: 0,
        elapsed: caught_up,
        latencies: Vec::new(),
        statuses: Vec::new(),
        peak_rss: None,
    });

    // Sequential writes, each timed from its response to its webhook.
    let base = first + 2 * n;
    let mut latencies = Vec::with_capacity(LATENCY_SAMPLES);
    let mut statuses = Vec::with_capacity(LATENCY_SAMPLES);
    let all = Instant::now();
    for i in 0..LATENCY_SAMPLES {
        let body = user_body(base + i);
        let name = body["userName"].as_str().unwrap_or_default().to_string();
        let r = client
            .post(format!("{}/Users", server.base))
            .bearer_auth(&server.token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await?;
        let answered = Instant::now();
        statuses.push(r.status().as_u16());
        let waited = Instant::now();
        let arrived = loop {
            if let Some(at) = arrivals
                .lock()
                .ok()
                .and_then(|a| a.created.get(&name).copied())
            {
                break at;
            }
            if waited.elapsed() > Duration::from_secs(30) {
                bail!("{name}'s webhook did not arrive within 30 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(arrived.saturating_duration_since(answered));
    }
    report.push(Stats {
        name: "webhook: SCIM response → delivery (one client)".into(),
        requests: LATENCY_SAMPLES,
        errors: statuses.iter().filter(|s| !(200..300).contains(*s)).count(),
        elapsed: all.elapsed(),
        latencies,
        statuses,
        peak_rss: None,
    });
    println!(
        "webhook: POST /Users with one endpoint at {:.0}% of the rate without ({with_rps:.0} vs {without_rps:.0} req/s)",
        100.0 * with_rps / without_rps.max(1e-9)
    );
    let _ = client
        .delete(format!("{api}/webhooks/{id}"))
        .bearer_auth(admin)
        .send()
        .await;
    Ok(report)
}
