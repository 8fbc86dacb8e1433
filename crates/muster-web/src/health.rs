//! Liveness and readiness probes, and the metrics endpoint.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

/// `/healthz` and `/readyz`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(get_health))
        .route("/readyz", get(get_ready))
        .route("/metrics", get(get_metrics))
}

/// The process is up.
async fn get_health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// The database answers.
async fn get_ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.muster.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "database": state.muster.store.backend()})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": state.muster.store.backend()})),
            )
        }
    }
}

/// `GET /metrics`.
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(16 * 1024);
    state.metrics.render(&mut out);
    state.muster.store.render_metrics(&mut out);
    let now = state.muster.now();
    match state.muster.deactivation_backlog(now).await {
        Ok(b) => {
            out.push_str("# HELP muster_deactivations_pending Users blocked and waiting for their scheduled deactivation.\n# TYPE muster_deactivations_pending gauge\n");
            let _ = writeln!(out, "muster_deactivations_pending {}", b.pending);
            out.push_str("# HELP muster_deactivations_overdue Scheduled deactivations whose time has passed.\n# TYPE muster_deactivations_overdue gauge\n");
            let _ = writeln!(out, "muster_deactivations_overdue {}", b.overdue);
            out.push_str("# HELP muster_scheduler_lag_seconds How long the oldest overdue deactivation has been due (0 when none).\n# TYPE muster_scheduler_lag_seconds gauge\n");
            let _ = writeln!(out, "muster_scheduler_lag_seconds {}", b.lag_secs);
            out.push_str("# HELP muster_up Whether the database answered this scrape.\n# TYPE muster_up gauge\nmuster_up 1\n");
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database did not answer");
            out.push_str("# HELP muster_up Whether the database answered this scrape.\n# TYPE muster_up gauge\nmuster_up 0\n");
        }
    }
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
