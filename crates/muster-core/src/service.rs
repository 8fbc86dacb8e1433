//! The service every interface calls: [`Muster`] holds the store, the clock and the settings.

use std::sync::Arc;

use serde_json::json;

use crate::auth_cache::AuthCache;
use crate::clock::{Clock, Timestamp};
use crate::error::{CoreError, CoreResult, StoreError, Unique};
use crate::ids::{EnvironmentId, OrgId, ProviderId, RoleId, TokenId};
use crate::model::{
    Actor, Environment, Org, OrgStatus, Outcome, Provider, ProviderToken, Role, SyncLogEntry,
    DEFAULT_DEACTIVATION_DELAY_SECS, DEFAULT_ENVIRONMENT, DEFAULT_ORG_NAME,
    MAX_DEACTIVATION_DELAY_SECS, ROOT_DEFAULT_ROLES, STANDARD_ROLES,
};
use crate::store::{Store, Tx};
use crate::token;

/// Settings the domain needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The external base URL, without a trailing slash (`https://muster.example.com`).
    pub public_url: String,
    /// The largest page a SCIM list returns (RFC 7644 §3.4.2.4; advertised as `filter.maxResults`).
    pub max_page_size: u64,
    /// How long a provider token found valid is trusted without reading the database again
    /// (zero: never). Changes this process makes apply at once; see [`crate::auth_cache`].
    pub token_cache_ttl: std::time::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            max_page_size: 1000,
            token_cache_ttl: std::time::Duration::from_secs(1),
        }
    }
}

/// Muster's domain services.
#[derive(Debug, Clone)]
pub struct Muster {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Provider tokens recently found valid.
    auth: Arc<AuthCache>,
    /// What this process remembers to spare the database a statement: each environment's root
    /// organization (it never changes), and when it last recorded each provider's sync.
    memo: Arc<Memo>,
}

#[derive(Debug, Default)]
struct Memo {
    roots: std::sync::RwLock<std::collections::HashMap<EnvironmentId, OrgId>>,
    synced: std::sync::Mutex<std::collections::HashMap<ProviderId, Timestamp>>,
}

/// A provider as the subject of a request, with its environment.
#[derive(Debug, Clone)]
pub struct ProviderCtx {
    /// The provider.
    pub provider: Provider,
    /// Its SCIM base URL (`{public_url}/scim/v2/{provider_id}`).
    pub base_url: String,
}

impl ProviderCtx {
    /// The provider's environment.
    pub fn env(&self) -> EnvironmentId {
        self.provider.environment_id
    }
    /// The provider's id.
    pub fn id(&self) -> ProviderId {
        self.provider.id
    }
}

/// A provider just created, with its first token's secret (shown once).
#[derive(Debug)]
pub struct CreatedProvider {
    /// The provider.
    pub provider: Provider,
    /// Its SCIM base URL.
    pub scim_base_url: String,
    /// The first token.
    pub token: ProviderToken,
    /// The first token's secret.
    pub secret: String,
}

/// A token just created, with its secret (shown once).
#[derive(Debug)]
pub struct CreatedToken {
    /// The token.
    pub token: ProviderToken,
    /// Its secret.
    pub secret: String,
}

impl Muster {
    /// A service over a store.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        Self {
            store,
            clock,
            auth: Arc::new(AuthCache::new(settings.token_cache_ttl)),
            memo: Arc::default(),
            settings: Arc::new(settings),
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The environment with this slug, created with its root organization on first use.
    pub async fn ensure_environment(&self, slug: &str) -> CoreResult<Environment> {
        let mut tx = self.store.write().await?;
        let env = match tx.find_environment(slug).await? {
            Some(env) => env,
            None => {
                let env = Environment {
                    id: EnvironmentId::new(),
                    slug: slug.to_string(),
                    name: if slug == DEFAULT_ENVIRONMENT {
                        "Default".into()
                    } else {
                        slug.to_string()
                    },
                    created_at: self.now(),
                };
                tx.insert_environment(&env).await?;
                env
            }
        };
        if tx.find_root_org(env.id).await?.is_none() {
            let now = self.now();
            let org = Org {
                environment_id: env.id,
                id: OrgId::new(),
                parent_id: None,
                name: DEFAULT_ORG_NAME.into(),
                status: OrgStatus::Active,
                own_default_roles: true,
                created_at: now,
                updated_at: now,
            };
            tx.insert_org(&org).await?;
            let mut defaults = Vec::new();
            for (name, description) in STANDARD_ROLES {
                let role = Role {
                    environment_id: env.id,
                    id: RoleId::new(),
                    name: (*name).into(),
                    description: (*description).into(),
                    builtin: true,
                    created_at: now,
                };
                tx.insert_role(&role).await?;
                if ROOT_DEFAULT_ROLES.contains(name) {
                    defaults.push(role.id);
                }
            }
            tx.set_org_default_roles(env.id, org.id, &defaults).await?;
        }
        tx.commit().await?;
        Ok(env)
    }

