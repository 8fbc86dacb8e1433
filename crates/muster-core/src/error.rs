//! Errors of the domain and of storage.

use muster_scim::ScimError;

/// Which uniqueness rule a write broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    /// `userName` within the environment.
    UserName,
    /// A group's `displayName` within its provider.
    GroupName,
    /// An organization's name among its siblings.
    OrgName,
    /// A provider's display name within the environment.
    ProviderName,
    /// A role's name within the environment.
    RoleName,
    /// Anything else.
    Other,
}

/// What storage reports. Database errors stay opaque: their text is for the server log only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write.
    #[error("conflict: {0:?} is not unique")]
    Conflict(Unique),
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored value could not be read back (corrupt or from a newer version).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// What the domain reports to the HTTP layer and the CLI.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A SCIM-level error, shown to the caller as is.
    #[error(transparent)]
    Scim(#[from] ScimError),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// A uniqueness rule refused the change.
    #[error("{0}")]
    Conflict(String),
    /// The resource is not at the version the request expected.
    #[error("{0}")]
    Stale(String),
    /// Another request changed the resource at the same time, more often than retrying helps.
    #[error("{0}")]
    Busy(String),
    /// The credentials are missing, wrong, revoked or expired.
    #[error("{0}")]
    Unauthorized(String),
    /// Storage failed: logged in full, shown to callers as an internal error.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shorthand for results of core operations.
pub type CoreResult<T> = Result<T, CoreError>;
