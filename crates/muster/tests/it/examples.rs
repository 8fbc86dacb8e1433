//! The examples in `examples/` run against a real server: `directory-sync/sync.py` keeps a copy
//! of the directory from the event feed that matches the API exactly.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn muster(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_muster"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUSTER_DATA_DIR", dir)
        .current_dir(dir);
    c
}

fn run_json(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap_or_else(|e| panic!("run muster: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// Runs `sync.py --once`; the copy it saved.
fn sync_once(url: &str, token: &str, state: &Path) -> Value {
    let out = Command::new("python3")
        .arg(example("directory-sync/sync.py"))
        .args(["--once", "--state"])
        .arg(state)
        .env("MUSTER_URL", url)
        .env("MUSTER_TOKEN", token)
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(state).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn the_directory_sync_example_keeps_an_exact_copy() {
    if Command::new("python3").arg("--version").output().is_err() {
        panic!("python3 is needed to run the examples");
    }
    let dir = std::env::temp_dir().join(format!("muster-ex-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18181);
    let url = format!("http://127.0.0.1:{port}");
    let provider = run_json(
        muster(&dir)
            .args(["provider", "add", "--name", "Okta", "--json"])
            .env("MUSTER_PUBLIC_URL", &url),
    );
    let scim_token = provider["token"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let scim = provider["provider"]["scimBaseUrl"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let app = run_json(muster(&dir).args(["app", "add", "--name", "copy", "--json"]));
    let token = app["secret"].as_str().unwrap_or_default().to_string();
    let _server = Server(
        muster(&dir)
            .arg("serve")
            .env("MUSTER_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("MUSTER_PUBLIC_URL", &url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("serve: {e}")),
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(started.elapsed() < Duration::from_secs(20), "not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let send = |method: reqwest::Method, path: String, body: Value| {
        let (client, scim, scim_token) = (client.clone(), scim.clone(), scim_token.clone());
        async move {
            let r = client
                .request(method, format!("{scim}{path}"))
                .bearer_auth(&scim_token)
                .header("content-type", "application/scim+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json::<Value>().await.unwrap_or_default()
        }
    };
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;
    let op = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
    let mut ids = Vec::new();
    for name in ["ana", "ben", "cy"] {
        let u = send(
            post.clone(),
            "/Users".into(),
            json!({"userName": format!("{name}@example.com")}),
        )
        .await;
        ids.push(u["id"].as_str().unwrap_or_default().to_string());
    }
    let g = send(
        post.clone(),
        "/Groups".into(),
        json!({"displayName": "Ops", "members": [{"value": ids[0]}, {"value": ids[1]}]}),
    )
    .await;
    let gid = g["id"].as_str().unwrap_or_default().to_string();

    let state = dir.join("copy.json");
    let first = sync_once(&url, &token, &state);
    assert_eq!(first["users"].as_object().map(|u| u.len()), Some(3));
    assert_eq!(
        first["groups"][&gid]["members"].as_array().map(Vec::len),
        Some(2)
    );

    // Changes after the copy: the feed brings them.
    send(
        patch.clone(),
        format!("/Users/{}", ids[2]),
        json!({"schemas": [op], "Operations": [{"op": "replace", "path": "active", "value": false}]}),
    )
    .await;
    send(
        patch.clone(),
        format!("/Groups/{gid}"),
        json!({"schemas": [op], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": ids[2]}]},
            {"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])},
            {"op": "replace", "path": "displayName", "value": "Operations"}]}),
    )
    .await;
    let d = send(
        post.clone(),
        "/Users".into(),
        json!({"userName": "dee@example.com"}),
    )
    .await;
    let dee = d["id"].as_str().unwrap_or_default().to_string();
    let copy = sync_once(&url, &token, &state);

    // The copy is the directory as the API shows it now.
    let api = |path: String| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            client
                .get(format!("{url}/api/v1{path}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .json::<Value>()
                .await
                .unwrap_or_default()
        }
    };
    let mut expected_users = BTreeMap::new();
    for id in ids.iter().chain([&dee]) {
        let u = api(format!("/users/{id}")).await;
        let mut roles: Vec<String> = u["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect();
        roles.sort();
        expected_users.insert(
            id.clone(),
            json!({"id": id, "userName": u["userName"], "status": u["status"],
                   "organization": u["org"]["name"], "roles": roles}),
        );
    }
    let got_users: BTreeMap<String, Value> = copy["users"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    assert_eq!(got_users, expected_users);
    assert_eq!(copy["users"][&ids[2]]["status"], "blocked");
    let group = api(format!("/groups/{gid}")).await;
    let mut members: Vec<String> = group["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect();
    members.sort();
    assert_eq!(copy["groups"][&gid]["members"], json!(members));
    assert_eq!(copy["groups"][&gid]["displayName"], "Operations");
    let _ = std::fs::remove_dir_all(&dir);
}
