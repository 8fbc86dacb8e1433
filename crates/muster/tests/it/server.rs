//! The real server over TCP: TLS termination and connection timeouts.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

struct Server {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18081)
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("muster-srv-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// Starts `muster serve` with `config` (TOML) in a fresh directory; waits until it listens.
async fn start(dir: std::path::PathBuf, config: &str) -> Server {
    let port = free_port();
    let path = dir.join("muster.toml");
    std::fs::write(
        &path,
        format!("listen_addr = \"127.0.0.1:{port}\"\n{config}"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_muster"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUSTER_DATA_DIR", &dir)
        .env("MUSTER_CONFIG", &path)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("serve: {e}"));
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, port, dir }
}

/// A self-signed certificate for localhost and 127.0.0.1, made with the openssl command.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

async fn https_get(port: u16, cert: &std::path::Path, path: &str) -> String {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap_or_else(|e| panic!("{e}")) {
        roots
            .add(c.unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"))
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let name = ServerName::try_from("localhost").unwrap_or_else(|e| panic!("{e}"));
    let mut tls = connector
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake: {e}"));
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).to_string()
}

/// With a certificate and key configured, `muster serve` speaks HTTPS (and not plain HTTP), and
/// the SCIM base URLs it prints default to https.
#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let dir = temp_dir();
    let (cert, key) = self_signed(&dir);
    let config = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let server = start(dir, &config).await;
    let started = Instant::now();
    let mut resp = String::new();
    while !resp.starts_with("HTTP/1.1 200") && started.elapsed() < Duration::from_secs(20) {
        resp = https_get(server.port, &cert, "/readyz").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = tcp
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    // A provider added now gets an https base URL.
    let out = Command::new(env!("CARGO_BIN_EXE_muster"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUSTER_DATA_DIR", &server.dir)
        .env("MUSTER_CONFIG", server.dir.join("muster.toml"))
        .args(["provider", "add", "--name", "Okta", "--json"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let added: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert!(added["provider"]["scimBaseUrl"]
        .as_str()
        .is_some_and(|u| u.starts_with("https://127.0.0.1:")));
}

/// A certificate without its key is a configuration error at start-up, said plainly.
#[test]
fn a_certificate_without_a_key_is_refused() {
    let dir = temp_dir();
    std::fs::write(
        dir.join("muster.toml"),
        "tls_cert_file = \"/nonexistent.pem\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_muster"))
        .env_clear()
        .env("MUSTER_DATA_DIR", &dir)
        .env("MUSTER_CONFIG", dir.join("muster.toml"))
        .arg("serve")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls_key_file"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client that opens a connection and sends its headers too slowly is disconnected after the
/// header timeout; it does not hold the connection.
#[tokio::test]
async fn slow_headers_are_cut_off() {
    let server = start(temp_dir(), "header_timeout_secs = 1\n").await;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was still open after 10 s");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    // A prompt client is served.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}
