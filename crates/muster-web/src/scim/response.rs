//! SCIM responses: `application/scim+json` bodies (RFC 7644 §3.1) and what the service
//! advertises it supports.

use crate::error::SCIM_CONTENT_TYPE;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Whether PATCH is implemented (advertised in `/ServiceProviderConfig`).
pub const PATCH_SUPPORTED: bool = true;

/// A JSON body with the SCIM media type.
pub fn scim_json(status: u16, body: &Value) -> Response {
    // Straight into a buffer the size of a typical resource (`Value`'s `Display` goes through
    // the formatter, a call per token).
    let mut buf = Vec::with_capacity(2048);
    if serde_json::to_writer(&mut buf, body).is_err() {
        // Serialising a JSON value into memory cannot fail; should it, the body says so.
        buf = br#"{"detail":"the response could not be written"}"#.to_vec();
    }
    scim_bytes(status, buf)
}

/// A body already written as JSON, with the SCIM media type.
pub fn scim_bytes(status: u16, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    resp
}
