//! Optimistic concurrency: every user and group carries a version, bumped by each change;
//! a read-modify-write carries the version it read, and a request's `If-Match` names the
//! version it expects (RFC 7644 §3.14).

use muster_scim::ScimError;

use crate::error::CoreResult;

/// The weak ETag of a version (RFC 7644 §3.14).
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Checks an `If-Match` header against the current version (RFC 7644 §3.14).
pub(crate) fn check_if_match(if_match: Option<&str>, version: i64) -> CoreResult<()> {
    let Some(header) = if_match else {
        return Ok(());
    };
    let current = etag(version);
    let strong = format!("\"{version}\"");
    let ok = header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == current || t == strong);
    if ok {
        Ok(())
    } else {
        Err(ScimError::new(
            412,
            None,
            format!("the resource has changed: its version is {current}"),
        )
        .into())
    }
}
