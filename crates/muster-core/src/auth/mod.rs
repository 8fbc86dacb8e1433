//! Who is calling: provider bearer tokens, administrator API tokens, console sessions, and the
//! cache that spares most SCIM requests a database read.
//!
//! # Layout
//! - [`secret`]: generating, hashing and comparing secrets.
//! - [`provider_tokens`]: provider credentials and the SCIM request check.
//! - [`admin_tokens`]: administrator API tokens.
//! - [`apps`]: application credentials: read-only API tokens with scopes.
//! - [`sessions`]: console sign-in, sessions and sign-out.
//! - [`cache`]: provider tokens recently found valid.

pub mod admin_tokens;
pub mod apps;
pub(crate) mod cache;
pub mod oidc;
pub mod provider_tokens;
pub mod secret;
pub mod sessions;
