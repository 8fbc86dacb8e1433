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
//!
//! When an entry ages out, the requests that carry its token at that moment do not each check
//! it ([`AuthCache::get_or_check`]): one does, the others wait for its answer. Under load a
//! provider has tens of requests in flight, and each used to read the token and its provider
//! (about six at each expiry under `wrk -c32` on PostgreSQL, by `pg_stat_user_tables`), and,
//! when the token's recorded use was over a minute old, each wrote it again, a commit each
//! (docs/benchmarks.md, "One check per token when its cache entry ages out").
//!
//! The entries are kept per thread ([`crate::shards`]), each thread's a copy of its own: every
//! request reads an entry and takes a reference to it and its provider, and with one map shared
//! by the runtime's threads the lock's and the reference counts' cache lines moved between the
//! cores on every request (most of the lookup's time by `perf annotate`). A check's answer goes
//! into every thread's map, and a change empties them all.

use crate::error::CoreResult;
use crate::model::ProviderCtx;
use crate::model::ProviderToken;
use crate::shards::Shards;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

/// The cached answer for one token.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub token: ProviderToken,
    pub ctx: ProviderCtx,
    at: Instant,
}

impl Checked {
    fn now(token: ProviderToken, ctx: ProviderCtx) -> Checked {
        Checked {
            token,
            ctx,
            at: Instant::now(),
        }
    }

    /// A copy that shares no allocation with this one (not even a reference count), for
    /// another thread's map.
    fn copy(&self) -> Arc<Checked> {
        Arc::new(Checked {
            token: self.token.clone(),
            ctx: ProviderCtx {
                provider: Arc::new((*self.ctx.provider).clone()),
                base_url: Arc::from(&*self.ctx.base_url),
            },
            at: self.at,
        })
    }
}

/// A request's turn to check a token ([`AuthCache::turn`]).
struct Turn<'a> {
    cache: &'a AuthCache,
    hash: Vec<u8>,
    lock: Arc<tokio::sync::Mutex<()>>,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // The entry is in the cache (or the check failed): later requests need no turn. Those
        // already waiting hold the lock and still get it, each finding the entry.
        let mut checking = self
            .cache
            .checking
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if checking
            .get(&self.hash)
            .is_some_and(|l| Arc::ptr_eq(l, &self.lock))
        {
            checking.remove(&self.hash);
        }
    }
}

