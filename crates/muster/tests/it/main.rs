//! Muster's integration tests: one binary, one module per area.

mod api;
mod apps;
mod architecture;
mod auth;
mod cli;
mod concurrency;
mod console;
pub mod crash;
mod discovery;
mod events;
mod examples;
mod lifecycle;
mod mapping;
mod metrics;
mod notify;
mod operations;
mod providers;
mod scim_bulk;
mod scim_groups;
mod scim_patch;
mod scim_users;
mod security;
mod server;
mod store;
pub mod support;
mod synclog;
mod webhooks;
