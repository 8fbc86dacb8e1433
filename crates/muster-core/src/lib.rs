//! Muster's domain: environments, providers and their tokens, users, groups, organizations,
//! the deactivation lifecycle and the sync log. No HTTP, no SQL: storage is a set of traits.
//!
//! # Layout
//! - [`ids`], [`clock`], [`model`]: identifiers, time, and the records Muster keeps.
//! - [`store`]: the storage traits, one per aggregate, implemented by a transaction.
//! - [`service`]: [`Muster`], the entry point every interface calls; providers and tokens.
//! - [`provisioning`]: what SCIM requests do to users and groups.
//! - [`lifecycle`]: blocking, deactivation and reactivation rules.
//! - [`mapping`]: organization mapping and role mapping, with preview and re-apply.
//! - [`admins`]: console administrators, password sign-in and sessions.
//! - [`token`]: bearer token generation, hashing and comparison.
//! - [`error`]: domain and storage errors.

pub mod admins;
mod auth_cache;
pub mod clock;
pub mod directory;
pub mod error;
pub mod ids;
pub mod lifecycle;
pub mod mapping;
pub mod model;
pub mod provisioning;
pub mod scheduler;
pub mod service;
pub mod store;
pub mod synclog;
pub mod token;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::{CoreError, CoreResult, StoreError, Unique};
pub use service::{Muster, ProviderCtx, Settings};
