//! SCIM 2.0 (RFC 7643, RFC 7644) as plain code: no I/O, no clock, no async.
//!
//! # Layout
//! - [`error`]: SCIM errors and their `scimType` keywords (RFC 7644 §3.12).
//! - [`filter`]: filter and PATCH path syntax (RFC 7644 §3.4.2.2, §3.5.2): parser, AST, printer.
//! - [`schema`]: the User, Group, Enterprise User and Muster schemas as static data (RFC 7643).
//! - [`query`]: a filter checked against a schema, and evaluated over a resource's JSON.
//! - [`resource`]: request bodies into canonical form, and `attributes`/`excludedAttributes`.
//! - [`list`]: list query parameters and the ListResponse message (RFC 7644 §3.4.2).
//! - [`version`]: resource versions as ETags, `If-Match` and `If-None-Match` (RFC 7644 §3.14).
//! - [`select`]: one value read out of a resource by attribute path (for org mapping).
//! - [`render`]: resources as sent: `schemas`, `id`, attributes, `$ref` URLs and `meta`.
//! - [`stored`]: a resource's attributes as stored: JSON text, parsed on first use.

pub mod bulk;
pub mod error;
pub mod filter;
pub mod json_scan;
pub mod list;
pub mod patch;
pub mod query;
pub mod render;
pub mod resource;
pub mod schema;
pub mod select;
pub mod sort;
pub mod stored;
pub mod version;

pub use error::{ScimError, ScimType};
pub use filter::{AttrPath, CompValue, CompareOp, Filter, FilterError, PatchPath};
pub use query::{Operand, Query};
pub use resource::{normalize, Normalized, Projection};
pub use schema::{ResourceTypeDef, GROUP_RESOURCE, USER_RESOURCE};
