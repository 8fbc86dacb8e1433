//! Webhooks: endpoints receive the event feed in `seq` order, signed the Standard Webhooks way,
//! retried with backoff after failures (the same `webhook-id` each time), logged, marked failing
//! after too long, and resumed when turned back on. Receivers are real HTTP servers on loopback;
//! a Standard Webhooks library (the PyPI `standardwebhooks` package) checks the signatures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use muster_core::model::Actor;
use muster_core::muster::WebhookSettings;
use muster_core::webhooks::delivery::Response;
use muster_core::webhooks::WebhookInput;
use muster_core::{Muster, Settings};
use serde_json::{json, Value};

use crate::api::assert_api_error;
use crate::on_both;
use crate::support::{Api, Backend, TestApp, PUBLIC_URL};

on_both!(
    a_lease_keeps_other_instances_off_until_it_runs_out,
    deliveries_are_ordered_retried_logged_and_given_up,
    one_event_again_and_a_test_event_go_out_once_ahead_of_the_feed,
    webhooks_are_managed_through_the_api
);

/// What a receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
    fn seqs(&self) -> Vec<i64> {
        serde_json::from_str::<Value>(&self.body).unwrap_or_default()["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["seq"].as_i64())
            .collect()
    }
}

/// A receiver on loopback that answers 500 to its first `failures` requests, then 200.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

async fn receiver(failures: usize) -> Receiver {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let mut list = seen.lock().unwrap_or_else(|e| e.into_inner());
                list.push(Received {
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect(),
                    body,
                });
                if list.len() <= failures {
                    (StatusCode::INTERNAL_SERVER_ERROR, "not now")
                } else {
                    (StatusCode::OK, "thanks")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://127.0.0.1:{port}/hook"),
        got,
    }
}

fn settings() -> Settings {
    Settings {
        public_url: PUBLIC_URL.into(),
        webhooks: WebhookSettings {
            allow_private_urls: true,
            retry_base_secs: 10,
            retry_max_secs: 60,
            give_up_after_secs: 300,
            batch_size: 1,
            lease_secs: 60,
        },
        ..Settings::default()
    }
}

/// Makes every delivery that is due now, as the server's sender does.
async fn deliver_due(m: &Muster) -> usize {
    let client = reqwest::Client::new();
    let mut n = 0;
    let mut next = m.next_delivery().await.unwrap_or_else(|e| panic!("{e}"));
    while let Some(out) = next.take() {
        let mut req = client.post(&out.endpoint.url).body(out.body.clone());
        for (k, v) in &out.headers {
            req = req.header(*k, v);
        }
        let started = std::time::Instant::now();
        let r = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                Response {
                    status: Some(status),
                    latency: started.elapsed(),
                    body: resp.text().await.unwrap_or_default(),
                    error: (!(200..300).contains(&status)).then(|| format!("answered {status}")),
                }
            }
            Err(_) => Response {
                status: None,
                latency: started.elapsed(),
                body: String::new(),
                error: Some("the connection failed".into()),
            },
        };
        next = match m
            .delivery_done(&out, &r)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        {
            Some(more) => Some(more),
            None => m.next_delivery().await.unwrap_or_else(|e| panic!("{e}")),
        };
        n += 1;
        assert!(n < 100, "runaway deliveries");
    }
    n
}

