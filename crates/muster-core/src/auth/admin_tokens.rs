//! Administrator API tokens: created with a label and an optional expiry, shown once, stored
//! hashed, revocable; the check every `/api/v1` request passes.

use crate::auth::secret as token;
use crate::clock::Timestamp;
use crate::error::CoreError;
use crate::error::CoreResult;
use crate::ids::AdminTokenId;
use crate::ids::EnvironmentId;
use crate::model::Actor;
use crate::model::AdminToken;
use crate::muster::Muster;
use crate::synclog::admin_entry;
use crate::synclog::event::Event;
use serde_json::json;

/// An administrator token just created, with its secret (shown once).
#[derive(Debug)]
pub struct CreatedAdminToken {
    /// The token.
    pub token: AdminToken,
    /// Its secret.
    pub secret: String,
}

impl Muster {
    /// Creates an administrator API token (shown once).
    pub async fn create_admin_token(
        &self,
        env: EnvironmentId,
        label: &str,
        expires_at: Option<Timestamp>,
        actor: &Actor,
    ) -> CoreResult<CreatedAdminToken> {
        let now = self.now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(CoreError::Invalid(
                "a token's expiry must be in the future".into(),
            ));
        }
        let secret = token::generate_with(token::ADMIN_TOKEN_PREFIX);
        let t = AdminToken {
            environment_id: env,
            id: AdminTokenId::new(),
            label: label.trim().into(),
            prefix: secret.prefix.clone(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
            scopes: None,
        };
        let mut tx = self.store.write().await?;
        tx.insert_admin_token(&t, &secret.hash).await?;
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::AdminTokenCreated,
                ("admin_token", t.id.to_string(), &t.label),
                json!({"token": t.prefix}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedAdminToken {
            token: t,
            secret: secret.secret,
        })
    }

    /// Every administrator token.
    pub async fn list_admin_tokens(&self, env: EnvironmentId) -> CoreResult<Vec<AdminToken>> {
        let mut tx = self.store.read().await?;
        Ok(tx.list_admin_tokens(env, false).await?)
    }

    /// Revokes an administrator token.
    pub async fn revoke_admin_token(
        &self,
        env: EnvironmentId,
        id: AdminTokenId,
        actor: &Actor,
    ) -> CoreResult<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        if !tx.revoke_admin_token(env, id, now).await? {
            return Err(CoreError::NotFound(format!(
                "no live administrator token with id {id}"
            )));
        }
        self.record(
            &mut tx,
            &[admin_entry(
                env,
                now,
                actor,
                Event::AdminTokenRevoked,
                ("admin_token", id.to_string(), &id.to_string()),
                json!({}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The administrator token a request presents, if it is live.
    pub async fn authenticate_admin(&self, secret: &str) -> CoreResult<AdminToken> {
        let denied = || {
            CoreError::Unauthorized("the API token is missing, invalid, revoked or expired".into())
        };
        let presented = token::hash(secret);
        let now = self.now();
        let mut tx = self.store.read().await?;
        let Some((t, stored)) = tx.find_admin_token_by_hash(&presented).await? else {
            return Err(denied());
        };
        if !token::hashes_match(&stored, &presented) || !t.is_live(now) {
            return Err(denied());
        }
        drop(tx);
        if t.last_used_at
            .is_none_or(|u| now.micros() - u.micros() > 60_000_000)
        {
            let mut w = self.store.write().await?;
            w.touch_admin_token(t.environment_id, t.id, now).await?;
            w.commit().await?;
        }
        Ok(t)
    }
}