    /// The SCIM base URL of a provider.
    pub fn scim_base_url(&self, provider: ProviderId) -> String {
        format!("{}/scim/v2/{provider}", self.settings.public_url)
    }

    /// Adds a provider with a first token.
    pub async fn create_provider(
        &self,
        env: EnvironmentId,
        name: &str,
        actor: &Actor,
    ) -> CoreResult<CreatedProvider> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(CoreError::Invalid(
                "a provider's display name must have 1 to 200 characters".into(),
            ));
        }
        let now = self.now();
        let provider = Provider {
            environment_id: env,
            id: ProviderId::new(),
            name: name.to_string(),
            deactivation_delay_secs: DEFAULT_DEACTIVATION_DELAY_SECS,
            created_at: now,
            updated_at: now,
            last_sync_at: None,
        };
        let secret = token::generate();
        let tok = ProviderToken {
            environment_id: env,
            id: TokenId::new(),
            provider_id: provider.id,
            label: "initial".into(),
            prefix: secret.prefix.clone(),
            created_at: now,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        let mut tx = self.store.write().await?;
        tx.insert_provider(&provider).await.map_err(|e| match e {
            StoreError::Conflict(Unique::ProviderName) => {
                CoreError::Conflict(format!("a provider named '{name}' already exists"))
            }
            other => other.into(),
        })?;
        tx.insert_token(&tok, &secret.hash).await?;
        tx.append_log(&[admin_entry(
            env,
            now,
            actor,
            Some(provider.id),
            "provider.created",
            &provider.name,
            json!({}),
        )])
        .await?;
        tx.commit().await?;
        Ok(CreatedProvider {
            scim_base_url: self.scim_base_url(provider.id),
            provider,
            token: tok,
            secret: secret.secret,
        })
    }

    /// Every provider of the environment.
    pub async fn list_providers(&self, env: EnvironmentId) -> CoreResult<Vec<Provider>> {
        let mut tx = self.store.read().await?;
        Ok(tx.list_providers(env).await?)
    }

    /// One provider.
    pub async fn get_provider(&self, env: EnvironmentId, id: ProviderId) -> CoreResult<Provider> {
        let mut tx = self.store.read().await?;
        tx.find_provider(env, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no provider with id {id}")))
    }

    /// Changes a provider's display name and/or deactivation delay.
    pub async fn update_provider(
        &self,
        env: EnvironmentId,
        id: ProviderId,
        name: Option<&str>,
        deactivation_delay_secs: Option<i64>,
        actor: &Actor,
    ) -> CoreResult<Provider> {
        let mut tx = self.store.write().await?;
        let mut p = tx
            .find_provider(env, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no provider with id {id}")))?;
        let before = json!({"name": p.name, "deactivationDelaySeconds": p.deactivation_delay_secs});
        if let Some(name) = name {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 {
                return Err(CoreError::Invalid(
                    "a provider's display name must have 1 to 200 characters".into(),
                ));
            }
            p.name = name.to_string();
        }
        if let Some(delay) = deactivation_delay_secs {
            if !(0..=MAX_DEACTIVATION_DELAY_SECS).contains(&delay) {
                return Err(CoreError::Invalid(format!(
                    "the deactivation delay must be between 0 seconds and 90 days ({MAX_DEACTIVATION_DELAY_SECS} seconds)"
                )));
            }
            p.deactivation_delay_secs = delay;
        }
        p.updated_at = self.now();
        tx.update_provider(&p).await.map_err(|e| match e {
            StoreError::Conflict(Unique::ProviderName) => {
                CoreError::Conflict(format!("a provider named '{}' already exists", p.name))
            }
            other => other.into(),
        })?;
        let after = json!({"name": p.name, "deactivationDelaySeconds": p.deactivation_delay_secs});
        tx.append_log(&[admin_entry(
            env,
            p.updated_at,
            actor,
            Some(p.id),
            "provider.updated",
            &p.name,
            json!({"before": before, "after": after}),
        )])
        .await?;
        tx.commit().await?;
        self.credentials_changed();
        Ok(p)
    }

    /// Adds a token to a provider, optionally expiring.
    pub async fn create_token(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        label: &str,
        expires_at: Option<Timestamp>,
        actor: &Actor,
    ) -> CoreResult<CreatedToken> {
        let now = self.now();
        if let Some(e) = expires_at {
            if e <= now {
                return Err(CoreError::Invalid(
                    "a token's expiry must be in the future".into(),
                ));
            }
        }
        let mut tx = self.store.write().await?;
        let p = tx
            .find_provider(env, provider)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no provider with id {provider}")))?;
        let secret = token::generate();
        let tok = ProviderToken {
            environment_id: env,
            id: TokenId::new(),
            provider_id: provider,
            label: label.trim().to_string(),
            prefix: secret.prefix.clone(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        tx.insert_token(&tok, &secret.hash).await?;
        tx.append_log(&[admin_entry(
            env,
            now,
            actor,
            Some(provider),
            "token.created",
            &p.name,
            json!({"token": tok.prefix, "label": tok.label}),
        )])
        .await?;
        tx.commit().await?;
        Ok(CreatedToken {
            token: tok,
            secret: secret.secret,
        })
    }

    /// A provider's tokens, newest first.
    pub async fn list_tokens(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> CoreResult<Vec<ProviderToken>> {
        let mut tx = self.store.read().await?;
        if tx.find_provider(env, provider).await?.is_none() {
            return Err(CoreError::NotFound(format!(
                "no provider with id {provider}"
            )));
        }
        Ok(tx.list_tokens(env, provider).await?)
    }

    /// Revokes a token: it stops working at once.
    pub async fn revoke_token(
        &self,
        env: EnvironmentId,
        id: TokenId,
        actor: &Actor,
    ) -> CoreResult<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        if !tx.revoke_token(env, id, now).await? {
            return Err(CoreError::NotFound(format!("no live token with id {id}")));
        }
        tx.append_log(&[admin_entry(
            env,
            now,
            actor,
            None,
            "token.revoked",
            &id.to_string(),
            json!({}),
        )])
        .await?;
        tx.commit().await?;
        self.credentials_changed();
        Ok(())
    }

    /// Finds the provider a SCIM request is for, from its bearer token.
    ///
    /// The token must be live and belong to `provider`; every failure reads the same to the
    /// caller, so a token cannot be probed against other providers.
    pub async fn authenticate_provider(
        &self,
        provider: ProviderId,
        secret: &str,
    ) -> CoreResult<ProviderCtx> {
        let denied = || {
            CoreError::Unauthorized(
                "the bearer token is missing, invalid, revoked or expired".into(),
            )
        };
        let presented = token::hash(secret);
        let now = self.now();
        if let Some(hit) = self.auth.get(&presented) {
            // The hash is the key, so it matched; the provider and the expiry are checked
            // again because a token only ever authenticates its own provider until it expires.
            if hit.token.provider_id == provider && hit.token.is_live(now) {
                return Ok(hit.ctx);
            }
            return Err(denied());
        }
        let mut tx = self.store.read().await?;
        let Some((tok, stored)) = tx.find_token_by_hash(&presented).await? else {
            return Err(denied());
        };
        if !token::hashes_match(&stored, &presented)
            || tok.provider_id != provider
            || !tok.is_live(now)
        {
            return Err(denied());
        }
        let p = tx
            .find_provider(tok.environment_id, provider)
            .await?
            .ok_or_else(denied)?;
        drop(tx);
        // Record use at most once a minute per token, so reads stay reads.
        if tok
            .last_used_at
            .is_none_or(|t| now.micros() - t.micros() > 60_000_000)
        {
            let mut w = self.store.write().await?;
            w.touch_token(tok.environment_id, tok.id, now).await?;
            w.commit().await?;
        }
        let ctx = ProviderCtx {
            base_url: self.scim_base_url(p.id),
            provider: p,
        };
        self.auth.put(presented, tok, ctx.clone());
        Ok(ctx)
    }

    /// A provider's mapping rules, read in `tx`.
    pub(crate) async fn rules(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> CoreResult<crate::mapping::Rules> {
        let known = self
            .memo
            .roots
            .read()
            .ok()
            .and_then(|r| r.get(&env).copied());
        let root = match known {
            Some(root) => root,
            None => {
                let root = tx
                    .find_root_org(env)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Corrupt("the environment has no root organization".into())
                    })?
                    .id;
                if let Ok(mut r) = self.memo.roots.write() {
                    r.insert(env, root);
                }
                root
            }
        };
        crate::mapping::Rules::load(tx, env, provider, root).await
    }

    /// Records in `tx` that the provider changed something at `now`, precise to 5 seconds: the
    /// statement is skipped when this process recorded a time less than 5 seconds before.
    pub(crate) async fn touch_sync(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        now: Timestamp,
    ) -> CoreResult<()> {
        let recent = self
            .memo
            .synced
            .lock()
            .ok()
            .and_then(|m| m.get(&provider).copied())
            .is_some_and(|t| t.micros() <= now.micros() && now.micros() - t.micros() < 5_000_000);
        if !recent {
            tx.touch_provider_sync(env, provider, now).await?;
            if let Ok(mut m) = self.memo.synced.lock() {
                m.insert(provider, now);
            }
        }
        Ok(())
    }

    /// Forgets every cached token check: a provider or a token changed.
    pub(crate) fn credentials_changed(&self) {
        self.auth.clear();
    }
}

/// A sync log entry for an administrator's action.
pub fn admin_entry(
    env: EnvironmentId,
    at: Timestamp,
    actor: &Actor,
    provider: Option<ProviderId>,
    action: &str,
    subject_name: &str,
    details: serde_json::Value,
) -> SyncLogEntry {
    SyncLogEntry {
        environment_id: env,
        at,
        provider_id: provider,
        actor: actor.clone(),
        action: action.into(),
        subject_kind: Some("provider".into()),
        subject_id: provider.map(|p| p.to_string()),
        subject_name: Some(subject_name.into()),
        details,
        outcome: Outcome::Success,
        message: None,
    }
}
