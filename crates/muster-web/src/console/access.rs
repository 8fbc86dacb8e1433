//! Which administrator roles reach which console sections, and the navigation each role sees.

use muster_core::model::AdminRole;

/// Who may open what.
pub(crate) const EVERYONE: &[AdminRole] = &[
    AdminRole::CustomerCloudAdmin,
    AdminRole::IdentityManagementAdmin,
    AdminRole::AuditLogViewer,
];

pub(crate) const PROVIDERS: &[AdminRole] = &[
    AdminRole::CustomerCloudAdmin,
    AdminRole::IdentityManagementAdmin,
];

pub(crate) const DIRECTORY: &[AdminRole] = &[AdminRole::CustomerCloudAdmin];

pub(crate) const SYNC_LOG: &[AdminRole] =
    &[AdminRole::CustomerCloudAdmin, AdminRole::AuditLogViewer];

/// The links of the navigation bar a role sees.
pub fn nav_for(role: AdminRole) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("/console", "Overview")];
    if DIRECTORY.contains(&role) {
        out.push(("/console/orgs", "Organizations"));
        out.push(("/console/users", "Users"));
    }
    if PROVIDERS.contains(&role) {
        out.push(("/console/providers", "Identity Management"));
    }
    if SYNC_LOG.contains(&role) {
        out.push(("/console/sync-log", "Sync Log"));
    }
    out
}
