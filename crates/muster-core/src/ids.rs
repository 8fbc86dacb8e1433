//! Identifier newtypes: no bare `Uuid` crosses a layer.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered identifier (UUIDv7: index-friendly, unguessable tail).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// The underlying UUID.
            pub fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = NotAnId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| NotAnId)
            }
        }
    )*};
}

/// Text that is not an identifier. Says what one looks like rather than where the UUID parser
/// stopped ("invalid character: found `n` at 0"), since a person typed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnId;

impl fmt::Display for NotAnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an id: ids are UUIDs, such as 0193c0de-7c1a-7b2e-9f00-5a1d2c3b4e5f")
    }
}

impl std::error::Error for NotAnId {}

id_type!(
    /// An environment: one company's directory.
    EnvironmentId,
    /// A provisioning provider.
    ProviderId,
    /// A provider's bearer token.
    TokenId,
    /// A user (local or provisioned).
    UserId,
    /// A SCIM group.
    GroupId,
    /// An organization.
    OrgId,
    /// A role of the catalog.
    RoleId,
    /// An administrator API token.
    AdminTokenId,
    /// An entry of a provider's group-to-organization mapping.
    GroupMappingId,
    /// An administrator who signs in to the console.
    AdminId,
    /// A console session.
    SessionId,
    /// A webhook endpoint.
    WebhookId,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_read_from_its_text_and_other_text_says_what_an_id_is() {
        let id = UserId::new();
        assert_eq!(format!(" {id} ").parse::<UserId>(), Ok(id));
        let refused = "nope".parse::<OrgId>();
        assert_eq!(refused, Err(NotAnId));
        let said = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(said.contains("ids are UUIDs"), "{said}");
    }
}
