//! Provisioning providers: creating and listing them, their name and deactivation delay, their
//! SCIM base URL, and the time of their last sync (docs/concepts.md).

use crate::auth::secret as token;
use crate::clock::Timestamp;
use crate::error::CoreError;
use crate::error::CoreResult;
use crate::error::StoreError;
use crate::error::Unique;
use crate::ids::EnvironmentId;
use crate::ids::ProviderId;
use crate::ids::TokenId;
use crate::model::Actor;
use crate::model::Outcome;
use crate::model::Provider;
use crate::model::ProviderToken;
use crate::model::SyncLogEntry;
use crate::model::DEFAULT_DEACTIVATION_DELAY_SECS;
use crate::model::MAX_DEACTIVATION_DELAY_SECS;
use crate::muster::Muster;
use crate::store::Tx;
use crate::synclog::event::Event;
use serde_json::json;
use std::collections::HashMap;

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

/// A sync log entry for an administrator's action.
pub fn provider_admin_entry(
    env: EnvironmentId,
    at: Timestamp,
    actor: &Actor,
    provider: Option<ProviderId>,
    action: Event,
    subject_name: &str,
    details: serde_json::Value,
) -> SyncLogEntry {
    SyncLogEntry {
        environment_id: env,
        at,
        provider_id: provider,
        actor: actor.clone(),
        action,
        subject_kind: Some("provider".into()),
        subject_id: provider.map(|p| p.to_string()),
        subject_name: Some(subject_name.into()),
        details,
        outcome: Outcome::Success,
        message: None,
    }
}

impl Muster {
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
        self.record(
            &mut tx,
            &[provider_admin_entry(
                env,
                now,
                actor,
                Some(provider.id),
                Event::ProviderCreated,
                &provider.name,
                json!({}),
            )],
        )
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

    /// The environment of the provider with this id, in any environment; `None` when there is no
    /// such provider. For attributing a request that names a provider before it authenticated.
    pub async fn provider_location(
        &self,
        id: ProviderId,
    ) -> CoreResult<Option<(EnvironmentId, ProviderId)>> {
        let mut tx = self.store.read().await?;
        Ok(tx
            .locate_provider(id)
            .await?
            .map(|p| (p.environment_id, p.id)))
    }

    /// One provider.
    pub async fn get_provider(&self, env: EnvironmentId, id: ProviderId) -> CoreResult<Provider> {
        let mut tx = self.store.read().await?;
        self.find_provider_in(&mut tx, env, id).await
    }

    /// One provider, in a transaction; `NotFound` when there is none.
    pub(crate) async fn find_provider_in(
        &self,
        tx: &mut Box<dyn crate::store::Tx>,
        env: EnvironmentId,
        id: ProviderId,
    ) -> CoreResult<Provider> {
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
        self.record(
            &mut tx,
            &[provider_admin_entry(
                env,
                p.updated_at,
                actor,
                Some(p.id),
                Event::ProviderUpdated,
                &p.name,
                json!({"before": before, "after": after}),
            )],
        )
        .await?;
        tx.commit().await?;
        self.credentials_changed();
        Ok(p)
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

    /// The name of a provider, for listings.
    pub async fn provider_names(
        &self,
        env: EnvironmentId,
    ) -> CoreResult<HashMap<ProviderId, String>> {
        Ok(self
            .list_providers(env)
            .await?
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect())
    }
}