/// Valid provider tokens by the hash of their secret.
pub(crate) struct AuthCache {
    ttl: Duration,
    entries: Shards<HashMap<Vec<u8>, Arc<Checked>>>,
    /// The checks under way, by the hash of the token being checked: a request that finds its
    /// token being checked waits for that check rather than starting its own.
    checking: Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No hashes in logs or panics: only the size.
        let mut size = 0;
        self.entries.each(|e| size = size.max(e.len()));
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
            entries: Shards::default(),
            checking: Mutex::new(HashMap::new()),
        }
    }

    /// The entry for `hash`: from the cache if it was checked within the TTL, else from
    /// `check` (the token and its provider as the database has them now, or why not), which is
    /// then remembered. Of the requests that carry the same token while it is being checked, one
    /// runs `check` and the others wait for it, then take its entry from the cache; if it
    /// failed (an unknown token is never cached), each runs its own in turn.
    pub async fn get_or_check<F, Fut>(&self, hash: &[u8], check: F) -> CoreResult<Arc<Checked>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = CoreResult<(ProviderToken, ProviderCtx)>>,
    {
        if let Some(hit) = self.get(hash) {
            return Ok(hit);
        }
        if self.ttl.is_zero() {
            let (token, ctx) = check().await?;
            return Ok(Arc::new(Checked::now(token, ctx)));
        }
        let turn = self.turn(hash).await;
        if let Some(hit) = self.get(hash) {
            return Ok(hit);
        }
        let (token, ctx) = check().await?;
        let checked = Arc::new(Checked::now(token, ctx));
        self.insert(hash, &checked);
        drop(turn);
        Ok(checked)
    }

    /// Waits until no other request is checking the token of `hash`; until the turn is dropped,
    /// the others wait for this one.
    async fn turn(&self, hash: &[u8]) -> Turn<'_> {
        let lock = {
            let mut checking = self.checking.lock().unwrap_or_else(|e| e.into_inner());
            checking.entry(hash.to_vec()).or_default().clone()
        };
        let held = lock.clone().lock_owned().await;
        Turn {
            cache: self,
            hash: hash.to_vec(),
            lock,
            _held: held,
        }
    }

    /// The entry for `hash`, if it was checked within the TTL.
    pub fn get(&self, hash: &[u8]) -> Option<Arc<Checked>> {
        if self.ttl.is_zero() {
            return None;
        }
        self.entries.with(|entries| {
            let hit = entries.get(hash)?;
            (hit.at.elapsed() < self.ttl).then(|| hit.clone())
        })
    }

    /// Remembers an entry checked just now.
    fn insert(&self, hash: &[u8], checked: &Checked) {
        let ttl = self.ttl;
        self.entries.each(|entries| {
            // Entries that aged out go when a new one arrives, so the map never outgrows the
            // tokens used within one TTL.
            entries.retain(|_, c| c.at.elapsed() < ttl);
            entries.insert(hash.to_vec(), checked.copy());
        });
    }

    /// Forgets every entry: a provider or a token changed.
    pub fn clear(&self) {
        self.entries.each(|entries| entries.clear());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::error::CoreError;
    use crate::ids::{EnvironmentId, ProviderId, TokenId};
    use crate::model::Provider;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn answer() -> (ProviderToken, ProviderCtx) {
        let env = EnvironmentId(uuid::Uuid::nil());
        let provider = ProviderId(uuid::Uuid::from_u128(1));
        let token = ProviderToken {
            environment_id: env,
            id: TokenId(uuid::Uuid::from_u128(2)),
            provider_id: provider,
            label: "t".into(),
            prefix: "mst_0000".into(),
            created_at: Timestamp(0),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        let ctx = ProviderCtx {
            provider: Arc::new(Provider {
                environment_id: env,
                id: provider,
                name: "p".into(),
                deactivation_delay_secs: 0,
                created_at: Timestamp(0),
                updated_at: Timestamp(0),
                last_sync_at: None,
            }),
            base_url: "http://m/scim/v2/p".into(),
        };
        (token, ctx)
    }

    /// `n` requests at once with the same token, each with a check that takes a while (20 ms,
    /// as a database round trip would, so that the requests overlap; without the turns each
    /// runs its own); how many checks ran, and how many requests got an entry.
    async fn at_once(cache: &Arc<AuthCache>, n: usize, succeed: bool) -> (usize, usize) {
        let checks = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (cache, checks) = (cache.clone(), checks.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_check(b"hash", || async {
                        checks.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        if succeed {
                            Ok(answer())
                        } else {
                            Err(CoreError::Unauthorized("no".into()))
                        }
                    })
                    .await
                    .is_ok()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.unwrap_or(false));
        }
        (checks.load(Ordering::SeqCst), ok)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_with_the_same_token_share_one_check() {
        // A TTL no run outlasts, so that no entry ages out while a test waits on a busy machine;
        // `clear` forgets the entry as aging out would (`get` compares the age).
        let ttl = Duration::from_secs(600);
        let cache = Arc::new(AuthCache::new(ttl));
        assert_eq!(at_once(&cache, 32, true).await, (1, 32));
        assert_eq!(at_once(&cache, 32, true).await, (0, 32), "cached");
        assert!(cache.checking.lock().map(|c| c.is_empty()).unwrap_or(false));
        cache.clear();
        assert_eq!(at_once(&cache, 32, true).await, (1, 32), "forgotten");
        // A refused token is not cached: each request is refused by its own check.
        let refused = Arc::new(AuthCache::new(ttl));
        assert_eq!(at_once(&refused, 4, false).await, (4, 0));
        assert!(refused
            .checking
            .lock()
            .map(|c| c.is_empty())
            .unwrap_or(false));
        // With the cache off, every request checks.
        let off = Arc::new(AuthCache::new(Duration::ZERO));
        assert_eq!(at_once(&off, 4, true).await, (4, 4));
    }
}
