//! Which administrator roles reach which console sections, and the navigation each role sees.
//! A handler names its section in its extractor (`Console<Directory>`), so the check cannot be
//! forgotten.

use muster_core::model::AdminRole;

/// A part of the console and the roles that open it.
pub trait Section: Send + Sync + 'static {
    /// Who may open it.
    const ROLES: &'static [AdminRole];
}

/// The overview and signing out: every administrator.
pub struct Everyone;
/// Identity Management (providers, tokens, mappings).
pub struct Providers;
/// Organizations and users.
pub struct Directory;
/// The sync log, read-only.
pub struct SyncLog;

impl Section for Everyone {
    const ROLES: &'static [AdminRole] = &[
        AdminRole::CustomerCloudAdmin,
        AdminRole::IdentityManagementAdmin,
        AdminRole::AuditLogViewer,
    ];
}

impl Section for Providers {
    const ROLES: &'static [AdminRole] = &[
        AdminRole::CustomerCloudAdmin,
        AdminRole::IdentityManagementAdmin,
    ];
}

impl Section for Directory {
    const ROLES: &'static [AdminRole] = &[AdminRole::CustomerCloudAdmin];
}

impl Section for SyncLog {
    const ROLES: &'static [AdminRole] = &[AdminRole::CustomerCloudAdmin, AdminRole::AuditLogViewer];
}

/// Whether a role opens a section.
pub fn opens<S: Section>(role: AdminRole) -> bool {
    S::ROLES.contains(&role)
}

/// The links of the navigation bar a role sees.
pub fn nav_for(role: AdminRole) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("/console", "Overview")];
    if opens::<Directory>(role) {
        out.push(("/console/orgs", "Organizations"));
        out.push(("/console/users", "Users"));
        out.push(("/console/roles", "Roles"));
    }
    if opens::<Providers>(role) {
        out.push(("/console/providers", "Identity Management"));
        out.push(("/console/webhooks", "Webhooks"));
    }
    if opens::<SyncLog>(role) {
        out.push(("/console/sync-log", "Sync Log"));
    }
    if opens::<Directory>(role) {
        out.push(("/console/apps", "Applications"));
        out.push(("/console/admins", "Administrators"));
    }
    out.push(("/console/notifications", "Notifications"));
    out
}
