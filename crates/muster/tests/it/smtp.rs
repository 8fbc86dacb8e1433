//! Notices through a real SMTP server: aiosmtpd (PyPI, installed by scripts/test), started by
//! the test on loopback with AUTH, records every message it accepts as the `email` package reads
//! it. `muster serve` processes send; the CLI queues notices while no server runs.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::crash::Proc;
use crate::support::{postgres_reachable, Backend, TestDb};

const PASSWORD: &str = "correct horse battery";

/// The SMTP server, killed when dropped.
struct Smtp {
    child: Child,
    port: u16,
    out: std::path::PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}

fn python() -> Option<String> {
    let python = match std::env::var("MUSTER_VENV") {
        Ok(v) => format!("{v}/bin/python"),
        Err(_) => "python3".into(),
    };
    let ok = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("MUSTER_VENV").is_err(),
            "aiosmtpd is missing from MUSTER_VENV"
        );
        eprintln!("skipped: no aiosmtpd package (scripts/test installs it)");
        return None;
    }
    Some(python)
}

impl Smtp {
    fn start(python: &str, auth: &str) -> Smtp {
        let out = std::env::temp_dir().join(format!(
            "muster-smtp-{}.jsonl",
            uuid::Uuid::new_v4().simple()
        ));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp/server.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(&out)
            .args(["--auth", auth])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        }
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP server did not start: {line:?}"));
        Smtp { child, port, out }
    }

    fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until a message with this subject arrived.
    async fn wait_for(&self, subject: &str) -> Value {
        let started = Instant::now();
        loop {
            if let Some(m) = self
                .messages()
                .into_iter()
                .find(|m| m["subject"] == subject)
            {
                return m;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no message '{subject}' within 30 s: {:?}",
                self.messages()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn config(port: u16, password_file: &std::path::Path) -> String {
    format!(
        "smtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nsmtp_tls = \"none\"\nsmtp_username = \"muster\"\n\
         smtp_password_file = \"{}\"\nmail_from = \"Muster <muster@example.com>\"\n\
         scheduler_interval_secs = 1\nmail_retry_base_secs = 1\n",
        password_file.display()
    )
}

fn cli(proc: &Proc, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = proc
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let (Some(input), Some(mut s)) = (stdin, child.stdin.take()) {
        let _ = s.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "muster {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn add_admin(proc: &Proc, name: &str, role: &str) {
    cli(
        proc,
        &["admin", "create", "--username", name, "--role", role],
        Some(&format!("{PASSWORD}\n{PASSWORD}\n")),
    );
}

fn secret_file() -> std::path::PathBuf {
    let f = std::env::temp_dir().join(format!("muster-smtp-pw-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&f, "s3cret\n").unwrap_or_else(|e| panic!("{e}"));
    f
}

/// The test message reports the server's answer; a notice queued while no server runs is sent
/// once when one starts, and again none is lost or doubled across a SIGKILL and restart. Every
/// message is multipart (text and HTML), authenticated, from the configured address, with the
/// console's links and no secret.
async fn notices_go_out_through_a_real_smtp_server(b: Backend) {
    let Some(python) = python() else { return };
    let smtp = Smtp::start(&python, "muster:s3cret");
    let db = TestDb::new(b).await;
    let pw = secret_file();
    let mut proc = Proc::new(&db.url, &config(smtp.port, &pw));
    let answer = cli(&proc, &["notify", "test", "--to", "ops@example.com"], None);
    assert!(answer.contains("250"), "{answer}");
    let test = smtp.wait_for("Muster test message").await;
    assert_eq!(test["to"], serde_json::json!(["ops@example.com"]));
    assert_eq!(test["auth"], true, "authenticated");
    assert_eq!(test["multipart"], "multipart/alternative");
    assert_eq!(test["header_from"], "Muster <muster@example.com>");

    add_admin(&proc, "ada", "customer-cloud-admin");
    cli(
        &proc,
        &[
            "admin",
            "set-notifications",
            "--username",
            "ada",
            "--email",
            "ada@example.com",
        ],
        None,
    );
    // Queued while no server runs; sent once one starts.
    add_admin(&proc, "bob", "audit-log-viewer");
    proc.start().await;
    let added = smtp
        .wait_for("Muster: administrator bob was added as Audit Log Viewer")
        .await;
    assert_eq!(added["to"], serde_json::json!(["ada@example.com"]));
    let text = added["text"].as_str().unwrap_or_default();
    let html = added["html"].as_str().unwrap_or_default();
    assert!(text.contains("by cli:"), "{text}");
    let console = format!("http://127.0.0.1:{}/console/admins", proc.port);
    assert!(text.contains(&console) && html.contains(&console), "{text}");
    assert!(!text.contains(PASSWORD) && !html.contains(PASSWORD) && !text.contains("s3cret"));

    // Killed and restarted: what was queued meanwhile goes out, nothing twice.
    proc.kill();
    cli(
        &proc,
        &[
            "admin",
            "set-role",
            "--username",
            "bob",
            "--role",
            "identity-management-admin",
        ],
        None,
    );
    proc.start().await;
    smtp.wait_for("Muster: administrator bob was given the role Identity Management Administrator (was Audit Log Viewer)")
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in smtp.messages() {
        *seen
            .entry(m["subject"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    assert!(
        seen.values().all(|n| *n == 1),
        "each message once: {seen:?}"
    );
    assert_eq!(seen.len(), 3, "{seen:?}");
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", proc.port))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(metrics.contains("muster_mail_queued 0"), "{metrics}");
    drop(proc);
    let _ = std::fs::remove_file(&pw);
    db.drop_db().await;
}

#[tokio::test]
async fn notices_go_out_through_a_real_smtp_server_sqlite() {
    notices_go_out_through_a_real_smtp_server(Backend::Sqlite).await;
}

#[tokio::test]
async fn notices_go_out_through_a_real_smtp_server_postgres() {
    if !postgres_reachable().await {
        return;
    }
    notices_go_out_through_a_real_smtp_server(Backend::Postgres).await;
}

/// With no SMTP server answering, notices stay queued and are retried, and provisioning goes on;
/// pointed at a server, the same notice goes out.
#[tokio::test]
async fn an_unreachable_smtp_server_leaves_mail_queued() {
    let Some(python) = python() else { return };
    let db = TestDb::new(Backend::Sqlite).await;
    let pw = secret_file();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(9);
    let mut proc = Proc::new(&db.url, &config(closed, &pw));
    add_admin(&proc, "ada", "customer-cloud-admin");
    cli(
        &proc,
        &[
            "admin",
            "set-notifications",
            "--username",
            "ada",
            "--email",
            "ada@example.com",
        ],
        None,
    );
    add_admin(&proc, "bob", "audit-log-viewer");
    let provider: Value = serde_json::from_str(&cli(
        &proc,
        &["provider", "add", "--name", "Okta", "--json"],
        None,
    ))
    .unwrap_or_default();
    proc.start().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let base = provider["provider"]["scimBaseUrl"]
        .as_str()
        .unwrap_or_default();
    let r = reqwest::Client::new()
        .post(format!("{base}/Users"))
        .bearer_auth(provider["token"]["secret"].as_str().unwrap_or_default())
        .header("content-type", "application/scim+json")
        .body(r#"{"userName":"still@example.com"}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 201, "provisioning goes on");
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", proc.port))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(metrics.contains("muster_mail_queued 1"), "{metrics}");
    assert!(
        metrics.contains("muster_mail_failed 0"),
        "retried, not given up"
    );
    proc.kill();

    let smtp = Smtp::start(&python, "muster:s3cret");
    let mut fixed = Proc::new(&db.url, &config(smtp.port, &pw));
    fixed.start().await;
    smtp.wait_for("Muster: administrator bob was added as Audit Log Viewer")
        .await;
    drop(fixed);
    drop(proc);
    let _ = std::fs::remove_file(&pw);
    db.drop_db().await;
}

/// Three instances on one PostgreSQL database send each of 30 queued notices once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_send_each_message_once() {
    let Some(python) = python() else { return };
    if !postgres_reachable().await {
        return;
    }
    let smtp = Smtp::start(&python, "muster:s3cret");
    let db = TestDb::new(Backend::Postgres).await;
    let pw = secret_file();
    let mut procs: Vec<Proc> = (0..3)
        .map(|_| Proc::new(&db.url, &config(smtp.port, &pw)))
        .collect();
    add_admin(&procs[0], "ada", "customer-cloud-admin");
    cli(
        &procs[0],
        &[
            "admin",
            "set-notifications",
            "--username",
            "ada",
            "--email",
            "ada@example.com",
        ],
        None,
    );
    for i in 0..30 {
        add_admin(&procs[0], &format!("user{i:02}"), "audit-log-viewer");
    }
    for p in &mut procs {
        p.start().await;
    }
    let started = Instant::now();
    while smtp.messages().len() < 30 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of 30",
            smtp.messages().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in smtp.messages() {
        *seen
            .entry(m["subject"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 30);
    assert!(seen.values().all(|n| *n == 1), "each once: {seen:?}");
    drop(procs);
    let _ = std::fs::remove_file(&pw);
    db.drop_db().await;
}