async fn deliveries_are_ordered_retried_logged_and_given_up(b: Backend) {
    let app = TestApp::new(b).await;
    let m = Muster::new(app.store.shared(), Arc::new(app.clock.clone()), settings());
    let env = app.env.id;
    let rx = receiver(2).await;
    let hook = m
        .create_webhook(
            env,
            &WebhookInput {
                url: Some(rx.url.clone()),
                event_types: Some(vec!["user.".into()]),
                ..WebhookInput::default()
            },
            &Actor::System,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(hook.secret.starts_with("whsec_"));
    let p = app.provider("Okta").await;
    for name in ["a", "b", "c"] {
        app.create_user(&p, &format!("{name}@example.com")).await;
    }
    app.post(&p, "/Groups", json!({"displayName": "not subscribed"}))
        .await;

    // The first attempt fails: nothing more until the backoff has passed.
    assert_eq!(deliver_due(&m).await, 1);
    assert_eq!(deliver_due(&m).await, 0, "the retry waits");
    app.clock.advance_secs(11);
    assert_eq!(deliver_due(&m).await, 1, "second attempt, fails again");
    app.clock.advance_secs(21);
    assert_eq!(
        deliver_due(&m).await,
        3,
        "third attempt succeeds, then the rest in order"
    );
    let got = rx.got.lock().map(|g| g.clone()).unwrap_or_default();
    assert_eq!(got.len(), 5);
    let seqs: Vec<Vec<i64>> = got.iter().map(Received::seqs).collect();
    assert_eq!(seqs[0], seqs[1], "a retry sends the same event");
    assert_eq!(seqs[1], seqs[2]);
    let flat: Vec<i64> = seqs[2..].iter().flatten().copied().collect();
    assert!(
        flat.windows(2).all(|w| w[0] < w[1]),
        "in seq order: {flat:?}"
    );
    assert_eq!(
        got[0].header("webhook-id"),
        got[2].header("webhook-id"),
        "stable across retries"
    );
    assert_ne!(got[2].header("webhook-id"), got[3].header("webhook-id"));
    assert!(got[0].header("webhook-signature").starts_with("v1,"));
    for r in &got {
        let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
        assert!(
            body["events"]
                .as_array()
                .is_some_and(|e| e.iter().all(|e| e["type"] == "user.created")),
            "only what it subscribed to"
        );
    }
    // Every attempt is in the log.
    let log = m
        .webhook_deliveries(env, hook.endpoint.id, 100)
        .await
        .unwrap_or_default();
    assert_eq!(log.len(), 5);
    assert_eq!(log[4].status_code, Some(500));
    assert_eq!(log[4].response, "not now");
    assert!(log[4].error.is_some());
    assert_eq!(log[0].status_code, Some(200));

    // A replay from the start sends the three again, in order.
    let first_seq = seqs[0][0];
    m.replay_webhook(env, hook.endpoint.id, first_seq - 1, &Actor::System)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deliver_due(&m).await, 3, "replayed");
    let again: Vec<i64> = rx
        .got
        .lock()
        .map(|g| g[5..].iter().flat_map(Received::seqs).collect())
        .unwrap_or_default();
    assert_eq!(again, flat);
    assert!(m
        .replay_webhook(env, hook.endpoint.id, 1_000_000, &Actor::System)
        .await
        .is_err());

    // An endpoint that never answers is retried, then marked failing, then resumed.
    let dead = m
        .create_webhook(
            env,
            &WebhookInput {
                url: Some("http://127.0.0.1:9/nobody".into()),
                ..WebhookInput::default()
            },
            &Actor::System,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    app.create_user(&p, "d@example.com").await;
    deliver_due(&m).await;
    for _ in 0..8 {
        app.clock.advance_secs(61);
        deliver_due(&m).await;
    }
    let w = m
        .get_webhook(env, dead.endpoint.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(w.failing && !w.enabled, "{w:?}");
    let failing = app
        .muster
        .query_sync_log(
            env,
            &muster_core::store::LogQuery {
                action: Some("webhook.failing".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap_or_default()
        .0;
    assert_eq!(failing.len(), 1);
    let metrics = app
        .send(axum::http::Method::GET, "/metrics", None, None)
        .await;
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("muster_webhook_endpoints_failing 1"),
        "{text}"
    );
    assert!(text.contains("muster_webhook_endpoints_on 1"), "{text}");
    let cursor = w.after_seq;
    let back = m
        .update_webhook(
            env,
            w.id,
            &WebhookInput {
                url: Some(rx.url.clone()),
                enabled: Some(true),
                ..WebhookInput::default()
            },
            &Actor::System,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!back.failing && back.enabled);
    assert!(deliver_due(&m).await >= 1, "it resumes");
    let resumed = m
        .get_webhook(env, w.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(resumed.after_seq > cursor, "from where it stopped");
    app.finish().await;
}

/// Two instances on one database: while one holds an endpoint's lease (say it was killed in the
/// middle of a delivery), the other does not deliver to it; once the lease has run out, the other
/// sends the same events again, with the same `webhook-id`.
async fn a_lease_keeps_other_instances_off_until_it_runs_out(b: Backend) {
    let app = TestApp::new(b).await;
    let first = Muster::new(app.store.shared(), Arc::new(app.clock.clone()), settings());
    let second_store = app.db.open().await;
    let second = Muster::new(
        second_store.shared(),
        Arc::new(app.clock.clone()),
        settings(),
    );
    let env = app.env.id;
    first
        .create_webhook(
            env,
            &WebhookInput {
                url: Some("http://127.0.0.1:9/unused".into()),
                ..WebhookInput::default()
            },
            &Actor::System,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = app.provider("Okta").await;
    app.create_user(&p, "lease@example.com").await;
    let taken = first
        .next_delivery()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("a delivery is due"));
    // The first instance dies here, its lease still held.
    assert!(second
        .next_delivery()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    app.clock.advance_secs(30);
    assert!(second
        .next_delivery()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    app.clock.advance_secs(31);
    let again = second
        .next_delivery()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the lease ran out: the other instance delivers"));
    assert_eq!(
        (again.first_seq, again.last_seq),
        (taken.first_seq, taken.last_seq)
    );
    let id = |o: &muster_core::webhooks::delivery::Outgoing| {
        o.headers
            .iter()
            .find(|(k, _)| *k == "webhook-id")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(id(&again), id(&taken), "the same webhook-id");
    second_store.close().await;
    app.finish().await;
}

/// An administrator sends one event again and a test event: each goes out once, ahead of the
/// endpoint's next batch, logged with its kind, without moving the endpoint's cursor or retry
/// schedule; a test event reaches an endpoint that is turned off; a failed one is not retried.
async fn one_event_again_and_a_test_event_go_out_once_ahead_of_the_feed(b: Backend) {
    use muster_core::model::DeliveryKind;
    let app = TestApp::new(b).await;
    let m = Muster::new(app.store.shared(), Arc::new(app.clock.clone()), settings());
    let env = app.env.id;
    let rx = receiver(0).await;
    let hook = m
        .create_webhook(
            env,
            &WebhookInput {
                url: Some(rx.url.clone()),
                event_types: Some(vec!["user.created".into()]),
                ..WebhookInput::default()
            },
            &Actor::System,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = hook.endpoint.id;
    let p = app.provider("Okta").await;
    app.create_user(&p, "one@example.com").await;
    app.create_user(&p, "two@example.com").await;
    assert_eq!(deliver_due(&m).await, 2);
    let first = rx
        .got
        .lock()
        .map(|g| g[0].clone())
        .unwrap_or_else(|e| panic!("{e}"));
    let s1 = first.seqs()[0];
    app.create_user(&p, "three@example.com").await;

    m.redeliver_webhook_event(env, id, s1, &Actor::System)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    m.send_test_webhook(env, id, &Actor::System)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deliver_due(&m).await, 3, "the two asked for, then the feed");
    let got = rx.got.lock().map(|g| g[2..].to_vec()).unwrap_or_default();
    assert_eq!(got[0].seqs(), vec![s1], "the event again");
    assert_eq!(got[0].header("webhook-id"), first.header("webhook-id"));
    assert_eq!(got[0].body, first.body, "the same event");
    let test: Value = serde_json::from_str(&got[1].body).unwrap_or_default();
    assert_eq!(test["events"][0]["type"], "webhook.test");
    assert_eq!(test["events"][0]["seq"], 0);
    assert_eq!(test["events"][0]["data"]["webhook"], id.to_string());
    assert!(got[1].header("webhook-signature").starts_with("v1,"));
    let s3 = got[2].seqs()[0];
    assert!(s3 > s1, "the feed goes on where it was");
    let kinds: Vec<DeliveryKind> = m
        .webhook_deliveries(env, id, 10)
        .await
        .unwrap_or_default()
        .iter()
        .map(|d| d.kind)
        .collect();
    assert_eq!(
        kinds[..3],
        [
            DeliveryKind::Feed,
            DeliveryKind::Test,
            DeliveryKind::Redeliver
        ]
    );
    assert_eq!(deliver_due(&m).await, 0, "each is sent once");

    // Turned off: a test event still goes out, the feed does not.
    m.update_webhook(
        env,
        id,
        &WebhookInput {
            enabled: Some(false),
            ..WebhookInput::default()
        },
        &Actor::System,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    app.create_user(&p, "four@example.com").await;
    m.send_test_webhook(env, id, &Actor::System)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deliver_due(&m).await, 1);
    let last = rx
        .got
        .lock()
        .map(|g| g[g.len() - 1].clone())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(last.seqs(), vec![0]);
    assert_eq!(
        m.get_webhook(env, id).await.map(|w| w.after_seq).ok(),
        Some(s3)
    );

    // A test event to nowhere fails once, and is neither retried nor held against the endpoint.
    let dead = m
        .create_webhook(
            env,
            &WebhookInput {
                url: Some("http://127.0.0.1:9/nobody".into()),
                ..WebhookInput::default()
            },
            &Actor::System,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    m.send_test_webhook(env, dead.endpoint.id, &Actor::System)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deliver_due(&m).await, 1);
    app.clock.advance_secs(120);
    assert_eq!(deliver_due(&m).await, 0, "not retried");
    let w = m
        .get_webhook(env, dead.endpoint.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((w.attempts, w.failing), (0, false));
    let log = m
        .webhook_deliveries(env, dead.endpoint.id, 10)
        .await
        .unwrap_or_default();
    assert_eq!(log.len(), 1);
    assert!(log[0].error.is_some());

    // Events that are not there.
    for seq in [0, s3 + 1000] {
        assert!(matches!(
            m.redeliver_webhook_event(env, id, seq, &Actor::System)
                .await,
            Err(muster_core::CoreError::NotFound(_))
        ));
    }
    app.finish().await;
}

async fn webhooks_are_managed_through_the_api(b: Backend) {
    let app = TestApp::new(b).await;
    let api = Api::new(&app).await;
    // The default settings refuse URLs into the network Muster runs in.
    let r = api
        .post("/webhooks", json!({"url": "http://127.0.0.1:9000/hook"}))
        .await;
    assert_api_error(&r, 400, "invalid");
    for bad in [
        json!({"url": "https://hooks.example.com/x", "eventTypes": ["user.nope"]}),
        json!({"url": "ftp://hooks.example.com/x"}),
        json!({}),
    ] {
        assert_api_error(&api.post("/webhooks", bad).await, 400, "invalid");
    }
    let r = api
        .post(
            "/webhooks",
            json!({"url": "https://hooks.example.com/muster", "eventTypes": ["user.", "group.member_added"], "description": "HR"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let secret = r.body["secret"].as_str().unwrap_or_default().to_string();
    assert!(secret.starts_with("whsec_"));
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    let list = api.get("/webhooks").await;
    assert_eq!(
        list.body["webhooks"][0]["url"],
        "https://hooks.example.com/muster"
    );
    assert!(
        !list.body.to_string().contains(&secret),
        "never listed with its secret"
    );
    let r = api
        .patch(&format!("/webhooks/{id}"), json!({"enabled": false}))
        .await;
    assert_eq!(r.body["enabled"], false);
    let r = api
        .post(&format!("/webhooks/{id}/rotate-secret"), json!({}))
        .await;
    assert_ne!(r.body["secret"], secret.as_str());
    let r = api.get(&format!("/webhooks/{id}/deliveries")).await;
    assert_eq!(r.body["deliveries"], json!([]));
    // A receiver's basic-authentication password in the URL: the endpoint keeps it, the sync
    // log (which Audit Log Viewers read) shows it as ***.
    let r = api
        .patch(
            &format!("/webhooks/{id}"),
            json!({"url": "https://muster:s3cret-pw@hooks.example.com/muster"}),
        )
        .await;
    assert_eq!(
        r.body["url"], "https://muster:s3cret-pw@hooks.example.com/muster",
        "{:?}",
        r.body
    );
    let log = api.get("/sync-log?limit=100").await;
    assert!(
        log.body
            .to_string()
            .contains("https://muster:***@hooks.example.com/muster"),
        "{:?}",
        log.body
    );
    assert!(
        !log.body.to_string().contains("s3cret-pw"),
        "{:?}",
        log.body
    );
    let r = api.post(&format!("/webhooks/{id}/test"), json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["kind"], "test");
    let r = api
        .post(&format!("/webhooks/{id}/redeliver"), json!({"seq": 424242}))
        .await;
    assert_api_error(&r, 404, "not_found");
    assert!(r.body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("no event 424242")));
    let r = api
        .post(
            &format!("/webhooks/{id}/redeliver"),
            json!({"seq": "first"}),
        )
        .await;
    assert_api_error(&r, 400, "invalid");
    assert_eq!(
        api.delete(&format!("/webhooks/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_api_error(&api.get(&format!("/webhooks/{id}")).await, 404, "not_found");
    app.finish().await;
}

/// A data directory with its own `muster.toml`, the `muster` binary run on it (the CLI), and the
/// server on a free loopback port.
struct Local {
    dir: std::path::PathBuf,
    port: u16,
    url: String,
}

impl Local {
    fn new(config: &str) -> Local {
        let dir = std::env::temp_dir().join(format!("muster-wh-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(18282);
        let local = Local {
            url: format!("http://127.0.0.1:{port}"),
            dir,
            port,
        };
        local.config(config);
        local
    }

    fn config(&self, text: &str) {
        std::fs::write(self.dir.join("muster.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    }

    fn command(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_muster"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MUSTER_DATA_DIR", &self.dir)
            .env("MUSTER_PUBLIC_URL", &self.url)
            .env("MUSTER_LISTEN_ADDR", format!("127.0.0.1:{}", self.port))
            .current_dir(&self.dir);
        c
    }

    /// Runs a CLI command, which must succeed; its standard output.
    fn cli(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a CLI command with `--json` output, read as JSON.
    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.cli(args)).unwrap_or(Value::Null)
    }

    /// Starts `muster serve` and waits until it is ready.
    async fn serve(&self) -> std::process::Child {
        let server = self
            .command()
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let client = reqwest::Client::new();
        let started = std::time::Instant::now();
        while !client
            .get(format!("{}/readyz", self.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(started.elapsed() < Duration::from_secs(20));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The real server delivers to a real receiver, and an independent Standard Webhooks library
/// (PyPI `standardwebhooks`, installed by scripts/test) accepts the signature.
#[tokio::test]
async fn the_server_delivers_signed_events_a_standard_library_verifies() {
    use std::process::{Command, Stdio};
    let python = match std::env::var("MUSTER_VENV") {
        Ok(v) => format!("{v}/bin/python"),
        Err(_) => "python3".into(),
    };
    let has_lib = Command::new(&python)
        .args(["-c", "import standardwebhooks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_lib {
        assert!(
            std::env::var("MUSTER_VENV").is_err(),
            "standardwebhooks is missing from MUSTER_VENV"
        );
        eprintln!("skipped: no standardwebhooks package (scripts/test installs it)");
        return;
    }
    let local = Local::new("allow_private_webhook_urls = true\n");
    let url = local.url.clone();
    let muster = |args: &[&str]| local.json(args);
    let provider = muster(&["provider", "add", "--name", "Okta", "--json"]);
    let admin = muster(&["admin", "token", "create", "--label", "t", "--json"]);
    let admin_token = admin["secret"].as_str().unwrap_or_default().to_string();
    let mut server = local.serve().await;
    let client = reqwest::Client::new();
    let rx = receiver(0).await;
    let hook: Value = client
        .post(format!("{url}/api/v1/webhooks"))
        .bearer_auth(&admin_token)
        .json(&json!({"url": rx.url}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let secret = hook["secret"].as_str().unwrap_or_default().to_string();
    let created = client
        .post(format!(
            "{}/Users",
            provider["provider"]["scimBaseUrl"]
                .as_str()
                .unwrap_or_default()
        ))
        .bearer_auth(provider["token"]["secret"].as_str().unwrap_or_default())
        .header("content-type", "application/scim+json")
        .body(r#"{"userName":"signed@example.com"}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.status().as_u16(), 201);
    let started = std::time::Instant::now();
    let got = loop {
        let got = rx.got.lock().map(|g| g.clone()).unwrap_or_default();
        if !got.is_empty() {
            break got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no delivery within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The CLI sees the endpoint's cursor past the delivered event, and adds another endpoint.
    let started = std::time::Instant::now();
    loop {
        let listed = muster(&["webhook", "list", "--json"]);
        if listed[0]["afterSeq"].as_i64().unwrap_or(0) >= 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{listed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let added = muster(&[
        "webhook",
        "add",
        "--url",
        "https://hooks.example.com/x",
        "--types",
        "group.",
        "--json",
    ]);
    assert!(added["secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("whsec_")));
    assert_eq!(added["eventTypes"], json!(["group."]));
    let _ = server.kill();
    let _ = server.wait();
    let r = &got[0];
    let check = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
req = json.load(sys.stdin)
payload = Webhook(req["secret"]).verify(req["body"], req["headers"])
print(payload["events"][0]["type"], payload["events"][0]["data"]["userName"])
"#;
    let mut py = Command::new(&python)
        .args(["-c", check])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let headers: serde_json::Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let input = json!({"secret": secret, "body": r.body, "headers": headers});
    if let Some(mut stdin) = py.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(input.to_string().as_bytes());
    }
    let out = py.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "standardwebhooks refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "user.created signed@example.com"
    );
    // A tampered body is refused by the same library.
    let mut bad = input.clone();
    bad["body"] = Value::String(r.body.replace("signed@", "forged@"));
    let mut py = Command::new(&python)
        .args(["-c", check])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = py.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(bad.to_string().as_bytes());
    }
    let out = py.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success(), "a forged body must not verify");
}

/// Three `muster serve` processes on one PostgreSQL database. The one delivering is SIGKILLed
/// while a delivery is in flight (the receiver holds that request unanswered); another takes the
/// endpoint over once the lease has run out, sends the same batch again under the same
/// `webhook-id`, and goes on while the two survivors take writes: the receiver ends with every
/// event of the feed, in order, and nothing twice but the batch that was in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_senders_delivery_is_taken_over_and_nothing_is_lost() {
    use crate::crash::Proc;
    use crate::support::{postgres_reachable, TestDb};
    use std::time::Instant;
    if !postgres_reachable().await {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let config = "allow_private_webhook_urls = true\nrate_limit_per_second = 0\n\
                  webhook_lease_secs = 12\nwebhook_retry_base_secs = 1\nwebhook_retry_max_secs = 2\n";
    let mut procs: Vec<Proc> = (0..3).map(|_| Proc::new(&db.url, config)).collect();

    // The receiver records every request as it arrives and leaves the third unanswered.
    let got: Arc<Mutex<Vec<(Instant, Received)>>> = Arc::default();
    let third = Arc::new(tokio::sync::Notify::new());
    let app = {
        let (got, third) = (got.clone(), third.clone());
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (got, third) = (got.clone(), third.clone());
                async move {
                    let n = {
                        let mut list = got.lock().unwrap_or_else(|e| e.into_inner());
                        list.push((
                            Instant::now(),
                            Received {
                                headers: headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_string())
                                    })
                                    .collect(),
                                body,
                            },
                        ));
                        list.len()
                    };
                    if n == 3 {
                        third.notify_one();
                        std::future::pending::<()>().await;
                    }
                    (StatusCode::OK, "ok")
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rx_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let added = procs[0].run_json(&["provider", "add", "--name", "Okta", "--json"]);
    let base_path = added["provider"]["scimBaseUrl"]
        .as_str()
        .unwrap_or_default()
        .split_once("/scim/")
        .map(|(_, rest)| format!("/scim/{rest}"))
        .unwrap_or_default();
    let token = added["token"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let admin = procs[0].run_json(&["admin", "token", "create", "--label", "t", "--json"]);
    let admin = admin["secret"].as_str().unwrap_or_default().to_string();
    let hook = procs[0].run_json(&[
        "webhook",
        "add",
        "--url",
        &format!("http://127.0.0.1:{rx_port}/hook"),
        "--json",
    ]);
    let client = reqwest::Client::new();
    let create = {
        let client = client.clone();
        move |port: u16, name: String| {
            let (client, token, path) = (client.clone(), token.clone(), base_path.clone());
            async move {
                let r = client
                    .post(format!("http://127.0.0.1:{port}{path}/Users"))
                    .bearer_auth(token)
                    .header("content-type", "application/scim+json")
                    .body(json!({ "userName": name }).to_string())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(r.status().as_u16(), 201);
            }
        }
    };

    procs[0].start().await;
    for i in 0..5 {
        create(procs[0].port, format!("first{i}@example.com")).await;
    }
    tokio::time::timeout(Duration::from_secs(20), third.notified())
        .await
        .unwrap_or_else(|_| panic!("the third delivery never came"));
    procs[0].kill();
    let killed = Instant::now();
    procs[1].start().await;
    procs[2].start().await;
    let mut writers = Vec::new();
    for w in 0..20 {
        let port = procs[1 + w % 2].port;
        let create = create.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..2 {
                create(port, format!("w{w}-{i}@example.com")).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap_or_else(|e| panic!("{e}"));
    }
    let feed: Vec<i64> = client
        .get(format!(
            "http://127.0.0.1:{}/api/v1/events?after={}&limit=1000",
            procs[1].port,
            hook["afterSeq"].as_i64().unwrap_or(0)
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json::<Value>()
        .await
        .unwrap_or_default()["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["seq"].as_i64())
        .collect();
    assert!(feed.len() >= 45, "every write is an event: {}", feed.len());

    let started = Instant::now();
    let received = loop {
        let list = got.lock().map(|g| g.clone()).unwrap_or_default();
        let mut ids: Vec<String> = list.iter().map(|(_, r)| r.header("webhook-id")).collect();
        ids.sort();
        ids.dedup();
        if ids.len() >= feed.len() {
            break list;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {} events delivered",
            ids.len(),
            feed.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Nothing lost, in order once deduplicated by webhook-id.
    let mut seen = std::collections::HashSet::new();
    let mut order = Vec::new();
    for (_, r) in &received {
        if seen.insert(r.header("webhook-id")) {
            order.extend(r.seqs());
        }
    }
    assert_eq!(order, feed, "every event of the feed, in seq order");
    // The batch in flight went out again, after the lease, with the same id; nothing else twice.
    let held = received[2].1.header("webhook-id");
    let again: Vec<&(Instant, Received)> = received
        .iter()
        .filter(|(_, r)| r.header("webhook-id") == held)
        .collect();
    assert_eq!(again.len(), 2, "the batch in flight is sent again");
    assert_eq!(again[0].1.body, again[1].1.body);
    assert!(
        again[1].0.duration_since(killed) >= Duration::from_secs(8),
        "the others kept off until the lease ran out"
    );
    assert_eq!(received.len(), feed.len() + 1, "one sender per attempt");
    drop(procs);
    db.drop_db().await;
}

/// An endpoint added while `allow_private_webhook_urls` was on gets nothing once it is off: the
/// server checks the URL again before each delivery, says why in the delivery log, and the
/// receiver (listening on loopback) is never connected to.
#[tokio::test]
async fn an_inside_address_is_refused_when_delivering_too() {
    let rx = receiver(0).await;
    let local = Local::new("allow_private_webhook_urls = false\n");
    let refused = local
        .command()
        .args(["webhook", "add", "--url", &rx.url])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("allow_private_webhook_urls"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    local.config("allow_private_webhook_urls = true\n");
    let hook = local.json(&["webhook", "add", "--url", &rx.url, "--json"]);
    let id = hook["id"].as_str().unwrap_or_default().to_string();
    local.config("allow_private_webhook_urls = false\n");
    let mut server = local.serve().await;
    local.cli(&["webhook", "test", &id]);
    let started = std::time::Instant::now();
    let log = loop {
        let log = local.cli(&["webhook", "deliveries", &id]);
        if !log.trim().is_empty() {
            break log;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no attempt within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        log.contains("test") && log.contains("addresses are refused"),
        "{log}"
    );
    assert!(
        rx.got.lock().map(|g| g.is_empty()).unwrap_or(false),
        "the receiver got nothing"
    );
}
