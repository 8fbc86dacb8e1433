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
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self)
            }
        }
    )*};
}

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
