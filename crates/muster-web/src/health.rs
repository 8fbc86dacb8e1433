//! Liveness and readiness probes, and the metrics endpoint.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
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

/// `GET /metrics`: one registry per scrape, holding this instance's request metrics (shared),
/// the store's collector, and the scheduler's gauges read from the database now.
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    let mut registry = Registry::default();
    state.metrics.register(&mut registry);
    state.muster.store.register_metrics(&mut registry);
    let up = Gauge::<i64>::default();
    match state.muster.deactivation_backlog(state.muster.now()).await {
        Ok(b) => {
            up.set(1);
            for (name, help, value) in [
                (
                    "muster_deactivations_pending",
                    "Users blocked and waiting for their scheduled deactivation.",
                    b.pending as i64,
                ),
                (
                    "muster_deactivations_overdue",
                    "Scheduled deactivations whose time has passed.",
                    b.overdue as i64,
                ),
                (
                    "muster_scheduler_lag_seconds",
                    "How long the oldest overdue deactivation has been due (0 when none).",
                    b.lag_secs as i64,
                ),
            ] {
                let g = Gauge::<i64>::default();
                g.set(value);
                registry.register(name, help, g);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the database did not answer"),
    }
    match state.muster.webhook_status().await {
        Ok((on, failing, behind)) => {
            for (name, help, value) in [
                (
                    "muster_webhook_endpoints_on",
                    "Webhook endpoints receiving deliveries.",
                    on as i64,
                ),
                (
                    "muster_webhook_endpoints_failing",
                    "Webhook endpoints turned off after failing past the retry schedule.",
                    failing as i64,
                ),
                (
                    "muster_webhook_events_behind",
                    "The most events a webhook endpoint that is on has yet to receive.",
                    behind,
                ),
            ] {
                let g = Gauge::<i64>::default();
                g.set(value);
                registry.register(name, help, g);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the webhook status could not be read"),
    }
    match state.muster.mail_status().await {
        Ok((queued, failed, held)) => {
            for (name, help, value) in [
                (
                    "muster_mail_queued",
                    "Notices waiting to be sent (new, or retried after a failure).",
                    queued as i64,
                ),
                (
                    "muster_mail_failed",
                    "Notices given up on after failing past the retry schedule.",
                    failed as i64,
                ),
                (
                    "muster_providers_deactivations_held",
                    "Providers whose deactivations the mass-deactivation guard holds.",
                    held as i64,
                ),
            ] {
                let g = Gauge::<i64>::default();
                g.set(value);
                registry.register(name, help, g);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the mail queue could not be read"),
    }
    registry.register(
        "muster_up",
        "Whether the database answered this scrape.",
        up,
    );
    let mut out = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "metrics could not be encoded");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut resp = out.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    resp
}

/// The OpenMetrics text format's media type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
