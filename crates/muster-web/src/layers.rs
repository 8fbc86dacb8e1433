//! The middleware every request passes: the request timeout and the request metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use muster_scim::ScimError;

use crate::error::ScimErrorResponse;
use crate::limits::LONG_OPERATION;
use crate::metrics::{Key, Route};
use crate::scim::extract::CtxSlot;
use crate::state::AppState;

/// Runs a request, ending it with 408 (in the caller's protocol) if it runs past the request
/// timeout. Called by the outermost middleware ([`crate::request_log::track`]).
pub async fn within_timeout(state: &AppState, req: Request, next: Next) -> Response {
    let scim = req.uri().path().starts_with("/scim/");
    // A re-apply of mappings is server-side work over every user of a provider, not a slow
    // client: it gets an hour (its body is a few bytes).
    let limit = if req.uri().path().ends_with("/mapping/apply") {
        LONG_OPERATION
    } else {
        state.limits.settings().request_timeout
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            let detail = format!(
                "the request did not complete within {} seconds",
                limit.as_secs()
            );
            if scim {
                ScimErrorResponse(ScimError::new(408, None, detail)).into_response()
            } else {
                (
                    StatusCode::REQUEST_TIMEOUT,
                    axum::Json(
                        serde_json::json!({"error": {"code": "timeout", "message": detail}}),
                    ),
                )
                    .into_response()
            }
        }
    }
}

/// Route middleware: times each request and counts it by route template, and records a refused
/// SCIM request in its provider's sync log ([`crate::scim::log_rejection`]). One layer for both:
/// each route layer clones the route's service and boxes its future, on every request.
pub async fn track(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = match req.extensions().get::<MatchedPath>() {
        Some(p) => Route::Matched(p.clone()),
        None => Route::Unmatched,
    };
    let method = req.method().clone();
    // Kept (shared, not copied) only for a SCIM request, read only if it is refused.
    let scim_uri = req
        .uri()
        .path()
        .starts_with("/scim/")
        .then(|| req.uri().clone());
    let slot = match req.extensions().get::<CtxSlot>() {
        Some(s) => s.clone(),
        None => {
            let s = CtxSlot::default();
            req.extensions_mut().insert(s.clone());
            s
        }
    };
    let resp = next.run(req).await;
    if let Some(uri) = &scim_uri {
        // The error is cloned off the response: a response is not `Sync`, so it cannot be
        // borrowed across the sync log's write.
        let refused = (resp.status().as_u16() >= 400)
            .then(|| resp.extensions().get::<ScimError>().cloned())
            .flatten();
        if let Some(err) = refused {
            crate::scim::log_rejection(&state, &method, uri, &slot, &err).await;
        }
    }
    let provider = slot.0.lock().ok().and_then(|c| c.as_ref().map(|c| c.id()));
    state.metrics.record(
        Key {
            route,
            method,
            status: resp.status().as_u16(),
            provider,
        },
        started.elapsed().as_secs_f64(),
    );
    resp
}
