//! What every handler can reach: the domain services, this instance's limits and metrics, and
//! the environment the console serves.

use crate::{limits, metrics};
use muster_core::Muster;

/// The largest request body accepted, in bytes (advertised as the Bulk `maxPayloadSize`).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach. Cloned for every request (by each extractor and middleware
/// that takes the state), so it is one shared allocation: a clone is one reference count.
#[derive(Debug, Clone)]
pub struct AppState(std::sync::Arc<Shared>);

/// The contents of an [`AppState`].
#[derive(Debug, Clone)]
pub struct Shared {
    /// The domain services.
    pub muster: Muster,
    /// This instance's rate limits and timeouts.
    pub limits: std::sync::Arc<limits::Limits>,
    /// This instance's request metrics.
    pub metrics: std::sync::Arc<metrics::Metrics>,
    /// The environment the console signs administrators in to.
    pub environment: String,
    /// Sign-in with the company's identity provider, when configured.
    pub oidc: Option<std::sync::Arc<crate::oidc::Oidc>>,
    /// Turns true when the server starts to stop: requests that wait (the event feed's long
    /// polls) answer at once rather than hold the stop up.
    pub stopping: Option<tokio::sync::watch::Receiver<bool>>,
    /// Reverse proxies believed about the client's address ([`crate::client_ip`]).
    pub trusted_proxies: std::sync::Arc<[ipnet::IpNet]>,
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
            oidc: None,
            stopping: None,
            trusted_proxies: std::sync::Arc::new([]),
        }))
    }

    /// The state with console sign-in through an identity provider.
    pub fn with_oidc(self, oidc: crate::oidc::Oidc) -> Self {
        self.with(|s| s.oidc = Some(std::sync::Arc::new(oidc)))
    }

    /// The state for another environment than `default`.
    pub fn for_environment(self, slug: &str) -> Self {
        self.with(|s| s.environment = slug.to_string())
    }

    /// The state that knows when the server starts to stop (`true` sent on `stopping`).
    pub fn with_stop(self, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        self.with(|s| s.stopping = Some(stopping))
    }

    /// The state that believes these reverse proxies about the client's address.
    pub fn with_trusted_proxies(self, proxies: Vec<ipnet::IpNet>) -> Self {
        self.with(|s| s.trusted_proxies = proxies.into())
    }

    /// The state with one thing changed.
    fn with(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = (*self.0).clone();
        change(&mut shared);
        AppState(std::sync::Arc::new(shared))
    }
}
