//! Which uniqueness rule a database's constraint violation broke.

use muster_core::error::Unique;

/// Maps a constraint name or message to the uniqueness rule it enforces. Index names and
/// SQLite's "UNIQUE constraint failed: table.column" messages both name the key column.
pub(crate) fn classify(text: &str) -> Unique {
    if text.contains("user_name_key") {
        Unique::UserName
    } else if text.contains("display_name_key") {
        Unique::GroupName
    } else if text.contains("org.name_key")
        || text.contains("org_name_key")
        || text.contains("org_root")
    {
        Unique::OrgName
    } else if text.contains("provider.name_key") || text.contains("provider_name_key") {
        Unique::ProviderName
    } else if text.contains("role.name_key") || text.contains("role_name_key") {
        Unique::RoleName
    } else {
        Unique::Other
    }
}
