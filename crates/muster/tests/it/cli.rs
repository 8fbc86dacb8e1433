//! The real binary: `muster provider add` prints a token, `muster serve` answers SCIM with it
//! over TCP, and the configuration reaches both.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn muster(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_muster"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUSTER_DATA_DIR", data_dir)
        .current_dir(data_dir);
    c
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

fn run_json(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap_or_else(|e| panic!("run muster: {e}"));
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("json: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A SCIM request to a running server: its status and JSON body.
async fn scim(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: String,
) -> (u16, Value) {
    let r = client
        .request(method, url)
        .bearer_auth(token)
        .header("content-type", "application/scim+json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// `muster provider add --name Okta`: what it printed, the token and the SCIM base URL.
fn add_okta(dir: &std::path::Path, public: &str) -> (Value, String, String) {
    let added = run_json(
        muster(dir)
            .args(["provider", "add", "--name", "Okta", "--json"])
            .env("MUSTER_PUBLIC_URL", public),
    );
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let (token, base) = (
        text(&added["token"]["secret"]),
        text(&added["provider"]["scimBaseUrl"]),
    );
    (added, token, base)
}

/// Starts `muster serve` in `dir` on `port`, set up further by `setup` (environment, output),
/// and waits until it answers `/readyz`.
async fn serve(
    dir: &std::path::Path,
    port: u16,
    public: &str,
    setup: impl FnOnce(&mut Command),
) -> std::process::Child {
    let mut cmd = muster(dir);
    cmd.arg("serve")
        .env("MUSTER_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("MUSTER_PUBLIC_URL", public);
    setup(&mut cmd);
    let server = cmd.spawn().unwrap_or_else(|e| panic!("serve: {e}"));
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client
        .get(format!("{public}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server
}

/// Stops a server with SIGTERM (a graceful stop) and waits for it to exit, at most 15 s (then
/// it is killed and the test fails); gives the server back, for its output.
fn stop(mut server: std::process::Child) -> (std::process::Child, std::process::ExitStatus) {
    let pid = server.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let status = server.wait();
        let _ = tx.send((server, status));
    });
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok((server, Ok(status))) => (server, status),
        Ok((_, Err(e))) => panic!("waiting for the server: {e}"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("the server did not stop on SIGTERM")
        }
    }
}

#[tokio::test]
async fn provider_add_then_serve_over_tcp() {
    let dir = std::env::temp_dir().join(format!("muster-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let (added, token, base) = add_okta(&dir, &public);
    assert!(token.starts_with("mst_"));
    assert!(base.starts_with(&format!("{public}/scim/v2/")), "{base}");
    assert!(
        dir.join("muster-data").exists()
            || dir.join("muster.db").exists()
            || std::path::Path::new(&dir).exists()
    );

    // The listing shows the provider and only the token's prefix.
    let pid = added["provider"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let list = run_json(muster(&dir).args(["provider", "list", "--json"]));
    assert_eq!(list[0]["id"], pid);
    let tokens =
        run_json(muster(&dir).args(["provider", "token", "list", "--provider", &pid, "--json"]));
    assert_eq!(tokens.as_array().map(Vec::len), Some(1));
    assert!(
        !tokens.to_string().contains(&token),
        "a listing never shows a secret"
    );
    let delay = run_json(muster(&dir).args([
        "provider",
        "update",
        &pid,
        "--deactivation-delay",
        "2h",
        "--json",
    ]));
    assert_eq!(delay["deactivationDelaySeconds"], 7200);
    // A provider is named by its id or its name, without case.
    let by_name = run_json(muster(&dir).args(["provider", "show", "okta", "--json"]));
    assert_eq!(by_name["id"], pid, "{by_name}");
    let tokens_by_name =
        run_json(muster(&dir).args(["provider", "token", "list", "--provider", "OKTA", "--json"]));
    assert_eq!(tokens_by_name, tokens);
    let unknown = muster(&dir)
        .args(["provider", "show", "Entra"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("no provider has the id or name \"Entra\" (providers: Okta)"),
        "{err}"
    );
    let bad = muster(&dir)
        .args(["provider", "update", &pid, "--deactivation-delay", "91d"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("90 days"));

    let server = serve(&dir, port, &public, |c| {
        c.env("MUSTER_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
    })
    .await;
    let client = reqwest::Client::new();
    let health: Value = client
        .get(format!("{public}/healthz"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(health["status"], "ok");
    let created = client
        .post(format!("{base}/Users"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"tcp@example.com"}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.status().as_u16(), 201);
    let request_id = created
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(!request_id.is_empty());
    let body: Value = created.json().await.unwrap_or_default();
    assert!(body["meta"]["location"]
        .as_str()
        .unwrap_or_default()
        .starts_with(&base));
    let denied = client
        .get(format!("{base}/Users"))
        .bearer_auth("mst_nope")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(denied.status().as_u16(), 401);

    // The user commands take a userName as well as an id, compared without case.
    let scim_id = body["id"].as_str().unwrap_or_default().to_string();
    let shown = run_json(muster(&dir).args(["user", "show", "TCP@example.com", "--json"]));
    assert_eq!(shown["id"], scim_id, "{shown}");
    let blocked = muster(&dir)
        .args(["user", "block", "tcp@example.com"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(blocked.status.success(), "{blocked:?}");
    let shown = run_json(muster(&dir).args(["user", "show", &scim_id, "--json"]));
    assert_eq!(shown["status"], "blocked", "{shown}");
    // Read by an administrator, the owner is the provider's name, not only its id.
    let text = muster(&dir)
        .args(["user", "show", &scim_id])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Owner:         provider Okta ("), "{text}");
    let none = muster(&dir)
        .args(["user", "unblock", "nobody@example.com"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr)
        .contains("no user has the id, userName, email address or externalId"));

    // `add` and `create` are the same command wherever one of them is.
    let org = run_json(muster(&dir).args(["org", "add", "--name", "Research", "--json"]));
    assert_eq!(org["name"], "Research", "{org}");

    // What the provider sent, as an administrator reads it: email, externalId, SCIM groups.
    let (status, ada) = scim(
        &client,
        reqwest::Method::POST,
        format!("{base}/Users"),
        &token,
        r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com",
            "externalId":"00u-ada","name":{"givenName":"Ada","familyName":"Lovelace"},
            "emails":[{"value":"ada@home.example","type":"home"},{"value":"Ada@Example.com","type":"work","primary":true}]}"#
            .into(),
    )
    .await;
    assert_eq!(status, 201, "{ada}");
    let ada_id = ada["id"].as_str().unwrap_or_default().to_string();
    let (status, group) = scim(
        &client,
        reqwest::Method::POST,
        format!("{base}/Groups"),
        &token,
        format!(r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Engineering","members":[{{"value":"{ada_id}"}}]}}"#),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    let text = muster(&dir)
        .args(["user", "show", "ada@example.com"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&text.stdout);
    for line in [
        "  Name:          Ada Lovelace",
        "  Email:         Ada@Example.com",
        "  External ID:   00u-ada",
        "  SCIM groups:   Engineering",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    // `--json` is the API's shape (`GET /api/v1/users/{id}`).
    let shown = run_json(muster(&dir).args(["user", "show", "ada@example.com", "--json"]));
    assert_eq!(shown["email"], "Ada@Example.com", "{shown}");
    assert_eq!(shown["externalId"], "00u-ada", "{shown}");
    assert_eq!(shown["groups"][0]["displayName"], "Engineering", "{shown}");
    assert_eq!(shown["owner"]["providerName"], "Okta", "{shown}");
    assert_eq!(shown["scim"]["name"]["givenName"], "Ada", "{shown}");
    for by in [
        ["--external-id", "00u-ada"],
        ["--email", "ADA@home.example"],
    ] {
        let listed = run_json(muster(&dir).args(["user", "list", "--json"]).args(by));
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{by:?}: {listed}");
        assert_eq!(listed[0]["id"], ada_id.as_str(), "{listed}");
        assert_eq!(listed[0]["email"], "Ada@Example.com", "{listed}");
    }
    // A user is named by an address or the provider's id for them as well.
    for name in ["ada@home.example", "00u-ada"] {
        let shown = run_json(muster(&dir).args(["user", "show", name, "--json"]));
        assert_eq!(shown["id"], ada_id.as_str(), "{name}: {shown}");
    }
    let none = run_json(muster(&dir).args(["user", "list", "--json", "--external-id", "00U-ADA"]));
    assert_eq!(
        none,
        serde_json::json!([]),
        "externalId is compared exactly"
    );

    // The guard, tripped by one turn-off out of two users, lists who waits for deactivation.
    let set = muster(&dir)
        .args([
            "provider",
            "guard",
            "Okta",
            "--percent",
            "1",
            "--min-users",
            "0",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(set.status.success(), "{set:?}");
    let (status, off) = scim(
        &client,
        reqwest::Method::PATCH,
        format!("{base}/Users/{ada_id}"),
        &token,
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}"#.into(),
    )
    .await;
    assert_eq!(status, 200, "{off}");
    let guard = muster(&dir)
        .args(["provider", "guard", "Okta"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let guard = String::from_utf8_lossy(&guard.stdout);
    assert!(guard.contains("HOLDING every deactivation"), "{guard}");
    let table: Vec<&str> = guard
        .lines()
        .skip_while(|l| *l != "Deactivations pending:")
        .collect();
    assert!(
        table.len() == 3 && table[1].starts_with("USER ID "),
        "{guard}"
    );
    assert!(
        table[2].starts_with(&ada_id) && table[2].ends_with("  ada@example.com"),
        "{guard}"
    );

    // SIGTERM: a graceful stop.
    let (mut server, status) = stop(server);
    assert!(status.success(), "exit: {status:?}");
    let mut logs = String::new();
    if let Some(mut err) = server.stderr.take() {
        use std::io::Read;
        let _ = err.read_to_string(&mut logs);
    }
    assert!(
        logs.contains("\"request_id\""),
        "JSON logs carry the request id: {logs}"
    );
    // The POST's line: its request id (the one in its response), method, path and provider.
    let post_line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["span"]["request_id"] == request_id.as_str())
        .unwrap_or_default();
    assert_eq!(post_line["status"], 201, "{logs}");
    assert_eq!(post_line["span"]["method"], "POST", "{post_line}");
    assert_eq!(post_line["span"]["provider"], pid.as_str(), "{post_line}");
    assert_eq!(post_line["spans"][0]["name"], "request", "{post_line}");
    assert!(
        post_line["span"]["path"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&format!("{pid}/Users")),
        "{post_line}"
    );
    assert!(!logs.contains(&token), "the token never appears in logs");
    // Each request's line gives its duration in whole microseconds (`1.116`, not
    // `1.1158430000000001`).
    let durations: Vec<f64> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l["elapsed_ms"].as_f64())
        .collect();
    assert!(durations.len() >= 3, "{logs}");
    for ms in durations {
        let micros = ms * 1000.0;
        assert!((micros - micros.round()).abs() < 1e-6, "{ms} in {logs}");
    }
    // The guard's trip, for whoever watches the log.
    let tripped = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("mass-deactivation guard tripped"))
        })
        .unwrap_or_default();
    assert_eq!(tripped["level"], "WARN", "{logs}");
    assert_eq!(tripped["provider_name"], "Okta", "{tripped}");
    assert_eq!(tripped["turned_off"], 1, "{tripped}");
    // Within the request that tripped it: the PATCH's own id and path.
    assert_eq!(tripped["span"]["method"], "PATCH", "{tripped}");
    // A new installation is told its next step: here a provider exists, an administrator not.
    assert!(logs.contains("no administrator yet"), "{logs}");
    assert!(!logs.contains("no provisioning provider yet"), "{logs}");
    assert!(logs.contains("\"database_url\""), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A provider past its rate limit: the server writes its first 429 and counts the rest; when it
/// stops (SIGTERM), it writes the count it was still keeping.
#[tokio::test]
async fn counted_refusals_are_written_when_the_server_stops() {
    let dir = std::env::temp_dir().join(format!("muster-429-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.join("muster.toml"),
        "rate_limit_per_second = 1\nrate_limit_burst = 1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let (_, token, base) = add_okta(&dir, &public);
    let server = serve(&dir, port, &public, |c| {
        c.env("MUSTER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    })
    .await;
    let client = reqwest::Client::new();
    let mut refused = 0;
    for _ in 0..12 {
        let r = client
            .get(format!("{base}/Users"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if r.status().as_u16() == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 2, "{refused} refused");
    stop(server);
    let log =
        run_json(muster(&dir).args(["sync-log", "list", "--action", "request.rejected", "--json"]));
    let entries = log.as_array().cloned().unwrap_or_default();
    assert_eq!(
        entries.len(),
        2,
        "the first 429, then the count: {entries:?}"
    );
    assert_eq!(entries[1]["details"]["status"], 429);
    assert_eq!(
        entries[0]["details"]["repeated"],
        refused - 1,
        "{entries:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three `muster serve` processes on one PostgreSQL database: 200 users created at once naming
/// one new organization make one organization; due for deactivation at the same moment, each
/// user is deactivated exactly once, with one sync log entry.
#[tokio::test]
async fn three_servers_deactivate_each_user_once() {
    use sqlx::Connection;
    let db = crate::support::TestDb::new(crate::support::Backend::Postgres).await;
    let dir = std::env::temp_dir().join(format!("muster-three-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let with_db = |c: &mut Command| {
        c.env("MUSTER_DATABASE_URL", &db.url)
            .env("MUSTER_LOG", "warn");
    };
    let mut add = muster(&dir);
    add.args(["provider", "add", "--name", "Okta", "--json"]);
    with_db(&mut add);
    let added = run_json(&mut add);
    let pid = added["provider"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let token = added["token"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut delay = muster(&dir);
    delay.args([
        "provider",
        "update",
        &pid,
        "--deactivation-delay",
        "3s",
        "--json",
    ]);
    with_db(&mut delay);
    run_json(&mut delay);
    // Every user is turned off on purpose: the mass-deactivation guard is off for this provider.
    let mut unguarded = muster(&dir);
    unguarded.args(["provider", "guard", &pid, "--state", "off"]);
    with_db(&mut unguarded);
    let out = unguarded.output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("Guard off"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Users name their organization: every instance races to create the same new one.
    let mut mapping = muster(&dir);
    mapping.args([
        "mapping",
        "set-org",
        "--provider",
        &pid,
        "--method",
        "c42-org-name",
    ]);
    with_db(&mut mapping);
    let out = mapping.output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let mut c = muster(&dir);
        c.arg("serve")
            .env("MUSTER_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("MUSTER_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        with_db(&mut c);
        // Every instance runs its scheduler every second.
        let cfg = dir.join(format!("muster-{port}.toml"));
        std::fs::write(&cfg, "scheduler_interval_secs = 1\n").unwrap_or_else(|e| panic!("{e}"));
        c.env("MUSTER_CONFIG", &cfg);
        servers.push(c.spawn().unwrap_or_else(|e| panic!("serve: {e}")));
        ports.push(port);
    }
    let client = reqwest::Client::new();
    for port in &ports {
        let started = Instant::now();
        while !client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server on {port} not ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // 200 users, created at once over the three servers, all naming one new organization, then
    // all turned off within a moment.
    let creates = (0..200).map(|i| {
        let url = format!("http://127.0.0.1:{}/scim/v2/{pid}/Users", ports[i % 3]);
        let (client, token) = (client.clone(), token.clone());
        async move {
            let r: Value = client
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({"userName": format!("due{i}@example.com"), "c42OrgName": "Shared Co"}))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .unwrap_or_else(|e| panic!("{e}"))
                .json()
                .await
                .unwrap_or_default();
            r["id"].as_str().unwrap_or_default().to_string()
        }
    });
    let ids: Vec<String> = futures_join(creates).await;
    {
        let mut conn = sqlx::PgConnection::connect(&db.url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let orgs: Vec<(uuid::Uuid,)> =
            sqlx::query_as("select org_id from org where name_key = 'shared co'")
                .fetch_all(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            orgs.len(),
            1,
            "one organization, whichever instance made it"
        );
        let (n,): (i64,) = sqlx::query_as("select count(*) from user_account where org_id = $1")
            .bind(orgs[0].0)
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 200);
        let _ = conn.close().await;
    }
    let patches = ids.iter().enumerate().map(|(i, id)| {
        let url = format!("http://127.0.0.1:{}/scim/v2/{pid}/Users/{id}", ports[i % 3]);
        let client = client.clone();
        let token = token.clone();
        async move {
            client
                .patch(url)
                .bearer_auth(token)
                .json(&serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": false}]}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    for status in futures_join(patches).await {
        assert_eq!(status.unwrap_or(0), 200);
    }
    // Wait for the deactivations (3 s delay, 1 s ticks).
    let mut conn = sqlx::PgConnection::connect(&db.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    loop {
        let (n,): (i64,) =
            sqlx::query_as("select count(*) from user_account where status = 'deactivated'")
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        if n == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {n} of 200 deactivated"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Give the other schedulers a few more ticks to do it again, if they were going to.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select subject_id, count(*) from sync_log where action = 'user.deactivated' group by subject_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 200);
    assert!(
        rows.iter().all(|(_, n)| *n == 1),
        "a user deactivated twice: {:?}",
        rows.iter().find(|(_, n)| *n != 1)
    );
    let _ = conn.close().await;
    for mut s in servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    db.drop_db().await;
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// `muster sync-log list --json` gives each entry the shape `/api/v1/sync-log` gives it.
#[test]
fn sync_log_json_has_the_api_shape() {
    let dir = std::env::temp_dir().join(format!("muster-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    run_json(muster(&dir).args(["provider", "add", "--name", "Okta", "--json"]));
    let listed = run_json(muster(&dir).args(["sync-log", "list", "--json"]));
    let entries = listed.as_array().cloned().unwrap_or_default();
    let created = entries
        .iter()
        .find(|e| e["action"] == "provider.created")
        .unwrap_or_else(|| panic!("no provider.created in {listed}"));
    let mut keys: Vec<&str> = created
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action",
            "actor",
            "at",
            "details",
            "id",
            "message",
            "provider",
            "providerId",
            "result",
            "subject"
        ]
    );
    assert_eq!(created["actor"]["kind"], "admin");
    assert!(created["actor"]["name"]
        .as_str()
        .unwrap_or_default()
        .starts_with("cli:"));
    assert_eq!(created["subject"]["name"], "Okta");
    assert_eq!(created["provider"], "Okta");
    assert_eq!(created["result"], "success");
    // Times as people write them: the entry is in the last hour, and not before an hour ago.
    let recent = run_json(muster(&dir).args(["sync-log", "list", "--since", "1h", "--json"]));
    assert!(
        recent
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["id"] == created["id"])),
        "{recent}"
    );
    let older = run_json(muster(&dir).args(["sync-log", "list", "--until", "1h", "--json"]));
    assert_eq!(older, serde_json::json!([]));
    // A range that ends before it starts is a mistake, said as such, not an empty export.
    let backwards = muster(&dir)
        .args(["sync-log", "export", "--since", "1h", "--until", "2h"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!backwards.status.success());
    assert!(
        String::from_utf8_lossy(&backwards.stderr).contains("must be before its end"),
        "{}",
        String::from_utf8_lossy(&backwards.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A command's help lists its own options first and the options every command takes under
/// their own heading after them, so that `--username` is not lost among `--database-url` and
/// `--log-format`; and `muster --help` says what `muster admin` is for.
#[test]
fn help_keeps_a_commands_own_options_apart_from_the_global_ones() {
    let dir = std::env::temp_dir().join(format!("muster-help-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let out = muster(&dir)
        .args(["admin", "set-notifications", "--help"])
        .output()
        .unwrap_or_else(|e| panic!("run muster: {e}"));
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let at = |s: &str| {
        help.find(s)
            .unwrap_or_else(|| panic!("{s:?} not in the help:\n{help}"))
    };
    let global = at("\nGlobal options:\n");
    for own in ["--username", "--email", "--report"] {
        assert!(
            at(own) < global,
            "{own} is not among the command's own options:\n{help}"
        );
    }
    for shared in [
        "--config",
        "--database-url",
        "--data-dir",
        "--log-format",
        "--environment",
    ] {
        assert!(
            at(shared) > global,
            "{shared} is not under Global options:\n{help}"
        );
    }

    let out = muster(&dir)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("run muster: {e}"));
    let top = String::from_utf8_lossy(&out.stdout).into_owned();
    let admin = top
        .lines()
        .find(|l| l.trim_start().starts_with("admin "))
        .unwrap_or_default();
    assert!(admin.contains("Console administrators"), "{admin:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// On a new database every list says it is empty and how to fill it, rather than printing
/// nothing; with `--json` each is still an empty array for scripts.
#[test]
fn empty_lists_say_so_and_how_to_fill_them() {
    let dir = std::env::temp_dir().join(format!("muster-empty-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let cases: [(&[&str], &str); 6] = [
        (&["provider", "list"], "muster provider add"),
        (&["admin", "list"], "muster admin create"),
        (&["admin", "token", "list"], "muster admin token add"),
        (&["app", "list"], "muster app add"),
        (&["webhook", "list"], "muster webhook add"),
        (&["user", "list"], "muster user create"),
    ];
    for (args, hint) in cases {
        let out = muster(&dir)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run muster: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with("No "), "{args:?} printed {text:?}");
        assert!(text.contains(hint), "{args:?} printed {text:?}");
        let json = run_json(muster(&dir).args(args).arg("--json"));
        assert_eq!(json, serde_json::json!([]), "{args:?} --json");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The text lists have a header row, and a user list cut at `--limit` says that more match
/// (on stderr, so that the table itself can be piped).
#[test]
fn text_lists_have_headers_and_a_cut_list_says_so() {
    let dir = std::env::temp_dir().join(format!("muster-lists-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    for name in ["ann", "bob", "cyd"] {
        let out = muster(&dir)
            .args([
                "user",
                "create",
                "--user-name",
                &format!("{name}@example.com"),
            ])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{out:?}");
    }
    let list = |args: &[&str]| {
        let out = muster(&dir)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{args:?}: {out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (all, note) = list(&["user", "list"]);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 4, "{all}");
    assert!(
        lines[0].starts_with("ID ") && lines[0].ends_with("USERNAME"),
        "{all}"
    );
    assert!(!note.contains("more match"), "{note}");
    let (cut, note) = list(&["user", "list", "--limit", "2"]);
    assert_eq!(cut.lines().count(), 3, "{cut}");
    assert!(
        note.contains("The first 2 users shown; more match"),
        "{note}"
    );
    let mut admin = muster(&dir)
        .args(["admin", "create", "--username", "root"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut input) = admin.stdin.take() {
        use std::io::Write;
        input
            .write_all(b"a long enough passphrase\na long enough passphrase\n")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(admin.wait().is_ok_and(|s| s.success()));
    let _ = list(&["admin", "token", "create", "--label", "ci"]);
    let _ = list(&["app", "add", "--name", "Billing"]);
    let _ = list(&["webhook", "add", "--url", "https://hooks.example.com/x"]);
    for (args, head) in [
        (&["org", "list"][..], "ID "),
        (&["role", "list"][..], "ID "),
        (&["admin", "list"][..], "USERNAME "),
        (&["admin", "token", "list"][..], "ID "),
        (&["app", "list"][..], "ID "),
        (&["webhook", "list"][..], "ID "),
    ] {
        let (text, _) = list(args);
        assert!(text.starts_with(head), "{args:?}: {text}");
        assert!(text.lines().count() > 1, "{args:?}: {text}");
    }
    // The sync log: columns under a header, the result in words, a cut list said on stderr.
    let (log, note) = list(&["sync-log", "list", "--limit", "3"]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    let action_at = lines[0].find("ACTION").unwrap_or(usize::MAX);
    assert!(
        lines[0].starts_with("TIME ") && lines[0].ends_with("SUBJECT"),
        "{log}"
    );
    for line in &lines[1..] {
        // Every action starts under its heading, whatever the provider's name.
        assert!(
            line.get(action_at..)
                .is_some_and(|a| a.contains('.') && !a.starts_with(' ')),
            "{log}"
        );
        assert!(line.contains("  success  "), "{log}");
    }
    assert!(
        note.contains("The newest 3 entries shown; more match"),
        "{note}"
    );
    let (none, _) = list(&["sync-log", "list", "--action", "no.such_action"]);
    assert_eq!(none.trim(), "No entries match.");
    // An API token is revoked by its label (or prefix, or id) as well.
    let (said, _) = list(&["admin", "token", "revoke", "CI"]);
    assert!(said.contains("revoked"), "{said}");
    let (tokens, _) = list(&["admin", "token", "list"]);
    assert!(tokens.contains("revoked or expired"), "{tokens}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Organizations and roles are named on the command line by id or by name; a name two
/// organizations share is refused with both paths, and the parent's name with its own picks one.
#[test]
fn organizations_and_roles_are_named_by_name() {
    let dir = std::env::temp_dir().join(format!("muster-names-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let run = |args: &[&str]| {
        muster(&dir)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    ok(&["org", "create", "--name", "Research"]);
    ok(&[
        "org",
        "create",
        "--name",
        "Sales",
        "--parent",
        "default organization",
    ]);
    let emea = run_json(muster(&dir).args([
        "org", "create", "--name", "EMEA", "--parent", "research", "--json",
    ]));
    let sales_emea = run_json(muster(&dir).args([
        "org", "create", "--name", "EMEA", "--parent", "Sales", "--json",
    ]));
    ok(&[
        "user",
        "create",
        "--user-name",
        "ann@example.com",
        "--org",
        "RESEARCH",
    ]);
    let shown = run_json(muster(&dir).args(["user", "show", "ann@example.com", "--json"]));
    assert_eq!(shown["org"]["name"], "Research", "{shown}");

    let ambiguous = run(&["user", "move", "ann@example.com", "--org", "emea"]);
    assert!(!ambiguous.status.success());
    let said = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(said.contains("names 2 organizations"), "{said}");
    assert!(
        said.contains("Research / EMEA") && said.contains("Sales / EMEA"),
        "{said}"
    );
    ok(&["user", "move", "ann@example.com", "--org", "sales / emea"]);
    let shown = run_json(muster(&dir).args(["user", "show", "ann@example.com", "--json"]));
    assert_eq!(shown["org"]["id"], sales_emea["id"], "{shown}");
    let by_id = emea["id"].as_str().unwrap_or_default();
    ok(&["user", "move", "ann@example.com", "--org", by_id]);
    let shown = run_json(muster(&dir).args(["user", "show", "ann@example.com", "--json"]));
    assert_eq!(shown["org"]["id"], emea["id"], "{shown}");

    ok(&["user", "roles", "ann@example.com", "--role", "desktop user"]);
    let shown = run_json(muster(&dir).args(["user", "show", "ann@example.com", "--json"]));
    let names: Vec<&str> = shown["roles"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["Desktop User"], "{shown}");
    let unknown = run(&["user", "roles", "ann@example.com", "--role", "Pilot"]);
    assert!(!unknown.status.success());
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        said.contains("no role has the id or name \"Pilot\""),
        "{said}"
    );
    let unknown = run(&["user", "move", "ann@example.com", "--org", "Nowhere"]);
    assert!(!unknown.status.success());
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        said.contains("no organization has the id, name or path \"Nowhere\""),
        "{said}"
    );
    // Nothing changed by the refusals.
    let shown = run_json(muster(&dir).args(["user", "show", "ann@example.com", "--json"]));
    assert_eq!(shown["org"]["id"], emea["id"], "{shown}");
    assert_eq!(shown["roles"][0]["name"], "Desktop User", "{shown}");

    ok(&["org", "rename", "Research", "--name", "R&D"]);
    ok(&["org", "default-roles", "r&d", "--role", "PROe User"]);
    let orgs = run_json(muster(&dir).args(["org", "list", "--json"]));
    let rnd = orgs
        .as_array()
        .and_then(|a| a.iter().find(|o| o["name"] == "R&D"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        rnd["effective_default_roles"][0]["name"], "PROe User",
        "{orgs}"
    );

    // An address two users share names neither: both are listed and nothing changes.
    for name in ["kim@example.com", "kim.lee@example.com"] {
        ok(&[
            "user",
            "create",
            "--user-name",
            name,
            "--email",
            "Team@Example.com",
        ]);
    }
    let shared = run(&["user", "block", "team@example.com"]);
    assert!(!shared.status.success());
    let said = String::from_utf8_lossy(&shared.stderr);
    assert!(
        said.contains("2 users have the address \"team@example.com\"")
            && said.contains("kim@example.com (")
            && said.contains("kim.lee@example.com ("),
        "{said}"
    );
    let kim = run_json(muster(&dir).args(["user", "show", "kim@example.com", "--json"]));
    assert_eq!(kim["status"], "active", "{kim}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `provider token revoke` takes the prefix a token list shows as well as the token's id, and
/// revokes only that token.
#[test]
fn a_token_is_revoked_by_the_prefix_its_list_shows() {
    let dir = std::env::temp_dir().join(format!("muster-revoke-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let (added, _, _) = add_okta(&dir, "http://127.0.0.1:8080");
    let first = added["token"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let second = run_json(muster(&dir).args([
        "provider",
        "token",
        "add",
        "--provider",
        "okta",
        "--label",
        "next",
        "--json",
    ]));
    let tokens = || {
        run_json(muster(&dir).args(["provider", "token", "list", "--provider", "Okta", "--json"]))
    };
    let listed = tokens();
    let prefix = listed
        .as_array()
        .and_then(|a| a.iter().find(|t| t["id"] == first.as_str()))
        .and_then(|t| t["prefix"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(prefix.starts_with("mst_") && prefix.len() == 12, "{listed}");

    let out = muster(&dir)
        .args(["provider", "token", "revoke", &prefix])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("{prefix} of provider \"Okta\" revoked")),
        "{said}"
    );
    let live = |id: &str| {
        tokens()
            .as_array()
            .and_then(|a| a.iter().find(|t| t["id"] == id))
            .map(|t| t["live"].clone())
            .unwrap_or_default()
    };
    assert_eq!(live(&first), Value::Bool(false));
    assert_eq!(
        live(second["id"].as_str().unwrap_or_default()),
        Value::Bool(true)
    );

    for (bad, says) in [
        ("mst_00000000", "no token has the prefix mst_00000000"),
        ("nope", "neither a token's id nor its prefix"),
    ] {
        let out = muster(&dir)
            .args(["provider", "token", "revoke", bad])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(says), "{bad}: {said}");
    }
    assert_eq!(
        live(second["id"].as_str().unwrap_or_default()),
        Value::Bool(true)
    );
    let out = muster(&dir)
        .args([
            "provider",
            "token",
            "revoke",
            second["id"].as_str().unwrap_or_default(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        live(second["id"].as_str().unwrap_or_default()),
        Value::Bool(false)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `muster serve` on an address another program holds stops at once and says how to choose
/// another one.
#[test]
fn serve_on_a_taken_address_says_how_to_choose_another() {
    let dir = std::env::temp_dir().join(format!("muster-taken-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let held = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = held.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let out = muster(&dir)
        .arg("serve")
        .env("MUSTER_LISTEN_ADDR", addr.to_string())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("cannot listen on {addr}")), "{said}");
    assert!(
        said.contains("--listen-addr or MUSTER_LISTEN_ADDR"),
        "{said}"
    );
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stop is not held up by an application's long poll: on SIGTERM the wait ends at once with
/// the page it would have ended with (no events, the cursor where it was), and the server exits.
#[tokio::test]
async fn a_long_poll_ends_when_the_server_stops() {
    let dir = std::env::temp_dir().join(format!("muster-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let admin =
        run_json(muster(&dir).args(["admin", "token", "create", "--label", "feed", "--json"]));
    let token = admin["secret"].as_str().unwrap_or_default().to_string();
    let server = serve(&dir, port, &public, |c| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    })
    .await;
    let client = reqwest::Client::new();
    let head: Value = client
        .get(format!("{public}/api/v1/events/head"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let head = head["seq"].as_i64().unwrap_or(-1);
    let poll = tokio::spawn({
        let (client, url, token) = (
            client.clone(),
            format!("{public}/api/v1/events?after={head}&wait=30"),
            token.clone(),
        );
        async move {
            let r = client
                .get(url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )
        }
    });
    // The poll is waiting on the server before the stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!poll.is_finished());
    let started = Instant::now();
    let (_, status) = stop(server);
    assert!(status.success(), "exit: {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped after {:?}",
        started.elapsed()
    );
    let (code, page) = poll.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["events"], serde_json::json!([]));
    assert_eq!(page["nextAfter"], head);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Behind a trusted reverse proxy, the failed-authentication limit counts the client the proxy
/// names in `X-Forwarded-For`, not the proxy: one client guessing tokens does not lock out the
/// identity provider behind the same proxy, and what a client writes into the header itself is
/// not believed.
#[tokio::test]
async fn failed_authentications_count_the_client_behind_a_trusted_proxy() {
    let dir = std::env::temp_dir().join(format!("muster-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.join("muster.toml"),
        "trusted_proxies = [\"127.0.0.1\"]\nauth_failures_per_minute = 2\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let (_, token, base) = add_okta(&dir, &public);
    let server = serve(&dir, port, &public, |c| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    })
    .await;
    let client = reqwest::Client::new();
    let get = |token: &str, forwarded: &str| {
        let mut r = client.get(format!("{base}/Users")).bearer_auth(token);
        if !forwarded.is_empty() {
            r = r.header("x-forwarded-for", forwarded);
        }
        async move {
            r.send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    // A guesser behind the proxy uses up its own budget.
    assert_eq!(get("mst_guess", "198.51.100.7").await, 401);
    assert_eq!(get("mst_guess", "198.51.100.7").await, 401);
    assert_eq!(get(&token, "198.51.100.7").await, 429);
    // Writing another address in front of the one the proxy appends changes nothing.
    assert_eq!(get(&token, "203.0.113.1, 198.51.100.7").await, 429);
    // The identity provider, behind the same proxy, is not locked out.
    assert_eq!(get(&token, "203.0.113.50").await, 200);
    // Nor is a request the proxy itself makes.
    assert_eq!(get(&token, "").await, 200);
    let (_, status) = stop(server);
    assert!(status.success(), "exit: {status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
