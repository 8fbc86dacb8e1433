//! What a store tells the rest of the process when it commits.

/// Signalled after a transaction that wrote events commits in this process, so the webhook
/// sender delivers at once instead of at its next look. (Other instances' commits are seen by
/// that look.) One permit is kept when nobody waits, so a commit between two looks is not lost.
pub static EVENTS_COMMITTED: std::sync::LazyLock<tokio::sync::Notify> =
    std::sync::LazyLock::new(tokio::sync::Notify::new);
