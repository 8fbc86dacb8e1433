//! Every kind of sync log entry: one [`Event`] per thing Muster records, named as the log, the
//! API, the CLI and the CSV export show it (`user.created`, `group.members_added`, ...).

use std::fmt;

macro_rules! events {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// What a sync log entry records. docs/sync-log.md lists them for users.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Event {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Event {
            /// Every event, in the order docs/sync-log.md lists them.
            pub const ALL: &'static [Event] = &[$(Event::$variant,)*];

            /// The event's name in the log.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Event::$variant => $name,)*
                }
            }

            /// The event with this name.
            pub fn parse(name: &str) -> Option<Event> {
                match name {
                    $($name => Some(Event::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

events! {
    /// A user was created (by a provider, or locally by an administrator).
    UserCreated = "user.created",
    /// A user's attributes changed.
    UserUpdated = "user.updated",
    /// A provider turned a user off: they cannot sign in.
    UserBlocked = "user.blocked",
    /// An administrator unblocked a user.
    UserUnblocked = "user.unblocked",
    /// A user was deactivated, at once or when their provider's delay ran out.
    UserDeactivated = "user.deactivated",
    /// A user was made active again.
    UserReactivated = "user.reactivated",
    /// A due deactivation waits: the user is on legal hold.
    UserDeactivationHeld = "user.deactivation_held",
    /// An administrator put a user on legal hold.
    UserLegalHoldSet = "user.legal_hold_set",
    /// An administrator took a user off legal hold.
    UserLegalHoldCleared = "user.legal_hold_cleared",
    /// A provider deleted a user.
    UserRemoved = "user.removed",
    /// A provider created a user it had deleted before: the record is restored.
    UserRestored = "user.restored",
    /// A user moved to another organization.
    UserMoved = "user.moved",
    /// A user's roles changed.
    UserRolesChanged = "user.roles_changed",
    /// A user's organization or roles could not be mapped.
    UserMappingFailed = "user.mapping_failed",
    /// A group was created.
    GroupCreated = "group.created",
    /// A group's attributes other than its name changed.
    GroupUpdated = "group.updated",
    /// A group was renamed.
    GroupRenamed = "group.renamed",
    /// A group was deleted.
    GroupDeleted = "group.deleted",
    /// Members joined a group.
    GroupMembersAdded = "group.members_added",
    /// Members left a group.
    GroupMembersRemoved = "group.members_removed",
    /// An organization was created (by an administrator or by mapping).
    OrgCreated = "org.created",
    /// An organization was renamed.
    OrgRenamed = "org.renamed",
    /// An organization moved under another parent.
    OrgMoved = "org.moved",
    /// An organization was deactivated.
    OrgDeactivated = "org.deactivated",
    /// An organization was reactivated.
    OrgReactivated = "org.reactivated",
    /// An organization's default roles changed.
    OrgDefaultRolesChanged = "org.default_roles_changed",
    /// A role was added to the catalog.
    RoleCreated = "role.created",
    /// A role was removed from the catalog.
    RoleDeleted = "role.deleted",
    /// A role was renamed (or its description changed).
    RoleRenamed = "role.renamed",
    /// A provisioning provider was added.
    ProviderCreated = "provider.created",
    /// A provider's settings changed.
    ProviderUpdated = "provider.updated",
    /// A provider token was created.
    TokenCreated = "token.created",
    /// A provider token was revoked.
    TokenRevoked = "token.revoked",
    /// A provider's organization mapping method was set.
    MappingOrgMethodSet = "mapping.org_method_set",
    /// A group-to-organization mapping was added.
    MappingGroupMappingAdded = "mapping.group_mapping_added",
    /// A group-to-organization mapping was changed.
    MappingGroupMappingUpdated = "mapping.group_mapping_updated",
    /// A group-to-organization mapping was removed.
    MappingGroupMappingDeleted = "mapping.group_mapping_deleted",
    /// The priority order of group mappings changed.
    MappingGroupPrioritiesChanged = "mapping.group_priorities_changed",
    /// An administrator re-applied a provider's mappings to its users.
    MappingsReapplied = "mappings.reapplied",
    /// A group-to-role mapping was set.
    MappingRoleMappingSet = "mapping.role_mapping_set",
    /// A group-to-role mapping was removed.
    MappingRoleMappingDeleted = "mapping.role_mapping_deleted",
    /// An administrator account was created.
    AdminCreated = "admin.created",
    /// An administrator API token was created.
    AdminTokenCreated = "admin_token.created",
    /// An administrator API token was revoked.
    AdminTokenRevoked = "admin_token.revoked",
    /// An application credential was created.
    AppCreated = "app.created",
    /// An application credential was given a new secret.
    AppRotated = "app.rotated",
    /// An application credential was revoked.
    AppRevoked = "app.revoked",
    /// The mass-deactivation guard tripped: every deactivation from the provider is held.
    ProviderDeactivationsHeld = "provider.deactivations_held",
    /// An administrator released the guard's hold: held deactivations proceed.
    ProviderHoldReleased = "provider.hold_released",
    /// An administrator restored the users the guard held (unblocked, deactivations cancelled).
    ProviderUsersRestored = "provider.users_restored",
    /// A provider's mass-deactivation guard settings were changed.
    ProviderGuardUpdated = "provider.guard_updated",
    /// An email was sent.
    MailSent = "mail.sent",
    /// An email could not be sent and was given up on.
    MailFailed = "mail.failed",
    /// A webhook endpoint was added.
    WebhookCreated = "webhook.created",
    /// A webhook endpoint was changed, turned on or off.
    WebhookUpdated = "webhook.updated",
    /// A webhook endpoint was given a new signing secret.
    WebhookSecretRotated = "webhook.secret_rotated",
    /// A webhook endpoint was set to deliver again from an earlier event.
    WebhookReplayed = "webhook.replayed",
    /// One event was queued to be sent to a webhook endpoint again.
    WebhookRedelivered = "webhook.redelivered",
    /// A test event was queued for a webhook endpoint.
    WebhookTestSent = "webhook.test_sent",
    /// A webhook endpoint was deleted.
    WebhookDeleted = "webhook.deleted",
    /// A webhook endpoint failed for longer than the retry schedule allows, and stopped.
    WebhookFailing = "webhook.failing",
    /// An administrator was given another role (their sessions ended).
    AdminRoleChanged = "admin.role_changed",
    /// An administrator's email address or report preference was changed.
    AdminNotificationsChanged = "admin.notifications_changed",
    /// An administrator was removed (their sessions ended).
    AdminRemoved = "admin.removed",
    /// An administrator ended another's console session.
    AdminSessionEnded = "admin.session_ended",
    /// An administrator signed in to the console (`via`: password or oidc).
    AdminSignedIn = "admin.signed_in",
    /// The identity provider vouched for someone Muster refused (no role maps, or a clash).
    AdminSignInRefused = "admin.sign_in_refused",
    /// An administrator signed out.
    AdminSignedOut = "admin.signed_out",
    /// A console sign-in failed.
    AdminSignInFailed = "admin.sign_in_failed",
    /// Muster refused or failed a provider's request.
    RequestRejected = "request.rejected",
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<&str> for Event {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reads_back_and_names_its_family() {
        let mut seen = std::collections::HashSet::new();
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(*e));
            assert!(seen.insert(e.as_str()), "{e} twice");
            let (family, what) = e.as_str().split_once('.').unwrap_or_default();
            assert!(!family.is_empty() && !what.is_empty(), "{e}");
        }
        assert_eq!(Event::parse("user.nonsense"), None);
    }

    #[test]
    fn the_sync_log_docs_list_every_event() {
        let docs = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/sync-log.md"
        ));
        let missing: Vec<&str> = Event::ALL
            .iter()
            .map(|e| e.as_str())
            .filter(|name| !docs.contains(&format!("`{name}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/sync-log.md does not list {missing:?}"
        );
    }
}
