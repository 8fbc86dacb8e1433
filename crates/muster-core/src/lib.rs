//! Muster's domain: environments, providers and their credentials, users, groups,
//! organizations, roles, the mappings that place users, the deactivation lifecycle and the sync
//! log. No HTTP, no SQL: storage is a set of traits.
//!
//! Each module owns one rule or aggregate of the product; [`Muster`] is the facade every
//! interface calls, its methods defined in the module of the rule they carry out. Modules import
//! from the module that defines a name, never through a re-export, and no two import each other.
//!
//! # Layout
//! - [`ids`], [`clock`], [`model`], [`error`]: identifiers, time, the records Muster keeps, and
//!   domain errors.
//! - [`store`]: the storage traits, one per aggregate, implemented by a transaction.
//! - [`muster`]: [`Muster`], its settings and what the process caches.
//! - [`providers`]: provisioning providers, their deactivation delay and last sync.
//! - [`auth`]: provider tokens, administrator tokens, console sessions, the token cache.
//! - [`admins`]: console administrators and passwords.
//! - [`users`]: SCIM user operations, the status lifecycle (delay, legal hold, due
//!   deactivations), administrators' actions, local users.
//! - [`groups`]: SCIM group operations and membership.
//! - [`listing`]: SCIM filtering, sorting and paging for users and groups.
//! - [`render`]: users and groups as SCIM resources.
//! - [`orgs`]: the organization tree and default roles.
//! - [`roles`]: the role catalog.
//! - [`mapping`]: organization mapping (four methods, group priority) and role mapping, with
//!   preview and re-apply.
//! - [`versions`]: resource versions and `If-Match`.
//! - [`synclog`]: sync log queries, CSV export, retention, rejected requests.
//! - [`words`]: counts in sentences for people (`1 user`, `2 users`).

pub mod admins;
pub mod auth;
pub mod clock;
pub mod error;
pub mod events;
pub mod groups;
pub mod ids;
pub mod listing;
pub mod mapping;
pub mod model;
pub mod muster;
pub mod notify;
pub mod orgs;
pub mod providers;
pub mod render;
pub mod roles;
pub mod shards;
pub mod store;
pub mod synclog;
pub mod users;
pub mod versions;
pub mod webhooks;
pub mod words;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::{CoreError, CoreResult, StoreError, Unique};
pub use model::ProviderCtx;
pub use muster::{Muster, Settings};
