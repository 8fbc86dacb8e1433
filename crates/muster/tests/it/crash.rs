//! Crash safety: provisioning load while the server is killed with SIGKILL at random moments and
//! restarted. Every request acknowledged with 2xx must have happened, completely, and scheduled
//! deactivations must still run.

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{Backend, TestDb};

const KILLS: usize = 3;

/// A `muster serve` process of its own (directory, port, configuration) on a given database.
pub(crate) struct Proc {
    child: Option<Child>,
    dir: std::path::PathBuf,
    url: String,
    pub(crate) port: u16,
}

impl Proc {
    /// A process for database `url`, configured with `listen_addr` and the lines of `config`;
    /// not started yet.
    pub(crate) fn new(url: &str, config: &str) -> Proc {
        let dir =
            std::env::temp_dir().join(format!("muster-proc-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.join("muster.toml"),
            format!("listen_addr = \"127.0.0.1:{port}\"\n{config}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Proc {
            child: None,
            dir,
            url: url.to_string(),
            port,
        }
    }

    pub(crate) fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_muster"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MUSTER_DATA_DIR", &self.dir)
            .env("MUSTER_DATABASE_URL", &self.url)
            .env("MUSTER_CONFIG", self.dir.join("muster.toml"))
            .env(
                "MUSTER_PUBLIC_URL",
                format!("http://127.0.0.1:{}", self.port),
            );
        c
    }

    pub(crate) async fn start(&mut self) {
        let child = self
            .cmd()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("serve: {e}"));
        self.child = Some(child);
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client
                .get(format!("http://127.0.0.1:{}/readyz", self.port))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no restart");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    pub(crate) fn run_json(&self, args: &[&str]) -> Value {
        let out = self
            .cmd()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the server acknowledged.
#[derive(Default)]
struct Acks {
    users: HashMap<usize, String>,
    members: BTreeSet<String>,
    turned_off: BTreeSet<String>,
}

async fn workload(
    base: String,
    token: String,
    group: String,
    worker: usize,
    acks: Arc<Mutex<Acks>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let mut i = worker;
    // At most 800 users: one page of the API's listings holds them all.
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 800 {
        let name = format!("crash{i}@example.com");
        // Create (a retry after a crash may find it already there: 409 then means it exists).
        let r = client
            .post(format!("{base}/Users"))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(json!({"userName": name, "title": "t"}).to_string())
            .send()
            .await;
        let id = match r {
            Ok(r) if r.status().as_u16() == 201 => {
                let v: Value = r.json().await.unwrap_or_default();
                v["id"].as_str().unwrap_or_default().to_string()
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                i += 4;
                continue;
            }
        };
        if let Ok(mut a) = acks.lock() {
            a.users.insert(i, id.clone());
        }
        let patch = |ops: Value| {
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
                .to_string()
        };
        let r = client
            .patch(format!("{base}/Groups/{group}?excludedAttributes=members"))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(patch(
                json!([{"op": "add", "path": "members", "value": [{"value": id}]}]),
            ))
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            if let Ok(mut a) = acks.lock() {
                a.members.insert(id.clone());
            }
        }
        if i.is_multiple_of(3) {
            let r = client
                .patch(format!("{base}/Users/{id}"))
                .bearer_auth(&token)
                .header("content-type", "application/scim+json")
                .body(patch(
                    json!([{"op": "replace", "value": {"active": false}}]),
                ))
                .send()
                .await;
            if r.is_ok_and(|r| r.status().is_success()) {
                if let Ok(mut a) = acks.lock() {
                    a.turned_off.insert(id.clone());
                }
            }
        }
        i += 4;
    }
}

async fn kill_and_restart_under_load(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut proc = Proc::new(
        &db.url,
        "scheduler_interval_secs = 1\nrate_limit_per_second = 0\n",
    );
    let port = proc.port;
    let added = proc.run_json(&["provider", "add", "--name", "Okta", "--json"]);
    let pid = added["provider"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let base = added["provider"]["scimBaseUrl"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let token = added["token"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Most users are turned off on purpose: the mass-deactivation guard is off for the provider.
    let out = proc
        .cmd()
        .args(["provider", "guard", &pid, "--state", "off"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    proc.run_json(&[
        "provider",
        "update",
        &pid,
        "--deactivation-delay",
        "2s",
        "--json",
    ]);
    let admin = proc.run_json(&["admin", "token", "create", "--json"]);
    let admin = admin["secret"].as_str().unwrap_or_default().to_string();
    proc.start().await;
    let client = reqwest::Client::new();
    let g: Value = client
        .post(format!("{base}/Groups"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(json!({"displayName": "Everyone", "members": []}).to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let group = g["id"].as_str().unwrap_or_default().to_string();

    let acks = Arc::new(Mutex::new(Acks::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(workload(
                base.clone(),
                token.clone(),
                group.clone(),
                w,
                acks.clone(),
                stop.clone(),
            ))
        })
        .collect();
    // Random moments: derived from the clock, different on each run.
    let mut seed = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
    for _ in 0..KILLS {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(300 + (seed >> 33) % 700)).await;
        proc.kill();
        tokio::time::sleep(Duration::from_millis(100)).await;
        proc.start().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let (users, members, turned_off) = {
        let a = acks.lock().unwrap_or_else(|e| e.into_inner());
        (a.users.clone(), a.members.clone(), a.turned_off.clone())
    };
    assert!(users.len() > 20, "the load made only {} users", users.len());

    // One more kill after the load, then check everything from a fresh process.
    proc.kill();
    proc.start().await;
    for id in users.values() {
        let r = client
            .get(format!("{base}/Users/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.status().as_u16(),
            200,
            "acknowledged user {id} is missing"
        );
    }
    let g: Value = client
        .get(format!("{base}/Groups/{group}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let in_group: BTreeSet<String> = g["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["value"].as_str().map(str::to_string))
        .collect();
    assert!(
        members.is_subset(&in_group),
        "acknowledged memberships are missing: {:?}",
        members.difference(&in_group).collect::<Vec<_>>()
    );
    // Nothing half-applied: every user that exists has exactly one creation entry, every member
    // exists.
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let listed: Value = client
        .get(format!("{api}/users?limit=1000&provider={pid}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let all: Vec<String> = listed["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .collect();
    let log: Value = client
        .get(format!("{api}/sync-log?action=user.created&limit=1000"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let mut created: HashMap<String, usize> = HashMap::new();
    for e in log["entries"].as_array().into_iter().flatten() {
        *created
            .entry(e["subject"]["id"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    for id in &all {
        assert_eq!(
            created.get(id),
            Some(&1),
            "user {id} without exactly one user.created entry"
        );
    }
    assert_eq!(
        created.len(),
        all.len(),
        "an entry for a user that does not exist"
    );
    let all_set: BTreeSet<String> = all.into_iter().collect();
    assert!(in_group.is_subset(&all_set), "a member that is not a user");

    // Deactivations scheduled before the crashes still happen (delay 2 s, scheduler every 1 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in &turned_off {
        loop {
            let u: Value = client
                .get(format!("{api}/users/{id}"))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .json()
                .await
                .unwrap_or_default();
            if u["status"] == "deactivated" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "user {id} was not deactivated: {u}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    proc.kill();
    drop(proc);
    db.drop_db().await;
}

#[tokio::test]
async fn sigkill_under_load_sqlite() {
    kill_and_restart_under_load(Backend::Sqlite).await;
}

#[tokio::test]
async fn sigkill_under_load_postgres() {
    kill_and_restart_under_load(Backend::Postgres).await;
}
