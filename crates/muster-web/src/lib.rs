//! Muster's HTTP surface, on axum.
//!
//! # Layout
//! - [`scim`]: the SCIM 2.0 endpoints at each provider's base URL (`/scim/v2/{provider}`).
//! - [`api`]: the administration REST API under `/api/v1`, with its OpenAPI document.
//! - [`console`]: the administration console under `/console`.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`limits`]: rate limits and the request timeout.
//! - [`metrics`]: `/metrics` in the Prometheus format.
//! - [`request_log`]: request ids and request logging.
//! - [`error`]: errors in each audience's protocol.
#![recursion_limit = "512"]

pub mod api;
pub mod console;
pub mod error;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod request_log;
pub mod scim;

use axum::Router;
use muster_core::Muster;

/// The largest request body accepted, in bytes (advertised as the Bulk `maxPayloadSize`).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach. Cloned for every request (by each extractor and middleware
/// that takes the state), so it is one shared allocation: a clone is one reference count.
#[derive(Debug, Clone)]
pub struct AppState(std::sync::Arc<Shared>);

/// The contents of an [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The domain services.
    pub muster: Muster,
    /// This instance's rate limits and timeouts.
    pub limits: std::sync::Arc<limits::Limits>,
    /// This instance's request metrics.
    pub metrics: std::sync::Arc<metrics::Metrics>,
    /// The environment the console signs administrators in to.
    pub environment: String,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The state with the default limits.
    pub fn new(muster: Muster) -> Self {
        Self::with_limits(muster, limits::LimitSettings::default())
    }

    /// The state with these limits.
    pub fn with_limits(muster: Muster, settings: limits::LimitSettings) -> Self {
        AppState(std::sync::Arc::new(Shared {
            muster,
            limits: std::sync::Arc::new(limits::Limits::new(settings)),
            metrics: std::sync::Arc::default(),
            environment: "default".into(),
        }))
    }

    /// The state for another environment than `default`.
    pub fn for_environment(self, slug: &str) -> Self {
        AppState(std::sync::Arc::new(Shared {
            muster: self.muster.clone(),
            limits: self.limits.clone(),
            metrics: self.metrics.clone(),
            environment: slug.to_string(),
        }))
    }
}

/// The whole application: every router merged once, with the request-id middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(
            scim::router().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                scim::log_rejections,
            )),
        )
        .merge(api::router())
        .merge(console::router(state.clone()))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::request_timeout,
        ))
        .layer(axum::middleware::from_fn(request_log::track))
        .with_state(state)
}
