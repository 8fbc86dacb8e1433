//! Muster's HTTP surface, on axum.
//!
//! # Layout
//! - [`scim`]: the SCIM 2.0 endpoints at each provider's base URL (`/scim/v2/{provider}`).
//! - [`api`]: the administration REST API under `/api/v1`, with its OpenAPI document.
//! - [`console`]: the administration console under `/console`.
//! - [`health`]: `/healthz`, `/readyz` and `/metrics`.
//! - [`state`]: [`AppState`], what every handler can reach.
//! - [`layers`]: the request timeout, request metrics and the log of refused SCIM requests.
//! - [`bearer`]: bearer-token authentication, shared by SCIM and the API.
//! - [`limits`]: rate limits and the request timeout's settings.
//! - [`metrics`]: request metrics in the Prometheus format.
//! - [`request_log`]: the middleware: request ids, the timeout, metrics, request logging.
//! - [`error`]: errors in each audience's protocol.
#![recursion_limit = "512"]

pub mod api;
pub mod bearer;
pub mod client_ip;
pub mod console;
pub mod error;
pub mod health;
pub mod layers;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod oidc;
pub mod request_log;
pub mod scim;
pub mod state;

use axum::Router;

pub use state::{AppState, Shared, MAX_BODY_BYTES};

/// The whole application: every router merged once, with the middleware every route has.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(scim::router())
        .merge(api::router())
        .merge(console::router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_log::track,
        ))
        .with_state(state)
}
