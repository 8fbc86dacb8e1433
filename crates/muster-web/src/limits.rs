//! Rate limits and the request timeout.
//!
//! - Each provider may make `per_second` SCIM requests a second on average, in bursts of up to
//!   `burst`; past that, 429 with `Retry-After` (RFC 7644 §3.12 lists 429 among SCIM's statuses).
//! - Each API credential (an administrator's API token or an application credential) may make
//!   `api_per_second` requests a second on average, in bursts of up to `api_burst`; past that,
//!   the API's 429 with `Retry-After`, so an application reading in a loop cannot starve
//!   provisioning or the other applications.
//! - Each client address may fail authentication `auth_failures_per_minute` times a minute
//!   against one provider's URL (or the API); past that, its requests there get 429 before any
//!   token is looked at, so guessing is slowed down and failures cannot flood the log.
//! - Every request must complete within the request timeout (slow clients included: the body is
//!   read inside it); past it, 408 in the caller's protocol.
//!
//! Limits are kept in memory, per instance: several instances each apply them.
//!
//! The buckets are written here rather than taken from `governor`, the usual crate: the
//! failed-authentication limit is consulted on every request and charged only when
//! authentication fails, so it needs to ask whether a key still has a token without taking one,
//! and `governor` has no such question (every check that answers yes consumes a cell). One small
//! bucket type serves both limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use muster_scim::ScimError;

use crate::error::ScimErrorResponse;

/// Past this many tracked keys, idle ones are dropped, so memory stays bounded whatever clients do.
const MAX_KEYS: usize = 50_000;

/// How long a long administrative operation (a mappings re-apply) may run.
pub const LONG_OPERATION: Duration = Duration::from_secs(3600);

/// The configured limits.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Average SCIM requests a second per provider (0: no limit).
    pub per_second: u32,
    /// The largest burst per provider.
    pub burst: u32,
    /// Average API requests a second per credential (0: no limit).
    pub api_per_second: u32,
    /// The largest burst of API requests per credential.
    pub api_burst: u32,
    /// Failed authentications a minute per client address and target (0: no limit).
    pub auth_failures_per_minute: u32,
    /// The longest a request may take, body included.
    pub request_timeout: Duration,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            per_second: 1000,
            burst: 2000,
            api_per_second: 100,
            api_burst: 1000,
            auth_failures_per_minute: 10,
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key.
#[derive(Debug)]
struct Buckets<K> {
    rate: f64,
    burst: f64,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
    }

    /// Takes one token; `Err(wait)` if there is none.
    fn take(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let Ok(mut map) = self.map.lock() else {
            return Ok(());
        };
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            // Full buckets carry no state worth keeping.
            map.retain(|_, b| {
                let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
                b.tokens + elapsed * rate < burst
            });
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        self.refill(b, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }

    /// Whether a token is available, without taking it; `Err(wait)` if not.
    fn peek(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let Ok(mut map) = self.map.lock() else {
            return Ok(());
        };
        let Some(b) = map.get_mut(key) else {
            return Ok(());
        };
        self.refill(b, now);
        if b.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }
}

/// What a client authenticates against: a provider's SCIM URL, the API, the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthTarget {
    Provider(muster_core::ids::ProviderId),
    Api,
    Console,
}

/// Who failed to authenticate, against what. A value rather than text: every SCIM request
/// builds one.
pub type FailureKey = (Option<IpAddr>, AuthTarget);

/// The rate limits of one Muster instance.
#[derive(Debug)]
pub struct Limits {
    settings: LimitSettings,
    providers: Option<Buckets<muster_core::ids::ProviderId>>,
    api: Option<Buckets<muster_core::ids::AdminTokenId>>,
    failures: Option<Buckets<FailureKey>>,
}

impl Limits {
    /// Limits with these settings.
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            settings,
            providers: (settings.per_second > 0).then(|| {
                Buckets::new(
                    f64::from(settings.per_second),
                    f64::from(settings.burst.max(1)),
                )
            }),
            api: (settings.api_per_second > 0).then(|| {
                Buckets::new(
                    f64::from(settings.api_per_second),
                    f64::from(settings.api_burst.max(1)),
                )
            }),
            failures: (settings.auth_failures_per_minute > 0).then(|| {
                let n = f64::from(settings.auth_failures_per_minute);
                Buckets::new(n / 60.0, n)
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> LimitSettings {
        self.settings
    }

    /// Counts one SCIM request of a provider; `Err(retry_after)` past its limit.
    pub fn provider_request(&self, p: muster_core::ids::ProviderId) -> Result<(), Duration> {
        match &self.providers {
            Some(b) => b.take(&p),
            None => Ok(()),
        }
    }

    /// Counts one API request of a credential; `Err(retry_after)` past its limit.
    pub fn api_request(&self, t: muster_core::ids::AdminTokenId) -> Result<(), Duration> {
        match &self.api {
            Some(b) => b.take(&t),
            None => Ok(()),
        }
    }

    /// Whether this client may still try to authenticate against `target`.
    pub fn may_authenticate(&self, key: &FailureKey) -> Result<(), Duration> {
        match &self.failures {
            Some(b) => b.peek(key),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication.
    pub fn failed_authentication(&self, key: &FailureKey) {
        if let Some(b) = &self.failures {
            let _ = b.take(key);
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(LimitSettings::default())
    }
}

/// Whole seconds to wait, at least one (the `Retry-After` header's unit).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// A SCIM 429 with `Retry-After`.
pub fn too_many_scim(wait: Duration, what: &str) -> Response {
    let secs = retry_after_secs(wait);
    let mut resp = ScimErrorResponse(ScimError::new(
        429,
        None,
        format!(
            "{what}: retry after {}",
            muster_core::words::count(secs, "second", "seconds")
        ),
    ))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_how_long_to_wait() {
        let b: Buckets<u8> = Buckets::new(10.0, 5.0);
        for _ in 0..5 {
            assert!(b.take(&1).is_ok());
        }
        let wait = b.take(&1).err().unwrap_or_default();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(b.take(&2).is_ok(), "keys are independent");
        assert!(b.peek(&3).is_ok(), "an unknown key may go");
    }
}
