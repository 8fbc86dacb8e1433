//! Token authentication, shared by the SCIM endpoints and the API: the failed-attempt limit, the
//! `Authorization` header, the check itself. Each audience turns a [`Refusal`] into an error in
//! its own protocol.
//!
//! A token comes as a bearer token (RFC 6750 §2.1) or, where the audience takes it (the SCIM
//! endpoints: identity providers whose SCIM client offers only HTTP Basic), as the password of
//! HTTP Basic (RFC 7617), whose user name is not checked: the token alone is the credential, so
//! either scheme carries the same secret and is checked the same way.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;
use muster_core::{CoreError, CoreResult};

use crate::state::AppState;

/// Why a request was not authenticated.
#[derive(Debug)]
pub enum Refusal {
    /// Too many failed attempts from this address at this target: wait this long.
    Throttled(Duration),
    /// No `Authorization` header, or the Bearer scheme with no token (`Bearer` alone: what an
    /// identity provider sends when its token field was left empty).
    Missing,
    /// An `Authorization` header with a scheme the audience does not take.
    NotBearer,
    /// HTTP Basic credentials that are not base64 of `user-id:password`.
    MalformedBasic,
    /// The token was checked and refused (unknown, revoked, expired): the reason.
    Refused(String),
    /// The check itself failed (the database did not answer).
    Failed(CoreError),
}

/// The schemes an audience takes a token in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schemes {
    /// `Authorization: Bearer <token>` only.
    Bearer,
    /// Bearer, or `Authorization: Basic base64(<any user name>:<token>)`.
    BearerOrBasic,
}

/// The password of HTTP Basic credentials (RFC 7617 §2: base64 of `user-id ":" password`), or
/// `None` when they are not that.
fn basic_password(credentials: &str) -> Option<String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(password.to_string())
}

/// Authenticates a request by its token: refuses at once a client address that failed too
/// often at `target`, reads the token in one of the `schemes`, and hands it to `check`. Every
/// refusal but [`Refusal::Failed`] and [`Refusal::Throttled`] counts as a failed attempt.
pub async fn authenticate<'p, T, F, Fut>(
    parts: &'p Parts,
    state: &AppState,
    target: crate::limits::AuthTarget,
    schemes: Schemes,
    check: F,
) -> Result<T, Refusal>
where
    F: FnOnce(Cow<'p, str>) -> Fut,
    Fut: Future<Output = CoreResult<T>>,
{
    let who = (crate::client_ip::of(parts, &state.trusted_proxies), target);
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
    let basic = schemes == Schemes::BearerOrBasic;
    // A bearer token is borrowed from the header; only Basic's decoded password is a copy.
    let token: Cow<'p, str> = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => Cow::Borrowed(rest.trim()),
        None if value.eq_ignore_ascii_case("bearer") => Cow::Borrowed(""),
        Some((scheme, rest)) if basic && scheme.eq_ignore_ascii_case("basic") => {
            match basic_password(rest) {
                Some(password) => Cow::Owned(password),
                None => return Err(failed(Refusal::MalformedBasic)),
            }
        }
        None if basic && value.eq_ignore_ascii_case("basic") => Cow::Borrowed(""),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_give_their_password() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            basic_password(&enc("okta:mst_abc")).as_deref(),
            Some("mst_abc")
        );
        // The password may hold colons; the user name may be empty (RFC 7617 §2).
        assert_eq!(basic_password(&enc(":a:b")).as_deref(), Some("a:b"));
        assert_eq!(basic_password(&enc("user:")).as_deref(), Some(""));
        assert_eq!(basic_password(&enc("no colon")), None);
        assert_eq!(basic_password("not base64!"), None);
        assert_eq!(
            basic_password(&base64::engine::general_purpose::STANDARD.encode([0xff, b':', b'x'])),
            None
        );
    }
}
