//! A request id for every request, in a tracing span and in the `X-Request-Id` response header,
//! and one log line per request. Headers (so tokens) are never logged.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use muster_scim::ScimError;
use tracing::Instrument;

/// The header that carries the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The one middleware every route has: assigns the request id (keeping a sane one the caller
/// sent), runs the request under the request timeout ([`crate::layers::within_timeout`]), records
/// its metrics and, for a refused SCIM request, its sync log entry
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
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %seen.method,
        path = %req.uri().path(),
        provider = tracing::field::Empty
    );
    let started = Instant::now();
    let mut resp = crate::layers::within_timeout(&state, req, next)
        .instrument(span.clone())
        .await;
    let error = resp.extensions().get::<ScimError>();
    crate::layers::after_response(&state, seen, resp.status(), error, started).await;
    // Whole microseconds, so the line says `elapsed_ms=1.116`, not `1.1158430000000001`.
    let elapsed_ms = started.elapsed().as_micros() as f64 / 1000.0;
    let status = resp.status().as_u16();
    let scim_type = resp
        .extensions()
        .get::<ScimError>()
        .and_then(|e| e.scim_type)
        .map(|t| t.as_str());
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, elapsed_ms, "request failed");
        } else {
            tracing::info!(status, elapsed_ms, scim_type, "request");
        }
    });
    if let Some(v) = header {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}
