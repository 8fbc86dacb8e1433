//! Every type of event in the feed: dotted nouns, listed for users in docs/events.md.

macro_rules! event_types {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// What an event in the feed says happened.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($(#[doc = $doc])* $variant,)*
        }

        impl EventType {
            /// Every type, in the order docs/events.md lists them.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The type's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }

            /// The type with this name.
            pub fn parse(name: &str) -> Option<EventType> {
                match name {
                    $($name => Some(EventType::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_types! {
    /// A user was created (by a provider, or locally by an administrator).
    UserCreated = "user.created",
    /// A user's attributes changed; `data.changedFields` names them.
    UserUpdated = "user.updated",
    /// A user cannot sign in: their provider turned them off, or an administrator blocked them.
    UserBlocked = "user.blocked",
    /// An administrator unblocked a user.
    UserUnblocked = "user.unblocked",
    /// A user was deactivated.
    UserDeactivated = "user.deactivated",
    /// A user was made active again.
    UserReactivated = "user.reactivated",
    /// The provider deleted the user.
    UserRemoved = "user.removed",
    /// The provider created again a user it had deleted.
    UserRestored = "user.restored",
    /// A user moved to another organization.
    UserMoved = "user.moved",
    /// A user's effective roles changed.
    UserRolesChanged = "user.roles_changed",
    /// A user was put on legal hold.
    UserLegalHoldSet = "user.legal_hold_set",
    /// A user was taken off legal hold.
    UserLegalHoldCleared = "user.legal_hold_cleared",
    /// A group was created.
    GroupCreated = "group.created",
    /// A group's attributes other than its name and members changed.
    GroupUpdated = "group.updated",
    /// A group was renamed.
    GroupRenamed = "group.renamed",
    /// A group was deleted.
    GroupDeleted = "group.deleted",
    /// A user joined a group (one event per member).
    GroupMemberAdded = "group.member_added",
    /// A user left a group (one event per member).
    GroupMemberRemoved = "group.member_removed",
    /// An organization was created.
    OrgCreated = "org.created",
    /// An organization was renamed.
    OrgRenamed = "org.renamed",
    /// An organization moved under another parent.
    OrgMoved = "org.moved",
    /// An organization was deactivated (with its descendants).
    OrgDeactivated = "org.deactivated",
    /// An organization was reactivated.
    OrgReactivated = "org.reactivated",
    /// An organization's default roles changed (its users' effective roles may have changed).
    OrgDefaultRolesChanged = "org.default_roles_changed",
    /// A role was added to the catalog.
    RoleCreated = "role.created",
    /// A role was removed from the catalog.
    RoleDeleted = "role.deleted",
    /// A role was renamed (or its description changed).
    RoleRenamed = "role.renamed",
    /// A provisioning provider was added.
    ProviderCreated = "provider.created",
    /// A provider was renamed or its deactivation delay changed.
    ProviderUpdated = "provider.updated",
    /// The mass-deactivation guard tripped: the provider's deactivations are held.
    ProviderDeactivationsHeld = "provider.deactivations_held",
    /// The guard's hold was released or the held users restored.
    ProviderHoldReleased = "provider.hold_released",
}

impl EventType {
    /// Checks a `types` filter value: a type, or a family such as `user.`.
    pub fn valid_filter(name: &str) -> bool {
        match name.strip_suffix('.') {
            Some(family) => EventType::ALL
                .iter()
                .any(|t| t.as_str().split('.').next() == Some(family)),
            None => EventType::parse(name).is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_reads_back_and_filters_are_checked() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        assert!(EventType::valid_filter("user.created"));
        assert!(EventType::valid_filter("group."));
        assert!(!EventType::valid_filter("users."));
        assert!(!EventType::valid_filter("user.create"));
        assert!(!EventType::valid_filter(""));
    }
}
