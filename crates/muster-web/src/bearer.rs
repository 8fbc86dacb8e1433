//! Bearer-token authentication (RFC 6750 §2.1), shared by the SCIM endpoints and the API: the
//! failed-attempt limit, the `Authorization` header, the check itself. Each audience turns a
//! [`Refusal`] into an error in its own protocol.

use std::future::Future;
use std::time::Duration;

use axum::http::header;
use axum::http::request::Parts;
use muster_core::{CoreError, CoreResult};

use crate::state::AppState;

/// The client's address, when the server knows it.
pub fn peer_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Why a request was not authenticated.
#[derive(Debug)]
pub enum Refusal {
    /// Too many failed attempts from this address at this target: wait this long.
    Throttled(Duration),
    /// No `Authorization` header, or the Bearer scheme with no token (`Bearer` alone: what an
    /// identity provider sends when its token field was left empty).
    Missing,
    /// An `Authorization` header with another scheme than Bearer.
    NotBearer,
    /// The token was checked and refused (unknown, revoked, expired): the reason.
    Refused(String),
    /// The check itself failed (the database did not answer).
    Failed(CoreError),
}

/// Authenticates a request by its bearer token: refuses at once a client address that failed too
/// often at `target`, reads the token, and hands it to `check`. Every refusal but [`Refusal::Failed`]
/// and [`Refusal::Throttled`] counts as a failed attempt.
pub async fn authenticate<'p, T, F, Fut>(
    parts: &'p Parts,
    state: &AppState,
    target: crate::limits::AuthTarget,
    check: F,
) -> Result<T, Refusal>
where
    F: FnOnce(&'p str) -> Fut,
    Fut: Future<Output = CoreResult<T>>,
{
    let who = (peer_ip(parts), target);
    if let Err(wait) = state.limits.may_authenticate(&who) {
        return Err(Refusal::Throttled(wait));
    }
    let failed = |r: Refusal| {
        state.limits.failed_authentication(&who);
        r
    };
    let Some(value) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(failed(Refusal::Missing));
    };
    let value = value.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        None if value.eq_ignore_ascii_case("bearer") => "",
        _ => return Err(failed(Refusal::NotBearer)),
    };
    if token.is_empty() {
        return Err(failed(Refusal::Missing));
    }
    match check(token).await {
        Ok(t) => Ok(t),
        Err(CoreError::Unauthorized(m)) => Err(failed(Refusal::Refused(m))),
        Err(e) => Err(Refusal::Failed(e)),
    }
}
