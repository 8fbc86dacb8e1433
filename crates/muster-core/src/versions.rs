//! Optimistic concurrency: every user and group carries a version, bumped by each change;
//! a read-modify-write carries the version it read, and a request may name the versions it
//! expects (SCIM's `If-Match`, RFC 7644 §3.14, read by the web layer into [`Tags`]).

pub use muster_scim::version::Tags;

use crate::error::{CoreError, CoreResult};

/// Checks the versions a request expects against the current one.
pub(crate) fn check_expected(expected: Option<&Tags>, version: i64) -> CoreResult<()> {
    match expected {
        Some(tags) if !tags.admits(version) => Err(CoreError::Stale(format!(
            "the resource has changed: its version is {version}"
        ))),
        _ => Ok(()),
    }
}
