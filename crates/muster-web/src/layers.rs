//! What the middleware ([`crate::request_log::track`]) does around each request: the request
//! timeout, the request metrics, the sync log entry of a refused SCIM request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
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
    let path = req.uri().path();
    let limit = if path.ends_with("/mapping/apply") {
        LONG_OPERATION
    } else if path == "/api/v1/events" {
        // A long poll waits up to this long for the next event on the server's side, not the
        // client's: it gets that on top (with `wait=30` and the default 30 s, the timeout
        // answered before the empty page did).
        state.limits.settings().request_timeout
            + std::time::Duration::from_secs(muster_core::events::feed::MAX_WAIT_SECS)
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

/// What the middleware notes of a request before running it, for after the response.
pub struct Seen {
    route: Route,
    pub(crate) method: axum::http::Method,
    /// Kept (shared, not copied) only for a SCIM request, read only if it is refused.
    scim_uri: Option<axum::http::Uri>,
    pub(crate) slot: CtxSlot,
}

impl Seen {
    /// Notes the route template (axum has matched the route: the middleware is applied to each
    /// route), the method and a SCIM request's URI, and leaves a [`CtxSlot`] in the request for
    /// the provider it authenticates as.
    pub fn of(req: &mut Request) -> Seen {
        let route = match req.extensions().get::<MatchedPath>() {
            Some(p) => Route::Matched(p.clone()),
            None => Route::Unmatched,
        };
        let scim_uri = req
            .uri()
            .path()
            .starts_with("/scim/")
            .then(|| req.uri().clone());
        let slot = CtxSlot::default();
        req.extensions_mut().insert(slot.clone());
        Seen {
            route,
            method: req.method().clone(),
            scim_uri,
            slot,
        }
    }
}

/// After a request: records a refused SCIM request (4xx or 5xx, with its SCIM error) in its
/// provider's sync log ([`crate::scim::log_rejection`]) and counts and times the request by
/// route template. Takes the response's status and error rather than the response, which is not
/// `Sync` and so cannot be borrowed across the sync log's write.
pub async fn after_response(
    state: &AppState,
    seen: Seen,
    status: StatusCode,
    error: Option<&ScimError>,
    started: Instant,
) {
    if let (Some(uri), Some(err)) = (&seen.scim_uri, error) {
        if status.as_u16() >= 400 {
            crate::scim::log_rejection(state, &seen.method, uri, &seen.slot, err).await;
        }
    }
    state.metrics.record(
        Key {
            route: seen.route,
            method: seen.method,
            status: status.as_u16(),
            provider: seen.slot.provider().map(|(_, p)| p),
        },
        started.elapsed().as_secs_f64(),
    );
}
