//! What every scenario uses: the server under test, a client connection, the timed runs and
//! their statistics.

use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The server under test.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) token: String,
    pub(crate) admin_token: Option<String>,
    pub(crate) child: Option<Child>,
    pub(crate) dir: Option<std::path::PathBuf>,
    /// The users' ids by index, when `--generate` wrote them before the server started.
    pub(crate) generated: Option<Vec<String>>,
    /// From starting the server to its first ready answer.
    pub(crate) startup: Option<Duration>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Server {
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Peak resident memory of the started server, in MiB (Linux `VmHWM`).
    pub(crate) fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

/// Latencies of one scenario.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) name: String,
    pub(crate) requests: usize,
    pub(crate) errors: usize,
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Vec<Duration>,
    pub(crate) statuses: Vec<u16>,
    /// The server's peak RSS once this scenario was over (MiB), when the bench started it.
    pub(crate) peak_rss: Option<f64>,
}

/// Adds a scenario's stats to the report, with the server's peak memory so far.
pub(crate) fn push(report: &mut Vec<Stats>, server: &Server, mut stats: Stats) {
    stats.peak_rss = server.peak_rss_mib();
    report.push(stats);
}

impl Stats {
    pub(crate) fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let mut l = self.latencies.clone();
        l.sort();
        let i = ((p / 100.0) * (l.len() as f64 - 1.0)).round() as usize;
        l[i.min(l.len() - 1)].as_secs_f64() * 1000.0
    }

    pub(crate) fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(crate) fn json(&self) -> Value {
        let mut statuses = self.statuses.clone();
        statuses.sort();
        statuses.dedup();
        json!({
            "scenario": self.name, "requests": self.requests, "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(), "requests_per_second": self.rps(),
            "p50_ms": self.percentile(50.0), "p90_ms": self.percentile(90.0), "p99_ms": self.percentile(99.0),
            "statuses": statuses, "server_peak_rss_mib_after": self.peak_rss,
        })
    }
}

/// A request to send: method, path below the SCIM base, optional body.
pub(crate) type Req = (reqwest::Method, String, Option<Value>);

/// One client's HTTP/1.1 connection to a plain-HTTP server, used one request at a time.
///
/// The load generator shares the machine's cores with the server, so what it spends per request
/// is taken from the server: reqwest (URL parsing, a connection pool and its locks per request)
/// took a third of a core at 7,000 requests a second. A connection per client, written to
/// directly, costs a fraction of that; reqwest stays for `https` targets.
pub(crate) struct Conn {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    authority: String,
    prefix: String,
    bearer: String,
}

impl Conn {
    /// Connects to `base` (`http://host:port/path`), or `None` when it is not plain HTTP.
    pub(crate) async fn open(base: &str, token: &str) -> Option<Conn> {
        let rest = base.strip_prefix("http://")?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let stream = tokio::net::TcpStream::connect(authority).await.ok()?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(conn);
        Some(Conn {
            sender,
            authority: authority.to_string(),
            prefix: prefix.to_string(),
            bearer: format!("Bearer {token}"),
        })
    }

    /// Sends one request and reads the whole response; its status, or 0 if the connection failed.
    pub(crate) async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> u16 {
        use http_body_util::BodyExt;
        let method = hyper::Method::from_bytes(method.as_str().as_bytes()).unwrap_or_default();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::AUTHORIZATION, &self.bearer);
        let body = match body {
            Some(b) => {
                req = req.header(hyper::header::CONTENT_TYPE, "application/scim+json");
                bytes::Bytes::from(b.to_string())
            }
            None => bytes::Bytes::new(),
        };
        let Ok(req) = req.body(http_body_util::Full::new(body)) else {
            return 0;
        };
        if self.sender.ready().await.is_err() {
            return 0;
        }
        match self.sender.send_request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.into_body().collect().await {
                    Ok(_) => status,
                    Err(_) => 0,
                }
            }
            Err(_) => 0,
        }
    }
}

/// Sends `n` units of requests made by `make(i)`, one after the other within a unit, with
/// `concurrency` clients, each on a connection of its own; times each unit (its last status
/// counts).
pub(crate) async fn run_units<F>(
    server: &Server,
    name: &str,
    n: usize,
    concurrency: usize,
    make: F,
) -> Stats
where
    F: Fn(usize) -> Vec<Req> + Send + Sync + 'static,
{
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_default();
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, make, next) = (client.clone(), make.clone(), next.clone());
        let (base, token) = (server.base.clone(), server.token.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut conn = Conn::open(&base, &token).await;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                let mut status = 0;
                for (method, path, body) in make(i) {
                    status = match conn.as_mut() {
                        Some(c) => c.send(method, &path, body).await,
                        None => {
                            let mut req = client
                                .request(method, format!("{base}{path}"))
                                .bearer_auth(&token);
                            if let Some(b) = body {
                                req = req
                                    .header("content-type", "application/scim+json")
                                    .body(b.to_string());
                            }
                            match req.send().await {
                                Ok(r) => {
                                    let s = r.status().as_u16();
                                    let _ = r.bytes().await;
                                    s
                                }
                                Err(_) => 0,
                            }
                        }
                    };
                    if status == 0 {
                        // The connection broke: a new one for the next request.
                        conn = Conn::open(&base, &token).await;
                    }
                    if !(200..300).contains(&status) {
                        break;
                    }
                }
                out.push((t.elapsed(), status));
            }
            out
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    for t in tasks {
        for (l, s) in t.await.unwrap_or_default() {
            latencies.push(l);
            statuses.push(s);
        }
    }
    let errors = statuses.iter().filter(|s| !(200..300).contains(*s)).count();
    Stats {
        name: name.into(),
        requests: n,
        errors,
        elapsed: started.elapsed(),
        latencies,
        statuses,
        peak_rss: None,
    }
}

/// Sends `n` requests made by `make(i)` with `concurrency` clients; times each.
pub(crate) async fn run<F>(
    server: &Server,
    name: &str,
    n: usize,
    concurrency: usize,
    make: F,
) -> Stats
where
    F: Fn(usize) -> Req + Send + Sync + 'static,
{
    run_units(server, name, n, concurrency, move |i| vec![make(i)]).await
}

pub(crate) fn user_body(i: usize) -> Value {
    let title = ["Engineer", "Manager", "Analyst", "Designer"][i % 4];
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": format!("user{i:07}@bench.example"),
        "externalId": format!("00u{i:07}"),
        "name": {"givenName": format!("Given{i}"), "familyName": format!("Family{}", i % 977), "formatted": format!("Given{i} Family{}", i % 977)},
        "displayName": format!("Given{i} Family{}", i % 977),
        "emails": [{"value": format!("user{i:07}@bench.example"), "type": "work", "primary": true}],
        "title": title,
        "active": true,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": format!("Dept{}", i % 50), "employeeNumber": format!("{i}")},
        "c42OrgName": format!("Office{}", i % 20),
    })
}

/// One timed call, as a scenario of one request.
pub(crate) fn single(name: &str, elapsed: Duration, status: u16) -> Stats {
    Stats {
        name: name.into(),
        requests: 1,
        errors: usize::from(!(200..300).contains(&status)),
        elapsed,
        latencies: vec![elapsed],
        statuses: vec![status],
        peak_rss: None,
    }
}
