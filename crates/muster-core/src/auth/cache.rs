//! Provider tokens recently found valid, so a SCIM request does not read the database to learn
//! who sent it.
//!
//! An entry is the token and its provider as the database held them when checked, keyed by the
//! SHA-256 of the secret (the secret itself is never kept). It is trusted for at most
//! [`Settings::token_cache_ttl`](crate::Settings) after that check:
//!
//! - a token's expiry is compared with the clock at every request, so an expired token fails at
//!   once whether cached or not;
//! - every change this process makes to a provider or a token (revocation, rename, new delay)
//!   empties the cache when it commits, so the next request reads the database again;
//! - a change made elsewhere (another `muster serve` on the same database, the `muster` CLI)
//!   is seen when the entry ages out: within the TTL, one second by default, or at once with a
//!   TTL of zero, which turns the cache off.
//!
//! Only valid tokens are cached, so the cache holds at most one entry per live token; a wrong
//! token always reaches the database (and the failed-authentication limit).

use crate::model::ProviderCtx;
use crate::model::ProviderToken;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use std::time::Instant;

/// The cached answer for one token.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub token: ProviderToken,
    pub ctx: ProviderCtx,
    at: Instant,
}

/// Valid provider tokens by the hash of their secret.
pub(crate) struct AuthCache {
    ttl: Duration,
    entries: RwLock<HashMap<Vec<u8>, Arc<Checked>>>,
}

impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No hashes in logs or panics: only the size.
        let size = self.entries.read().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("AuthCache")
            .field("ttl", &self.ttl)
            .field("entries", &size)
            .finish()
    }
}

impl AuthCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The entry for `hash`, if it was checked within the TTL.
    pub fn get(&self, hash: &[u8]) -> Option<Arc<Checked>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let hit = entries.get(hash)?;
        (hit.at.elapsed() < self.ttl).then(|| hit.clone())
    }

    /// Remembers that `token` authenticated `ctx` just now.
    pub fn put(&self, hash: Vec<u8>, token: ProviderToken, ctx: ProviderCtx) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.write() {
            // Entries that aged out go when a new one arrives, so the map never outgrows the
            // tokens used within one TTL.
            let ttl = self.ttl;
            entries.retain(|_, c| c.at.elapsed() < ttl);
            entries.insert(
                hash,
                Arc::new(Checked {
                    token,
                    ctx,
                    at: Instant::now(),
                }),
            );
        }
    }

    /// Forgets every entry: a provider or a token changed.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }
}
