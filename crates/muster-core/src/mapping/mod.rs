//! Organization mapping and role mapping: where a provider's users go, and which roles they hold
//! (docs/mapping.md).
//!
//! A provider's [`Rules`] are read in the transaction of each change they apply to, so a change
//! and the placement it causes commit together. They apply:
//! - when a provider creates a user (every method places it) or updates one (methods other than
//!   *single organization* place it again; role mapping, when the provider uses it, sets its
//!   roles), overriding what an administrator changed;
//! - when group membership changes, to exactly the members added or removed, and only for the
//!   aspects that group takes part in;
//! - when a role mapping loses roles (or is deleted), to the group's members, so that a role
//!   taken away is taken away at once;
//! - on [`Muster::apply_mappings`], which performs what [`Muster::preview_mappings`] lists.
//!
//! Changing a mapping otherwise moves nobody by itself: the administrator previews, then applies.
//!
//! # Layout
//! - [`rules`]: the four organization methods and role mapping, pure.
//! - [`priority`]: group priority and its reordering.
//! - [`placement`]: applying the rules to users inside a change's transaction.
//! - [`config`]: what administrators set.
//! - [`view`]: what administrators see of it.
//! - [`preview`]: preview and re-apply.
//! - [`explain`]: why a user is where it is, by the same rules.

pub mod config;
pub mod explain;
pub mod placement;
pub mod preview;
pub mod priority;
pub mod rules;
pub mod view;
