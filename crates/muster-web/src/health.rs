//! Liveness and readiness probes, and the metrics endpoint.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::AppState;

/// `/healthz` and `/readyz`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(get_health))
        .route("/readyz", get(get_ready))
        .route("/metrics", get(crate::metrics::get_metrics))
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
