//! Provider credentials: bearer tokens shown once and stored hashed, several live at once for
//! rotation, each revocable and optionally expiring; and the check every SCIM request passes.

use crate::auth::secret as token;
use crate::clock::Timestamp;
use crate::error::CoreError;
use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::ProviderId;
use crate::ids::TokenId;
use crate::model::Actor;
use crate::model::ProviderCtx;
use crate::model::ProviderToken;
use crate::muster::Muster;
use crate::providers::provider_admin_entry;
use crate::synclog::event::Event;
use serde_json::json;

/// A token just created, with its secret (shown once).
#[derive(Debug)]
pub struct CreatedToken {
    /// The token.
    pub token: ProviderToken,
    /// Its secret.
    pub secret: String,
}

impl Muster {
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
        self.record(
            &mut tx,
            &[provider_admin_entry(
                env,
                now,
                actor,
                Some(provider),
                Event::TokenCreated,
                &p.name,
                json!({"token": tok.prefix, "label": tok.label}),
            )],
        )
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
        self.record(
            &mut tx,
            &[provider_admin_entry(
                env,
                now,
                actor,
                None,
                Event::TokenRevoked,
                &id.to_string(),
                json!({}),
            )],
        )
        .await?;
        tx.commit().await?;
        self.credentials_changed();
        Ok(())
    }

    /// Finds the provider a SCIM request is for, from its token (sent as a bearer token or as the
    /// password of HTTP Basic).
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
                "the provider token is missing, invalid, revoked or expired".into(),
            )
        };
        let presented = token::hash(secret);
        let now = self.now();
        let checked = self
            .auth
            .get_or_check(&presented, || async {
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
                    base_url: self.scim_base_url(p.id).into(),
                    provider: std::sync::Arc::new(p),
                };
                Ok((tok, ctx))
            })
            .await?;
        // The hash is the key, so it matched; the provider and the expiry are checked again
        // for an entry from the cache, because a token only ever authenticates its own provider
        // until it expires.
        if checked.token.provider_id == provider && checked.token.is_live(now) {
            Ok(checked.ctx.clone())
        } else {
            Err(denied())
        }
    }
}
