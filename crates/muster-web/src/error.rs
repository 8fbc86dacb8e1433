//! Errors in each audience's protocol. SCIM callers get RFC 7644 §3.12 JSON with `scimType`;
//! a 5xx logs its cause and tells the caller only that something failed.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use muster_core::CoreError;
use muster_scim::ScimError;

/// The SCIM media type (RFC 7644 §3.1).
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// An error answered in SCIM's error format.
#[derive(Debug)]
pub struct ScimErrorResponse(pub ScimError);

impl From<ScimError> for ScimErrorResponse {
    fn from(e: ScimError) -> Self {
        Self(e)
    }
}

impl From<CoreError> for ScimErrorResponse {
    fn from(e: CoreError) -> Self {
        if let CoreError::Store(cause) = &e {
            tracing::error!(error = %cause, "storage failed while answering a SCIM request");
        }
        Self(scim_error(e))
    }
}

/// A domain error as SCIM reports it (RFC 7644 §3.12); storage failures become a generic 500.
pub fn scim_error(e: CoreError) -> ScimError {
    match e {
        CoreError::Scim(e) => e,
        CoreError::NotFound(d) => ScimError::not_found(d),
        CoreError::Invalid(d) => ScimError::invalid_value(d),
        CoreError::Conflict(d) => ScimError::uniqueness(d),
        CoreError::Stale(d) => ScimError::new(412, None, d),
        CoreError::Busy(d) => ScimError::new(409, None, d),
        CoreError::Unauthorized(d) => ScimError::new(401, None, d),
        CoreError::Store(_) => ScimError::internal(),
    }
}

impl IntoResponse for ScimErrorResponse {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, self.0.to_json().to_string()).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_CONTENT_TYPE),
        );
        if status == StatusCode::UNAUTHORIZED {
            // The two schemes a provider's token is taken in (RFC 7235 §4.1: one challenge each).
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"Muster SCIM\""),
            );
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Muster SCIM\", charset=\"UTF-8\""),
            );
        }
        // Let the request log see what kind of SCIM error this was.
        resp.extensions_mut().insert(self.0);
        resp
    }
}
