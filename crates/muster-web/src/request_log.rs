//! A request id for every request, in the `X-Request-Id` response header and on every log line
//! written while the request runs, and one log line per request. Headers (so tokens) are never
//! logged.
//!
//! The request's id, method, path and provider are kept in a task-local [`CurrentRequest`]
//! rather than a tracing span: the log's formatters (`muster::logging`) write them at the head of
//! each line logged while it is set, as `request{request_id=… method=… path=… provider=…}:` in
//! the human format and as the root of `span`/`spans` in JSON, which is what a span named
//! `request` with those fields wrote. A span cost a GET about 5,600 instructions under callgrind
//! (registering it, formatting its four fields into a string when it was made and again when
//! the provider was recorded, entering and leaving it at each poll, closing it), for fields that
//! are written once, on the request's own line (docs/benchmarks.md, "The request log without a
//! span").

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::Response;
use muster_core::ids::ProviderId;
use muster_scim::ScimError;

use crate::scim::extract::CtxSlot;

/// The header that carries the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: CurrentRequest;
}

/// The request a task is serving, as its log lines name it.
#[derive(Debug, Clone)]
pub struct CurrentRequest {
    id: String,
    method: Method,
    uri: Uri,
    provider: CtxSlot,
}

impl CurrentRequest {
    /// A request with no provider yet (the SCIM extractor notes it in `provider` once the
    /// request has authenticated).
    pub fn new(id: String, method: Method, uri: Uri, provider: CtxSlot) -> CurrentRequest {
        CurrentRequest {
            id,
            method,
            uri,
            provider,
        }
    }

    /// Calls `f` with the request the calling task serves; `None` outside a request.
    pub fn with<R>(f: impl FnOnce(&CurrentRequest) -> R) -> Option<R> {
        CURRENT.try_with(f).ok()
    }

    /// Runs `f` (synchronous code) as part of this request.
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    /// The request id (the caller's `X-Request-Id` if it was sane, else a new one).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    /// The path, without the query (which may carry a filter on people's names).
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The provider the request authenticated as, once it has.
    pub fn provider(&self) -> Option<ProviderId> {
        self.provider.provider().map(|(_, p)| p)
    }
}

fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The one middleware every route has: assigns the request id (keeping a sane one the caller
/// sent), runs the request under the request timeout ([`crate::layers::within_timeout`]) as the
/// [`CurrentRequest`], records its metrics and, for a refused SCIM request, its sync log entry
/// ([`crate::layers::after_response`]), and logs the outcome. One layer: each `from_fn` layer
/// clones the route's service and boxes its future on every request (about 3,000 instructions
/// of a GET under callgrind, docs/benchmarks.md). It is a `Router::layer`, which axum applies to
/// each route after matching it, so the route's template is known here.
pub async fn track(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let header = HeaderValue::from_str(&id).ok();
    let seen = crate::layers::Seen::of(&mut req);
    let current = CurrentRequest::new(
        id,
        seen.method.clone(),
        req.uri().clone(),
        seen.slot.clone(),
    );
    CURRENT
        .scope(current, async move {
            let started = Instant::now();
            let mut resp = crate::layers::within_timeout(&state, req, next).await;
            let error = resp.extensions().get::<ScimError>();
            let scim_type = error.and_then(|e| e.scim_type).map(|t| t.as_str());
            crate::layers::after_response(&state, seen, resp.status(), error, started).await;
            // Whole microseconds, so the line says `elapsed_ms=1.116`, not `1.1158430000000001`.
            let elapsed_ms = started.elapsed().as_micros() as f64 / 1000.0;
            let status = resp.status().as_u16();
            if status >= 500 {
                tracing::error!(status, elapsed_ms, "request failed");
            } else {
                tracing::info!(status, elapsed_ms, scim_type, "request");
            }
            if let Some(v) = header {
                resp.headers_mut().insert(REQUEST_ID_HEADER, v);
            }
            resp
        })
        .await
}
