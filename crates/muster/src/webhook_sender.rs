//! The webhook sender: the background task that asks the core for the next delivery, POSTs it
//! (10 s timeout, no redirects) and reports what came back. One delivery at a time per instance;
//! the core's leases let several instances share the endpoints, each endpoint in order.
//!
//! Unless `allow_private_webhook_urls` is set, the sender connects only to addresses outside the
//! network Muster runs in: an endpoint's URL is checked again before each delivery (it may have
//! been added while such addresses were allowed), and a host name is resolved by
//! [`OutsideOnly`], which keeps only the addresses that are not inside
//! ([`muster_core::webhooks::is_internal`]). The check is made on the addresses the connection
//! then uses, so a name that resolved outside when the endpoint was added and resolves inside
//! now (DNS rebinding) is refused too.

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use muster_core::webhooks::delivery::{Outgoing, Response, RESPONSE_KEPT};
use muster_core::Muster;

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a delivery was not attempted: its host resolves only to inside addresses.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The system's resolver (`getaddrinfo`, as reqwest's own), keeping only the addresses outside.
struct OutsideOnly;

impl OutsideOnly {
    async fn lookup(
        name: String,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let all: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
        let outside: Vec<SocketAddr> = all
            .iter()
            .copied()
            .filter(|a| !muster_core::webhooks::is_internal(a.ip()))
            .collect();
        if outside.is_empty() && !all.is_empty() {
            return Err(Box::new(Refused(format!(
                "{name} resolves to {}, an address inside Muster's network; refused (see allow_private_webhook_urls)",
                all[0].ip()
            ))));
        }
        Ok(outside)
    }
}

impl reqwest::dns::Resolve for OutsideOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            let addrs = Self::lookup(name).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client deliveries go through: a timeout, no redirects (a receiver cannot send
/// Muster elsewhere), and, unless private addresses are allowed, [`OutsideOnly`].
fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if allow_private {
        builder.build()
    } else {
        builder.dns_resolver(Arc::new(OutsideOnly)).build()
    }
}

async fn send(client: &reqwest::Client, out: &Outgoing, allow_private: bool) -> Response {
    let started = Instant::now();
    if let Err(e) = muster_core::webhooks::check_url(&out.endpoint.url, allow_private) {
        return Response {
            status: None,
            latency: started.elapsed(),
            body: String::new(),
            error: Some(e.to_string()),
        };
    }
    let mut req = client.post(&out.endpoint.url).body(out.body.clone());
    for (k, v) in &out.headers {
        req = req.header(*k, v);
    }
    match req.send().await {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let body = first_of_body(&mut resp).await;
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
            error: Some(if let Some(refused) = refusal(&e) {
                refused
            } else if e.is_timeout() {
                format!("no answer within {} seconds", TIMEOUT.as_secs())
            } else if e.is_connect() {
                "the connection failed".into()
            } else {
                "the request failed".into()
            }),
        },
    }
}

/// The start of a receiver's answer, as much as the delivery log keeps: the rest is never read,
/// so a receiver answering with gigabytes costs Muster no more memory than a short answer.
async fn first_of_body(resp: &mut reqwest::Response) -> String {
    // A character is at most four bytes in UTF-8.
    let limit = RESPONSE_KEPT * 4;
    let mut buf = Vec::with_capacity(1024);
    while buf.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - buf.len();
                buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf)
        .chars()
        .take(RESPONSE_KEPT)
        .collect()
}

/// The resolver's refusal, if that is why the request failed.
fn refusal(e: &reqwest::Error) -> Option<String> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        source = s.source();
    }
    None
}

/// Deliveries in flight at once from one instance, each to a different endpoint (an endpoint's
/// lease keeps its own deliveries one at a time), so one slow receiver does not hold up others.
const PARALLEL: usize = 8;

/// Delivers until `stop` says so: every due delivery at once (up to [`PARALLEL`] in flight), then
/// again when this instance commits events, or every `every` (for other instances' events and
/// due retries). On stop, the deliveries in flight finish and are recorded.
pub async fn run(muster: Muster, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let allow_private = muster.settings.webhooks.allow_private_urls;
    let client = match client(allow_private) {
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
                    let r = send(&c, &out, allow_private).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A name that resolves to loopback (here `localhost`, from the system's own resolver) is
    /// refused by the client deliveries use, before any connection: the listener sees none.
    #[tokio::test]
    async fn a_name_resolving_inside_is_refused_by_the_client() {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
        let url = format!("http://localhost:{port}/hook");

        let refused = match client(false) {
            Ok(c) => c.post(&url).body("{}").send().await,
            Err(e) => panic!("{e}"),
        };
        let err = match refused {
            Ok(r) => panic!("connected: {}", r.status()),
            Err(e) => e,
        };
        let why = refusal(&err).unwrap_or_default();
        assert!(
            why.contains("localhost resolves to ") && why.contains("refused"),
            "{why}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!accepted.is_finished(), "no connection was made");

        // Allowed, the same client setup connects.
        let allowed = match client(true) {
            Ok(c) => {
                c.post(&url)
                    .body("{}")
                    .timeout(Duration::from_millis(300))
                    .send()
                    .await
            }
            Err(e) => panic!("{e}"),
        };
        assert!(allowed.is_err(), "the listener never answers");
        assert!(matches!(accepted.await, Ok(true)), "a connection was made");
    }

    /// A receiver that answers with an endless body: the sender keeps the first KiB and stops
    /// reading, and the receiver can write little more than what the sockets buffer.
    #[tokio::test]
    async fn an_endless_answer_is_not_read_past_what_is_kept() {
        use tokio::io::AsyncWriteExt;
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let written = tokio::spawn(async move {
            let Ok((mut sock, _)) = listener.accept().await else {
                return 0usize;
            };
            let mut head = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut head).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = format!("{:x}\r\n{}\r\n", 65536, "x".repeat(65536));
            let mut total = 0usize;
            // At most 1 GiB, should the client read it all.
            while total < (1 << 30) {
                if sock.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                total += 65536;
            }
            total
        });
        let c = match client(true) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let mut resp = match c.post(format!("http://127.0.0.1:{port}/")).send().await {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let body = first_of_body(&mut resp).await;
        assert_eq!(body.len(), RESPONSE_KEPT);
        drop(resp);
        drop(c);
        let total = match tokio::time::timeout(Duration::from_secs(10), written).await {
            Ok(Ok(n)) => n,
            other => panic!("the receiver did not finish: {other:?}"),
        };
        assert!(total < 64 << 20, "the receiver wrote {total} bytes");
    }
}
